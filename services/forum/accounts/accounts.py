"""Accounts: who a member is. The rules for usernames, email addresses and profiles, the
users' SQL, avatars, creating an account, changing a profile, and user.updated.

Registration (registration.py), logging in (login.py), password reset (password_reset.py) and
API tokens (tokens.py) build on these; the JSON API (api.py), the pages (pages.py) and
`tica user create` call the same actions, so a rule is written once. Actions raise ApiError;
pages turn it into a form error.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.forum.accounts import passwords
from services.forum.outbox import write_event
from shared.events import UserRegistered, UserUpdated
from shared.sessions import Session
from shared.web import ApiError, Runtime

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
DISPLAY_NAME_MAX, PRONOUNS_MAX, BIO_MAX = 60, 40, 3000
ORGANISATION_MAX, INTERESTS_MAX = 100, 500
# Characters that reorder text (a name could be made to read as someone else's).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")

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


# Profile fields in the order the edit form asks (its error summary follows it): the name a
# problem is reported under, the longest value allowed, whether it may span lines, and its subject.
_PROFILE_FIELDS = (
    ("organisation", ORGANISATION_MAX, False, "Organisation"),
    ("interests", INTERESTS_MAX, True, "Interests"),
    ("display_name", DISPLAY_NAME_MAX, False, "Display names"),
    ("pronouns", PRONOUNS_MAX, False, "Pronouns"),
    ("bio", BIO_MAX, True, "Your bio"),
)


def profile_problems(**fields: str | None) -> dict[str, str]:
    """Problems with profile fields (only those given: display_name, pronouns, bio, organisation,
    interests), by field name."""
    problems: dict[str, str] = {}
    for name, limit, lines, subject in _PROFILE_FIELDS:
        value = fields.get(name)
        if value is None:
            continue
        if len(value) > limit:
            problems[name] = f"{subject} must be {limit:,} characters or fewer"
        elif has_controls(value, allow_newlines=lines):
            problems[name] = f"{subject} cannot contain control characters or text-direction marks"
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
    """The 422 for a form or API client with these problems, by field name."""
    return ApiError(422, "invalid", "Some fields need attention.", problems)


def username_taken() -> ApiError:
    """The 409 for a username someone already has (usernames are public, so saying so is fine)."""
    return ApiError(
        409,
        "username_taken",
        "That username is already taken.",
        {"username": "That username is already taken. Choose another one"},
    )


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


# --- avatars ------------------------------------------------------------------------------


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


# --- events --------------------------------------------------------------------------------


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
            raise username_taken() from None
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


async def member_named(conn: asyncpg.Connection, username: str) -> User:
    """The account with this username (404 when there is none)."""
    # Every username matches the pattern; anything else (a NUL byte, say) cannot name anyone.
    user = await user_by_username(conn, username) if len(username) <= 100 and USERNAME_RE.fullmatch(username) else None
    if user is None:
        raise ApiError(404, "not_found", "There is no member with that username.")
    return user


async def profile(rt: Runtime, username: str) -> User:
    """An account by username (404 when there is none)."""
    async with rt.pool.acquire() as conn:
        return await member_named(conn, username)
