"""Admins manage categories from pages (issue 14, point 3): the list with Move up / Move down, the
form to create and change one (every problem at once, values kept), archiving and bringing back,
deleting; and what everyone sees of subcategories, groups, default kinds and archived categories."""

from __future__ import annotations

import re
from html import unescape

import pytest

pytestmark = pytest.mark.usefixtures("numbered_groups")  # groups 1-10, named "Group N"

ARCHIVED = "This category is archived: you can read it but not post in it."


def form(member, **fields):
    return {"csrf_token": member.session.csrf, **fields}


def text_of(html):
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def summary_links(html):
    """The fields the error summary links to, in order."""
    summary = html.split('class="nhsuk-error-summary', 1)[1].split("</ul>", 1)[0]
    return re.findall(r'href="#([a-z_]+)"', summary)


async def created(admin, **body):
    response = await admin.client.post("/api/categories", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def started(member, category_id, title="A topic to talk about", **extra):
    response = await member.client.post(
        "/api/topics", json={"category_id": category_id, "title": title, "body": "Hello", **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def admin(member_factory):
    return await member_factory("ada", roles=("member", "admin"))


ADMIN_PAGES = [
    ("get", "/admin/categories"),
    ("get", "/admin/categories/new"),
    ("get", "/admin/categories/{id}/edit"),
    ("get", "/admin/categories/{id}/archive"),
    ("get", "/admin/categories/{id}/unarchive"),
    ("get", "/admin/categories/{id}/delete"),
    ("post", "/admin/categories/new"),
    ("post", "/admin/categories/{id}/edit"),
    ("post", "/admin/categories/{id}/archive"),
    ("post", "/admin/categories/{id}/unarchive"),
    ("post", "/admin/categories/{id}/delete"),
    ("post", "/admin/categories/{id}/move"),
]


async def test_admins_only(admin, member_factory, client, pool):
    """Visitors are sent to log in, members and moderators get 403, and nothing changes."""
    category = await created(admin, name="Mine")
    member = await member_factory()
    moderator = await member_factory("mo", roles=("member", "moderator"))
    for method, path in ADMIN_PAGES:
        url = path.format(id=category["id"])
        if method == "get":
            visitor = await client.get(url)
            assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login?next="), url
        for who in (member, moderator):
            kwargs = {"data": form(who, name="Taken over", direction="up")} if method == "post" else {}
            answer = await getattr(who.client, method)(url, **kwargs)
            assert answer.status_code == 403, (url, who.username)
            assert "Only admins can manage categories." in answer.text
    assert await pool.fetchval("SELECT name FROM forum.categories") == "Mine"
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log WHERE action <> 'category.create'") == 0


async def test_list_shows_every_category_with_counts_groups_and_moves(admin, member_factory):
    """Private and archived categories too, subcategories under their parent, topic counts, groups by
    name, and Move up / Move down except where a category cannot go further."""
    alpha = await created(admin, name="Alpha", position=0)
    await created(admin, name="Circle", group_ids=[3], position=1)
    await created(admin, name="Inner", parent_id=alpha["id"], position=0)
    await created(admin, name="Outer", parent_id=alpha["id"], position=1)
    old = await created(admin, name="Old", position=2)
    await started(admin, alpha["id"])
    await started(admin, alpha["id"], title="Another topic here")
    await admin.client.post(f"/api/categories/{old['id']}/archive")
    html = (await admin.client.get("/admin/categories")).text
    text = text_of(html)
    assert text.index("Alpha") < text.index("Inner") < text.index("Outer") < text.index("Circle")
    assert "Subcategory of Alpha" in text and "Members of Group 3" in text
    assert re.search(r'Alpha</a></span>\s*</td>\s*<td class="nhsuk-table__cell">2</td>', html)
    archived_part = text.split("Archived", 1)[1]
    assert "Old" in archived_part and "Old" not in text.split("Archived", 1)[0]
    assert 'aria-label="Bring back Old"' in html.split("<h2>Archived</h2>", 1)[1]
    buttons = re.findall(r'aria-label="Move (up|down): (\w+)"', html)
    # Old is archived (listed apart); Inner and Outer move among themselves
    assert buttons == [("down", "Alpha"), ("down", "Inner"), ("up", "Outer"), ("up", "Circle")]


async def test_move_buttons_reorder_without_javascript(admin, pool):
    """Move down and Move up swap a category with its neighbour (audited, category.reordered), and the
    button pressed has the focus again on the list."""
    a, b = await created(admin, name="Alpha"), await created(admin, name="Beta")
    moved = await admin.client.post(f"/admin/categories/{a['id']}/move", data=form(admin, direction="down"))
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/admin/categories?moved={a['id']}&direction=down"
    names = [r["name"] for r in await pool.fetch("SELECT name FROM forum.categories ORDER BY position, id")]
    assert names == ["Beta", "Alpha"]
    html = (await admin.client.get(moved.headers["location"])).text
    assert "\u2018Alpha\u2019 moved down." in text_of(html)
    assert 'aria-label="Move up: Alpha" autofocus>Move up</button>' in html
    stay = await admin.client.post(f"/admin/categories/{a['id']}/move", data=form(admin, direction="down"))
    assert stay.status_code == 303  # already last: nothing changes
    assert await pool.fetchval("SELECT count(*) FROM forum.outbox WHERE type = 'category.reordered'") == 1
    bad = await admin.client.post(f"/admin/categories/{b['id']}/move", data=form(admin, direction="sideways"))
    assert bad.status_code == 400
    no_csrf = await admin.client.post(f"/admin/categories/{b['id']}/move", data={"direction": "up"})
    assert no_csrf.status_code == 403


async def test_create_from_the_page(admin, pool):
    """The form creates a category with every field; the list then says so."""
    parent = await created(admin, name="Practice", group_ids=[1, 2])
    page = await admin.client.get("/admin/categories/new")
    assert page.status_code == 200 and 'name="colour"' in page.text and 'value="005eb8"' in page.text
    response = await admin.client.post(
        "/admin/categories/new",
        data=form(
            admin,
            name="Schools",
            slug="schools-work",
            description="Trauma-informed schools",
            colour="#AE2573",
            parent_id=str(parent["id"]),
            group_ids=["2"],
            allow_anonymous="1",
            default_kind="case_study",
            position="",
        ),
    )
    assert response.status_code == 303, response.text
    row = await pool.fetchrow("SELECT * FROM forum.categories WHERE slug = 'schools-work'")
    assert (row["name"], row["description"], row["colour"], row["parent_id"], list(row["group_ids"])) == (
        "Schools",
        "Trauma-informed schools",
        "ae2573",
        parent["id"],
        [2],
    )
    assert (row["allow_anonymous"], row["default_kind"], row["position"]) == (True, "case_study", 0)
    listed = await admin.client.get(response.headers["location"])
    assert "The category \u2018Schools\u2019 was created." in text_of(listed.text)
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log WHERE action = 'category.create'") == 2


async def test_form_shows_every_problem_at_once_and_keeps_values(admin, pool):
    """Empty name, bad colour, a group that does not exist, a parent that is a subcategory and a kind
    that is not a kind: all in the error summary together, each by its field, what was typed kept."""
    top = await created(admin, name="Practice")
    sub = await created(admin, name="Schools", parent_id=top["id"])
    response = await admin.client.post(
        "/admin/categories/new",
        data=form(
            admin,
            name="",
            description="Kept as typed",
            colour="reddish",
            parent_id=str(sub["id"]),
            group_ids=["99"],
            default_kind="poem",
            position="first",
        ),
    )
    assert response.status_code == 422
    html = response.text
    assert summary_links(html) == ["name", "colour", "parent_id", "group_ids", "default_kind", "position"]
    text = text_of(html)
    assert "Name is required" in text
    assert "Colour must be six characters from 0 to 9 and a to f" in text
    assert "Parent category is a subcategory itself" in text
    assert "Groups must be ids of existing groups" in text
    assert "Kind of new topics must be one of the kinds listed" in text
    assert 'value="reddish"' in html and "Kept as typed" in html
    assert await pool.fetchval("SELECT count(*) FROM forum.categories") == 2
    taken = await admin.client.post("/admin/categories/new", data=form(admin, name="Practice", colour="005eb8"))
    assert taken.status_code == 422 and "Web address is already used" in text_of(taken.text)


async def test_edit_from_the_page(admin, pool):
    """The edit form shows the category as it is, and saves each field changed."""
    parent = await created(admin, name="Practice")
    category = await created(admin, name="Research", colour="00a499")
    page = await admin.client.get(f"/admin/categories/{category['id']}/edit")
    assert 'value="Research"' in page.text and 'value="00a499"' in page.text
    assert f'<option value="{category["id"]}"' not in page.text  # not its own parent
    response = await admin.client.post(
        f"/admin/categories/{category['id']}/edit",
        data=form(
            admin,
            name="Research and evaluation",
            description="Evidence",
            colour="330072",
            parent_id=str(parent["id"]),
            group_ids=["4", "5"],
            allow_anonymous="1",
            default_kind="blog",
            position="3",
        ),
    )
    assert response.status_code == 303, response.text
    row = await pool.fetchrow("SELECT * FROM forum.categories WHERE id = $1", category["id"])
    assert (row["name"], row["description"], row["colour"], row["parent_id"]) == (
        "Research and evaluation",
        "Evidence",
        "330072",
        parent["id"],
    )
    assert (list(row["group_ids"]), row["allow_anonymous"], row["default_kind"], row["position"]) == (
        [4, 5],
        True,
        "blog",
        3,
    )
    top_again = await admin.client.post(
        f"/admin/categories/{category['id']}/edit",
        data=form(admin, name="Research", colour="330072", parent_id="", default_kind="blog", position="3"),
    )
    assert top_again.status_code == 303
    row = await pool.fetchrow(
        "SELECT parent_id, group_ids, allow_anonymous FROM forum.categories WHERE id = $1", category["id"]
    )
    assert (row["parent_id"], list(row["group_ids"]), row["allow_anonymous"]) == (None, [], False)
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log WHERE action = 'category.update'") == 2


async def test_edit_refuses_to_leave_a_subcategory_more_open(admin):
    """Narrowing a parent's groups past a subcategory's is refused, naming the subcategory; a parent with
    subcategories has no parent choice on its form."""
    parent = await created(admin, name="Circle", group_ids=[1, 2])
    await created(admin, name="Facilitators", parent_id=parent["id"], group_ids=[2])
    page = await admin.client.get(f"/admin/categories/{parent['id']}/edit")
    assert 'name="parent_id"' not in page.text and "stays a top-level category" in text_of(page.text)
    response = await admin.client.post(
        f"/admin/categories/{parent['id']}/edit",
        data=form(admin, name="Circle", colour="005eb8", group_ids=["1"], default_kind="discussion", position="0"),
    )
    assert response.status_code == 422
    assert "Groups would leave its subcategory \u2018Facilitators\u2019 readable" in text_of(response.text)
    assert 'value="1" checked' in response.text or re.search(r'value="1"\s+checked', response.text)


async def test_archive_and_bring_back_from_the_pages(admin, member_factory, client, pool):
    """The archive page says what archiving does; archived, the category and its topics stay readable
    with the note, nothing can be posted, it leaves the new-topic form and moves to 'Archived';
    bringing it back undoes that."""
    category = await created(admin, name="Old news")
    topic = await started(admin, category["id"], title="Still worth reading")
    page = await admin.client.get(f"/admin/categories/{category['id']}/archive")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "nobody can start a topic or reply in it" in text and "You can bring it back at any time." in text
    done = await admin.client.post(f"/admin/categories/{category['id']}/archive", data=form(admin))
    assert done.status_code == 303
    assert "\u2018Old news\u2019 is archived" in text_of((await admin.client.get(done.headers["location"])).text)
    member = await member_factory()
    shown = (await client.get("/c/old-news")).text
    assert ARCHIVED in text_of(shown) and "Still worth reading" in shown
    assert "Start a new topic" not in (await member.client.get("/c/old-news")).text
    topic_page = (await member.client.get(topic["url"])).text
    assert ARCHIVED in text_of(topic_page) and f'action="/t/{topic["id"]}/posts"' not in topic_page
    visitor_page = text_of((await client.get(topic["url"])).text)
    assert ARCHIVED in visitor_page and "create an account to reply" not in visitor_page
    listed = text_of((await client.get("/categories")).text)
    assert listed.index("Archived") < listed.index("Old news")
    new_topic = (await member.client.get(f"/new-topic?category={category['id']}")).text
    assert "Old news" not in new_topic
    sent = await member.client.post(
        "/new-topic", data=form(member, category_id=str(category["id"]), title="Sneaking one in", body="Hi")
    )
    assert sent.status_code == 422 and "Category is archived" in text_of(sent.text)
    reply = await member.client.post(f"/t/{topic['id']}/posts", data=form(member, body="A late reply"))
    assert reply.status_code == 422 and ARCHIVED in text_of(reply.text)
    back_page = await admin.client.get(f"/admin/categories/{category['id']}/unarchive")
    assert "start topics and reply in it again" in text_of(back_page.text)
    back = await admin.client.post(f"/admin/categories/{category['id']}/unarchive", data=form(admin))
    assert back.status_code == 303
    assert await pool.fetchval("SELECT archived_at FROM forum.categories WHERE id = $1", category["id"]) is None
    assert "Start a new topic" in (await member.client.get("/c/old-news")).text
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM forum.audit_log ORDER BY id")]
    assert actions == ["category.create", "category.archive", "category.unarchive"]


async def test_delete_page_explains_and_offers_archiving(admin, pool):
    """A category with topics (even deleted) cannot be deleted: the page says why and offers archiving,
    and its button is refused too; an empty category is deleted after the confirmation."""
    used = await created(admin, name="Used")
    topic = await started(admin, used["id"])
    await pool.execute("UPDATE forum.topics SET deleted_at = now() WHERE id = $1", topic["id"])
    page = await admin.client.get(f"/admin/categories/{used['id']}/delete")
    text = text_of(page.text)
    assert "\u2018Used\u2019 cannot be deleted" in text and "has topics: archive it instead" in text
    assert f'href="/admin/categories/{used["id"]}/archive"' in page.text
    refused = await admin.client.post(f"/admin/categories/{used['id']}/delete", data=form(admin))
    assert refused.status_code == 409 and "archive it instead" in text_of(refused.text)
    empty = await created(admin, name="Empty")
    confirm = await admin.client.get(f"/admin/categories/{empty['id']}/delete")
    assert "Delete \u2018Empty\u2019?" in text_of(confirm.text)
    gone = await admin.client.post(f"/admin/categories/{empty['id']}/delete", data=form(admin))
    assert gone.status_code == 303
    assert "The category was deleted." in text_of((await admin.client.get(gone.headers["location"])).text)
    assert await pool.fetchval("SELECT count(*) FROM forum.categories WHERE id = $1", empty["id"]) == 0
    assert (await admin.client.get(f"/admin/categories/{empty['id']}/delete")).status_code == 404


async def test_new_topic_form_preselects_the_default_kind(admin, member_factory):
    """Opened from a category, the new-topic form chooses that category and its default kind; the form
    lists subcategories after their parent and leaves out archived categories."""
    stories = await created(admin, name="Stories", default_kind="narrative")
    await created(admin, name="Letters", parent_id=stories["id"])
    old = await created(admin, name="Old")
    await admin.client.post(f"/api/categories/{old['id']}/archive")
    member = await member_factory()
    html = (await member.client.get(f"/new-topic?category={stories['id']}")).text
    assert re.search(rf'<option value="{stories["id"]}"\s+selected', html)
    assert re.search(r'value="narrative"\s+checked', html)
    assert "Stories\u00a0\u203a Letters" in unescape(html)
    assert ">Old<" not in html
    plain = (await member.client.get("/new-topic")).text
    assert re.search(r'value="discussion"\s+checked', plain)


async def test_category_page_shows_parent_groups_and_subcategories(admin, member_factory, client):
    """A subcategory's page names its parent; a private one says who may read it (groups by name to its
    members and staff); a parent lists its subcategories, only those the viewer may read."""
    parent = await created(admin, name="Practice")
    await created(admin, name="Open room", parent_id=parent["id"])
    await created(admin, name="Circle room", parent_id=parent["id"], group_ids=[6])
    insider = await member_factory(group_ids=(6,))
    page = text_of((await insider.client.get("/c/circle-room")).text)
    assert "A subcategory of Practice" in page and "you can as a member of Group 6" in page
    staff_page = text_of((await admin.client.get("/c/circle-room")).text)
    assert "Only members of Group 6 (and moderators and admins) can read it." in staff_page
    parent_page = text_of((await client.get("/c/practice")).text)
    assert "Open room" in parent_page and "Circle room" not in parent_page
    assert "Circle room" in text_of((await insider.client.get("/c/practice")).text)
    listed = text_of((await insider.client.get("/categories")).text)
    assert listed.index("Practice") < listed.index("Open room") and "Circle room" in listed


async def test_moving_a_topic_offers_only_categories_that_take_posts(admin, member_factory):
    """The topic's moderation page offers the categories a topic may move into (not archived ones),
    and the one it is in even when that one is archived, so a topic can be moved out."""
    moderator = await member_factory("mo", roles=("member", "moderator"))
    home, shelf, elsewhere = [await created(admin, name=n) for n in ("Home", "Old shelf", "Elsewhere")]
    topic = await started(admin, home["id"])
    assert (await admin.client.post(f"/api/categories/{shelf['id']}/archive")).status_code == 200
    page = (await moderator.client.get(f"/topics/{topic['id']}/moderate")).text
    assert f'value="{elsewhere["id"]}"' in page and f'value="{shelf["id"]}"' not in page
    assert (await admin.client.post(f"/api/categories/{home['id']}/archive")).status_code == 200
    page = (await moderator.client.get(f"/topics/{topic['id']}/moderate")).text
    assert f'value="{home["id"]}"' in page and f'value="{elsewhere["id"]}"' in page
