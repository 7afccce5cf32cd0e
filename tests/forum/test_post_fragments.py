"""The topic page's post markup cache (fragments.post_fragment): one viewer's state never shows to
another, and every change shows on the next request."""

from __future__ import annotations

import re

import pytest

from services.forum.topics.fragments import CSRF_SLOT

pytestmark = pytest.mark.usefixtures("numbered_groups")


@pytest.fixture
async def admin(member_factory):
    return await member_factory("ada", roles=("member", "admin"))


@pytest.fixture
async def category(admin):
    response = await admin.client.post(
        "/api/categories", json={"name": "Support", "colour": "005eb8", "description": "Ask and offer"}
    )
    return response.json()


async def start(member, category_id, body="Feeling steadier this week."):
    response = await member.client.post(
        "/api/topics", json={"category_id": category_id, "title": "A steadier week", "body": body}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def page(member, topic):
    response = await member.client.get(topic["url"])
    assert response.status_code == 200
    assert CSRF_SLOT not in response.text
    return response.text


def button(html, kind):
    found = re.search(rf'<button [^>]*value="{kind}"[^>]*>', html)
    assert found, kind
    return found.group(0)


def csrf_values(html):
    return set(re.findall(r'name="csrf_token" value="([^"]*)"', html))


async def test_reaction_state_is_per_viewer(admin, category, member_factory):
    """Member A's reaction shows pressed to A only; B (cached before and after) sees the count, not pressed."""
    alex, bo = await member_factory("alex"), await member_factory("bo")
    topic = await start(admin, category["id"])
    before = await page(bo, topic)  # fills the cache for a plain member
    assert 'aria-pressed="false"' in button(before, "hug")
    reacted = await alex.client.post(f"/api/posts/{topic['first_post']['id']}/reactions", json={"kind": "hug"})
    assert reacted.status_code in (200, 201), reacted.text
    mine = await page(alex, topic)
    assert 'aria-pressed="true"' in button(mine, "hug") and "tica-reaction--given" in button(mine, "hug")
    theirs = await page(bo, topic)
    assert 'aria-pressed="false"' in button(theirs, "hug") and "tica-reaction--given" not in button(theirs, "hug")
    assert re.search(r'value="hug"[^>]*>.*?tica-reaction__count">1<', theirs, re.S)  # the new count, at once


async def test_csrf_tokens_are_each_viewers_own(admin, category, member_factory):
    """Forms inside posts carry the viewer's own token, never one cached for someone else."""
    alex, bo = await member_factory("alex"), await member_factory("bo")
    topic = await start(admin, category["id"])
    assert csrf_values(await page(alex, topic)) == {alex.session.csrf}
    assert csrf_values(await page(bo, topic)) == {bo.session.csrf}
    assert csrf_values(await page(alex, topic)) == {alex.session.csrf}


async def test_edit_link_for_author_only(admin, category, member_factory):
    """The author sees Edit on their reply; another member (same cache) sees Flag instead."""
    alex, bo = await member_factory("alex"), await member_factory("bo")
    topic = await start(admin, category["id"])
    reply = await alex.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "Glad to hear it."})
    post_id = reply.json()["id"]
    for _ in range(2):  # the second time from the cache
        assert f'href="/posts/{post_id}/edit"' in await page(alex, topic)
        theirs = await page(bo, topic)
        assert f'href="/posts/{post_id}/edit"' not in theirs and f'href="/posts/{post_id}/flag"' in theirs


async def test_edit_shows_on_next_request(admin, category, member_factory):
    """An edit changes the post's markup on the very next view."""
    bo = await member_factory("bo")
    topic = await start(admin, category["id"])
    assert "Feeling steadier" in await page(bo, topic)
    edited = await admin.client.patch(
        f"/api/posts/{topic['first_post']['id']}", json={"body": "Much calmer now, thank you."}
    )
    assert edited.status_code == 200, edited.text
    html = await page(bo, topic)
    assert "Much calmer now" in html and "Feeling steadier" not in html
    assert f'href="/posts/{topic["first_post"]["id"]}/revisions"' in html


async def test_hidden_text_never_reaches_members(admin, category, member_factory):
    """A hidden reply, cached as staff see it (text, reason, Restore), is a placeholder for members."""
    alex, bo = await member_factory("alex"), await member_factory("bo")
    topic = await start(admin, category["id"])
    reply = await alex.client.post(f"/api/topics/{topic['id']}/posts", json={"body": "Unkind words here."})
    post_id = reply.json()["id"]
    hidden = await admin.client.post(f"/api/posts/{post_id}/hide", json={"reason": "Please keep it kind"})
    assert hidden.status_code == 200, hidden.text
    for _ in range(2):
        staff = await page(admin, topic)
        assert "Unkind words here." in staff and f'href="/posts/{post_id}/moderate"' in staff
        member = await page(bo, topic)
        assert "Unkind words here." not in member and "Please keep it kind" not in member
        assert "This post was hidden by a moderator." in member
        assert f'href="/posts/{post_id}/moderate"' not in member
        own = await page(alex, topic)
        assert "Unkind words here." in own and "Your post is" in own and "Please keep it kind" in own
    restored = await admin.client.post(f"/api/posts/{post_id}/restore", json={})
    assert restored.status_code == 200, restored.text
    assert "Unkind words here." in await page(bo, topic)
