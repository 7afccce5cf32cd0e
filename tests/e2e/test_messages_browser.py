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


@pytest.fixture
async def staff_world(pool, member_factory, people):
    admin = await member_factory("ada", roles=("member", "admin"))
    moderator = await member_factory("mo", roles=("member", "moderator"))
    jo = await member_factory("jo")
    sam, priya = people["sam"], people["priya"]
    started = await sam.client.post(
        "/api/conversations", json={"recipients": ["priya"], "title": "Our chat", "text": "Something unkind"}
    )
    cid = started.json()["id"]
    await sam.client.post(f"/api/conversations/{cid}/invitations", json={"username": "jo"})
    worry = {"to_moderators": True, "title": "A worry", "text": "Can we talk?"}
    await sam.client.post("/api/conversations", json=worry)
    category = (await admin.client.post("/api/categories", json={"name": "Peer support"})).json()
    topic = await priya.client.post(
        "/api/topics", json={"category_id": category["id"], "title": "Hard days", "body": "I want to end my life"}
    )
    post_id = topic.json()["first_post"]["id"]
    review_id = await pool.fetchval(
        "SELECT id FROM forum.reviewables WHERE post_id = $1 AND kind = 'safeguarding'", post_id
    )
    message_id = started.json()["message"]["id"]
    return {"admin": admin, "moderator": moderator, "jo": jo, "cid": cid, "review_id": review_id, "mid": message_id}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_report_invitation_moderators_inbox_and_outreach(live_server, browser, people, staff_world, viewport):
    base, w = live_server, staff_world
    context, page = await member_page(browser, base, people["priya"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + f"/messages/{w['cid']}/messages/{w['mid']}/report")
    await expect(page.locator("h1")).to_have_text("Report a message")
    await assert_page_sound(page, watch, "/messages/{id}/messages/{id}/report")
    await page.get_by_role("radio", name="Inappropriate").check()
    await page.get_by_role("button", name="Report").click()
    await expect(page.locator(".nhsuk-inset-text").first).to_contain_text("The moderators will look at this message")
    await context.close()

    context, page = await member_page(browser, base, w["jo"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + f"/messages/{w['cid']}")
    await expect(page.locator("main")).to_contain_text("You have been invited")
    await assert_page_sound(page, watch, "/messages/{id} (invitation)")
    await page.get_by_role("button", name="Accept").click()
    await expect(page.locator("#reply")).to_be_visible()
    await context.close()

    context, page = await member_page(browser, base, w["moderator"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/messages/moderators")
    await expect(page.locator("#conversations")).to_contain_text("A worry")
    await assert_page_sound(page, watch, "/messages/moderators")
    await page.goto(base + f"/review/{w['review_id']}/outreach")
    await expect(page.get_by_label("Message")).to_contain_text("Samaritans")
    await assert_page_sound(page, watch, "/review/{id}/outreach")
    await page.get_by_role("button", name="Send").click()
    await expect(page).to_have_url(re.compile(r"/messages/\d+"))
    await expect(page.locator("#messages")).to_contain_text("The moderators")
    await assert_page_sound(page, watch, "/messages/{id} (outreach sent)")
    await context.close()

    context, page = await member_page(browser, base, w["admin"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/admin/outreach-template")
    await expect(page.locator("h1")).to_have_text("Outreach template")
    await assert_page_sound(page, watch, "/admin/outreach-template")
    await context.close()
