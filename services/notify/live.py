"""Live updates: the `/live` websocket and the fan-out that feeds it.

Every notify replica reads the event stream (and notify's own stream of unread
counts) with plain XREAD, no group, so each sees every event and pushes it to its
own websocket clients. A client subscribes to channels (`topic:N`, `category:N`,
`user:N`, and `latest` for lists of every category), each checked against what the
viewer may see; it sends the last event id it saw and gets what it missed (XRANGE,
exclusive), or `reset` when that id is older than the stream keeps. channels.py names
the channels and says what each event type shows on them: user.* events never reach
topic or category channels (they carry private addresses), channels get only what a
page needs (ids, post number, author username, event type), and `user:N` gets only
unread counts. An entry that is not a valid event is logged with its id and type.

Each client has a bounded queue; the fan-out never waits for a client. A client
whose queue is full is disconnected (close code 4008: reconnect and resume), so a
slow reader never slows anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError, ResponseError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from services.notify import channels as ch
from services.notify import notifications, projections
from services.notify.channels import Message, live_messages
from shared import audience as aud
from shared import events as ev
from shared.sessions import SESSION_COOKIE, Session
from shared.web import Runtime

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
CLOSE_SESSION_ENDED = 4001
CLOSE_BAD_ORIGIN = 4003
CLOSE_TOO_SLOW = 4008

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


def read_entry(entry_id: str, fields: dict[Any, Any]) -> tuple[str, list[Message]] | None:
    """An event entry's type and channel messages; None, logged with the entry id and event type,
    when it is not a valid event. The durable consumers dead-letter such an entry; live serves
    the others and says which one it could not read, so a renamed field is seen, not silent."""
    raw = fields.get(ev.STREAM_FIELD.encode()) or fields.get(ev.STREAM_FIELD)
    try:
        envelope = ev.Envelope.from_json(raw or b"")
    except ev.EventError as exc:
        log.warning(
            "live: stream entry %s (type %s) is not an event, not forwarded: %s", entry_id, _claimed_type(raw), exc
        )
        return None
    try:
        return envelope.type, live_messages(envelope)
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
    except (TypeError, ValueError):
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


# --- clients -------------------------------------------------------------------------------------


class Client:
    """One websocket connection: its viewer, channels and bounded outgoing queue."""

    __slots__ = (
        "audiences",
        "channels",
        "closing",
        "hub",
        "may_read",
        "pending",
        "queue",
        "replayed_upto",
        "sender",
        "session",
        "websocket",
    )

    def __init__(self, hub: Hub, websocket: WebSocket, session: Session | None, queue_size: int) -> None:
        self.hub = hub
        self.websocket = websocket
        self.session = session
        self.set_audiences(aud.for_viewer(session))
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.channels: set[str] = set()
        # Channels being replayed: live messages wait here so none is lost or sent twice.
        self.pending: dict[str, list[tuple[StreamKey, str]]] = {}
        self.replayed_upto: dict[str, StreamKey] = {}
        self.closing: int | None = None
        self.sender: asyncio.Task[None] | None = None

    def set_audiences(self, audiences: list[str]) -> None:
        self.audiences = frozenset(audiences)
        self.may_read = aud.reader(self.audiences)

    def sees(self, audience: Iterable[str] | None) -> bool:
        """Whether the viewer may see a message (None: the channel's check at subscribe decided)."""
        return audience is None or self.may_read(audience)

    def push(self, text: str) -> None:
        """Queue a message; a full queue disconnects the client rather than wait for it."""
        if self.closing is not None:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.hub.kick(self, CLOSE_TOO_SLOW)

    def deliver(self, channel: str, key: StreamKey, text: str, audience: list[str] | None) -> None:
        """A live stream message for one of the client's channels."""
        if not self.sees(audience):
            return
        waiting = self.pending.get(channel)
        if waiting is not None:
            waiting.append((key, text))
            if len(waiting) > self.queue.maxsize:
                self.hub.kick(self, CLOSE_TOO_SLOW)
            return
        upto = self.replayed_upto.get(channel)
        if upto is not None and key <= upto:
            return  # already sent by the replay
        self.push(text)

    async def send_loop(self) -> None:
        while True:
            text = await self.queue.get()
            await self.websocket.send_text(text)


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
    channels: dict[str, set[Client]] = field(default_factory=dict)
    clients: set[Client] = field(default_factory=set)
    stats: HubStats = field(default_factory=HubStats)
    running: bool = False
    _audience_cache: dict[str, tuple[float, list[str] | None]] = field(default_factory=dict)

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
        self.stats.connected = len(self.clients)

    def _join(self, client: Client, channels: Iterable[str]) -> None:
        for channel in channels:
            self.channels.setdefault(channel, set()).add(client)
            client.channels.add(channel)

    def _leave(self, client: Client, channels: Iterable[str]) -> None:
        for channel in channels:
            client.channels.discard(channel)
            client.replayed_upto.pop(channel, None)
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
        read = read_entry(entry_id, fields)
        if read is None:
            return
        event_type, messages = read
        key = stream_key(entry_id)
        for channel, data, audience in messages:
            subscribers = self.channels.get(channel)
            if not subscribers:
                continue
            text = event_message(entry_id, channel, event_type, data)
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
                client.session = session
                client.set_audiences(aud.for_viewer(session))
                present.add(session.user_id)
        if present:
            async with self.rt.pool.acquire() as conn:
                await projections.mark_seen(conn, sorted(present))

    # -- subscribing

    async def _audience(self, channel: str) -> list[str] | None:
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
        if len(self._audience_cache) > 10_000:
            self._audience_cache.clear()
        self._audience_cache[channel] = (now + AUDIENCE_CACHE_S, audience)
        return audience

    async def check_channel(self, client: Client, channel: Any) -> dict[str, Any] | None:
        """An error for a channel the viewer may not follow, None when they may."""
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
        if audience is None or not client.sees(audience):
            # The same answer for what does not exist and what is private: outsiders learn nothing.
            return error("forbidden", f"You cannot follow that {kind}.", channel)
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
        current = client.channels
        new: list[str] = []
        for channel in dict.fromkeys(channels if len(channels) <= MAX_CHANNELS else channels[: MAX_CHANNELS + 1]):
            if isinstance(channel, str) and channel in current:
                continue
            problem = await self.check_channel(client, channel)
            if problem is None and len(current) + len(new) >= MAX_CHANNELS:
                problem = error(
                    "too_many_channels", f"A connection can follow at most {MAX_CHANNELS} channels.", channel
                )
            if problem is not None:
                client.push(dumps(problem))
            else:
                new.append(channel)
        if client.closing is not None or not new:
            return
        await self._start(client, new, last)

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
        finally:
            for channel in new:
                waiting = client.pending.pop(channel, [])
                upto = client.replayed_upto.get(channel)
                for key, text in waiting:
                    if upto is None or key > upto:
                        client.push(text)
        client.push(dumps({"type": "subscribed", "channels": new}))

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
        """Send the client what it missed on these channels since `last` (exclusive), or `reset`."""
        wanted = set(channels)
        entries = await self.rt.redis.xrange(self.events_stream, min="(" + last, max="+", count=REPLAY_LIMIT + 1)
        # Checked after reading: trimming only takes the oldest, so if nothing after `last` is gone
        # now, nothing was gone when XRANGE read.
        if len(entries) > REPLAY_LIMIT or await self.trimmed_since(last):
            for channel in channels:
                client.push(dumps({"type": "reset", "channel": channel}))
                client.replayed_upto[channel] = stream_key(await self._stream_end(self.events_stream))
            return
        upto = stream_key(last)
        for entry_id, fields in entries:
            entry = _str(entry_id)
            upto = stream_key(entry)
            read = read_entry(entry, fields)
            if read is None:
                continue
            event_type, messages = read
            for channel, data, audience in messages:
                if channel in wanted and client.sees(audience):
                    client.push(event_message(entry, channel, event_type, data))
        for channel in channels:
            client.replayed_upto[channel] = upto

    def unsubscribe(self, client: Client, message: dict[str, Any]) -> None:
        channels = message.get("channels")
        if not isinstance(channels, list):
            client.push(dumps(error("bad_message", "unsubscribe needs a list of channels.")))
            return
        self._leave(client, [c for c in channels if isinstance(c, str) and c in client.channels])

    # -- one connection

    async def read_loop(self, client: Client) -> None:
        """Handle what the client sends until it goes away."""
        websocket = client.websocket
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            await self.handle(client, text or "")

    async def handle(self, client: Client, text: str) -> None:
        if len(text) > MAX_MESSAGE_BYTES:
            client.push(dumps(error("too_large", f"Messages are at most {MAX_MESSAGE_BYTES} bytes.")))
            return
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            client.push(dumps(error("bad_message", "Messages are JSON objects with a type.")))
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


# --- the endpoint ----------------------------------------------------------------------------------


def origin_allowed(websocket: WebSocket, public_url: str) -> bool:
    """Browsers send Origin: only this site's pages may open the socket with the member's cookie."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser (scripts, tests): no cookie is at risk of being borrowed
    origin_host = urlsplit(origin).netloc.lower()
    return origin_host in (websocket.headers.get("host", "").lower(), urlsplit(public_url).netloc.lower())


async def live_endpoint(websocket: WebSocket) -> None:
    """`GET /live`: the websocket of live updates (see the module docstring and API.md)."""
    rt: Runtime = websocket.app.state.runtime
    hub: Hub = rt.extras["hub"]
    if not origin_allowed(websocket, rt.settings.public_url):
        await websocket.close(code=CLOSE_BAD_ORIGIN)
        return
    session = await rt.sessions.get(websocket.cookies.get(SESSION_COOKIE))
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
            await asyncio.wait_for(websocket.close(code=client.closing), timeout=2)


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
