"""The member directory and badges: members who are logged in find each other by name,
organisation and interests; members choose whether they are listed (PATCH /api/me
`in_directory`); admins give badges such as "Expert by experience", "Core Action Group"
or an organisation's name. The rules, SQL and actions; api.py and pages.py serve them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from services.forum import access
from services.forum.accounts import accounts
from shared.sessions import Session
from shared.web import ApiError

PER_PAGE = 30
QUERY_MAX, QUERY_WORDS = 100, 8
BADGE_NAME_MAX, BADGE_DESCRIPTION_MAX = 60, 300

# --- SQL ----------------------------------------------------------------------------------------------

_BADGES_OF = """(SELECT coalesce(jsonb_agg(jsonb_build_object('id', b.id, 'name', b.name) ORDER BY lower(b.name)), '[]')
    FROM forum.user_badges ub JOIN forum.badges b ON b.id = ub.badge_id WHERE ub.user_id = u.id)"""

# Each array holds ILIKE patterns that must all match; an empty array matches everyone.
DIRECTORY_SQL = f"""
SELECT u.id, u.username, u.display_name, u.pronouns, u.organisation, u.interests, {_BADGES_OF} AS badges
FROM forum.users u
WHERE u.in_directory AND u.email_verified_at IS NOT NULL
  AND (u.suspended_until IS NULL OR u.suspended_until <= now())
  AND NOT EXISTS (SELECT 1 FROM unnest($1::text[]) w WHERE NOT (
        u.display_name ILIKE w OR u.username ILIKE w OR u.organisation ILIKE w OR u.interests ILIKE w))
  AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) w WHERE NOT u.organisation ILIKE w)
  AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) w WHERE NOT u.interests ILIKE w)
  AND ($4::bigint IS NULL OR EXISTS (SELECT 1 FROM forum.user_badges ub WHERE ub.user_id = u.id AND ub.badge_id = $4))
ORDER BY lower(u.display_name), u.id
LIMIT $5 OFFSET $6
"""

BADGES_SQL = """
SELECT b.id, b.name, b.description, b.created_at,
       (SELECT count(*) FROM forum.user_badges ub WHERE ub.badge_id = b.id) AS members_count
FROM forum.badges b ORDER BY lower(b.name), b.id
"""

HOLDERS_SQL = """
SELECT u.id, u.username, u.display_name FROM forum.user_badges ub JOIN forum.users u ON u.id = ub.user_id
WHERE ub.badge_id = $1 ORDER BY lower(u.display_name), u.id
"""
BADGE_SQL = """
SELECT b.id, b.name, b.description, b.created_at, 0::bigint AS members_count FROM forum.badges b WHERE b.id = $1
"""


def like_patterns(text: str) -> list[str]:
    """ILIKE patterns for the words of a search, wildcards in the words taken literally."""
    words = text[:QUERY_MAX].replace("\x00", "").split()[:QUERY_WORDS]
    return ["%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]


async def search(
    conn: asyncpg.Connection,
    *,
    q: str = "",
    organisation: str = "",
    interest: str = "",
    badge_id: int | None = None,
    page: int = 1,
) -> tuple[list[asyncpg.Record], bool]:
    """A page of listed members matching every given word; and whether there is another page."""
    rows = await conn.fetch(
        DIRECTORY_SQL,
        like_patterns(q),
        like_patterns(organisation),
        like_patterns(interest),
        badge_id,
        PER_PAGE + 1,
        (page - 1) * PER_PAGE,
    )
    return list(rows[:PER_PAGE]), len(rows) > PER_PAGE


async def list_badges(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every badge, by name, with how many members have it."""
    return list(await conn.fetch(BADGES_SQL))


async def badge_holders(conn: asyncpg.Connection, badge_id: int) -> list[asyncpg.Record]:
    """The members who have a badge, by name."""
    return list(await conn.fetch(HOLDERS_SQL, badge_id))


# --- actions ------------------------------------------------------------------------------------------------


def require_badge_admin(who: Session) -> None:
    """Badges are for admins to manage (403 for everyone else)."""
    access.require_admin(who, "Only admins can manage badges.")


async def create_badge(conn: asyncpg.Connection, who: Session, name: str, description: str | None) -> asyncpg.Record:
    """A new badge (admins); 409 when one has that name."""
    require_badge_admin(who)
    name, description = name.strip(), (description or "").strip()
    problems = {}
    if not name or len(name) > BADGE_NAME_MAX or accounts.has_controls(name):
        problems["name"] = f"Give the badge a name of 1 to {BADGE_NAME_MAX} characters, on one line"
    if len(description) > BADGE_DESCRIPTION_MAX or accounts.has_controls(description):
        problems["description"] = f"The description must be {BADGE_DESCRIPTION_MAX} characters or fewer, on one line"
    if problems:
        raise accounts.invalid(problems)
    try:
        async with conn.transaction():
            badge_id = await conn.fetchval(
                "INSERT INTO forum.badges (name, description) VALUES ($1, $2) RETURNING id", name, description
            )
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "conflict", "A badge already has that name.", {"name": "A badge already has that name"}
        ) from None
    return await _badge(conn, badge_id)


async def _badge(conn: asyncpg.Connection, badge_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(BADGE_SQL, badge_id)
    if row is None:
        raise ApiError(404, "not_found", "There is no such badge.")
    return row


async def grant_badge(conn: asyncpg.Connection, who: Session, username: str, badge_id: int) -> accounts.User:
    """Give a member a badge (admins); giving it again changes nothing."""
    require_badge_admin(who)
    user = await accounts.member_named(conn, username)
    await _badge(conn, badge_id)
    await conn.execute(
        "INSERT INTO forum.user_badges (user_id, badge_id, granted_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        user.id,
        badge_id,
        who.user_id,
    )
    return await accounts.member_named(conn, username)


async def revoke_badge(conn: asyncpg.Connection, who: Session, username: str, badge_id: int) -> None:
    """Take a badge back (admins); 404 when the member does not have it."""
    require_badge_admin(who)
    user = await accounts.member_named(conn, username)
    removed = await conn.fetchval(
        "DELETE FROM forum.user_badges WHERE user_id = $1 AND badge_id = $2 RETURNING badge_id", user.id, badge_id
    )
    if removed is None:
        raise ApiError(404, "not_found", "That member does not have that badge.")


# --- badges shown beside a member's name ----------------------------------------------------------
# A badge is shown on a member's posts only when they chose it (forum.user_badges.shown, off when
# given): "Expert by experience" says something personal, so it is theirs to show. Never beside an
# anonymous post.

MY_BADGES_SQL = """
SELECT b.id, b.name, b.description, ub.shown FROM forum.user_badges ub JOIN forum.badges b ON b.id = ub.badge_id
WHERE ub.user_id = $1 ORDER BY lower(b.name), b.id
"""
# Every chosen badge of a page's authors in one statement (the topic page asks once, not per post).
SHOWN_BADGES_SQL = """
SELECT ub.user_id, array_agg(b.name ORDER BY lower(b.name), b.id) AS names
FROM forum.user_badges ub JOIN forum.badges b ON b.id = ub.badge_id
WHERE ub.user_id = ANY($1::bigint[]) AND ub.shown GROUP BY ub.user_id
"""
CHOOSE_SHOWN_SQL = "UPDATE forum.user_badges SET shown = (badge_id = ANY($2::bigint[])) WHERE user_id = $1"
MAX_SHOWN_CHOICE = 100


async def my_badges(conn: asyncpg.Connection, user_id: int) -> list[asyncpg.Record]:
    """The badges a member holds, by name, and whether each is shown on their posts."""
    return list(await conn.fetch(MY_BADGES_SQL, user_id))


async def shown_badges(conn: asyncpg.Connection, author_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """The names of the badges each of these members chose to show; members who chose none are absent."""
    ids = sorted(set(author_ids))
    if not ids:
        return {}
    return {row["user_id"]: tuple(row["names"]) for row in await conn.fetch(SHOWN_BADGES_SQL, ids)}


async def choose_shown_badges(conn: asyncpg.Connection, who: Session, badge_ids: Sequence[int]) -> list[asyncpg.Record]:
    """Show exactly these of the member's badges on their posts (none: show none); 422 naming any
    badge they do not hold, and nothing changes."""
    held = {row["id"] for row in await my_badges(conn, who.user_id)}
    wanted = set(badge_ids)
    if wanted - held:
        raise accounts.invalid({"shown": "You can only show badges you have been given"})
    async with conn.transaction():
        await conn.execute(CHOOSE_SHOWN_SQL, who.user_id, sorted(wanted))
    return await my_badges(conn, who.user_id)
