"""'Leave this site quickly' in Chromium, at 1280 and 390 px: the button and Escape pressed twice
(even while typing in a text box) replace the page with the neutral site, hiding the page at once;
Back then skips the page left (Chromium honours location.replace); one Escape does nothing; the
control is second in the tab order, passes axe at both widths, and is gone when admins turn it off.
The neutral site is answered by the browser itself (a Playwright route), so no internet is needed."""

from __future__ import annotations

import pytest
import pytest_asyncio
from browser_helpers import DESKTOP, PHONE, assert_page_sound, free_port, member_page, serving_tica, watch_console
from playwright.async_api import expect

NEUTRAL = "http://neutral.test"
BUTTON = "Leave this site quickly"


def neutral_page(title: str) -> str:
    return f"<!DOCTYPE html><html lang='en'><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"


@pytest_asyncio.fixture(loop_scope="session")
async def site(migrated, pool, redis):
    """tica, its quick exit pointing at the neutral test site."""
    port = free_port()
    settings = migrated.replace(
        port=port, base_url=f"http://127.0.0.1:{port}", dev_mail=True, quick_exit_url=f"{NEUTRAL}/weather"
    )
    async with serving_tica(settings, worker=False) as base:
        yield base


async def neutral_routes(context, *, stalled: bool = False) -> None:
    """The neutral site: /before (where the visit started) and /weather (where leaving goes); when
    `stalled`, /weather answers 204 No Content, so the browser stays on the page it was leaving."""

    async def answer(route) -> None:
        path = route.request.url.removeprefix(NEUTRAL)
        if path == "/weather" and stalled:
            await route.fulfill(status=204)
            return
        await route.fulfill(status=200, content_type="text/html", body=neutral_page(f"Neutral {path}"))

    await context.route(f"{NEUTRAL}/**", answer)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_the_button_leaves_at_once_and_back_skips_the_page(site, browser, member_factory, viewport):
    """The button hides the page before the neutral site answers, and Back does not return to it."""
    sam = await member_factory("sam")
    context, page = await member_page(browser, site, sam, viewport)
    await neutral_routes(context)
    await page.goto(f"{NEUTRAL}/before")
    watch = watch_console(page, site)
    await page.goto(site + "/support")
    button = page.get_by_role("link", name=BUTTON)
    await expect(button).to_be_visible()
    await expect(button).to_have_attribute("href", f"{NEUTRAL}/weather")
    await expect(button).to_have_attribute("rel", "noreferrer")
    await expect(page.locator("#leave-quickly")).to_have_text("Leaving this site quickly")
    await assert_page_sound(page, watch, "/support with the quick exit")
    # Early in the tab order: straight after "Skip to main content".
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(button).to_be_focused()

    await page.mouse.wheel(0, 2000)  # it stays in view as the page scrolls
    await expect(button).to_be_in_viewport()
    await button.click()
    await expect(page).to_have_url(f"{NEUTRAL}/weather")
    await expect(page.locator("h1")).to_have_text("Neutral /weather")
    await page.go_back()
    await expect(page).to_have_url(f"{NEUTRAL}/before")  # not the forum page that was left
    await context.close()


async def test_the_page_is_hidden_while_leaving(site, browser, member_factory):
    """Leaving hides the forum page at once, before the neutral site has answered (here it never
    does: a 204 leaves the browser on the page, hidden)."""
    sam = await member_factory("sam")
    context, page = await member_page(browser, site, sam)
    await neutral_routes(context, stalled=True)
    await page.goto(site + "/support")
    await page.get_by_role("link", name=BUTTON).click()
    await page.wait_for_function("() => document.documentElement.classList.contains('tica-leaving')")
    assert await page.evaluate("() => getComputedStyle(document.body).display") == "none"
    assert await page.title() == ""
    await context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_escape_twice_leaves_even_while_typing(site, browser, member_factory, viewport):
    """One Escape does nothing; two within two seconds leave, from the page and from a text box."""
    sam = await member_factory("sam")
    context, page = await member_page(browser, site, sam, viewport)
    await neutral_routes(context)
    await page.goto(f"{NEUTRAL}/before")
    await page.goto(site + "/")
    await page.keyboard.press("Escape")
    await page.wait_for_timeout(300)
    await expect(page).to_have_url(site + "/")
    await page.keyboard.press("Escape")
    await expect(page).to_have_url(f"{NEUTRAL}/weather")
    await page.go_back()
    await expect(page).to_have_url(f"{NEUTRAL}/before")

    await page.goto(site + "/support")
    await page.get_by_label("Search").first.fill("something private")
    await page.keyboard.press("Escape")
    await page.keyboard.press("Escape")
    await expect(page).to_have_url(f"{NEUTRAL}/weather")
    await context.close()


async def test_escape_far_apart_does_not_leave(site, browser, member_factory):
    """Two Escapes more than two seconds apart are two ordinary key presses."""
    sam = await member_factory("sam")
    context, page = await member_page(browser, site, sam)
    await neutral_routes(context)
    await page.goto(site + "/support")
    await page.keyboard.press("Escape")
    await page.wait_for_timeout(2300)
    await page.keyboard.press("Escape")
    await page.wait_for_timeout(500)
    await expect(page).to_have_url(site + "/support")
    await context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_the_control_is_gone_when_turned_off(migrated, pool, redis, browser, viewport):
    """With `quick_exit` off there is no button, no script, and Escape twice stays on the page."""
    port = free_port()
    settings = migrated.replace(port=port, base_url=f"http://127.0.0.1:{port}", quick_exit=False)
    async with serving_tica(settings, worker=False) as base:
        context, page = await member_page(browser, base, None, viewport)
        watch = watch_console(page, base)
        await page.goto(base + "/support")
        await expect(page.locator("h1")).to_have_text("Get support")
        await expect(page.get_by_role("link", name=BUTTON)).to_have_count(0)
        await expect(page.locator("#leave-quickly")).to_have_count(0)
        await expect(page.locator("script[src*='quick-exit']")).to_have_count(0)
        await assert_page_sound(page, watch, "/support without the quick exit")
        await page.keyboard.press("Escape")
        await page.keyboard.press("Escape")
        await page.wait_for_timeout(500)
        await expect(page).to_have_url(base + "/support")
        await context.close()
