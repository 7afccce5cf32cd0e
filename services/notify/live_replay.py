"""Resuming on /live: what a client missed since the last event id it saw, replayed at its pace.

A replay reads the events stream after that id (XRANGE, exclusive) and sends the client's channels'
messages, or `reset` at once (with the id to go on from) when the id is older than the stream keeps
or more than REPLAY_LIMIT entries back. Live messages that arrive meanwhile wait in the client's
`pending` and are flushed after it, in stream order, none lost or sent twice.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.notify.live_client import REPLAY_LIMIT, Client
from services.notify.live_wire import as_str, dumps, event_message, read_entry, stream_key


async def stream_end(redis: aioredis.Redis, stream: str) -> str:
    """The id of the stream's last entry ("0-0" when there is no stream yet)."""
    try:
        info = await redis.xinfo_stream(stream)
    except ResponseError:  # no stream yet: everything in it will be new
        return "0-0"
    return as_str(info["last-generated-id"])


async def trimmed_since(redis: aioredis.Redis, stream: str, last: str) -> bool:
    """Whether events after `last` may be gone from the stream (trimmed), so a replay is not whole."""
    try:
        info = await redis.xinfo_stream(stream)
    except ResponseError:
        return True  # the stream is gone: the id belongs to one that no longer exists
    key = stream_key(last)
    if key > stream_key(as_str(info["last-generated-id"])):
        return True  # an id from the future: another stream's
    added, length = info.get("entries-added"), info.get("length")
    if added is not None and added == length:
        return False  # nothing was ever trimmed (Redis 7 tells)
    first = info.get("first-entry")
    return first is not None and key < stream_key(as_str(first[0]))


async def replay(redis: aioredis.Redis, stream: str, client: Client, channels: list[str], last: str) -> None:
    """Send the client what it missed on these channels since `last` (exclusive), at its pace,
    or `reset` at once when that is more than REPLAY_LIMIT entries or no longer all kept."""
    wanted = set(channels)
    entries = await redis.xrange(stream, min="(" + last, max="+", count=REPLAY_LIMIT + 1)
    # Checked after reading: trimming only takes the oldest, so if nothing after `last` is gone
    # now, nothing was gone when XRANGE read.
    if len(entries) > REPLAY_LIMIT or await trimmed_since(redis, stream, last):
        end = await stream_end(redis, stream)
        for channel in channels:
            client.push(dumps({"type": "reset", "channel": channel, "id": end}))
            client.replayed_upto[channel] = stream_key(end)
        return
    # Set before sending: live messages up to here are the replay's to send, not the queue's.
    upto = stream_key(as_str(entries[-1][0])) if entries else stream_key(last)
    for channel in channels:
        client.replayed_upto[channel] = upto
    for entry_id, fields in entries:
        entry = as_str(entry_id)
        read = read_entry(entry, fields)
        if read is None:
            continue
        envelope, messages = read
        if client.hub.first_seen.is_repeat(envelope.id, entry):
            continue
        for channel, data, audience in messages:
            if channel not in wanted:
                continue
            if channel in client.held:
                await client.rechecked()
            if channel in client.channels and client.sees_on(channel, audience):
                await client.put(event_message(entry, channel, envelope.type, data))


async def flush(client: Client, channels: list[str]) -> None:
    """Send what arrived live during the replay, in stream order across the channels (the
    client resumes from the last id it got), then let live messages through."""
    while True:
        heads = [(client.pending[c][0][0], c) for c in channels if client.pending.get(c)]
        if not heads:
            return  # no await between this check and the caller dropping `pending`
        key, channel = min(heads)
        _, text = client.pending[channel].pop(0)
        upto = client.replayed_upto.get(channel)
        if upto is None or key > upto:
            await client.put(text)
