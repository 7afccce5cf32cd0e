"""Reading a topic reads its "new replies" notification: when the forum records that a member read
further in a topic (the topic page or GET /api/topics/{id}), it writes topic.read, and notify marks
the member's unread `new_replies` notification for the topic read once they have read up to (or
past) the first reply it counts, as Discourse clears it when the first new reply was seen. A later
reply starts a new one; the event is idempotent and may arrive before the replies it covers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from notify_helpers import category, drain, post, topic

from services.forum.outbox import OUTBOX as FORUM_OUTBOX
from services.notify.notifications import live_stream_name, mark_read
from services.notify.writer import handle_event
from shared import events as ev

ALICE, BOB, CAROL, DAN = 601, 602, 603, 604  # apart from member_factory's ids (1, 2, ...)
TITLE = "Grounding before a hard shift"


# --- the forum for real: members post through the API, the relay publishes, the writer handles ---


@contextmanager
def _no_posting_limits(app: Any) -> Iterator[None]:
    """Let new members post as fast as a test needs (the new-member limit is 3 a minute)."""
    rt = app.apps["forum"].state.runtime
    before = rt.settings
    rt.settings = before.replace(posts_per_minute=1000, new_member_posts_per_minute=1000)
    try:
        yield
    finally:
        rt.settings = before


async def _sync(world) -> None:
    """Publish the forum's outbox and let notify's writer handle it."""
    await ev.Relay(world.pool, world.redis, ev.stream_name(world.settings.redis_prefix), FORUM_OUTBOX).publish_all()
    await drain(world.consumer)


async def _ok(response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


async def _opened(client, url: str) -> None:
    """A page (HTML) opened by a member."""
    response = await client.get(url)
    assert response.status_code == 200, response.text


class Community:
    """Alice starts a topic, Dan replies (tracking it by default), Bob and Carol reply after him."""

    def __init__(self, world, members: dict[str, Any], topic: dict[str, Any]) -> None:
        self.world = world
        self.members = members
        self.topic = topic

    async def replies(self, count: int) -> None:
        for n in range(count):
            who = self.members["bob" if n % 2 == 0 else "carol"]
            await _ok(await who.client.post(f"/api/topics/{self.topic['id']}/posts", json={"body": f"Reply {n}"}))
        await _sync(self.world)

    async def unread(self) -> dict[str, Any]:
        return await _ok(await self.members["dan"].client.get("/api/notifications"), 200)

    def page_url(self, page: int = 1) -> str:
        url = f"/t/{self.topic['slug']}/{self.topic['id']}"
        return url if page == 1 else f"{url}?page={page}"


async def _community(world, member_factory) -> Community:
    admin = await member_factory("admin_reads", roles=("admin",))
    members = {name: await member_factory(f"{name}_reads") for name in ("alice", "bob", "carol", "dan")}
    for member in (admin, *members.values()):
        await world.join(member.id, member.username)
    cat = await _ok(await admin.client.post("/api/categories", json={"name": "Shift work"}))
    started = await _ok(
        await members["alice"].client.post(
            "/api/topics", json={"category_id": cat["id"], "title": TITLE, "body": "What do you do first?"}
        )
    )
    await _ok(await members["dan"].client.post(f"/api/topics/{started['id']}/posts", json={"body": "I breathe."}))
    await _sync(world)
    return Community(world, members, started)


async def _count_entries(world, user_id: int) -> list[int]:
    entries = await world.redis.xrange(live_stream_name(world.settings.redis_prefix))
    return [int(f[b"n"]) for _, f in entries if f[b"u"] == str(user_id).encode()]


async def test_reading_the_topic_page_to_the_end_reads_the_new_replies(app, world, member_factory):
    """Dan replied with the default preference; eight replies follow; he opens the topic page and so
    reads to the end: his "8 new replies" notification is read, the unread count (and its live
    count) drops to 0; a ninth reply starts a new one."""
    with _no_posting_limits(app):
        forum = await _community(world, member_factory)
        await forum.replies(8)
        answer = await forum.unread()
        assert answer["unread"] == 1 and answer["items"][0]["data"]["count"] == 8

        await _opened(forum.members["dan"].client, forum.page_url())
        await _sync(world)
        answer = await forum.unread()
        assert answer["unread"] == 0
        [item] = answer["items"]
        assert item["kind"] == "new_replies" and item["read"] and item["data"]["count"] == 8
        assert (await _count_entries(world, forum.members["dan"].id))[-1] == 0

        await forum.replies(1)
        answer = await forum.unread()
        assert answer["unread"] == 1
        newest, older = answer["items"]
        assert not newest["read"] and older["read"] and newest["data"]["count"] == 1
        assert newest["post_number"] == 11


async def test_reading_through_the_json_api_counts_too(app, world, member_factory):
    """GET /api/topics/{id} marks the posts it returns read, and so the notification."""
    with _no_posting_limits(app):
        forum = await _community(world, member_factory)
        await forum.replies(3)
        assert (await forum.unread())["unread"] == 1
        await _ok(await forum.members["dan"].client.get(f"/api/topics/{forum.topic['id']}"), 200)
        await _sync(world)
        assert (await forum.unread())["unread"] == 0


async def test_the_first_page_of_a_long_topic_reads_it_only_when_it_covers_the_first_counted_reply(
    app, world, member_factory, pool
):
    """The rule: read once the member has read up to the first reply the notification counts. A first
    page (posts 1 to 20) covering it reads it; when the first counted reply is on page 2, page 1
    leaves it unread and page 2 reads it."""
    with _no_posting_limits(app):
        forum = await _community(world, member_factory)
        dan = forum.members["dan"]
        await forum.replies(19)  # posts 3..21: the first counted (3) is on page 1
        await _opened(dan.client, forum.page_url())
        await _sync(world)
        assert (await forum.unread())["unread"] == 0

        await forum.replies(4)  # posts 22..25: a new notification, its first on page 2
        [item] = [i for i in (await forum.unread())["items"] if not i["read"]]
        assert item["post_number"] == 22 and item["data"]["count"] == 4
        await _opened(dan.client, forum.page_url())  # read already: no new read state
        await _sync(world)
        assert (await forum.unread())["unread"] == 1

        async with pool.acquire() as conn:  # his read state behind page 1's end, as before he first read it
            await conn.execute(
                "UPDATE forum.topic_reads SET last_read_post_number = 3 WHERE user_id = $1 AND topic_id = $2",
                dan.id,
                forum.topic["id"],
            )
        await _opened(dan.client, forum.page_url())
        await _sync(world)
        assert (await forum.unread())["unread"] == 1, "page 1 ends at post 20, before the first counted reply"

        await _opened(dan.client, forum.page_url(2))
        await _sync(world)
        assert (await forum.unread())["unread"] == 0


async def test_topic_read_is_written_only_when_the_read_state_advances(app, world, member_factory, pool, client):
    """The topic page writes topic.read (audience: the member alone) when the member read further, and
    nothing on a view that does not advance, nor for a visitor."""
    with _no_posting_limits(app):
        forum = await _community(world, member_factory)
        await forum.replies(2)
        dan = forum.members["dan"]
        for _ in range(2):
            await _opened(dan.client, forum.page_url())
        await _opened(client, forum.page_url())
        rows = await pool.fetch("SELECT payload FROM forum.outbox WHERE type = 'topic.read' ORDER BY id")
        reads = [ev.Envelope(**row["payload"]).event() for row in rows]
        assert reads == [
            ev.TopicRead(user_id=dan.id, topic_id=forum.topic["id"], post_number=4, audience=[f"user:{dan.id}"])
        ]


# --- the writer alone: events in, as the forum writes them ---------------------------------------


async def _tracked_topic(world) -> None:
    """Alice starts topic 10; Dan replies (post 2) and so tracks it."""
    for user_id, name in ((ALICE, "alice"), (BOB, "bob"), (DAN, "dan")):
        await world.join(user_id, name)
    await world.emit(
        category(1),
        topic(10, author_id=ALICE, author_username="alice", title=TITLE),
        post(100, topic_id=10, number=1, author_id=ALICE, author_username="alice", topic_title=TITLE),
        post(101, topic_id=10, number=2, author_id=DAN, author_username="dan", topic_title=TITLE),
    )


def _reply(number: int) -> ev.PostCreated:
    return post(100 + number, topic_id=10, number=number, author_id=BOB, author_username="bob", topic_title=TITLE)


def _read(post_number: int) -> ev.TopicRead:
    return ev.TopicRead(user_id=DAN, topic_id=10, post_number=post_number, audience=[f"user:{DAN}"])


def _state(rows) -> list[tuple[int, int, bool]]:
    return [(r["post_number"], r["data"]["count"], r["read_at"] is not None) for r in rows]


async def test_the_same_read_event_twice_changes_nothing(world):
    """topic.read handled again (at least once delivery), after a new reply started a new
    notification, reads nothing more."""
    await _tracked_topic(world)
    await world.emit(_reply(3), _reply(4))
    [envelope] = await world.emit(_read(4), actor_id=DAN)
    await world.emit(_reply(5))
    before = await world.notifications(DAN)
    assert _state(before) == [(3, 2, True), (5, 1, False)]
    await handle_event(world.rt, envelope)
    await handle_event(world.rt, envelope)
    assert await world.notifications(DAN) == before


async def test_a_read_short_of_the_first_counted_reply_leaves_it_unread(world):
    """Having read up to post 4 does not read a notification whose first reply is post 5."""
    await _tracked_topic(world)
    await world.emit(_read(4), actor_id=DAN)
    await world.emit(_reply(5), _reply(6))
    await world.emit(_read(4), actor_id=DAN)
    assert _state(await world.notifications(DAN)) == [(5, 2, False)]
    await world.emit(_read(5), actor_id=DAN)
    assert _state(await world.notifications(DAN)) == [(5, 2, True)]


async def test_a_read_arriving_before_the_replies_it_covers(world):
    """topic.read for post 6 handled before posts 3..6 (another replica had them): those replies are
    read already and count nowhere; posts 7 and 8 start the notification."""
    await _tracked_topic(world)
    await world.emit(_read(6), actor_id=DAN)
    await world.emit(*[_reply(n) for n in range(3, 9)])
    assert _state(await world.notifications(DAN)) == [(7, 2, False)]


async def test_marking_read_then_reading_keeps_the_rule(world):
    """A notification marked read stays read; the read event reads only the member's own."""
    await _tracked_topic(world)
    await world.emit(_reply(3))
    async with world.pool.acquire() as conn:
        assert await mark_read(conn, DAN, None) == 1
    await world.emit(_reply(4))
    await world.emit(ev.TopicRead(user_id=BOB, topic_id=10, post_number=9, audience=[f"user:{BOB}"]), actor_id=BOB)
    assert _state(await world.notifications(DAN)) == [(3, 1, True), (4, 1, False)]
