"""Private messages in Chromium, at 1280 and 390 px, without relying on scripts: a member writes to another
from the new message page (a missing subject is caught in the error summary), the other finds it in their
inbox, reads the conversation and replies; the settings page for who may message me. Every page: axe-core
(nothing serious or critical), nothing wider than the screen, a clean console."""

from __future__ import annotations

import re

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect


@pytest.fixture
async def people(pool, member_factory):
    sam = await member_factory("sam")
    priya = await member_factory("priya")
    await pool.execute("UPDATE forum.users SET display_name = 'Priya Shah' WHERE id = $1", priya.id)
    return {"sam": sam, "priya": priya}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_a_member_writes_and_the_other_replies(live_server, browser, people, viewport):
    base = live_server
    context, page = await member_page(browser, base, people["sam"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/messages")
    await expect(page.locator("h1")).to_have_text("Messages")
    await assert_page_sound(page, watch, "/messages (empty)")
    await page.goto(base + "/messages/new?to=priya")
    await expect(page.locator("h1")).to_have_text("New message")
    await assert_page_sound(page, watch, "/messages/new")
    await page.get_by_label("Message").fill("Would you like to talk about the webinar?")
    watch.expect_status("/messages/new", 422)
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".nhsuk-error-summary")).to_contain_text("Subject is required")
    await assert_page_sound(page, watch, "/messages/new (no subject)")
    await page.get_by_label("Subject").fill("The webinar")
    await page.get_by_role("button", name="Send").click()
    await expect(page).to_have_url(re.compile(r"/messages/\d+"))
    await expect(page.locator("#messages")).to_contain_text("Would you like to talk about the webinar?")
    await assert_page_sound(page, watch, "/messages/{id}")
    await context.close()

    context, page = await member_page(browser, base, people["priya"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/messages")
    await expect(page.locator("#conversations")).to_contain_text("The webinar")
    await expect(page.locator("#conversations")).to_contain_text("New")
    await assert_page_sound(page, watch, "/messages (one new)")
    await page.get_by_role("link", name="The webinar").click()
    await page.get_by_label("Your reply").fill("Yes, I would like that.")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.locator("#messages > li")).to_have_count(2)
    await expect(page.locator("#messages")).to_contain_text("Yes, I would like that.")
    await assert_page_sound(page, watch, "/messages/{id} (replied)")
    await context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_who_may_message_me_and_blocks(live_server, browser, people, viewport):
    base = live_server
    context, page = await member_page(browser, base, people["sam"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/u/priya")
    await page.get_by_role("button", name="Block Priya Shah").click()
    await expect(page.locator("h1")).to_have_text("Who can message you")
    await expect(page.locator("main")).to_contain_text("Priya Shah (@priya)")
    await assert_page_sound(page, watch, "/account/messages (one blocked)")
    await page.get_by_role("radio", name=re.compile("Only members I have talked with")).check()
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".nhsuk-inset-text")).to_contain_text("Your choice is saved.")
    await page.get_by_role("button", name="Unblock Priya Shah").click()
    await expect(page.locator("main")).to_contain_text("You have not blocked anyone.")
    await assert_page_sound(page, watch, "/account/messages (none blocked)")
    await context.close()
