"""Tracking a topic (issue 13, point 11): new replies by others collect into one unread
notification per topic ("8 new replies in" the title), linked to the first unread reply, updated in
place, started again once read; watching still tells of every reply; one line in the digest,
never a mail per reply."""

from __future__ import annotations

from notify_helpers import category, parts, post, topic

from services.notify import digests
from services.notify.notifications import live_stream_name, mark_read
from services.notify.worker import create_worker
from services.notify.writer import handle_event
from shared import events as ev
from shared.web import Runtime

ALICE, BOB, CAROL, DAN = 501, 502, 503, 504  # apart from member_factory's ids (1, 2, ...)
TITLE = "What helped me feel safe in A&E"
LQ, RQ = "\u2018", "\u2019"  # the curly quotes around a title


async def _members(world, *ids: int) -> None:
    names = {ALICE: "alice", BOB: "bob", CAROL: "carol", DAN: "dan"}
    for user_id in ids:
        await world.join(user_id, names[user_id])


async def _topic_with_her_reply(world, dan_id: int = DAN) -> None:
    """Alice starts the topic; Dan (who never chose a level) replies to it: he tracks it by default."""
    await world.emit(
        category(1),
        topic(10, author_id=ALICE, author_username="alice", title=TITLE),
        post(100, topic_id=10, number=1, author_id=ALICE, author_username="alice", topic_title=TITLE),
        post(101, topic_id=10, number=2, author_id=dan_id, author_username="dan", topic_title=TITLE),
    )


def _reply(post_id: int, number: int, author_id: int, **extra) -> ev.PostCreated:
    names = {ALICE: "alice", BOB: "bob", CAROL: "carol", DAN: "dan"}
    return post(
        post_id,
        topic_id=10,
        number=number,
        author_id=author_id,
        author_username=names.get(author_id, "someone"),
        topic_title=TITLE,
        **extra,
    )


async def _eight_replies(world) -> list[ev.Envelope]:
    """Eight replies after Dan's, from Bob and Carol in turn: posts 102..109, numbers 3..10."""
    envelopes = []
    for n in range(8):
        envelopes += await world.emit(_reply(102 + n, 3 + n, BOB if n % 2 == 0 else CAROL))
    return envelopes


async def _api_items(client) -> dict:
    response = await client.get("/api/notifications")
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_issues_case_eight_replies_make_one_notification_read_when_followed(world, member_factory):
    """Dan replied with the default preference; eight replies from two others follow: one unread
    notification, "8 new replies in" the title, linked to the first of them; following it reads it; a ninth
    reply starts a new one."""
    dan = await member_factory("dan")
    await _members(world, ALICE, BOB, CAROL)
    await world.join(dan.id, "dan")
    await _topic_with_her_reply(world, dan.id)
    await _eight_replies(world)

    answer = await _api_items(dan.client)
    assert answer["unread"] == 1
    [item] = answer["items"]
    assert item["kind"] == "new_replies" and not item["read"]
    assert item["text"] == f"8 new replies in {LQ}{TITLE}{RQ}"
    assert item["data"]["count"] == 8
    assert (item["url"], item["post_id"], item["post_number"]) == ("/p/102", 102, 3)
    page = (await dan.client.get("/notifications")).text
    assert "You have 1 unread notification." in page
    assert f"8 new replies in {LQ}What helped me feel safe in A&amp;E{RQ}" in page

    opened = await dan.client.get(f"/notifications/{item['id']}")
    assert opened.status_code == 303 and opened.headers["location"] == "/p/102"
    assert (await _api_items(dan.client))["unread"] == 0

    await world.emit(_reply(110, 11, BOB))
    answer = await _api_items(dan.client)
    assert answer["unread"] == 1
    newest, older = answer["items"]
    assert newest["id"] != older["id"] and older["read"] and not newest["read"]
    assert (newest["text"], newest["url"]) == (f"1 new reply in {LQ}{TITLE}{RQ}", "/p/110")
    assert older["data"]["count"] == 8, "a read notification keeps what it said"


async def test_the_notification_is_updated_in_place_and_the_live_count_follows(world):
    """Each new reply updates the one notification's count and time; the member's unread count goes
    out on the live stream once it exists, and marking it read starts a new one."""
    await _members(world, ALICE, BOB, CAROL, DAN)
    await _topic_with_her_reply(world)
    await world.emit(_reply(102, 3, BOB))
    [first] = await world.notifications(DAN)
    await world.emit(_reply(103, 4, CAROL))
    [second] = await world.notifications(DAN)
    assert first["id"] == second["id"]
    assert (first["data"]["count"], second["data"]["count"]) == (1, 2)
    assert second["updated_at"] > first["updated_at"] and second["created_at"] == first["created_at"]
    assert second["actor_id"] == CAROL and second["post_id"] == 102
    entries = await world.redis.xrange(live_stream_name(world.settings.redis_prefix))
    assert (str(DAN).encode(), b"1") in [(f[b"u"], f[b"n"]) for _, f in entries]

    async with world.pool.acquire() as conn:
        assert await mark_read(conn, DAN, None) == 1  # "Mark all as read"
    await world.emit(_reply(104, 5, BOB))
    rows = await world.notifications(DAN)
    assert [(r["data"]["count"], r["read_at"] is None, r["post_id"]) for r in rows] == [(2, False, 102), (1, True, 104)]


async def test_the_same_event_twice_counts_once(world):
    """At-least-once delivery: a post.created handled again, even after the notification was read, adds nothing."""
    await _members(world, ALICE, BOB, CAROL, DAN)
    await _topic_with_her_reply(world)
    envelopes = await _eight_replies(world)
    await handle_event(world.rt, envelopes[3])
    await handle_event(world.rt, envelopes[7])
    [row] = await world.notifications(DAN)
    assert row["data"]["count"] == 8
    await world.pool.execute("UPDATE notify.notifications SET read_at = now() WHERE user_id = $1", DAN)
    await handle_event(world.rt, envelopes[7])
    assert len(await world.notifications(DAN)) == 1, "a repeat after reading starts nothing new"


async def test_replies_by_muted_or_ignored_members_and_her_own_are_not_counted(world):
    """Dan muted Carol: of the eight replies, Bob's four count; his own later reply marks it read."""
    await _members(world, ALICE, BOB, CAROL, DAN)
    await world.emit(ev.UserMuted(user_id=DAN, muted_user_id=CAROL, level="muted"))
    await _topic_with_her_reply(world)
    await _eight_replies(world)
    [row] = await world.notifications(DAN)
    assert row["data"]["count"] == 4 and row["post_id"] == 102
    await world.emit(_reply(110, 11, DAN))
    [row] = await world.notifications(DAN)
    assert row["read_at"] is not None, "posting in the topic means he has read it"
    assert row["data"]["count"] == 4, "his own reply is not counted"


async def test_a_private_groups_topic_counts_only_for_members_who_may_read_it(world):
    """In a group's category, a replier who has since left the group is told nothing; a member and staff are."""
    await world.join(ALICE, "alice", group_ids=[5])
    await world.join(BOB, "bob", group_ids=[5])
    await world.join(CAROL, "carol", roles=["moderator"])
    await world.join(DAN, "dan", group_ids=[5])
    audience = ["group:5"]
    await world.emit(
        category(2, audience=audience),
        topic(20, author_id=ALICE, category_id=2, audience=audience, title="Group only"),
    )
    for number, author in ((1, ALICE), (2, BOB), (3, CAROL), (4, DAN)):
        await world.emit(
            post(200 + number, topic_id=20, number=number, author_id=author, category_id=2, audience=audience)
        )
    await world.emit(ev.GroupMemberRemoved(group_id=5, group_name="Group 5", user_id=DAN, how="left"))
    await world.emit(post(205, topic_id=20, number=5, author_id=ALICE, category_id=2, audience=audience))
    # Bob: Carol's, Dan's and Alice's replies after his; Carol (staff, not in the group): Dan's and Alice's.
    assert [(r["kind"], r["data"]["count"]) for r in await world.notifications(BOB)] == [("new_replies", 3)]
    assert [(r["kind"], r["data"]["count"]) for r in await world.notifications(CAROL)] == [("new_replies", 2)]
    assert await world.notifications(DAN) == [], "no longer in the group: not told, not counted"


async def test_watching_still_tells_of_every_reply_and_tracking_never_doubles_a_personal_notification(world):
    """A watcher gets one notification per reply; a tracker replied to directly gets that reply as
    'replied', and it is not counted again among the new replies."""
    await _members(world, ALICE, BOB, CAROL, DAN)
    await _topic_with_her_reply(world)
    await world.emit(_reply(102, 3, BOB), _reply(103, 4, CAROL, reply_to_user_id=DAN), _reply(104, 5, BOB))
    assert [r["kind"] for r in await world.notifications(ALICE)] == ["posted"] * 4
    kinds = [(r["kind"], r["post_id"], r["data"].get("count")) for r in await world.notifications(DAN)]
    assert kinds == [("new_replies", 102, 2), ("replied", 103, None)]


async def test_hidden_or_deleted_replies_are_taken_out_of_the_count(world):
    """A reply hidden or deleted before Dan read the notification is no longer counted (corrected
    when that event arrives); a restored one counts again; the last one gone takes the notification."""
    await _members(world, ALICE, BOB, CAROL, DAN)
    await _topic_with_her_reply(world)
    await world.emit(_reply(102, 3, BOB), _reply(103, 4, CAROL), _reply(104, 5, BOB))
    about = {"topic_id": 10, "category_id": 1}
    await world.emit(ev.PostHidden(post_id=102, author_id=BOB, reason="spam", **about))
    [row] = await world.notifications(DAN)
    assert (row["data"]["count"], row["post_id"], row["post_number"]) == (2, 103, 4)
    await world.emit(ev.PostDeleted(post_id=104, author_id=BOB, post_number=5, **about))
    [row] = await world.notifications(DAN)
    assert row["data"]["count"] == 1
    await world.emit(ev.PostRestored(post_id=102, author_id=BOB, **about))
    [row] = await world.notifications(DAN)
    assert (row["data"]["count"], row["post_id"]) == (2, 102)
    await world.emit(
        ev.PostDeleted(post_id=102, author_id=BOB, post_number=3, **about),
        ev.PostDeleted(post_id=103, author_id=CAROL, post_number=4, **about),
    )
    assert await world.notifications(DAN) == []


async def test_tracked_replies_are_one_line_in_the_digest_and_never_a_mail_each(world, smtp, mail_settings):
    """Dan wants every mail: the worker mails him the one reply made to him, none of the tracked ones;
    his digest has one line for the topic he tracks."""
    await _members(world, ALICE, BOB, CAROL, DAN)
    await world.pool.execute("UPDATE notify.users SET registered_at = now() - interval '8 days'")
    await world.pool.execute(
        "INSERT INTO notify.preferences (user_id, email_on_reply, email_on_watched) VALUES ($1, 'always', 'always')",
        DAN,
    )
    await _topic_with_her_reply(world)
    await _eight_replies(world)
    await world.emit(_reply(110, 11, CAROL, reply_to_user_id=DAN))
    worker = create_worker(mail_settings, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert [m["Subject"] for m in smtp[0].to("dan@example.org")] == [f"carol replied to your post in “{TITLE}”"]

    rt = world.rt
    ctx = {"runtime": Runtime(mail_settings, rt.pool, rt.redis, rt.sessions, rt.extras), "job_try": 1}
    assert await digests.send_digest(ctx, DAN, "k1", force=True) == "sent"
    [message] = [m for m in smtp[0].to("dan@example.org") if "summary" in m["Subject"]]
    text, html = parts(message)
    assert text.count(f"8 new replies in {LQ}{TITLE}{RQ}") == 1
    assert f"8 new replies in {LQ}What helped me feel safe in A&amp;E{RQ}</a>" in html
    assert "/p/102" in text and "/p/102" in html
    assert text.index("TOPICS YOU TRACK") < text.index("MOST ACTIVE CONVERSATIONS")


async def test_the_preferences_page_says_what_tracking_and_watching_mean(member_factory):
    """The page's help text tells tracking (one counting notification, no email) from watching (every reply)."""
    page = (await (await member_factory("erin")).client.get("/preferences")).text
    assert "Watching a topic tells you of every new reply, one notification each" in page
    assert f"{LQ}Grounding techniques{RQ}" in page and "Tracking never sends an email for a reply" in page
