"""The document library in Chromium: share a file through the upload form, preview it,
comment on it and react, with axe-core on the library's pages."""

from __future__ import annotations

import re

import httpx
import pytest
from browser_helpers import axe_violations
from playwright.async_api import expect

from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SessionStore

NOTES = "Reflective practice prompts\n\n1. What went well, and why?\n2. <b>Not bold</b> & not markup.\n"


async def member(pool, redis, settings, username: str, roles: list[str]):
    """A verified member and a session for them."""
    user_id = await pool.fetchval(
        "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at) "
        "VALUES ($1, $2, 'no-login', $3, $4, now()) RETURNING id",
        username,
        f"{username}@example.org",
        username.title(),
        roles,
    )
    return await SessionStore(redis, settings.redis_prefix).create(
        user_id=user_id, username=username, roles=roles, group_ids=[]
    )


@pytest.fixture
async def folder_id(live_server, pool, redis, settings) -> int:
    """A folder made by an admin through the API of the running server."""
    admin = await member(pool, redis, settings, "ada", ["admin"])
    async with httpx.AsyncClient(
        base_url=live_server,
        cookies={SESSION_COOKIE: admin.id, CSRF_COOKIE: admin.csrf},
        headers={CSRF_HEADER: admin.csrf},
    ) as client:
        response = await client.post(
            "/api/folders", json={"name": "Tools and templates", "description": "Checklists and guides"}
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_upload_preview_and_comment(live_server, page, pool, redis, settings, folder_id):
    """A member shares a text file with the form, previews it (escaped), comments and reacts."""
    session = await member(pool, redis, settings, "bea", ["member"])
    await page.context.add_cookies([{"name": SESSION_COOKIE, "value": session.id, "url": live_server}])

    await page.goto(live_server + "/library")
    await expect(page.locator("h1")).to_have_text("Document library")
    assert await axe_violations(page) == []
    await page.get_by_role("link", name="Tools and templates").click()
    await page.get_by_role("link", name="Share a document in this folder").click()
    await expect(page.get_by_label("Folder")).to_have_value(str(folder_id))
    assert await axe_violations(page) == []

    await page.get_by_label("File").set_input_files(
        {"name": "executable.pdf", "mimeType": "application/pdf", "buffer": b"\x7fELF\x02\x01\x01" + b"\x00" * 100}
    )
    await page.get_by_role("button", name="Upload and share").click()
    await expect(page.locator(".nhsuk-error-summary")).to_contain_text("program")
    assert await axe_violations(page) == []

    await page.get_by_label("File").set_input_files(
        {"name": "prompts.txt", "mimeType": "text/plain", "buffer": NOTES.encode()}
    )
    await page.get_by_label("Title (optional)").fill("Reflective practice prompts")
    await page.get_by_label("Description (optional)").fill("Questions to start a session.")
    await page.get_by_role("button", name="Upload and share").click()
    await expect(page.locator("h1")).to_have_text("Reflective practice prompts")
    await expect(page.locator(".nhsuk-notification-banner")).to_contain_text("Thank you for sharing it")
    document_url = page.url.split("?")[0]
    assert await axe_violations(page) == []

    await page.get_by_role("link", name=re.compile("^Preview")).click()
    await expect(page.locator("pre.tica-text-preview")).to_contain_text("<b>Not bold</b> & not markup.")
    assert await page.locator("pre.tica-text-preview b").count() == 0
    assert await axe_violations(page) == []

    await page.goto(document_url)
    await expect(page.locator("main")).to_contain_text("1 (by 1 member)")
    await page.get_by_label("Your comment").fill("These are **really** helpful, thank you.")
    await page.get_by_role("button", name="Post comment").click()
    comment = page.locator(".tica-comments li").first
    await expect(comment.locator("strong")).to_have_text("really")
    await comment.get_by_role("button", name=re.compile("Thank you")).click()
    await expect(page.locator(".tica-comments li").first.locator("button[aria-pressed=true]")).to_have_count(1)
    assert await axe_violations(page) == []

    async with httpx.AsyncClient(base_url=live_server) as anonymous:
        download = await anonymous.get(document_url.replace(live_server, "") + "/download")
    assert download.status_code == 200 and download.text == NOTES
    assert download.headers["content-disposition"].startswith('attachment; filename="prompts.txt"')


async def test_group_and_directory_pages_pass_axe(live_server, page, pool, redis, settings):
    """A group's page with the owners' tools, the groups list and the member directory: no serious axe findings."""
    admin = await member(pool, redis, settings, "ada", ["admin"])
    await page.context.add_cookies([{"name": SESSION_COOKIE, "value": admin.id, "url": live_server}])
    await page.goto(live_server + "/groups/new")
    await page.get_by_label("Name").fill("Core Action Group")
    await page.get_by_label("On request: an owner approves each request to join").check()
    await page.get_by_role("button", name="Create group").click()
    await expect(page.locator("h1")).to_have_text("Core Action Group")
    await expect(page.locator(".nhsuk-notification-banner")).to_contain_text("The group was created")
    await page.get_by_label("Their username").fill("ada")
    await page.get_by_label("Make them an owner too").check()
    await page.get_by_role("button", name="Add member").click()
    await expect(page.locator("#members")).to_contain_text("Ada")
    assert await axe_violations(page) == []
    await page.goto(live_server + "/groups")
    assert await axe_violations(page) == []
    await page.goto(live_server + "/members?q=ada")
    await expect(page.locator(".tica-member-list")).to_contain_text("Ada")
    assert await axe_violations(page) == []
