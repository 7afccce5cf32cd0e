"""One /live connection: its viewer, its channels and its bounded outgoing queue.

The fan-out never waits for a client: a client whose queue is full is disconnected (close code 4008:
reconnect and resume), so a slow reader never slows anyone else. A replay is the one sender that
waits: it fills at most half the queue and streams at the client's pace, so resuming never overflows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from services.notify import channels as ch
from services.notify.live_wire import CLOSE_TOO_SLOW, StreamKey
from shared import audience as aud
from shared.sessions import Session

if TYPE_CHECKING:
    from services.notify.live import Hub

QUEUE_SIZE = 256  # messages waiting for one client before it is disconnected
REPLAY_LIMIT = 1000  # a client that missed more than this reloads instead (reset)


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

    def sees_on(self, channel: str, audience: Iterable[str] | None) -> bool:
        """`sees`, but on a private conversation's channel strictly: being staff counts only where
        the audience names staff (the moderators' inbox is in it), as everyone else is named."""
        if audience is not None and ch.is_conversation_channel(channel):
            return not self.audiences.isdisjoint(audience)
        return self.sees(audience)

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
        if not self.sees_on(channel, audience):
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

    async def rechecked(self) -> None:
        """Wait for the client's channels to be asked again (a replay must not pass them meanwhile)."""
        if self.recheck is not None and not self.recheck.done():
            await asyncio.wait({self.recheck})

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
