"""Posting in a topic follows it as the member prefers (issue 13, point 11): watching for topics
they start and tracking for topics they reply to unless they chose otherwise in their
preferences; a level they chose on the topic itself is never changed by posting."""

from __future__ import annotations

from notify_helpers import category, post, topic

from services.notify.preferences import update_preferences

ALICE, BOB, CAROL, DAN = 1, 2, 3, 4


async def _community(world) -> None:
    for user_id, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAN, "dan")):
        await world.join(user_id, name)
    await world.emit(
        category(1),
        topic(10, author_id=ALICE, author_username="alice"),
        post(100, topic_id=10, number=1, author_id=ALICE, author_username="alice"),
    )


async def _prefer(world, user_id: int, **choices: str) -> None:
    async with world.pool.acquire() as conn:
        await update_preferences(conn, user_id, choices)


async def _level(world, user_id: int, topic_id: int = 10) -> str | None:
    return await world.pool.fetchval(
        "SELECT level FROM notify.watches WHERE user_id = $1 AND target_kind = 'topic' AND target_id = $2",
        user_id,
        topic_id,
    )


async def test_a_member_who_prefers_watching_replies_is_told_of_every_later_reply(world):
    """Bob prefers to watch what he replies to: after his reply, each later reply tells him."""
    await _community(world)
    await _prefer(world, BOB, watch_on_reply="watching")
    await world.emit(post(101, topic_id=10, number=2, author_id=BOB, author_username="bob"))
    assert await _level(world, BOB) == "watching"
    for n in range(8):
        await world.emit(post(102 + n, topic_id=10, number=3 + n, author_id=CAROL, author_username="carol"))
    assert [x["kind"] for x in await world.notifications(BOB)] == ["posted"] * 8


async def test_by_default_replying_tracks_and_starting_watches(world):
    """Without a preference: the starter watches (told of every post), a replier tracks (told of replies
    to them, and of other new replies in one count: test_tracking.py)."""
    await _community(world)
    await world.emit(post(101, topic_id=10, number=2, author_id=BOB, author_username="bob"))
    assert (await _level(world, ALICE), await _level(world, BOB)) == ("watching", "tracking")
    await world.emit(post(102, topic_id=10, number=3, author_id=CAROL, reply_to_user_id=BOB))
    await world.emit(post(103, topic_id=10, number=4, author_id=CAROL))
    told = [(x["kind"], x["post_id"]) for x in await world.notifications(BOB)]
    assert told == [("replied", 102), ("new_replies", 103)]
    assert [x["kind"] for x in await world.notifications(ALICE)] == ["posted"] * 3


async def test_a_member_who_prefers_tracking_for_topics_they_start_is_not_told_of_every_post(world):
    """Alice prefers to track the topics she starts: her new topic is tracked, not watched (Bob's reply
    is counted among new replies, not told as a post)."""
    for user_id, name in ((ALICE, "alice"), (BOB, "bob")):
        await world.join(user_id, name)
    await _prefer(world, ALICE, watch_on_start="tracking")
    await world.emit(
        category(1),
        topic(11, author_id=ALICE, author_username="alice"),
        post(110, topic_id=11, number=1, author_id=ALICE, author_username="alice"),
        post(111, topic_id=11, number=2, author_id=BOB, author_username="bob"),
    )
    assert await _level(world, ALICE, 11) == "tracking"
    assert [(x["kind"], x["data"]["count"]) for x in await world.notifications(ALICE)] == [("new_replies", 1)]


async def test_posting_never_changes_a_level_the_member_chose(world):
    """Muted stays muted and watching stays watching when the member replies, whatever they prefer;
    a starter who replies in their own topic keeps the starter's level."""
    await _community(world)
    await world.watch(DAN, "topic:10", "muted")
    await world.watch(CAROL, "topic:10", "watching")
    await _prefer(world, DAN, watch_on_reply="watching")
    await _prefer(world, CAROL, watch_on_reply="normal")
    await _prefer(world, ALICE, watch_on_reply="normal")
    await world.emit(
        post(101, topic_id=10, number=2, author_id=DAN, author_username="dan"),
        post(102, topic_id=10, number=3, author_id=CAROL, author_username="carol"),
        post(103, topic_id=10, number=4, author_id=ALICE, author_username="alice"),
        post(104, topic_id=10, number=5, author_id=BOB, author_username="bob", reply_to_user_id=DAN),
    )
    assert (await _level(world, DAN), await _level(world, CAROL), await _level(world, ALICE)) == (
        "muted",
        "watching",
        "watching",
    )
    assert await world.notifications(DAN) == []
    assert [x["kind"] for x in await world.notifications(CAROL)] == ["posted"] * 3  # 101, 103, 104


async def test_the_preferences_api_has_the_two_follow_levels(world, member_factory):
    """GET /api/me/preferences gives watch_on_start and watch_on_reply with their defaults; PUT changes one."""
    alice = await member_factory("alice")
    got = (await alice.client.get("/api/me/preferences")).json()
    assert (got["watch_on_start"], got["watch_on_reply"]) == ("watching", "tracking")
    put = await alice.client.put("/api/me/preferences", json={"watch_on_reply": "watching"})
    assert put.status_code == 200, put.text
    assert (put.json()["watch_on_start"], put.json()["watch_on_reply"]) == ("watching", "watching")
    assert put.json()["digest"] == "weekly"
    wrong = await alice.client.put("/api/me/preferences", json={"watch_on_reply": "muted"})
    assert wrong.status_code in (400, 422), wrong.text
    page = (await alice.client.get("/preferences")).text
    assert 'name="watch_on_reply" type="radio" value="watching" checked' in page or (
        'id="watch_on_reply"' in page and 'value="watching" checked' in page
    )
