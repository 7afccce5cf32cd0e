"""The safeguarding loop in Chromium, at 1280 and 390 px: a member writes that they want to end their life;
within 5 s a moderator's open page shows a new notification and the header's review count rises,
emphasised for safeguarding. The moderator opens the item, says "I'm looking at this", another moderator
is asked to confirm before taking it over, and closing it needs what was done. Every page: axe-core
(nothing serious or critical), nothing wider than the screen, a clean console."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect

from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE

CRISIS = "Some nights I still think I want to end my life"


@pytest.fixture
async def world(pool, member_factory):
    admin = await member_factory("ada", roles=("member", "admin"))
    moderator = await member_factory("mo", roles=("member", "moderator"))
    other = await member_factory("mira", roles=("member", "moderator"))
    sam = await member_factory("sam")
    category = (await admin.client.post("/api/categories", json={"name": "Peer support"})).json()
    topic = (
        await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": "Hard nights", "body": "How do you cope?"}
        )
    ).json()
    return {"admin": admin, "moderator": moderator, "other": other, "sam": sam, "topic": topic}


async def _post_as(base: str, member, topic_id: int, body: str) -> dict:
    """Post through the running tica, as the member would (their session and CSRF token)."""
    cookies = {SESSION_COOKIE: member.session.id, CSRF_COOKIE: member.session.csrf}
    async with httpx.AsyncClient(base_url=base, cookies=cookies, headers={CSRF_HEADER: member.session.csrf}) as http:
        response = await http.post(f"/api/topics/{topic_id}/posts", json={"body": body})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_a_safeguarding_post_reaches_a_moderators_open_page_and_is_picked_up(
    live_server, browser, world, pool, viewport
):
    base, topic = live_server, world["topic"]
    context, page = await member_page(browser, base, world["moderator"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/review")
    count = page.locator("#tica-review-count")
    await expect(count).to_be_hidden()
    await assert_page_sound(page, watch, "/review (nothing waiting)")

    started = time.monotonic()
    post = await _post_as(base, world["sam"], topic["id"], CRISIS)
    # Within 5 s, without reloading: the notification count and the header's review count.
    await expect(page.locator("#tica-notification-count")).to_be_visible(timeout=5_000)
    # (At phone width the Review link may sit behind "More": the badge is shown, not necessarily in view.)
    await page.wait_for_function("!document.getElementById('tica-review-count').hidden", timeout=5_000)
    await expect(count.locator("[data-review-count]")).to_have_text("1", timeout=5_000)
    await expect(count).to_have_class(re.compile(r"tica-review-count--safeguarding"))
    await expect(count.locator("[data-review-label]")).to_contain_text("1 waiting, 1 about safeguarding")
    assert time.monotonic() - started < 5, "the alert took longer than 5 s to reach the moderator's page"
    await assert_page_sound(page, watch, "/review (live count)")

    item_id = await pool.fetchval(
        "SELECT id FROM forum.reviewables WHERE post_id = $1 AND kind = 'safeguarding'", post["id"]
    )
    await page.goto(f"{base}/review/{item_id}")
    await expect(page.locator("h1")).to_have_text("Safeguarding")
    await expect(page.locator("main")).to_contain_text("Nobody has said they are looking at this yet")
    await assert_page_sound(page, watch, "/review/{id}")
    await page.get_by_role("button", name="I\u2019m looking at this").click()
    await expect(page.locator("main")).to_contain_text("You are looking at this")
    await assert_page_sound(page, watch, "/review/{id}?done=pick_up")

    other_context, other_page = await member_page(browser, base, world["other"], viewport)
    other_watch = watch_console(other_page, base)
    await other_page.goto(f"{base}/review/{item_id}")
    await expect(other_page.locator("main")).to_contain_text("Mo (@mo) is looking at this")
    await other_page.get_by_role("link", name="Take this over").click()
    await expect(other_page.locator("h1")).to_have_text("Take over this item?")
    await assert_page_sound(other_page, other_watch, "/review/{id}/pickup (confirm)")
    await other_page.get_by_role("button", name="Yes, take it over").click()
    await expect(other_page.locator("main")).to_contain_text("You have taken this item over")
    await assert_page_sound(other_page, other_watch, "/review/{id}?done=take_over")

    other_watch.expect_status(f"/review/{item_id}", 422)  # the item again, with what to fix
    await other_page.get_by_role("button", name="Keep visible").click()
    await expect(other_page.locator(".nhsuk-error-summary")).to_contain_text("What was done is needed")
    await assert_page_sound(other_page, other_watch, "/review/{id} (no outcome)")
    await other_page.get_by_role("radio", name="Reached out to them").check()
    await other_page.get_by_label("Note for the other staff").fill("Sent a private message with the support lines.")
    await other_page.get_by_role("button", name="Keep visible").click()
    await expect(other_page.locator("main")).to_contain_text("What was done: Reached out to them.")
    await assert_page_sound(other_page, other_watch, "/review/{id}?done=closed")
    await other_context.close()
    await context.close()
