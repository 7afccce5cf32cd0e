"""live.js in Chromium against real uvicorn: the count in the header, posts swapped in, "N new topics".

The pages under test are small stand-ins with the markup live.js reads (the forum's own pages
carry the same attributes); notify and the shared static files are served as in production.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from notify_helpers import category, emit, post, registered, serving, topic, wait_for
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.notify.app import create_app
from shared import events as ev
from shared.pages import static_routes
from shared.sessions import SESSION_COOKIE, SessionStore

CHROMIUM = os.environ.get("TICA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"no Chromium at {CHROMIUM}")


@dataclass
class StandIn:
    """What the stand-in topic page shows: post id -> (number, text)."""

    posts: dict[int, tuple[int, str]] = field(default_factory=dict)

    def topic_page(self) -> str:
        articles = "".join(
            f'<article id="post-{n}" data-live-post="{pid}"><p>{html.escape(text)}</p></article>'
            for pid, (n, text) in sorted(self.posts.items(), key=lambda item: item[1][0])
        )
        return (
            '<!DOCTYPE html><html lang="en"><head><title>Topic</title>'
            '<script src="/static/tica/js/live.js" defer></script></head>'
            '<body><main id="maincontent" data-live-channel="topic:10"><h1>Topic</h1>'
            f'<div data-live-posts data-live-url="/t/topic-10/10">{articles}</div>'
            '<textarea id="reply" aria-label="Reply"></textarea></main></body></html>'
        )


def _pages_app(notify: Starlette, standin: StandIn) -> Any:
    async def topic_page(request: Any) -> HTMLResponse:
        return HTMLResponse(standin.topic_page())

    async def latest_page(request: Any) -> HTMLResponse:
        return HTMLResponse(
            '<!DOCTYPE html><html lang="en"><head><title>Latest</title>'
            '<script src="/static/tica/js/live.js" defer></script></head>'
            '<body><main id="maincontent" data-live-channel="latest"><h1>Latest</h1></main></body></html>'
        )

    pages = Starlette(routes=[Route("/t/topic-10/10", topic_page), Route("/latest", latest_page), *static_routes()])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "lifespan" and (path.startswith("/static/") or path in ("/t/topic-10/10", "/latest")):
            await pages(scope, receive, send)
        else:
            await notify(scope, receive, send)

    return app


@dataclass
class Site:
    base: str
    standin: StandIn
    notify: Starlette

    async def followed(self, channel: str) -> None:
        """Wait until the browser's socket follows a channel."""

        async def check() -> bool:
            return bool(self.notify.state.runtime.extras["hub"].channels.get(channel))

        await wait_for(check, what=f"a browser following {channel}")


@pytest_asyncio.fixture(loop_scope="session")
async def site(migrated, pool, redis) -> AsyncIterator[Site]:
    standin = StandIn()
    notify = create_app(migrated, background=True)
    async with serving(_pages_app(notify, standin)) as port:
        await wait_for(lambda: _running(notify), what="the live fan-out")
        yield Site(f"http://127.0.0.1:{port}", standin, notify)


async def _running(app: Starlette) -> bool:
    return bool(app.state.runtime.extras["hub"].running)


@pytest_asyncio.fixture(loop_scope="session")
async def browser_page(site) -> AsyncIterator[Any]:
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


async def test_the_header_count_updates_live(site, browser_page, pool, redis, migrated):
    """A subscribed browser shows a new notification in the header without a reload."""
    base = site.base
    session = await SessionStore(redis, migrated.redis_prefix).create(user_id=1, username="alice", roles=["member"],
                                                                      group_ids=[])  # fmt: skip
    await emit(pool, redis, migrated, registered(1, "alice"), category(1), topic(10, author_id=1))
    await browser_page.context.add_cookies([{"name": SESSION_COOKIE, "value": session.id, "url": base}])
    await browser_page.goto(base + "/notifications")
    badge = browser_page.locator("#tica-notification-count")
    assert await badge.get_attribute("data-live-channel") == "user:1"
    await site.followed("user:1")
    await emit(pool, redis, migrated, post(101, topic_id=10, number=2, author_id=2, reply_to_user_id=1))
    await badge.wait_for(state="visible", timeout=5000)
    assert " ".join((await badge.text_content()).split()) == ", 1 unread"
    assert (await browser_page.title()).startswith("(1) ")


async def test_a_topic_page_swaps_in_new_edited_and_hidden_posts(site, browser_page, pool, redis, migrated):
    base, standin = site.base, site.standin
    await emit(pool, redis, migrated, category(1), topic(10, author_id=1))
    await wait_for(lambda: pool.fetchval("SELECT 1 FROM notify.topics WHERE id = 10"), what="the topic projected")
    standin.posts = {100: (1, "First post"), 101: (2, "Second post")}
    await browser_page.goto(base + "/t/topic-10/10")
    await site.followed("topic:10")
    await browser_page.fill("#reply", "I am typing a reply")

    standin.posts[102] = (3, "A brand new reply")
    await emit(pool, redis, migrated, post(102, topic_id=10, number=3, author_id=2))
    await browser_page.locator('[data-live-post="102"]').wait_for(timeout=5000)
    assert await browser_page.locator("article").count() == 3

    standin.posts[101] = (2, "Second post, edited")
    await emit(pool, redis, migrated, ev.PostEdited(post_id=101, topic_id=10, post_number=2, category_id=1, author_id=2,
                                                    author_username="bob", text="edited", content_note=None,
                                                    audience=["public"], revision=2))  # fmt: skip
    await browser_page.get_by_text("Second post, edited").wait_for(timeout=5000)

    standin.posts[102] = (3, "This post was hidden while moderators look at it.")
    await emit(pool, redis, migrated, ev.PostHidden(post_id=102, topic_id=10, category_id=1, author_id=2,
                                                    reason="Flagged"))  # fmt: skip
    await browser_page.get_by_text("This post was hidden").wait_for(timeout=5000)
    assert await browser_page.input_value("#reply") == "I am typing a reply", "what the reader types is kept"


async def test_lists_say_how_many_new_topics(site, browser_page, pool, redis, migrated):
    await emit(pool, redis, migrated, category(1))
    await browser_page.goto(site.base + "/latest")
    await site.followed("latest")
    await emit(pool, redis, migrated, topic(11, author_id=1), topic(12, author_id=1))
    banner = browser_page.locator("#tica-live-banner")
    await banner.get_by_text("There are 2 new topics.").wait_for(timeout=5000)
    assert await banner.get_by_role("link", name="Show them").count() == 1
