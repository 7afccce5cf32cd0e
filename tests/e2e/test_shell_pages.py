"""The page shell's own pages in Chromium, at desktop (1280) and phone (390) widths: the community
guidelines and the API's readable description are reached from every page's footer, pass axe with
no serious or critical violation, and no page logs a console error or asks for a missing file
(the NHS.UK fonts and images, the favicon)."""

from __future__ import annotations

import pytest
from browser_helpers import DESKTOP, PHONE, axe_summary, axe_violations, overflow_px, settle, watch_console
from playwright.async_api import expect

WIDTHS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])


async def _open(browser, viewport, base: str, path: str, *, bypass_csp: bool = False):
    context = await browser.new_context(viewport=viewport, bypass_csp=bypass_csp)
    page = await context.new_page()
    watch = watch_console(page, base)
    response = await page.goto(base + path)
    await settle(page)
    return context, page, watch, response


@WIDTHS
async def test_the_footer_leads_to_the_community_guidelines(live_server, browser, viewport):
    """ "Community guidelines" in the footer opens a real page: principles, content notes, what to do
    if a post upsets you, no identifying people or services, moderators and appeals."""
    context, page, watch, _ = await _open(browser, viewport, live_server, "/")
    try:
        await page.locator("footer").get_by_role("link", name="Community guidelines").click()
        await expect(page.locator("h1")).to_have_text("Community guidelines")
        main = page.locator("main")
        for words in (
            "Safety",
            "Choice",
            "Trust",
            "Collaboration",
            "Empowerment",
            "content note",
            "If a post upsets you",
        ):
            await expect(main).to_contain_text(words)
        await expect(main).to_contain_text("Do not name or identify services")
        await expect(main.get_by_role("heading", name="If you disagree with a moderator")).to_be_visible()
        await expect(main.get_by_role("link", name="get support").first).to_have_attribute("href", "/support")
        assert await overflow_px(page) == 0
        watch.assert_clean("/guidelines")
    finally:
        await context.close()


@WIDTHS
async def test_the_footer_api_link_opens_a_readable_page(live_server, browser, viewport):
    """The footer's "API" link opens an HTML page listing the operations by tag, read from the
    OpenAPI document, which it links."""
    context, page, watch, _ = await _open(browser, viewport, live_server, "/")
    try:
        await page.locator("footer").get_by_role("link", name="API").click()
        await expect(page.locator("h1")).to_have_text("The tica API")
        document = await (await page.request.get(live_server + "/api/openapi.json")).json()
        tags = {tag for item in document["paths"].values() for op in item.values() if isinstance(op, dict)
                for tag in op.get("tags", [])}  # fmt: skip
        assert len(tags) > 3
        for tag in tags:
            await expect(page.get_by_role("heading", name=tag.capitalize(), exact=True)).to_be_visible()
        accounts = page.locator("section", has=page.get_by_role("heading", name="Accounts", exact=True))
        await expect(accounts).to_contain_text("POST /api/users")
        await expect(accounts).to_contain_text(document["paths"]["/api/users"]["post"]["summary"])
        count = sum(
            1 for item in document["paths"].values() for m in item if m in ("get", "post", "put", "patch", "delete")
        )
        assert await page.locator(".tica-api-operation").count() >= count
        link = page.get_by_role("link", name="OpenAPI document (JSON)")
        await expect(link).to_have_attribute("href", "/api/openapi.json")
        assert await overflow_px(page) == 0
        watch.assert_clean("/developers")
    finally:
        await context.close()


@WIDTHS
@pytest.mark.parametrize("path", ["/guidelines", "/developers", "/support", "/no-such-page"])
async def test_shell_pages_pass_axe(live_server, browser, viewport, path):
    """axe finds no serious or critical violation on the site pages and the error page."""
    context, page, _, _ = await _open(browser, viewport, live_server, path, bypass_csp=True)
    try:
        assert axe_summary(await axe_violations(page)) == []
    finally:
        await context.close()


@WIDTHS
async def test_no_console_errors_on_the_shell(live_server, browser, viewport):
    """The home, search (with its clear button's icon), error and login pages log no console error,
    no request fails, none leaves the site (no web fonts from elsewhere); /favicon.ico is there."""
    context, page, watch, _ = await _open(browser, viewport, live_server, "/")
    try:
        watch.assert_clean("/")
        await page.goto(live_server + "/search?q=care")
        await page.get_by_label("Search tica").first.fill("trauma")
        await settle(page)
        watch.assert_clean("/search")
        watch.expect_status("/no-such-page", 404)
        response = await page.goto(live_server + "/no-such-page")
        assert response is not None and response.status == 404
        await settle(page)
        await expect(page.locator("h1")).to_have_text("Page not found")
        watch.assert_clean("/no-such-page")
        favicon = await page.goto(live_server + "/favicon.ico")
        assert favicon is not None and favicon.status == 200
        assert favicon.headers["content-type"].startswith("image/")
        watch.assert_clean("/favicon.ico")
    finally:
        await context.close()


async def test_the_watch_catches_console_errors_and_missing_files(live_server, browser):
    """The console watch fails on a console error, a 404 and a request to another origin (so the
    checks above can fail)."""
    context, page, watch, _ = await _open(browser, DESKTOP, live_server, "/")
    try:
        watch.assert_clean("/")
        await page.evaluate(
            """() => { console.error('planted'); const i = document.createElement('img');
            i.src = '/static/nhsuk/assets/images/missing.svg'; document.body.append(i);
            const f = new FontFace('x', 'url(https://fonts.example.org/x.woff2)'); f.load().catch(() => {}); }"""
        )
        await page.wait_for_timeout(500)
        problems = watch.take()
        assert any("planted" in p for p in problems), problems
        assert any(p.startswith("404 for GET") and "missing.svg" in p for p in problems), problems
        assert any("fonts.example.org" in p for p in problems), problems
    finally:
        await context.close()
