"""The audit log: append-only in the database, every action with who, what, target, reason,
before and after; the admin API with its filters and the admin page."""

from __future__ import annotations

import asyncpg
import pytest
from moderation_helpers import (
    reply,
)
from xss_corpus import PAYLOADS, assert_inert

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
    assert (await moderator.client.post(f"/api/posts/{post['id']}/restore", json={})).status_code == 409
    assert await pool.fetchval("SELECT count(*) FROM forum.audit_log") == 0


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


async def test_audit_log_is_for_admins(client, moderator, sam):
    assert (await client.get("/api/admin/audit-log")).status_code == 401
    assert (await sam.client.get("/api/admin/audit-log")).status_code == 403
    assert (await moderator.client.get("/api/admin/audit-log")).status_code == 403


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
    assert (await moderator.client.get("/admin/audit-log")).status_code == 403


async def test_audit_log_page_escapes_reasons(admin, pool):
    for payload in [p for p in PAYLOADS if "\x00" not in p][:40]:
        await write_entry(pool, admin.id, reason=payload)
    page = await admin.client.get("/admin/audit-log")
    assert page.status_code == 200
    assert_inert(page.text, page=True, allow_script_src=True)
