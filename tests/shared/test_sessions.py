"""Sessions and API tokens in Redis: create, read, revoke, and refresh after a change."""

from __future__ import annotations

import pytest

from shared.sessions import SESSION_TTL_S, Session, SessionStore, anonymous_audiences, csrf_ok, token_digest


@pytest.fixture
def sessions(redis, settings) -> SessionStore:
    return SessionStore(redis, settings.redis_prefix)


async def login(sessions: SessionStore, user_id: int = 1, roles: list[str] | None = None) -> Session:
    return await sessions.create(user_id=user_id, username=f"user{user_id}", roles=roles or [], group_ids=[2])


async def test_created_session_is_read_back_and_expires(sessions, redis, settings):
    """A new session reads back equal, under the run's prefix, with the session lifetime as its TTL."""
    session = await login(sessions, roles=["member"])
    assert await sessions.get(session.id) == session
    assert len(session.id) >= 40 and session.csrf
    ttl = await redis.ttl(f"{settings.redis_prefix}session:{session.id}")
    assert 0 < ttl <= SESSION_TTL_S


async def test_unknown_or_malformed_session_ids_read_as_none(sessions):
    """A missing, unknown or over-long session id is no session."""
    await login(sessions)
    for session_id in (None, "", "unknown", "x" * 101):
        assert await sessions.get(session_id) is None


async def test_delete_ends_one_session_only(sessions):
    """Logging out ends that session; the user's other sessions stay."""
    phone, laptop = await login(sessions), await login(sessions)
    await sessions.delete(phone)
    assert await sessions.get(phone.id) is None
    assert await sessions.get(laptop.id) == laptop


async def test_delete_all_ends_every_session_of_a_user(sessions):
    """Logging out everywhere ends every session of that user and no one else's."""
    mine = [await login(sessions, 1) for _ in range(3)]
    other = await login(sessions, 2)
    assert await sessions.delete_all(1) == 3
    for session in mine:
        assert await sessions.get(session.id) is None
    assert await sessions.get(other.id) == other
    assert await sessions.delete_all(1) == 0
    # A session created afterwards is indexed again, so the next revocation finds it.
    again = await login(sessions, 1)
    assert await sessions.delete_all(1) == 1
    assert await sessions.get(again.id) is None


async def test_api_token_is_stored_found_and_revoked(sessions):
    """A stored token authenticates as its user (never stored in clear); a revoked or wrong one does not."""
    token = "tica_" + "t" * 40
    digest = token_digest(token)
    assert token not in digest
    await sessions.store_token(digest, user_id=4, username="bot", roles=["member"], group_ids=[3])
    found = await sessions.for_token(token)
    assert found is not None
    assert (found.user_id, found.username, found.roles, found.group_ids, found.via_token) == (
        4,
        "bot",
        ["member"],
        [3],
        True,
    )
    assert await sessions.for_token("tica_" + "u" * 40) is None
    assert await sessions.for_token("") is None
    await sessions.revoke_token(digest, 4)
    assert await sessions.for_token(token) is None


async def test_refresh_user_rewrites_roles_in_sessions_and_tokens(sessions, redis, settings):
    """After a role change every live session and token of the user carries the new roles; others are untouched."""
    first, second = await login(sessions, 1, ["member"]), await login(sessions, 1, ["member"])
    other = await login(sessions, 2, ["member"])
    token = "tica_" + "r" * 40
    await sessions.store_token(token_digest(token), user_id=1, username="user1", roles=["member"], group_ids=[2])

    await sessions.refresh_user(1, username="renamed", roles=["member", "moderator"], group_ids=[2, 5])

    for before in (first, second):
        after = await sessions.get(before.id)
        assert after is not None
        assert (after.username, after.roles, after.group_ids) == ("renamed", ["member", "moderator"], [2, 5])
        assert (after.csrf, after.created_at) == (before.csrf, before.created_at)
        assert after.is_staff
        assert await redis.ttl(f"{settings.redis_prefix}session:{before.id}") > 0
    via_token = await sessions.for_token(token)
    assert via_token is not None and via_token.roles == ["member", "moderator"]
    assert await sessions.get(other.id) == other


async def test_refresh_user_does_not_bring_back_ended_sessions(sessions, redis, settings):
    """A session that ended (expired or deleted) stays ended when the user's roles are refreshed."""
    session = await login(sessions, 1)
    await redis.delete(f"{settings.redis_prefix}session:{session.id}")  # as when it expires
    await sessions.refresh_user(1, username="user1", roles=["admin"], group_ids=[])
    assert await sessions.get(session.id) is None


def test_csrf_token_must_match():
    """The CSRF check accepts only the session's own token."""
    session = Session("id", 1, "user1", [], [], csrf="right-token")
    assert csrf_ok(session, "right-token")
    assert not csrf_ok(session, "wrong-token")
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "")


def test_audiences_follow_groups_and_staff_role():
    """A member sees public, members', their groups' and their own; staff also staff's; a visitor public alone."""
    assert Session("id", 1, "a", [], [3], "c").audiences() == ["public", "members", "group:3", "user:1"]
    assert Session("id", 1, "a", ["moderator"], [], "c").audiences() == ["public", "members", "user:1", "staff"]
    assert anonymous_audiences() == ["public"]
