"""The members' admin pages and the moderators' audit log in Chromium, at 1280 and 390 px: an admin
finds a member, reads their standing and makes them a moderator (a missing reason is caught in the
error summary); an admin steps down after confirming; a moderator finds members without email
addresses and reads the audit log of moderation. Every page: axe-core (nothing serious or critical),
nothing wider than the screen, a clean console."""

from __future__ import annotations

import re

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect

REASON = "Sam has been a kind and steady presence for newcomers"


@pytest.fixture
async def world(pool, member_factory):
    admin = await member_factory("ada", roles=("member", "admin"))
    moderator = await member_factory("mo", roles=("member", "moderator"))
    sam = await member_factory("sam")
    await pool.execute("UPDATE forum.users SET display_name = 'Sam Rivers' WHERE id = $1", sam.id)
    category = (await admin.client.post("/api/categories", json={"name": "Peer support"})).json()
    topic = (
        await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "What helps", "body": "Share what helps."}
        )
    ).json()
    post = (await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "A walk helps me"})).json()
    hidden = await moderator.client.post(f"/api/posts/{post['id']}/hide", json={"reason": "Shared someone's name"})
    assert hidden.status_code == 200, hidden.text
    return {"admin": admin, "moderator": moderator, "sam": sam}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_an_admin_finds_a_member_and_makes_them_a_moderator(live_server, browser, world, viewport):
    base, sam = live_server, world["sam"]
    context, page = await member_page(browser, base, world["admin"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/admin/members")
    await expect(page.locator("h1")).to_have_text("Members")
    await assert_page_sound(page, watch, "/admin/members")
    await page.get_by_label("Name").fill("rivers")
    await page.get_by_label("Role").select_option("member")
    await page.get_by_role("button", name="Find members").click()
    await expect(page).to_have_url(re.compile(r"/admin/members\?name=rivers&.*role=member"))
    await expect(page.locator("table")).to_contain_text("sam@example.org")
    await assert_page_sound(page, watch, "/admin/members?name=rivers")
    await page.get_by_role("link", name="Sam Rivers").click()
    await expect(page.locator("h1")).to_contain_text("Sam Rivers (@sam)")
    await expect(page.locator("main")).to_contain_text("Hidden by moderators now")
    await assert_page_sound(page, watch, "/admin/members/{id}")

    await page.get_by_role("radio", name="Moderator", exact=True).check()
    watch.expect_status(f"/admin/members/{sam.id}/role", 422)  # the form again, with what to fix
    await page.get_by_role("button", name="Change role").click()
    await expect(page.locator(".nhsuk-error-summary")).to_contain_text("Reason is required")
    await assert_page_sound(page, watch, "/admin/members/{id}/role (no reason)")
    await page.get_by_role("radio", name="Moderator", exact=True).check()
    await page.get_by_label("Reason").fill(REASON)
    await page.get_by_role("button", name="Change role").click()
    await expect(page.locator(".nhsuk-inset-text")).to_contain_text(
        "Sam Rivers is now a moderator. They have been told, with your reason."
    )
    await expect(page.locator("main")).to_contain_text("Ada changed the role of Sam Rivers to moderator.")
    await assert_page_sound(page, watch, "/admin/members/{id}?done=role")
    await context.close()

    context, page = await member_page(browser, base, sam, viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/notifications")
    await expect(page.locator("main")).to_contain_text("You are now a moderator.", timeout=10_000)
    await assert_page_sound(page, watch, "/notifications (role changed)")
    await page.goto(base + "/review")
    await expect(page.locator("h1")).to_contain_text("Review")
    await context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_an_admin_steps_down_after_confirming(live_server, browser, world, member_factory, viewport):
    base, admin = live_server, world["admin"]
    await member_factory("bo", roles=("member", "admin"))
    context, page = await member_page(browser, base, admin, viewport)
    watch = watch_console(page, base)
    await page.goto(base + f"/admin/members/{admin.id}")
    await page.get_by_role("radio", name="Member", exact=True).check()
    await page.get_by_label("Reason").fill("I am stepping back for a while")
    await page.get_by_role("button", name="Change role").click()
    await expect(page.locator("h1")).to_have_text("Step down as admin?")
    await assert_page_sound(page, watch, "confirm stepping down")
    await page.get_by_role("button", name="Yes, step down").click()
    await expect(page.locator("h1")).to_have_text("You have stepped down")
    await assert_page_sound(page, watch, "stepped down")
    await context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_a_moderator_finds_members_and_reads_the_moderation_log(live_server, browser, world, viewport):
    base = live_server
    promoted = await world["admin"].client.put(
        f"/api/admin/members/{world['sam'].id}/role", json={"role": "moderator", "reason": REASON}
    )
    assert promoted.status_code == 200, "an admin-only entry the moderator must not see"
    context, page = await member_page(browser, base, world["moderator"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/admin/members")
    await expect(page.locator("table")).to_contain_text("Sam Rivers")
    await expect(page.locator("main")).not_to_contain_text("@example.org")
    await expect(page.get_by_label("Email address")).to_have_count(0)
    await assert_page_sound(page, watch, "/admin/members (moderator)")
    await page.get_by_role("link", name="Sam Rivers").click()
    await expect(page.locator("main")).to_contain_text("Admins can change roles.")
    await expect(page.locator("main")).not_to_contain_text("sam@example.org")
    await assert_page_sound(page, watch, "/admin/members/{id} (moderator)")

    await page.goto(base + "/admin/audit-log")
    await expect(page.locator("table")).to_contain_text("Mo hid a reply by Sam Rivers")
    await expect(page.locator("table")).not_to_contain_text("changed the role")
    await expect(page.locator("#action option[value='user.role_change']")).to_have_count(0)
    await assert_page_sound(page, watch, "/admin/audit-log (moderator)")
    await context.close()
