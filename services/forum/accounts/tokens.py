"""Tokens: the one-time links mailed to a member (email verification, password reset) and
personal API tokens for scripts. Only digests are stored; a token is shown once.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import asyncpg

from services.forum.accounts.accounts import User, has_controls, invalid, user_by_id
from shared.sessions import Session, token_digest
from shared.web import ApiError, Runtime

VERIFY_TOKEN_TTL = timedelta(days=7)
RESET_TOKEN_TTL = timedelta(hours=1)
TOKEN_NAME_MAX = 60
MAX_API_TOKENS = 25
EXPIRED_LINK = "This link has expired or was already used. You can ask for a new one."

# --- one-time email tokens ---------------------------------------------------------


def unusable(token: str) -> bool:
    """Whether a token from a link cannot be one of ours (empty, or far too long to look up)."""
    return not token or len(token) > 200


async def create_email_token(conn: asyncpg.Connection, *, user: User, purpose: str, ttl: timedelta) -> str:
    """A new one-time token for a link by email; only its SHA-256 is stored."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO forum.email_tokens (token_hash, user_id, purpose, email, expires_at) "
        "VALUES ($1, $2, $3, $4, now() + $5::interval)",
        token_digest(token),
        user.id,
        purpose,
        user.email,
        ttl,
    )
    return token


async def find_email_token(conn: asyncpg.Connection, token: str, purpose: str) -> User | None:
    """The account of a usable token (unused, unexpired, still for the account's address)."""
    user_id = await conn.fetchval(
        "SELECT t.user_id FROM forum.email_tokens t JOIN forum.users u ON u.id = t.user_id "
        "WHERE t.token_hash = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.expires_at > now() "
        "AND lower(t.email) = lower(u.email)",
        token_digest(token),
        purpose,
    )
    return await user_by_id(conn, user_id) if user_id is not None else None


async def use_email_token(conn: asyncpg.Connection, token: str, purpose: str) -> int | None:
    """Mark a usable token used; the user id, or None when it was not usable (or just used)."""
    user_id: int | None = await conn.fetchval(
        "UPDATE forum.email_tokens t SET used_at = now() FROM forum.users u "
        "WHERE t.token_hash = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.expires_at > now() "
        "AND u.id = t.user_id AND lower(t.email) = lower(u.email) RETURNING t.user_id",
        token_digest(token),
        purpose,
    )
    return user_id


async def use_all_email_tokens(conn: asyncpg.Connection, user_id: int, purpose: str) -> None:
    await conn.execute(
        "UPDATE forum.email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user_id,
        purpose,
    )


# --- personal API tokens ------------------------------------------------------------


async def insert_api_token(conn: asyncpg.Connection, *, user_id: int, name: str, digest: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO forum.api_tokens (user_id, name, token_hash) VALUES ($1, $2, $3) "
        "RETURNING id, name, created_at, last_used_at",
        user_id,
        name,
        digest,
    )
    return row


async def active_api_tokens(conn: asyncpg.Connection, user_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, name, created_at, last_used_at FROM forum.api_tokens "
        "WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC",
        user_id,
    )
    return rows


async def count_active_api_tokens(conn: asyncpg.Connection, user_id: int) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM forum.api_tokens WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    return count


async def revoke_api_token_row(conn: asyncpg.Connection, *, user_id: int, token_id: int) -> str | None:
    """Mark one of a member's tokens revoked; its digest, or None when there is no such live token."""
    digest: str | None = await conn.fetchval(
        "UPDATE forum.api_tokens SET revoked_at = now() "
        "WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING token_hash",
        token_id,
        user_id,
    )
    return digest


async def revoke_all_api_token_rows(conn: asyncpg.Connection, user_id: int) -> list[str]:
    """Mark every live token of a member revoked; their digests."""
    rows = await conn.fetch(
        "UPDATE forum.api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING token_hash",
        user_id,
    )
    return [row["token_hash"] for row in rows]


async def revoke_all_api_tokens(rt: Runtime, conn: asyncpg.Connection, user_id: int) -> None:
    """End every personal API token of a member, in the caller's transaction (a password reset:
    whoever had the password may have made one). Redis before the commit: if it fails, the rows roll back."""
    digests = await revoke_all_api_token_rows(conn, user_id)
    await rt.sessions.revoke_all_tokens(user_id, digests)


async def create_api_token(rt: Runtime, session: Session, name: str) -> tuple[asyncpg.Record, str]:
    """A new personal API token: its row and the token itself, which is shown this once."""
    name = name.strip()
    if not name:
        raise invalid({"name": "Give the token a name, like \u201cweekly report script\u201d"})
    if len(name) > TOKEN_NAME_MAX or has_controls(name):
        raise invalid({"name": f"Token names must be {TOKEN_NAME_MAX} characters or fewer, on one line"})
    token = "tica_" + secrets.token_urlsafe(32)
    digest = token_digest(token)
    async with rt.pool.acquire() as conn, conn.transaction():
        user = await user_by_id(conn, session.user_id)
        if user is None:
            raise ApiError(401, "unauthorized", "Please log in first.")
        if await count_active_api_tokens(conn, user.id) >= MAX_API_TOKENS:
            raise ApiError(
                409,
                "too_many_tokens",
                f"You can have up to {MAX_API_TOKENS} tokens. Revoke one you no longer use first.",
            )
        row = await insert_api_token(conn, user_id=user.id, name=name, digest=digest)
        # Registered before commit: if Redis fails, the row is rolled back too.
        await rt.sessions.store_token(
            digest, user_id=user.id, username=user.username, roles=list(user.roles), group_ids=list(session.group_ids)
        )
    return row, token


async def list_api_tokens(rt: Runtime, session: Session) -> list[asyncpg.Record]:
    """The viewer's live API tokens, newest first."""
    async with rt.pool.acquire() as conn:
        return await active_api_tokens(conn, session.user_id)


async def revoke_api_token(rt: Runtime, session: Session, token_id: int) -> None:
    """Revoke one of the viewer's tokens (404 when it is not theirs or already revoked)."""
    async with rt.pool.acquire() as conn, conn.transaction():
        digest = await revoke_api_token_row(conn, user_id=session.user_id, token_id=token_id)
        if digest is None:
            raise ApiError(404, "not_found", "There is no such token.")
        await rt.sessions.revoke_token(digest, session.user_id)
