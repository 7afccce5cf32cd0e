"""Accounts: who a member is. The rules for usernames, email addresses and profiles, the
users' SQL, avatars, creating an account, changing a profile, and user.updated.

Registration (registration.py), logging in (login.py), password reset (password_reset.py) and
API tokens (tokens.py) build on these; the JSON API (api.py), the pages (pages.py) and
`tica user create` call the same actions, so a rule is written once. Actions raise ApiError;
pages turn it into a form error.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.forum.accounts import lookalikes, passwords
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


# --- display names: nobody passes for someone else ----------------------------------------------

# Words that would make a display name read as a role; roles are shown as tags, never claimed in a name.
ROLE_WORDS = frozenset({
    "admin", "admins", "administrator", "administrators", "moderator", "moderators", "mod", "mods",
    "staff", "sysadmin", "superuser", "official", "system", "safeguarding", "tica",
})  # fmt: skip
# Characters that show as nothing (or as a blank) although Unicode calls them letters or marks:
# Hangul fillers, the blank Braille pattern, combining grapheme joiner, Khmer inherent vowels,
# Mongolian and other variation selectors.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
_NOT_ALNUM = re.compile(r"[\W_]+")


def _invisible(char: str) -> bool:
    category = unicodedata.category(char)
    return (
        category in _INVISIBLE_CATEGORIES
        or (category == "Zs" and char != " ")
        or char in _BLANKS
        or "\ufe00" <= char <= "\ufe0f"
        or "\U000e0100" <= char <= "\U000e01ef"
    )


def _looks(name: str) -> str:
    """A name as it looks: compatibility forms folded (NFKC: fullwidth and mathematical letters), case
    folded, and letters from other scripts that pass for Latin ones (a Cyrillic or Greek "o") as those."""
    shown = unicodedata.normalize("NFKC", name).translate(lookalikes.LATIN).casefold()
    return shown.translate(lookalikes.LATIN).casefold()


# Latin letters and digits that are hard to tell apart in many fonts: "l", "1" and "I" (folded to "i"),
# "0" and "o", "rn" and "m", "vv" and "w".
_ASCII_LOOKALIKES = (("rn", "m"), ("vv", "w"), ("l", "i"), ("1", "i"), ("0", "o"))


def _fold_ascii(text: str) -> str:
    for shape, same in _ASCII_LOOKALIKES:
        text = text.replace(shape, same)
    return text


def name_skeleton(name: str) -> str:
    """What a name looks like, letters and digits only, for telling whether two names could be taken
    for each other: "Mo", "M_o", "Mo" in Cyrillic letters or in fullwidth ones all have the skeleton
    of the username "mo"."""
    return _fold_ascii(_NOT_ALNUM.sub("", _looks(name)))


_ROLE_SKELETONS = frozenset(_fold_ascii(word) for word in ROLE_WORDS)


def _names_a_role(name: str) -> bool:
    """Whether a word of the name, as it looks and without trailing digits ("Mod1", "ADM1N"), is a role."""
    words = (word.rstrip("0123456789") for word in _NOT_ALNUM.split(_looks(name)))
    return any(_fold_ascii(word) in _ROLE_SKELETONS for word in words if word)


def display_name_problem(name: str) -> str | None:
    """What is wrong with a display name on its own: invisible characters, no letter or digit, or
    a role word (whether it is too like another member's name needs the database: name_collision)."""
    if any(_invisible(char) for char in name):
        return "Display names can only use letters, numbers, punctuation and ordinary spaces: no invisible characters"
    if not any(unicodedata.category(char)[0] in "LN" for char in name):
        return "Display names need at least one letter or number"
    if _names_a_role(name):
        return (
            "Display names cannot include a role such as moderator, admin or staff. "
            "Roles are shown beside your name when you have one"
        )
    return None


NAME_TOO_LIKE = (
    "That name is too like another member\u2019s name or username, so people could mistake one of you for the "
    "other. Add something to set it apart, such as your surname or organisation"
)
OTHER_NAMES_SQL = "SELECT username, display_name FROM forum.users WHERE id IS DISTINCT FROM $1"


async def name_collides(conn: asyncpg.Connection, name: str, *, user_id: int | None, username: str) -> bool:
    """Whether a display name looks like another member's username or display name. A member's own
    username is theirs to use ("Ada" for ada)."""
    skeleton = name_skeleton(name)
    if not skeleton or skeleton == name_skeleton(username):
        return False
    rows = await conn.fetch(OTHER_NAMES_SQL, user_id)

    def collides() -> bool:  # every member's names: in a thread, so a large community never stalls the loop
        return any(skeleton in (name_skeleton(row["username"]), name_skeleton(row["display_name"])) for row in rows)

    return await asyncio.to_thread(collides)


async def check_display_name(conn: asyncpg.Connection, name: str | None, *, user_id: int | None, username: str) -> None:
    """422 when a display name being set is too like another member's name (see name_collides)."""
    if name and await name_collides(conn, name, user_id=user_id, username=username):
        raise invalid({"display_name": NAME_TOO_LIKE})


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
        elif name == "display_name" and value:
            problem = display_name_problem(value)
            if problem:
                problems[name] = problem
    return problems


def _in_form_order(problems: dict[str, str]) -> dict[str, str]:
    order = [name for name, *_ in _PROFILE_FIELDS]
    return dict(sorted(problems.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


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
    member directory lists them; records user.updated with the change.

    A display name is checked when it changes (display_name_problem, name_collides); one kept as it
    was is never refused, so a name from before these rules stays usable.
    """
    values = dict(changes)
    async with rt.pool.acquire() as conn, conn.transaction():
        user = await user_by_id(conn, session.user_id)
        if user is None:
            raise ApiError(401, "unauthorized", "Please log in first.")
        if values.get("display_name") == user.display_name:
            del values["display_name"]
        problems = profile_problems(**{name: value for name, value in values.items() if name != "in_directory"})
        wanted = values.get("display_name")
        if (
            wanted
            and "display_name" not in problems
            and await name_collides(conn, wanted, user_id=user.id, username=user.username)
        ):
            problems = _in_form_order({**problems, "display_name": NAME_TOO_LIKE})
        if problems:
            raise invalid(problems)
        if "display_name" in values:
            values["display_name"] = values["display_name"] or user.username
        if "pronouns" in values:
            values["pronouns"] = values["pronouns"] or None
        for name in ("bio", "organisation", "interests"):
            if name in values:
                values[name] = values[name] or ""
        if values.get("in_directory", True) is None:
            del values["in_directory"]
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
