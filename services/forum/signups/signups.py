"""Sign-ups waiting for approval: the rules, SQL and actions of the staff queue.

While `registration_mode` is "approval", a new account without an invitation waits here with its
answer to the sign-up question (`signup_question`). A waiting person is not a member yet: they have
no row in forum.users, so they appear nowhere (directory, mentions, profiles, search, groups) and
cannot log in (login.py tells them kindly, and only when the password is right). Their id comes
from forum.users' sequence, so approving creates the account with that same id.

Approving creates the account (user.registered) and mails "Welcome: you can now sign in"; declining
deletes the request and mails a kind note. We keep no row of a declined request: Discourse deletes
rejected users too, and deleting frees the address and username for a genuine second try. What
limits a flood of requests is the registration rate limit per client address and the email
confirmation; nothing is deleted that a moderator has not decided on (requests never expire, and
stay when the mode changes, until someone decides). Both decisions are audited (signup.approve,
signup.decline) and write signup.decided; registering writes signup.requested.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.forum import access, outbox
from services.forum.accounts import accounts, mails
from services.forum.accounts.tokens import VERIFY_TOKEN_TTL
from services.forum.moderation import audit
from shared.events import SignupDecided, SignupRequested, UserRegistered
from shared.sessions import Session, token_digest
from shared.web import ApiError, Runtime

ANSWER_MAX = 2000  # characters of the answer to the sign-up question
NOTE_MAX = 1000  # characters of a moderator's note to the person
PER_PAGE = 50
DECISIONS = ("approve", "decline")
REFUSAL = "Only moderators and admins can look after sign-ups."

# --- rules ---------------------------------------------------------------------------------------------


def answer_problem(answer: str) -> str | None:
    """What is wrong with an answer to the sign-up question (None when it will do)."""
    if not answer.strip():
        return "Answer the question, so a moderator can welcome you"
    if len(answer) > ANSWER_MAX:
        return f"Your answer must be {ANSWER_MAX:,} characters or fewer"
    if accounts.has_controls(answer, allow_newlines=True):
        return "Your answer cannot contain control characters or text-direction marks"
    return None


def clean_note(note: str | None) -> str:
    """A moderator's note to the person as it will be mailed: plain text, bounded (422 otherwise)."""
    text = (note or "").strip()
    if len(text) > NOTE_MAX:
        raise accounts.invalid({"note": f"The note must be {NOTE_MAX:,} characters or fewer"})
    if accounts.has_controls(text, allow_newlines=True):
        raise accounts.invalid({"note": "The note cannot contain control characters or text-direction marks"})
    return text


@dataclass(frozen=True)
class Waiting:
    """A person waiting for a moderator to approve their account."""

    id: int
    username: str
    email: str
    display_name: str
    answer: str
    email_verified: bool
    created_at: datetime
    password_hash: str

    def as_user(self) -> accounts.User:
        """The account they asked for, shaped as a User (for the registration's answer, to them only)."""
        return accounts.User(
            id=self.id,
            username=self.username,
            email=self.email,
            display_name=self.display_name,
            pronouns=None,
            bio="",
            roles=["member"],
            email_verified=self.email_verified,
            created_at=self.created_at,
        )


@dataclass(frozen=True)
class Decided:
    """What a decision did: approved or declined, and whom it was about."""

    id: int
    approved: bool
    username: str
    display_name: str


# --- SQL ---------------------------------------------------------------------------------------------

_COLUMNS = (
    "id, username, email, display_name, answer, email_verified_at IS NOT NULL AS verified, created_at, password_hash"
)
LIST_SQL = f"SELECT {_COLUMNS} FROM forum.signups ORDER BY created_at, id LIMIT $1 OFFSET $2"
COUNT_SQL = "SELECT count(*) FROM forum.signups"
BY_ID_SQL = f"SELECT {_COLUMNS} FROM forum.signups WHERE id = $1"
LOCK_SQL = f"SELECT {_COLUMNS} FROM forum.signups WHERE id = $1 FOR UPDATE"
BY_USERNAME_SQL = f"SELECT {_COLUMNS} FROM forum.signups WHERE lower(username) = lower($1)"
BY_EMAIL_SQL = f"SELECT {_COLUMNS} FROM forum.signups WHERE lower(email) = lower($1)"
INSERT_SQL = f"""
INSERT INTO forum.signups (id, username, email, password_hash, display_name, answer)
VALUES (nextval(pg_get_serial_sequence('forum.users', 'id')), $1, $2, $3, $4, $5)
RETURNING {_COLUMNS}
"""
DELETE_SQL = f"DELETE FROM forum.signups WHERE id = $1 RETURNING {_COLUMNS}"
# Names being registered are taken one at a time, whichever table they are going to.
LOCK_NAME_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('tica-name:' || lower($1), 0))"
# The account an approved request becomes, with the id it had while waiting.
APPROVE_SQL = """
INSERT INTO forum.users (id, username, email, password_hash, display_name, roles, email_verified_at)
OVERRIDING SYSTEM VALUE
SELECT id, username, email, password_hash, display_name, '{member}', email_verified_at FROM forum.signups WHERE id = $1
RETURNING id
"""
INSERT_LINK_SQL = """
INSERT INTO forum.signup_tokens (token_hash, signup_id, email, expires_at) VALUES ($1, $2, $3, now() + $4::interval)
"""
USE_LINK_SQL = """
UPDATE forum.signup_tokens t SET used_at = now() FROM forum.signups s
WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now() AND s.id = t.signup_id
  AND lower(t.email) = lower(s.email)
RETURNING t.signup_id
"""
VERIFY_SQL = f"""
UPDATE forum.signups SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1 RETURNING {_COLUMNS}
"""
# On approval, links mailed while waiting become the account's ordinary links.
MOVE_TOKENS_SQL = """
INSERT INTO forum.email_tokens (token_hash, user_id, purpose, email, expires_at, created_at)
SELECT token_hash, signup_id, 'verify', email, expires_at, created_at FROM forum.signup_tokens
WHERE signup_id = $1 AND used_at IS NULL AND expires_at > now()
"""


def _waiting(row: asyncpg.Record) -> Waiting:
    return Waiting(
        row["id"],
        row["username"],
        row["email"],
        row["display_name"],
        row["answer"],
        row["verified"],
        row["created_at"],
        row["password_hash"],
    )


def _maybe(row: asyncpg.Record | None) -> Waiting | None:
    return _waiting(row) if row is not None else None


async def count_waiting(conn: asyncpg.Connection) -> int:
    """How many people wait for a moderator to approve their account (the admin home shows it)."""
    count: int = await conn.fetchval(COUNT_SQL)
    return count


async def list_waiting(conn: asyncpg.Connection, *, page: int = 1) -> tuple[list[Waiting], bool]:
    """A page of waiting people, oldest first; and whether there is another page."""
    rows = await conn.fetch(LIST_SQL, PER_PAGE + 1, (page - 1) * PER_PAGE)
    return [_waiting(row) for row in rows[:PER_PAGE]], len(rows) > PER_PAGE


async def waiting_by_username(conn: asyncpg.Connection, username: str) -> Waiting | None:
    return _maybe(await conn.fetchrow(BY_USERNAME_SQL, username))


async def waiting_by_email(conn: asyncpg.Connection, email: str) -> Waiting | None:
    return _maybe(await conn.fetchrow(BY_EMAIL_SQL, email))


async def waiting_by_login(conn: asyncpg.Connection, login: str) -> Waiting | None:
    """The waiting request a login names: an email address when it has an @, else a username."""
    return await (waiting_by_email(conn, login) if "@" in login else waiting_by_username(conn, login))


async def lock_names(conn: asyncpg.Connection, *names: str) -> None:
    """Hold a username and an address for this transaction, so two registrations (one waiting, one
    not) cannot both take the same one."""
    for name in sorted({name.lower() for name in names}):
        await conn.execute(LOCK_NAME_SQL, name)


# --- registering while sign-up needs approval --------------------------------------------------------


async def request_to_join(
    conn: asyncpg.Connection, *, username: str, email: str, password_hash: str, display_name: str, answer: str
) -> Waiting | None:
    """Record a request to join and signup.requested, in the caller's transaction; None when the
    address is taken meanwhile (409 when the username is)."""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(INSERT_SQL, username, email, password_hash, display_name, answer.strip())
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "signups_username_key":
            raise accounts.username_taken() from None
        return None
    waiting = _waiting(row)
    await outbox.write_event(conn, SignupRequested(user_id=waiting.id, username=waiting.username), actor_id=None)
    return waiting


async def create_signup_token(conn: asyncpg.Connection, waiting: Waiting) -> str:
    """A link's token that confirms a waiting person's address; only its SHA-256 is kept."""
    token = secrets.token_urlsafe(32)
    await conn.execute(INSERT_LINK_SQL, token_digest(token), waiting.id, waiting.email, VERIFY_TOKEN_TTL)
    return token


async def use_signup_token(conn: asyncpg.Connection, token: str) -> Waiting | None:
    """Confirm a waiting person's address with a link's token; None when it is not usable."""
    signup_id = await conn.fetchval(USE_LINK_SQL, token_digest(token))
    if signup_id is None:
        return None
    return _maybe(await conn.fetchrow(VERIFY_SQL, signup_id))


# --- deciding -------------------------------------------------------------------------------------------


def already_decided() -> ApiError:
    return ApiError(404, "not_found", "Nobody with that request is waiting: someone may have decided already.")


async def decide(rt: Runtime, who: Session, signup_id: int, decision: str, note: str | None = None) -> Decided:
    """Approve or decline a waiting account (moderators and admins), then mail the person.

    404 when nobody with that id waits (decided meanwhile); 409 when approving a request whose
    username or address a member has taken since (`tica user create` does not know of requests).
    """
    access.require_staff(who, REFUSAL)
    if decision not in DECISIONS:
        raise accounts.invalid({"decision": "Choose to approve or decline"})
    text = clean_note(note)
    async with rt.pool.acquire() as conn, conn.transaction():
        waiting = _maybe(await conn.fetchrow(LOCK_SQL, signup_id))
        if waiting is None:
            raise already_decided()
        if decision == "approve":
            await _approve(conn, who, waiting, text)
        else:
            await _decline(conn, who, waiting, text)
    await _tell(rt, waiting, decision == "approve", text)
    return Decided(waiting.id, decision == "approve", waiting.username, waiting.display_name)


async def _approve(conn: asyncpg.Connection, who: Session, waiting: Waiting, note: str) -> None:
    try:
        async with conn.transaction():
            await conn.fetchval(APPROVE_SQL, waiting.id)
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409,
            "conflict",
            "A member now uses this username or email address, so this request cannot become an account. "
            "You can decline it with a note.",
        ) from None
    await conn.execute(MOVE_TOKENS_SQL, waiting.id)
    await conn.execute(DELETE_SQL, waiting.id)
    registered = UserRegistered(
        user_id=waiting.id,
        username=waiting.username,
        display_name=waiting.display_name,
        email=waiting.email,
        email_verified=waiting.email_verified,
    )
    await outbox.write_event(conn, registered, actor_id=waiting.id)
    await outbox.write_event(conn, SignupDecided(user_id=waiting.id, approved=True), actor_id=who.user_id)
    await audit.record_by(
        conn,
        who,
        "signup.approve",
        waiting.id,
        reason=note or None,
        before={"status": "waiting"},
        after={"status": "approved"},
    )


async def _decline(conn: asyncpg.Connection, who: Session, waiting: Waiting, note: str) -> None:
    await conn.execute(DELETE_SQL, waiting.id)
    await outbox.write_event(conn, SignupDecided(user_id=waiting.id, approved=False), actor_id=who.user_id)
    await audit.record_by(
        conn,
        who,
        "signup.decline",
        waiting.id,
        reason=note or None,
        before={"status": "waiting"},
        after={"status": "declined"},
    )


async def _tell(rt: Runtime, waiting: Waiting, approved: bool, note: str) -> None:
    """The person's mail about the decision (after it is committed)."""
    base_url = rt.settings.public_url
    if approved:
        mail = mails.approved_mail(
            base_url,
            display_name=waiting.display_name,
            username=waiting.username,
            verified=waiting.email_verified,
            note=note,
        )
        key = f"signup-approved:{waiting.id}"
    else:
        mail = mails.declined_mail(base_url, display_name=waiting.display_name, note=note)
        key = f"signup-declined:{waiting.id}"
    await mails.send(rt, to=waiting.email, mail=mail, key=key)
