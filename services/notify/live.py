"""Live updates: the `/live` websocket and the fan-out that feeds it.

Every notify replica reads the event stream (and notify's own stream of unread
counts) with plain XREAD, no group, so each sees every event and pushes it to its
own websocket clients. A client subscribes to channels (`topic:N`, `category:N`,
`user:N`, `latest` for lists of every category, `conversation:N` for a private
conversation's members, `review` for staff), each checked against what the viewer
may see; it sends the last event id it saw and gets what it missed first.
channels.py names the channels and says what each event type shows on them: user.*
events never reach topic or category channels (they carry private addresses),
channels get only what a page needs (ids, post number, author username, event type),
and `user:N` gets only unread counts.

Beside this module: live_client.py (one connection and its bounded queue: the fan-out
never waits for a client), live_replay.py (resuming from the last event id, or `reset`),
live_access.py (who a viewer is and who may read a channel, following the stream;
channels answered `pending`) and live_wire.py (stream entries read, messages and close
codes). A channel answered `pending` is subscribed here once its audience arrives, and
refused never earlier than an unknown one would be, so `pending` tells an outsider no
more than the newest id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from services.notify import channels as ch
from services.notify import live_replay, notifications, projections
from services.notify.live_access import UNAVAILABLE, Access
from services.notify.live_client import QUEUE_SIZE, Client
from services.notify.live_wire import (
    CLOSE_BAD_ORIGIN,
    CLOSE_INTERNAL,
    CLOSE_REASONS,
    CLOSE_SESSION_ENDED,
    CLOSE_TOO_SLOW,
    CLOSE_TRY_LATER,
    FIRST_SEEN_BACK,
    STREAM_ID,
    FirstSeen,
    as_str,
    count_message,
    dumps,
    error,
    event_message,
    forbidden,
    parse_message,
    read_entry,
    stream_key,
)
from shared import events as ev
from shared.sessions import SESSION_COOKIE
from shared.web import Runtime, error_response

log = logging.getLogger("tica.live")

XREAD_COUNT = 100  # entries fanned out at once: below QUEUE_SIZE, so a burst alone never overflows
MAX_CHANNELS = 50
PING_INTERVAL_S = 30.0
SESSION_CHECK_INTERVAL_S = 60.0
PENDING_S = 10.0  # how long a subscription to a channel notify does not know yet waits for it
RETRY_AFTER_S = 5


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
    first_seen: FirstSeen = field(default_factory=FirstSeen)  # a relay's repeated entries are not sent again
    access: Access = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.access = Access(self)

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
        if self.first_seen.is_repeat(envelope.id, entry_id):
            return
        self.access.learn(entry_id, envelope)
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
        values = {as_str(k): as_str(v) for k, v in fields.items()}
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

    async def run(self, stop: asyncio.Event) -> None:
        """Read both streams from their current end and fan out, until stop; with pings and session checks.
        While Redis is away it retries with backoff, reported as failing (so /readyz names it)."""
        health = ev.loop_health("live reader")
        redis = self.rt.redis
        cursors = {
            self.events_stream: await live_replay.stream_end(redis, self.events_stream),
            self.live_stream: await live_replay.stream_end(redis, self.live_stream),
        }
        self.last_event_id = cursors[self.events_stream]
        recent = await redis.xrevrange(self.events_stream, count=FIRST_SEEN_BACK)
        self.first_seen.remember(list(reversed(recent)))
        self.running = True
        upkeep = asyncio.create_task(self.upkeep(stop), name="live-upkeep")
        try:
            while not stop.is_set():
                try:
                    reply = await redis.xread(cursors, count=XREAD_COUNT, block=1000)  # type: ignore[arg-type]
                except (RedisError, OSError) as exc:
                    delay_s = health.failed(exc)
                    log.warning("live: reading the stream failed, retrying in %.1f s: %s", delay_s, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay_s)
                    continue
                health.working()
                for stream, entries in reply or []:
                    name = as_str(stream)
                    for entry_id, fields in entries:
                        cursors[name] = as_str(entry_id)
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
                self.access.restate(client, session)
                present.add(session.user_id)
        self.access.forget_expired()
        if present:
            async with self.rt.pool.acquire() as conn:
                await projections.mark_seen(conn, sorted(present))

    # -- subscribing

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
            problem = await self.access.check_channel(client, channel)
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
            audience = await self.access.arrival(channel, deadline)
            if channel not in client.waiting:
                return  # unsubscribed meanwhile
            if audience is None or not client.sees_on(channel, audience):
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
                self.access.forget_arrival(channel)

    async def _start(self, client: Client, new: list[str], last: str | None) -> None:
        for channel in new:
            client.pending[channel] = []
        self._join(client, new)
        try:
            streamed = [c for c in new if not ch.is_user_channel(c)]
            if last is not None and streamed:
                await live_replay.replay(self.rt.redis, self.events_stream, client, streamed, last)
            for channel in new:
                if ch.is_user_channel(channel):
                    await self._send_count(client, channel)
            await live_replay.flush(client, new)
        finally:
            for channel in new:
                client.pending.pop(channel, None)
        client.push(dumps({"type": "subscribed", "channels": new}))

    async def _send_count(self, client: Client, channel: str) -> None:
        _, user_id = ch.parse(channel) or ("user", 0)
        async with self.rt.pool.acquire() as conn:
            counts = await notifications.unread_counts(conn, [user_id])
        client.push(count_message("0-0", channel, counts[user_id]))

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
