"""Registration: creating an account from the form or the API (or, while sign-up needs approval, a
request to join: services/forum/signups/), mailing the link that confirms its address, and using
that link. Registration never tells whether an address has an account.
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
from services.forum.signups import invitations, signups
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


INVITE_ONLY = (
    "Joining this community is by invitation. If you would like to join, ask a moderator, or a member who "
    "knows you, to send you an invitation by email."
)


@dataclass(frozen=True)
class Registered:
    """What registering (or confirming an address) did, as the person may see it: their account, or
    one that looks the same; whether it waits for a moderator's approval."""

    user: User
    waiting: bool


@dataclass(frozen=True)
class Registration:
    """What a registration did: the user to answer with, and whom to mail what."""

    user: User
    waiting: bool  # the account waits for approval (or would, for an address that has one)
    owner: User | None = None  # the account that already had the email address
    owner_waiting: signups.Waiting | None = None  # the waiting request that already had it
    token: str | None = None  # the verification token of a new account or request


@dataclass(frozen=True)
class Applicant:
    """A registration as sent, checked: who, and how they join (the mode read once, as set now)."""

    username: str
    email: str
    password_hash: str
    display_name: str | None
    answer: str | None  # their answer to the sign-up question: only when the account is to wait
    invitation: invitations.Usable | None

    @property
    def confirmed(self) -> bool:
        """Registering with the invited address counts as confirming it."""
        return self.invitation is not None and self.invitation.email.lower() == self.email.lower()


def must_wait(mode: str, invitation: str | None) -> bool:
    """Whether a registration waits for approval (and answers the sign-up question): approval mode,
    without an invitation."""
    return mode == "approval" and not invitation


def check_invited(mode: str, invitation: str | None) -> None:
    """403 `invitation_required` in invite mode for a registration without an invitation."""
    if mode == "invite" and not invitation:
        raise ApiError(403, "invitation_required", INVITE_ONLY)


def answer_problems(mode: str, invitation: str | None, answer: str | None) -> dict[str, str]:
    """The sign-up question's problem, by field name, when the registration must answer it."""
    problem = signups.answer_problem(answer or "") if must_wait(mode, invitation) else None
    return {"answer": problem} if problem else {}


async def check_invitation(rt: Runtime, invitation: str | None) -> invitations.Usable | None:
    """The usable invitation a registration names (400 saying why when it cannot be used)."""
    if not invitation:
        return None
    async with rt.pool.acquire() as conn:
        return await invitations.usable(conn, rt.settings.key, invitation)


async def register(
    rt: Runtime,
    *,
    username: str,
    email: str,
    password: str,
    display_name: str | None,
    address: str,
    answer: str | None = None,
    invitation: str | None = None,
) -> Registered:
    """Create an account, or a request to join that waits for a moderator, and mail its
    verification link. The mode is `registration_mode` as set now.

    In approval mode, `answer` (to the sign-up question) is required and the account waits; in
    invite mode an `invitation` token is required (403 without; 400 when it cannot be used). A
    valid invitation, in any mode, skips the wait and is then used up; registering with the
    invited address counts as confirming it (no mail is needed).

    Registration never tells whether an email address has an account or a request: for an
    address that already has one, nothing is created, the answer looks the same (a user-shaped
    body for the new username, with an id no account will have), and the owner of the address
    gets a mail saying someone tried to register with it. The username is public, so a taken
    one (by a member or a waiting request) is still a 409.
    """
    mode = rt.settings.registration_mode
    check_invited(mode, invitation)
    await check_invitation(rt, invitation)
    display_name = display_name or None
    problems = registration_problems(username=username, email=email, password=password, display_name=display_name)
    problems.update(answer_problems(mode, invitation, answer))
    if problems:
        raise invalid(problems)
    await ratelimit.enforce_limit(rt, REGISTER_ADDRESS, address)
    password_hash = await passwords.hash_password(password)  # in both cases, so timing tells nothing
    async with rt.pool.acquire() as conn, conn.transaction():
        applicant = Applicant(
            username,
            email,
            password_hash,
            display_name,
            (answer or "").strip() if must_wait(mode, invitation) else None,
            await invitations.usable(conn, rt.settings.key, invitation) if invitation else None,
        )
        done = await _register(conn, applicant)
    await _mail_registration(rt, done)
    return Registered(done.user, done.waiting)


async def _mail_registration(rt: Runtime, done: Registration) -> None:
    if done.owner is not None or done.owner_waiting is not None:
        await _mail_owner(rt, done)
    elif done.token is not None:
        await _send_verification(rt, done.user, done.token, waiting=done.waiting)


async def _mail_owner(rt: Runtime, done: Registration) -> None:
    """Tell the owner of an address someone tried to register again (a member, or a person waiting)."""
    if done.owner is not None:
        owner_id, to = done.owner.id, done.owner.email
        mail = mails.already_registered_mail(rt.settings.public_url, done.owner)
    else:
        assert done.owner_waiting is not None
        waiting = done.owner_waiting
        owner_id, to = waiting.id, waiting.email
        mail = mails.already_waiting_mail(display_name=waiting.display_name, username=waiting.username)
    # At most one such mail a day, so nobody can flood a member's inbox by registering their address.
    once_a_day = await ratelimit.hit(
        rt.redis, rate_key(rt.settings.redis_prefix, "register-exists", str(owner_id)), limit=1, window_s=86400
    )
    if once_a_day.allowed:
        await mails.send(rt, to=to, mail=mail, key=f"register-exists:{owner_id}:{secrets.token_hex(8)}")


async def _register(conn: asyncpg.Connection, applicant: Applicant) -> Registration:
    await signups.lock_names(conn, applicant.username, applicant.email)
    username = applicant.username
    if await user_by_username(conn, username) is not None or await signups.waiting_by_username(conn, username):
        raise username_taken()
    await check_display_name(conn, applicant.display_name, user_id=None, username=username)
    owner = await user_by_email(conn, applicant.email)
    owner_waiting = await signups.waiting_by_email(conn, applicant.email) if owner is None else None
    if owner is None and owner_waiting is None:
        done = await (_request(conn, applicant) if applicant.answer is not None else _create(conn, applicant))
        if done is not None:
            return done
        # The address was registered meanwhile: answer as for any address that has an account.
        owner = await user_by_email(conn, applicant.email)
        owner_waiting = await signups.waiting_by_email(conn, applicant.email) if owner is None else None
    stand_in = User(id=await unused_user_id(conn), username=username, email=applicant.email,
                    display_name=applicant.display_name or username, pronouns=None, bio="", roles=["member"],
                    email_verified=applicant.confirmed, created_at=datetime.now(UTC))  # fmt: skip
    return Registration(stand_in, applicant.answer is not None, owner=owner, owner_waiting=owner_waiting)


async def _request(conn: asyncpg.Connection, applicant: Applicant) -> Registration | None:
    """A request to join that waits for approval; None when its address was taken meanwhile."""
    assert applicant.answer is not None
    request = await signups.request_to_join(
        conn,
        username=applicant.username,
        email=applicant.email,
        password_hash=applicant.password_hash,
        display_name=applicant.display_name or applicant.username,
        answer=applicant.answer,
    )
    if request is None:
        return None
    return Registration(request.as_user(), True, token=await signups.create_signup_token(conn, request))


async def _create(conn: asyncpg.Connection, applicant: Applicant) -> Registration | None:
    """An account (using up its invitation); None when its address was taken meanwhile."""
    try:
        user = await create_account(
            conn,
            username=applicant.username,
            email=applicant.email,
            password_hash=applicant.password_hash,
            display_name=applicant.display_name,
            roles=["member"],
            verified=applicant.confirmed,
        )
    except ApiError as exc:
        if exc.code != "email_taken":
            raise
        return None
    if applicant.invitation is not None:
        await invitations.use(conn, applicant.invitation, user.id)
    if applicant.confirmed:
        return Registration(user, False)
    return Registration(
        user, False, token=await create_email_token(conn, user=user, purpose="verify", ttl=VERIFY_TOKEN_TTL)
    )


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


async def _send_verification(rt: Runtime, user: User, token: str, *, waiting: bool = False) -> None:
    mail = mails.verification_mail(rt.settings.public_url, user, token, waiting=waiting)
    await mails.send(rt, to=user.email, mail=mail, key=f"verify:{token_digest(token)[:16]}")


async def verify_email(rt: Runtime, token: str) -> Registered:
    """Use a verification token: the address of the account, or of a request to join waiting for
    approval, is confirmed (400 when unusable)."""
    if unusable(token):
        raise ApiError(400, "invalid_token", EXPIRED_LINK)
    async with rt.pool.acquire() as conn, conn.transaction():
        user_id = await use_email_token(conn, token, "verify")
        if user_id is None:
            waiting = await signups.use_signup_token(conn, token)
            if waiting is None:
                raise ApiError(400, "invalid_token", EXPIRED_LINK)
            return Registered(waiting.as_user(), True)
        user = await mark_email_verified(conn, user_id)
        await write_event(conn, updated_event(user), actor_id=user.id)
    return Registered(user, False)
