"""Moderation in Chromium: flag -> auto-hide -> review -> restore, the safeguarding support panel
and its place first in the queue, keyboard use of the queue, and axe-core on the new pages."""

from __future__ import annotations

import re

import pytest
from browser_helpers import axe_violations
from playwright.async_api import expect


@pytest.fixture
async def world(pool, member_factory):
    """A category, a topic by Ada with a reply by Sam, and the people of the story."""
    admin = await member_factory("ada", roles=("member", "admin"))
    moderator = await member_factory("mo", roles=("member", "moderator"))
    sam = await member_factory("sam")
    category = (await admin.client.post("/api/categories", json={"name": "Lived experience"})).json()
    topic = (
        await admin.client.post(
            "/api/topics",
            json={"category_id": category["id"], "title": "What helps on hard days", "body": "Share what helps you."},
        )
    ).json()
    post = (await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "A sharp reply to someone"})).json()
    return {"admin": admin, "moderator": moderator, "sam": sam, "topic": topic, "post": post}


async def signed_in(browser, base: str, member):
    """A browser page of its own, logged in as the member (their session cookie)."""
    context = await browser.new_context(bypass_csp=True)
    await context.add_cookies(
        [
            {"name": "tica_session", "value": member.session.id, "url": base},
            {"name": "tica_csrf", "value": member.session.csrf, "url": base},
        ]
    )
    return context, await context.new_page()


async def test_flag_auto_hide_review_restore(live_server, browser, world, member_factory):
    """Three flags hide a post; its author sees why; a moderator restores it from the queue in one click."""
    base, topic, post = live_server, world["topic"], world["post"]
    for name in ("bea", "cal"):
        member = await member_factory(name)
        response = await member.client.post(f"/api/posts/{post['id']}/flags", json={"reason": "inappropriate"})
        assert response.status_code == 201
    dee = await member_factory("dee")
    context, page = await signed_in(browser, base, dee)
    await page.goto(base + topic["url"])
    await page.get_by_role("link", name="Flag post 2 for a moderator").click()
    await expect(page.locator("h1")).to_contain_text("Flag post 2 for a moderator")
    assert await axe_violations(page) == []
    await page.get_by_label("Inappropriate").check()
    await page.get_by_role("button", name="Send to a moderator").click()
    await expect(page.locator("h1")).to_have_text("Thank you for flagging")
    await page.goto(base + topic["url"])
    await expect(page.locator("#post-2")).to_contain_text("This post was hidden by a moderator")
    await expect(page.locator("#post-2")).not_to_contain_text("A sharp reply")

    author_context, author_page = await signed_in(browser, base, world["sam"])
    await author_page.goto(base + topic["url"])
    await expect(author_page.locator("#post-2")).to_contain_text("Your post is hidden from other members for now")
    await expect(author_page.locator("#post-2")).to_contain_text("You can edit it to ask a moderator to look again")

    mod_context, mod_page = await signed_in(browser, base, world["moderator"])
    await mod_page.goto(base + "/review")
    await expect(mod_page.locator(".tica-review").first).to_contain_text("A sharp reply to someone")
    await expect(mod_page.locator(".tica-review").first).to_contain_text("Hidden automatically")
    assert await axe_violations(mod_page) == []
    await mod_page.get_by_role("button", name=re.compile(r"^Restore \(review item \d+\)$")).click()
    await expect(mod_page.locator("main")).to_contain_text("You restored a reply by Sam in")
    await expect(mod_page.locator("main")).to_contain_text("Nothing here is waiting")

    await page.goto(base + topic["url"])
    await expect(page.locator("#post-2")).to_contain_text("A sharp reply to someone")
    for ctx in (context, author_context, mod_context):
        await ctx.close()


async def test_safeguarding_support_panel_and_queue(live_server, browser, world):
    """A post matching a safeguarding phrase is published, its author sees the support panel first,
    and the item tops the queue, where a moderator acts with the keyboard."""
    base, topic = live_server, world["topic"]
    flagged = await world["admin"].client.post(f"/api/posts/{world['post']['id']}/flags", json={"reason": "spam"})
    assert flagged.status_code == 201
    context, page = await signed_in(browser, base, world["sam"])
    await page.goto(base + topic["url"])
    await page.get_by_label("Your reply").fill("Honestly some nights I feel I can't go on.")
    await page.get_by_role("button", name="Post reply").click()
    panel = page.locator("#support-panel")
    await expect(panel).to_be_visible()
    await expect(panel).to_contain_text("Samaritans")
    await expect(panel.get_by_role("link", name="Call 116 123")).to_have_attribute("href", "tel:116123")
    await expect(panel).to_contain_text("Text SHOUT to 85258")
    await expect(panel).to_contain_text("Call 111 and choose option 2")
    await expect(panel).to_contain_text("Call 999")
    await expect(page.locator("#post-3")).to_contain_text("can't go on")
    assert await axe_violations(page) == []

    mod_context, mod_page = await signed_in(browser, base, world["moderator"])
    await mod_page.goto(base + "/review")
    first = mod_page.locator(".tica-review").first
    await expect(first).to_contain_text("Safeguarding phrase")
    await expect(first.locator(".nhsuk-tag").first).to_have_text("Safeguarding")
    # A safeguarding item closes with what was done (moderation/safeguarding.py).
    await first.get_by_role("radio", name="Reached out to them").check()
    await first.get_by_label(re.compile("Note for the other staff")).fill("Checked in with them privately.")
    keep = first.get_by_role("button", name=re.compile(r"^Keep visible"))
    await keep.focus()
    await mod_page.keyboard.press("Enter")
    await expect(mod_page.locator("main")).to_contain_text("You kept a reply by Sam in")
    await expect(mod_page.locator(".tica-review").first).not_to_contain_text("Safeguarding phrase")
    await context.close()
    await mod_context.close()


@pytest.mark.parametrize(
    "path",
    [
        "/support",
        "/me/controls",
        "/admin/audit-log",
        "/admin/watched-words",
        "/admin/safeguarding",
        "/review/members/sam",
        "/u/sam/mute",
    ],
)
async def test_moderation_pages_have_no_serious_accessibility_violations(live_server, browser, world, path):
    context, page = await signed_in(browser, live_server, world["admin"])
    response = await page.goto(live_server + path)
    assert response is not None and response.status == 200
    assert await page.locator("h1").count() == 1
    assert await axe_violations(page) == []
    await context.close()
