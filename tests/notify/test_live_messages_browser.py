"""live.js in Chromium for private messages and the staff review count, against a stand-in /live
that sends the events: a new message is fetched from /messages/<id>/after/<last id> and added at the
end (announced politely, nothing reloaded), and the header's review count is refreshed from
/api/review/counts. The real forum pages and their axe checks are the messages package's own tests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from notify_helpers import serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from shared.pages import static_routes

CHROMIUM = os.environ.get("TICA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"no Chromium at {CHROMIUM}")


@dataclass
class StandIn:
    """A /live that forwards what the test queues, and what the page asked the forum for."""

    outgoing: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    asked: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"waiting": 2, "safeguarding": 0})

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        message = json.loads(await websocket.receive_text())
        await websocket.send_text(json.dumps({"type": "subscribed", "channels": message["channels"]}))
        self.subscribed.set()
        closed = asyncio.ensure_future(websocket.receive())  # the page went away
        while True:
            queued = asyncio.ensure_future(self.outgoing.get())
            await asyncio.wait({closed, queued}, return_when=asyncio.FIRST_COMPLETED)
            if closed.done():
                queued.cancel()
                return
            await websocket.send_text(json.dumps(queued.result()))

    async def after(self, request: Request) -> HTMLResponse:
        self.asked.append(request.url.path)
        last = int(request.path_params["last"])
        items = "".join(
            f'<li id="message-{n}"><p>Message {n}</p></li>' for n in range(last + 1, 4) if n > 1
        )  # messages 2 and 3 are new
        return HTMLResponse(items)

    async def review_counts(self, request: Request) -> JSONResponse:
        self.asked.append(request.url.path)
        return JSONResponse(self.counts)


async def conversation_page(request: Request) -> HTMLResponse:
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><title>A quiet word</title>'
        '<script src="/static/tica/js/live.js" defer></script></head><body>'
        '<a href="/review">Review <span id="tica-review-count" data-live-channel="review" class="nhsuk-tag '
        'nhsuk-tag--blue"><span aria-hidden="true" data-review-count>2</span><span class="nhsuk-u-visually-hidden"'
        " data-review-label>: 2 waiting</span></span></a>"
        '<main id="maincontent"><h1>A quiet word</h1>'
        '<ol id="messages" data-live-channel="conversation:5" data-live-since="1700000000000-0">'
        '<li id="message-1"><p>Message 1</p></li></ol></main></body></html>'
    )


@pytest_asyncio.fixture(loop_scope="session")
async def stand_in() -> AsyncIterator[tuple[str, StandIn]]:
    live = StandIn()
    app = Starlette(
        routes=[
            Route("/messages/5", conversation_page),
            Route("/messages/5/after/{last:int}", live.after),
            Route("/api/review/counts", live.review_counts),
            WebSocketRoute("/live", live.endpoint),
            *static_routes(),
        ]
    )
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}", live


@pytest_asyncio.fixture(loop_scope="session")
async def browser_page() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await chromium.new_context()
        page = await context.new_page()
        try:
            yield page
        finally:
            await context.close()
            await chromium.close()


def _event(n: int, channel: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event", "id": f"1700000000{n:03d}-0", "channel": channel, "event": event, "data": data}


async def test_new_messages_are_added_at_the_end_and_the_review_count_follows(stand_in, browser_page):
    base, live = stand_in
    await browser_page.goto(base + "/messages/5")
    await asyncio.wait_for(live.subscribed.wait(), 10)
    typed = browser_page.locator("#messages")
    await typed.evaluate("list => list.setAttribute('data-marker', 'not reloaded')")

    await live.outgoing.put(
        _event(1, "conversation:5", "message.created", {"message_id": 2, "conversation_id": 5, "author_username": "b"})
    )
    await browser_page.locator("#message-3").wait_for(timeout=5000)
    ids = await browser_page.locator("#messages > li").evaluate_all("items => items.map(i => i.id)")
    assert ids == ["message-1", "message-2", "message-3"]
    assert live.asked[0] == "/messages/5/after/1"
    assert await typed.get_attribute("data-marker") == "not reloaded"
    status = browser_page.locator('[role="status"][aria-live="polite"]')
    await status.get_by_text("2 new messages were added at the end.").wait_for(timeout=5000)

    live.counts = {"waiting": 3, "safeguarding": 1}
    await live.outgoing.put(_event(2, "review", "safeguarding.alerted", {"review_id": 41}))
    number = browser_page.locator("#tica-review-count [data-review-count]")
    await browser_page.wait_for_function(
        "document.querySelector('#tica-review-count [data-review-count]').textContent === '3'", timeout=5000
    )
    assert await number.text_content() == "3"
    label = await browser_page.locator("#tica-review-count [data-review-label]").text_content()
    assert label == ": 3 waiting, 1 about safeguarding"
    assert "nhsuk-tag--red" in (await browser_page.locator("#tica-review-count").get_attribute("class") or "")

    live.counts = {"waiting": 0, "safeguarding": 0}
    await live.outgoing.put(_event(3, "review", "review.resolved", {"review_id": 41}))
    await browser_page.wait_for_function("document.getElementById('tica-review-count').hidden", timeout=5000)
