"""Logging in: checking a password (with its rate limits), opening a session and its cookies,
and noting when a member is active (last_seen_at, user.seen, "new since your last visit").
"""

from __future__ import annotations

from datetime import UTC

from starlette.requests import Request
from starlette.responses import Response

from services.forum.accounts import passwords
from services.forum.accounts.accounts import User, invalid, set_password_hash, user_by_login
from services.forum.outbox import write_event
from services.forum.signups import signups
from shared import ratelimit
from shared.events import UserSeen
from shared.pages import cookies_secure, set_csrf_cookie
from shared.ratelimit import rate_key
from shared.sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL_S, Session
from shared.web import ApiError, Runtime

LOGIN_WINDOW_S = 15 * 60
LOGIN_ACCOUNT_LIMIT = 5  # failed logins per login name
LOGIN_ADDRESS_LIMIT = 20  # failed logins per client address
INVALID_LOGIN = "The username, email address or password is not right. Check them and try again."

# A member seen again after this long starts a new visit ("new since your last visit").
VISIT_GAP_SQL = "interval '1 hour'"
ACTIVITY_EVERY_S = 300

RECORD_VISIT_SQL = """
UPDATE forum.users SET previous_visit_at = last_seen_at, last_seen_at = now() WHERE id = $1
RETURNING last_seen_at
"""
NOTE_ACTIVITY_SQL = f"""
UPDATE forum.users SET previous_visit_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < now() - {VISIT_GAP_SQL}
                                           THEN last_seen_at ELSE previous_visit_at END,
                       last_seen_at = now()
WHERE id = $1
RETURNING last_seen_at
"""

# --- logging in ------------------------------------------------------------------------------


async def log_in(
    rt: Runtime, *, login: str, password: str, address: str, previous: Session | None = None
) -> tuple[User, Session]:
    """Check a login and password and open a session.

    The answer for a wrong password and for an unknown login is the same, after the
    same work (a dummy hash check). An account waiting for approval (services/forum/signups/)
    gets a kind 403 `awaiting_approval`, but only for its right password. Attempts count against the login name and the
    client address before the check, so parallel guesses cannot slip past the limit;
    a successful attempt is taken back.
    """
    login = login.strip()
    problems: dict[str, str] = {}
    if not login:
        problems["login"] = "Enter your username or email address"
    if not password:
        problems["password"] = "Enter your password"  # noqa: S105 (a message, not a password)
    if problems:
        raise invalid(problems)
    account_key = _account_key(rt, login)
    address_key = rate_key(rt.settings.redis_prefix, "login-address", address)
    result = await ratelimit.hit(rt.redis, account_key, limit=LOGIN_ACCOUNT_LIMIT, window_s=LOGIN_WINDOW_S)
    if not result.allowed:
        raise ratelimit.too_many(result, _wait_message(result))
    result = await ratelimit.hit(rt.redis, address_key, limit=LOGIN_ADDRESS_LIMIT, window_s=LOGIN_WINDOW_S)
    if not result.allowed:
        await ratelimit.undo(rt.redis, account_key)
        raise ratelimit.too_many(result, _wait_message(result))
    async with rt.pool.acquire() as conn:
        user = await user_by_login(conn, login)
        waiting = await signups.waiting_by_login(conn, login) if user is None else None
    password_hash = user.password_hash if user else waiting.password_hash if waiting else None
    if password_hash is None:
        await passwords.verify_dummy(password)
        raise ApiError(401, "invalid_login", INVALID_LOGIN)
    if not await passwords.verify_password(password_hash, password):
        raise ApiError(401, "invalid_login", INVALID_LOGIN)
    await ratelimit.clear(rt.redis, account_key)
    await ratelimit.undo(rt.redis, address_key)
    if user is None:
        assert waiting is not None
        raise _waiting(waiting)
    if user.suspended:
        raise _suspended(user)
    return user, await _open_session(rt, user, password, previous)


def _account_key(rt: Runtime, login: str) -> str:
    return rate_key(rt.settings.redis_prefix, "login-account", login.lower())


async def forget_failed_logins(rt: Runtime, user: User) -> None:
    """Start the member's failed-login count afresh (after they chose a new password)."""
    for login in (user.username, user.email):
        await ratelimit.clear(rt.redis, _account_key(rt, login))


def _wait_message(result: ratelimit.RateResult) -> str:
    minutes = max(1, -(-result.retry_after_s // 60))
    return (
        f"Too many attempts to log in. For your security, please wait {minutes} minute"
        f"{'s' if minutes != 1 else ''} and try again, or reset your password."
    )


def _suspended(user: User) -> ApiError:
    assert user.suspended_until is not None
    until = user.suspended_until.astimezone(UTC)
    message = f"Your account is suspended until {until.day} {until:%B %Y, %H:%M} UTC."
    if user.suspended_reason:
        message += f" The moderators gave this reason: {user.suspended_reason}"
    # The fields carry the same facts for scripts.
    return ApiError(403, "suspended", message, {"until": until.isoformat(), "reason": user.suspended_reason or ""})


WAITING = (
    "Thank you for your patience. A moderator has not yet read your request to join, so you cannot log in "
    "yet. We will email you as soon as they have."
)
CONFIRM_MEANWHILE = " Meanwhile, please confirm your email address with the link we sent you."


def _waiting(waiting: signups.Waiting) -> ApiError:
    """The kind 403 for the right password of an account that waits for approval: only someone who
    knows the password learns that it waits."""
    message = WAITING + ("" if waiting.email_verified else CONFIRM_MEANWHILE)
    return ApiError(403, "awaiting_approval", message)


async def _open_session(rt: Runtime, user: User, password: str, previous: Session | None) -> Session:
    if previous is not None and not previous.via_token:
        await rt.sessions.delete(previous)  # a fresh id at login: no session fixation
    new_hash = await passwords.hash_password(password) if passwords.needs_rehash(user.password_hash) else None
    async with rt.pool.acquire() as conn, conn.transaction():
        seen_at = await conn.fetchval(RECORD_VISIT_SQL, user.id)
        await write_event(conn, UserSeen(user_id=user.id, seen_at=seen_at.isoformat()), actor_id=user.id)
        if new_hash:
            await set_password_hash(conn, user.id, new_hash)
    await rt.redis.set(_activity_key(rt, user.id), "1", ex=ACTIVITY_EVERY_S)  # login just recorded the visit
    return await rt.sessions.create(
        user_id=user.id, username=user.username, roles=list(user.roles), group_ids=user.group_ids
    )


# --- activity ----------------------------------------------------------------------------------


def _activity_key(rt: Runtime, user_id: int) -> str:
    return f"{rt.settings.redis_prefix}seen:{user_id}"


async def note_activity(rt: Runtime, who: Session) -> None:
    """Record that a member is active, at most every few minutes: last_seen_at and a user.seen event
    (notify's "away" and digests use it). An absence of an hour starts a new visit."""
    if not await rt.redis.set(_activity_key(rt, who.user_id), "1", nx=True, ex=ACTIVITY_EVERY_S):
        return
    async with rt.pool.acquire() as conn, conn.transaction():
        seen_at = await conn.fetchval(NOTE_ACTIVITY_SQL, who.user_id)
        if seen_at is not None:
            await write_event(conn, UserSeen(user_id=who.user_id, seen_at=seen_at.isoformat()), actor_id=who.user_id)


# --- cookies --------------------------------------------------------------------------------------


def client_address(request: Request) -> str:
    """The client's address (uvicorn resolves X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


def set_session_cookies(response: Response, request: Request, session: Session) -> None:
    """tica_session (HttpOnly) and tica_csrf (readable by our script), both SameSite=Lax."""
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookies_secure(request),
    )
    set_csrf_cookie(response, request, session.csrf)


def clear_session_cookies(response: Response, request: Request) -> None:
    """Remove both session cookies (logging out, or after every session of the account ended)."""
    secure = cookies_secure(request)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="lax", secure=secure)
