"""Live updates: the `/live` websocket and the fan-out that feeds it.

Every notify replica reads the event stream (and notify's own stream of unread
counts) with plain XREAD, no group, so each sees every event and pushes it to its
own websocket clients. A client subscribes to channels (`topic:N`, `category:N`,
`user:N`, and `latest` for lists of every category), each checked against what the
viewer may see; it sends the last event id it saw and gets what it missed (XRANGE,
exclusive), or `reset` (with the id to go on from) when that id is older than the
stream keeps or more than REPLAY_LIMIT entries back. channels.py names the channels
and says what each event type shows on them: user.* events never reach topic or
category channels (they carry private addresses), channels get only what a page needs
(ids, post number, author username, event type), and `user:N` gets only unread counts.
An entry that is not a valid event is logged with its id and type.

Each client has a bounded queue; the fan-out never waits for a client. A client
whose queue is full is disconnected (close code 4008: reconnect and resume), so a
slow reader never slows anyone else. A replay is the one sender that waits: it fills
at most half the queue and streams at the client's pace, so resuming never overflows.

Who a viewer is follows the stream too: a member removed from a group, demoted or
suspended loses what that allowed on every open socket at once (their session in
Redis is refreshed by the forum after its commit; the 60-second session check only
catches what no event says). A channel whose audience notify does not know yet (a
topic created a moment ago, ids above any it knows) is answered `pending` and
subscribed when its creation arrives; it is refused only once it is known to be
forbidden, and never earlier than an unknown one would be, so `pending` tells an
outsider no more than the newest id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from redis.exceptions import RedisError, ResponseError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from services.notify import channels as ch
from services.notify import notifications, projections
from services.notify.channels import Message, live_messages
from shared import audience as aud
from shared import events as ev
from shared.sessions import SESSION_COOKIE, Session
from shared.web import Runtime, error_response

log = logging.getLogger("tica.live")

STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
QUEUE_SIZE = 256  # messages waiting for one client before it is disconnected
XREAD_COUNT = 100  # entries fanned out at once: below QUEUE_SIZE, so a burst alone never overflows
MAX_CHANNELS = 50
MAX_MESSAGE_BYTES = 8192
REPLAY_LIMIT = 1000  # a client that missed more than this reloads instead (reset)
PING_INTERVAL_S = 30.0
SESSION_CHECK_INTERVAL_S = 60.0
AUDIENCE_CACHE_S = 5.0
PENDING_S = 10.0  # how long a subscription to a channel notify does not know yet waits for it
REVOKED_S = 120.0  # how long a right an event took away outweighs a session read from Redis
RECENT_CHANNELS = 10_000  # audiences learnt from the stream, kept until the projection has them
RETRY_AFTER_S = 5
CLOSE_SESSION_ENDED = 4001
CLOSE_BAD_ORIGIN = 4003
CLOSE_TOO_SLOW = 4008
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013
CLOSE_REASONS = {
    CLOSE_SESSION_ENDED: "Your session ended.",
    CLOSE_TOO_SLOW: "Too far behind: reconnect and resume.",
    CLOSE_INTERNAL: "Something went wrong: reconnect.",
    CLOSE_TRY_LATER: "Live updates are unavailable for a moment: try again later.",
}
# Services that are down (Redis, PostgreSQL): the client is told to come back, not that it erred.
UNAVAILABLE = (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# The newest id notify knows of a kind: an unknown channel above it may be one being created.
NEWEST_SQL = {"topic": "SELECT max(id) FROM notify.topics", "category": "SELECT max(id) FROM notify.categories"}

StreamKey = tuple[int, int]


def stream_key(entry_id: str) -> StreamKey:
    """A stream id as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- reading the stream ------------------------------------------------------------------------


def read_entry(entry_id: str, fields: dict[Any, Any]) -> tuple[ev.Envelope, list[Message]] | None:
    """An event entry's envelope and channel messages; None, logged with the entry id and event
    type, when it is not a valid event. The durable consumers dead-letter such an entry; live
    serves the others and says which one it could not read, so a renamed field is seen, not silent."""
    raw = fields.get(ev.STREAM_FIELD.encode()) or fields.get(ev.STREAM_FIELD)
    try:
        envelope = ev.Envelope.from_json(raw or b"")
    except ev.EventError as exc:
        log.warning(
            "live: stream entry %s (type %s) is not an event, not forwarded: %s", entry_id, _claimed_type(raw), exc
        )
        return None
    try:
        return envelope, live_messages(envelope)
    except ev.EventError as exc:
        log.warning(
            "live: stream entry %s (type %s) does not match its definition, not forwarded: %s",
            entry_id,
            envelope.type,
            exc,
        )
    except Exception:  # a handler bug must not stop the fan-out for everyone else
        log.exception("live: stream entry %s (type %s) could not be forwarded", entry_id, envelope.type)
    return None


def _claimed_type(raw: Any) -> str:
    """The type an unreadable entry says it has, for the log ("?" when it says none)."""
    try:
        value = json.loads(raw or b"")
    except (TypeError, ValueError, RecursionError):
        return "?"
    return str(value.get("type", "?")) if isinstance(value, dict) else "?"


def event_message(entry_id: str, channel: str, event_type: str, data: dict[str, Any]) -> str:
    """The text of one event on one channel, as clients receive it."""
    return dumps({"type": "event", "id": entry_id, "channel": channel, "event": event_type, "data": data})


def count_message(entry_id: str, channel: str, unread: int) -> str:
    """A member's unread count on their `user:N` channel."""
    return event_message(entry_id, channel, "notification.count", {"unread": unread})


def error(code: str, message: str, channel: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if channel is not None:
        body["channel"] = channel
    return body


def forbidden(channel: str) -> dict[str, Any]:
    # The same answer for what does not exist and what is private: outsiders learn nothing.
    kind = (ch.parse(channel) or ("channel", 0))[0]
    return error("forbidden", f"You cannot follow that {kind}.", channel)


# Events that change who a member is: the access they carry reaches open sockets at once.
MEMBER_EVENTS = frozenset(
    cls.type for cls in (ev.GroupMemberAdded, ev.GroupMemberRemoved, ev.UserUpdated, ev.UserSuspended)
)
# Events that say who may read a topic or category, so a channel created a moment ago is known.
AUDIENCE_EVENTS = frozenset(
    cls.type for cls in (ev.TopicCreated, ev.TopicUpdated, ev.CategoryCreated, ev.CategoryUpdated)
)


def _suspended(until: str | None) -> bool:
    if until is None:
        return False
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        return True  # unreadable: the safe reading
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) > datetime.now(UTC)


# --- clients -------------------------------------------------------------------------------------


class Client:
    """One websocket connection: its viewer, channels and bounded outgoing queue."""

    __slots__ = (
        "audiences",
        "channels",
        "closing",
        "held",
        "hub",
        "may_read",
        "pending",
        "queue",
        "recheck",
        "replayed_upto",
        "room",
        "sender",
        "session",
        "tasks",
        "waiting",
        "websocket",
    )

    def __init__(self, hub: Hub, websocket: WebSocket, session: Session | None, queue_size: int) -> None:
        self.hub = hub
        self.websocket = websocket
        self.session = session
        self.set_audiences(aud.for_viewer(session))
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.room = asyncio.Event()  # set while a replay may queue more
        self.room.set()
        self.channels: set[str] = set()
        # Channels being replayed: live messages wait here so none is lost or sent twice.
        self.pending: dict[str, list[tuple[StreamKey, str]]] = {}
        self.replayed_upto: dict[str, StreamKey] = {}
        # Channels asked again after the viewer lost a right: their messages wait for the answer.
        self.held: dict[str, list[tuple[StreamKey, str, list[str] | None]]] = {}
        self.recheck: asyncio.Task[None] | None = None
        self.waiting: set[str] = set()  # channels answered `pending`
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing: int | None = None
        self.sender: asyncio.Task[None] | None = None

    def set_audiences(self, audiences: list[str]) -> None:
        self.audiences = frozenset(audiences)
        self.may_read = aud.reader(self.audiences)

    def sees(self, audience: Iterable[str] | None) -> bool:
        """Whether the viewer may see a message (None: the channel's check at subscribe decided)."""
        return audience is None or self.may_read(audience)

    @property
    def replay_room(self) -> int:
        return max(1, (self.queue.maxsize or QUEUE_SIZE) // 2)

    def push(self, text: str) -> None:
        """Queue a message; a full queue disconnects the client rather than wait for it."""
        if self.closing is not None:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.hub.kick(self, CLOSE_TOO_SLOW)

    async def put(self, text: str) -> None:
        """Queue a replayed message at the client's pace: a replay fills at most half the queue,
        so it streams through however long it is and leaves room for live messages."""
        while self.closing is None and self.queue.qsize() >= self.replay_room:
            self.room.clear()
            await self.room.wait()
        self.push(text)

    def deliver(self, channel: str, key: StreamKey, text: str, audience: list[str] | None) -> None:
        """A live stream message for one of the client's channels."""
        held = self.held.get(channel)
        if held is not None:
            held.append((key, text, audience))
            if len(held) > self.queue.maxsize:
                self.hub.kick(self, CLOSE_TOO_SLOW)
            return
        if not self.sees(audience):
            return
        upto = self.replayed_upto.get(channel)
        if upto is not None and key <= upto:
            return  # the replay sends it
        waiting = self.pending.get(channel)
        if waiting is not None:
            waiting.append((key, text))
            # Up to REPLAY_LIMIT of them may be the replay's own (a fan-out catching up on a burst).
            if len(waiting) > self.queue.maxsize + REPLAY_LIMIT:
                self.hub.kick(self, CLOSE_TOO_SLOW)
            return
        self.push(text)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run work for this connection; it ends with the connection."""
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def send_loop(self) -> None:
        while True:
            text = await self.queue.get()
            if self.queue.qsize() < self.replay_room:
                self.room.set()
            await self.websocket.send_text(text)


@dataclass
class Revoked:
    """Rights an event took from a member, until their session in Redis surely says so too."""

    until: float
    group_ids: set[int] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)


# --- the hub --------------------------------------------------------------------------------------


@dataclass
class HubStats:
    connected: int = 0
    delivered_events: int = 0
    kicked_slow: int = 0
    kicked_session: int = 0


@dataclass
class Hub:
    """One process's live clients by channel, fed by XREAD of the streams."""

    rt: Runtime
    queue_size: int = QUEUE_SIZE
    ping_interval_s: float = PING_INTERVAL_S
    session_check_interval_s: float = SESSION_CHECK_INTERVAL_S
    pending_s: float = PENDING_S
    channels: dict[str, set[Client]] = field(default_factory=dict)
    clients: set[Client] = field(default_factory=set)
    stats: HubStats = field(default_factory=HubStats)
    running: bool = False
    last_event_id: str = "0-0"  # the last entry of the events stream fanned out
    _audience_cache: dict[str, tuple[float, list[str] | None]] = field(default_factory=dict)
    # channel -> (audience, category id of a topic), from the stream, ahead of the projection
    _recent: OrderedDict[str, tuple[list[str], int | None]] = field(default_factory=OrderedDict)
    _newest: dict[str, int] = field(default_factory=dict)
    _arrived: dict[str, asyncio.Event] = field(default_factory=dict)  # set when a channel's audience arrives
    _revoked: dict[int, Revoked] = field(default_factory=dict)

    @property
    def events_stream(self) -> str:
        return ev.stream_name(self.rt.settings.redis_prefix)

    @property
    def live_stream(self) -> str:
        return notifications.live_stream_name(self.rt.settings.redis_prefix)

    # -- membership

    def attach(self, client: Client) -> None:
        self.clients.add(client)
        self.stats.connected = len(self.clients)

    def detach(self, client: Client) -> None:
        self.clients.discard(client)
        self._leave(client, list(client.channels))
        client.waiting.clear()
        for task in tuple(client.tasks):
            task.cancel()
        client.room.set()
        self.stats.connected = len(self.clients)

    def _join(self, client: Client, channels: Iterable[str]) -> None:
        for channel in channels:
            self.channels.setdefault(channel, set()).add(client)
            client.channels.add(channel)

    def _leave(self, client: Client, channels: Iterable[str]) -> None:
        for channel in channels:
            client.channels.discard(channel)
            client.replayed_upto.pop(channel, None)
            client.held.pop(channel, None)
            subscribers = self.channels.get(channel)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self.channels[channel]

    def kick(self, client: Client, code: int) -> None:
        """Disconnect a client (its endpoint closes the socket) without waiting for it."""
        if client.closing is not None:
            return
        client.closing = code
        if code == CLOSE_TOO_SLOW:
            self.stats.kicked_slow += 1
        elif code == CLOSE_SESSION_ENDED:
            self.stats.kicked_session += 1
        self.detach(client)
        if client.sender is not None:
            client.sender.cancel()

    # -- fan-out

    def dispatch(self, stream: str, entry_id: str, fields: dict[Any, Any]) -> None:
        """Hand one stream entry to the clients of its channels."""
        if stream == self.live_stream:
            self._dispatch_count(entry_id, fields)
            return
        self.last_event_id = entry_id
        read = read_entry(entry_id, fields)
        if read is None:
            return
        envelope, messages = read
        if envelope.type in MEMBER_EVENTS or envelope.type in AUDIENCE_EVENTS:
            self._learn(entry_id, envelope)
        key = stream_key(entry_id)
        for channel, data, audience in messages:
            subscribers = self.channels.get(channel)
            if not subscribers:
                continue
            text = event_message(entry_id, channel, envelope.type, data)
            for client in tuple(subscribers):
                client.deliver(channel, key, text, audience)
            self.stats.delivered_events += 1

    def _dispatch_count(self, entry_id: str, fields: dict[Any, Any]) -> None:
        values = {_str(k): _str(v) for k, v in fields.items()}
        user_id, unread = values.get("u", ""), values.get("n", "")
        if not user_id.isdigit() or not unread.isdigit():
            return
        channel = ch.user_channel(int(user_id))
        subscribers = self.channels.get(channel)
        if not subscribers:
            return
        text = count_message(entry_id, channel, int(unread))
        for client in tuple(subscribers):
            client.push(text)

    def _learn(self, entry_id: str, envelope: ev.Envelope) -> None:
        """What an event says about members and audiences, applied to this process's clients."""
        try:
            event = envelope.event()
            if isinstance(event, ev.TopicCreated | ev.TopicUpdated):
                self._remember(ch.topic_channel(event.topic_id), list(event.audience), event.category_id)
            elif isinstance(event, ev.CategoryCreated | ev.CategoryUpdated):
                self._remember(ch.category_channel(event.category_id), list(event.audience), None)
            else:
                self._follow_member(event)
        except ev.EventError:
            pass  # read_entry logs what does not match its definition
        except Exception:  # a bug here must not stop the fan-out for everyone else
            log.exception("live: stream entry %s (type %s) could not be applied", entry_id, envelope.type)

    async def _stream_end(self, stream: str) -> str:
        try:
            info = await self.rt.redis.xinfo_stream(stream)
        except ResponseError:  # no stream yet: everything in it will be new
            return "0-0"
        return _str(info["last-generated-id"])

    async def run(self, stop: asyncio.Event) -> None:
        """Read both streams from their current end and fan out, until stop; with pings and session checks."""
        redis = self.rt.redis
        cursors = {
            self.events_stream: await self._stream_end(self.events_stream),
            self.live_stream: await self._stream_end(self.live_stream),
        }
        self.last_event_id = cursors[self.events_stream]
        self.running = True
        upkeep = asyncio.create_task(self.upkeep(stop), name="live-upkeep")
        try:
            while not stop.is_set():
                try:
                    reply = await redis.xread(cursors, count=XREAD_COUNT, block=1000)  # type: ignore[arg-type]
                except (RedisError, OSError) as exc:
                    log.warning("live: reading the stream failed, retrying: %s", exc)
                    await asyncio.sleep(1)
                    continue
                for stream, entries in reply or []:
                    name = _str(stream)
                    for entry_id, fields in entries:
                        cursors[name] = _str(entry_id)
                        self.dispatch(name, cursors[name], fields)
        finally:
            self.running = False
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep

    # -- upkeep: pings, ended sessions, presence

    async def upkeep(self, stop: asyncio.Event) -> None:
        next_check = time.monotonic() + self.session_check_interval_s
        while not stop.is_set():
            await asyncio.sleep(self.ping_interval_s)
            ping = dumps({"type": "ping"})
            for client in tuple(self.clients):
                client.push(ping)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.session_check_interval_s
                try:
                    await self.check_sessions()
                except Exception as exc:  # one failed check must not end the pings
                    log.warning("live: session check failed: %r", exc)

    async def check_sessions(self) -> None:
        """Close the sockets of ended sessions, follow changed groups, and mark members present."""
        members = [c for c in tuple(self.clients) if c.session is not None and not c.session.via_token]
        present: set[int] = set()
        for start in range(0, len(members), 200):
            chunk = members[start : start + 200]
            found = await asyncio.gather(*(self.rt.sessions.get(c.session.id) for c in chunk if c.session))
            for client, session in zip(chunk, found, strict=True):
                if session is None:
                    self.kick(client, CLOSE_SESSION_ENDED)
                    continue
                self._restate(client, session)
                present.add(session.user_id)
        now = time.monotonic()
        for user_id in [u for u, revoked in self._revoked.items() if revoked.until <= now]:
            del self._revoked[user_id]
        if present:
            async with self.rt.pool.acquire() as conn:
                await projections.mark_seen(conn, sorted(present))

    # -- who a member is: group membership, roles, suspension

    def _clients_of(self, user_id: int) -> list[Client]:
        return [c for c in self.clients if c.session is not None and c.session.user_id == user_id]

    def _follow_member(self, event: ev.Event) -> None:
        """Apply a change to who a member is to their open sockets now: rights taken away are
        remembered for a while, so a session read from Redis before the forum refreshed it cannot
        give them back; a group joined is added at once."""
        if isinstance(event, ev.UserSuspended) or (
            isinstance(event, ev.UserUpdated) and _suspended(event.suspended_until)
        ):
            for client in self._clients_of(event.user_id):
                self.kick(client, CLOSE_SESSION_ENDED)
        elif isinstance(event, ev.GroupMemberRemoved):
            self._revoke(event.user_id, group_ids={event.group_id})
        elif isinstance(event, ev.GroupMemberAdded):
            revoked = self._revoked.get(event.user_id)
            if revoked is not None:
                revoked.group_ids.discard(event.group_id)
            for client in self._clients_of(event.user_id):
                assert client.session is not None
                groups = sorted({*client.session.group_ids, event.group_id})
                self._restate(client, dataclasses.replace(client.session, group_ids=groups))
        elif isinstance(event, ev.UserUpdated):
            revoked = self._revoked.get(event.user_id)
            if revoked is not None:
                revoked.roles.difference_update(event.roles)
            for client in self._clients_of(event.user_id):
                assert client.session is not None
                now_in = client.session.group_ids if event.group_ids is None else event.group_ids
                lost_groups = set(client.session.group_ids) - set(now_in)
                lost_roles = set(client.session.roles) - set(event.roles)
                self._revoke(event.user_id, group_ids=lost_groups, roles=lost_roles)

    def _revoke(self, user_id: int, *, group_ids: Iterable[int] = (), roles: Iterable[str] = ()) -> None:
        group_ids, roles = set(group_ids), set(roles)
        if not group_ids and not roles:
            return
        revoked = self._revoked.setdefault(user_id, Revoked(0.0))
        revoked.until = time.monotonic() + REVOKED_S
        revoked.group_ids.update(group_ids)
        revoked.roles.update(roles)
        for client in self._clients_of(user_id):
            assert client.session is not None
            self._restate(client, client.session)

    def _without_revoked(self, session: Session) -> Session:
        revoked = self._revoked.get(session.user_id)
        if revoked is None or revoked.until <= time.monotonic():
            return session
        return dataclasses.replace(
            session,
            group_ids=[g for g in session.group_ids if g not in revoked.group_ids],
            roles=[r for r in session.roles if r not in revoked.roles],
        )

    def _restate(self, client: Client, session: Session) -> None:
        """Give a client its viewer as now known; channels it may have lost are asked again."""
        session = self._without_revoked(session)
        before = client.audiences
        client.session = session
        client.set_audiences(aud.for_viewer(session))
        if not client.audiences >= before:
            self._recheck(client)

    def _recheck(self, client: Client) -> None:
        """Hold the client's topic and category channels until each is asked again: messages with
        an audience are already filtered, but a hidden or deleted post's ids rely on the channel."""
        for channel in client.channels:
            parsed = ch.parse(channel)
            if parsed is not None and parsed[0] != "user":
                client.held.setdefault(channel, [])
        if client.held and (client.recheck is None or client.recheck.done()):
            client.recheck = client.spawn(self._recheck_held(client))

    async def _recheck_held(self, client: Client) -> None:
        try:
            while client.held:
                channel = next(iter(client.held))
                audience = await self._audience(channel)
                held = client.held.pop(channel, None)  # decided now, with the viewer as it is now
                if held is None or channel not in client.channels:
                    continue
                if audience is None or not client.sees(audience):
                    self._leave(client, [channel])
                    client.push(dumps(forbidden(channel)))
                    continue
                for key, text, message_audience in held:
                    client.deliver(channel, key, text, message_audience)
        except UNAVAILABLE as exc:
            log.warning("live: could not ask a channel again, the client reconnects: %r", exc)
            self.kick(client, CLOSE_TRY_LATER)

    async def _rechecked(self, client: Client) -> None:
        """Wait for the client's channels to be asked again (a replay must not pass them meanwhile)."""
        if client.recheck is not None and not client.recheck.done():
            await asyncio.wait({client.recheck})

    # -- audiences: the projection, and what the stream said before the projection caught up

    def _remember(self, channel: str, audience: list[str], category_id: int | None) -> None:
        self._recent[channel] = (audience, category_id)
        self._recent.move_to_end(channel)
        while len(self._recent) > RECENT_CHANNELS:
            self._recent.popitem(last=False)
        self._audience_cache.pop(channel, None)
        kind, number = ch.parse(channel) or ("", 0)
        self._newest[kind] = max(self._newest.get(kind, 0), number)
        arrived = self._arrived.pop(channel, None)
        if arrived is not None:
            arrived.set()

    def _recent_audience(self, channel: str) -> list[str] | None:
        """A channel's audience as the stream gave it; a topic follows its category, as in the projection."""
        known = self._recent.get(channel)
        if known is None:
            return None
        audience, category_id = known
        category = self._recent.get(ch.category_channel(category_id)) if category_id is not None else None
        return category[0] if category is not None else audience

    async def _audience(self, channel: str) -> list[str] | None:
        """Who may read a topic or category channel; None when notify does not know it."""
        cached = self._audience_cache.get(channel)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        kind, number = ch.parse(channel) or ("", 0)
        async with self.rt.pool.acquire() as conn:
            if kind == "topic":
                audience = await projections.topic_audience(conn, number)
            else:
                audience = await projections.category_audience(conn, number)
        if audience is None:  # not cached: the projection is catching up
            return self._recent_audience(channel)
        if len(self._audience_cache) > 10_000:
            self._audience_cache.clear()
        self._audience_cache[channel] = (now + AUDIENCE_CACHE_S, audience)
        return audience

    async def _may_be_new(self, kind: str, number: int) -> bool:
        """Whether an unknown topic or category id is above every one notify knows (being created)."""
        if number <= self._newest.get(kind, 0):
            return False
        async with self.rt.pool.acquire() as conn:
            newest = await conn.fetchval(NEWEST_SQL[kind])
        return number > (newest or 0)

    # -- subscribing

    async def check_channel(self, client: Client, channel: Any) -> dict[str, Any] | None:
        """An error for a channel the viewer may not follow, `pending` for one notify does not know
        yet, None when they may follow it."""
        if not isinstance(channel, str) or not ch.CHANNEL.fullmatch(channel):
            return error(
                "bad_channel",
                'Channels look like "topic:42", "category:3", "user:7" or "latest".',
                channel if isinstance(channel, str) else None,
            )
        parsed = ch.parse(channel)
        if parsed is None:  # latest: lists of every category, each message checked on its own
            return None
        kind, number = parsed
        if kind == "user":
            if client.session is None:
                return error("unauthorized", "Log in to get your notifications.", channel)
            if client.session.user_id != number:
                return error("forbidden", "You can only follow your own notifications.", channel)
            return None
        audience = await self._audience(channel)
        if audience is None and await self._may_be_new(kind, number):
            return {"type": "pending", "channel": channel}
        if audience is None or not client.sees(audience):
            return forbidden(channel)
        return None

    async def subscribe(self, client: Client, message: dict[str, Any]) -> None:
        """Check each channel, replay what the client missed, then stream new events."""
        channels, last = message.get("channels"), message.get("last_event_id")
        if not isinstance(channels, list) or not channels:
            client.push(dumps(error("bad_message", "subscribe needs a list of channels.")))
            return
        if last is not None and (not isinstance(last, str) or not STREAM_ID.fullmatch(last)):
            client.push(dumps(error("bad_last_event_id", "last_event_id must be a stream id such as 1700000000000-0.")))
            return
        seen: set[str] = set()
        new: list[str] = []
        for channel in channels[: MAX_CHANNELS + 1]:
            if isinstance(channel, str):
                if channel in seen or channel in client.channels or channel in client.waiting:
                    continue
                seen.add(channel)
            problem = await self.check_channel(client, channel)
            following = len(client.channels) + len(client.waiting) + len(new)
            if (problem is None or problem["type"] == "pending") and following >= MAX_CHANNELS:
                problem = error(
                    "too_many_channels", f"A connection can follow at most {MAX_CHANNELS} channels.", channel
                )
            if problem is None:
                new.append(channel)
                continue
            client.push(dumps(problem))
            if problem["type"] == "pending":
                client.waiting.add(channel)
                client.spawn(self._await_channel(client, channel, last or self.last_event_id))
        if client.closing is not None or not new:
            return
        await self._start(client, new, last)

    async def _await_channel(self, client: Client, channel: str, since: str) -> None:
        """Subscribe to a channel notify did not know when asked, once its audience arrives
        (replaying from when it was asked), or refuse it at the deadline."""
        deadline = time.monotonic() + self.pending_s
        try:
            audience = None
            while (audience := await self._audience(channel)) is None and time.monotonic() < deadline:
                arrived = self._arrived.setdefault(channel, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), min(1.0, max(0.0, deadline - time.monotonic())))
            if channel not in client.waiting:
                return  # unsubscribed meanwhile
            if audience is None or not client.sees(audience):
                # Not earlier than an unknown channel is refused: the timing tells an outsider nothing.
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                if channel in client.waiting:
                    client.push(dumps(forbidden(channel)))
                return
            client.waiting.discard(channel)
            await self._start(client, [channel], since)
        except UNAVAILABLE as exc:
            log.warning("live: could not subscribe a pending channel, the client reconnects: %r", exc)
            self.kick(client, CLOSE_TRY_LATER)
        finally:
            client.waiting.discard(channel)
            if not any(channel in other.waiting for other in self.clients):
                self._arrived.pop(channel, None)

    async def _start(self, client: Client, new: list[str], last: str | None) -> None:
        for channel in new:
            client.pending[channel] = []
        self._join(client, new)
        try:
            streamed = [c for c in new if not ch.is_user_channel(c)]
            if last is not None and streamed:
                await self.replay(client, streamed, last)
            for channel in new:
                if ch.is_user_channel(channel):
                    await self._send_count(client, channel)
            await self._flush(client, new)
        finally:
            for channel in new:
                client.pending.pop(channel, None)
        client.push(dumps({"type": "subscribed", "channels": new}))

    async def _flush(self, client: Client, channels: list[str]) -> None:
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

    async def _send_count(self, client: Client, channel: str) -> None:
        _, user_id = ch.parse(channel) or ("user", 0)
        async with self.rt.pool.acquire() as conn:
            counts = await notifications.unread_counts(conn, [user_id])
        client.push(count_message("0-0", channel, counts[user_id]))

    async def trimmed_since(self, last: str) -> bool:
        """Whether events after `last` may be gone from the stream (trimmed), so a replay is not whole."""
        try:
            info = await self.rt.redis.xinfo_stream(self.events_stream)
        except ResponseError:
            return True  # the stream is gone: the id belongs to one that no longer exists
        key = stream_key(last)
        if key > stream_key(_str(info["last-generated-id"])):
            return True  # an id from the future: another stream's
        added, length = info.get("entries-added"), info.get("length")
        if added is not None and added == length:
            return False  # nothing was ever trimmed (Redis 7 tells)
        first = info.get("first-entry")
        return first is not None and key < stream_key(_str(first[0]))

    async def replay(self, client: Client, channels: list[str], last: str) -> None:
        """Send the client what it missed on these channels since `last` (exclusive), at its pace,
        or `reset` at once when that is more than REPLAY_LIMIT entries or no longer all kept."""
        wanted = set(channels)
        entries = await self.rt.redis.xrange(self.events_stream, min="(" + last, max="+", count=REPLAY_LIMIT + 1)
        # Checked after reading: trimming only takes the oldest, so if nothing after `last` is gone
        # now, nothing was gone when XRANGE read.
        if len(entries) > REPLAY_LIMIT or await self.trimmed_since(last):
            end = await self._stream_end(self.events_stream)
            for channel in channels:
                client.push(dumps({"type": "reset", "channel": channel, "id": end}))
                client.replayed_upto[channel] = stream_key(end)
            return
        # Set before sending: live messages up to here are the replay's to send, not the queue's.
        upto = stream_key(_str(entries[-1][0])) if entries else stream_key(last)
        for channel in channels:
            client.replayed_upto[channel] = upto
        for entry_id, fields in entries:
            entry = _str(entry_id)
            read = read_entry(entry, fields)
            if read is None:
                continue
            envelope, messages = read
            for channel, data, audience in messages:
                if channel not in wanted:
                    continue
                if channel in client.held:
                    await self._rechecked(client)
                if channel in client.channels and client.sees(audience):
                    await client.put(event_message(entry, channel, envelope.type, data))

    def unsubscribe(self, client: Client, message: dict[str, Any]) -> None:
        channels = message.get("channels")
        if not isinstance(channels, list):
            client.push(dumps(error("bad_message", "unsubscribe needs a list of channels.")))
            return
        names = {c for c in channels if isinstance(c, str)}
        client.waiting.difference_update(names)
        self._leave(client, names & client.channels)

    # -- one connection

    async def read_loop(self, client: Client) -> None:
        """Handle what the client sends until it goes away; a failure closes with a code, never drops."""
        websocket = client.websocket
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                await self.handle(client, message.get("text"), message.get("bytes"))
            except UNAVAILABLE as exc:
                log.warning("live: a service is unavailable, the client reconnects: %r", exc)
                self.kick(client, CLOSE_TRY_LATER)
                return
            except Exception:
                log.exception("live: could not handle a client's message")
                self.kick(client, CLOSE_INTERNAL)
                return

    async def handle(self, client: Client, text: str | None, data: bytes | None = None) -> None:
        message, problem = parse_message(text, data)
        if message is None:
            client.push(dumps(problem or error("bad_message", "Messages are JSON objects with a type.")))
            return
        kind = message.get("type")
        if kind == "subscribe":
            await self.subscribe(client, message)
        elif kind == "unsubscribe":
            self.unsubscribe(client, message)
        elif kind == "ping":
            client.push(dumps({"type": "pong"}))
        else:
            client.push(dumps(error("bad_message", "The type must be subscribe, unsubscribe or ping.")))


def parse_message(text: str | None, data: bytes | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A client's message as a JSON object, or None and the error to answer: too large, not UTF-8,
    not JSON, nested too deep (json raises RecursionError), not an object."""
    if text is None:
        if len(data or b"") > MAX_MESSAGE_BYTES:
            return None, error("too_large", f"Messages are at most {MAX_MESSAGE_BYTES} bytes.")
        try:
            text = (data or b"").decode("utf-8")
        except UnicodeDecodeError:
            return None, error("bad_message", "Messages are JSON text in UTF-8.")
    elif len(text) > MAX_MESSAGE_BYTES or len(text.encode()) > MAX_MESSAGE_BYTES:
        return None, error("too_large", f"Messages are at most {MAX_MESSAGE_BYTES} bytes.")
    try:
        message = json.loads(text)
    except RecursionError:
        return None, error("bad_message", "The message is nested too deeply.")
    except ValueError:
        message = None
    if not isinstance(message, dict):
        return None, error("bad_message", "Messages are JSON objects with a type.")
    return message, None


# --- the endpoint ----------------------------------------------------------------------------------


def origin_allowed(websocket: WebSocket, public_url: str) -> bool:
    """Browsers send Origin: only this site's pages may open the socket with the member's cookie."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser (scripts, tests): no cookie is at risk of being borrowed
    origin_host = urlsplit(origin).netloc.lower()
    return origin_host in (websocket.headers.get("host", "").lower(), urlsplit(public_url).netloc.lower())


async def refuse_unavailable(websocket: WebSocket) -> None:
    """The session store is down: 503 with Retry-After where the server can answer the upgrade so
    (uvicorn can), else accept and close with 1013; the page's script waits and tries again."""
    message = "Live updates are unavailable for a moment. Try again shortly."
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        await websocket.send_denial_response(error_response(503, "unavailable", message, headers=headers))
        return
    await websocket.accept()
    await websocket.close(code=CLOSE_TRY_LATER, reason=CLOSE_REASONS[CLOSE_TRY_LATER])


async def live_endpoint(websocket: WebSocket) -> None:
    """`GET /live`: the websocket of live updates (see the module docstring and API.md)."""
    rt: Runtime = websocket.app.state.runtime
    hub: Hub = rt.extras["hub"]
    if not origin_allowed(websocket, rt.settings.public_url):
        await websocket.close(code=CLOSE_BAD_ORIGIN)
        return
    try:
        session = await rt.sessions.get(websocket.cookies.get(SESSION_COOKIE))
    except (RedisError, OSError) as exc:
        log.warning("live: the session store is unavailable, refusing the socket: %r", exc)
        await refuse_unavailable(websocket)
        return
    await websocket.accept()
    client = Client(hub, websocket, session, hub.queue_size)
    hub.attach(client)
    reader = asyncio.create_task(hub.read_loop(client))
    client.sender = asyncio.create_task(client.send_loop())
    try:
        await asyncio.wait({reader, client.sender}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.detach(client)
        for task in (reader, client.sender):
            task.cancel()
        await asyncio.gather(reader, client.sender, return_exceptions=True)
    if client.closing is not None:
        # A stuck client's buffer may never drain: the socket is dropped if the close cannot go out.
        with contextlib.suppress(Exception):
            reason = CLOSE_REASONS.get(client.closing, "")
            await asyncio.wait_for(websocket.close(code=client.closing, reason=reason), timeout=2)


async def start_hub(rt: Runtime) -> None:
    """Startup hook: the process's hub (its fan-out runs as a background task)."""
    rt.extras["hub"] = Hub(rt)


async def live_fanout(rt: Runtime, stop: asyncio.Event) -> None:
    """Background task: read the streams and fan out to this process's clients."""
    await rt.extras["hub"].run(stop)


async def hub_detail(rt: Runtime) -> dict[str, Any]:
    hub: Hub | None = rt.extras.get("hub")
    if hub is None:
        return {}
    return {
        "live": {
            "connected": hub.stats.connected,
            "channels": len(hub.channels),
            "fanout_running": hub.running,
            "kicked_slow": hub.stats.kicked_slow,
        }
    }


routes = [WebSocketRoute("/live", live_endpoint)]
