"""Document comments get the same flags and moderation as posts: a flag puts the comment in
the review queue, enough flags hide it, and moderators hide, restore, delete or ignore it
through the same endpoint, race-safely and in the audit log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from library_helpers import make_folder, outbox, shared_document
from moderation_helpers import audit_actions, new_category, new_topic, settings_changed
from moderation_helpers import flag as flag_post

SECRET = "Here is my unkind comment about someone"


@dataclass
class Commented:
    document: dict[str, Any]
    comment: dict[str, Any]
    author: Any


async def commented(admin: Any, member_factory: Any) -> Commented:
    """A shared document with one member's comment on it."""
    author = await member_factory("cal")
    folder = await make_folder(admin, "Reports")
    document = await shared_document(author, folder["id"])
    response = await author.client.post(f"/api/documents/{document['id']}/comments", json={"body": SECRET})
    assert response.status_code == 201, response.text
    return Commented(document, response.json(), author)


async def flag(member: Any, comment_id: int, reason: str = "inappropriate") -> Any:
    return await member.client.post(f"/api/document-comments/{comment_id}/flags", json={"reason": reason})


async def comment_items(moderator: Any, status: str = "pending") -> list[dict[str, Any]]:
    response = await moderator.client.get(f"/api/review?kind=flagged_comment&status={status}")
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def comment_status(pool: Any, comment_id: int) -> str:
    return await pool.fetchval("SELECT status FROM forum.document_comments WHERE id = $1", comment_id)


async def test_a_flag_opens_a_reviewable(admin, moderator, member_factory, pool):
    c = await commented(admin, member_factory)
    assert (await flag(await member_factory(), c.comment["id"])).status_code == 201
    [item] = await comment_items(moderator)
    assert item["kind"] == "flagged_comment" and item["comment"]["id"] == c.comment["id"]
    assert item["score"] == 1 and item["actions"] == ["hide", "delete", "ignore"]
    assert item["comment"]["raw"] == SECRET and item["document"]["url"] == f"/library/documents/{c.document['id']}"
    assert [f["reason"] for f in item["flags"]] == ["inappropriate"]
    assert await comment_status(pool, c.comment["id"]) == "visible"
    page = await moderator.client.get("/review")
    assert page.status_code == 200 and "a comment on" in page.text and SECRET in page.text
    assert f"/library/documents/{c.document['id']}#comment-{c.comment['id']}" in page.text


async def test_safeguarding_comes_first_and_never_hides(app, admin, moderator, member_factory, pool):
    c = await commented(admin, member_factory)
    with settings_changed(app, flag_hide_score=1):
        assert (await flag(await member_factory(), c.comment["id"], "safeguarding")).status_code == 201
    [item] = await comment_items(moderator)
    assert item["priority"] == 3 and await comment_status(pool, c.comment["id"]) == "visible"


async def test_flags_at_the_threshold_hide_and_a_restore_shows_again(app, admin, moderator, member_factory, pool):
    c = await commented(admin, member_factory)
    other = await member_factory("dee")
    comments_url = f"/api/documents/{c.document['id']}/comments"
    with settings_changed(app, flag_hide_score=2):
        for _ in range(2):
            assert (await flag(await member_factory(), c.comment["id"])).status_code == 201
    assert await comment_status(pool, c.comment["id"]) == "hidden"
    # Other members see neither the text nor the reason, on the API and the page.
    [seen] = (await other.client.get(comments_url)).json()["items"]
    assert seen["raw"] is None and seen["cooked"] is None and seen["moderation_reason"] is None
    page = await other.client.get(f"/library/documents/{c.document['id']}")
    assert SECRET not in page.text and "hidden by a moderator" in page.text
    # Its author sees it, and why.
    [own] = (await c.author.client.get(comments_url)).json()["items"]
    assert own["raw"] == SECRET and "Members flagged this comment" in own["moderation_reason"]
    assert "Members flagged this comment" in (await c.author.client.get(f"/library/documents/{c.document['id']}")).text
    # Search is told it is hidden.
    assert (await outbox(pool, "document.comment_edited"))[-1]["status"] == "hidden"
    [item] = await comment_items(moderator)
    assert item["priority"] == 2 and item["actions"] == ["restore", "hide", "delete"]
    done = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "restore"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "approved" and done.json()["comment"]["status"] == "visible"
    assert await comment_status(pool, c.comment["id"]) == "visible"
    assert (await other.client.get(comments_url)).json()["items"][0]["raw"] == SECRET
    assert (await outbox(pool, "document.comment_edited"))[-1]["status"] == "visible"
    assert "review.restore" in await audit_actions(pool)
    assert await pool.fetchval("SELECT comments_count FROM forum.documents WHERE id = $1", c.document["id"]) == 1


async def test_hide_and_delete_need_a_reason_and_are_audited(admin, moderator, member_factory, pool):
    c = await commented(admin, member_factory)
    await flag(await member_factory(), c.comment["id"])
    [item] = await comment_items(moderator)
    url = f"/api/review/{item['id']}"
    missing = await moderator.client.post(url, json={"action": "hide"})
    assert missing.status_code == 422 and "reason" in missing.json()["error"]["fields"]
    assert (await moderator.client.post(url, json={"action": "restore"})).status_code == 422
    hidden = await moderator.client.post(url, json={"action": "hide", "reason": "Please keep it kind"})
    assert hidden.status_code == 200 and hidden.json()["comment"]["moderation_reason"] == "Please keep it kind"
    second = await member_factory()
    other_comment = (
        await second.client.post(f"/api/documents/{c.document['id']}/comments", json={"body": "Another"})
    ).json()
    await flag(await member_factory(), other_comment["id"], "spam")
    [item2] = await comment_items(moderator)
    deleted = await moderator.client.post(f"/api/review/{item2['id']}", json={"action": "delete", "reason": "Spam"})
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert await comment_status(pool, other_comment["id"]) == "deleted"
    assert [e["comment_id"] for e in await outbox(pool, "document.comment_deleted")] == [other_comment["id"]]
    assert {"review.hide", "review.delete"} <= set(await audit_actions(pool))


async def test_ignore_keeps_the_comment(admin, moderator, member_factory, pool):
    c = await commented(admin, member_factory)
    await flag(await member_factory(), c.comment["id"])
    [item] = await comment_items(moderator)
    done = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "ignore"})
    assert done.status_code == 200 and done.json()["status"] == "ignored"
    assert await comment_status(pool, c.comment["id"]) == "visible"
    assert await pool.fetchval("SELECT status FROM forum.document_comment_flags") == "ignored"


async def test_two_moderators_racing_one_gets_409(admin, moderator, member_factory, pool):
    c = await commented(admin, member_factory)
    other_mod = await member_factory("max", roles=("member", "moderator"))
    await flag(await member_factory(), c.comment["id"])
    [item] = await comment_items(moderator)
    url = f"/api/review/{item['id']}"
    answers = await asyncio.gather(
        moderator.client.post(url, json={"action": "hide", "reason": "Unkind"}),
        other_mod.client.post(url, json={"action": "delete", "reason": "Unkind"}),
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    loser = next(a for a in answers if a.status_code == 409)
    assert loser.json()["error"]["code"] == "already_resolved"
    assert [a for a in await audit_actions(pool) if a.startswith("review.")] in (["review.hide"], ["review.delete"])


async def test_members_cannot_use_the_review_endpoints(admin, moderator, member_factory):
    c = await commented(admin, member_factory)
    member = await member_factory()
    await flag(member, c.comment["id"])
    [item] = await comment_items(moderator)
    assert (await member.client.get("/api/review")).status_code == 403
    assert (await member.client.get(f"/api/review/{item['id']}")).status_code == 403
    assert (await member.client.post(f"/api/review/{item['id']}", json={"action": "ignore"})).status_code == 403


async def test_flag_errors(admin, member_factory):
    c = await commented(admin, member_factory)
    assert (await flag(c.author, c.comment["id"])).status_code == 403
    member = await member_factory()
    assert (await flag(member, c.comment["id"])).status_code == 201
    assert (await flag(member, c.comment["id"])).status_code == 409
    other = await member.client.post(f"/api/document-comments/{c.comment['id']}/flags", json={"reason": "other"})
    assert other.status_code in (409, 422)
    fresh = await member_factory()
    needs_note = await fresh.client.post(f"/api/document-comments/{c.comment['id']}/flags", json={"reason": "other"})
    assert needs_note.status_code == 422 and "note" in needs_note.json()["error"]["fields"]


async def test_flags_on_posts_and_comments_share_one_daily_allowance(app, admin, moderator, member_factory):
    """A member's flags per day count posts and comments together; the one past it is 429, kindly
    worded, with Retry-After; staff are not limited."""
    c = await commented(admin, member_factory)
    second = await c.author.client.post(f"/api/documents/{c.document['id']}/comments", json={"body": "Another one"})
    category = await new_category(admin)
    topic = await new_topic(c.author, category["id"], "A topic with a post to flag")
    bea = await member_factory("bea")
    with settings_changed(app, new_member_flags_per_day=2, flags_per_day=2):
        assert (await flag(bea, c.comment["id"])).status_code == 201
        assert (await flag_post(bea, topic["first_post"]["id"])).status_code == 201
        refused = await flag(bea, second.json()["id"])
        assert (await flag(moderator, second.json()["id"])).status_code == 201
    assert refused.status_code == 429 and refused.headers["retry-after"]
    message = refused.json()["error"]["message"]
    assert "flagged 2 posts or comments today" in message and "Get support" in message
