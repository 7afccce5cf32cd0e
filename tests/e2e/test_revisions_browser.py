"""A post's changes in Chromium, at 1280 and 390 px: the author of an edited anonymous post opens its
changes (this answered 500 once), removes an earlier version after confirming, and a moderator then
sees only that it was removed; an admin sees it marked as removed. Every page: axe-core (nothing
serious or critical), nothing wider than the screen, a clean console."""

from __future__ import annotations

import re

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect

SECRET = "the name of the street where it happened"


@pytest.fixture
async def world(member_factory):
    admin = await member_factory("ada", roles=("member", "admin"))
    moderator = await member_factory("mo", roles=("member", "moderator"))
    sam = await member_factory("sam")
    category = (
        await admin.client.post("/api/categories", json={"name": "Lived experience", "allow_anonymous": True})
    ).json()
    topic = (
        await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "What helps", "body": "Share what helps."}
        )
    ).json()
    post = (
        await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": f"It was {SECRET}.", "anonymous": True})
    ).json()
    edited = await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "It was somewhere I used to live."})
    assert edited.status_code == 200, edited.text
    return {"admin": admin, "moderator": moderator, "sam": sam, "post": post}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_an_author_takes_back_an_earlier_version(live_server, browser, world, viewport):
    base, post = live_server, world["post"]
    changes = f"/posts/{post['id']}/revisions"
    context, page = await member_page(browser, base, world["sam"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + changes)
    await expect(page.locator("h1")).to_contain_text("Changes to post 2")
    await expect(page.locator("main")).to_contain_text("Anonymous member (you)")
    await assert_page_sound(page, watch, "/posts/{id}/revisions")

    await page.get_by_role("link", name="Remove this version (version 1)").click()
    await expect(page.locator("h1")).to_contain_text("Remove version 1 of post 2?")
    await expect(page.locator("main")).to_contain_text("change your mind about what you share")
    await assert_page_sound(page, watch, "/posts/{id}/revisions/1/redact")
    await page.get_by_role("link", name="No, keep it").click()
    await expect(page).to_have_url(re.compile(r"/revisions#revision-1$"))
    await page.get_by_role("link", name="Remove this version (version 1)").click()
    await page.get_by_role("button", name="Remove this version").click()
    await expect(page).to_have_url(re.compile(r"/revisions\?removed=1#revision-1$"))
    await expect(page.locator(".nhsuk-inset-text")).to_contain_text("Version 1 is removed.")
    await expect(page.locator("main")).to_contain_text("This version was removed by its author")
    await expect(page.locator("main")).not_to_contain_text(SECRET)
    await assert_page_sound(page, watch, "/posts/{id}/revisions?removed=1")
    await context.close()

    context, page = await member_page(browser, base, world["moderator"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + changes)
    await expect(page.locator("main")).to_contain_text("This version was removed by its author")
    await expect(page.locator("main")).not_to_contain_text(SECRET)
    await expect(page.get_by_role("button", name=re.compile("Reveal its author"))).to_be_visible()
    await assert_page_sound(page, watch, "/posts/{id}/revisions (moderator)")
    await context.close()

    context, page = await member_page(browser, base, world["admin"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + changes)
    await expect(page.locator("main")).to_contain_text("Only admins can read it.")
    await expect(page.locator("main")).to_contain_text(SECRET)
    await assert_page_sound(page, watch, "/posts/{id}/revisions (admin)")
    await context.close()
