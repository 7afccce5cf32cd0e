"""Domain events: the envelope, the transactional outbox, the relay that publishes it to the Redis
stream, and the consumer-group runner; the event types themselves are in shared/event_types.py
(every name of it is offered here too, so `ev.PostCreated` reads as before).

Producers build an event dataclass and `write_event(conn, ...)` inside the same
transaction as the change. The relay (one per forum process; an advisory lock lets
one publish at a time) XADDs batches in outbox id order and marks the rows published.
Events of one transaction, and of transactions that follow each other, keep their
order; two concurrent transactions may appear in commit order instead of id order
(an id is drawn at INSERT, and the later id can commit first). Consumers read with
XREADGROUP, ack after handling, take back their own unacked entries when they
(re)start (a replica keeps its name), reclaim other members' entries idle too long
with XAUTOCLAIM, and dead-letter an entry after `max_deliveries` failed attempts (at
once when it is not a valid event). Delivery is at least once: handlers are
idempotent. The relay and consumers retry with backoff while Redis is away and
report how they are doing to their LoopHealth (read by /readyz).
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from shared.event_types import *  # noqa: F403  (every event type, as ev.PostCreated)
from shared.event_types import Event, EventError, type_named

log = logging.getLogger("tica.events")

NOTIFY_CHANNEL = "tica_outbox"
RELAY_LOCK_KEY = 0x7469_6362
STREAM_FIELD = "e"


def stream_name(prefix: str) -> str:
    """The one stream every domain event goes through."""
    return f"{prefix}events"


def dead_letter_stream(prefix: str, group: str) -> str:
    return f"{prefix}events:dead:{group}"


# --- long-running loops: health and backoff ----------------------------------

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0


@dataclass
class LoopHealth:
    """How one long-running loop (relay, consumer, live reader, job worker) is doing, for /readyz.

    A loop calls `failed` when an attempt fails (Redis or PostgreSQL away) and waits the delay it
    returns, then `working` once an attempt succeeds; /readyz answers 503 with the loop's name while it
    is failing, or once it has stopped for good.
    """

    name: str
    failures: int = 0  # in a row
    failing_since: float | None = None
    error: str = ""
    stopped: bool = False

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; the seconds to wait before the next (0.1 s, doubling up to 5 s)."""
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.error = f"{exc.__class__.__name__}: {exc}"[:200]
        return min(BACKOFF_FIRST_S * 2 ** min(self.failures - 1, 10), BACKOFF_MAX_S)

    def working(self) -> None:
        """An attempt succeeded: the loop is well again, and the next failure starts the backoff afresh."""
        if self.failures:
            log.info("%s works again after %d failed attempt(s)", self.name, self.failures)
        self.failures, self.failing_since, self.error = 0, None, ""

    def problem(self) -> str | None:
        """Why the loop is not doing its work, or None."""
        if self.stopped:
            return f"{self.name} has stopped"
        if self.failing_since is not None:
            return f"{self.name} failing for {time.monotonic() - self.failing_since:.0f} s: {self.error}"
        return None


_current_loop: ContextVar[LoopHealth] = ContextVar("tica_loop_health")


def loop_health(name: str = "loop") -> LoopHealth:
    """The health record of the loop this code runs in: the one its supervisor (shared/web.py) set,
    or a new one kept for the rest of this task (a loop run on its own, as in tests)."""
    try:
        return _current_loop.get()
    except LookupError:
        health = LoopHealth(name)
        _current_loop.set(health)
        return health


def set_loop_health(health: LoopHealth) -> None:
    """Make `health` the record the loops run from the current task report to."""
    _current_loop.set(health)


# --- envelope ----------------------------------------------------------------


_last_id_lock = threading.Lock()
_last_id = [0, 0]  # [unix ms, 74-bit counter] of the last id made by this process


def new_event_id() -> str:
    """A UUIDv7: unique, and ordered by creation time.

    Within one process ids strictly increase, also within one millisecond: the 74 bits
    after the timestamp start random and count up from the previous id (RFC 9562, 6.2).
    """
    ms = time.time_ns() // 1_000_000
    counter = int.from_bytes(os.urandom(10), "big") >> 6  # 74 random bits
    with _last_id_lock:
        last_ms, last_counter = _last_id
        if ms <= last_ms:  # same millisecond, or the clock went back
            ms, counter = last_ms, last_counter + 1
            if counter >> 74:
                ms, counter = ms + 1, 0
        _last_id[:] = [ms, counter]
    rand_a, rand_b = counter >> 62, counter & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


@dataclass(frozen=True)
class Envelope:
    """What travels on the stream: `{id, type, version, occurred_at, actor_id, data}`."""

    id: str
    type: str
    version: int
    occurred_at: str
    actor_id: int | None
    data: dict[str, Any]

    @classmethod
    def wrap(cls, event: Event, *, actor_id: int | None) -> Envelope:
        occurred_at = datetime.now(UTC).isoformat()
        return cls(new_event_id(), event.type, event.version, occurred_at, actor_id, event.to_data())

    def to_json(self) -> str:
        fields = {
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at,
            "actor_id": self.actor_id,
            "data": self.data,
        }
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        try:
            value = json.loads(raw)
            return cls(**value)
        except (TypeError, ValueError) as exc:
            raise EventError(f"not an event envelope: {exc}") from None

    def event(self) -> Event:
        """The typed event; raises EventError for an unknown type or fields."""
        cls = type_named(self.type)
        if cls is None:
            raise EventError(f"unknown event type {self.type}")
        return cls.from_data(self.data)


# --- outbox ------------------------------------------------------------------


async def write_event(conn: asyncpg.Connection, event: Event, *, actor_id: int | None, outbox: str) -> Envelope:
    """Record an event in the outbox table (the producing service's), in the caller's transaction;
    published after commit."""
    envelope = Envelope.wrap(event, actor_id=actor_id)
    # One statement: the row, and a NOTIFY to wake the relay (delivered at commit only, and not at all
    # after a rollback). ::text first: a pool's jsonb codec would otherwise encode the JSON text again.
    await conn.execute(
        f"WITH written AS (INSERT INTO {outbox} (event_id, type, payload) VALUES ($1, $2, $3::text::jsonb) "
        f"RETURNING 1) SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM written",
        envelope.id,
        envelope.type,
        envelope.to_json(),
    )
    return envelope


@dataclass
class Relay:
    """Publishes the outbox to the stream, in commit order, at least once."""

    pool: asyncpg.Pool
    redis: aioredis.Redis
    stream: str
    outbox: str  # the producing service's outbox table, schema-qualified
    maxlen: int = 200_000
    batch_size: int = 1000
    poll_interval_s: float = 1.0
    # After a wake-up, wait this long for more commits before publishing: under a burst of writes
    # one batch carries many events instead of one batch (six round trips) for each.
    gather_s: float = 0.005
    published_total: int = 0

    async def publish_batch(self) -> int:
        """Publish up to batch_size unpublished events; 0 when none or another relay holds the lock."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY):
                return 0
            rows = await conn.fetch(
                f"SELECT id, payload::text AS payload FROM {self.outbox} WHERE published_at IS NULL "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch_size,
            )
            if not rows:
                return 0
            pipe = self.redis.pipeline(transaction=False)
            for row in rows:
                pipe.xadd(self.stream, {STREAM_FIELD: row["payload"]}, maxlen=self.maxlen, approximate=True)
            await pipe.execute()
            await conn.execute(
                f"UPDATE {self.outbox} SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        self.published_total += len(rows)
        return len(rows)

    async def publish_all(self) -> int:
        """Publish until the outbox is empty (or another relay has the lock)."""
        total = 0
        while (count := await self.publish_batch()) > 0:
            total += count
            if count < self.batch_size:  # that was the last of them: no need to ask again
                break
        return total

    async def run(self, stop: asyncio.Event, dsn: str) -> None:
        """Publish whenever a commit notifies (or every poll interval) until `stop` is set."""
        health = loop_health("outbox relay")
        wake = asyncio.Event()
        listener = await _listen(dsn, wake)
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    await self.publish_all()
                    health.working()
                except (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    backoff_s = health.failed(exc)
                    log.warning("relay: publishing failed, retrying in %.1fs: %s", backoff_s, exc)
                    await _wait_any(stop, None, backoff_s)
                    continue
                if listener is None or listener.is_closed():
                    listener = await _listen(dsn, wake)
                await _wait_any(stop, wake, self.poll_interval_s)
                if wake.is_set() and self.gather_s:
                    await _wait_any(stop, None, self.gather_s)
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def prune(self, older_than_s: float = 7 * 86400) -> int:
        """Delete published outbox rows older than the given age."""
        result = await self.pool.execute(
            f"DELETE FROM {self.outbox} WHERE published_at < now() - make_interval(secs => $1)", older_than_s
        )
        return int(result.split()[-1])


async def _listen(dsn: str, wake: asyncio.Event) -> asyncpg.Connection | None:
    try:
        conn = await asyncpg.connect(dsn)
        await conn.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
        return conn
    except (OSError, asyncpg.PostgresError) as exc:
        log.warning("relay: cannot LISTEN, polling instead: %s", exc)
        return None


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# --- consumers ---------------------------------------------------------------

Handler = Callable[[Envelope], Awaitable[None]]

# Forgets members of a group that have nothing pending and have not read for `idle` ms (one step,
# so a member cannot read an entry between the check and the removal). A member still alive is
# recreated by its next read; with nothing pending, nothing is lost either way.
_FORGET_DEAD_MEMBERS = """
local forgotten = {}
for _, member in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #member, 2 do info[member[i]] = member[i + 1] end
  if info['name'] ~= ARGV[2] and info['pending'] == 0 and info['idle'] >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    table.insert(forgotten, info['name'])
  end
end
return forgotten
"""


def consumer_name() -> str:
    """This process's name in its consumer groups, the same after a restart: the host name (a machine,
    a Compose container, a Kubernetes pod), so a restarted replica takes back the entries it had not
    acked at once (Consumer.take_back). One of several worker processes (`tica serve --workers N`)
    adds its place among them (WORKER_INDEX, set by services/workers.py, the same for its replacement),
    or else its process id; members gone for good are forgotten (Consumer.forget_dead_members)."""
    host = socket.gethostname()
    index = os.environ.get(WORKER_INDEX)
    if index is not None:
        return f"{host}-{index}"
    if multiprocessing.parent_process() is None:
        return host
    return f"{host}-{os.getpid()}"


# The place of a worker process among `tica serve --workers N`'s, handed down by the supervisor.
WORKER_INDEX = "TICA_WORKER_INDEX"


@dataclass
class Consumer:
    """One member of a consumer group, handling every event of the stream once per group."""

    redis: aioredis.Redis
    stream: str
    group: str
    name: str
    handler: Handler
    dead_letter: str
    batch_size: int = 100
    block_ms: int = 1000
    claim_idle_ms: int = 30_000  # TICA_RECLAIM_IDLE_S: another member's unacked entry is taken over after this
    forget_idle_ms: int = 300_000  # a member with nothing pending that has not read for this long is gone
    max_deliveries: int = 5
    handled_total: int = 0
    last_handled_at: float | None = None
    last_event_occurred_at: str | None = None

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        """Read, handle and ack until `stop` is set; reclaims idle entries between reads.

        Whenever it (re)connects it joins the group (made again if Redis lost it) and takes back its
        own unacked entries; while Redis is away it retries with backoff, reported as failing.
        """
        health = loop_health(f"consumer {self.group}")
        joined = False
        next_claim = 0.0
        while not stop.is_set():
            try:
                if not joined:
                    await self.ensure_group()
                    await self.take_back()
                    joined = True
                if time.monotonic() >= next_claim:
                    await self.forget_dead_members()
                    await self.reclaim()
                    next_claim = time.monotonic() + self.claim_idle_ms / 2000
                await self.read_once(block_ms=self.block_ms)
                health.working()
            except (RedisError, OSError) as exc:
                joined = False
                delay_s = health.failed(exc)
                log.warning("consumer %s/%s: redis error, retrying in %.1f s: %s", self.group, self.name, delay_s, exc)
                await _wait_any(stop, None, delay_s)

    async def take_back(self) -> int:
        """Handle again what this member had read but not acked when it stopped or lost Redis: a
        restarted replica keeps its name (consumer_name), so its entries wait for no reclaim."""
        start, total = "0-0", 0
        while True:
            reply = await self.redis.xreadgroup(self.group, self.name, {self.stream: start}, count=self.batch_size)
            entries = reply[0][1] if reply else []
            if not entries:
                return total
            start = _as_str(entries[-1][0])
            trimmed = [entry_id for entry_id, fields in entries if not fields]
            if trimmed:  # gone from the stream: nothing left to handle
                await self.redis.xack(self.stream, self.group, *trimmed)
            kept = [(entry_id, fields) for entry_id, fields in entries if fields]
            counts = await self._delivery_counts(kept)
            for entry_id, fields in kept:
                await self._handle(entry_id, fields, deliveries=counts.get(_as_str(entry_id), 1))
            total += len(kept)

    async def forget_dead_members(self) -> list[str]:
        """Remove the group's members that have nothing pending and have not read for forget_idle_ms:
        replicas that are gone (a new pod, a worker process restarted), which would pile up otherwise."""
        forgotten = await self.redis.eval(  # type: ignore[misc]
            _FORGET_DEAD_MEMBERS, 1, self.stream, self.group, self.name, str(self.forget_idle_ms)
        )
        names = [_as_str(name) for name in forgotten or []]
        if names:
            log.info("consumer %s: forgot %d member(s) gone for good: %s", self.group, len(names), ", ".join(names))
        return names

    async def read_once(self, *, block_ms: int | None = None) -> int:
        """Handle one batch of new entries; returns how many were read."""
        reply = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=self.batch_size, block=block_ms
        )
        entries = reply[0][1] if reply else []
        for entry_id, fields in entries:
            await self._handle(entry_id, fields, deliveries=1)
        return len(entries)

    async def reclaim(self) -> int:
        """Take over entries another member (or this one) read but did not ack in time."""
        start = "0-0"
        total = 0
        while True:
            result = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.name,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.batch_size,
            )
            scanned_from, start, entries = start, result[0], result[1]
            if any(entry_id is None for entry_id, _ in entries):
                await self._ack_trimmed(scanned_from, start)
            entries = [(entry_id, fields) for entry_id, fields in entries if entry_id is not None]
            counts = await self._delivery_counts(entries)
            for entry_id, fields in entries:
                await self._handle(entry_id, fields, deliveries=counts.get(_as_str(entry_id), self.max_deliveries))
            total += len(entries)
            if _as_str(start) in ("0-0", "0"):
                return total

    async def _ack_trimmed(self, start: Any, end: Any) -> None:
        """Ack this member's pending entries that were trimmed from the stream.

        Redis 7 drops those from the group itself; Redis 6.2 (the embedded one) returns
        them from XAUTOCLAIM as nil without their ids and keeps them pending forever.
        """
        end = "+" if _as_str(end) in ("0-0", "0") else end
        pending = await self.redis.xpending_range(
            self.stream, self.group, min=start, max=end, count=self.batch_size * 10, consumername=self.name
        )
        ids = [p["message_id"] for p in pending]
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(self.stream, entry_id, entry_id)
        gone = [entry_id for entry_id, found in zip(ids, await pipe.execute(), strict=True) if not found]
        if gone:
            await self.redis.xack(self.stream, self.group, *gone)

    async def _delivery_counts(self, entries: list[Any]) -> dict[str, int]:
        if not entries:
            return {}
        ids = [_as_str(entry_id) for entry_id, _ in entries]
        pending = await self.redis.xpending_range(
            self.stream, self.group, min=ids[0], max=ids[-1], count=len(ids) + 100, consumername=self.name
        )
        return {_as_str(p["message_id"]): int(p["times_delivered"]) for p in pending}

    async def _handle(self, entry_id: Any, fields: dict[Any, Any], *, deliveries: int) -> None:
        raw = fields.get(STREAM_FIELD) or fields.get(STREAM_FIELD.encode())
        try:
            envelope = Envelope.from_json(raw or b"")
        except EventError as exc:
            await self._dead_letter(entry_id, fields, f"unreadable: {exc}")
            return
        try:
            envelope.event()  # an unknown type or fields will not get better with retries
        except EventError as exc:
            await self._dead_letter(entry_id, fields, f"invalid: {exc}")
            return
        try:
            await self.handler(envelope)
        except Exception as exc:  # a handler bug must not stop the group
            if deliveries >= self.max_deliveries:
                log.error(
                    "consumer %s: %s %s failed %d times, dead-lettered: %r",
                    self.group,
                    envelope.type,
                    envelope.id,
                    deliveries,
                    exc,
                )
                await self._dead_letter(entry_id, fields, repr(exc))
            else:
                log.warning(
                    "consumer %s: %s %s failed (attempt %d), will retry: %r",
                    self.group,
                    envelope.type,
                    envelope.id,
                    deliveries,
                    exc,
                )
            return
        await self.redis.xack(self.stream, self.group, entry_id)
        self.handled_total += 1
        self.last_handled_at = time.time()
        self.last_event_occurred_at = envelope.occurred_at

    async def _dead_letter(self, entry_id: Any, fields: dict[Any, Any], error: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.dead_letter, {**fields, "error": error[:2000], "entry_id": _as_str(entry_id)})
        pipe.xack(self.stream, self.group, entry_id)
        await pipe.execute()


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def group_lag(redis: aioredis.Redis, stream: str, group: str) -> dict[str, Any]:
    """Entries not yet delivered to a group and entries delivered but not acked."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return {"lag": None, "pending": None}
    for info in groups:
        name = _as_str(info.get("name"))
        if name == group:
            return {"lag": info.get("lag"), "pending": info.get("pending")}
    return {"lag": None, "pending": None}
