"""A signed-in member's requests record their activity, at most every few minutes."""

from shared.events import Envelope


async def test_activity_is_recorded_once_per_window(member_factory, pool):
    """Two page views in a row: last_seen_at is set and one user.seen event is written."""
    member = await member_factory()
    for _ in range(2):
        assert (await member.client.get("/")).status_code == 200
    seen = await pool.fetchval("SELECT last_seen_at FROM forum.users WHERE id = $1", member.id)
    assert seen is not None
    rows = await pool.fetch("SELECT payload::text AS p FROM forum.outbox WHERE type = 'user.seen'")
    events = [Envelope.from_json(row["p"]).event() for row in rows]
    assert [e.user_id for e in events] == [member.id]


async def test_anonymous_requests_record_nothing(client, pool):
    """An anonymous visit writes no activity."""
    assert (await client.get("/")).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM forum.outbox WHERE type = 'user.seen'") == 0
