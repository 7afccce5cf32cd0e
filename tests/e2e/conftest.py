"""Browser tests: the whole product served by real uvicorn, driven by Debian's Chromium.

The server runs in the test process (same event loop): the three services with
their background loops, and the arq worker, so mail reaches /dev/mail as in
`tica run`. Chromium comes from the system (`/usr/bin/chromium`; `.ci/run` installs
it); Playwright cannot download browsers here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from browser_helpers import free_port, serving_tica

from shared.settings import Settings

CHROMIUM = os.environ.get("TICA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which(CHROMIUM) is None:
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
        for item in items:
            if "e2e" in str(item.fspath):
                item.add_marker(skip)


@pytest_asyncio.fixture(loop_scope="session")
async def live_server(migrated: Settings, pool, redis) -> AsyncIterator[str]:
    """The base URL of a running tica (forum, notify, search, worker) on a free port."""
    port = free_port()
    settings = migrated.replace(port=port, base_url=f"http://127.0.0.1:{port}", dev_mail=True)
    async with serving_tica(settings) as base:
        yield base


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser) -> AsyncIterator[object]:
    """A fresh browser context and page (axe-core may be injected: CSP is bypassed for it only)."""
    context = await browser.new_context(bypass_csp=True)
    page = await context.new_page()
    yield page
    await context.close()
