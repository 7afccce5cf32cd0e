"""Outreach from a safeguarding item: staff only, safeguarding kinds only, reaches a member who takes no
messages, from "the moderators"; the admins' template; what the item shows (outreach.for_review)."""

from __future__ import annotations

from typing import Any

from moderation_helpers import events, new_topic

from services.forum.messages import outreach


def form(member: Any, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": member.session.csrf, **fields}


async def safeguarding_item(pool: Any, member: Any, category: dict[str, Any]) -> int:
    topic = await new_topic(member, category["id"], title="A hard week", body="Some nights I want to end my life")
    return await pool.fetchval(
        "SELECT id FROM forum.reviewables WHERE post_id = $1 AND kind = 'safeguarding'", topic["first_post"]["id"]
    )


async def test_outreach_reaches_a_member_who_takes_no_messages(sam, moderator, category, pool, app):
    await sam.client.put("/api/me/messaging", json={"who_may_message": "nobody"})
    review_id = await safeguarding_item(pool, sam, category)
    page = await moderator.client.get(f"/review/{review_id}/outreach")
    assert page.status_code == 200 and "Samaritans" in page.text and "Hello Sam" in page.text
    sent = await moderator.client.post(
        f"/review/{review_id}/outreach", data=form(moderator, title="Checking in", text="How are you today?")
    )
    assert sent.status_code == 303
    cid = int(sent.headers["location"].split("/")[2].split("#")[0])
    created = (await events(pool, "conversation.created"))[-1]
    assert created.review_id == review_id and created.member_ids == [sam.id] and created.with_moderators
    seen = (await sam.client.get(f"/api/conversations/{cid}/messages")).json()["items"]
    assert seen[0]["author"]["display_name"] == "The moderators"
    async with app.apps["forum"].state.runtime.pool.acquire() as conn:
        before = await outreach.for_review(conn, review_id)
        assert [(o.conversation_id, o.replied, o.started_by_username) for o in before] == [(cid, False, "mo")]
        await sam.client.post(f"/api/conversations/{cid}/messages", json={"text": "Thank you, a bit better"})
        assert (await outreach.for_review(conn, review_id))[0].replied is True
    audited = await pool.fetchval("SELECT count(*) FROM forum.audit_log WHERE action = 'review.outreach'")
    assert audited == 1


async def test_outreach_refusals(sam, moderator, category, pool, topic):
    review_id = await safeguarding_item(pool, sam, category)
    assert (await sam.client.get(f"/review/{review_id}/outreach")).status_code == 404
    assert (await moderator.client.get("/review/999999/outreach")).status_code == 404
    flagged = await moderator.client.post(f"/api/posts/{topic['first_post']['id']}/flags", json={"reason": "spam"})
    other = flagged.json()["review_id"]
    assert (await moderator.client.get(f"/review/{other}/outreach")).status_code == 422
    empty = await moderator.client.post(f"/review/{review_id}/outreach", data=form(moderator, title="", text=""))
    assert empty.status_code == 422


async def test_admins_edit_the_template(admin, moderator, sam, category, pool):
    assert (await moderator.client.get("/admin/outreach-template")).status_code == 403
    page = await admin.client.get("/admin/outreach-template")
    assert page.status_code == 200 and "default wording" in page.text
    saved = await admin.client.post(
        "/admin/outreach-template", data=form(admin, title="Hello from us", text="Dear {name}, we are here.")
    )
    assert saved.status_code == 303
    review_id = await safeguarding_item(pool, sam, category)
    page = await moderator.client.get(f"/review/{review_id}/outreach")
    assert "Dear Sam, we are here." in page.text and "Hello from us" in page.text
    bad = await admin.client.post("/admin/outreach-template", data=form(admin, title="", text="x"))
    assert bad.status_code == 422
