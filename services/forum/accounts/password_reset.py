"""Password reset: a one-time link by email to choose a new password. Asking never tells
whether an account has the address; using the link ends every session and API token of the account.
"""

from __future__ import annotations

from services.forum.accounts import mails, passwords
from services.forum.accounts.accounts import (
    User,
    email_problem,
    invalid,
    mark_email_verified,
    set_password_hash,
    updated_event,
    user_by_email,
)
from services.forum.accounts.login import forget_failed_logins
from services.forum.accounts.tokens import (
    EXPIRED_LINK,
    RESET_TOKEN_TTL,
    create_email_token,
    find_email_token,
    revoke_all_api_tokens,
    unusable,
    use_all_email_tokens,
    use_email_token,
)
from services.forum.outbox import write_event
from shared import ratelimit
from shared.sessions import token_digest
from shared.web import ApiError, Runtime

# Reset requests per client address, reset mails per address, and confirmations per client address.
RESET_ADDRESS = ratelimit.Limit("reset-address", limit=10, window_s=15 * 60)
RESET_EMAIL = ratelimit.Limit(
    "reset-email",
    limit=3,
    window_s=60 * 60,
    message="We have sent several links to that address already. Please check your inbox "
    "and spam folder, or try again in an hour.",
)
RESET_CONFIRM_ADDRESS = ratelimit.Limit("reset-confirm-address", limit=20, window_s=15 * 60)


async def request_reset(rt: Runtime, *, email: str, address: str) -> None:
    """Mail a one-time reset link when an account has this address; the same answer either way."""
    email = email.strip()
    problem = email_problem(email)
    if problem:
        raise invalid({"email": problem})
    await ratelimit.enforce_limit(rt, RESET_ADDRESS, address)
    await ratelimit.enforce_limit(rt, RESET_EMAIL, email.lower())
    async with rt.pool.acquire() as conn, conn.transaction():
        user = await user_by_email(conn, email)
        if user is None:
            return
        token = await create_email_token(conn, user=user, purpose="reset", ttl=RESET_TOKEN_TTL)
    mail = mails.reset_mail(rt.settings.public_url, user, token)
    await mails.send(rt, to=user.email, mail=mail, key=f"reset:{token_digest(token)[:16]}")


async def reset_token_user(rt: Runtime, token: str) -> User | None:
    """The account a reset link is for, while the link is usable (for the page that asks for a password)."""
    if unusable(token):
        return None
    async with rt.pool.acquire() as conn:
        return await find_email_token(conn, token, "reset")


async def confirm_reset(rt: Runtime, *, token: str, password: str, address: str) -> User:
    """Set a new password with a reset token; every session and personal API token of the account ends
    (whoever knew the old password may have made either)."""
    await ratelimit.enforce_limit(rt, RESET_CONFIRM_ADDRESS, address)
    user = await reset_token_user(rt, token)
    if user is None:
        raise ApiError(400, "invalid_token", EXPIRED_LINK)
    problem = passwords.password_problem(password, username=user.username, email=user.email)
    if problem:
        raise invalid({"password": problem})
    password_hash = await passwords.hash_password(password)
    async with rt.pool.acquire() as conn, conn.transaction():
        if await use_email_token(conn, token, "reset") != user.id:
            raise ApiError(400, "invalid_token", EXPIRED_LINK)
        await use_all_email_tokens(conn, user.id, "reset")
        await set_password_hash(conn, user.id, password_hash)
        await revoke_all_api_tokens(rt, conn, user.id)
        # Opening the link proved the address is theirs.
        updated = await mark_email_verified(conn, user.id)
        if not user.email_verified:
            await write_event(conn, updated_event(updated), actor_id=user.id)
    await rt.sessions.delete_all(user.id)
    await forget_failed_logins(rt, user)
    return updated
