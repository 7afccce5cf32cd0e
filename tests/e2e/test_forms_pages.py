"""The pages of issue 13's points 9 and 10 in Chromium at desktop and phone widths, each checked with
axe-core: the review queue's confirmation and the audit log in words, a member's moderation page,
registration with every error in the summary, the upload form asking for the file again, notifications
and the webinar pages."""

from __future__ import annotations

import re

import pytest
from browser_helpers import DESKTOP, PHONE, axe_summary, axe_violations
from playwright.async_api import expect
from test_webinars import schedule

TOPIC = "What helped me feel safe in A&E"


@pytest.fixture
async def world(pool, member_factory):
    admin = await member_factory("ada", roles=("member", "admin"))
    moderator = await member_factory("mo", roles=("member", "moderator"))
    sam = await member_factory("sam")
    category = (await admin.client.post("/api/categories", json={"name": "Lived experience"})).json()
    topic = (
        await admin.client.post(
            "/api/topics", json={"category_id": category["id"], "title": TOPIC, "body": "What helped you?"}
        )
    ).json()
    post = (await sam.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "A quiet room helped"})).json()
    flagged = await (await member_factory("bea")).client.post(
        f"/api/posts/{post['id']}/flags", json={"reason": "inappropriate"}
    )
    assert flagged.status_code == 201
    folder = await pool.fetchval("INSERT INTO forum.folders (name) VALUES ('Guides') RETURNING id")
    return {"admin": admin, "moderator": moderator, "sam": sam, "post": post, "folder": folder}


async def as_member(browser, base: str, member, viewport):
    context = await browser.new_context(bypass_csp=True, viewport=viewport)
    if member is not None:
        await context.add_cookies(
            [
                {"name": "tica_session", "value": member.session.id, "url": base},
                {"name": "tica_csrf", "value": member.session.csrf, "url": base},
            ]
        )
    return context, await context.new_page()


async def assert_accessible(page) -> None:
    violations = await axe_violations(page)
    assert violations == [], axe_summary(violations)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_moderation_pages_in_words(live_server, browser, world, viewport):
    """ "Keep visible" confirms what happened in words; the audit log and the member page say it too."""
    base = live_server
    context, page = await as_member(browser, base, world["moderator"], viewport)
    await page.goto(base + "/review")
    await page.get_by_role("button", name=re.compile(r"^Keep visible")).click()
    inset = page.locator(".nhsuk-inset-text")
    await expect(inset).to_contain_text(f"You kept a reply by Sam in \u2018{TOPIC}\u2019 visible.")
    reply_link = inset.get_by_role("link", name="a reply by Sam")
    await expect(reply_link).to_have_attribute("href", f"/p/{world['post']['id']}")
    await assert_accessible(page)
    await page.goto(base + "/review/members/sam")
    await expect(page.locator("main")).to_contain_text(f"Mo kept a reply by Sam in \u2018{TOPIC}\u2019 visible.")
    await assert_accessible(page)
    await context.close()

    context, page = await as_member(browser, base, world["admin"], viewport)
    await page.goto(base + "/admin/audit-log")
    await expect(page.locator("table")).to_contain_text(f"Mo kept a reply by Sam in \u2018{TOPIC}\u2019 visible.")
    await expect(page.locator("table")).not_to_contain_text("review.approve")
    await assert_accessible(page)
    await context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_forms_show_every_problem(live_server, browser, world, viewport):
    """Registration lists every problem in the error summary, each linking to its field; the upload form
    asks for the file again beside the field and in the summary."""
    base = live_server
    context, page = await as_member(browser, base, None, viewport)
    await page.goto(base + "/register")
    await page.get_by_label("Username").fill("sam")
    await page.get_by_label("Email address").fill("not-an-email")
    await page.get_by_label("Password", exact=True).fill("short")
    await page.get_by_role("button", name="Create account").click()
    summary = page.locator(".nhsuk-error-summary")
    await expect(summary.get_by_role("link")).to_have_count(3)
    for field in ("username", "email", "password"):
        await expect(summary.locator(f'a[href="#{field}"]')).to_have_count(1)
        await expect(page.locator(f"#{field}-error")).to_be_visible()
    await assert_accessible(page)
    await context.close()

    context, page = await as_member(browser, base, world["sam"], viewport)
    await page.goto(base + f"/library/upload?folder={world['folder']}")
    await page.locator("#file").set_input_files(
        {"name": "grounding.txt", "mimeType": "text/plain", "buffer": b"Breathe in for four."}
    )
    await page.get_by_label("Title (optional)").fill("x" * 500)
    await page.get_by_role("button", name="Upload and share").click()
    await expect(page.locator("#file-error")).to_contain_text("Choose your file again")
    await expect(page.locator(".nhsuk-error-summary a[href='#file']")).to_contain_text("grounding.txt")
    await assert_accessible(page)
    await context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_notifications_and_webinars_read_right(live_server, browser, world, pool, viewport):
    """Notifications say "just now"; the webinar pages keep their spaces."""
    base = live_server
    await pool.execute(
        "INSERT INTO notify.notifications (user_id, kind, dedupe_key, post_number, actor_id, data) "
        "VALUES ($1, 'replied', 'k1', 2, $2, '{}')",
        world["sam"].id,
        world["admin"].id,
    )
    webinar = await schedule(world["admin"])
    context, page = await as_member(browser, base, world["sam"], viewport)
    await page.goto(base + "/notifications")
    await expect(page.locator("main time").first).to_have_text("just now")
    await expect(page.locator("main")).to_contain_text("Show unread only")
    await assert_accessible(page)
    await page.goto(base + "/webinars")
    await expect(page.locator("main")).to_contain_text("Past webinars, with recordings \u00b7 Subscribe")
    await assert_accessible(page)
    await page.goto(base + f"/webinars/{webinar['id']}")
    await expect(page.locator("main")).to_contain_text("Mind Expert by experience")
    await assert_accessible(page)
    await context.close()
