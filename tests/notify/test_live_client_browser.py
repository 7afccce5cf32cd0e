"""live.js in Chromium against a stand-in /live that misbehaves: the script backs off and never
loops on an id it cannot resume from (issue 12, defect 3).

The stand-in closes every socket with 4008 before answering the subscription, as notify did when
a replay overfilled a client's queue: the script used to reconnect every second with the same
last id, for ever.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from notify_helpers import serving, wait_for
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from shared.pages import static_routes

CHROMIUM = os.environ.get("TICA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"no Chromium at {CHROMIUM}")

STALE_ID = "1700000000000-0"


@dataclass
class StandInLive:
    """Every subscription the page's script sent, with when it came."""

    subscriptions: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        message = json.loads(await websocket.receive_text())
        self.subscriptions.append((time.monotonic(), message))
        await websocket.close(code=4008)

    async def count(self, at_least: int) -> bool:
        return len(self.subscriptions) >= at_least


async def topic_page(request: Any) -> HTMLResponse:
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><title>Topic</title>'
        '<script src="/static/tica/js/live.js" defer></script></head>'
        f'<body><main id="maincontent" data-live-channel="topic:10" data-live-since="{STALE_ID}">'
        "<h1>Topic</h1><div data-live-posts></div></main></body></html>"
    )


@pytest_asyncio.fixture(loop_scope="session")
async def stand_in() -> AsyncIterator[tuple[str, StandInLive]]:
    live = StandInLive()
    app = Starlette(routes=[Route("/t/10", topic_page), WebSocketRoute("/live", live.endpoint), *static_routes()])
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


async def test_a_resume_that_keeps_failing_resets_and_backs_off(stand_in, browser_page):
    """One resume from the stale id, then on from now with a reload offered; the waits grow."""
    base, live = stand_in
    await browser_page.goto(base + "/t/10")
    await wait_for(lambda: live.count(4), timeout_s=20, what="four connections")
    sent = [message.get("last_event_id") for _, message in live.subscriptions]
    assert sent[0] == STALE_ID
    assert STALE_ID not in sent[1:], "the id it could not resume from is not asked for again"
    banner = browser_page.locator("#tica-live-banner")
    await banner.get_by_text("This page has changed while you were away.").wait_for(timeout=5000)
    times = [at for at, _ in live.subscriptions]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[2] >= 3.5, f"the waits grow (1, 2, 4 s and a little): {gaps}"
