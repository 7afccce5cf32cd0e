"""The notification writer: who is told what, once, from the forum's events."""

from __future__ import annotations

import json
from typing import Any

from notify_helpers import category, drain, post, reaction, topic

from shared import events as ev

ALICE, BOB, CAROL, DAN = 1, 2, 3, 4


async def _community(world) -> None:
    for user_id, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAN, "dan")):
        await world.join(user_id, name)
    await world.emit(
        category(1),
        topic(10, author_id=ALICE, author_username="alice"),
        post(100, topic_id=10, number=1, author_id=ALICE, author_username="alice"),
    )


async def test_reply_mention_and_quote_make_one_notification_each(world):
    """A reply tells the replied-to author, a mention the mentioned, a quote the quoted: one each."""
    await _community(world)
    await world.emit(
        post(
            101,
            topic_id=10,
            number=2,
            author_id=BOB,
            author_username="bob",
            reply_to_user_id=ALICE,
            mentioned=(CAROL,),
            quoted=(DAN,),
        )
    )
    kinds = {uid: [n["kind"] for n in await world.notifications(uid)] for uid in (ALICE, BOB, CAROL, DAN)}
    assert kinds == {ALICE: ["replied"], BOB: [], CAROL: ["mentioned"], DAN: ["quoted"]}
    [note] = await world.notifications(ALICE)
    assert (note["topic_id"], note["post_id"], note["post_number"], note["actor_id"]) == (10, 101, 2, BOB)
    assert note["data"]["actor_username"] == "bob"


async def test_a_member_both_mentioned_and_replied_to_gets_one_notification(world):
    """Mention wins over reply and quote: one notification per member per post."""
    await _community(world)
    await world.emit(
        post(101, topic_id=10, number=2, author_id=BOB, reply_to_user_id=ALICE, mentioned=(ALICE,), quoted=(ALICE,))
    )
    assert [n["kind"] for n in await world.notifications(ALICE)] == ["mentioned"]


async def test_authors_are_not_told_about_their_own_posts(world):
    """Mentioning or replying to yourself makes nothing."""
    await _community(world)
    await world.emit(post(101, topic_id=10, number=2, author_id=ALICE, reply_to_user_id=ALICE, mentioned=(ALICE,)))
    assert await world.notifications(ALICE) == []


async def test_an_event_handled_twice_makes_no_second_notification(world):
    """At-least-once delivery: handling the same envelope again changes nothing."""
    await _community(world)
    [envelope] = await world.emit(post(101, topic_id=10, number=2, author_id=BOB, reply_to_user_id=ALICE))
    from services.notify.writer import handle_event

    await handle_event(world.rt, envelope)
    await handle_event(world.rt, envelope)
    assert len(await world.notifications(ALICE)) == 1


async def test_watching_a_topic_tells_of_every_new_post(world):
    """The topic's creator watches it; a member who chose watching is told of every post."""
    await _community(world)
    await world.watch(DAN, "topic:10", "watching")
    await world.emit(post(101, topic_id=10, number=2, author_id=BOB, author_username="bob"))
    assert [n["kind"] for n in await world.notifications(ALICE)] == ["posted"]
    assert [n["kind"] for n in await world.notifications(DAN)] == ["posted"]
    assert await world.notifications(CAROL) == []


async def test_watching_a_category_and_posting_tracks(world):
    """Category watchers hear of posts; posting in a topic tracks it but never lowers a watched category."""
    await _community(world)
    await world.watch(CAROL, "category:1", "watching")
    await world.emit(post(101, topic_id=10, number=2, author_id=CAROL, author_username="carol"))
    level = await world.pool.fetchval(
        "SELECT level FROM notify.watches WHERE user_id = $1 AND target_kind = 'topic' AND target_id = 10", CAROL
    )
    assert level == "tracking"
    await world.emit(post(102, topic_id=10, number=3, author_id=BOB, author_username="bob"))
    assert [n["post_id"] for n in await world.notifications(CAROL)] == [102]


async def test_muted_topic_category_and_member_make_no_notifications(world):
    """A muted topic or category, or a muted or ignored author, tells the member nothing, not even mentions."""
    await _community(world)
    await world.watch(ALICE, "topic:10", "muted")
    await world.watch(CAROL, "category:1", "muted")
    await world.emit(ev.UserMuted(user_id=DAN, muted_user_id=BOB, level="ignored"))
    await world.emit(post(101, topic_id=10, number=2, author_id=BOB, reply_to_user_id=ALICE, mentioned=(CAROL, DAN)))
    for member in (ALICE, CAROL, DAN):
        assert await world.notifications(member) == []
    await world.emit(ev.UserMuted(user_id=DAN, muted_user_id=BOB, level="none"))
    await world.emit(post(102, topic_id=10, number=3, author_id=BOB, mentioned=(DAN,)))
    assert [n["post_id"] for n in await world.notifications(DAN)] == [102]


async def test_private_content_is_not_notified_to_those_who_cannot_see_it(world):
    """A mention in a group's category reaches the group's members and staff, no one else."""
    await world.join(ALICE, "alice", group_ids=[5])
    await world.join(BOB, "bob")
    await world.join(CAROL, "carol", roles=["moderator"])
    await world.emit(category(2, audience=["group:5"]), topic(20, author_id=ALICE, category_id=2, audience=["group:5"]))
    await world.emit(
        post(
            201,
            topic_id=20,
            number=2,
            author_id=DAN,
            category_id=2,
            audience=["group:5"],
            mentioned=(ALICE, BOB, CAROL),
        )
    )
    assert [n["kind"] for n in await world.notifications(ALICE)] == ["mentioned"]
    assert await world.notifications(BOB) == []
    assert [n["kind"] for n in await world.notifications(CAROL)] == ["mentioned"]


async def test_reactions_are_batched_per_post_and_marked_unread_again(world):
    """Reactions on one post make one notification with the count and the latest reactors."""
    await _community(world)
    await world.emit(reaction(100, topic_id=10, post_author_id=ALICE, user_id=BOB))
    [first] = await world.notifications(ALICE)
    assert first["kind"] == "reacted" and first["data"]["count"] == 1
    await world.pool.execute("UPDATE notify.notifications SET read_at = now() WHERE id = $1", first["id"])
    [envelope] = await world.emit(reaction(100, topic_id=10, post_author_id=ALICE, user_id=CAROL, kind="hug"))
    from services.notify.writer import handle_event

    await handle_event(world.rt, envelope)  # a repeat counts nothing twice
    [batched] = await world.notifications(ALICE)
    assert batched["id"] == first["id"]
    assert batched["read_at"] is None, "a new reaction marks it unread again"
    assert batched["data"]["count"] == 2
    assert batched["data"]["usernames"] == ["carol", "bob"]
    await world.emit(reaction(100, topic_id=10, post_author_id=ALICE, user_id=CAROL, kind="hug", removed=True))
    [after] = await world.notifications(ALICE)
    assert after["data"]["count"] == 1 and after["read_at"] is None
    await world.emit(reaction(100, topic_id=10, post_author_id=ALICE, user_id=BOB, removed=True))
    assert await world.notifications(ALICE) == []


async def test_reacting_to_your_own_post_tells_no_one(world):
    await _community(world)
    await world.emit(reaction(100, topic_id=10, post_author_id=ALICE, user_id=ALICE))
    assert await world.notifications(ALICE) == []


async def test_a_deleted_post_takes_its_notifications_away(world):
    await _community(world)
    await world.emit(post(101, topic_id=10, number=2, author_id=BOB, reply_to_user_id=ALICE))
    await world.emit(ev.PostDeleted(post_id=101, topic_id=10, post_number=2, category_id=1, author_id=BOB))
    assert await world.notifications(ALICE) == []


def _resolved(review_id: int, kind: str, action: str, **fields: Any) -> ev.ReviewResolved:
    """A moderator (Carol) acted on a review item."""
    return ev.ReviewResolved(review_id=review_id, kind=kind, action=action, moderator_id=CAROL, **fields)


async def test_moderation_outcomes_reach_the_author_with_the_reason(world):
    """Hidden, restored, approved, rejected, silenced and suspended: each told once, with the reason."""
    await _community(world)
    await world.emit(post(101, topic_id=10, number=2, author_id=BOB))
    hidden = ev.PostHidden(post_id=101, topic_id=10, category_id=1, author_id=BOB, reason="Flagged as off topic")
    [envelope] = await world.emit(hidden, actor_id=CAROL)
    from services.notify.notifications import describe
    from services.notify.writer import handle_event

    await handle_event(world.rt, envelope)
    await world.emit(ev.PostRestored(post_id=101, topic_id=10, category_id=1, author_id=BOB))
    on_post = {"post_id": 101, "topic_id": 10, "author_id": BOB}
    await world.emit(_resolved(7, "queued_post", "approve", **on_post))
    await world.emit(
        _resolved(8, "queued_post", "reject", topic_title="A new topic", author_id=BOB, reason="Please avoid names")
    )
    await world.emit(_resolved(9, "flagged_post", "ignore", **on_post))
    # An upheld appeal restores the post (post.restored told them); the review adds nothing more.
    await world.emit(_resolved(10, "appeal", "approve", **on_post))
    await world.emit(_resolved(11, "flagged_post", "delete", **on_post, reason="Personal details"))
    await world.emit(ev.UserSilenced(user_id=BOB, until=None, reason="Cooling off"), actor_id=CAROL)
    await world.emit(
        ev.UserSuspended(user_id=BOB, until="2030-01-01T00:00:00+00:00", reason="Repeated abuse"), actor_id=CAROL
    )
    notes = await world.notifications(BOB)
    kinds = [n["kind"] for n in notes]
    assert kinds == [
        "post_hidden",
        "post_restored",
        "post_approved",
        "post_rejected",
        "post_deleted",
        "silenced",
        "suspended",
    ]
    texts = [
        describe(n["kind"], json.loads(n["data"]) if isinstance(n["data"], str) else n["data"], None) for n in notes
    ]
    assert "Flagged as off topic" in texts[0]
    assert "A new topic" in texts[3] and "Please avoid names" in texts[3]
    assert "Personal details" in texts[4]
    assert "until a moderator lifts it" in texts[5]
    assert "1 January 2030" in texts[6]
    suspended = await world.pool.fetchval("SELECT suspended_until FROM notify.users WHERE id = $1", BOB)
    assert suspended.year == 2030


async def test_unread_counts_are_published_for_live_clients(world):
    """Each new notification puts the member's unread count on notify's live stream."""
    await _community(world)
    await world.emit(post(101, topic_id=10, number=2, author_id=BOB, reply_to_user_id=ALICE))
    from services.notify.notifications import live_stream_name

    entries = await world.redis.xrange(live_stream_name(world.settings.redis_prefix))
    assert [(f[b"u"], f[b"n"]) for _, f in entries] == [(str(ALICE).encode(), b"1")]


async def test_events_out_of_order_keep_the_newest_state(world):
    """An older user.updated handled after a newer one does not overwrite it."""
    from notify_helpers import emit, updated

    older, newer = updated(ALICE, "alice_old"), updated(ALICE, "alice_new", group_ids=[3])
    [old_env] = await emit(world.pool, world.redis, world.settings, older)
    [new_env] = await emit(world.pool, world.redis, world.settings, newer)
    from services.notify.writer import handle_event

    await handle_event(world.rt, new_env)
    await handle_event(world.rt, old_env)
    row = await world.pool.fetchrow("SELECT username, group_ids FROM notify.users WHERE id = $1", ALICE)
    assert (row["username"], list(row["group_ids"])) == ("alice_new", [3])
    await drain(world.consumer)


async def test_group_membership_events_decide_what_a_member_may_see(world):
    """group.member_added / removed keep notify's idea of a member's groups current."""
    await world.join(ALICE, "alice")
    await world.emit(category(2, audience=["group:5"]), topic(20, author_id=BOB, category_id=2, audience=["group:5"]))
    mention = post(201, topic_id=20, number=2, author_id=BOB, category_id=2, audience=["group:5"], mentioned=(ALICE,))
    await world.emit(mention)
    assert await world.notifications(ALICE) == []
    await world.emit(ev.GroupMemberAdded(group_id=5, group_name="Peer support", user_id=ALICE, how="joined"))
    await world.emit(
        post(202, topic_id=20, number=3, author_id=BOB, category_id=2, audience=["group:5"], mentioned=(ALICE,))
    )
    assert [n["post_id"] for n in await world.notifications(ALICE)] == [202]
    await world.emit(ev.GroupMemberRemoved(group_id=5, group_name="Peer support", user_id=ALICE, how="left"))
    await world.emit(
        post(203, topic_id=20, number=4, author_id=BOB, category_id=2, audience=["group:5"], mentioned=(ALICE,))
    )
    assert [n["post_id"] for n in await world.notifications(ALICE)] == [202]


async def test_an_anonymous_post_never_names_its_author_in_notifications(world):
    """A reply posted anonymously tells the replied-to and the trackers without the author's id (the API's actor)."""
    import dataclasses

    from services.notify.notifications import notification_json

    await _community(world)
    await world.emit(post(101, topic_id=10, number=2, author_id=DAN, author_username="dan"))
    anonymous = dataclasses.replace(
        post(102, topic_id=10, number=3, author_id=BOB, reply_to_user_id=ALICE),
        author_username="anonymous",
        anonymous=True,
    )
    await world.emit(anonymous)
    told = [n for n in await world.notifications(ALICE) if n["post_id"] == 102] + await world.notifications(DAN)
    assert [(n["kind"], n["actor_id"]) for n in told] == [("replied", None), ("new_replies", None)]
    shown = notification_json({**dict(told[0]), "title": "Topic 10", "slug": "topic-10"})
    assert shown["actor"] is None and shown["text"] == "anonymous replied to your post in “Topic 10”"
