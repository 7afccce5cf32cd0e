"""The members' admin page and API (issue 14, point 6): staff find members by name, role, status
and join date (admins also by email), never see others' addresses as moderators, and read a
member's standing (posts, flags received, sanctions, appeals, role history) with its figures right."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from moderation_helpers import flag, new_category, new_topic, reply, review_of, settings_changed

SOON = (datetime.now(UTC) + timedelta(days=3)).isoformat()


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def found(who, query=""):
    response = await who.client.get("/api/admin/members" + query)
    assert response.status_code == 200, response.text
    return [m["username"] for m in response.json()["items"]]


@pytest.fixture
async def people(pool, admin, moderator, member_factory):
    """Members with different names, roles, states and join dates."""
    rowan = await member_factory("rowan")
    await pool.execute(
        "UPDATE forum.users SET display_name = 'Rowan Ashby', created_at = '2024-01-10' WHERE id = $1", rowan.id
    )
    quiet = await member_factory("quietfern")
    await pool.execute(
        "UPDATE forum.users SET display_name = 'Fern', email = 'fern@nhs.example', created_at = '2024-06-01', "
        "silenced_until = now() + interval '1 day', silenced_reason = 'a pause' WHERE id = $1",
        quiet.id,
    )
    gone = await member_factory("gale")
    await pool.execute(
        "UPDATE forum.users SET created_at = '2025-02-01', suspended_until = now() + interval '1 day' WHERE id = $1",
        gone.id,
    )
    new = await member_factory("newbie")
    await pool.execute(
        "UPDATE forum.users SET email_verified_at = NULL, created_at = '2025-03-01' WHERE id = $1", new.id
    )
    await pool.execute("UPDATE forum.users SET created_at = '2023-05-05' WHERE id = $1", admin.id)
    await pool.execute("UPDATE forum.users SET created_at = '2023-09-09' WHERE id = $1", moderator.id)
    return {"rowan": rowan, "quiet": quiet, "gone": gone, "new": new}


async def test_members_are_found_by_each_filter(admin, people):
    """Name (username or display name), email, role, status, join dates, and the three sorts."""
    assert await found(admin) == ["newbie", "gale", "quietfern", "rowan", "mo", "ada"]
    assert await found(admin, "?name=ashby") == ["rowan"]
    assert await found(admin, "?name=FERN") == ["quietfern"]
    assert await found(admin, "?name=row+ash") == ["rowan"]
    assert await found(admin, "?name=%25") == []  # wildcards are taken literally
    assert await found(admin, "?email=nhs.example") == ["quietfern"]
    assert await found(admin, "?email=ROWAN%40example") == ["rowan"]
    assert await found(admin, "?role=admin") == ["ada"]
    assert await found(admin, "?role=moderator") == ["mo"]
    assert await found(admin, "?role=member") == ["newbie", "gale", "quietfern", "rowan"]
    assert await found(admin, "?status=silenced") == ["quietfern"]
    assert await found(admin, "?status=suspended") == ["gale"]
    assert await found(admin, "?status=unconfirmed") == ["newbie"]
    assert await found(admin, "?status=active") == ["rowan", "mo", "ada"]
    assert await found(admin, "?joined_since=2024-01-10&joined_until=2024-06-01") == ["quietfern", "rowan"]
    assert await found(admin, "?joined_until=2023-12-31") == ["mo", "ada"]
    assert await found(admin, "?sort=oldest") == ["ada", "mo", "rowan", "quietfern", "gale", "newbie"]
    assert await found(admin, "?sort=name") == ["ada", "quietfern", "gale", "mo", "newbie", "rowan"]
    assert await found(admin, "?role=member&status=active&name=r") == ["rowan"]


async def test_the_list_is_paginated(admin, member_factory):
    for n in range(31):
        await member_factory(f"m{n:02d}")
    first = (await admin.client.get("/api/admin/members?sort=name")).json()
    assert len(first["items"]) == 30 and first["next"] == 2
    second = (await admin.client.get("/api/admin/members?sort=name&page=2")).json()
    assert [m["username"] for m in second["items"]] == ["m29", "m30"] and second["next"] is None  # and Ada
    page = await admin.client.get("/admin/members?sort=name&page=2")
    assert 'href="/admin/members?sort=name"' in page.text  # back to the first page, the filters kept


async def test_moderators_never_see_email_addresses(moderator, admin, people):
    """API: no `email` on others; page: no email column or address; searching by email is refused."""
    response = await moderator.client.get("/api/admin/members")
    others = [m for m in response.json()["items"] if m["username"] != "mo"]
    assert others and all("email" not in m for m in others)
    assert "@" not in str(others)
    standing = (await moderator.client.get(f"/api/admin/members/{people['quiet'].id}")).json()
    assert "email" not in standing["member"]
    for path in ("/admin/members", f"/admin/members/{people['quiet'].id}"):
        page = await moderator.client.get(path)
        assert page.status_code == 200
        assert "fern@nhs.example" not in page.text and "rowan@example.org" not in page.text
        assert "Email address" not in page.text
    refused = await moderator.client.get("/api/admin/members?email=fern")
    assert refused.status_code == 403
    page = await moderator.client.get("/admin/members?email=fern")
    assert page.status_code == 403 and "There is a problem" in page.text and "fern@" not in page.text
    assert (await admin.client.get("/api/admin/members?name=fern")).json()["items"][0]["email"] == "fern@nhs.example"
    admin_page = await admin.client.get("/admin/members")
    assert "fern@nhs.example" in admin_page.text


@pytest.mark.parametrize(
    "query",
    [
        "?role=owner",
        "?status=asleep",
        "?sort=shoe",
        "?joined_since=yesterday",
        "?joined_until=2025-02-30",
        "?joined_since=2025-03-02&joined_until=2025-03-01",
        "?page=0",
        "?page=x",
        "?name=" + "a" * 101,
        "?email=" + "a" * 255,
    ],
)
async def test_bad_filters_answer_400_with_the_problem(admin, query):
    api = await admin.client.get("/api/admin/members" + query)
    assert api.status_code == 400 and api.json()["error"]["code"] == "bad_request", api.text
    page = await admin.client.get("/admin/members" + query)
    assert page.status_code == 400
    assert "There is a problem" in page.text and page.text.count("<h1") == 1


async def test_the_page_keeps_filters_as_get_parameters(admin, people):
    """The form is a GET form; results show name, role, status and join date."""
    page = await admin.client.get("/admin/members?status=silenced&sort=name")
    assert page.status_code == 200
    assert '<form method="get" action="/admin/members"' in page.text
    assert '<option value="silenced" selected>' in page.text
    text = text_of(page.text)
    assert "Fern @quietfern" in text and "Silenced" in text and "1 June 2024" in text
    assert "Rowan" not in text
    assert f'href="/admin/members/{people["quiet"].id}"' in page.text
    assert "No members match" in (await admin.client.get("/admin/members?name=nobody")).text


# --- a member's standing -------------------------------------------------------------------------------------


async def _act(moderator, review_id, action, reason=None):
    body = {"action": action} | ({"reason": reason} if reason else {})
    response = await moderator.client.post(f"/api/review/{review_id}", json=body)
    assert response.status_code == 200, response.text


@pytest.fixture
async def history(app, pool, admin, moderator, sam, member_factory, roomy):
    """Sam's story: five posts, flags upheld, set aside and for safeguarding, two appeals (one
    upheld, one not), one waiting post, an anonymous post (never counted), a silence lifted and a
    suspension now."""
    category = await new_category(admin, "Peer support", allow_anonymous=True)
    topic = await new_topic(admin, category["id"])
    upheld, set_aside, worried, hidden = [await reply(sam, topic["id"], f"Reply {n}") for n in range(4)]
    bea, cal, dee = [await member_factory(name) for name in ("bea", "cal", "dee")]
    assert (await flag(bea, upheld["id"])).status_code == 201
    await _act(moderator, (await review_of(pool, upheld["id"], "flagged_post"))["id"], "hide", "Unkind words")
    assert (await flag(cal, set_aside["id"], "spam")).status_code == 201
    await _act(moderator, (await review_of(pool, set_aside["id"], "flagged_post"))["id"], "approve")
    assert (await flag(dee, worried["id"], "safeguarding")).status_code == 201
    hide = await moderator.client.post(f"/api/posts/{hidden['id']}/hide", json={"reason": "Off topic"})
    assert hide.status_code == 200, hide.text
    for post, action, reason in ((upheld, "approve", None), (hidden, "reject", "Still off topic")):
        appealed = await sam.client.post(f"/api/posts/{post['id']}/appeal", json={"text": "Please look again"})
        assert appealed.status_code == 201, appealed.text
        await _act(moderator, (await review_of(pool, post["id"], "appeal"))["id"], action, reason)
    anonymous = await reply(sam, topic["id"], "Said anonymously", anonymous=True)
    assert (await flag(bea, anonymous["id"])).status_code == 201
    with settings_changed(app, new_member_review_posts=100):
        await reply(sam, topic["id"], "Waiting for approval", status=202)
    silenced = await moderator.client.post(f"/api/users/{sam.id}/silence", json={"until": SOON, "reason": "A pause"})
    assert silenced.status_code == 200
    assert (await moderator.client.delete(f"/api/users/{sam.id}/silence")).status_code == 200
    suspended = await moderator.client.post(f"/api/users/{sam.id}/suspend", json={"until": SOON, "reason": "A break"})
    assert suspended.status_code == 200
    return {"topic": topic, "upheld": upheld, "hidden": hidden}


async def test_a_members_standing_has_the_right_figures(moderator, sam, history):
    """Posts, flags (upheld, set aside, safeguarding apart), sanctions past and present, appeals."""
    response = await moderator.client.get(f"/api/admin/members/{sam.id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["member"]["status"] == "suspended" and body["member"]["suspended"]["reason"] == "A break"
    assert body["member"]["silenced"] is None
    assert body["posts"] == {"published": 4, "hidden": 1, "waiting": 1, "not_published": 0, "deleted": 0}
    assert body["flags"] == {"received": 2, "upheld": 1, "set_aside": 1, "waiting": 0, "safeguarding": 1}
    assert [e["action"] for e in body["sanctions"]] == ["user.suspend", "user.unsilence", "user.silence"]
    assert body["sanctions"][0]["reason"] == "A break"
    appeals = body["appeals"]
    assert (appeals["total"], appeals["upheld"], appeals["kept"], appeals["waiting"]) == (2, 1, 1, 0)
    assert [(a["post_id"], a["status"]) for a in appeals["items"]] == [
        (history["hidden"]["id"], "rejected"),
        (history["upheld"]["id"], "approved"),
    ]
    assert appeals["items"][0]["reason"] == "Still off topic" and appeals["items"][0]["url"].startswith("/p/")
    assert body["links"] == {
        "page": f"/admin/members/{sam.id}",
        "profile": "/u/sam",
        "posts": "/search?q=%40sam",
        "review": "/review/members/sam",
        "audit_log": f"/admin/audit-log?target_type=user&target_id={sam.id}",
    }
    assert "role_history" not in body, "role changes are for admins"
    assert "Said anonymously" not in response.text


async def test_the_member_page_shows_the_standing_with_links(moderator, admin, sam, history):
    page = await moderator.client.get(f"/admin/members/{sam.id}")
    assert page.status_code == 200
    text = text_of(page.text)
    for words in (
        "Sam (@sam)",
        "Suspended until",
        "Reason: “A break”",
        "Published 4",
        "Hidden by moderators now 1",
        "Waiting for approval 1",
        "Flags received 2",
        "Upheld by a moderator 1",
        "Set aside 1",
        "Safeguarding flags 1",
        "Mo silenced Sam until",
        "Mo ended the silence of Sam",
        "2 appeals: 1 upheld, 1 where the decision was kept, 0 waiting.",
        "Decision kept. Reason: “Still off topic”",
        "Upheld: the post was restored",
    ):
        assert words in text, words
    for href in (
        "/search?q=%40sam",
        "/review/members/sam",
        f"/admin/audit-log?target_type=user&amp;target_id={sam.id}",
    ):
        assert f'href="{href}"' in page.text, href
    assert "Role changes" not in text
    assert "&lt;time" not in page.text and "Joined" in text
    assert "Role changes" in text_of((await admin.client.get(f"/admin/members/{sam.id}")).text)


async def test_the_role_history_is_on_the_admins_page(admin, sam):
    await admin.client.put(f"/api/admin/members/{sam.id}/role", json={"role": "moderator", "reason": "Trusted by all"})
    await admin.client.put(f"/api/admin/members/{sam.id}/role", json={"role": "member", "reason": "Asked to step back"})
    body = (await admin.client.get(f"/api/admin/members/{sam.id}")).json()
    assert [e["after"]["role"] for e in body["role_history"]] == ["member", "moderator"]
    text = text_of((await admin.client.get(f"/admin/members/{sam.id}")).text)
    assert "Ada changed the role of Sam to member. Reason: “Asked to step back”." in text
    assert "Ada changed the role of Sam to moderator. Reason: “Trusted by all”." in text
