"""The site settings page in Chromium at desktop and phone widths: an admin gets a value wrong and
sees it in the error summary, puts it right, and the site's name changes in the header and the
welcome appears for visitors; axe, overflow and the console checked at each step."""

from __future__ import annotations

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_admin_changes_the_site_settings(live_server, browser, member_factory, viewport):
    """Settings by section with their defaults; every problem listed at once; saved, the banner names
    what changed, the header shows the new name and a visitor sees the welcome (never its script)."""
    base = live_server
    admin = await member_factory("ada", roles=("member", "admin"))
    context, page = await member_page(browser, base, admin, viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/admin/settings")
    await expect(page.locator("h1")).to_have_text("Site settings")
    for section in ("Community", "Sign-up", "Posting limits", "Moderation and safety"):
        await expect(page.get_by_role("heading", name=section, exact=True)).to_be_visible()
    await assert_page_sound(page, watch, "settings page")

    await expect(page.locator("#posts_per_minute-hint")).to_contain_text("The default is 10: leave it empty to use it.")
    await page.get_by_role("textbox", name="Posts per minute", exact=True).fill("lots")
    await page.get_by_role("textbox", name="Flag score that hides a post", exact=True).fill("0")
    watch.expect_status("/admin/settings", 422)
    await page.get_by_role("button", name="Save settings").click()
    summary = page.locator(".nhsuk-error-summary")
    await expect(summary).to_contain_text("Posts per minute must be a whole number")
    await expect(summary).to_contain_text("Flag score that hides a post must be a positive whole number")
    await assert_page_sound(page, watch, "settings with errors")

    await summary.get_by_role("link", name="Posts per minute must be a whole number").click()
    await expect(page.get_by_role("textbox", name="Posts per minute", exact=True)).to_be_focused()
    await page.get_by_role("textbox", name="Posts per minute", exact=True).fill("4")
    await page.get_by_role("textbox", name="Flag score that hides a post", exact=True).fill("")
    await page.get_by_role("textbox", name="Site name", exact=True).fill("Harbour")
    await page.get_by_role("textbox", name="Welcome text", exact=True).fill(
        "Welcome to **Harbour**, a calm place to talk.\n\n<script>document.title = 'owned'</script>"
    )
    await page.get_by_role("radio", name="Invitation only: people join with an invitation from staff").check()
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.locator(".nhsuk-notification-banner")).to_contain_text(
        "You changed: Site name, Welcome text, Who can create an account and Posts per minute."
    )
    await expect(page.locator(".nhsuk-header__service-name")).to_have_text("Harbour")
    await expect(page).to_have_title("Site settings - Harbour")
    await expect(page.get_by_role("checkbox", name="Use the default for Site name instead")).not_to_be_checked()
    await expect(page.get_by_role("textbox", name="Posts per minute", exact=True)).to_have_value("4")
    await assert_page_sound(page, watch, "settings saved")
    await context.close()

    context, page = await member_page(browser, base, None, viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/")
    welcome = page.get_by_role("region", name="Welcome")
    await expect(welcome).to_contain_text("Welcome to Harbour, a calm place to talk.")
    await expect(welcome.locator("strong")).to_have_text("Harbour")
    assert await page.title() != "owned" and await welcome.locator("script").count() == 0
    await assert_page_sound(page, watch, "home with the welcome")
    await context.close()
