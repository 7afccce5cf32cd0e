"""access.py: each SQL fragment says what its Python predicate says, on the same rows and viewers.

PostgreSQL evaluates the fragment over every combination of row and viewer (a VALUES list under
the alias the fragment expects); the predicate answers for the same pair; the two must agree
everywhere. A rule changed on one side only fails here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from services.forum import access
from shared import audience
from shared.sessions import Session
from shared.web import ApiError


def _session(user_id: int, roles: Sequence[str] = ("member",), group_ids: Sequence[int] = ()) -> Session:
    return Session(
        id=f"s{user_id}",
        user_id=user_id,
        username=f"u{user_id}",
        roles=list(roles),
        group_ids=list(group_ids),
        csrf="x",
    )


VIEWERS: dict[str, Session | None] = {
    "visitor": None,
    "member": _session(1),
    "member of group 7": _session(2, group_ids=[7]),
    "member of groups 7 and 8": _session(3, group_ids=[7, 8]),
    "member of group 9": _session(4, group_ids=[9]),
    "moderator": _session(5, roles=("member", "moderator")),
    "admin": _session(6, roles=("member", "admin")),
    "author (member 10)": _session(10),
}
GROUP_SETS: list[list[int]] = [[], [7], [8], [7, 8], [9, 11], [12]]
STATUSES = ["visible", "hidden", "pending", "rejected", "deleted"]
AUTHORS = [10, 1, 5]


async def _evaluate(pool: asyncpg.Pool, sql: str, rows: Sequence[Any], *args: Any) -> list[bool]:
    """Which rows the fragment lets through, used as a WHERE clause is (NULL keeps a row out)."""
    kept = {row["n"] for row in await pool.fetch(sql, *args)}
    return [n in kept for n in range(1, len(rows) + 1)]


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_readable_sql_agrees_with_groups_readable(pool, viewer):
    """READABLE_SQL and groups_readable agree for every viewer and category."""
    who = VIEWERS[viewer]
    sql = (
        "SELECT n FROM (SELECT g::bigint[] AS group_ids, n FROM unnest($1::text[]) WITH ORDINALITY AS x(g, n)) c "
        "WHERE " + access.READABLE_SQL.format(groups="$2", staff="$3")
    )
    literals = ["{" + ",".join(map(str, g)) + "}" for g in GROUP_SETS]
    groups, staff = access.sql_params(who)
    in_sql = await _evaluate(pool, sql, GROUP_SETS, literals, groups, staff)
    assert in_sql == [access.groups_readable(who, g) for g in GROUP_SETS]


def _status_author_rows() -> list[tuple[str, int]]:
    return list(itertools.product(STATUSES, AUTHORS))


async def _rule_in_sql(pool: asyncpg.Pool, fragment: str, alias: str, who: Session | None) -> list[bool]:
    rows = _status_author_rows()
    user, staff = access.shown_params(who)
    sql = (
        f"SELECT n FROM (SELECT s AS status, a AS author_id, n FROM unnest($1::text[], $2::bigint[]) "
        f"WITH ORDINALITY AS x(s, a, n)) {alias} WHERE {fragment.format(staff='$3', user='$4')}"
    )
    return await _evaluate(pool, sql, rows, [s for s, _ in rows], [a for _, a in rows], staff, user)


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_topic_shown_sql_agrees(pool, viewer):
    """TOPIC_SHOWN_SQL and topic_shown agree for every viewer, status and author."""
    who = VIEWERS[viewer]
    in_sql = await _rule_in_sql(pool, access.TOPIC_SHOWN_SQL, "t", who)
    assert in_sql == [access.topic_shown(who, s, a) for s, a in _status_author_rows()]


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_post_shown_sql_agrees(pool, viewer):
    """POST_SHOWN_SQL and writing_shown agree for every viewer, status and author."""
    who = VIEWERS[viewer]
    in_sql = await _rule_in_sql(pool, access.POST_SHOWN_SQL, "p", who)
    assert in_sql == [access.writing_shown(who, s, a) for s, a in _status_author_rows()]


AUDIENCES = [["public"], ["staff"], ["group:7"], ["group:8", "group:9"], ["user:10"], []]


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_may_read_sql_agrees(pool, viewer):
    """audience.MAY_READ_SQL and audience.may_read agree for every viewer and audience."""
    mine = audience.for_viewer(VIEWERS[viewer])
    literals = ["{" + ",".join(a) + "}" for a in AUDIENCES]
    sql = (
        "SELECT n FROM unnest($1::text[]) WITH ORDINALITY AS x(a, n) "
        f"WHERE {audience.MAY_READ_SQL.format(item='x.a::text[]', viewer='$2')}"
    )
    in_sql = await _evaluate(pool, sql, AUDIENCES, literals, mine)
    assert in_sql == [audience.may_read(mine, a) for a in AUDIENCES]


def test_groups_audience_matches_who_may_read():
    """A thing's audience admits exactly the viewers groups_readable admits."""
    for groups, who in itertools.product(GROUP_SETS, VIEWERS.values()):
        assert audience.may_read(audience.for_viewer(who), access.groups_audience(groups)) == access.groups_readable(
            who, groups
        ), (groups, who)


def test_folder_needs_its_parent_too():
    """A subfolder is readable only when its parent is."""
    member7 = VIEWERS["member of group 7"]
    assert access.folder_readable(member7, [7], [7, 8])
    assert not access.folder_readable(member7, [], [8])
    assert access.folder_audience([], [8]) == access.groups_audience([8])
    assert access.folder_audience([7], [7, 8]) == access.groups_audience([7])


def test_text_withheld():
    """Deleted text is withheld from everyone; hidden and unpublished text from all but author and staff."""
    author, other, moderator = VIEWERS["author (member 10)"], VIEWERS["member"], VIEWERS["moderator"]
    assert access.text_withheld(moderator, "deleted", 10)
    for status in ("hidden", "pending", "rejected"):
        assert not access.text_withheld(author, status, 10)
        assert not access.text_withheld(moderator, status, 10)
        assert access.text_withheld(other, status, 10)
        assert access.text_withheld(None, status, 10)
    assert not access.text_withheld(None, "visible", 10)


def test_acting_on_writings():
    """Edit, react, flag, hide, appeal and reveal, for the author, another member, staff and a visitor."""
    author, other, moderator = VIEWERS["author (member 10)"], VIEWERS["member"], VIEWERS["moderator"]
    assert access.may_edit(author, "visible", 10) and access.may_edit(moderator, "hidden", 10)
    assert not access.may_edit(other, "visible", 10) and not access.may_edit(author, "deleted", 10)
    assert access.may_react(other, "visible") and not access.may_react(None, "visible")
    assert not access.may_react(other, "hidden")
    assert access.may_flag(other, "visible", 10) and not access.may_flag(author, "visible", 10)
    assert not access.may_flag(None, "visible", 10) and not access.may_flag(other, "hidden", 10)
    assert access.may_hide(moderator, "visible") and not access.may_hide(other, "visible")
    assert access.may_appeal(author, "hidden", 10) and access.may_appeal(author, "rejected", 10)
    assert not access.may_appeal(other, "hidden", 10) and not access.may_appeal(author, "visible", 10)
    assert access.may_reveal_author(moderator) and not access.may_reveal_author(other)


def test_replying():
    """Visitors log in; closed and unpublished topics take replies from staff only."""
    member, moderator = VIEWERS["member"], VIEWERS["moderator"]
    assert access.may_reply(None, closed=False, status="visible") == "login"
    assert access.may_reply(member, closed=True, status="visible") == "closed"
    assert access.may_reply(member, closed=False, status="pending") == "not_open"
    assert access.may_reply(member, closed=False, status="visible") == ""
    assert access.may_reply(moderator, closed=True, status="pending") == ""
    for who in (None, member, moderator):  # an archived category takes no replies from anyone
        assert access.may_reply(who, closed=False, status="visible", archived=True) == "archived"
    assert access.category_takes_posts(None) and not access.category_takes_posts("2026-01-01")


def test_roles():
    """Staff are moderators and admins; admin-only acts refuse moderators."""
    member, moderator, admin = VIEWERS["member"], VIEWERS["moderator"], VIEWERS["admin"]
    assert access.is_staff(moderator) and access.is_staff(admin) and not access.is_staff(member)
    assert access.is_admin(admin) and not access.is_admin(moderator) and not access.is_admin(None)
    assert access.require_staff(moderator) is None
    with pytest.raises(ApiError) as refused:
        access.require_admin(moderator)
    assert refused.value.status == 403
    with pytest.raises(ApiError):
        access.require_staff(member)
    assert access.may_organise(VIEWERS["member"], [1]) and not access.may_organise(VIEWERS["member of group 7"], [1])
    assert access.may_organise(admin, [])


FOLDER_PAIRS = [(own, parent) for own in GROUP_SETS for parent in [None, *GROUP_SETS]]


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_folder_readable_sql_agrees(pool, viewer):
    """FOLDER_READABLE_SQL and folder_readable agree for every viewer, folder and parent (or none)."""
    who = VIEWERS[viewer]

    def literal(groups: list[int] | None) -> str | None:
        return None if groups is None else "{" + ",".join(map(str, groups)) + "}"

    sql = (
        "SELECT x.n FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(own, parent, n) "
        "CROSS JOIN LATERAL (SELECT x.own::bigint[] AS group_ids) f "
        "LEFT JOIN LATERAL (SELECT x.n AS id, x.parent::bigint[] AS group_ids WHERE x.parent IS NOT NULL) p ON true "
        "WHERE " + access.FOLDER_READABLE_SQL.format(groups="$3", staff="$4")
    )
    groups, staff = access.sql_params(who)
    owns = [literal(own) for own, _ in FOLDER_PAIRS]
    parents = [literal(parent) for _, parent in FOLDER_PAIRS]
    in_sql = await _evaluate(pool, sql, FOLDER_PAIRS, owns, parents, groups, staff)
    assert in_sql == [access.folder_readable(who, own, parent or []) for own, parent in FOLDER_PAIRS]
