"""Silencing and suspending: a reason the member sees, a duration, sessions and API tokens ended
at once on suspension, staff out of reach, events and audit entries; the member moderation page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from moderation_helpers import (
    audit_actions,
    events,
    reply,
)

from services.forum.accounts import passwords
from shared.sessions import SessionStore

SOON = (datetime.now(UTC) + timedelta(days=3)).isoformat()


async def test_a_suspended_members_sessions_stop_working_at_once(app, sam, moderator, redis, settings, pool):
    """Every open session and API token of the member fails on the very next request; login says why."""
    store = SessionStore(redis, settings.redis_prefix)
    second = await store.create(user_id=sam.id, username="sam", roles=["member"], group_ids=[])
    token = (await sam.client.post("/api/me/tokens", json={"name": "script"})).json()["token"]
    assert (await sam.client.get("/api/me")).status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as bot:
        bot.headers["Authorization"] = f"Bearer {token}"
        assert (await bot.get("/api/me")).status_code == 200

        response = await moderator.client.post(
            f"/api/users/{sam.id}/suspend", json={"until": SOON, "reason": "Repeated personal attacks"}
        )
        assert response.status_code == 200, response.text
        standing = response.json()
        assert standing["suspended_reason"] == "Repeated personal attacks" and standing["suspended_until"]

        assert (await sam.client.get("/api/me")).status_code == 401
        assert (await bot.get("/api/me")).status_code == 401
    assert await store.get(second.id) is None
    assert await pool.fetchval("SELECT count(*) FROM forum.api_tokens WHERE revoked_at IS NULL") == 0
    [suspended] = await events(pool, "user.suspended")
    assert (suspended.user_id, suspended.reason) == (sam.id, "Repeated personal attacks")
    entry = await pool.fetchrow("SELECT * FROM forum.audit_log WHERE action = 'user.suspend'")
    assert entry["target_id"] == sam.id and entry["before"] == {"until": None, "reason": None}


async def test_a_suspended_member_is_told_why_at_login(sam, moderator, client, pool):
    """Login answers 403 with the moderators' reason; lifting the suspension lets them in again."""
    await pool.execute(
        "UPDATE forum.users SET password_hash = $2 WHERE id = $1",
        sam.id,
        await passwords.hash_password("a long enough password"),
    )
    await moderator.client.post(f"/api/users/{sam.id}/suspend", json={"until": SOON, "reason": "A cooling-off week"})
    login = await client.post("/api/session", json={"login": "sam", "password": "a long enough password"})
    assert login.status_code == 403 and "A cooling-off week" in login.json()["error"]["message"]
    lifted = await moderator.client.delete(f"/api/users/{sam.id}/suspend")
    assert lifted.status_code == 200 and lifted.json()["suspended_until"] is None
    assert (
        await client.post("/api/session", json={"login": "sam", "password": "a long enough password"})
    ).status_code == 200
    [updated] = [e for e in await events(pool, "user.updated") if e.user_id == sam.id]
    assert updated.suspended_until is None
    assert await audit_actions(pool) == ["user.suspend", "user.unsuspend"]
    assert (await moderator.client.delete(f"/api/users/{sam.id}/suspend")).status_code == 409


async def test_a_silenced_member_can_read_but_not_post(sam, topic, moderator, pool):
    """Silenced: 403 with the reason and until on posting; reading works; lifting restores posting."""
    response = await moderator.client.post(
        f"/api/users/{sam.id}/silence", json={"until": SOON, "reason": "Please take a short break"}
    )
    assert response.status_code == 200 and response.json()["silenced_reason"] == "Please take a short break"
    refused = await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "hello"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "silenced"
    assert (
        "Please take a short break" in refused.json()["error"]["message"]
        and " UTC" in refused.json()["error"]["message"]
    )
    page = await sam.client.get(topic["url"])
    assert page.status_code == 200 and "Please take a short break" in page.text and 'name="body"' not in page.text
    assert (await sam.client.get("/api/me")).status_code == 200
    [silenced] = await events(pool, "user.silenced")
    assert silenced.user_id == sam.id and silenced.until
    assert (await moderator.client.delete(f"/api/users/{sam.id}/silence")).status_code == 200
    assert (await reply(sam, topic["id"], "Back again"))["status"] == "visible"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "2000-01-01", "reason": "x"}, "until"),
        ({"until": "next tuesday", "reason": "x"}, "until"),
        ({"until": "3999-01-01", "reason": "x"}, "until"),
        ({"until": SOON, "reason": ""}, "reason"),
        ({"until": SOON}, "reason"),
        ({"reason": "x"}, "until"),
        ({"until": SOON, "reason": "x" * 501}, "reason"),
    ],
)
async def test_sanction_input_errors(sam, moderator, body, field):
    response = await moderator.client.post(f"/api/users/{sam.id}/suspend", json=body)
    assert response.status_code == 422 and field in response.json()["error"]["fields"]


async def test_staff_and_nobody_cannot_be_sanctioned(moderator, admin):
    for target in (admin, moderator):
        response = await moderator.client.post(f"/api/users/{target.id}/silence", json={"until": SOON, "reason": "x"})
        assert response.status_code == 409 and response.json()["error"]["code"] == "is_staff"
    assert (
        await moderator.client.post("/api/users/999999/suspend", json={"until": SOON, "reason": "x"})
    ).status_code == 404
    assert (await moderator.client.delete("/api/users/999999/silence")).status_code == 404


async def test_member_record(sam, topic, moderator, member_factory):
    """GET /api/users/{id}/moderation: standing, counts, review items and audit entries about them."""
    post = await reply(sam, topic["id"])
    await (await member_factory()).client.post(f"/api/posts/{post['id']}/flags", json={"reason": "spam"})
    await moderator.client.post(f"/api/users/{sam.id}/silence", json={"until": SOON, "reason": "Break"})
    record = (await moderator.client.get(f"/api/users/{sam.id}/moderation")).json()
    assert record["user"]["username"] == "sam" and record["standing"]["silenced_reason"] == "Break"
    assert record["counts"] == {"published": 1, "hidden": 0, "rejected": 0, "flags_received": 1}
    assert [r["post"]["id"] for r in record["reviews"]] == [post["id"]]
    assert [e["action"] for e in record["audit"]] == ["user.silence"]
    assert (await moderator.client.get("/api/users/999999/moderation")).status_code == 404


async def test_member_page_suspends_and_lifts(sam, moderator, redis, settings):
    """The member page: suspend for a chosen duration with a reason; sessions end; lift it again."""
    page = await moderator.client.get("/review/members/sam")
    assert page.status_code == 200 and page.text.count("<h1") == 1 and "Silence or suspend" in page.text
    token = moderator.session.csrf
    missing = await moderator.client.post(
        "/review/members/sam/sanction", data={"action": "suspend", "duration": "1w", "csrf_token": token}
    )
    assert missing.status_code == 422 and "There is a problem" in missing.text
    bad = await moderator.client.post(
        "/review/members/sam/sanction",
        data={"action": "suspend", "duration": "forever", "reason": "x", "csrf_token": token},
    )
    assert bad.status_code == 422
    done = await moderator.client.post(
        "/review/members/sam/sanction",
        data={"action": "suspend", "duration": "1w", "reason": "Threats", "csrf_token": token},
    )
    assert done.status_code == 303 and done.headers["location"] == "/review/members/sam?done=suspend"
    assert (await sam.client.get("/api/me")).status_code == 401
    shown = (await moderator.client.get("/review/members/sam?done=suspend")).text
    assert "Threats" in shown and "End the suspension now" in shown
    lifted = await moderator.client.post(
        "/review/members/sam/sanction", data={"action": "unsuspend", "csrf_token": token}
    )
    assert lifted.status_code == 303
    assert "End the suspension now" not in (await moderator.client.get("/review/members/sam")).text
    assert (await moderator.client.get("/review/members/nobody-at-all")).status_code == 404
    no_csrf = await moderator.client.post("/review/members/sam/sanction", data={"action": "unsilence"})
    assert no_csrf.status_code == 403
