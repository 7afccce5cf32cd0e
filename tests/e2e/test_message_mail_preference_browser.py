"""The preferences page's private-message email choice in Chromium (issue 15, point 7): "when away"
until the member chooses, a choice kept once saved, and the page sound at 1280 and 390 px (axe-core
finds nothing serious or critical, nothing wider than the screen, a clean console)."""

from __future__ import annotations

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_a_member_stops_emails_about_private_messages(live_server, browser, member_factory, pool, viewport):
    member = await member_factory("rowan")
    context, page = await member_page(browser, live_server, member, viewport)
    watch = watch_console(page, live_server)
    try:
        await page.goto(live_server + "/preferences")
        messages = page.get_by_role("group", name="Private messages")
        await expect(messages.get_by_label("Only when I have not been on tica for 10 minutes")).to_be_checked()
        await expect(messages.get_by_text("never quoted", exact=False)).to_be_visible()
        await assert_page_sound(page, watch, "preferences")
        await messages.get_by_label("Never").check()
        await page.get_by_role("button", name="Save preferences").click()
        await expect(page.get_by_text("Your preferences are saved.")).to_be_visible()
        await expect(page.get_by_role("group", name="Private messages").get_by_label("Never")).to_be_checked()
        chosen = await pool.fetchval("SELECT email_on_message FROM notify.preferences WHERE user_id = $1", member.id)
        assert chosen == "never"
        await assert_page_sound(page, watch, "preferences saved")
    finally:
        await context.close()
