"""The admin home in Chromium at desktop and phone widths: a moderator's tools and what waits for
them, an admin's fuller set, each card a link to its tool; axe, overflow and the console checked."""

from __future__ import annotations

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect


@pytest.fixture
async def people(member_factory):
    """A moderator, an admin, and a post flagged by a member (something waiting in the queue)."""
    admin = await member_factory("ada", roles=("member", "admin"))
    moderator = await member_factory("mo", roles=("member", "moderator"))
    sam = await member_factory("sam")
    category = (await admin.client.post("/api/categories", json={"name": "Lived experience"})).json()
    topic = (
        await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "Feeling safe", "body": "What helps?"}
        )
    ).json()
    post = (await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "A quiet room"})).json()
    bea = await member_factory("bea")
    assert (await bea.client.post(f"/api/posts/{post['id']}/flags", json={"reason": "spam"})).status_code == 201
    return {"admin": admin, "moderator": moderator}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_admin_home(live_server, browser, people, viewport):
    """A moderator sees their tools and the flagged post waiting, follows the queue's card; an admin sees more."""
    base = live_server
    context, page = await member_page(browser, base, people["moderator"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/admin")
    await expect(page.locator("h1")).to_have_text("Admin")
    await expect(page.locator("main")).to_contain_text("1 Flagged post")
    await expect(page.get_by_role("link", name="Settings")).to_have_count(0)
    await assert_page_sound(page, watch, "moderator's admin home")
    await page.get_by_role("link", name="Review queue").click()
    await expect(page).to_have_url(base + "/review")
    await context.close()

    context, page = await member_page(browser, base, people["admin"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/admin")
    for name in ("Settings", "Categories", "Watched words", "Members"):
        await expect(page.locator("main").get_by_role("link", name=name, exact=True)).to_be_visible()
    await assert_page_sound(page, watch, "admin's admin home")
    await context.close()
