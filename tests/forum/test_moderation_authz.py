"""Who may do what: every moderator and admin endpoint and page answers 401 to visitors and 403
to members (and admin ones 403 to moderators); the members' admin pages send visitors to log in;
no member can see another's hidden post, waiting post or appeal."""

from __future__ import annotations

import re

import pytest
from moderation_helpers import (
    reply,
    settings_changed,
)

from services.forum import app as forum_app

# {post}, {user}, {topic}, {review} and {username} are filled in per test.
STAFF_API = [
    ("GET", "/api/review", None),
    ("GET", "/api/review/{review}", None),
    ("POST", "/api/review/{review}", {"action": "approve"}),
    ("GET", "/api/review/counts", None),
    ("POST", "/api/review/{review}/pickup", {}),
    ("DELETE", "/api/review/{review}/pickup", None),
    ("POST", "/api/posts/{post}/hide", {"reason": "x"}),
    ("POST", "/api/posts/{post}/restore", {}),
    ("POST", "/api/posts/{post}/reveal-author", None),
    ("POST", "/api/users/{user}/suspend", {"until": "2999-01-01", "reason": "x"}),
    ("DELETE", "/api/users/{user}/suspend", None),
    ("POST", "/api/users/{user}/silence", {"until": "2999-01-01", "reason": "x"}),
    ("DELETE", "/api/users/{user}/silence", None),
    ("GET", "/api/users/{user}/moderation", None),
    ("POST", "/api/topics/{topic}/moderate", {"closed": True}),
    ("GET", "/api/admin/audit-log", None),
]
ADMIN_API = [
    ("GET", "/api/admin/watched-words", None),
    ("POST", "/api/admin/watched-words", {"word": "x", "action": "flag"}),
    ("DELETE", "/api/admin/watched-words/1", None),
    ("GET", "/api/admin/safeguarding-phrases", None),
    ("POST", "/api/admin/safeguarding-phrases", {"phrase": "x"}),
    ("DELETE", "/api/admin/safeguarding-phrases/overdose", None),
]
STAFF_PAGES = [
    ("GET", "/review"),
    ("POST", "/review/{review}"),
    ("GET", "/review/{review}"),
    ("GET", "/review/{review}/pickup"),
    ("POST", "/review/{review}/pickup"),
    ("GET", "/posts/{post}/moderate"),
    ("POST", "/posts/{post}/moderate"),
    ("POST", "/posts/{post}/reveal-author"),
    ("GET", "/topics/{topic}/moderate"),
    ("POST", "/topics/{topic}/moderate"),
    ("GET", "/review/members/{username}"),
    ("POST", "/review/members/{username}/sanction"),
    ("GET", "/admin/audit-log"),
]
ADMIN_PAGES = [
    ("GET", "/admin/watched-words"),
    ("POST", "/admin/watched-words"),
    ("POST", "/admin/watched-words/1/delete"),
    ("GET", "/admin/safeguarding"),
    ("POST", "/admin/safeguarding"),
]
# The members' admin tools (tag "members"): staff read, admins change roles.
MEMBERS_STAFF_API = [
    ("GET", "/api/admin/members", None),
    ("GET", "/api/admin/members/{user}", None),
]
MEMBERS_ADMIN_API = [
    ("PUT", "/api/admin/members/{user}/role", {"role": "moderator", "reason": "Trusted and kind"}),
    ("PUT", "/api/admin/members/{user}/duties", {"safeguarding_lead": True, "reason": "Leads safeguarding"}),
]
# Visitors are sent to log in (303), members get 403; the role form is for admins.
MEMBERS_STAFF_PAGES = [("GET", "/admin/members"), ("GET", "/admin/members/{user}")]
MEMBERS_ADMIN_PAGES = [("POST", "/admin/members/{user}/role"), ("POST", "/admin/members/{user}/duties")]


@pytest.fixture
async def targets(sam, topic, member_factory, pool):
    """Ids to fill the paths with: a flagged post, its item, its author, the topic."""
    post = await reply(sam, topic["id"], "Something to moderate")
    bea = await member_factory("bea")
    response = await bea.client.post(f"/api/posts/{post['id']}/flags", json={"reason": "spam"})
    return {
        "post": post["id"],
        "user": sam.id,
        "topic": topic["id"],
        "review": response.json()["review_id"],
        "username": "sam",
    }


async def call(client, method, path, body=None, *, form=False):
    if form:
        return await client.request(method, path, data={"csrf_token": "not-checked-before-the-role"})
    return await client.request(method, path, json=body) if body is not None else await client.request(method, path)


async def test_staff_api_is_refused_to_visitors_and_members(client, targets, sam, member_factory, pool):
    member = await member_factory("plain")
    entries = await pool.fetchval("SELECT count(*) FROM forum.audit_log")  # making the topic's category is one
    for method, path, body in STAFF_API:
        url = path.format(**targets)
        visitor = await call(client, method, url, body)
        assert visitor.status_code == 401, (method, url, visitor.text)
        assert visitor.json()["error"]["code"] == "unauthorized"
        for who in (member, sam):
            refused = await call(who.client, method, url, body)
            assert refused.status_code == 403, (method, url, refused.text)
            assert refused.json()["error"]["code"] == "forbidden"
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log") == entries
    assert await pool.fetchval("SELECT status FROM forum.posts WHERE id = $1", targets["post"]) == "visible"


async def test_admin_api_is_refused_to_visitors_members_and_moderators(client, targets, moderator, member_factory):
    member = await member_factory("plain")
    for method, path, body in ADMIN_API + MEMBERS_ADMIN_API:
        url = path.format(**targets)
        assert (await call(client, method, url, body)).status_code == 401, (method, url)
        for who in (member, moderator):
            assert (await call(who.client, method, url, body)).status_code == 403, (method, url, who.username)


async def test_staff_and_admin_pages_answer_401_and_403(client, targets, moderator, member_factory):
    member = await member_factory("plain")
    for method, path in STAFF_PAGES + ADMIN_PAGES:
        url = path.format(**targets)
        visitor = await call(client, method, url, form=method == "POST")
        assert visitor.status_code == 401, (method, url, visitor.status_code)
        assert "Please log in" in visitor.text
        refused = await call(member.client, method, url, form=method == "POST")
        assert refused.status_code == 403, (method, url, refused.status_code)
    for method, path in ADMIN_PAGES:
        assert (
            await call(moderator.client, method, path.format(**targets), form=method == "POST")
        ).status_code == 403, path


async def test_members_api_is_refused_to_visitors_and_members(client, targets, sam, member_factory, pool):
    """The members' admin API: 401 for visitors, 403 for members (the member it is about too)."""
    member = await member_factory("plain")
    for method, path, body in MEMBERS_STAFF_API + MEMBERS_ADMIN_API:
        url = path.format(**targets)
        assert (await call(client, method, url, body)).status_code == 401, (method, url)
        for who in (member, sam):
            refused = await call(who.client, method, url, body)
            assert refused.status_code == 403, (method, url, refused.text)
    assert await pool.fetchval("SELECT roles FROM forum.users WHERE id = $1", sam.id) == ["member"]


async def test_members_pages_send_visitors_to_log_in_and_refuse_members(client, targets, moderator, member_factory):
    """303 to /login for visitors (before any form is read), 403 for members; the role form 403 for moderators."""
    member = await member_factory("plain")
    for method, path in MEMBERS_STAFF_PAGES + MEMBERS_ADMIN_PAGES:
        url = path.format(**targets)
        visitor = await call(client, method, url, form=method == "POST")
        assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login"), (method, url)
        refused = await call(member.client, method, url, form=method == "POST")
        assert refused.status_code == 403, (method, url, refused.status_code)
    for method, path in MEMBERS_STAFF_PAGES:
        assert (await moderator.client.get(path.format(**targets))).status_code == 200, path
    for method, path in MEMBERS_ADMIN_PAGES:
        assert (await call(moderator.client, method, path.format(**targets), form=True)).status_code == 403, path


async def test_members_of_no_one_are_404(admin, moderator):
    """An id that names no member: 404 on the API and the page."""
    for who in (admin, moderator):
        assert (await who.client.get("/api/admin/members/999999")).status_code == 404
        assert (await who.client.get("/admin/members/999999")).status_code == 404
        assert (await who.client.get("/admin/members/0")).status_code == 404


def _shape(path: str) -> str:
    """A path with every parameter (or the sample values above) as {x}."""
    return re.sub(
        r"\{[a-z_]+(?::int)?\}|/1(?=/|$)|/overdose$", lambda m: "/{x}" if m.group(0).startswith("/") else "{x}", path
    )


async def test_every_moderation_endpoint_is_in_the_matrix():
    """A new moderation endpoint must be added to the lists above (or to the few any member may use)."""
    for_members = {
        ("POST", "/api/posts/{x}/flags"),
        ("POST", "/api/posts/{x}/appeal"),
        ("GET", "/api/posts/{x}/appeal"),
        ("GET", "/api/support"),
    }
    declared = {
        (op.method, _shape(op.path))
        for router in forum_app.ROUTERS
        for op in router.operations
        if router.tag in ("moderation", "members") or op.path.endswith("/moderate")
    }
    every = STAFF_API + ADMIN_API + MEMBERS_STAFF_API + MEMBERS_ADMIN_API
    listed = {(method, _shape(path)) for method, path, _ in every}
    assert declared - for_members == listed


async def test_no_member_sees_anothers_hidden_or_waiting_post_or_appeal(
    app, sam, topic, moderator, member_factory, client
):
    """Hidden: placeholder only. Waiting: 404 everywhere. Appeal: 404. Their author and moderators see them."""
    bea = await member_factory("bea")
    hidden = await reply(sam, topic["id"], "Secret hidden words")
    await moderator.client.post(f"/api/posts/{hidden['id']}/hide", json={"reason": "Private reason"})
    await sam.client.post(f"/api/posts/{hidden['id']}/appeal", json={"text": "My private appeal"})
    with settings_changed(app, new_member_review_posts=10):
        waiting = await reply(sam, topic["id"], "Secret waiting words", status=202)
    for who in (client, bea.client):
        shown = (await who.get(f"/api/posts/{hidden['id']}")).json()
        assert shown["raw"] == "" and shown["cooked"] == "" and "moderation_reason" not in shown
        assert (await who.get(f"/api/posts/{hidden['id']}/revisions")).status_code == 404
        assert (await who.get(f"/api/posts/{waiting['id']}")).status_code == 404
        assert (await who.get(f"/p/{waiting['id']}")).status_code == 404
        page = (await who.get(topic["url"])).text
        topic_json = (await who.get(f"/api/topics/{topic['id']}")).text
        for secret in ("Secret hidden words", "Secret waiting words", "Private reason", "My private appeal"):
            assert secret not in page and secret not in topic_json, secret
    assert (await client.get(f"/api/posts/{hidden['id']}/appeal")).status_code == 401
    assert (await bea.client.get(f"/api/posts/{hidden['id']}/appeal")).status_code == 404
    assert (await bea.client.get(f"/posts/{hidden['id']}/appeal")).status_code == 404
    assert (await bea.client.get(f"/posts/{waiting['id']}/flag")).status_code == 404
    own = (await sam.client.get(topic["url"])).text
    assert all(s in own for s in ("Secret hidden words", "Secret waiting words", "Private reason"))
    assert (await sam.client.get(f"/api/posts/{hidden['id']}/appeal")).json()["text"] == "My private appeal"
    staff = (await moderator.client.get(topic["url"])).text
    assert "Secret hidden words" in staff and "Secret waiting words" in staff
