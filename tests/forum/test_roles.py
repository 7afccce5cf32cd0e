"""Roles (issue 14, point 2): admins make a member a moderator or an admin and back, with a reason
the member is told; each change is audited and evented; the member's open session and API token
carry the new role on their very next request; the last admin can never be demoted, also when two
admins try at the same moment."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from moderation_helpers import envelopes, events

from services.forum.accounts import roles
from shared import events as ev

REASON = "They have been a kind and steady presence in the peer support room"


async def put_role(who, member_id, role, reason=REASON):
    return await who.client.put(f"/api/admin/members/{member_id}/role", json={"role": role, "reason": reason})


async def stored_roles(pool, member_id):
    return list(await pool.fetchval("SELECT roles FROM forum.users WHERE id = $1", member_id))


async def test_an_admin_makes_a_member_a_moderator_audited_and_evented(admin, sam, pool):
    """PUT .../role stores ['member', 'moderator'], answers the member's standing, and writes the audit
    entry, user.role_changed and user.updated (with the new roles) in the same transaction."""
    response = await put_role(admin, sam.id, "moderator")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["member"]["role"] == "moderator" and body["member"]["roles"] == ["member", "moderator"]
    assert await stored_roles(pool, sam.id) == ["member", "moderator"]
    entry = await pool.fetchrow("SELECT * FROM forum.audit_log WHERE action = 'user.role_change'")
    assert (entry["actor_id"], entry["target_type"], entry["target_id"], entry["reason"]) == (
        admin.id,
        "user",
        sam.id,
        REASON,
    )
    assert entry["before"] == {"roles": ["member"]}
    assert entry["after"] == {"roles": ["member", "moderator"], "role": "moderator"}
    [changed] = await events(pool, "user.role_changed")
    assert changed == ev.UserRoleChanged(
        user_id=sam.id, roles=["member", "moderator"], previous_roles=["member"], reason=REASON
    )
    [envelope] = await envelopes(pool, "user.role_changed")
    assert envelope.actor_id == admin.id
    updated = [e for e in await events(pool, "user.updated") if e.user_id == sam.id]
    assert [e.roles for e in updated] == [["member", "moderator"]]
    assert body["role_history"][0]["after"]["role"] == "moderator"


async def test_admin_and_back_to_member(admin, sam, pool):
    """Moderator, then admin, then member again: each change stored, audited and evented."""
    for role, stored in (
        ("moderator", ["member", "moderator"]),
        ("admin", ["member", "admin"]),
        ("member", ["member"]),
    ):
        response = await put_role(admin, sam.id, role)
        assert response.status_code == 200, response.text
        assert await stored_roles(pool, sam.id) == stored
    rows = await pool.fetch("SELECT before, after FROM forum.audit_log WHERE action = 'user.role_change' ORDER BY id")
    assert [r["after"]["role"] for r in rows] == ["moderator", "admin", "member"]
    assert [r["before"]["roles"] for r in rows] == [["member"], ["member", "moderator"], ["member", "admin"]]
    assert [e.previous_roles for e in await events(pool, "user.role_changed")] == [
        ["member"],
        ["member", "moderator"],
        ["member", "admin"],
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "moderator"}, "reason"),
        ({"role": "moderator", "reason": None}, "reason"),
        ({"role": "moderator", "reason": "   "}, "reason"),
        ({"role": "moderator", "reason": "ok"}, "reason"),
        ({"role": "moderator", "reason": "x" * (roles.REASON_MAX + 1)}, "reason"),
        ({"role": "owner", "reason": REASON}, "role"),
        ({"reason": REASON}, "role"),
        ({"role": "moderator", "reason": REASON, "extra": 1}, "extra"),
    ],
)
async def test_a_reason_and_a_known_role_are_required(admin, sam, pool, body, field):
    """422 naming the field; nothing changes, nothing is recorded."""
    response = await admin.client.put(f"/api/admin/members/{sam.id}/role", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]
    assert await stored_roles(pool, sam.id) == ["member"]
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log") == 0
    assert await events(pool, "user.role_changed") == []


async def test_only_admins_change_roles(client, admin, moderator, sam, pool):
    """Visitors 401, members and moderators 403, a member that does not exist 404."""
    assert (
        await client.put(f"/api/admin/members/{sam.id}/role", json={"role": "admin", "reason": REASON})
    ).status_code == 401
    for who in (sam, moderator):
        response = await put_role(who, sam.id, "admin")
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert (await put_role(admin, 999_999, "moderator")).status_code == 404
    assert await stored_roles(pool, sam.id) == ["member"]


async def test_the_same_role_again_is_a_conflict(admin, moderator, pool):
    response = await put_role(admin, moderator.id, "moderator")
    assert response.status_code == 409 and response.json()["error"]["code"] == "same_role"
    assert "already a moderator" in response.json()["error"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log") == 0


async def test_the_last_admin_cannot_be_demoted(admin, member_factory, pool):
    """The only admin cannot step down (409, saying why); with a second admin they can."""
    for role in ("moderator", "member"):
        response = await put_role(admin, admin.id, role)
        assert response.status_code == 409 and response.json()["error"]["code"] == "last_admin"
        assert "only admin" in response.json()["error"]["message"]
    assert await stored_roles(pool, admin.id) == ["member", "admin"]
    other = await member_factory("bo", roles=("member", "admin"))
    assert (await put_role(admin, admin.id, "moderator")).status_code == 200
    assert (await put_role(other, other.id, "member")).status_code == 409
    assert await stored_roles(pool, other.id) == ["member", "admin"]


async def _hold_admin_rows(pool):
    """A transaction holding every admin row locked: role changes started now wait behind it."""
    conn = await pool.acquire()
    tx = conn.transaction()
    await tx.start()
    await conn.fetch("SELECT id FROM forum.users WHERE 'admin' = ANY(roles) FOR UPDATE")
    return conn, tx


async def _waiting_on_locks(pool, count):
    deadline = time.monotonic() + 10
    while True:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"only {waiting} of {count} requests waited on the lock"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("who_demotes", ["each_other", "themselves"])
async def test_two_admins_demoting_at_once_leave_one_admin(admin, member_factory, pool, who_demotes):
    """Two requests that meet in the database: exactly one succeeds, and an admin is left."""
    other = await member_factory("bo", roles=("member", "admin"))
    conn, tx = await _hold_admin_rows(pool)
    try:
        targets = (other.id, admin.id) if who_demotes == "each_other" else (admin.id, other.id)
        first = asyncio.create_task(put_role(admin, targets[0], "member"))
        second = asyncio.create_task(put_role(other, targets[1], "member"))
        await _waiting_on_locks(pool, 2)
    finally:
        await tx.rollback()
        await pool.release(conn)
    answers = [await first, await second]
    assert sorted(a.status_code for a in answers) in ([200, 403], [200, 409]), [a.text for a in answers]
    refused = next(a for a in answers if a.status_code != 200).json()["error"]
    assert refused["message"]
    assert await pool.fetchval("SELECT count(*) FROM forum.users WHERE 'admin' = ANY(roles)") == 1
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log WHERE action = 'user.role_change'") == 1


async def test_silenced_or_suspended_members_can_be_demoted_not_promoted(admin, member_factory, pool):
    """Promotion is refused with the reason; taking a role away is not."""
    sam = await member_factory("sam")
    await pool.execute(
        "UPDATE forum.users SET silenced_until = $2, silenced_reason = 'cooling off' WHERE id = $1",
        sam.id,
        datetime.now(UTC) + timedelta(days=1),
    )
    response = await put_role(admin, sam.id, "moderator")
    assert response.status_code == 409 and response.json()["error"]["code"] == "sanctioned"
    assert "silenced" in response.json()["error"]["message"]
    mo = await member_factory("mo2", roles=("member", "moderator"))
    await pool.execute(
        "UPDATE forum.users SET suspended_until = $2, suspended_reason = 'x' WHERE id = $1",
        mo.id,
        datetime.now(UTC) + timedelta(days=1),
    )
    assert (await put_role(admin, mo.id, "admin")).status_code == 409
    assert (await put_role(admin, mo.id, "member")).status_code == 200
    assert await stored_roles(pool, mo.id) == ["member"]


async def test_open_session_and_api_token_pick_up_the_new_role_at_once(app, admin, sam):
    """A moderator tool answers 403, then 200 on the very next request after promotion (cookie and
    Bearer token), then 403 again after demotion."""
    made = await sam.client.post("/api/me/tokens", json={"name": "script"})
    assert made.status_code == 201, made.text
    bearer = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {made.json()['token']}"},
    )
    async with bearer:
        for http in (sam.client, bearer):
            assert (await http.get("/api/review")).status_code == 403
        assert (await sam.client.get("/review")).status_code == 403
        assert (await put_role(admin, sam.id, "moderator")).status_code == 200
        for http in (sam.client, bearer):
            assert (await http.get("/api/review")).status_code == 200
            assert (await http.get("/api/admin/members")).status_code == 200
        assert (await sam.client.get("/review")).status_code == 200
        assert (await put_role(admin, sam.id, "member")).status_code == 200
        for http in (sam.client, bearer):
            assert (await http.get("/api/review")).status_code == 403
        assert (await sam.client.get("/review")).status_code == 403


# --- the page --------------------------------------------------------------------------------------


def csrf(member):
    return member.session.csrf


async def test_the_role_form_promotes_and_the_member_page_says_so(admin, sam, pool):
    """The admin's member page has the role form; sending it changes the role and says what happens."""
    page = await admin.client.get(f"/admin/members/{sam.id}")
    assert page.status_code == 200
    assert f'action="/admin/members/{sam.id}/role"' in page.text
    assert re.search(r'<input[^>]+value="member"[^>]+checked', page.text)
    response = await admin.client.post(
        f"/admin/members/{sam.id}/role", data={"csrf_token": csrf(admin), "role": "moderator", "reason": REASON}
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/members/{sam.id}?done=role#role-heading"
    assert await stored_roles(pool, sam.id) == ["member", "moderator"]
    shown = await admin.client.get(response.headers["location"])
    assert "Sam is now a moderator. They have been told, with your reason." in shown.text
    assert "Ada changed the role of Sam to moderator." in re.sub(r"<[^>]+>", "", shown.text)


async def test_the_role_form_needs_a_reason(admin, sam, pool):
    response = await admin.client.post(
        f"/admin/members/{sam.id}/role", data={"csrf_token": csrf(admin), "role": "admin", "reason": " "}
    )
    assert response.status_code == 422
    assert "There is a problem" in response.text and "Reason is required" in response.text
    assert await stored_roles(pool, sam.id) == ["member"]


async def test_the_role_form_refuses_without_csrf_and_for_non_admins(admin, moderator, sam, client, pool):
    assert (
        await admin.client.post(f"/admin/members/{sam.id}/role", data={"role": "admin", "reason": REASON})
    ).status_code == 403
    response = await client.post(f"/admin/members/{sam.id}/role", data={"role": "admin", "reason": REASON})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    for who in (moderator, sam):
        refused = await who.client.post(
            f"/admin/members/{sam.id}/role", data={"csrf_token": csrf(who), "role": "admin", "reason": REASON}
        )
        assert refused.status_code == 403
    assert await stored_roles(pool, sam.id) == ["member"]


async def test_moderators_see_the_role_but_no_role_form(moderator, sam):
    page = await moderator.client.get(f"/admin/members/{sam.id}")
    assert page.status_code == 200
    assert "/role" not in page.text and "Admins can change roles." in page.text


async def test_an_admin_stepping_down_confirms_first(admin, member_factory, pool):
    """Lowering your own role asks first (nothing changes); confirmed, it is done and said kindly."""
    await member_factory("bo", roles=("member", "admin"))
    asked = await admin.client.post(
        f"/admin/members/{admin.id}/role", data={"csrf_token": csrf(admin), "role": "member", "reason": REASON}
    )
    assert asked.status_code == 200 and "Step down as admin?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert await stored_roles(pool, admin.id) == ["member", "admin"]
    done = await admin.client.post(
        f"/admin/members/{admin.id}/role",
        data={"csrf_token": csrf(admin), "role": "member", "reason": REASON, "confirm": "yes"},
    )
    assert done.status_code == 200 and "You have stepped down" in done.text
    assert await stored_roles(pool, admin.id) == ["member"]
    assert (await admin.client.get("/admin/members")).status_code == 403


async def test_the_last_admin_is_told_on_the_page(admin, pool):
    response = await admin.client.post(
        f"/admin/members/{admin.id}/role",
        data={"csrf_token": csrf(admin), "role": "moderator", "reason": REASON, "confirm": "yes"},
    )
    assert response.status_code == 409
    assert "is the only admin" in response.text and "There is a problem" in response.text
    assert await stored_roles(pool, admin.id) == ["member", "admin"]
