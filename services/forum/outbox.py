"""The forum's outbox: every forum event is written here, in the transaction of its change, and the
relay (services/forum/app.py) publishes it to the event stream after commit."""

from __future__ import annotations

import asyncpg

from shared import events
from shared.events import Envelope, Event

OUTBOX = "forum.outbox"


async def write_event(conn: asyncpg.Connection, event: Event, *, actor_id: int | None) -> Envelope:
    """Record a forum event in the forum's outbox, in the caller's transaction."""
    return await events.write_event(conn, event, actor_id=actor_id, outbox=OUTBOX)
