"""The fault run's clients: a writer replying steadily through the JSON API, and live clients on
notify's `/live` that behave as the page's script (shared/static/js/live.js) does.

Both write down everything they saw, with the time, so a failed check can say what was lost or
doubled, when, and what the client was answered at the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

# --- the writer ------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One reply sent: its answer (status None: no answer at all) and, when accepted, the post's id."""

    number: int
    sent_at: float
    answered_at: float = 0.0
    status: int | None = None
    post_id: int | None = None
    error: str | None = None


def reply_word(run: str, number: int) -> str:
    """The word only reply `number` of this run contains (letters and digits: indexed as it is)."""
    return f"fw{run}n{number}"


def reply_words(run: str) -> re.Pattern[str]:
    """Any reply's word, to find it again in a post's text."""
    return re.compile(rf"fw{run}n\d+")


@dataclass
class Writer:
    """Replies to one topic at a steady rate through the JSON API with an API token, a few at a time."""

    forum_url: str
    token: str
    topic_id: int
    run: str
    rate_per_s: float = 20.0
    in_flight: int = 8
    attempts: list[Attempt] = field(default_factory=list)

    def accepted(self) -> dict[int, Attempt]:
        """The replies the forum answered 201, by post id."""
        return {a.post_id: a for a in self.attempts if a.status == 201 and a.post_id is not None}

    async def run_until(self, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        running: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=self.forum_url, headers=headers, timeout=10) as http:
            next_at = time.monotonic()
            while not stop.is_set():
                if len(running) < self.in_flight:
                    attempt = Attempt(len(self.attempts) + 1, time.time())
                    self.attempts.append(attempt)
                    task = asyncio.create_task(self._send(http, attempt))
                    running.add(task)
                    task.add_done_callback(running.discard)
                next_at = max(next_at + 1 / self.rate_per_s, time.monotonic() - 1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
            if running:
                await asyncio.wait(running)

    async def _send(self, http: httpx.AsyncClient, attempt: Attempt) -> None:
        word = reply_word(self.run, attempt.number)
        body = {"body": f"Reply {attempt.number} of the fault run ({word}): steady posting while services fail."}
        try:
            response = await http.post(f"/api/topics/{self.topic_id}/posts", json=body)
        except httpx.HTTPError as exc:
            attempt.error = f"{exc.__class__.__name__}: {exc}"
        else:
            attempt.status = response.status_code
            if response.status_code == 201:
                attempt.post_id = int(response.json()["id"])
            elif response.status_code >= 400:
                attempt.error = response.text[:200]
        attempt.answered_at = time.time()


# --- live clients -----------------------------------------------------------------------------------------

# As shared/static/js/live.js: reconnect after 1 s, doubling to 30 s (back to 1 s once a subscription is
# answered), at least 5 s after 1013 ("try later"), plus up to 0.5 s; a resume from one id that ends
# before any answer twice (or once with 4008) goes on from now, with a reload.
RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0
RETRY_UNAVAILABLE_S = 5.0
FAILED_RESUMES_MAX = 2
CLOSE_TOO_SLOW = 4008
CLOSE_TRY_LATER = 1013
CLOSE_FINAL = (4001, 4003)  # logged out, not allowed: live.js gives up
STREAM_ID = re.compile(r"\d+-\d+")


@dataclass
class Connection:
    """One socket a live client opened: where it resumed from, what it got, how it ended."""

    opened_at: float
    resumed_from: str | None = None  # the id sent once the socket opened (live.js's resumedFrom)
    answered: bool = False  # subscribed, pending, reset or refused: the server said something about it
    events: int = 0
    resets: int = 0
    refused_status: int | None = None  # the HTTP status of a refused upgrade
    failed: str | None = None  # could not connect at all
    close_code: int | None = None


@dataclass
class LiveClient:
    """A reader's page following one topic live, as live.js does.

    It subscribes with the last event id it saw, reconnects with live.js's back-off and resumes;
    on `reset` it goes on from the id the server gives and the reader reloads the topic (here: every
    post of it read through the JSON API); when live.js gives a resume up, the reader reloads once
    the socket is back. `leave()` drops the socket as a phone in a tunnel does; `come_back()` resumes.
    """

    name: str
    live_url: str
    forum_url: str
    topic_id: int
    delivered: Counter[int] = field(default_factory=Counter)  # post.created events, by post id
    reloaded: set[int] = field(default_factory=set)  # posts read by a reload after `reset`
    last_id: str | None = None
    connections: list[Connection] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    present: asyncio.Event = field(default_factory=asyncio.Event)
    reloads: set[asyncio.Task[None]] = field(default_factory=set)
    retry_s: float = RETRY_MIN_S
    failed_resumes: int = 0
    reload_wanted: bool = False  # the reader was told to reload: done once the socket is back

    @property
    def channel(self) -> str:
        return f"topic:{self.topic_id}"

    def seen(self) -> set[int]:
        return set(self.delivered) | self.reloaded

    def leave(self) -> None:
        self.present.clear()

    def come_back(self) -> None:
        self.present.set()

    async def run_until(self, stop: asyncio.Event) -> None:
        self.present.set()
        while not stop.is_set():
            if not self.present.is_set():
                await _first(stop.wait(), self.present.wait())
                continue
            connection = Connection(time.time())
            self.connections.append(connection)
            try:
                async with connect(self.live_url, open_timeout=5, ping_interval=None, max_queue=None) as ws:
                    await self._follow(ws, connection, stop)
            except InvalidStatus as exc:
                connection.refused_status = exc.response.status_code
            except (OSError, TimeoutError, WebSocketException) as exc:
                connection.failed = exc.__class__.__name__
            if connection.close_code in CLOSE_FINAL:
                return
            if not self.present.is_set():
                continue
            self._resume_failed(connection)
            wait_s = self.retry_s
            if connection.close_code == CLOSE_TRY_LATER:
                wait_s = max(wait_s, RETRY_UNAVAILABLE_S)
            self.retry_s = min(self.retry_s * 2, RETRY_MAX_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s + random.uniform(0, 0.5))

    def _resume_failed(self, connection: Connection) -> None:
        """live.js's resumeFailed: a resume that keeps ending unanswered goes on from now, with a reload."""
        if connection.answered or connection.resumed_from is None or self.last_id != connection.resumed_from:
            return
        self.failed_resumes += 1
        if connection.close_code == CLOSE_TOO_SLOW or self.failed_resumes >= FAILED_RESUMES_MAX:
            self.failed_resumes = 0
            self.last_id = None
            self.reload_wanted = True

    async def _follow(self, ws: ClientConnection, connection: Connection, stop: asyncio.Event) -> None:
        """Subscribe and read until the socket closes, the run stops, or the reader leaves."""
        connection.resumed_from = self.last_id
        await ws.send(json.dumps({"type": "subscribe", "channels": [self.channel], "last_event_id": self.last_id}))
        reading = asyncio.create_task(self._read(ws, connection))
        await _first(reading, stop.wait(), self._absent())
        if not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketException):
                await reading
            await ws.close()
        connection.close_code = ws.close_code

    async def _absent(self) -> None:
        while self.present.is_set():
            await asyncio.sleep(0.05)

    async def _read(self, ws: ClientConnection, connection: Connection) -> None:
        with contextlib.suppress(WebSocketException):
            async for raw in ws:
                self._handle(json.loads(raw), connection)

    def _handle(self, message: dict[str, Any], connection: Connection) -> None:
        kind = message.get("type")
        if kind == "event" and message.get("channel") == self.channel:
            self.last_id = message["id"]
            connection.events += 1
            if message.get("event") == "post.created":
                self.delivered[int(message["data"]["post_id"])] += 1
        elif kind == "subscribed":
            connection.answered = True
            self.failed_resumes, self.retry_s = 0, RETRY_MIN_S
            self.subscribed.set()
            if self.reload_wanted:  # the page reloaded now shows all before; the socket brings all after
                self.reload_wanted = False
                self._start_reload()
        elif kind == "reset":
            connection.answered = True
            connection.resets += 1
            if STREAM_ID.fullmatch(str(message.get("id") or "")):
                self.last_id = message["id"]  # go on from now: the old id would only reset again
            self._start_reload()
        elif kind in ("pending", "error"):
            connection.answered = True
            self.errors.append({**message, "at": time.time()})

    def _start_reload(self) -> None:
        self.reloads.add(asyncio.create_task(self._reload()))

    async def _reload(self) -> None:
        """What a reload of the topic's pages shows: every post in it now."""
        async with httpx.AsyncClient(base_url=self.forum_url, timeout=10) as http:
            page: int | None = 1
            while page is not None:
                body = (await http.get(f"/api/topics/{self.topic_id}", params={"page": page})).raise_for_status().json()
                self.reloaded.update(int(p["id"]) for p in body["posts"])
                page = body["next"]

    def unanswered_resumes(self) -> list[Connection]:
        """Resumes the server closed (4008, too slow) before saying anything: live resume failing
        (issue 12, defect 3: the replay overfilled the client's queue, every time)."""
        return [
            c
            for c in self.connections
            if c.resumed_from is not None and c.close_code == CLOSE_TOO_SLOW and not c.answered
        ]


async def _first(*waits: Any) -> None:
    """Until the first of these finishes; the others are cancelled (a task passed in is left running)."""
    tasks = [w if isinstance(w, asyncio.Task) else asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task, wait in zip(tasks, waits, strict=True):
            if task is not wait and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
