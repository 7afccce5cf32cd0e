"""Server-side sessions in Redis, shared by every service.

The cookie holds only a random id. The session record holds the user id, roles,
group ids and the CSRF token, so notify and search can authenticate a request
without asking the forum. A per-user set of session ids lets the forum revoke
them all (log out everywhere, suspension) and refresh roles and groups.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis

from shared import audience

SESSION_COOKIE = "tica_session"
CSRF_COOKIE = "tica_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 30 * 86400


STAFF_ROLES = ("moderator", "admin")
_STAFF = frozenset(STAFF_ROLES)


def roles_are_staff(roles: Sequence[str]) -> bool:
    """Whether these roles make a member staff: moderators and admins."""
    return not _STAFF.isdisjoint(roles)  # one C call: the topic page asks this about every post


@dataclass
class Session:
    """What a signed-in request knows about its viewer."""

    id: str
    user_id: int
    username: str
    roles: list[str]
    group_ids: list[int]
    csrf: str
    created_at: float = field(default_factory=time.time)
    via_token: bool = False

    @property
    def is_staff(self) -> bool:
        return roles_are_staff(self.roles)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def audiences(self) -> list[str]:
        """Every audience this viewer belongs to (shared.audience.for_viewer)."""
        return audience.for_viewer(self)


def anonymous_audiences() -> list[str]:
    """The audiences of a visitor who is not signed in (shared.audience.for_viewer)."""
    return audience.for_viewer(None)


class SessionStore:
    """Sessions under `{prefix}session:{id}`, indexed per user under `{prefix}user-sessions:{user_id}`."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_s: int = SESSION_TTL_S) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}user-sessions:{user_id}"

    async def _members(self, key: str) -> set[bytes]:
        members: set[bytes] = await self.redis.smembers(key)  # type: ignore[misc]  # typed for sync and async
        return members

    async def create(self, *, user_id: int, username: str, roles: list[str], group_ids: list[int]) -> Session:
        session = Session(secrets.token_urlsafe(32), user_id, username, roles, group_ids, secrets.token_urlsafe(24))
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._key(session.id), json.dumps(asdict(session)), ex=self.ttl_s)
        pipe.sadd(self._user_key(user_id), session.id)
        pipe.expire(self._user_key(user_id), self.ttl_s)
        await pipe.execute()
        return session

    async def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        raw = await self.redis.get(self._key(session_id))
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return Session(**data)

    async def delete(self, session: Session) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._key(session.id))
        pipe.srem(self._user_key(session.user_id), session.id)
        await pipe.execute()

    async def delete_all(self, user_id: int) -> int:
        """Revoke every session of a user; returns how many there were."""
        ids = await self._members(self._user_key(user_id))
        if not ids:
            return 0
        pipe = self.redis.pipeline(transaction=True)
        for session_id in ids:
            pipe.delete(self._key(session_id.decode() if isinstance(session_id, bytes) else session_id))
        # Only the ids read above: a session created meanwhile stays indexed, so it can be revoked too.
        pipe.srem(self._user_key(user_id), *ids)
        await pipe.execute()
        return len(ids)

    def _token_key(self, digest: str) -> str:
        return f"{self.prefix}token:{digest}"

    async def store_token(
        self, digest: str, *, user_id: int, username: str, roles: list[str], group_ids: list[int]
    ) -> None:
        """Make a personal API token usable by every service (the forum keeps the durable copy)."""
        record = Session(digest, user_id, username, roles, group_ids, "", via_token=True)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._token_key(digest), json.dumps(asdict(record)))
        pipe.sadd(self._user_key(user_id) + ":tokens", digest)
        await pipe.execute()

    async def revoke_token(self, digest: str, user_id: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._token_key(digest))
        pipe.srem(self._user_key(user_id) + ":tokens", digest)
        await pipe.execute()

    async def revoke_all_tokens(self, user_id: int, digests: Sequence[str] = ()) -> None:
        """Revoke every API token of a user: those indexed for them here, and `digests` (the forum's
        durable list), so a token survives in neither."""
        tokens_key = self._user_key(user_id) + ":tokens"
        indexed = {d.decode() if isinstance(d, bytes) else d for d in await self._members(tokens_key)}
        every = indexed | set(digests)
        if not every:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*(self._token_key(digest) for digest in every))
        pipe.srem(tokens_key, *every)
        await pipe.execute()

    async def for_token(self, token: str) -> Session | None:
        if not token or len(token) > 200:
            return None
        raw = await self.redis.get(self._token_key(token_digest(token)))
        return Session(**json.loads(raw)) if raw is not None else None

    async def refresh_user(self, user_id: int, *, username: str, roles: list[str], group_ids: list[int]) -> None:
        """Rewrite roles and groups in every live session of a user (after a change)."""
        for key_of, user_key in (
            (self._key, self._user_key(user_id)),
            (self._token_key, self._user_key(user_id) + ":tokens"),
        ):
            for raw_id in await self._members(user_key):
                key = key_of(raw_id.decode() if isinstance(raw_id, bytes) else raw_id)
                raw = await self.redis.get(key)
                if raw is None:
                    continue
                session = Session(**json.loads(raw))
                session.username, session.roles, session.group_ids = username, roles, group_ids
                # xx: a session that ended since the read above stays ended.
                await self.redis.set(key, json.dumps(asdict(session)), keepttl=True, xx=True)


def token_digest(token: str) -> str:
    """How a personal API token is stored: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_ok(session: Session, sent: str | None) -> bool:
    """The CSRF token sent with a cookie-authenticated write matches the session's."""
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())
