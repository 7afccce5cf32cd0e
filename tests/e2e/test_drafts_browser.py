"""Drafts and the live script after a rejected post, in Chromium against the whole product:
what a member types is kept in their browser (per member and form) until it is posted, a rejected
reply leaves the page at the topic's own address, and the live script keeps working there
(issue 13, point 3)."""

from __future__ import annotations

import re

import pytest
from browser_helpers import AXE
from playwright.async_api import expect

WIDTHS = ({"width": 1280, "height": 900}, {"width": 390, "height": 844})


@pytest.fixture
async def topic(pool, member_factory) -> dict:
    category = await pool.fetchval(
        "INSERT INTO forum.categories (name, slug) VALUES ('Practice', 'practice') RETURNING id"
    )
    starter = await member_factory("starter")
    response = await starter.client.post(
        "/api/topics",
        json={"category_id": category, "title": "Handovers that feel safe", "body": "What works on your ward?"},
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "category_id": category, "starter": starter}


async def _sign_in(page, base: str, member) -> None:
    await page.context.add_cookies(
        [
            {"name": "tica_session", "value": member.session.id, "url": base},
            {"name": "tica_csrf", "value": member.session.csrf, "url": base},
        ]
    )


async def _accessible_at_both_widths(page) -> None:
    """axe-core finds no serious or critical violation at a desktop's and a phone's width, outside
    the page header (the shared header at 390 px is the page shell's, checked by its own tests)."""
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


async def _stored(page) -> dict[str, str]:
    return await page.evaluate(
        "() => Object.fromEntries(Object.keys(localStorage).filter(k => k.startsWith('tica:draft:'))"
        ".map(k => [k, localStorage.getItem(k)]))"
    )


async def _post_count(pool, topic_id: int) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM forum.posts WHERE topic_id = $1", topic_id))


async def test_live_updates_and_the_draft_survive_a_rejected_reply(live_server, page, member_factory, topic, pool):
    """After an empty reply is refused, a reply by someone else still appears in place (the live
    script fetches the topic's own address, not the form's), what the member then types stays, and
    reloading asks for the topic page again rather than posting the refused form once more."""
    reader = await member_factory("reader")
    await _sign_in(page, live_server, reader)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status == 404 else None)
    await page.goto(live_server + topic["url"])
    await page.get_by_role("button", name="Post reply").click()
    await expect(page.locator(".nhsuk-error-summary")).to_be_visible()
    assert not page.url.endswith("/posts"), page.url
    assert page.url.startswith(live_server + topic["url"])
    await page.get_by_label("Your reply").fill("Half a thought about quiet rooms")
    await page.wait_for_timeout(1500)  # the socket subscribes after the page loads
    other = await topic["starter"].client.post(
        f"/api/topics/{topic['id']}/posts", json={"body": "A quiet handover room helps."}
    )
    assert other.status_code == 201, other.text
    await expect(page.locator("#post-2")).to_contain_text("A quiet handover room helps.", timeout=15000)
    await expect(page.get_by_text("This topic has changed")).to_have_count(0)
    await expect(page.get_by_label("Your reply")).to_have_value("Half a thought about quiet rooms")
    await page.wait_for_timeout(500)  # saved a moment after typing
    await page.reload()
    await expect(page.get_by_label("Your reply")).to_have_value("Half a thought about quiet rooms")
    assert await _post_count(pool, topic["id"]) == 2  # the refused form was not sent again
    assert failed == []


async def test_a_reply_draft_is_restored_after_reload_and_forgotten_after_posting(
    live_server, page, member_factory, topic, pool
):
    """A reply typed and not sent is back after a reload (with a way to discard it), and gone once posted."""
    writer = await member_factory("writer")
    await _sign_in(page, live_server, writer)
    await page.goto(live_server + topic["url"])
    await page.get_by_label("Your reply").fill("Something I want to get right")
    await page.get_by_label("Content note (optional)").fill("loss")
    await page.wait_for_timeout(500)
    await page.reload()
    await expect(page.get_by_label("Your reply")).to_have_value("Something I want to get right")
    await expect(page.get_by_label("Content note (optional)")).to_have_value("loss")
    await expect(page.get_by_text("We kept what you were writing here before.")).to_be_visible()
    await _accessible_at_both_widths(page)
    assert list(await _stored(page)) == [f"tica:draft:{writer.id}:reply-{topic['id']}"]
    await page.get_by_role("button", name="Post reply").click()
    await expect(page.locator("#post-2")).to_contain_text("Something I want to get right")
    assert await _stored(page) == {}
    await page.goto(live_server + topic["url"])
    await expect(page.get_by_label("Your reply")).to_have_value("")


async def test_drafts_belong_to_one_member_and_go_at_logout(live_server, page, member_factory, topic):
    """Another member on the same browser never sees a draft; logging out forgets the member's drafts."""
    first, second = await member_factory("first"), await member_factory("second")
    await _sign_in(page, live_server, first)
    await page.goto(live_server + topic["url"])
    await page.get_by_label("Your reply").fill("Only mine")
    await page.wait_for_timeout(500)
    await _sign_in(page, live_server, second)
    await page.goto(live_server + topic["url"])
    await expect(page.get_by_label("Your reply")).to_have_value("")
    await _sign_in(page, live_server, first)
    await page.goto(live_server + topic["url"])
    await expect(page.get_by_label("Your reply")).to_have_value("Only mine")
    await page.goto(live_server + "/categories")  # logging out from a page with no draft form of its own
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_load_state("load")
    assert not any(key.startswith(f"tica:draft:{first.id}:") for key in await _stored(page))


async def test_new_topic_and_edit_forms_keep_their_drafts(live_server, page, member_factory, topic, pool):
    """The new-topic form keeps its draft through a reload and a refusal (reloading the refused page
    posts nothing), and forgets it once the topic is started; an edit's draft comes back over the
    post's text, and "Discard it" puts the post's text back."""
    author = await member_factory("author")
    await _sign_in(page, live_server, author)
    await page.goto(live_server + "/new-topic")
    await page.get_by_label("Title").fill("Supervision after a hard shift")
    await page.get_by_label("Your post").fill("How do you make room for it?")
    await page.wait_for_timeout(500)
    await page.reload()
    await expect(page.get_by_label("Title")).to_have_value("Supervision after a hard shift")
    await page.get_by_role("button", name="Start topic").click()  # no category chosen: refused
    await expect(page.locator(".nhsuk-error-summary")).to_be_visible()
    await page.reload()
    await expect(page.locator(".nhsuk-error-summary")).to_have_count(0)  # a fresh form, not a repost
    await expect(page.get_by_label("Your post")).to_have_value("How do you make room for it?")
    await _accessible_at_both_widths(page)
    await page.get_by_label("Category").select_option(str(topic["category_id"]))
    await page.get_by_role("button", name="Start topic").click()
    await expect(page.locator("h1")).to_contain_text("Supervision after a hard shift")
    assert await _stored(page) == {}

    post_id = await pool.fetchval(
        "SELECT p.id FROM forum.posts p JOIN forum.topics t ON t.id = p.topic_id "
        "WHERE t.title = 'Supervision after a hard shift' AND p.post_number = 1"
    )
    await page.goto(f"{live_server}/posts/{post_id}/edit")
    await page.get_by_label("Your post").fill("How do you make room for it, week after week?")
    await page.wait_for_timeout(500)
    await page.goto(f"{live_server}/posts/{post_id}/edit")
    await expect(page.get_by_label("Your post")).to_have_value("How do you make room for it, week after week?")
    await _accessible_at_both_widths(page)
    await page.get_by_role("button", name="Discard it").click()
    await expect(page.get_by_label("Your post")).to_have_value("How do you make room for it?")
    assert await _stored(page) == {}
    await page.get_by_label("Your post").fill("Edited: how do you make room for it?")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("#post-1")).to_contain_text(re.compile("Edited: how do you make room"))
    assert await _stored(page) == {}
