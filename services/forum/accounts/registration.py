"""Registration: creating an account from the form or the API, mailing the link that confirms
its address, and using that link. Registration never tells whether an address has an account.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.forum.accounts import mails, passwords
from services.forum.accounts.accounts import (
    User,
    check_display_name,
    create_account,
    invalid,
    mark_email_verified,
    registration_problems,
    unused_user_id,
    updated_event,
    user_by_email,
    user_by_id,
    user_by_username,
    username_taken,
)
from services.forum.accounts.tokens import EXPIRED_LINK, VERIFY_TOKEN_TTL, create_email_token, unusable, use_email_token
from services.forum.outbox import write_event
from shared import ratelimit
from shared.ratelimit import rate_key
from shared.sessions import Session, token_digest
from shared.web import ApiError, Runtime

# New accounts per client address per hour, and verification mails a member can ask for per hour.
REGISTER_ADDRESS = ratelimit.Limit(
    "register-address",
    limit=10,
    window_s=60 * 60,
    message="Too many new accounts from your network. Please try again in an hour.",
)
RESEND = ratelimit.Limit(
    "resend-verify",
    limit=3,
    window_s=60 * 60,
    message="We have sent several links already. Please check your inbox and spam folder, or try again in an hour.",
)


@dataclass(frozen=True)
class Registration:
    """What a registration did: the user to answer with, and whom to mail what."""

    user: User
    owner: User | None  # the account that already had the email address
    token: str | None  # the verification token of a new account


async def register(
    rt: Runtime, *, username: str, email: str, password: str, display_name: str | None, address: str
) -> User:
    """Create an account and mail its verification link.

    Registration never tells whether an email address has an account: for an address
    that already has one, nothing is created, the answer looks the same (a user-shaped
    body for the new username, with an id no account will have), and the owner of the
    address gets a mail saying someone tried to register with it. The username is
    public, so a taken one is still a 409.
    """
    display_name = display_name or None
    problems = registration_problems(username=username, email=email, password=password, display_name=display_name)
    if problems:
        raise invalid(problems)
    await ratelimit.enforce_limit(rt, REGISTER_ADDRESS, address)
    password_hash = await passwords.hash_password(password)  # in both cases, so timing tells nothing
    async with rt.pool.acquire() as conn, conn.transaction():
        done = await _register(
            conn, username=username, email=email, password_hash=password_hash, display_name=display_name
        )
    base_url = rt.settings.public_url
    if done.owner is not None:
        # At most one such mail a day, so nobody can flood a member's inbox by registering their address.
        once_a_day = await ratelimit.hit(
            rt.redis, rate_key(rt.settings.redis_prefix, "register-exists", str(done.owner.id)), limit=1, window_s=86400
        )
        if once_a_day.allowed:
            await mails.send(
                rt,
                to=done.owner.email,
                mail=mails.already_registered_mail(base_url, done.owner),
                key=f"register-exists:{done.owner.id}:{secrets.token_hex(8)}",
            )
    elif done.token is not None:
        await _send_verification(rt, done.user, done.token)
    return done.user


async def _register(
    conn: asyncpg.Connection, *, username: str, email: str, password_hash: str, display_name: str | None
) -> Registration:
    if await user_by_username(conn, username) is not None:
        raise username_taken()
    await check_display_name(conn, display_name, user_id=None, username=username)
    owner = await user_by_email(conn, email)
    if owner is None:
        try:
            user = await create_account(
                conn,
                username=username,
                email=email,
                password_hash=password_hash,
                display_name=display_name,
                roles=["member"],
                verified=False,
            )
        except ApiError as exc:
            if exc.code != "email_taken":
                raise
            # Registered meanwhile: answer as for any address that has an account.
            owner = await user_by_email(conn, email)
        else:
            token = await create_email_token(conn, user=user, purpose="verify", ttl=VERIFY_TOKEN_TTL)
            return Registration(user, None, token)
    stand_in = User(id=await unused_user_id(conn), username=username, email=email,
                    display_name=display_name or username, pronouns=None, bio="", roles=["member"],
                    email_verified=False, created_at=datetime.now(UTC))  # fmt: skip
    return Registration(stand_in, owner, None)


async def resend_verification(rt: Runtime, session: Session) -> None:
    """Mail a new verification link to the viewer's address (nothing when it is already verified)."""
    await ratelimit.enforce_limit(rt, RESEND, str(session.user_id))
    async with rt.pool.acquire() as conn, conn.transaction():
        user = await user_by_id(conn, session.user_id)
        if user is None:
            raise ApiError(401, "unauthorized", "Please log in first.")
        if user.email_verified:
            return
        token = await create_email_token(conn, user=user, purpose="verify", ttl=VERIFY_TOKEN_TTL)
    await _send_verification(rt, user, token)


async def _send_verification(rt: Runtime, user: User, token: str) -> None:
    mail = mails.verification_mail(rt.settings.public_url, user, token)
    await mails.send(rt, to=user.email, mail=mail, key=f"verify:{token_digest(token)[:16]}")


async def verify_email(rt: Runtime, token: str) -> User:
    """Use a verification token: the account's email address is confirmed (400 when unusable)."""
    if unusable(token):
        raise ApiError(400, "invalid_token", EXPIRED_LINK)
    async with rt.pool.acquire() as conn, conn.transaction():
        user_id = await use_email_token(conn, token, "verify")
        if user_id is None:
            raise ApiError(400, "invalid_token", EXPIRED_LINK)
        user = await mark_email_verified(conn, user_id)
        await write_event(conn, updated_event(user), actor_id=user.id)
    return user
