"""The one visibility rule: who may read a category and everything in it.

A category with no groups is public; otherwise only members of one of its groups,
and staff (moderators, admins), may read it. The same rule is carried on events as
an audience (["public"] or ["group:3", ...]) so search and notify apply it too.
Outsiders get 404, never 403, for what they may not see.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.sessions import Session


def audience(group_ids: Sequence[int]) -> list[str]:
    """The audience of content in a category with these groups."""
    return [f"group:{g}" for g in group_ids] if group_ids else ["public"]


def can_read(viewer: Session | None, group_ids: Sequence[int]) -> bool:
    if not group_ids:
        return True
    if viewer is None:
        return False
    return viewer.is_staff or bool(set(group_ids) & set(viewer.group_ids))


def sql_params(viewer: Session | None) -> tuple[list[int], bool]:
    """Parameters for READABLE_SQL: the viewer's group ids and whether they are staff."""
    if viewer is None:
        return [], False
    return list(viewer.group_ids), viewer.is_staff


# Use with the category aliased `c` and the two parameters from sql_params, e.g.
# READABLE_SQL.format(groups="$2", staff="$3").
READABLE_SQL = "(c.group_ids = '{{}}' OR c.group_ids && {groups}::bigint[] OR {staff}::boolean)"
