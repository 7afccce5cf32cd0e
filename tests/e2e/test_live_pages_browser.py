"""Live updates on the forum's own pages in Chromium: a reply written elsewhere appears on an
open topic page, and a new topic is announced on the home page, without a reload."""

import re

from playwright.async_api import expect


async def _topic(member, pool) -> dict:
    category = await pool.fetchval(
        "INSERT INTO forum.categories (name, slug) VALUES ('Practice', 'practice') RETURNING id"
    )
    response = await member.client.post(
        "/api/topics",
        json={"category_id": category, "title": "Handovers that feel safe", "body": "What works on your ward?"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_reply_appears_on_an_open_topic_page(live_server, page, member_factory, pool):
    """A reader with the topic open sees a reply posted by someone else appear in place."""
    writer = await member_factory("writer")
    topic = await _topic(writer, pool)
    await page.goto(live_server + topic["url"])
    await expect(page.locator("[data-live-posts]")).to_have_attribute("data-live-channel", f"topic:{topic['id']}")
    await page.wait_for_timeout(1500)  # the socket subscribes after the page loads
    reply = await writer.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "A quiet handover room."})
    assert reply.status_code == 201, reply.text
    await expect(page.locator("#post-2")).to_contain_text("A quiet handover room.", timeout=15000)


async def test_new_topics_are_announced_on_the_home_page(live_server, page, member_factory, pool):
    """The home page says a new topic arrived, with a link to show it."""
    writer = await member_factory("starter")
    await _topic(writer, pool)
    await page.goto(live_server + "/")
    await page.wait_for_timeout(1500)
    category = await pool.fetchval("SELECT id FROM forum.categories LIMIT 1")
    response = await writer.client.post(
        "/api/topics",
        json={
            "category_id": category,
            "title": "Supervision after a hard shift",
            "body": "How do you make room for it?",
        },
    )
    assert response.status_code == 201
    await expect(page.get_by_text(re.compile("1 new topic"))).to_be_visible(timeout=15000)
