"""Badges beside names in Chromium, at 1280 and 390 px: a member given "Expert by experience" finds it
unticked on their account page, chooses it, and it shows as a tag beside their name on their post;
both pages pass axe (nothing serious or critical), fit the screen and keep a clean console."""

from __future__ import annotations

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_a_member_chooses_a_badge_and_it_shows_on_their_post(live_server, browser, member_factory, viewport):
    base = live_server
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    badge = (await admin.client.post("/api/badges", json={"name": "Expert by experience"})).json()
    granted = await admin.client.post("/api/users/sam/badges", json={"badge_id": badge["id"]})
    assert granted.status_code == 201, granted.text
    category = (await admin.client.post("/api/categories", json={"name": "Peer support"})).json()
    topic = (
        await sam.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "What helps", "body": "A walk helps me."}
        )
    ).json()

    context, page = await member_page(browser, base, sam, viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/me/edit")
    choice = page.get_by_label("Expert by experience")
    await expect(choice).not_to_be_checked()
    await assert_page_sound(page, watch, "/me/edit with a badge")
    await choice.check()
    await page.get_by_role("button", name="Save my badges").click()
    await expect(page.locator(".nhsuk-inset-text")).to_contain_text("Your choice of badges is saved.")
    await expect(page.get_by_label("Expert by experience")).to_be_checked()
    await assert_page_sound(page, watch, "/me/edit?done=badges")

    await page.goto(base + topic["url"])
    badges = page.locator("#post-1 .tica-post__badges")
    await expect(badges).to_have_text("Expert by experience")
    await assert_page_sound(page, watch, "topic page with a badge")
    await context.close()
