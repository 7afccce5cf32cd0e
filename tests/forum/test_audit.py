"""The audit log: append-only in the database, every action with who, what, target, reason,
before and after; the admin API with its filters and the admin page."""

from __future__ import annotations

import asyncpg
import pytest
from moderation_helpers import (
    reply,
)
from xss_corpus import PAYLOADS, assert_inert

from services.forum import access
from services.forum.moderation import audit


async def write_entry(pool, actor_id, action="user.silence", target_type="user", target_id=1, reason="why"):
    async with pool.acquire() as conn:
        return await audit.record(
            conn,
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            reason=reason,
            before={"a": 1},
            after={"a": 2},
        )


async def test_entries_cannot_be_changed_or_removed(admin, pool):
    """UPDATE and DELETE are refused by the database itself, for every row and by anyone."""
    entry_id = await write_entry(pool, admin.id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute("UPDATE forum.audit_log SET reason = 'rewritten' WHERE id = $1", entry_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute("DELETE FROM forum.audit_log WHERE id = $1", entry_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("DELETE FROM forum.users WHERE id = $1", admin.id)  # nor by removing who acted
    assert await pool.fetchval("SELECT reason FROM forum.audit_log WHERE id = $1", entry_id) == "why"


async def test_an_action_that_fails_leaves_no_entry(sam, topic, moderator, pool):
    """Entries are written in the action's transaction: a refused action records nothing."""
    post = await reply(sam, topic["id"])
    entries = await pool.fetchval("SELECT count(*) FROM forum.audit_log")  # making the topic's category is one
    assert (await moderator.client.post(f"/api/posts/{post['id']}/restore", json={})).status_code == 409
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log") == entries


async def test_audit_log_api_lists_newest_first_with_filters(admin, moderator, sam, pool):
    """GET /api/admin/audit-log: who, what, target, reason, before and after; each filter narrows it."""
    first = await write_entry(pool, admin.id, "user.silence", "user", sam.id, "first")
    second = await write_entry(pool, moderator.id, "post.hide", "post", 7, "second")
    response = await admin.client.get("/api/admin/audit-log")
    assert response.status_code == 200
    body = response.json()
    assert [e["id"] for e in body["items"]] == [second, first] and body["next"] is None
    entry = body["items"][1]
    assert entry["actor"] == {"id": admin.id, "username": "ada", "display_name": "Ada"}
    assert (entry["action"], entry["target_type"], entry["target_id"], entry["reason"]) == (
        "user.silence",
        "user",
        sam.id,
        "first",
    )
    assert (entry["before"], entry["after"]) == ({"a": 1}, {"a": 2}) and entry["at"]
    for query, expected in [
        ("?actor=mo", [second]),
        ("?actor=@ADA", [first]),
        ("?action=post.hide", [second]),
        ("?target_type=user", [first]),
        ("?target_type=post&target_id=7", [second]),
        ("?target_id=8", []),
        ("?since=2000-01-01&until=2999-12-31", [second, first]),
        ("?until=2000-01-01", []),
        ("?actor=nobody", []),
    ]:
        found = [e["id"] for e in (await admin.client.get("/api/admin/audit-log" + query)).json()["items"]]
        assert found == expected, query


@pytest.mark.parametrize(
    "query",
    [
        "?action=delete_everything",
        "?target_type=planet",
        "?target_id=x",
        "?since=yesterday",
        "?since=2025-02-30",
        "?since=2025-03-02&until=2025-03-01",
        "?page=0",
        "?actor=" + "a" * 101,
    ],
)
async def test_audit_log_filters_refuse_bad_values(admin, query):
    response = await admin.client.get("/api/admin/audit-log" + query)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


async def test_audit_log_is_for_staff(client, moderator, sam):
    assert (await client.get("/api/admin/audit-log")).status_code == 401
    assert (await sam.client.get("/api/admin/audit-log")).status_code == 403
    assert (await moderator.client.get("/api/admin/audit-log")).status_code == 200


async def test_audit_log_pages(admin, pool):
    """Fifty entries a page, then `next`."""
    for n in range(51):
        await write_entry(pool, admin.id, reason=f"r{n}")
    first = (await admin.client.get("/api/admin/audit-log")).json()
    assert len(first["items"]) == 50 and first["next"] == 2
    second = (await admin.client.get("/api/admin/audit-log?page=2")).json()
    assert [e["reason"] for e in second["items"]] == ["r0"] and second["next"] is None


async def test_audit_log_page(admin, moderator, client, pool):
    """The admin page: filters in a GET form, a table of entries; 400 with the problem for a bad filter."""
    await write_entry(pool, moderator.id, "post.hide", "post", 3, "Named a member")
    page = await admin.client.get("/admin/audit-log?action=post.hide")
    assert page.status_code == 200
    assert page.text.count("<h1") == 1 and "Named a member" in page.text
    assert 'href="/p/3"' not in page.text  # post 3 does not exist: named in words, not linked
    assert '<option value="post.hide" selected>Post hidden</option>' in page.text
    bad = await admin.client.get("/admin/audit-log?since=soon")
    assert bad.status_code == 400 and "There is a problem" in bad.text
    assert (await client.get("/admin/audit-log")).status_code == 401
    assert (await moderator.client.get("/admin/audit-log")).status_code == 200


async def test_audit_log_page_escapes_reasons(admin, pool):
    for payload in [p for p in PAYLOADS if "\x00" not in p][:40]:
        await write_entry(pool, admin.id, reason=payload)
    page = await admin.client.get("/admin/audit-log")
    assert page.status_code == 200
    assert_inert(page.text, page=True, allow_script_src=True)


# --- what moderators see (issue 14, point 2) ---------------------------------------------------------------

ADMIN_ONLY = [a for a in audit.ACTIONS if not a.startswith(("review.", "post.", "topic.", "signup.", "invitation."))]
ADMIN_ONLY = [a for a in ADMIN_ONLY if a not in ("user.silence", "user.unsilence", "user.suspend", "user.unsuspend")]


async def test_which_actions_moderators_see_is_decided_once_and_sql_agrees(pool, admin, moderator, sam):
    """access.audit_action_visible and access.AUDIT_VISIBLE_SQL agree, for every action and viewer."""
    assert "user.role_change" in ADMIN_ONLY and "setting.change" in ADMIN_ONLY and "watched_word.add" in ADMIN_ONLY
    assert "user.silence" not in ADMIN_ONLY and "invitation.send" not in ADMIN_ONLY
    actions = [*audit.ACTIONS, "something.new"]
    visible = access.AUDIT_VISIBLE_SQL.format(admin="$1", staff="$2")
    sql = f"SELECT a.action FROM unnest($3::text[]) AS a(action) WHERE {visible}"
    for who in (None, sam.session, moderator.session, admin.session):
        in_sql = {row["action"] for row in await pool.fetch(sql, *access.audit_sql_params(who), actions)}
        assert in_sql == {a for a in actions if access.audit_action_visible(who, a)}, who
    assert not access.audit_action_visible(moderator.session, "something.new"), "unknown actions are for admins"
    assert audit.visible_actions(moderator.session) == [a for a in audit.ACTIONS if a not in ADMIN_ONLY]
    assert audit.visible_actions(admin.session) == list(audit.ACTIONS)
    assert "setting" not in audit.visible_target_types(moderator.session)
    assert "setting" in audit.visible_target_types(admin.session)


async def _one_of_each(pool, admin_id):
    for action in audit.ACTIONS:
        noun = action.split(".", 1)[0]
        kind = {"review": "reviewable", "signup": "user"}.get(noun, noun)
        await write_entry(pool, admin_id, action, kind, 5, f"because {action}")


async def test_moderators_read_moderation_entries_and_not_admin_ones(admin, moderator, pool):
    """The API: moderators get every moderation entry and none of the admins'; filtering by an
    admin-only action finds nothing (200, not an error); admins get everything."""
    await _one_of_each(pool, admin.id)
    seen = [e["action"] for e in (await moderator.client.get("/api/admin/audit-log")).json()["items"]]
    assert sorted(seen) == sorted(a for a in audit.ACTIONS if a not in ADMIN_ONLY)
    for action in ADMIN_ONLY:
        response = await moderator.client.get(f"/api/admin/audit-log?action={action}")
        assert response.status_code == 200 and response.json() == {"items": [], "next": None}, action
    assert (await moderator.client.get("/api/admin/audit-log?target_type=setting")).json()["items"] == []
    everything = [e["action"] for e in (await admin.client.get("/api/admin/audit-log")).json()["items"]]
    assert sorted(everything) == sorted(audit.ACTIONS)
    assert [
        e["action"] for e in (await admin.client.get("/api/admin/audit-log?action=setting.change")).json()["items"]
    ] == ["setting.change"]


async def test_the_audit_log_page_shows_moderators_moderation_only(admin, moderator, pool):
    """The page: moderators see moderation entries, a filter offering only those, and no admin entry
    even when they ask for one by its name."""
    await _one_of_each(pool, admin.id)
    page = await moderator.client.get("/admin/audit-log")
    assert page.status_code == 200
    assert "because user.silence" in page.text and "because review.approve" in page.text
    for action in ADMIN_ONLY:
        assert f"because {action}<" not in page.text and f"because {action}&" not in page.text, action
        assert f'<option value="{action}"' not in page.text, action
    assert '<option value="user.suspend"' in page.text
    asked = await moderator.client.get("/admin/audit-log?action=user.role_change")
    assert (
        asked.status_code == 200 and "No entries match" in asked.text and "because user.role_change" not in asked.text
    )
    admins = await admin.client.get("/admin/audit-log")
    assert '<option value="user.role_change"' in admins.text and "because setting.change" in admins.text


async def test_entries_about_a_member_leave_out_admin_actions_for_moderators(admin, moderator, sam, pool):
    """A member's entries: moderators get moderation ones only, admins everything; the member page shows the same."""
    await write_entry(pool, admin.id, "user.silence", "user", sam.id, "silenced")
    await write_entry(pool, admin.id, "user.role_change", "user", sam.id, "promoted")
    async with pool.acquire() as conn:
        rows = await audit.entries_about_member(conn, moderator.session, sam.id)
        assert [r["action"] for r in rows] == ["user.silence"]
        rows = await audit.entries_about_member(conn, admin.session, sam.id)
        assert [r["action"] for r in rows] == ["user.role_change", "user.silence"]
    for who, seen in ((moderator, ["user.silence"]), (admin, ["user.role_change", "user.silence"])):
        record = (await who.client.get(f"/api/users/{sam.id}/moderation")).json()
        assert [entry["action"] for entry in record["audit"]] == seen
