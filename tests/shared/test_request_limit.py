"""RequestLimit: at most N HTTP requests in progress, the rest served in order of arrival; a slot is
given back when the response starts; websockets and exempt paths are never held back."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive, Scope, Send

from shared.web import RequestLimit


class SlowApp:
    """An ASGI app whose requests each wait for a release, recording how many are in progress."""

    def __init__(self) -> None:
        self.in_progress = 0
        self.most = 0
        self.started: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.in_progress += 1
        self.most = max(self.most, self.in_progress)
        self.started.append(scope["path"])
        try:
            await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.in_progress -= 1


def http(path: str) -> Scope:
    return {"type": "http", "path": path, "method": "GET", "headers": []}


async def receive() -> Message:
    return {"type": "http.disconnect"}


async def send(message: Message) -> None:
    pass


async def test_no_more_than_the_limit_in_progress_and_the_rest_in_order_of_arrival():
    app = SlowApp()
    limited = RequestLimit(app, limit=3)
    calls = []
    for n in range(8):
        calls.append(asyncio.create_task(limited(http(f"/r{n}"), receive, send)))
        await asyncio.sleep(0)  # arrive one after another
    await asyncio.sleep(0.01)
    assert app.in_progress == 3 and app.started == ["/r0", "/r1", "/r2"]
    app.release.set()
    await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert app.most == 3
    assert app.started == [f"/r{n}" for n in range(8)]


async def test_a_slot_is_given_back_when_the_response_starts():
    """A long body (a download) goes on without holding a slot."""
    body_may_end = asyncio.Event()

    async def download(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await body_may_end.wait()
        await send({"type": "http.response.body", "body": b"the end"})

    limited = RequestLimit(download, limit=1)
    first = asyncio.create_task(limited(http("/file/1"), receive, send))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(limited(http("/file/2"), receive, send))
    await asyncio.sleep(0.01)
    assert not limited.slots.locked()  # both are sending bodies; neither holds the slot
    body_may_end.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)


async def test_a_failing_request_gives_its_slot_back():
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    limited = RequestLimit(broken, limit=1)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(limited(http("/"), receive, send), 5)
    assert not limited.slots.locked()


async def test_websockets_and_exempt_paths_are_never_held_back():
    app = SlowApp()
    limited = RequestLimit(app, limit=1, exempt=("/healthz",))
    busy = asyncio.create_task(limited(http("/page"), receive, send))
    waiting = [
        asyncio.create_task(limited({"type": "websocket", "path": "/live", "headers": []}, receive, send)),
        asyncio.create_task(limited(http("/healthz"), receive, send)),
    ]
    await asyncio.sleep(0.01)
    assert app.in_progress == 3  # the page holds the only slot; the others went straight in
    app.release.set()
    await asyncio.wait_for(asyncio.gather(busy, *waiting), 5)
