"""A newcomer's first visit in Chromium: register, verify by mail, log in, start a
topic, reply, quote, edit, react, log out; and axe-core on the main pages."""

import re

import pytest
from browser_helpers import axe_violations
from playwright.async_api import expect

PASSWORD = "a calm river at dawn"


@pytest.fixture
async def category(pool):
    return await pool.fetchval(
        "INSERT INTO forum.categories (name, slug, description) VALUES ('Lived experience', 'lived-experience', "
        "'Sharing what helped') RETURNING id"
    )


async def _verification_link(page, base: str) -> str:
    for _ in range(50):
        await page.goto(base + "/dev/mail")
        link = page.get_by_role("link", name=re.compile("confirm|verify", re.I))
        if await link.count():
            await link.first.click()
            href = await page.locator("pre a").first.get_attribute("href")
            assert href and "/verify?token=" in href
            return href
        await page.wait_for_timeout(200)
    raise AssertionError("no verification mail arrived at /dev/mail")


async def test_newcomer_journey(live_server, page, category):
    """Register, verify by mail, log in, create a topic, reply, quote, edit, react and log out."""
    base = live_server
    await page.goto(base + "/register")
    await page.get_by_label("Username").fill("river")
    await page.get_by_label("Email address").fill("river@example.org")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator("h1")).to_be_visible()

    await page.goto(await _verification_link(page, base))
    await expect(page.locator("main")).to_contain_text(re.compile("confirmed|verified", re.I))

    await page.goto(base + "/login")
    await page.get_by_label("Username or email address").fill("river")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("link", name="river")).to_be_visible()

    await page.goto(base + "/new-topic")
    await page.get_by_label("Category").select_option(str(category))
    await page.get_by_label("Title").fill("What helped you feel safe at work?")
    await page.get_by_label("Your post").fill("Small things mattered: a **quiet room** and a colleague who listened.")
    await page.get_by_role("button", name="Start topic").click()
    await expect(page.locator("h1")).to_contain_text("What helped you feel safe at work?")
    topic_url = page.url

    await page.get_by_label("Your reply").fill("Thank you for sharing this, @river.")
    await page.get_by_role("button", name="Post reply").click()
    await expect(page.locator("#post-2")).to_contain_text("Thank you for sharing this")

    await page.goto(topic_url)
    await page.get_by_role("link", name="Quote post 1").click()
    await expect(page.get_by_label("Your reply")).to_have_value(re.compile(r'^\[quote="river, post:\d+, topic:\d+"\]'))
    await page.get_by_label("Your reply").press("End")
    await page.get_by_label("Your reply").type("\n\nThe quiet room idea is one we use too.")
    await page.get_by_role("button", name="Post reply").click()
    await expect(page.locator("#post-3 aside.quote")).to_contain_text("river said:")

    await page.goto(topic_url)
    await page.get_by_role("link", name="Edit post 2").click()
    await page.get_by_label("Your post").fill("Thank you for sharing this, @river. It helped me too.")
    await page.get_by_label("Reason for the change (optional)").fill("added a thought")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("#post-2")).to_contain_text("It helped me too.")

    like = page.locator("#post-1 button.tica-reaction").first
    await like.click()
    await expect(page.locator("#post-1 .tica-reaction__count").first).to_have_text("1")
    await page.reload()
    await expect(page.locator("#post-1 .tica-reaction__count").first).to_have_text("1")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("navigation", name="Account").get_by_role("link", name="Log in")).to_be_visible()


@pytest.mark.parametrize("path", ["/", "/login", "/register"])
async def test_public_pages_have_no_serious_accessibility_violations(live_server, page, category, path):
    """axe-core finds no serious or critical violations on the home, login and register pages."""
    await page.goto(live_server + path)
    assert await axe_violations(page) == []


async def test_member_pages_have_no_serious_accessibility_violations(live_server, page, category, member_factory, pool):
    """axe-core finds no serious or critical violations on the new-topic and topic pages."""
    member = await member_factory("aster")
    await page.context.add_cookies(
        [
            {"name": "tica_session", "value": member.session.id, "url": live_server},
            {"name": "tica_csrf", "value": member.session.csrf, "url": live_server},
        ]
    )
    await page.goto(live_server + "/new-topic")
    assert await axe_violations(page) == []
    await page.get_by_label("Category").select_option(str(category))
    await page.get_by_label("Title").fill("Content notes on a topic page")
    await page.get_by_label("Your post").fill("A post with a [link](https://example.org) and a list:\n\n- one\n- two")
    await page.get_by_label("Content note (optional)").fill("loss")
    await page.get_by_role("button", name="Start topic").click()
    await expect(page.locator("h1")).to_contain_text("Content notes on a topic page")
    assert await axe_violations(page) == []
