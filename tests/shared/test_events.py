"""Events: the outbox is published once per committed event, Redis outages lose
nothing, consumers reclaim and dead-letter, and event definitions are strict."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis

from shared.events import (
    STREAM_FIELD,
    CategoryCreated,
    Consumer,
    Envelope,
    Event,
    EventError,
    PostCreated,
    Relay,
    UserRegistered,
    dead_letter_stream,
    event_types,
    new_event_id,
    stream_name,
    write_event,
)

# --- helpers -------------------------------------------------------------------

OUTBOX = "forum.outbox"  # the one outbox there is: the forum's


def registered(number: int) -> UserRegistered:
    return UserRegistered(user_id=number, username=f"user{number}", display_name=f"User {number}")


async def commit_events(pool: asyncpg.Pool, numbers: range) -> list[Envelope]:
    """One event per transaction, committed in order."""
    envelopes = []
    for number in numbers:
        async with pool.acquire() as conn, conn.transaction():
            envelopes.append(await write_event(conn, registered(number), actor_id=number, outbox=OUTBOX))
    return envelopes


async def published(redis: aioredis.Redis, stream: str) -> list[Envelope]:
    """Every envelope on the stream, in stream order, each checked against its definition."""
    envelopes = []
    for _, fields in await redis.xrange(stream):
        envelope = Envelope.from_json(fields[STREAM_FIELD.encode()])
        envelope.event()  # raises when the data does not match the event's definition
        envelopes.append(envelope)
    return envelopes


async def outbox_order(pool: asyncpg.Pool) -> list[str]:
    return [str(row["event_id"]) for row in await pool.fetch(f"SELECT event_id FROM {OUTBOX} ORDER BY id")]


async def unpublished(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval(f"SELECT count(*) FROM {OUTBOX} WHERE published_at IS NULL")
    return count


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def stop_tasks(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)


# --- outbox and relay ----------------------------------------------------------


async def test_rolled_back_event_is_never_published(pool, redis, settings):
    """An event written in a rolled-back transaction never reaches the stream; a committed one does, once."""
    stream = stream_name(settings.redis_prefix)
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await write_event(conn, registered(1), actor_id=None, outbox=OUTBOX)
            raise RuntimeError("the change failed")
    async with pool.acquire() as conn, conn.transaction():
        kept = await write_event(conn, registered(2), actor_id=7, outbox=OUTBOX)

    relay = Relay(pool, redis, stream, OUTBOX)
    assert await relay.publish_all() == 1
    assert await relay.publish_all() == 0
    assert await published(redis, stream) == [kept]
    assert await unpublished(pool) == 0
    assert await outbox_order(pool) == [kept.id]


async def test_two_relays_publish_committed_events_once_in_outbox_order(pool, redis, settings):
    """Two relays running at once over 2,000 events from 8 concurrent writers publish each once, in outbox id order."""
    stream = stream_name(settings.redis_prefix)
    await asyncio.gather(*(commit_events(pool, range(w * 250, (w + 1) * 250)) for w in range(8)))
    assert await unpublished(pool) == 2000

    # Small batches, so that the two relays contend for the lock many times.
    relays = [Relay(pool, redis, stream, OUTBOX, batch_size=50, poll_interval_s=0.05) for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop, settings.database_url)) for relay in relays]
    try:
        await wait_for(lambda: _none_unpublished(pool), 30, "the outbox to drain")
    finally:
        await stop_tasks(stop, tasks)

    ids = [envelope.id for envelope in await published(redis, stream)]
    assert len(ids) == len(set(ids)) == 2000
    assert ids == await outbox_order(pool)
    assert sum(relay.published_total for relay in relays) == 2000


async def test_relays_running_during_concurrent_writes_publish_each_event_once(pool, redis, settings):
    """Two relays running while 8 writers commit 2,000 events publish each once, each writer's events in its order.

    Events of concurrent (causally unrelated) transactions may appear in commit order rather than
    outbox id order: an id is drawn at INSERT, and a later id can commit first.
    """
    stream = stream_name(settings.redis_prefix)
    relays = [Relay(pool, redis, stream, OUTBOX, batch_size=50, poll_interval_s=0.05) for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop, settings.database_url)) for relay in relays]
    try:
        written = await asyncio.gather(*(commit_events(pool, range(w * 250, (w + 1) * 250)) for w in range(8)))
        await wait_for(lambda: _none_unpublished(pool), 30, "the outbox to drain")
    finally:
        await stop_tasks(stop, tasks)

    ids = [envelope.id for envelope in await published(redis, stream)]
    assert len(ids) == len(set(ids)) == 2000
    position = {event_id: index for index, event_id in enumerate(ids)}
    for envelopes in written:
        positions = [position[envelope.id] for envelope in envelopes]
        assert positions == sorted(positions)


async def _none_unpublished(pool: asyncpg.Pool) -> bool:
    return await unpublished(pool) == 0


async def test_events_written_while_redis_is_down_are_published_when_it_returns(pool, settings, private_redis, caplog):
    """With Redis stopped, committed events wait in the outbox; the running relay publishes them all once it is back."""
    stream = stream_name(settings.redis_prefix)
    client = aioredis.Redis.from_url(private_redis.url)
    relay = Relay(pool, client, stream, OUTBOX, poll_interval_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop, settings.database_url))
    try:
        await commit_events(pool, range(1))
        await wait_for(lambda: _none_unpublished(pool), 10, "the first event to be published")

        private_redis.kill()
        written = await commit_events(pool, range(1, 51))
        await wait_for(lambda: _logged(caplog, "relay: publishing failed"), 10, "the relay to fail")
        await asyncio.sleep(0.3)  # a few retries with backoff
        assert await unpublished(pool) == 50

        private_redis.start()  # same port, empty: the test Redis keeps nothing on disk
        await wait_for(lambda: _none_unpublished(pool), 15, "the outbox to drain after Redis returned")
    finally:
        await stop_tasks(stop, [task])
        await client.aclose()

    assert await published(client, stream) == written
    await client.aclose()


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


# --- consumers -----------------------------------------------------------------


async def put(redis: aioredis.Redis, stream: str, numbers: range) -> list[Envelope]:
    envelopes = [Envelope.wrap(registered(n), actor_id=None) for n in numbers]
    for envelope in envelopes:
        await redis.xadd(stream, {STREAM_FIELD: envelope.to_json()})
    return envelopes


def consumer(redis: aioredis.Redis, settings, name: str, handler, **options) -> Consumer:
    stream = stream_name(settings.redis_prefix)
    return Consumer(redis, stream, "g", name, handler, dead_letter_stream(settings.redis_prefix, "g"), **options)


async def pending_count(redis: aioredis.Redis, settings) -> int:
    info = await redis.xpending(stream_name(settings.redis_prefix), "g")
    return int(info["pending"])


async def test_entry_read_and_never_acked_is_reclaimed_by_another_consumer(redis, settings):
    """Entries consumer "a" read and never acked go, once idle, to consumer "b" through reclaim()."""
    stream = stream_name(settings.redis_prefix)
    envelopes = await put(redis, stream, range(3))
    handled: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        handled.append(envelope)

    b = consumer(redis, settings, "b", record, claim_idle_ms=200)
    await b.ensure_group()
    reply = await redis.xreadgroup("g", "a", {stream: ">"}, count=10)  # "a" reads, then dies
    assert len(reply[0][1]) == 3

    patient = consumer(redis, settings, "p", record, claim_idle_ms=60_000)
    assert await patient.reclaim() == 0  # entries are left alone until idle for claim_idle_ms
    await asyncio.sleep(0.25)
    assert await b.reclaim() == 3
    assert handled == envelopes
    assert await pending_count(redis, settings) == 0


async def test_consumer_cancelled_mid_handle_leaves_entry_for_another(redis, settings):
    """A consumer task cancelled while handling acks nothing; another consumer reclaims and handles the entries."""
    stream = stream_name(settings.redis_prefix)
    envelopes = await put(redis, stream, range(3))
    started = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        started.set()
        await asyncio.sleep(60)

    a = consumer(redis, settings, "a", slow, block_ms=100)
    task = asyncio.create_task(a.run(asyncio.Event()))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.handled_total == 0
    assert await pending_count(redis, settings) == 3

    handled: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        handled.append(envelope)

    b = consumer(redis, settings, "b", record, claim_idle_ms=200, block_ms=50)
    stop = asyncio.Event()
    run_b = asyncio.create_task(b.run(stop))
    try:
        await wait_for(lambda: _true(len(handled) == 3), 5, "b to handle the entries")
    finally:
        await stop_tasks(stop, [run_b])
    assert handled == envelopes
    assert await pending_count(redis, settings) == 0


async def _true(value: bool) -> bool:
    return value


async def test_failing_event_is_retried_then_dead_lettered(redis, settings):
    """A handler failing on one event: tried max_deliveries times, then dead-lettered and acked; others go on."""
    stream = stream_name(settings.redis_prefix)
    first, poison, last = await put(redis, stream, range(3))
    calls: Counter[str] = Counter()

    async def handler(envelope: Envelope) -> None:
        calls[envelope.id] += 1
        if envelope.id == poison.id:
            raise ValueError("cannot index this one")

    dead = dead_letter_stream(settings.redis_prefix, "g")
    c = consumer(redis, settings, "c", handler, claim_idle_ms=100, block_ms=20, max_deliveries=3)
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    try:
        await wait_for(lambda: _stream_length(redis, dead, 1), 10, "the dead letter")
        await asyncio.sleep(0.3)  # time for more (wrong) retries
    finally:
        await stop_tasks(stop, [task])

    assert calls == {first.id: 1, poison.id: 3, last.id: 1}
    assert c.handled_total == 2
    [(_, fields)] = await redis.xrange(dead)
    assert Envelope.from_json(fields[STREAM_FIELD.encode()]) == poison
    assert b"cannot index this one" in fields[b"error"]
    assert fields[b"entry_id"] == (await redis.xrange(stream))[1][0]
    assert await pending_count(redis, settings) == 0


async def _stream_length(redis: aioredis.Redis, stream: str, length: int) -> bool:
    return int(await redis.xlen(stream)) >= length


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("not json", "unreadable"),
        (json.dumps([1, 2]), "unreadable"),
        (json.dumps({"id": "x", "type": "user.registered"}), "unreadable"),
        (Envelope("x", "user.vanished", 1, "2026-01-01T00:00:00+00:00", None, {}).to_json(), "unknown event type"),
        (
            Envelope("x", "user.registered", 1, "2026-01-01T00:00:00+00:00", None, {"user_id": 1}).to_json(),
            "missing fields",
        ),
    ],
    ids=["not-json", "not-an-object", "missing-envelope-fields", "unknown-type", "missing-event-fields"],
)
async def test_unreadable_or_unknown_entry_goes_straight_to_dead_letter(redis, settings, raw, error):
    """An entry that is not a valid event is dead-lettered at once, never handled; the next one is handled."""
    stream = stream_name(settings.redis_prefix)
    await redis.xadd(stream, {STREAM_FIELD: raw})
    [good] = await put(redis, stream, range(1))
    handled: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        handled.append(envelope)

    c = consumer(redis, settings, "c", record)
    await c.ensure_group()
    assert await c.read_once() == 2
    assert handled == [good]
    [(_, fields)] = await redis.xrange(dead_letter_stream(settings.redis_prefix, "g"))
    assert error in fields[b"error"].decode()
    assert fields[STREAM_FIELD.encode()] == raw.encode()
    assert await pending_count(redis, settings) == 0


async def test_entry_trimmed_while_pending_is_acked_on_reclaim(redis, settings):
    """A pending entry trimmed from the stream before it was handled is dropped from the group, not retried forever."""
    stream = stream_name(settings.redis_prefix)
    envelopes = await put(redis, stream, range(3))
    handled: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        handled.append(envelope)

    b = consumer(redis, settings, "b", record, claim_idle_ms=50)
    await b.ensure_group()
    reply = await redis.xreadgroup("g", "a", {stream: ">"}, count=10)
    await redis.xdel(stream, reply[0][1][1][0])
    await asyncio.sleep(0.1)
    await b.reclaim()
    assert handled == [envelopes[0], envelopes[2]]
    assert await pending_count(redis, settings) == 0


# --- definitions and the envelope ---------------------------------------------------


def test_envelope_round_trips_and_yields_the_typed_event():
    """An envelope survives JSON and gives back an equal typed event."""
    event = registered(5)
    envelope = Envelope.wrap(event, actor_id=9)
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    assert again.event() == event
    assert set(json.loads(envelope.to_json())) == {"id", "type", "version", "occurred_at", "actor_id", "data"}


def test_envelope_rejects_unknown_and_missing_fields():
    """An envelope with an extra or a missing field, or that is not a JSON object, is an EventError."""
    good = json.loads(Envelope.wrap(registered(1), actor_id=None).to_json())
    for raw in (
        json.dumps({**good, "extra": 1}),
        json.dumps({k: v for k, v in good.items() if k != "data"}),
        "[]",
        "{",
        b"\xff",
    ):
        with pytest.raises(EventError):
            Envelope.from_json(raw)


def test_event_definitions_reject_unknown_and_missing_fields():
    """Event data with a field the definition lacks, or without one it requires, is an EventError."""
    data = registered(1).to_data()
    assert UserRegistered.from_data(data) == registered(1)
    with pytest.raises(EventError, match="unknown fields"):
        UserRegistered.from_data({**data, "favourite_colour": "teal"})
    with pytest.raises(EventError, match="missing fields"):
        UserRegistered.from_data({k: v for k, v in data.items() if k != "username"})
    with pytest.raises(TypeError):
        UserRegistered(user_id=1, username="a", display_name="A", favourite_colour="teal")  # type: ignore[call-arg]
    with pytest.raises(EventError, match="unknown event type"):
        Envelope("x", "user.vanished", 1, "2026-01-01T00:00:00+00:00", None, data).event()


@pytest.mark.parametrize("audience", [["everyone"], ["group:"], ["group:x"], ["public", "Staff"], "public", [3]])
def test_an_audience_outside_the_vocabulary_is_refused(audience):
    """An event whose audience is not in shared/audience.py's vocabulary is an EventError, built or read."""
    good = CategoryCreated(category_id=1, slug="c", name="C", audience=["public", "group:3"])
    with pytest.raises(EventError, match="audience"):
        CategoryCreated(category_id=1, slug="c", name="C", audience=audience)
    with pytest.raises(EventError, match="audience"):
        Envelope("x", good.type, 1, "2026-01-01T00:00:00+00:00", None, {**good.to_data(), "audience": audience}).event()


def test_event_types_are_defined_once_and_named_noun_verb():
    """Each event type has one definition named noun.verb; a second definition of a name is refused."""
    types = event_types()
    assert {"user.registered", "post.created", "post.edited", "post.hidden", "reaction.added"} <= set(types)
    for name, cls in types.items():
        assert cls.type == name
        noun, _, verb = name.partition(".")
        assert noun and verb and name == name.lower()
    assert types["post.created"] is PostCreated
    with pytest.raises(TypeError, match="defined twice"):

        @dataclass(frozen=True)
        class Again(Event):
            type = "post.created"


def test_new_event_id_is_unique_and_time_ordered():
    """Event ids are UUIDv7s, unique, and sort in the order they were made, even within one millisecond."""
    before_ms = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(20_000)]
    after_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for value in (ids[0], ids[-1]):
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms
