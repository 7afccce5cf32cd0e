"""Moderation API: flags, auto-hide, the review queue and its actions (one wins when two
moderators act at once), appeals, new members' posts waiting for approval, direct hide and
restore, and the events and notifications each step sends."""

from __future__ import annotations

import asyncio

from moderation_helpers import (
    audit_actions,
    envelopes,
    events,
    flag,
    new_topic,
    reply,
    review_of,
    settings_changed,
)

from services.forum.writings import flags

# --- flags -----------------------------------------------------------------------------------


async def test_flag_opens_a_reviewable(sam, topic, member_factory, pool):
    """A flag answers 201 with its shape, opens a flagged_post item (score 1) and records post.flagged."""
    post = await reply(sam, topic["id"], "Buy cheap watches")
    bea = await member_factory("bea")
    response = await flag(bea, post["id"], "spam", note="  advert  ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["post_id"], body["reason"], body["note"]) == (post["id"], "spam", "advert")
    assert body["message"] and body["review_id"]
    item = await review_of(pool, post["id"], "flagged_post")
    assert (item["status"], item["score"], item["priority"], list(item["reasons"])) == ("pending", 1, 1, ["Flag: Spam"])
    [flagged] = await events(pool, "post.flagged")
    assert (flagged.post_id, flagged.reason, flagged.flag_id, flagged.review_kind) == (
        post["id"],
        "spam",
        body["id"],
        "flagged_post",
    )
    assert flagged.author_id == sam.id and flagged.score == 1


async def test_flag_errors(sam, topic, member_factory, client, pool):
    """401 visitor, 403 no CSRF or own post, 404 missing or unreadable, 409 twice, 422 bad reason or no note."""
    post = await reply(sam, topic["id"])
    bea = await member_factory("bea")
    assert (await client.post(f"/api/posts/{post['id']}/flags", json={"reason": "spam"})).status_code == 401
    no_csrf = await bea.client.post(
        f"/api/posts/{post['id']}/flags", json={"reason": "spam"}, headers={"X-CSRF-Token": ""}
    )
    assert no_csrf.status_code == 403
    own = await flag(sam, post["id"])
    assert own.status_code == 403 and own.json()["error"]["code"] == "own_post"
    assert (await flag(bea, 999999)).status_code == 404
    assert (await bea.client.post("/api/posts/abc/flags", json={"reason": "spam"})).status_code == 404
    assert (await flag(bea, post["id"], "rude")).status_code == 422
    other = await flag(bea, post["id"], "other")
    assert other.status_code == 422 and "note" in other.json()["error"]["fields"]
    assert (await bea.client.post(f"/api/posts/{post['id']}/flags", content=b"{")).status_code == 400
    assert (await flag(bea, post["id"], "other", note="x" * 1001)).status_code == 422
    assert (await flag(bea, post["id"], "spam")).status_code == 201
    again = await flag(bea, post["id"], "off_topic")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_flagged"
    assert await pool.fetchval("SELECT count(*) FROM forum.flags") == 1


async def test_flags_reaching_the_threshold_hide_the_post_until_reviewed(sam, topic, member_factory, client, pool):
    """Three members' flags hide the post: others see a placeholder, the author sees why; post.hidden is sent."""
    post = await reply(sam, topic["id"], "Something members find hurtful")
    flaggers = [await member_factory() for _ in range(3)]
    for member in flaggers[:2]:
        assert (await flag(member, post["id"])).status_code == 201
    assert (await client.get(f"/api/posts/{post['id']}")).json()["status"] == "visible"
    assert (await flag(flaggers[2], post["id"])).status_code == 201

    seen = (await client.get(f"/api/posts/{post['id']}")).json()
    assert (seen["status"], seen["raw"], seen["cooked"]) == ("hidden", "", "")
    assert "moderation_reason" not in seen
    own = (await sam.client.get(f"/api/posts/{post['id']}")).json()
    assert own["raw"] == "Something members find hurtful"
    assert own["moderation_reason"] == flags.AUTO_HIDE_REASON
    [hidden] = await events(pool, "post.hidden")
    assert (hidden.post_id, hidden.author_id, hidden.reason) == (post["id"], sam.id, flags.AUTO_HIDE_REASON)
    [envelope] = await envelopes(pool, "post.hidden")
    assert envelope.actor_id is None  # nobody in particular hid it
    item = await review_of(pool, post["id"], "flagged_post")
    assert (item["score"], item["priority"]) == (3, 2)
    assert any("Hidden automatically" in r for r in item["reasons"])
    page = await client.get(topic["url"])
    assert "Something members find hurtful" not in page.text and "hidden by a moderator" in page.text
    assert "hurtful" not in (await flaggers[0].client.get(topic["url"])).text


async def test_a_moderators_flag_weighs_more(sam, topic, moderator, pool):
    """A moderator's flag counts 3: at the default threshold it hides the post by itself."""
    post = await reply(sam, topic["id"])
    assert (await flag(moderator, post["id"], "inappropriate")).status_code == 201
    assert await pool.fetchval("SELECT status FROM forum.posts WHERE id = $1", post["id"]) == "hidden"


async def test_the_threshold_is_a_setting(app, sam, topic, member_factory, pool):
    """TICA_FLAG_HIDE_SCORE: with 2, two members' flags hide a post."""
    post = await reply(sam, topic["id"])
    with settings_changed(app, flag_hide_score=2):
        for _ in range(2):
            assert (await flag(await member_factory(), post["id"])).status_code == 201
    assert await pool.fetchval("SELECT status FROM forum.posts WHERE id = $1", post["id"]) == "hidden"


async def test_safeguarding_flags_never_hide_and_come_first(sam, topic, member_factory, moderator, pool):
    """Safeguarding concerns raise a top-priority item and leave the post up: people are not silenced."""
    spam = await reply(sam, topic["id"], "An advert")
    worry = await reply(sam, topic["id"], "I am having a very hard week")
    for _ in range(2):
        await flag(await member_factory(), spam["id"], "spam")
    for _ in range(4):
        assert (await flag(await member_factory(), worry["id"], "safeguarding")).status_code == 201
    assert await pool.fetchval("SELECT status FROM forum.posts WHERE id = $1", worry["id"]) == "visible"
    items = (await moderator.client.get("/api/review")).json()["items"]
    assert [(i["kind"], i["post"]["id"]) for i in items] == [
        ("safeguarding", worry["id"]),
        ("flagged_post", spam["id"]),
    ]
    assert items[0]["priority"] == 3 and items[0]["score"] == 4
    assert [f["reason"] for f in items[0]["flags"]] == ["safeguarding"] * 4


# --- the queue and its actions ----------------------------------------------------------------


async def test_queue_item_shape_and_context(sam, topic, member_factory, moderator):
    """An item carries why it is here, its flags, the post, earlier posts for context and the possible actions."""
    await reply(sam, topic["id"], "First reply, for context")
    post = await reply(sam, topic["id"], "The flagged one", content_note="grief")
    bea = await member_factory("bea")
    await flag(bea, post["id"], "other", note="Please check this")
    response = await moderator.client.get("/api/review")
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    [item] = body["items"]
    assert item["kind"] == "flagged_post" and item["status"] == "pending"
    assert item["post"]["raw"] == "The flagged one" and item["post"]["content_note"] == "grief"
    assert item["topic"]["title"] == topic["title"] and item["author"]["username"] == "sam"
    assert item["flags"][0]["note"] == "Please check this" and item["flags"][0]["by"]["username"] == "bea"
    assert [c["excerpt"] for c in item["context"]] == ["Hello everyone", "First reply, for context"]
    assert item["actions"] == ["approve", "hide", "reject", "delete", "ignore"]
    single = await moderator.client.get(f"/api/review/{item['id']}")
    assert single.json() == item
    assert (await moderator.client.get("/api/review/999999")).status_code == 404


async def test_queue_filters(sam, topic, member_factory, moderator):
    """?status= and ?kind= filter; bad values answer 400; resolved items leave the pending list."""
    one = await reply(sam, topic["id"], "one")
    two = await reply(sam, topic["id"], "two")
    await flag(await member_factory(), one["id"], "spam")
    await flag(await member_factory(), two["id"], "safeguarding")
    item = (await moderator.client.get("/api/review?kind=flagged_post")).json()["items"][0]
    await moderator.client.post(f"/api/review/{item['id']}", json={"action": "ignore"})
    pending = (await moderator.client.get("/api/review")).json()["items"]
    assert [i["kind"] for i in pending] == ["safeguarding"]
    ignored = (await moderator.client.get("/api/review?status=ignored")).json()["items"]
    assert [i["post"]["id"] for i in ignored] == [one["id"]]
    assert ignored[0]["resolution"]["action"] == "ignore" and ignored[0]["actions"] == []
    assert len((await moderator.client.get("/api/review?status=all")).json()["items"]) == 2
    for bad in ("?status=open", "?kind=post", "?page=0", "?page=x"):
        assert (await moderator.client.get("/api/review" + bad)).status_code == 400, bad


async def test_flag_hide_review_restore(sam, topic, member_factory, moderator, client, pool):
    """Flag -> auto-hide -> review -> restore: the post is back, the author told, flags disagreed, all audited."""
    post = await reply(sam, topic["id"], "A fair point, strongly put")
    for _ in range(3):
        await flag(await member_factory(), post["id"], "inappropriate")
    [item] = (await moderator.client.get("/api/review")).json()["items"]
    assert item["actions"] == ["approve", "restore", "reject", "hide", "delete"]
    response = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "restore"})
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "approved" and done["resolution"]["action"] == "restore"
    assert done["resolution"]["by"]["username"] == "mo" and done["post"]["status"] == "visible"
    assert (await client.get(f"/api/posts/{post['id']}")).json()["raw"] == "A fair point, strongly put"
    assert await pool.fetchval("SELECT posts_count FROM forum.topics WHERE id = $1", topic["id"]) == 2
    [restored] = await events(pool, "post.restored")
    assert restored.post_id == post["id"] and restored.author_id == sam.id
    [resolved] = await events(pool, "review.resolved")
    assert (resolved.kind, resolved.action, resolved.author_id, resolved.moderator_id, resolved.post_id) == (
        "flagged_post",
        "restore",
        sam.id,
        moderator.id,
        post["id"],
    )
    assert set(await pool.fetchval("SELECT array_agg(DISTINCT status) FROM forum.flags")) == {"disagreed"}
    assert "review.restore" in await audit_actions(pool)
    entry = await pool.fetchrow("SELECT * FROM forum.audit_log WHERE action = 'review.restore'")
    assert entry["before"] == {"review_status": "pending", "post_status": "hidden"}
    assert entry["after"]["post_status"] == "visible" and entry["actor_id"] == moderator.id


async def test_hide_from_the_queue_tells_the_author_why(sam, topic, member_factory, moderator, pool):
    """Hiding needs a reason (422 without); the author sees it on the post and in post.hidden."""
    post = await reply(sam, topic["id"])
    await flag(await member_factory(), post["id"], "inappropriate")
    [item] = (await moderator.client.get("/api/review")).json()["items"]
    missing = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "hide"})
    assert missing.status_code == 422 and "reason" in missing.json()["error"]["fields"]
    reason = "It named another member in a way that could hurt them."
    done = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "hide", "reason": reason})
    assert done.status_code == 200 and done.json()["status"] == "rejected"
    own = (await sam.client.get(f"/api/posts/{post['id']}")).json()
    assert (own["status"], own["moderation_reason"]) == ("hidden", reason)
    [hidden] = await events(pool, "post.hidden")
    assert hidden.reason == reason


async def test_action_errors(sam, topic, member_factory, moderator, pool):
    """400 bad JSON, 404 unknown item, 422 unknown action or one that does not fit, 409 once resolved."""
    post = await reply(sam, topic["id"])
    for _ in range(3):
        await flag(await member_factory(), post["id"])
    [item] = (await moderator.client.get("/api/review")).json()["items"]
    url = f"/api/review/{item['id']}"
    assert (await moderator.client.post(url, content=b"[")).status_code == 400
    assert (await moderator.client.post("/api/review/999999", json={"action": "approve"})).status_code == 404
    assert (await moderator.client.post(url, json={"action": "ban"})).status_code == 422
    assert (await moderator.client.post(url, json={"action": "approve", "extra": 1})).status_code == 422
    ignore = await moderator.client.post(url, json={"action": "ignore"})
    assert ignore.status_code == 422 and ignore.json()["error"]["code"] == "invalid_action"
    assert (await moderator.client.post(url, json={"action": "approve"})).status_code == 200
    again = await moderator.client.post(url, json={"action": "delete", "reason": "spam"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_resolved"
    assert "approved it" in again.json()["error"]["message"]
    assert await pool.fetchval("SELECT status FROM forum.posts WHERE id = $1", post["id"]) == "visible"


async def test_two_moderators_at_once_exactly_one_action_applies(sam, topic, member_factory, pool, roomy):
    """Two moderators acting on one item at the same moment: one 200, one 409, one outcome, one audit entry."""
    first = await member_factory("mod1", roles=("member", "moderator"))
    second = await member_factory("mod2", roles=("member", "moderator"))
    for round_ in range(5):
        post = await reply(sam, topic["id"], f"Post {round_}")
        for _ in range(3):
            await flag(await member_factory(), post["id"])
        item = await review_of(pool, post["id"], "flagged_post")
        url = f"/api/review/{item['id']}"
        answers = await asyncio.gather(
            first.client.post(url, json={"action": "restore"}),
            second.client.post(url, json={"action": "delete", "reason": "Against the guidelines"}),
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        winner = next(a for a in answers if a.status_code == 200).json()
        status = await pool.fetchval("SELECT status FROM forum.posts WHERE id = $1", post["id"])
        assert status == ("visible" if winner["resolution"]["action"] == "restore" else "deleted")
        entries = await pool.fetchval(
            "SELECT count(*) FROM forum.audit_log WHERE target_type = 'reviewable' AND target_id = $1", item["id"]
        )
        assert entries == 1
    assert len(await events(pool, "review.resolved")) == 5


async def test_delete_from_the_queue(sam, topic, member_factory, moderator, client, pool):
    """Delete removes the post (placeholder), closes its other items, and sends post.deleted."""
    post = await reply(sam, topic["id"], "Spam spam")
    await flag(await member_factory(), post["id"], "spam")
    await flag(await member_factory(), post["id"], "safeguarding")
    item = await review_of(pool, post["id"], "flagged_post")
    done = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "delete", "reason": "Advert"})
    assert done.status_code == 200 and done.json()["status"] == "deleted"
    assert (await client.get(f"/api/posts/{post['id']}")).json()["status"] == "deleted"
    other = await review_of(pool, post["id"], "safeguarding")
    assert other["status"] == "deleted"
    assert [e.post_id for e in await events(pool, "post.deleted")] == [post["id"]]


async def test_moderator_deleting_a_first_post_removes_its_topic(sam, category, member_factory, moderator, client):
    """A first post deleted from the queue takes its topic with it (the author cannot do that alone)."""
    spam_topic = await new_topic(sam, category["id"], "Cheap watches for sale", "Buy now")
    await flag(await member_factory(), spam_topic["first_post"]["id"], "spam")
    [item] = (await moderator.client.get("/api/review")).json()["items"]
    done = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "delete", "reason": "Spam"})
    assert done.status_code == 200
    assert (await client.get(f"/api/topics/{spam_topic['id']}")).status_code == 404
    assert spam_topic["id"] not in [t["id"] for t in (await client.get("/api/topics")).json()["items"]]


# --- editing a hidden post, appeals ----------------------------------------------------------------


async def test_author_edit_of_a_hidden_post_asks_for_another_review(sam, topic, moderator, pool):
    """After a moderator hid it, the author's edit reopens the item with a note; the post stays hidden."""
    post = await reply(sam, topic["id"], "Harsh words")
    hide = await moderator.client.post(f"/api/posts/{post['id']}/hide", json={"reason": "Too harsh"})
    assert hide.status_code == 200, hide.text
    edited = await sam.client.patch(f"/api/posts/{post['id']}", json={"body": "Gentler words"})
    assert edited.status_code == 200 and edited.json()["status"] == "hidden"
    item = await review_of(pool, post["id"], "flagged_post")
    assert item["status"] == "pending" and item["priority"] == 2
    assert "The author edited the post and asks for another review" in item["reasons"]


async def test_appeal_once_and_only_for_the_author(sam, topic, moderator, member_factory, pool):
    """The author appeals a hidden post once; others get 404; moderators see it; approving restores the post."""
    post = await reply(sam, topic["id"], "My story")
    bea = await member_factory("bea")
    url = f"/api/posts/{post['id']}/appeal"
    not_yet = await sam.client.post(url, json={"text": "Please look"})
    assert not_yet.status_code == 409 and not_yet.json()["error"]["code"] == "not_appealable"
    await moderator.client.post(f"/api/posts/{post['id']}/hide", json={"reason": "Graphic detail"})
    assert (await sam.client.get(url)).status_code == 404  # no appeal yet
    assert (await sam.client.post(url, json={"text": "   "})).status_code == 422
    assert (await sam.client.post(url, json={})).status_code == 422
    assert (await bea.client.post(url, json={"text": "Not mine"})).status_code == 404
    created = await sam.client.post(url, json={"text": "I added a content note; please look again."})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending" and created.json()["text"].startswith("I added")
    assert (await sam.client.post(url, json={"text": "Again"})).status_code == 409
    assert (await sam.client.get(url)).status_code == 200
    assert (await bea.client.get(url)).status_code == 404
    assert (await moderator.client.get(url)).json()["text"].startswith("I added")
    item = await review_of(pool, post["id"], "appeal")
    listed = (await moderator.client.get("/api/review?kind=appeal")).json()["items"]
    assert [i["id"] for i in listed] == [item["id"]] and listed[0]["appeal_text"].startswith("I added")
    assert "ignore" not in listed[0]["actions"]
    done = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "approve"})
    assert done.status_code == 200
    assert (await bea.client.get(f"/api/posts/{post['id']}")).json()["raw"] == "My story"
    decided = (await sam.client.get(url)).json()
    assert (decided["status"], decided["decision"]) == ("approved", "approve")
    [resolved] = [e for e in await events(pool, "review.resolved") if e.kind == "appeal"]
    assert resolved.action == "approve" and resolved.author_id == sam.id


async def test_appeal_rejected_keeps_the_decision(sam, topic, moderator, pool):
    """Rejecting an appeal leaves the post hidden and tells the author why."""
    post = await reply(sam, topic["id"])
    await moderator.client.post(f"/api/posts/{post['id']}/hide", json={"reason": "Off topic"})
    await sam.client.post(f"/api/posts/{post['id']}/appeal", json={"text": "It is on topic"})
    item = await review_of(pool, post["id"], "appeal")
    done = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "reject", "reason": "Still off"})
    assert done.status_code == 200
    assert await pool.fetchval("SELECT status FROM forum.posts WHERE id = $1", post["id"]) == "hidden"
    [resolved] = [e for e in await events(pool, "review.resolved") if e.kind == "appeal"]
    assert (resolved.action, resolved.reason) == ("reject", "Still off")


# --- new members' first posts ---------------------------------------------------------------------


async def test_a_new_members_first_reply_waits_for_approval(app, sam, topic, member_factory, moderator, client, pool):
    """202 pending_review; nobody else sees it and no event is sent until a moderator approves it."""
    bea = await member_factory("bea")
    with settings_changed(app, new_member_review_posts=1):
        waiting = await reply(sam, topic["id"], "My first words here", status=202)
        assert waiting["status"] == "pending_review" and "moderator" in waiting["message"]
        assert waiting["id"] and waiting["raw"] == "My first words here"
        assert not await events(pool, "post.created") or all(
            e.post_id != waiting["id"] for e in await events(pool, "post.created")
        )
        assert (await client.get(f"/api/posts/{waiting['id']}")).status_code == 404
        assert (await bea.client.get(f"/api/posts/{waiting['id']}")).status_code == 404
        assert waiting["id"] not in [
            p["id"] for p in (await bea.client.get(f"/api/topics/{topic['id']}")).json()["posts"]
        ]
        assert "My first words here" not in (await bea.client.get(topic["url"])).text
        own = await sam.client.get(topic["url"])
        assert "My first words here" in own.text and "Waiting for review" in own.text
        assert (await client.get(f"/api/topics/{topic['id']}")).json()["posts_count"] == 1
        item = await review_of(pool, waiting["id"], "queued_post")
        assert item["status"] == "pending" and "first 1 post" in item["reasons"][0]
        assert (await flag(bea, waiting["id"])).status_code == 404
        done = await moderator.client.post(f"/api/review/{item['id']}", json={"action": "approve"})
        assert done.status_code == 200 and done.json()["post"]["status"] == "visible"
        [created] = [e for e in await events(pool, "post.created") if e.post_id == waiting["id"]]
        assert created.text == "My first words here" and created.author_username == "sam"
        assert (await client.get(f"/api/topics/{topic['id']}")).json()["posts_count"] == 2
        # Published once: the next post goes straight up.
        assert (await reply(sam, topic["id"], "Second"))["status"] == "visible"
        [resolved] = await events(pool, "review.resolved")
        assert (resolved.kind, resolved.action) == ("queued_post", "approve")


async def test_rejecting_a_waiting_post_sends_the_reason(app, sam, topic, moderator, pool):
    """Reject: never published, the author sees the reason on it and in review.resolved, and may appeal."""
    with settings_changed(app, new_member_review_posts=1):
        waiting = await reply(sam, topic["id"], "Click my link", status=202)
    item = await review_of(pool, waiting["id"], "queued_post")
    assert (await moderator.client.post(f"/api/review/{item['id']}", json={"action": "reject"})).status_code == 422
    done = await moderator.client.post(
        f"/api/review/{item['id']}", json={"action": "reject", "reason": "Links to sales sites are not allowed"}
    )
    assert done.status_code == 200 and done.json()["status"] == "rejected"
    own = (await sam.client.get(f"/api/posts/{waiting['id']}")).json()
    assert (own["status"], own["moderation_reason"]) == ("rejected", "Links to sales sites are not allowed")
    [resolved] = await events(pool, "review.resolved")
    assert (resolved.action, resolved.reason, resolved.author_id) == (
        "reject",
        "Links to sales sites are not allowed",
        sam.id,
    )
    assert not [e for e in await events(pool, "post.created") if e.post_id == waiting["id"]]
    assert (
        await sam.client.post(f"/api/posts/{waiting['id']}/appeal", json={"text": "It was a charity"})
    ).status_code == 201


async def test_a_new_members_topic_waits_and_is_not_listed(app, sam, category, moderator, member_factory, client, pool):
    """A waiting topic: 202, not listed, 404 to others; approving publishes topic.created then post.created."""
    bea = await member_factory("bea")
    with settings_changed(app, new_member_review_posts=1):
        waiting = await new_topic(sam, category["id"], "Hello from a new member", "Hi all", status=202)
    assert waiting["status"] == "pending_review" and waiting["first_post"]["status"] == "pending"
    assert waiting["id"] not in [t["id"] for t in (await client.get("/api/topics")).json()["items"]]
    assert (await bea.client.get(f"/api/topics/{waiting['id']}")).status_code == 404
    assert (await bea.client.get(waiting["url"])).status_code == 404
    assert (await sam.client.get(f"/api/topics/{waiting['id']}")).json()["status"] == "pending"
    replied = await bea.client.post(f"/api/topics/{waiting['id']}/posts", json={"body": "hi"})
    assert replied.status_code == 404
    assert not await events(pool, "topic.created")
    item = await review_of(pool, waiting["first_post"]["id"], "queued_post")
    assert (await moderator.client.post(f"/api/review/{item['id']}", json={"action": "approve"})).status_code == 200
    assert [e.type for e in await events(pool) if e.type in ("topic.created", "post.created")] == [
        "topic.created",
        "post.created",
    ]
    assert waiting["id"] in [t["id"] for t in (await client.get("/api/topics")).json()["items"]]
    assert (await bea.client.get(f"/api/topics/{waiting['id']}")).json()["status"] == "visible"


# --- hiding and restoring directly, topics ---------------------------------------------------------


async def test_hide_and_restore_directly(sam, topic, moderator, member_factory, client, pool):
    """POST /api/posts/{id}/hide (reason needed) and /restore; an open flag item is resolved with them."""
    post = await reply(sam, topic["id"])
    await flag(await member_factory(), post["id"])
    url = f"/api/posts/{post['id']}"
    assert (await moderator.client.post(url + "/hide", json={})).status_code == 422
    hidden = await moderator.client.post(url + "/hide", json={"reason": "Personal details"})
    assert hidden.status_code == 200 and hidden.json()["status"] == "hidden"
    assert hidden.json()["moderation_reason"] == "Personal details"
    assert (await moderator.client.post(url + "/hide", json={"reason": "again"})).status_code == 409
    assert (await review_of(pool, post["id"], "flagged_post"))["status"] == "rejected"
    restored = await moderator.client.post(url + "/restore", json={})
    assert restored.status_code == 200 and restored.json()["status"] == "visible"
    assert (await moderator.client.post(url + "/restore", json={})).status_code == 409
    assert (await moderator.client.post("/api/posts/999999/hide", json={"reason": "x"})).status_code == 404
    assert (await client.get(url)).json()["status"] == "visible"
    assert [a for a in await audit_actions(pool) if a.startswith("post.")] == ["post.hide", "post.restore"]


async def test_moderators_close_pin_and_move_topics(topic, moderator, admin, pool):
    """Close, pin and move, each audited with before and after; topic.updated tells the rest."""
    other = (await admin.client.post("/api/categories", json={"name": "Practice"})).json()
    url = f"/api/topics/{topic['id']}/moderate"
    response = await moderator.client.post(
        url, json={"closed": True, "pinned": True, "category_id": other["id"], "reason": "Belongs in Practice"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["closed"], body["pinned"], body["category_id"]) == (True, True, other["id"])
    assert await audit_actions(pool) == ["topic.close", "topic.pin", "topic.move"]
    move = await pool.fetchrow("SELECT * FROM forum.audit_log WHERE action = 'topic.move'")
    assert move["before"] == {"category_id": topic["category_id"]} and move["after"] == {"category_id": other["id"]}
    assert move["reason"] == "Belongs in Practice"
    [updated] = await events(pool, "topic.updated")
    assert (updated.closed, updated.pinned, updated.category_id) == (True, True, other["id"])
    unchanged = await moderator.client.post(url, json={"closed": True})
    assert unchanged.status_code == 200 and len(await events(pool, "topic.updated")) == 1
    assert (await moderator.client.post(url, json={})).status_code == 422
    assert (await moderator.client.post(url, json={"category_id": 999999})).status_code == 422
    assert (await moderator.client.post(url, json={"closed": "yes"})).status_code == 422
    assert (await moderator.client.post("/api/topics/999999/moderate", json={"closed": True})).status_code == 404
    assert (await moderator.client.post(url, json={"closed": False})).json()["closed"] is False


async def test_staff_edit_is_audited_with_reason(sam, topic, moderator, pool):
    """A moderator's edit of someone else's post needs a reason and is in the audit log with before and after."""
    post = await reply(sam, topic["id"], "My phone is 07700 900000")
    done = await moderator.client.patch(
        f"/api/posts/{post['id']}", json={"body": "My phone is (removed)", "edit_reason": "Removed a phone number"}
    )
    assert done.status_code == 200
    entry = await pool.fetchrow("SELECT * FROM forum.audit_log WHERE action = 'post.edit'")
    assert entry["reason"] == "Removed a phone number" and entry["target_id"] == post["id"]
    assert entry["before"]["raw"] == "My phone is 07700 900000" and entry["after"]["raw"] == "My phone is (removed)"


async def test_staff_posts_never_wait(app, moderator, admin, topic):
    """Staff are never held for review, whatever the new-member setting."""
    with settings_changed(app, new_member_review_posts=5):
        for staff in (moderator, admin):
            assert (await reply(staff, topic["id"]))["status"] == "visible"
