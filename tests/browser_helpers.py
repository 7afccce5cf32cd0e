"""Helpers for browser tests (tests/ is on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from services.allinone import AllInOne
from services.notify.worker import create_worker
from shared.pages import assets_dir
from shared.settings import Settings

AXE = Path(assets_dir()) / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


async def axe_violations(page, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """Run axe-core on the current page; the violations of the given impacts."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in impacts]


def axe_summary(violations: list[dict]) -> list[str]:
    """Violations as short lines for an assertion message: rule, impact and the first element."""
    return [f"{v['id']} ({v['impact']}): {v['nodes'][0]['target'] if v.get('nodes') else ''}" for v in violations]


@dataclass
class ConsoleWatch:
    """What went wrong in a page while watched: console errors, uncaught script errors, requests
    that failed or were answered 4xx/5xx, and requests to any other origin than the site's (a font
    or a script from elsewhere: the site's policy forbids them, and they leak who reads what)."""

    origin: str
    problems: list[str] = field(default_factory=list)
    allowed_statuses: set[tuple[str, int]] = field(default_factory=set)  # (path, status) a test expects

    def expect_status(self, path: str, status: int) -> None:
        """A response the test asks for on purpose (a 404 page it checks) is no problem."""
        self.allowed_statuses.add((path, status))

    def _on_console(self, message) -> None:
        if message.type == "error":
            location = message.location or {}
            url = location.get("url", "")
            if message.text.startswith("Failed to load resource") and any(
                urlsplit(url).path == path and f"status of {status} " in message.text
                for path, status in self.allowed_statuses
            ):
                return  # Chromium's own note of an answer the test asked for
            self.problems.append(f"console error: {message.text} ({url})")

    def _on_page_error(self, error) -> None:
        self.problems.append(f"script error: {error}")

    def _on_request(self, request) -> None:
        if request.url.startswith(("data:", "blob:", "about:", "chrome:", "chrome-extension:")):
            return  # the page's own data, or the browser's (its PDF viewer)
        parts = urlsplit(request.url)
        origin = f"{parts.scheme.replace('ws', 'http')}://{parts.netloc}"
        if origin != self.origin:
            self.problems.append(f"request to another origin: {request.method} {request.url}")

    def _on_request_failed(self, request) -> None:
        if request.failure and "ERR_ABORTED" in request.failure:
            return  # cut short by the test going elsewhere (a missing file answers 404, caught below)
        self.problems.append(f"request failed: {request.method} {request.url} ({request.failure})")

    def _on_response(self, response) -> None:
        if response.status >= 400 and (urlsplit(response.url).path, response.status) not in self.allowed_statuses:
            self.problems.append(f"{response.status} for {response.request.method} {response.url}")

    def attach(self, page) -> ConsoleWatch:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("request", self._on_request)
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)
        return self

    def take(self) -> list[str]:
        """The problems so far (and forget them)."""
        problems, self.problems = self.problems, []
        return problems

    def assert_clean(self, where: str = "") -> None:
        """Fail the test on any problem seen so far."""
        problems = self.take()
        assert problems == [], f"{where}: " + "\n".join(problems)


def watch_console(page, origin: str) -> ConsoleWatch:
    """Start watching `page` for console errors and failed or foreign requests; `origin` is the
    site's (the live server's base URL). Call `.assert_clean()` after each step that should be clean."""
    parts = urlsplit(origin)
    return ConsoleWatch(f"{parts.scheme}://{parts.netloc}").attach(page)


async def settle(page) -> None:
    """Wait until the page's own requests have finished (fonts, icons, scripts' fetches)."""
    await page.wait_for_load_state("load")
    await page.evaluate("() => document.fonts.ready.then(() => true)")
    await page.wait_for_timeout(150)  # module scripts and their component set-up run after load


# Not innerWidth alone: in a phone's emulation (is_mobile) the window grows to fit the page, so a
# 588 px page on a 390 px screen reports innerWidth 588; the root's clientWidth stays the screen's.
OVERFLOW_JS = """() => {
  const root = document.documentElement;
  return Math.max(root.scrollWidth - root.clientWidth, root.scrollWidth - window.innerWidth);
}"""


async def overflow_px(page) -> int:
    """How far the page is wider than the screen (0 when nothing runs off the side)."""
    return int(await page.evaluate(OVERFLOW_JS))


async def member_page(browser, base: str, member, viewport: dict[str, int] | None = None):
    """A browser context and page of their own, signed in as `member` (their session cookies; None: a
    visitor), at `viewport` (desktop when not given). Close the context when done."""
    context = await browser.new_context(bypass_csp=True, viewport=viewport or DESKTOP)
    if member is not None:
        await context.add_cookies(
            [
                {"name": "tica_session", "value": member.session.id, "url": base},
                {"name": "tica_csrf", "value": member.session.csrf, "url": base},
            ]
        )
    return context, await context.new_page()


async def assert_page_sound(page, watch: ConsoleWatch, where: str) -> None:
    """The page as people meet it: axe finds nothing serious or critical, nothing runs off the side,
    and the console stayed clean."""
    await settle(page)
    violations = await axe_violations(page)
    assert violations == [], f"{where}: {axe_summary(violations)}"
    assert await overflow_px(page) == 0, f"{where}: wider than the screen"
    watch.assert_clean(where)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving_tica(settings: Settings, *, worker: bool = True) -> AsyncIterator[str]:
    """The whole product (forum, notify, search; with `worker`, the arq worker too, so mail is
    sent as in `tica run`) under real uvicorn on `settings.port`, in this event loop; its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(AllInOne(settings), host="127.0.0.1", port=settings.port, log_config=None, lifespan="on")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    jobs = create_worker(settings) if worker else None
    working = asyncio.create_task(jobs.main()) if jobs is not None else None
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    try:
        yield settings.public_url
    finally:
        server.should_exit = True
        await serving
        if working is not None and jobs is not None:
            working.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await working
            await jobs.close()
