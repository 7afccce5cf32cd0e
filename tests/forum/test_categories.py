"""Categories API: listing by visibility, admin-only creation and changes, slugs."""

from __future__ import annotations

import pytest

from services.forum.topics.categories import slugify

pytestmark = pytest.mark.usefixtures("numbered_groups")  # private categories name groups 1-10


async def test_list_is_empty_at_first(client):
    """With no categories the list is empty, for anyone."""
    response = await client.get("/api/categories")
    assert response.status_code == 200
    assert response.json() == {"items": []}


async def test_admin_creates_category_with_generated_slug(member_factory, client):
    """An admin's category gets a slug from its name and shows in the public list."""
    admin = await member_factory(roles=("member", "admin"))
    response = await admin.client.post(
        "/api/categories",
        json={"name": "Lived experience", "description": "Stories and support", "colour": "#AE2573", "position": 2},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["slug"] == "lived-experience"
    assert body["colour"] == "ae2573"
    assert body["topics_count"] == 0
    assert body["group_ids"] == []
    listed = (await client.get("/api/categories")).json()["items"]
    assert [c["name"] for c in listed] == ["Lived experience"]
    assert "group_ids" not in listed[0]  # only staff see groups


async def test_categories_ordered_by_position(member_factory, client):
    """Categories list by position, then name."""
    admin = await member_factory(roles=("admin",))
    for name, position in (("Zeta", 1), ("Alpha", 2), ("Beta", 1)):
        assert (
            await admin.client.post("/api/categories", json={"name": name, "position": position})
        ).status_code == 201
    names = [c["name"] for c in (await client.get("/api/categories")).json()["items"]]
    assert names == ["Beta", "Zeta", "Alpha"]


async def test_slug_taken_is_409(member_factory):
    """A slug already used, given or generated, is a conflict."""
    admin = await member_factory(roles=("admin",))
    assert (await admin.client.post("/api/categories", json={"name": "Leadership"})).status_code == 201
    again = await admin.client.post("/api/categories", json={"name": "Leadership!"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "slug_taken"
    given = await admin.client.post("/api/categories", json={"name": "Other", "slug": "leadership"})
    assert given.status_code == 409


async def test_create_requires_admin(member_factory, client):
    """Anonymous: 401; members and moderators: 403."""
    assert (await client.post("/api/categories", json={"name": "X"})).status_code == 401
    member = await member_factory()
    assert (await member.client.post("/api/categories", json={"name": "X"})).status_code == 403
    moderator = await member_factory(roles=("moderator",))
    assert (await moderator.client.post("/api/categories", json={"name": "X"})).status_code == 403


async def test_create_requires_csrf(member_factory):
    """A cookie-authenticated write without the CSRF header is refused."""
    admin = await member_factory(roles=("admin",))
    del admin.client.headers["X-CSRF-Token"]
    response = await admin.client.post("/api/categories", json={"name": "Webinars"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 51}, "name"),
        ({"name": "Ok", "slug": "Not A Slug"}, "slug"),
        ({"name": "Ok", "colour": "red"}, "colour"),
        ({"name": "Ok", "position": -1}, "position"),
        ({"name": "Ok", "group_ids": ["a"]}, "group_ids"),
        ({"name": "Ok", "group_ids": [0]}, "group_ids"),
        ({"name": "Ok", "surprise": 1}, "surprise"),
    ],
)
async def test_create_invalid_is_422(member_factory, body, field):
    """Each bad field is named in a 422."""
    admin = await member_factory(roles=("admin",))
    response = await admin.client.post("/api/categories", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


async def test_create_bad_json_is_400(member_factory):
    """A body that is not a JSON object is a 400."""
    admin = await member_factory(roles=("admin",))
    assert (await admin.client.post("/api/categories", content=b"{nope")).status_code == 400
    assert (await admin.client.post("/api/categories", json=[1])).status_code == 400


async def test_too_large_body_is_413(member_factory, settings):
    """A body over the configured limit is refused before it is read."""
    admin = await member_factory(roles=("admin",))
    response = await admin.client.post(
        "/api/categories", content=b"x" * (settings.max_body_bytes + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_private_category_visible_to_group_and_staff(member_factory, client):
    """A category with groups is listed only to their members and staff."""
    admin = await member_factory(roles=("admin",))
    response = await admin.client.post("/api/categories", json={"name": "Facilitators", "group_ids": [7]})
    assert response.status_code == 201
    assert response.json()["group_ids"] == [7]
    await admin.client.post("/api/categories", json={"name": "Open"})
    outsider = await member_factory()
    insider = await member_factory(group_ids=(7,))
    moderator = await member_factory(roles=("moderator",))
    assert [c["name"] for c in (await client.get("/api/categories")).json()["items"]] == ["Open"]
    assert [c["name"] for c in (await outsider.client.get("/api/categories")).json()["items"]] == ["Open"]
    assert len((await insider.client.get("/api/categories")).json()["items"]) == 2
    assert len((await moderator.client.get("/api/categories")).json()["items"]) == 2


async def test_admin_updates_category(member_factory):
    """PATCH changes name, description, colour and position; the slug stays."""
    admin = await member_factory(roles=("admin",))
    created = (await admin.client.post("/api/categories", json={"name": "Research"})).json()
    response = await admin.client.patch(
        f"/api/categories/{created['id']}",
        json={"name": "Research and evaluation", "description": "Evidence", "colour": "00A499", "position": 4},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["description"], body["colour"], body["position"], body["slug"]) == (
        "Research and evaluation",
        "Evidence",
        "00a499",
        4,
        "research",
    )


async def test_update_errors(member_factory):
    """PATCH: 403 for non-admins, 404 for a missing or non-integer id, 422 for bad fields."""
    admin = await member_factory(roles=("admin",))
    member = await member_factory()
    created = (await admin.client.post("/api/categories", json={"name": "Webinars"})).json()
    assert (await member.client.patch(f"/api/categories/{created['id']}", json={"name": "X"})).status_code == 403
    assert (await admin.client.patch("/api/categories/999999", json={"name": "X"})).status_code == 404
    assert (await admin.client.patch("/api/categories/abc", json={"name": "X"})).status_code == 404
    bad = await admin.client.patch(f"/api/categories/{created['id']}", json={"slug": "x"})
    assert bad.status_code == 422


async def test_topics_count(member_factory):
    """topics_count counts the category's topics."""
    admin = await member_factory(roles=("admin",))
    category = (await admin.client.post("/api/categories", json={"name": "Older people"})).json()
    for title in ("First topic here", "Second topic here"):
        response = await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": title, "body": "Hello"}
        )
        assert response.status_code == 201
    listed = (await admin.client.get("/api/categories")).json()["items"]
    assert listed[0]["topics_count"] == 2


@pytest.mark.parametrize(
    "text, slug",
    [
        ("Hello, World!", "hello-world"),
        ("  Café au lait  ", "cafe-au-lait"),
        ("!!!", "topic"),
        ("", "topic"),
        ("日本語", "topic"),
        ("word " * 30, "-".join(["word"] * 12)),
        ("x" * 80, "x" * 60),
    ],
)
def test_slugify(text, slug):
    """Slugs are lowercase ASCII words joined by '-', at most 60 characters."""
    assert slugify(text) == slug
    assert len(slugify(text)) <= 60


async def test_category_changes_are_events_with_their_audience(member_factory, pool):
    """Creating a category and changing its groups record category.created/updated with the audience."""
    from shared.events import Envelope

    admin = await member_factory(roles=("admin",))
    created = (await admin.client.post("/api/categories", json={"name": "Circle"})).json()
    response = await admin.client.patch(f"/api/categories/{created['id']}", json={"group_ids": [3, 2, 3]})
    assert response.status_code == 200, response.text
    assert response.json()["group_ids"] == [2, 3]
    rows = await pool.fetch("SELECT payload::text AS p FROM forum.outbox WHERE type LIKE 'category.%' ORDER BY id")
    events = [Envelope.from_json(row["p"]).event() for row in rows]
    assert [(e.type, e.audience) for e in events] == [
        ("category.created", ["public"]),
        ("category.updated", ["group:2", "group:3"]),
    ]
    unknown = await admin.client.patch(f"/api/categories/{created['id']}", json={"group_ids": [99]})
    assert unknown.status_code == 422 and "group_ids" in unknown.json()["error"]["fields"]


# --- issue 14: subcategories, default kinds, archiving, deleting, reordering -------------------------


async def _created(admin, **body):
    response = await admin.client.post("/api/categories", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _outbox(pool, prefix="category."):
    from shared.events import Envelope

    rows = await pool.fetch("SELECT payload::text AS p FROM forum.outbox WHERE type LIKE $1 ORDER BY id", prefix + "%")
    return [Envelope.from_json(row["p"]).event() for row in rows]


async def _audit(pool):
    rows = await pool.fetch(
        "SELECT action, target_id, before, after FROM forum.audit_log WHERE action LIKE 'category.%' ORDER BY id"
    )
    return [(row["action"], row["target_id"], row["before"], row["after"]) for row in rows]


async def test_new_fields_in_the_category_shape(member_factory):
    """A category says its parent, the kind its new topics start as, and whether (and since when) it is archived."""
    admin = await member_factory(roles=("admin",))
    parent = await _created(admin, name="Practice")
    child = await _created(admin, name="Schools", parent_id=parent["id"], default_kind="case_study")
    assert (parent["parent_id"], parent["default_kind"], parent["archived"], parent["archived_at"]) == (
        None,
        "discussion",
        False,
        None,
    )
    assert (child["parent_id"], child["default_kind"]) == (parent["id"], "case_study")


async def test_patch_changes_each_field(member_factory):
    """PATCH changes every field an admin can edit, one at a time, and each shows in the answer."""
    admin = await member_factory(roles=("admin",))
    parent = await _created(admin, name="Practice")
    category = await _created(admin, name="Research")
    url = f"/api/categories/{category['id']}"
    for body, key, expected in [
        ({"name": "Research and evaluation"}, "name", "Research and evaluation"),
        ({"description": "Evidence"}, "description", "Evidence"),
        ({"colour": "#00A499"}, "colour", "00a499"),
        ({"position": 7}, "position", 7),
        ({"allow_anonymous": True}, "allow_anonymous", True),
        ({"group_ids": [4, 2]}, "group_ids", [2, 4]),
        ({"group_ids": []}, "group_ids", []),
        ({"default_kind": "blog"}, "default_kind", "blog"),
        ({"parent_id": parent["id"]}, "parent_id", parent["id"]),
        ({"parent_id": None}, "parent_id", None),
    ]:
        response = await admin.client.patch(url, json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json()[key] == expected, body


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "Ok", "default_kind": "poem"}, "default_kind"),
        ({"name": "Ok", "parent_id": 0}, "parent_id"),
        ({"name": "Ok", "parent_id": "x"}, "parent_id"),
        ({"name": "Ok", "parent_id": 999999}, "parent_id"),
        ({"name": "Ok", "group_ids": [99]}, "group_ids"),
        ({"name": "Ok", "colour": "#12345"}, "colour"),
    ],
)
async def test_new_fields_refused_with_a_message(member_factory, body, field):
    """A kind that is not a kind, a parent that is not a category, a group that does not exist or a bad
    colour: 422 naming the field, with words for people."""
    admin = await member_factory(roles=("admin",))
    response = await admin.client.post("/api/categories", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert field in error["fields"] and error["fields"][field]
    assert error["message"]


async def test_subcategories_go_one_level_deep(member_factory):
    """A subcategory cannot have subcategories, a category with subcategories cannot become one, a
    category cannot be its own parent, and two categories cannot be each other's: 422 on parent_id."""
    admin = await member_factory(roles=("admin",))
    top = await _created(admin, name="Practice")
    child = await _created(admin, name="Schools", parent_id=top["id"])
    other = await _created(admin, name="Other")
    under_child = await admin.client.post("/api/categories", json={"name": "Deeper", "parent_id": child["id"]})
    assert under_child.status_code == 422
    assert "subcategory itself" in under_child.json()["error"]["fields"]["parent_id"]
    top_down = await admin.client.patch(f"/api/categories/{top['id']}", json={"parent_id": other["id"]})
    assert top_down.status_code == 422
    assert "has subcategories" in top_down.json()["error"]["fields"]["parent_id"]
    itself = await admin.client.patch(f"/api/categories/{other['id']}", json={"parent_id": other["id"]})
    assert itself.status_code == 422 and "itself" in itself.json()["error"]["fields"]["parent_id"]
    cycle = await admin.client.patch(f"/api/categories/{top['id']}", json={"parent_id": child["id"]})
    assert cycle.status_code == 422 and "parent_id" in cycle.json()["error"]["fields"]


async def test_a_subcategory_of_a_private_category_is_never_more_open(member_factory):
    """Under a private parent a subcategory must be private to some of the parent's groups, and the
    parent's groups cannot change so as to leave a subcategory more open (the message names it)."""
    admin = await member_factory(roles=("admin",))
    circle = await _created(admin, name="Circle", group_ids=[1, 2])
    open_child = await admin.client.post("/api/categories", json={"name": "Open", "parent_id": circle["id"]})
    assert open_child.status_code == 422
    assert "Group 1" in open_child.json()["error"]["fields"]["group_ids"]
    wider = await admin.client.post(
        "/api/categories", json={"name": "Wider", "parent_id": circle["id"], "group_ids": [1, 3]}
    )
    assert wider.status_code == 422 and "group_ids" in wider.json()["error"]["fields"]
    child = await _created(admin, name="Facilitators", parent_id=circle["id"], group_ids=[2])
    narrowed = await admin.client.patch(f"/api/categories/{circle['id']}", json={"group_ids": [1]})
    assert narrowed.status_code == 422
    assert "\u2018Facilitators\u2019" in narrowed.json()["error"]["fields"]["group_ids"]
    opened = await admin.client.patch(f"/api/categories/{child['id']}", json={"group_ids": []})
    assert opened.status_code == 422
    public = await _created(admin, name="Public")
    moved_in = await admin.client.patch(f"/api/categories/{public['id']}", json={"parent_id": circle["id"]})
    assert moved_in.status_code == 422 and "group_ids" in moved_in.json()["error"]["fields"]
    both = await admin.client.patch(
        f"/api/categories/{public['id']}", json={"parent_id": circle["id"], "group_ids": [1]}
    )
    assert both.status_code == 200, both.text
    wider_parent = await admin.client.patch(f"/api/categories/{circle['id']}", json={"group_ids": [1, 2, 3]})
    assert wider_parent.status_code == 200
    made_public = await admin.client.patch(f"/api/categories/{circle['id']}", json={"group_ids": []})
    assert made_public.status_code == 200


async def test_outsiders_never_see_a_subcategory_of_a_private_category(member_factory, client):
    """A subcategory of a private category is 404 to outsiders and visitors, in lists and by id or
    address; its group's members and staff see it under its parent."""
    admin = await member_factory(roles=("admin",))
    circle = await _created(admin, name="Circle", group_ids=[5])
    child = await _created(admin, name="Facilitators", parent_id=circle["id"], group_ids=[5])
    outsider = await member_factory()
    insider = await member_factory(group_ids=(5,))
    for http in (client, outsider.client):
        assert (await http.get("/api/categories")).json()["items"] == []
        assert (await http.get(f"/api/topics?category_id={child['id']}")).status_code == 404
        assert (await http.get("/c/facilitators")).status_code == 404
        assert "Facilitators" not in (await http.get("/categories")).text
    started = await outsider.client.post(
        "/api/topics", json={"category_id": child["id"], "title": "Let me in please", "body": "Hello"}
    )
    assert started.status_code == 404
    listed = (await insider.client.get("/api/categories")).json()["items"]
    assert [(c["name"], c["parent_id"]) for c in listed] == [("Circle", None), ("Facilitators", circle["id"])]
    assert (await insider.client.get("/c/facilitators")).status_code == 200


async def test_new_topics_start_as_the_category_kind(member_factory):
    """A topic started without a kind takes its category's default kind; a kind given wins."""
    admin = await member_factory(roles=("admin",))
    blogs = await _created(admin, name="Blogs", default_kind="blog")
    member = await member_factory()
    plain = await member.client.post(
        "/api/topics", json={"category_id": blogs["id"], "title": "My first blog", "body": "Hello"}
    )
    assert plain.status_code == 201 and plain.json()["kind"] == "blog"
    chosen = await member.client.post(
        "/api/topics",
        json={"category_id": blogs["id"], "title": "A question really", "body": "Hi", "kind": "discussion"},
    )
    assert chosen.json()["kind"] == "discussion"


async def test_archived_category_is_readable_but_takes_no_posts(member_factory, client, pool):
    """Archived: the category and its topics stay readable; new topics and replies are refused (409,
    with words for people) for members and admins alike; bringing it back lets people post again."""
    admin = await member_factory(roles=("admin",))
    category = await _created(admin, name="Old news")
    member = await member_factory()
    topic = (
        await member.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "Still worth reading", "body": "Hi"}
        )
    ).json()
    archived = await admin.client.post(f"/api/categories/{category['id']}/archive")
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived"] is True and archived.json()["archived_at"]
    assert (await client.get(f"/api/topics/{topic['id']}")).status_code == 200
    listed = (await client.get(f"/api/topics?category_id={category['id']}")).json()["items"]
    assert [t["id"] for t in listed] == [topic["id"]]
    assert (await client.get("/api/categories")).json()["items"][0]["archived"] is True
    for who in (member, admin):
        started = await who.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "Something new here", "body": "Hi"}
        )
        assert started.status_code == 409, started.text
        assert started.json()["error"] == {
            "code": "category_archived",
            "message": "This category is archived: you can read it but not post in it.",
            "fields": {"category_id": "is archived: you can read it but not post in it"},
        }
        replied = await who.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "A late reply"})
        assert replied.status_code == 409 and replied.json()["error"]["code"] == "category_archived"
    again = await admin.client.post(f"/api/categories/{category['id']}/archive")
    assert again.status_code == 200  # already archived: nothing changes
    back = await admin.client.delete(f"/api/categories/{category['id']}/archive")
    assert back.status_code == 200 and back.json()["archived"] is False and back.json()["archived_at"] is None
    replied = await member.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "Back again"})
    assert replied.status_code == 201
    assert [(e.type, e.category_id) for e in await _outbox(pool, "category.")][-2:] == [
        ("category.archived", category["id"]),
        ("category.unarchived", category["id"]),
    ]
    assert [a[0] for a in await _audit(pool)] == ["category.create", "category.archive", "category.unarchive"]


async def test_archiving_a_parent_archives_its_subcategories(member_factory, pool):
    """A parent archived takes its subcategories with it; a subcategory cannot come back while its parent
    is archived (409); bringing the parent back brings back those archived with it."""
    admin = await member_factory(roles=("admin",))
    parent = await _created(admin, name="Practice")
    kept = await _created(admin, name="Schools", parent_id=parent["id"])
    earlier = await _created(admin, name="Prisons", parent_id=parent["id"])
    assert (await admin.client.post(f"/api/categories/{earlier['id']}/archive")).status_code == 200
    assert (await admin.client.post(f"/api/categories/{parent['id']}/archive")).status_code == 200
    states = {c["name"]: c["archived"] for c in (await admin.client.get("/api/categories")).json()["items"]}
    assert states == {"Practice": True, "Schools": True, "Prisons": True}
    early = await admin.client.delete(f"/api/categories/{kept['id']}/archive")
    assert early.status_code == 409 and "Practice" in early.json()["error"]["message"]
    assert (await admin.client.delete(f"/api/categories/{parent['id']}/archive")).status_code == 200
    states = {c["name"]: c["archived"] for c in (await admin.client.get("/api/categories")).json()["items"]}
    assert states == {"Practice": False, "Schools": False, "Prisons": True}
    under_archived = await admin.client.patch(f"/api/categories/{kept['id']}", json={"parent_id": earlier["id"]})
    assert under_archived.status_code == 422  # Prisons is a subcategory, and archived
    archived_events = [e.category_id for e in await _outbox(pool) if e.type == "category.archived"]
    assert archived_events == [earlier["id"], parent["id"], kept["id"]]


async def test_delete_only_a_category_that_never_held_a_topic(member_factory, pool):
    """A category that holds topics, even only deleted ones, or has subcategories is 409 'archive it
    instead'; an empty one is deleted (204), with category.deleted and the audit entry."""
    admin = await member_factory(roles=("admin",))
    used = await _created(admin, name="Used")
    topic = (
        await admin.client.post(
            "/api/topics", json={"category_id": used["id"], "title": "Soon to be gone", "body": "Hi"}
        )
    ).json()
    await pool.execute("UPDATE forum.topics SET deleted_at = now() WHERE id = $1", topic["id"])
    refused = await admin.client.delete(f"/api/categories/{used['id']}")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "has_topics"
    assert "has topics: archive it instead" in refused.json()["error"]["message"]
    parent = await _created(admin, name="Parent")
    await _created(admin, name="Child", parent_id=parent["id"])
    with_child = await admin.client.delete(f"/api/categories/{parent['id']}")
    assert with_child.status_code == 409 and with_child.json()["error"]["code"] == "has_subcategories"
    empty = await _created(admin, name="Empty")
    member = await member_factory()
    assert (await member.client.delete(f"/api/categories/{empty['id']}")).status_code == 403
    assert (await admin.client.delete(f"/api/categories/{empty['id']}")).status_code == 204
    assert (await admin.client.delete(f"/api/categories/{empty['id']}")).status_code == 404
    assert "Empty" not in [c["name"] for c in (await admin.client.get("/api/categories")).json()["items"]]
    deleted = [e for e in await _outbox(pool) if e.type == "category.deleted"]
    assert [(e.category_id, e.slug) for e in deleted] == [(empty["id"], "empty")]
    assert ("category.delete", empty["id"], {"name": "Empty", "slug": "empty"}, None) in await _audit(pool)


async def test_reorder_rewrites_positions_of_one_level(member_factory, client, pool):
    """PUT /api/categories/order puts every category of a level in the order given, in one go, with
    category.reordered and the audit entry; a parent's subcategories are ordered apart."""
    admin = await member_factory(roles=("admin",))
    a, b, c = [await _created(admin, name=name) for name in ("Alpha", "Beta", "Gamma")]
    x, y = [await _created(admin, name=name, parent_id=a["id"]) for name in ("Xeno", "Yew")]
    response = await admin.client.put("/api/categories/order", json={"category_ids": [c["id"], a["id"], b["id"]]})
    assert response.status_code == 200, response.text
    assert [(i["name"], i["position"]) for i in response.json()["items"]] == [("Gamma", 0), ("Alpha", 1), ("Beta", 2)]
    children = await admin.client.put(
        "/api/categories/order", json={"parent_id": a["id"], "category_ids": [y["id"], x["id"]]}
    )
    assert [i["name"] for i in children.json()["items"]] == ["Yew", "Xeno"]
    names = [i["name"] for i in (await client.get("/api/categories")).json()["items"]]
    assert names == ["Gamma", "Yew", "Alpha", "Xeno", "Beta"]  # flat, by position: pages nest them
    reordered = [e.category_ids for e in await _outbox(pool) if e.type == "category.reordered"]
    assert reordered == [[c["id"], a["id"], b["id"]], [y["id"], x["id"]]]
    entries = [e for e in await _audit(pool) if e[0] == "category.reorder"]
    assert entries[0][1] is None and entries[0][3]["category_ids"] == [c["id"], a["id"], b["id"]]
    assert entries[1][1] == a["id"]


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"category_ids": "ALL"}, "category_ids", "list"),
        ({"category_ids": ["GAMMA", "ALPHA"]}, "category_ids", "leaves out"),
        ({"category_ids": ["GAMMA", "ALPHA", "ALPHA", "BETA"]}, "category_ids", "repeats"),
        ({"category_ids": ["GAMMA", "ALPHA", "BETA", "XENO"]}, "category_ids", "not categories of this level"),
        ({"parent_id": "XENO", "category_ids": []}, "parent_id", "top-level"),
        ({"parent_id": 999999, "category_ids": []}, "parent_id", "top-level"),
        ({}, "category_ids", "required"),
    ],
)
async def test_reorder_refuses_what_is_not_the_whole_level(member_factory, body, field, words):
    """Ids missing, repeated or from another level, or a parent that is not a top-level category: 422 with
    a message naming what is wrong."""
    admin = await member_factory(roles=("admin",))
    ids = {name.upper(): (await _created(admin, name=name))["id"] for name in ("Alpha", "Beta", "Gamma")}
    ids["XENO"] = (await _created(admin, name="Xeno", parent_id=ids["ALPHA"]))["id"]

    def real(value):
        if isinstance(value, list):
            return [ids.get(v, v) for v in value]
        return ids.get(value, value) if isinstance(value, str) else value

    response = await admin.client.put("/api/categories/order", json={k: real(v) for k, v in body.items()})
    assert response.status_code == 422, response.text
    assert words in response.json()["error"]["fields"][field]


async def test_category_admin_api_is_for_admins(member_factory, client):
    """Archive, unarchive, delete and reorder: 401 to visitors, 403 to members and moderators."""
    admin = await member_factory(roles=("admin",))
    category = await _created(admin, name="Mine")
    calls = [
        ("post", f"/api/categories/{category['id']}/archive", None),
        ("delete", f"/api/categories/{category['id']}/archive", None),
        ("delete", f"/api/categories/{category['id']}", None),
        ("put", "/api/categories/order", {"category_ids": [category["id"]]}),
    ]
    member = await member_factory()
    moderator = await member_factory(roles=("moderator",))
    for method, url, body in calls:
        kwargs = {"json": body} if body is not None else {}
        assert (await getattr(client, method)(url, **kwargs)).status_code == 401, url
        for who in (member, moderator):
            assert (await getattr(who.client, method)(url, **kwargs)).status_code == 403, url
    assert (await admin.client.post("/api/categories/999999/archive")).status_code == 404


async def test_changes_are_audited_with_their_names(member_factory, pool):
    """Create and update write category.created/updated with the audience and an audit entry naming the
    category, which the audit log says in words."""
    admin = await member_factory("ada", roles=("admin",))
    category = await _created(admin, name="Support")
    await admin.client.patch(f"/api/categories/{category['id']}", json={"name": "Peer support", "group_ids": [3]})
    await admin.client.patch(f"/api/categories/{category['id']}", json={"name": "Peer support"})  # no change
    entries = await _audit(pool)
    assert entries == [
        ("category.create", category["id"], None, entries[0][3]),
        (
            "category.update",
            category["id"],
            {"name": "Support", "group_ids": []},
            {"name": "Peer support", "group_ids": [3]},
        ),
    ]
    assert entries[0][3]["name"] == "Support" and entries[0][3]["default_kind"] == "discussion"
    assert [(e.type, e.audience) for e in await _outbox(pool)] == [
        ("category.created", ["public"]),
        ("category.updated", ["group:3"]),
    ]
    log = (await admin.client.get("/admin/audit-log")).text
    assert "created the category \u2018Support\u2019" in log
    assert "changed the category \u2018Peer support\u2019" in log


async def test_topics_cannot_be_moved_into_an_archived_category(member_factory):
    """Moderators move topics out of an archived category, never into one (409)."""
    admin = await member_factory(roles=("admin",))
    moderator = await member_factory(roles=("moderator",))
    old, current = await _created(admin, name="Old"), await _created(admin, name="Current")
    topic = (
        await admin.client.post("/api/topics", json={"category_id": old["id"], "title": "Moving day", "body": "Hi"})
    ).json()
    await admin.client.post(f"/api/categories/{old['id']}/archive")
    out = await moderator.client.post(f"/api/topics/{topic['id']}/moderate", json={"category_id": current["id"]})
    assert out.status_code == 200 and out.json()["category_id"] == current["id"]
    back_in = await moderator.client.post(f"/api/topics/{topic['id']}/moderate", json={"category_id": old["id"]})
    assert back_in.status_code == 409 and back_in.json()["error"]["code"] == "category_archived"


async def test_other_methods_on_the_order_path_are_405(member_factory, client):
    """/api/categories/order answers PUT only: PATCH and DELETE there are 405 (not a 404 for an id "order")."""
    admin = await member_factory(roles=("admin",))
    for http in (client, admin.client):
        patched = await http.patch("/api/categories/order", json={"category_ids": []})
        deleted = await http.delete("/api/categories/order")
        for response in (patched, deleted):
            assert response.status_code == 405 and response.headers["allow"] == "PUT"
            assert response.json()["error"]["code"] == "method_not_allowed"
