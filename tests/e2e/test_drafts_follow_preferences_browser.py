"""The preferences page's two follow choices in Chromium (issue 13, point 11): a member chooses how
closely they follow topics they start and reply to, the choice is kept, and axe-core finds no
serious or critical violation at 1280 and 390 px (outside the shared header, the page shell's)."""

from __future__ import annotations

from browser_helpers import AXE
from playwright.async_api import expect

WIDTHS = ({"width": 1280, "height": 900}, {"width": 390, "height": 844})


async def test_a_member_chooses_to_watch_the_topics_they_reply_to(live_server, page, member_factory, pool):
    member = await member_factory("rowan")
    await page.context.add_cookies(
        [
            {"name": "tica_session", "value": member.session.id, "url": live_server},
            {"name": "tica_csrf", "value": member.session.csrf, "url": live_server},
        ]
    )
    await page.goto(live_server + "/preferences")
    replies = page.get_by_role("group", name="Topics you reply to")
    await expect(replies.get_by_label("Track it", exact=False)).to_be_checked()
    await expect(
        page.get_by_role("group", name="Topics you start").get_by_label("Watch it", exact=False)
    ).to_be_checked()
    await replies.get_by_label("Watch it", exact=False).check()
    await page.get_by_role("button", name="Save preferences").click()
    await expect(page.get_by_text("Your preferences are saved.")).to_be_visible()
    await expect(
        page.get_by_role("group", name="Topics you reply to").get_by_label("Watch it", exact=False)
    ).to_be_checked()
    assert (
        await pool.fetchval("SELECT watch_on_reply FROM notify.preferences WHERE user_id = $1", member.id) == "watching"
    )
    await page.add_script_tag(path=str(AXE))
    for size in WIDTHS:
        await page.set_viewport_size(size)
        result = await page.evaluate(
            "async () => await axe.run({exclude: [['header.nhsuk-header']]}, {resultTypes: ['violations']})"
        )
        found = [
            (v["id"], [n["target"] for n in v["nodes"]])
            for v in result["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        assert found == [], (size, found)
