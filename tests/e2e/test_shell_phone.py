"""The page shell on a phone (390 x 844) with JavaScript on, over every page a visitor and a
member can reach in the demo community: nothing runs off the side of the screen, "Get support"
is visible in the header, the NHS.UK header's menu works, and no page logs a console error or
makes a request that fails or leaves the site."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from browser_helpers import PHONE, overflow_px, settle, watch_console
from playwright.async_api import expect

from services.forum import demo

# Links a walk does not follow: they change things, download files or leave the pages.
# Matched against "path?query".
SKIP = re.compile(
    r"^/(api|static|live|dev/mail|logout|unsubscribe)\b|/download\?|/preview/raw|\.ics\?|/calendar|format="
)
MAX_PAGES = 120


def shape(path: str) -> str:
    """One page per kind: /t/some-title/12 and /t/other/13 are the same page to the walk."""
    return re.sub(r"/\d+", "/{n}", re.sub(r"^/t/[^/]+/", "/t/{slug}/", path))


async def _links(page, origin: str) -> list[str]:
    hrefs = await page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    found = []
    for href in hrefs:
        url = urljoin(page.url, href)
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != origin or SKIP.search(f"{parts.path}?{parts.query}"):
            continue
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found


async def walk(page, origin: str, start: list[str]) -> list[str]:
    """Visit every kind of page reachable by links from `start`, checking each; the paths visited."""
    watch = watch_console(page, origin)
    seen: set[str] = set()
    queue = list(start)
    visited: list[str] = []
    failures: list[str] = []
    while queue and len(visited) < MAX_PAGES:
        path = queue.pop(0)
        kind = shape(path.split("?")[0]) + ("?" if "?" in path else "")
        if kind in seen:
            continue
        seen.add(kind)
        response = await page.goto(origin + path)
        assert response is not None
        if urlsplit(page.url).path == "/login" and path != "/login":
            continue  # a page for someone else (sent to log in)
        if not response.headers.get("content-type", "").startswith("text/html"):
            watch.take()
            continue  # a file (a document's preview), not a page
        await settle(page)
        visited.append(path)
        failures += [f"{path}: {problem}" for problem in watch.take()]
        wider = await overflow_px(page)
        if wider > 0:
            failures.append(f"{path}: the page is {wider} px wider than the screen")
        support = page.locator("header").get_by_role("link", name="Get support")
        if not await support.is_visible():
            failures.append(f"{path}: 'Get support' is not visible in the header")
        queue += await _links(page, origin)
    assert failures == [], "\n".join(failures)
    return visited


@pytest.fixture
async def demo_site(migrated, pool):
    assert await demo.seed(migrated)


async def _phone(browser):
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    return context, await context.new_page()


async def _log_in(page, origin: str, username: str) -> None:
    await page.goto(origin + "/login")
    await page.get_by_label("Username or email address").fill(username)
    await page.get_by_label("Password", exact=True).fill(f"demo-password-{username}")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("header").get_by_role("link", name=username, exact=True)).to_be_visible()


START = ["/", "/support", "/guidelines", "/search?q=safety", "/login", "/register"]


async def test_every_page_fits_a_phone_for_a_visitor_and_a_member(live_server, browser, demo_site):
    """A visitor's and a member's walk over every kind of page: no overflow, "Get support" visible,
    no console error, no failed or foreign request."""
    context, page = await _phone(browser)
    try:
        visited = await walk(page, live_server, START)
        for must in ("/", "/support", "/guidelines", "/library", "/groups", "/webinars", "/developers"):
            assert must in visited, f"the visitor's walk missed {must}: {visited}"
        assert any(p.startswith("/t/") for p in visited), visited
        await _log_in(page, live_server, "sam")
        visited = await walk(page, live_server, [*START[:4], "/notifications", "/me/edit", "/members"])
        for must in ("/notifications", "/me/edit", "/members"):
            assert must in visited, f"the member's walk missed {must}: {visited}"
    finally:
        await context.close()


async def test_the_header_menu_opens_on_a_phone(live_server, browser):
    """At 390 px the navigation that does not fit goes behind "More", which opens and closes;
    "Get support" stays in view."""
    context, page = await _phone(browser)
    try:
        watch = watch_console(page, live_server)
        await page.goto(live_server + "/")
        await settle(page)
        more = page.get_by_role("button", name=re.compile("More"))
        await expect(more).to_be_visible()
        await expect(more).to_have_attribute("aria-expanded", "false")
        await more.click()
        await expect(more).to_have_attribute("aria-expanded", "true")
        await expect(page.locator(".nhsuk-header__menu-list").get_by_role("link", name="Webinars")).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(more).to_have_attribute("aria-expanded", "false")
        await expect(page.locator("header").get_by_role("link", name="Get support")).to_be_visible()
        assert await overflow_px(page) == 0
        watch.assert_clean("home page")
    finally:
        await context.close()


async def test_the_password_show_button_works(live_server, browser):
    """The NHS.UK password input's "Show" button is started: it reveals and hides the password."""
    context, page = await _phone(browser)
    try:
        await page.goto(live_server + "/login")
        password = page.get_by_label("Password", exact=True)
        await password.fill("a calm river")
        await page.get_by_role("button", name=re.compile("^Show")).click()
        await expect(password).to_have_attribute("type", "text")
        await page.get_by_role("button", name=re.compile("^Hide")).click()
        await expect(password).to_have_attribute("type", "password")
    finally:
        await context.close()
