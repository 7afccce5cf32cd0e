"""Audiences: the one vocabulary of who may read a thing, and which audiences a viewer belongs to.

An audience is a string carried on events, search entries and notify's projections:
`public` (everyone, visitors too), `members` (anyone signed in), `staff` (moderators and
admins), `group:<id>` (members of a group), `user:<id>` (one person's own things) and
`conversation:<id>` (the people in a private conversation). A thing's audience is a list: a
viewer may read it when they belong to any of them. Staff belong to `staff`, which reads
everything the forum shows to moderators. The forum's access module decides a thing's audience;
search, notify and exports check it with these functions. No other module spells these strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

PUBLIC = "public"
MEMBERS = "members"
STAFF = "staff"
_GROUP = "group:"
_USER = "user:"
_CONVERSATION = "conversation:"


class Viewer(Protocol):
    """What a viewer's session says about them (shared.sessions.Session is one)."""

    @property
    def user_id(self) -> int: ...

    @property
    def group_ids(self) -> list[int]: ...

    @property
    def is_staff(self) -> bool: ...


def group(group_id: int) -> str:
    return f"{_GROUP}{group_id}"


def user(user_id: int) -> str:
    return f"{_USER}{user_id}"


def conversation(conversation_id: int) -> str:
    return f"{_CONVERSATION}{conversation_id}"


def of_groups(group_ids: Sequence[int]) -> list[str]:
    """The audience of what a category or folder with these groups holds: public when it has none."""
    return [group(g) for g in group_ids] if group_ids else [PUBLIC]


def staff_only() -> list[str]:
    """The audience of what only moderators and admins may read (hidden posts, registrations)."""
    return [STAFF]


def public() -> list[str]:
    return [PUBLIC]


def group_id_of(audience: str) -> int | None:
    """The group an audience names, or None when it names none."""
    if audience.startswith(_GROUP) and audience[len(_GROUP) :].isdigit():
        return int(audience[len(_GROUP) :])
    return None


def is_valid(audience: str) -> bool:
    """Whether a string is one of the vocabulary's audiences (events refuse any other)."""
    if audience in (PUBLIC, MEMBERS, STAFF):
        return True
    for prefix in (_GROUP, _USER, _CONVERSATION):
        if audience.startswith(prefix):
            rest = audience[len(prefix) :]
            return rest.isdigit() and int(rest) > 0
    return False


def for_viewer(viewer: Viewer | None) -> list[str]:
    """Every audience a viewer belongs to; a visitor belongs to `public` alone."""
    if viewer is None:
        return [PUBLIC]
    return for_member(viewer.user_id, viewer.group_ids, staff=viewer.is_staff)


def for_member(user_id: int, group_ids: Iterable[int], *, staff: bool) -> list[str]:
    """Every audience a member with these groups and standing belongs to."""
    audiences = [PUBLIC, MEMBERS, *(group(g) for g in group_ids), user(user_id)]
    if staff:
        audiences.append(STAFF)
    return audiences


def is_staff_audience(audiences: Iterable[str]) -> bool:
    """Whether a viewer with these audiences is staff (who read everything moderators may)."""
    return STAFF in audiences


def may_read(viewer_audiences: Iterable[str], item_audience: Iterable[str]) -> bool:
    """Whether a viewer with these audiences may read a thing with this audience: staff read all."""
    mine = set(viewer_audiences)
    return STAFF in mine or not mine.isdisjoint(item_audience)


def reader(viewer_audiences: Iterable[str]) -> Callable[[Iterable[str]], bool]:
    """may_read with the viewer fixed, for checking many things against one viewer (live fan-out,
    digests): the viewer's audiences are gathered once, not once a thing."""
    mine = frozenset(viewer_audiences)
    if STAFF in mine:
        return lambda item_audience: True
    return lambda item_audience: not mine.isdisjoint(item_audience)


def member_sql(user_id: str, group_ids: str, staff: str) -> str:
    """SQL that says the same as for_member: the audiences (text[]) of a member whose id, group
    ids (bigint[]) and standing (boolean) are these SQL expressions; for rules applied to many
    members at once in the database (notify's "who may be told")."""
    return (
        f"(ARRAY['{PUBLIC}', '{MEMBERS}', '{_USER}' || {user_id}]"
        f" || ARRAY(SELECT '{_GROUP}' || g FROM unnest({group_ids}) g)"
        f" || CASE WHEN {staff} THEN ARRAY['{STAFF}'] ELSE '{{}}'::text[] END)"
    )


# SQL that says the same as may_read, for lists filtered in the database: the item's audience
# column (text[]) and the viewer's audiences (a text[] parameter).
MAY_READ_SQL = "('staff' = ANY({viewer}::text[]) OR {item} && {viewer}::text[])"
