"""Managing categories in Chromium at desktop and phone widths (issue 14, point 3): the admin list, the
form with every problem at once, Move up / Move down with the keyboard alone, archiving (and what
members then see), and the delete page offering archiving; axe, overflow and the console checked on
every page."""

from __future__ import annotations

import pytest
from browser_helpers import DESKTOP, PHONE, assert_page_sound, member_page, watch_console
from playwright.async_api import expect

ARCHIVED = "This category is archived: you can read it but not post in it."


@pytest.fixture
async def world(member_factory, numbered_groups):
    """An admin, a member, two categories (one with a topic and a subcategory) and a private one."""
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")

    async def category(**body):
        response = await admin.client.post("/api/categories", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    practice = await category(name="Practice", position=0)
    await category(name="Schools", parent_id=practice["id"])
    await category(name="Facilitators", group_ids=[2], position=1)
    stories = await category(name="Stories", position=2, default_kind="narrative")
    topic = (
        await admin.client.post(
            "/api/topics", json={"category_id": practice["id"], "title": "What helps on hard days", "body": "Hi"}
        )
    ).json()
    return {"admin": admin, "sam": sam, "practice": practice, "stories": stories, "topic": topic}


def rows(page):
    return page.locator("table").first.locator("tbody tr td:first-child a")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
async def test_admin_category_pages(live_server, browser, world, viewport):
    """The list, the form (errors then success), keyboard reordering, archiving and deleting, each page sound."""
    base = live_server
    context, page = await member_page(browser, base, world["admin"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/admin/categories")
    await expect(page.locator("h1")).to_have_text("Categories")
    await expect(rows(page)).to_have_text(["Practice", "Schools", "Facilitators", "Stories"])
    await expect(page.locator("main")).to_contain_text("Members of Group 2")
    await assert_page_sound(page, watch, "admin list")

    # Keyboard only: focus Move down for Practice, press Enter; the same button keeps the focus.
    move_down = page.get_by_role("button", name="Move down: Practice")
    await move_down.focus()
    await page.keyboard.press("Enter")
    await expect(rows(page)).to_have_text(["Facilitators", "Practice", "Schools", "Stories"])
    await expect(page.get_by_role("button", name="Move down: Practice")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(rows(page)).to_have_text(["Facilitators", "Stories", "Practice", "Schools"])
    await expect(page.get_by_role("button", name="Move up: Practice")).to_be_focused()  # last now
    await page.keyboard.press("Enter")
    await expect(rows(page)).to_have_text(["Facilitators", "Practice", "Schools", "Stories"])
    await assert_page_sound(page, watch, "admin list after moves")

    # The form: every problem at once, then fixed.
    await page.get_by_role("button", name="Create a category").click()
    await expect(page.locator("h1")).to_have_text("Create a category")
    await assert_page_sound(page, watch, "new category form")
    watch.expect_status("/admin/categories/new", 422)
    await page.get_by_label("Colour").fill("pinkish")
    await page.get_by_label("Parent category").select_option(label="Facilitators")  # private: no group ticked
    await page.get_by_role("button", name="Create category").click()
    summary = page.locator(".nhsuk-error-summary")
    await expect(summary.get_by_role("link")).to_have_count(3)
    await expect(summary).to_contain_text("Name is required")
    await expect(summary).to_contain_text("Colour must be six characters")
    await expect(summary).to_contain_text("Groups must be some of the groups of \u2018Facilitators\u2019")
    await expect(page.get_by_label("Colour")).to_have_value("pinkish")
    await assert_page_sound(page, watch, "new category form with errors")
    await page.get_by_label("Name", exact=True).fill("Peer support")
    await page.get_by_label("Colour").fill("ae2573")
    await page.get_by_label("Parent category").select_option(label="None: a top-level category")
    await page.get_by_label("Blog").check()
    await page.get_by_role("button", name="Create category").click()
    await expect(page.locator(".nhsuk-notification-banner")).to_contain_text("Peer support")
    await expect(rows(page)).to_contain_text(["Peer support"])

    # Editing shows the category as it is.
    await page.get_by_role("link", name="Edit Stories").click()
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Stories")
    await expect(page.get_by_label("Personal narrative")).to_be_checked()
    await assert_page_sound(page, watch, "edit form")

    # Archiving: the page says what it does; then members read but cannot post.
    await page.goto(base + "/admin/categories")
    await page.get_by_role("link", name="Archive Practice").click()
    await expect(page.locator("main")).to_contain_text("nobody can start a topic or reply in it")
    await expect(page.locator("main")).to_contain_text("Its subcategories are archived with it: Schools.")
    await assert_page_sound(page, watch, "archive page")
    await page.get_by_role("button", name="Archive this category").click()
    await expect(page.locator(".nhsuk-notification-banner")).to_contain_text("\u2018Practice\u2019 is archived")
    await expect(page.get_by_role("link", name="Bring back Practice")).to_be_visible()

    # The delete page of a category with topics explains and offers archiving.
    await page.goto(base + f"/admin/categories/{world['practice']['id']}/delete")
    await expect(page.locator("h1")).to_contain_text("cannot be deleted")
    await expect(page.locator("main")).to_contain_text("has topics: archive it instead")
    await assert_page_sound(page, watch, "delete page")
    await context.close()

    context, page = await member_page(browser, base, world["sam"], viewport)
    watch = watch_console(page, base)
    await page.goto(base + "/c/practice")
    await expect(page.locator("main")).to_contain_text(ARCHIVED)
    await expect(page.get_by_role("link", name="What helps on hard days")).to_be_visible()
    await assert_page_sound(page, watch, "archived category page")
    await page.get_by_role("link", name="What helps on hard days").click()
    await expect(page.locator("#reply")).to_contain_text(ARCHIVED)
    await expect(page.locator("#reply textarea")).to_have_count(0)
    await page.goto(base + "/categories")
    await expect(page.locator("main h2", has_text="Archived")).to_be_visible()
    await assert_page_sound(page, watch, "categories list")
    await page.goto(base + f"/new-topic?category={world['stories']['id']}")
    await expect(page.get_by_label("Category")).to_have_value(str(world["stories"]["id"]))
    await expect(page.get_by_label("Personal narrative")).to_be_checked()
    await expect(page.locator("#category_id option", has_text="Practice")).to_have_count(0)
    await assert_page_sound(page, watch, "new topic form")
    await context.close()
