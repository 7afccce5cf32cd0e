"""notify's audience checks say what shared/audience.py says: the viewer-fixed reader, and the SQL
that decides for many members at once who may be told."""

from __future__ import annotations

import itertools

import pytest

from services.notify import projections
from shared import audience

ITEMS = [audience.public(), [audience.group(3)], [audience.group(3), audience.group(4)], audience.staff_only(), []]
MEMBERS = [  # (roles, group ids)
    (["member"], []),
    (["member"], [3]),
    (["member"], [4, 5]),
    (["moderator"], []),
    (["admin", "member"], [9]),
]
SEES_SQL = f"""
SELECT {projections.sees_sql("u", "$4::text[]")}
FROM (SELECT $1::bigint AS id, $2::text[] AS roles, $3::bigint[] AS group_ids) u
"""


@pytest.mark.parametrize(("member", "item"), list(itertools.product(MEMBERS, ITEMS)))
def test_the_reader_says_what_may_read_says(member, item):
    """audience.reader(viewer)(item) == audience.may_read(viewer, item), for staff and others."""
    roles, group_ids = member
    viewer = audience.for_member(7, group_ids, staff=projections.is_staff(roles))
    assert audience.reader(viewer)(item) is audience.may_read(viewer, item)


async def test_the_sql_rule_says_what_may_read_says(pool):
    """projections.sees_sql (who may be told) agrees with may_read over for_member, on the same members."""
    for (roles, group_ids), item in itertools.product(MEMBERS, ITEMS):
        viewer = audience.for_member(7, group_ids, staff=projections.is_staff(roles))
        in_sql = await pool.fetchval(SEES_SQL, 7, roles, group_ids, item)
        assert in_sql is audience.may_read(viewer, item), (roles, group_ids, item)
