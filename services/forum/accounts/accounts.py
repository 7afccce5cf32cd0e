"""Accounts: registration, email verification, logging in and out, profiles, password
reset and personal API tokens: the JSON API, its SQL and its rules.

The pages (account_pages.py) and the `tica user create` command call the same
actions, so a rule is written once. Actions raise ApiError; pages turn it into a form error.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum.accounts import passwords
from shared import ratelimit
from shared.api import ApiRouter, Field, Schema, path_int, read_json
from shared.events import UserRegistered, UserSeen, UserUpdated, write_event
from shared.jobs import enqueue_mail
from shared.pages import set_csrf_cookie
from shared.ratelimit import rate_key
from shared.sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL_S, Session, token_digest
from shared.web import ApiError, Runtime, check_csrf, require_viewer, runtime, viewer

api = ApiRouter(tag="accounts")

# --- rules -------------------------------------------------------------------------

USERNAME_MIN, USERNAME_MAX = 3, 20
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# Names that would let someone pass as the site, its staff or a system message.
RESERVED_USERNAMES = frozenset({
    "admin", "admins", "administrator", "moderator", "moderators", "mod", "mods", "system", "tica", "support",
    "anonymous", "anon", "staff", "team", "official", "root", "sysadmin", "superuser", "help", "helpdesk",
    "security", "safeguarding", "abuse", "postmaster", "webmaster", "hostmaster", "noreply", "no-reply",
    "nobody", "null", "undefined", "none", "everyone", "here", "all", "api", "www", "mail", "email", "login",
    "logout", "register", "signup", "verify", "reset", "settings", "static", "dev", "nhs", "guest", "user",
    "users", "member", "members", "bot", "tica-bot", "notifications", "search",
})  # fmt: skip
EMAIL_MAX = 254
EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s.\x00-\x1f\x7f]+(\.[^@\s.\x00-\x1f\x7f]+)+")
DISPLAY_NAME_MAX, PRONOUNS_MAX, BIO_MAX, TOKEN_NAME_MAX = 60, 40, 3000, 60
ORGANISATION_MAX, INTERESTS_MAX = 100, 500
# Characters that reorder text (a name could be made to read as someone else's).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")

VERIFY_TOKEN_TTL = timedelta(days=7)
RESET_TOKEN_TTL = timedelta(hours=1)
MAX_API_TOKENS = 25

LOGIN_WINDOW_S = 15 * 60
LOGIN_ACCOUNT_LIMIT = 5  # failed logins per login name
LOGIN_ADDRESS_LIMIT = 20  # failed logins per client address
RESET_WINDOW_S = 15 * 60
RESET_ADDRESS_LIMIT = 10  # reset requests and confirmations per client address
RESET_EMAIL_WINDOW_S = 60 * 60
RESET_EMAIL_LIMIT = 3  # reset mails per address per hour
REGISTER_WINDOW_S = 60 * 60
REGISTER_ADDRESS_LIMIT = 10  # new accounts per client address per hour
RESEND_WINDOW_S = 60 * 60
RESEND_LIMIT = 3  # verification mails a member can ask for per hour

INVALID_LOGIN = "The username, email address or password is not right. Check them and try again."
EXPIRED_LINK = "This link has expired or was already used. You can ask for a new one."

# Background colours for initials avatars: each has a contrast of at least 4.5:1 with white text.
AVATAR_PALETTE = ("#005eb8", "#003087", "#006747", "#330072", "#7c2855", "#8a1538", "#425563", "#231f20")


@dataclass(frozen=True)
class User:
    """A member's account as the forum stores it."""

    id: int
    username: str
    email: str
    display_name: str
    pronouns: str | None
    bio: str
    roles: list[str]
    email_verified: bool
    created_at: datetime
    suspended_until: datetime | None = None
    suspended_reason: str | None = None
    password_hash: str = ""
    # The member directory (groups.py, directory.py): what they show, and whether they are listed.
    organisation: str = ""
    interests: str = ""
    in_directory: bool = True
    groups: tuple[dict[str, Any], ...] = ()  # {id, name, slug, owner}, by name
    badges: tuple[dict[str, Any], ...] = ()  # {id, name, description}, by name

    @property
    def suspended(self) -> bool:
        return self.suspended_until is not None and self.suspended_until > datetime.now(UTC)

    @property
    def group_ids(self) -> list[int]:
        return sorted(group["id"] for group in self.groups)


def username_problem(username: str) -> str | None:
    """What is wrong with a new username (None when it may be used, if nobody has it)."""
    if not username:
        return "Enter a username"
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX:
        return f"Usernames must be {USERNAME_MIN} to {USERNAME_MAX} characters long"
    if not USERNAME_RE.fullmatch(username):
        return (
            "Usernames can only use letters, numbers, underscores (_) and hyphens (-), "
            "and must start with a letter or number"
        )
    if username.lower() in RESERVED_USERNAMES:
        return "That username is reserved. Choose another one"
    return None


def email_problem(email: str) -> str | None:
    """What is wrong with an email address (a syntax check only: the verification mail proves it)."""
    if not email:
        return "Enter your email address"
    if len(email) > EMAIL_MAX or not EMAIL_RE.fullmatch(email):
        return "Enter an email address in the right format, like name@example.com"
    return None


def has_controls(text: str, *, allow_newlines: bool = False) -> bool:
    """Whether text has control characters (newlines aside, when allowed) or text-direction marks."""
    allowed = "\n\r\t" if allow_newlines else ""
    return any((unicodedata.category(c) == "Cc" and c not in allowed) or c in _BIDI_CONTROLS for c in text)


def profile_problems(
    *,
    display_name: str | None = None,
    pronouns: str | None = None,
    bio: str | None = None,
    organisation: str | None = None,
    interests: str | None = None,
) -> dict[str, str]:
    """Problems with profile fields (only those given), by field name."""
    problems: dict[str, str] = {}
    for name, value, limit, label, lines in (
        ("organisation", organisation, ORGANISATION_MAX, "Organisation", False),
        ("interests", interests, INTERESTS_MAX, "Interests", True),
    ):
        if value is not None and len(value) > limit:
            problems[name] = f"{label} must be {limit} characters or fewer"
        elif value is not None and has_controls(value, allow_newlines=lines):
            problems[name] = f"{label} cannot contain control characters or text-direction marks"
    if display_name is not None:
        if len(display_name) > DISPLAY_NAME_MAX:
            problems["display_name"] = f"Display names must be {DISPLAY_NAME_MAX} characters or fewer"
        elif has_controls(display_name):
            problems["display_name"] = "Display names cannot contain control characters or text-direction marks"
    if pronouns is not None:
        if len(pronouns) > PRONOUNS_MAX:
            problems["pronouns"] = f"Pronouns must be {PRONOUNS_MAX} characters or fewer"
        elif has_controls(pronouns):
            problems["pronouns"] = "Pronouns cannot contain control characters or text-direction marks"
    if bio is not None:
        if len(bio) > BIO_MAX:
            problems["bio"] = f"Your bio must be {BIO_MAX:,} characters or fewer"
        elif has_controls(bio, allow_newlines=True):
            problems["bio"] = "Your bio cannot contain control characters or text-direction marks"
    return problems


def registration_problems(*, username: str, email: str, password: str, display_name: str | None) -> dict[str, str]:
    """Every problem with a registration, by field name, in the order the form asks."""
    problems: dict[str, str] = {}
    for name, problem in (("username", username_problem(username)), ("email", email_problem(email))):
        if problem:
            problems[name] = problem
    problems.update(profile_problems(display_name=display_name))
    problem = passwords.password_problem(password, username=username, email=email)
    if problem:
        problems["password"] = problem
    return problems


def invalid(problems: dict[str, str]) -> ApiError:
    return ApiError(422, "invalid", "Some fields need attention.", problems)


# --- SQL: users ------------------------------------------------------------------------

USER_COLUMNS = """id, username, email, display_name, pronouns, bio, roles, email_verified_at IS NOT NULL AS verified,
created_at, suspended_until, suspended_reason, password_hash, organisation, interests, in_directory,
(SELECT coalesce(jsonb_agg(jsonb_build_object('id', g.id, 'name', g.name, 'slug', g.slug, 'owner', m.owner)
                           ORDER BY lower(g.name), g.id), '[]')
 FROM forum.group_members m JOIN forum.groups g ON g.id = m.group_id WHERE m.user_id = users.id) AS groups,
(SELECT coalesce(jsonb_agg(jsonb_build_object('id', b.id, 'name', b.name, 'description', b.description)
                           ORDER BY lower(b.name), b.id), '[]')
 FROM forum.user_badges ub JOIN forum.badges b ON b.id = ub.badge_id WHERE ub.user_id = users.id) AS badges"""


def _user(row: asyncpg.Record) -> User:
    return User(
        row["id"],
        row["username"],
        row["email"],
        row["display_name"],
        row["pronouns"],
        row["bio"],
        list(row["roles"]),
        row["verified"],
        row["created_at"],
        row["suspended_until"],
        row["suspended_reason"],
        row["password_hash"],
        row["organisation"],
        row["interests"],
        row["in_directory"],
        tuple(json_list(row["groups"])),
        tuple(json_list(row["badges"])),
    )


def json_list(value: Any) -> list[dict[str, Any]]:
    """A jsonb array from a pool with the json codec (a list) or a bare connection (its text)."""
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


async def user_by_id(conn: asyncpg.Connection, user_id: int) -> User | None:
    row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM forum.users WHERE id = $1", user_id)
    return _user(row) if row else None


async def user_by_username(conn: asyncpg.Connection, username: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM forum.users WHERE lower(username) = lower($1)", username)
    return _user(row) if row else None


async def user_by_email(conn: asyncpg.Connection, email: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM forum.users WHERE lower(email) = lower($1)", email)
    return _user(row) if row else None


async def user_by_login(conn: asyncpg.Connection, login: str) -> User | None:
    """The account a login names: an email address when it has an @, else a username."""
    return await (user_by_email(conn, login) if "@" in login else user_by_username(conn, login))


async def insert_user(
    conn: asyncpg.Connection,
    *,
    username: str,
    email: str,
    password_hash: str,
    display_name: str,
    roles: list[str],
    verified: bool,
) -> User:
    row = await conn.fetchrow(
        "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at) "
        f"VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END) RETURNING {USER_COLUMNS}",
        username,
        email,
        password_hash,
        display_name,
        roles,
        verified,
    )
    return _user(row)


async def unused_user_id(conn: asyncpg.Connection) -> int:
    """An id no account will ever have (taken from the users' sequence)."""
    value: int = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('forum.users', 'id'))")
    return value


async def update_profile(conn: asyncpg.Connection, user_id: int, changes: dict[str, Any]) -> User:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
    row = await conn.fetchrow(
        f"UPDATE forum.users SET {sets}, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}",
        user_id,
        *changes.values(),
    )
    return _user(row)


async def set_password_hash(conn: asyncpg.Connection, user_id: int, password_hash: str) -> None:
    await conn.execute(
        "UPDATE forum.users SET password_hash = $2, updated_at = now() WHERE id = $1", user_id, password_hash
    )


async def mark_email_verified(conn: asyncpg.Connection, user_id: int) -> User:
    row = await conn.fetchrow(
        "UPDATE forum.users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() "
        f"WHERE id = $1 RETURNING {USER_COLUMNS}",
        user_id,
    )
    return _user(row)


async def record_visit(conn: asyncpg.Connection, user_id: int) -> datetime:
    """At login: the last visit becomes the previous one (for "new since your last visit")."""
    seen_at: datetime = await conn.fetchval(
        "UPDATE forum.users SET previous_visit_at = last_seen_at, last_seen_at = now() WHERE id = $1 "
        "RETURNING last_seen_at",
        user_id,
    )
    return seen_at


# A member seen again after this long starts a new visit ("new since your last visit").
VISIT_GAP_SQL = "interval '1 hour'"
ACTIVITY_EVERY_S = 300


def _activity_key(rt: Runtime, user_id: int) -> str:
    return f"{rt.settings.redis_prefix}seen:{user_id}"


async def note_activity(rt: Runtime, who: Session) -> None:
    """Record that a member is active, at most every few minutes: last_seen_at and a user.seen event
    (notify's "away" and digests use it). An absence of an hour starts a new visit."""
    if not await rt.redis.set(_activity_key(rt, who.user_id), "1", nx=True, ex=ACTIVITY_EVERY_S):
        return
    async with rt.pool.acquire() as conn, conn.transaction():
        seen_at = await conn.fetchval(
            "UPDATE forum.users SET previous_visit_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < now() - "
            f"{VISIT_GAP_SQL} THEN last_seen_at ELSE previous_visit_at END, last_seen_at = now() WHERE id = $1 "
            "RETURNING last_seen_at",
            who.user_id,
        )
        if seen_at is not None:
            await write_event(conn, UserSeen(user_id=who.user_id, seen_at=seen_at.isoformat()), actor_id=who.user_id)


# --- SQL: one-time email tokens ---------------------------------------------------------


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


# --- SQL: personal API tokens --------------------------------------------------------------


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


# --- JSON shapes ---------------------------------------------------------------------


def initials(display_name: str, username: str) -> str:
    """One or two letters for an avatar: first and last word of the display name."""
    words = [w for w in re.split(r"\s+", display_name) if w and w[0].isalnum()]
    if not words:
        words = [username]
    letters = words[0][0] + (words[-1][0] if len(words) > 1 else "")
    return letters.upper()


def avatar_index(user_id: int) -> int:
    """Which palette colour a member's avatar has: fixed by their id."""
    return user_id % len(AVATAR_PALETTE)


def avatar(user: User) -> dict[str, str]:
    return {"initials": initials(user.display_name, user.username), "colour": AVATAR_PALETTE[avatar_index(user.id)]}


def public_json(user: User) -> dict[str, Any]:
    """What anyone may see of an account."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "pronouns": user.pronouns,
        "bio": user.bio,
        "roles": list(user.roles),
        "created_at": user.created_at.isoformat(),
        "avatar": avatar(user),
        "organisation": user.organisation,
        "interests": user.interests,
        "badges": [dict(badge) for badge in user.badges],
    }


def private_json(user: User) -> dict[str, Any]:
    """What the member (and admins) see: the public profile plus email, verification, groups and directory choice."""
    return {
        **public_json(user),
        "email": user.email,
        "email_verified": user.email_verified,
        "groups": [dict(group) for group in user.groups],
        "in_directory": user.in_directory,
    }


def json_for(user: User, session: Session | None) -> dict[str, Any]:
    """The user JSON a viewer may see: private to its owner and admins, public to everyone else."""
    if session is not None and (session.user_id == user.id or session.is_admin):
        return private_json(user)
    return public_json(user)


def token_json(row: asyncpg.Record) -> dict[str, Any]:
    last_used = row["last_used_at"]
    return {
        "id": row["id"],
        "name": row["name"],
        "created_at": row["created_at"].isoformat(),
        "last_used_at": last_used.isoformat() if last_used else None,
    }


def updated_event(user: User) -> UserUpdated:
    """user.updated with the account as it is now, its groups included (notify keeps them)."""
    until = user.suspended_until.isoformat() if user.suspended_until else None
    return UserUpdated(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=list(user.roles),
        email_verified=user.email_verified,
        suspended_until=until,
        email=user.email,
        group_ids=user.group_ids,
    )


# --- mail ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str


def compose(
    *, greeting_name: str, paragraphs: list[str], link: str | None = None, after: list[str] | None = None, subject: str
) -> Mail:
    """A plain, kind mail in text and HTML; every piece of text is escaped in the HTML part."""
    parts_text = [f"Hello {greeting_name},", *paragraphs]
    parts_html = [f"<p>Hello {escape(greeting_name)},</p>", *(f"<p>{escape(p)}</p>" for p in paragraphs)]
    if link:
        parts_text.append(link)
        parts_html.append(f'<p><a href="{escape(link)}">{escape(link)}</a></p>')
    for paragraph in [*(after or []), "tica community"]:
        parts_text.append(paragraph)
        parts_html.append(f"<p>{escape(paragraph)}</p>")
    return Mail(subject, "\n\n".join(parts_text) + "\n", "\n".join(parts_html))


def verification_mail(base_url: str, user: User, token: str) -> Mail:
    return compose(
        subject="Confirm your email address for tica",
        greeting_name=user.display_name,
        paragraphs=["Welcome to tica. Confirm your email address by opening this link:"],
        link=f"{base_url}/verify?token={token}",
        after=[
            f"The link works for {VERIFY_TOKEN_TTL.days} days.",
            "If you did not create an account on tica, you can ignore this email. Nothing else will happen.",
        ],
    )


def already_registered_mail(base_url: str, user: User) -> Mail:
    return compose(
        subject="Someone tried to create a tica account with your email address",
        greeting_name=user.display_name,
        paragraphs=[
            "Someone, perhaps you, tried to create a new tica account with this email address. You already have "
            f"an account, with the username {user.username}, so we did not create another one.",
            f"If it was you, you can log in at {base_url}/login. If you have forgotten your password, "
            "you can choose a new one here:",
        ],
        link=f"{base_url}/reset",
        after=["If it was not you, you do not need to do anything. Your account is safe."],
    )


def reset_mail(base_url: str, user: User, token: str) -> Mail:
    return compose(
        subject="Choose a new password for tica",
        greeting_name=user.display_name,
        paragraphs=[
            f"Someone asked to reset the password of your tica account ({user.username}). "
            "To choose a new password, open this link:"
        ],
        link=f"{base_url}/reset/confirm?token={token}",
        after=[
            "The link works for 1 hour and only once.",
            "If you did not ask for this, you can ignore this email. Your password stays the same.",
        ],
    )


async def send(rt: Runtime, *, to: str, mail: Mail, key: str) -> None:
    await enqueue_mail(rt.extras["queue"], to=to, subject=mail.subject, text=mail.text, html=mail.html, key=key)


# --- actions ---------------------------------------------------------------------------


async def create_account(
    conn: asyncpg.Connection,
    *,
    username: str,
    email: str,
    password_hash: str,
    display_name: str | None,
    roles: list[str],
    verified: bool,
) -> User:
    """Insert an account and record user.registered, in the caller's transaction (409 when taken)."""
    try:
        async with conn.transaction():
            user = await insert_user(
                conn,
                username=username,
                email=email,
                password_hash=password_hash,
                display_name=display_name or username,
                roles=roles,
                verified=verified,
            )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "users_username_key":
            raise _username_taken() from None
        raise ApiError(
            409,
            "email_taken",
            "An account already uses that email address.",
            {"email": "An account already uses that email address"},
        ) from None
    registered = UserRegistered(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        email_verified=user.email_verified,
    )
    await write_event(conn, registered, actor_id=user.id)
    return user


def _username_taken() -> ApiError:
    return ApiError(
        409,
        "username_taken",
        "That username is already taken.",
        {"username": "That username is already taken. Choose another one"},
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
    await ratelimit.enforce(
        rt.redis,
        rate_key(rt.settings.redis_prefix, "register-address", address),
        limit=REGISTER_ADDRESS_LIMIT,
        window_s=REGISTER_WINDOW_S,
        message="Too many new accounts from your network. Please try again in an hour.",
    )
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
            await send(
                rt,
                to=done.owner.email,
                mail=already_registered_mail(base_url, done.owner),
                key=f"register-exists:{done.owner.id}:{secrets.token_hex(8)}",
            )
    elif done.token is not None:
        await send(
            rt,
            to=done.user.email,
            mail=verification_mail(base_url, done.user, done.token),
            key=f"verify:{token_digest(done.token)[:16]}",
        )
    return done.user


async def _register(
    conn: asyncpg.Connection, *, username: str, email: str, password_hash: str, display_name: str | None
) -> Registration:
    if await user_by_username(conn, username) is not None:
        raise _username_taken()
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
    await ratelimit.enforce(
        rt.redis,
        rate_key(rt.settings.redis_prefix, "resend-verify", str(session.user_id)),
        limit=RESEND_LIMIT,
        window_s=RESEND_WINDOW_S,
        message="We have sent several links already. Please check your inbox and spam folder, or try again in an hour.",
    )
    async with rt.pool.acquire() as conn, conn.transaction():
        user = await user_by_id(conn, session.user_id)
        if user is None:
            raise ApiError(401, "unauthorized", "Please log in first.")
        if user.email_verified:
            return
        token = await create_email_token(conn, user=user, purpose="verify", ttl=VERIFY_TOKEN_TTL)
    await send(
        rt,
        to=user.email,
        mail=verification_mail(rt.settings.public_url, user, token),
        key=f"verify:{token_digest(token)[:16]}",
    )


def _bad_token(token: str) -> bool:
    return not token or len(token) > 200


async def verify_email(rt: Runtime, token: str) -> User:
    """Use a verification token: the account's email address is confirmed (400 when unusable)."""
    if _bad_token(token):
        raise ApiError(400, "invalid_token", EXPIRED_LINK)
    async with rt.pool.acquire() as conn, conn.transaction():
        user_id = await use_email_token(conn, token, "verify")
        if user_id is None:
            raise ApiError(400, "invalid_token", EXPIRED_LINK)
        user = await mark_email_verified(conn, user_id)
        await write_event(conn, updated_event(user), actor_id=user.id)
    return user


async def log_in(
    rt: Runtime, *, login: str, password: str, address: str, previous: Session | None = None
) -> tuple[User, Session]:
    """Check a login and password and open a session.

    The answer for a wrong password and for an unknown login is the same, after the
    same work (a dummy hash check). Attempts count against the login name and the
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
    prefix = rt.settings.redis_prefix
    account_key = rate_key(prefix, "login-account", login.lower())
    address_key = rate_key(prefix, "login-address", address)
    result = await ratelimit.hit(rt.redis, account_key, limit=LOGIN_ACCOUNT_LIMIT, window_s=LOGIN_WINDOW_S)
    if not result.allowed:
        raise ratelimit.too_many(result, _wait_message(result))
    result = await ratelimit.hit(rt.redis, address_key, limit=LOGIN_ADDRESS_LIMIT, window_s=LOGIN_WINDOW_S)
    if not result.allowed:
        await ratelimit.undo(rt.redis, account_key)
        raise ratelimit.too_many(result, _wait_message(result))
    async with rt.pool.acquire() as conn:
        user = await user_by_login(conn, login)
    if user is None:
        await passwords.verify_dummy(password)
        raise ApiError(401, "invalid_login", INVALID_LOGIN)
    if not await passwords.verify_password(user.password_hash, password):
        raise ApiError(401, "invalid_login", INVALID_LOGIN)
    await ratelimit.clear(rt.redis, account_key)
    await ratelimit.undo(rt.redis, address_key)
    if user.suspended:
        raise _suspended(user)
    return user, await _open_session(rt, user, password, previous)


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


async def _open_session(rt: Runtime, user: User, password: str, previous: Session | None) -> Session:
    if previous is not None and not previous.via_token:
        await rt.sessions.delete(previous)  # a fresh id at login: no session fixation
    new_hash = await passwords.hash_password(password) if passwords.needs_rehash(user.password_hash) else None
    async with rt.pool.acquire() as conn, conn.transaction():
        seen_at = await record_visit(conn, user.id)
        await write_event(conn, UserSeen(user_id=user.id, seen_at=seen_at.isoformat()), actor_id=user.id)
        if new_hash:
            await set_password_hash(conn, user.id, new_hash)
    await rt.redis.set(_activity_key(rt, user.id), "1", ex=ACTIVITY_EVERY_S)  # login just recorded the visit
    return await rt.sessions.create(
        user_id=user.id, username=user.username, roles=list(user.roles), group_ids=user.group_ids
    )


async def request_reset(rt: Runtime, *, email: str, address: str) -> None:
    """Mail a one-time reset link when an account has this address; the same answer either way."""
    email = email.strip()
    problem = email_problem(email)
    if problem:
        raise invalid({"email": problem})
    prefix = rt.settings.redis_prefix
    await ratelimit.enforce(
        rt.redis, rate_key(prefix, "reset-address", address), limit=RESET_ADDRESS_LIMIT, window_s=RESET_WINDOW_S
    )
    await ratelimit.enforce(
        rt.redis,
        rate_key(prefix, "reset-email", email.lower()),
        limit=RESET_EMAIL_LIMIT,
        window_s=RESET_EMAIL_WINDOW_S,
        message="We have sent several links to that address already. Please check your inbox "
        "and spam folder, or try again in an hour.",
    )
    async with rt.pool.acquire() as conn, conn.transaction():
        user = await user_by_email(conn, email)
        if user is None:
            return
        token = await create_email_token(conn, user=user, purpose="reset", ttl=RESET_TOKEN_TTL)
    await send(
        rt, to=user.email, mail=reset_mail(rt.settings.public_url, user, token), key=f"reset:{token_digest(token)[:16]}"
    )


async def reset_token_user(rt: Runtime, token: str) -> User | None:
    """The account a reset link is for, while the link is usable (for the page that asks for a password)."""
    if _bad_token(token):
        return None
    async with rt.pool.acquire() as conn:
        return await find_email_token(conn, token, "reset")


async def confirm_reset(rt: Runtime, *, token: str, password: str, address: str) -> User:
    """Set a new password with a reset token; every session of the account ends."""
    await ratelimit.enforce(
        rt.redis,
        rate_key(rt.settings.redis_prefix, "reset-confirm-address", address),
        limit=RESET_ADDRESS_LIMIT * 2,
        window_s=RESET_WINDOW_S,
    )
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
        # Opening the link proved the address is theirs.
        updated = await mark_email_verified(conn, user.id)
        if not user.email_verified:
            await write_event(conn, updated_event(updated), actor_id=user.id)
    await rt.sessions.delete_all(user.id)
    prefix = rt.settings.redis_prefix
    for login in (user.username.lower(), user.email.lower()):
        await ratelimit.clear(rt.redis, rate_key(prefix, "login-account", login))
    return updated


async def update_me(rt: Runtime, session: Session, changes: dict[str, Any]) -> User:
    """Change the viewer's display name, pronouns, bio, organisation, interests or whether the
    member directory lists them; records user.updated with the change."""
    texts = {name: value for name, value in changes.items() if name != "in_directory"}
    problems = profile_problems(**texts)
    if problems:
        raise invalid(problems)
    values = dict(changes)
    if "pronouns" in values:
        values["pronouns"] = values["pronouns"] or None
    for name in ("bio", "organisation", "interests"):
        if name in values:
            values[name] = values[name] or ""
    if values.get("in_directory", True) is None:
        del values["in_directory"]
    async with rt.pool.acquire() as conn, conn.transaction():
        user = await user_by_id(conn, session.user_id)
        if user is None:
            raise ApiError(401, "unauthorized", "Please log in first.")
        if "display_name" in values:
            values["display_name"] = values["display_name"] or user.username
        if values:
            user = await update_profile(conn, user.id, values)
            await write_event(conn, updated_event(user), actor_id=user.id)
    return user


async def create_api_token(rt: Runtime, session: Session, name: str) -> dict[str, Any]:
    """A new personal API token: `{id, name, token, created_at}`; the token is shown this once."""
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
    return {**token_json(row), "token": token}


async def list_api_tokens(rt: Runtime, session: Session) -> list[dict[str, Any]]:
    async with rt.pool.acquire() as conn:
        return [token_json(row) for row in await active_api_tokens(conn, session.user_id)]


async def revoke_api_token(rt: Runtime, session: Session, token_id: int) -> None:
    """Revoke one of the viewer's tokens (404 when it is not theirs or already revoked)."""
    async with rt.pool.acquire() as conn, conn.transaction():
        digest = await revoke_api_token_row(conn, user_id=session.user_id, token_id=token_id)
        if digest is None:
            raise ApiError(404, "not_found", "There is no such token.")
        await rt.sessions.revoke_token(digest, session.user_id)


async def current_user(rt: Runtime, session: Session) -> User:
    """The viewer's account; 401 (and the session ends) when it no longer exists."""
    async with rt.pool.acquire() as conn:
        user = await user_by_id(conn, session.user_id)
    if user is None:
        if not session.via_token:
            await rt.sessions.delete(session)
        raise ApiError(401, "unauthorized", "Please log in first.")
    return user


async def refresh_sessions(rt: Runtime, user_id: int) -> None:
    """Rewrite the member's live sessions and API tokens with their roles and groups as stored now.

    Called after a change commits; it reads afresh, so of two changes in a row the later
    refresh carries both.
    """
    async with rt.pool.acquire() as conn:
        user = await user_by_id(conn, user_id)
    if user is not None:
        await rt.sessions.refresh_user(
            user.id, username=user.username, roles=list(user.roles), group_ids=user.group_ids
        )


async def profile(rt: Runtime, username: str) -> User:
    """An account by username (404 when there is none)."""
    # Every username matches the pattern; anything else (a NUL byte, say) cannot name anyone.
    if len(username) > 100 or not USERNAME_RE.fullmatch(username):
        raise ApiError(404, "not_found", "There is no member with that username.")
    async with rt.pool.acquire() as conn:
        user = await user_by_username(conn, username)
    if user is None:
        raise ApiError(404, "not_found", "There is no member with that username.")
    return user


# --- HTTP helpers ------------------------------------------------------------------------


def client_address(request: Request) -> str:
    """The client's address (uvicorn resolves X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON: a cross-site form cannot send that without a preflight,
    which closes login and registration CSRF."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the request body as JSON (Content-Type: application/json).")


def set_session_cookies(response: Response, request: Request, session: Session) -> None:
    """tica_session (HttpOnly) and tica_csrf (readable by our script), both SameSite=Lax."""
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    set_csrf_cookie(response, request, session.csrf)


def clear_session_cookies(response: Response, request: Request) -> None:
    secure = request.url.scheme == "https"
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="lax", secure=secure)


async def writer(request: Request) -> Session:
    """The viewer of a write: signed in, and with the CSRF token when the session cookie is used."""
    session = await require_viewer(request)
    check_csrf(request, session)
    return session


# --- endpoints ------------------------------------------------------------------------------

REGISTER_IN = Schema(
    "Registration",
    {
        "username": Field(
            "string",
            required=True,
            max_length=200,
            description="3-20 letters, digits, _ or -, starting with a letter or digit",
        ),
        "email": Field("string", required=True, max_length=EMAIL_MAX),
        "password": Field(
            "string",
            required=True,
            strip=False,
            max_length=1000,
            description="at least 10 characters, not a common password",
        ),
        "display_name": Field("string", nullable=True, max_length=1000),
    },
)
VERIFY_IN = Schema("EmailVerification", {"token": Field("string", required=True, max_length=1000)})
LOGIN_IN = Schema(
    "Login",
    {
        "login": Field("string", required=True, max_length=EMAIL_MAX, description="username or email address"),
        "password": Field("string", required=True, strip=False, max_length=1000),
    },
)
PROFILE_IN = Schema(
    "ProfileChange",
    {
        "display_name": Field("string", nullable=True, max_length=DISPLAY_NAME_MAX),
        "pronouns": Field("string", nullable=True, max_length=PRONOUNS_MAX),
        "bio": Field("string", nullable=True, max_length=BIO_MAX),
        "organisation": Field("string", nullable=True, max_length=ORGANISATION_MAX),
        "interests": Field(
            "string",
            nullable=True,
            max_length=INTERESTS_MAX,
            description="what you would like to talk about, shown in the member directory",
        ),
        "in_directory": Field("boolean", nullable=True, description="false: the member directory leaves you out"),
    },
)
RESET_IN = Schema("PasswordResetRequest", {"email": Field("string", required=True, max_length=1000)})
RESET_CONFIRM_IN = Schema(
    "PasswordReset",
    {
        "token": Field("string", required=True, max_length=1000),
        "password": Field("string", required=True, strip=False, max_length=1000),
    },
)
TOKEN_IN = Schema("ApiTokenRequest", {"name": Field("string", required=True, max_length=1000)})


@api.post("/api/users", body=REGISTER_IN, answers={201: "User; a verification email is sent"})
async def create_user(request: Request) -> Response:
    """Register an account (201 user); a verification email is sent.

    The answer does not reveal whether the email address already has an account:
    then nothing is created, the body looks the same, and the address's owner is told
    by email that someone tried to register with it. 409 `username_taken`, 422 with
    `fields` for a bad username, email or password, 415 for a body that is not JSON.
    """
    require_json(request)
    data = await read_json(request, REGISTER_IN)
    user = await register(
        runtime(request),
        username=data["username"],
        email=data["email"],
        password=data["password"],
        display_name=data.get("display_name"),
        address=client_address(request),
    )
    return JSONResponse(private_json(user), status_code=201)


@api.post("/api/users/verify", body=VERIFY_IN, answers={200: "User (email verified)"})
async def verify_user(request: Request) -> Response:
    """Confirm an email address with the token from the verification mail (400 `invalid_token`)."""
    require_json(request)
    data = await read_json(request, VERIFY_IN)
    user = await verify_email(runtime(request), data["token"])
    return JSONResponse(private_json(user))


@api.post("/api/me/verify-email", answers={202: "A new verification link is on its way"}, auth=True)
async def resend_verify(request: Request) -> Response:
    """Mail a new verification link to the viewer's own address."""
    session = await writer(request)
    await resend_verification(runtime(request), session)
    return JSONResponse({"status": "sent"}, status_code=202)


@api.post("/api/session", body=LOGIN_IN, answers={200: "User; sets tica_session and tica_csrf cookies"})
async def create_session(request: Request) -> Response:
    """Log in with a username or email address and a password.

    401 `invalid_login` (the same for an unknown login and a wrong password),
    403 `suspended` (message and fields `until`, `reason`), 429 with Retry-After after
    5 failures for one login or 20 from one address in 15 minutes.
    """
    require_json(request)
    data = await read_json(request, LOGIN_IN)
    rt = runtime(request)
    previous = await _cookie_session(request)
    user, session = await log_in(
        rt, login=data["login"], password=data["password"], address=client_address(request), previous=previous
    )
    response = JSONResponse(private_json(user))
    set_session_cookies(response, request, session)
    return response


async def _cookie_session(request: Request) -> Session | None:
    """The session the cookie names, if any (a login ignores a bearer token)."""
    return await runtime(request).sessions.get(request.cookies.get(SESSION_COOKIE))


@api.delete("/api/session", answers={204: "Logged out"}, auth=True)
async def delete_session(request: Request) -> Response:
    """Log out this session and clear its cookies."""
    session = await writer(request)
    if session.via_token:
        raise ApiError(
            400, "no_session", "This request uses an API token, not a session. To stop using the token, revoke it."
        )
    await runtime(request).sessions.delete(session)
    response = Response(status_code=204)
    clear_session_cookies(response, request)
    return response


@api.post("/api/session/revoke-all", answers={204: "Every session of the viewer ended"}, auth=True)
async def revoke_all_sessions(request: Request) -> Response:
    """Log out everywhere: every session of the viewer ends (API tokens stay until revoked)."""
    session = await writer(request)
    await runtime(request).sessions.delete_all(session.user_id)
    response = Response(status_code=204)
    if not session.via_token:
        clear_session_cookies(response, request)
    return response


@api.get("/api/me", answers={200: "User with roles, groups, email"}, auth=True)
async def get_me(request: Request) -> Response:
    """The viewer's own account (401 when anonymous)."""
    session = await require_viewer(request)
    return JSONResponse(private_json(await current_user(runtime(request), session)))


@api.patch("/api/me", body=PROFILE_IN, answers={200: "User"}, auth=True)
async def patch_me(request: Request) -> Response:
    """Change the viewer's display name, pronouns, bio, organisation, interests or directory listing.

    An empty display name means the username; `in_directory: false` leaves the member directory.
    """
    session = await writer(request)
    data = await read_json(request, PROFILE_IN)
    user = await update_me(runtime(request), session, data)
    return JSONResponse(private_json(user))


@api.post("/api/password-reset", body=RESET_IN, answers={202: "A link is mailed if an account has the address"})
async def password_reset(request: Request) -> Response:
    """Ask for a password reset link; always 202, whether or not an account has the address."""
    require_json(request)
    data = await read_json(request, RESET_IN)
    await request_reset(runtime(request), email=data["email"], address=client_address(request))
    return JSONResponse(
        {
            "status": "accepted",
            "message": "If an account uses that address, we have sent it a link "
            "to choose a new password. The link works for 1 hour.",
        },
        status_code=202,
    )


@api.post("/api/password-reset/confirm", body=RESET_CONFIRM_IN, answers={200: "User"})
async def password_reset_confirm(request: Request) -> Response:
    """Choose a new password with the token from the reset mail; every session of the account ends."""
    require_json(request)
    data = await read_json(request, RESET_CONFIRM_IN)
    user = await confirm_reset(
        runtime(request), token=data["token"], password=data["password"], address=client_address(request)
    )
    return JSONResponse(private_json(user))


@api.post("/api/me/tokens", body=TOKEN_IN, answers={201: "{id, name, token, created_at}"}, auth=True)
async def post_token(request: Request) -> Response:
    """Create a personal API token (`Authorization: Bearer <token>`); the token is shown only now."""
    session = await writer(request)
    data = await read_json(request, TOKEN_IN)
    return JSONResponse(await create_api_token(runtime(request), session, data["name"]), status_code=201)


@api.get("/api/me/tokens", answers={200: "{items: [token], next}"}, auth=True)
async def get_tokens(request: Request) -> Response:
    """The viewer's live API tokens (never the tokens themselves)."""
    session = await require_viewer(request)
    return JSONResponse({"items": await list_api_tokens(runtime(request), session), "next": None})


@api.delete("/api/me/tokens/{token_id}", answers={204: "Revoked"}, auth=True)
async def delete_token(request: Request) -> Response:
    """Revoke one of the viewer's API tokens; it stops working at once."""
    session = await writer(request)
    await revoke_api_token(runtime(request), session, path_int(request, "token_id"))
    return Response(status_code=204)


@api.get("/api/users/{username}", answers={200: "Public profile"})
async def get_user(request: Request) -> Response:
    """A member's public profile (with email for the member and admins); 404 for an unknown username."""
    user = await profile(runtime(request), request.path_params["username"])
    return JSONResponse(json_for(user, await viewer(request)))
