"""The /live websocket on real uvicorn, with real websocket clients."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from notify_helpers import category, emit, post, reaction, registered, serving, topic, updated, wait_for
from private_redis import PrivateRedis
from websockets.asyncio.client import ClientConnection, connect

from services.notify.app import create_app
from services.notify.live import Hub
from services.notify.live_wire import CLOSE_SESSION_ENDED
from shared import events as ev
from shared.sessions import CSRF_COOKIE, SESSION_COOKIE, Session, SessionStore

ALICE, BOB = 1, 2


@dataclass
class LiveServer:
    port: int
    app: Any
    settings: Any
    pool: Any
    redis: Any

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/live"

    @property
    def hub(self) -> Hub:
        return self.app.state.runtime.extras["hub"]

    async def emit(self, *events: ev.Event) -> list[ev.Envelope]:
        return await emit(self.pool, self.redis, self.settings, *events)

    async def session(
        self, user_id: int, username: str, *, group_ids: tuple[int, ...] = (), roles: tuple[str, ...] = ("member",)
    ) -> Session:
        store = SessionStore(self.redis, self.settings.redis_prefix)
        return await store.create(user_id=user_id, username=username, roles=list(roles), group_ids=list(group_ids))

    def connect(self, session: Session | None = None, **options: Any) -> Any:
        headers = {"Cookie": f"{SESSION_COOKIE}={session.id}"} if session else {}
        return connect(self.url, additional_headers=headers, open_timeout=5, **options)

    async def known(self, table: str, row_id: int) -> None:
        """Wait until the server's writer has projected a row (a topic or category)."""
        await wait_for(
            lambda: self.pool.fetchval(f"SELECT 1 FROM notify.{table} WHERE id = $1", row_id),
            what=f"notify.{table} {row_id}",
        )


@pytest_asyncio.fixture(loop_scope="session")
async def live(migrated, pool, redis) -> AsyncIterator[LiveServer]:
    """notify alone under uvicorn, its writer and fan-out running."""
    app = create_app(migrated, background=True)
    async with serving(app) as port:
        server = LiveServer(port, app, migrated, pool, redis)
        await wait_for(lambda: _running(server), what="the live fan-out")
        yield server


async def _running(server: LiveServer) -> bool:
    return server.hub.running


async def _public_topic(live: LiveServer, topic_id: int = 10, category_id: int = 1) -> None:
    await live.emit(category(category_id), topic(topic_id, author_id=ALICE, category_id=category_id))
    await live.known("topics", topic_id)


async def receive(ws: ClientConnection, timeout_s: float = 5.0) -> dict[str, Any]:
    """The next message that is not a ping."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if message["type"] != "ping":
            return message


async def subscribe(ws: ClientConnection, channels: list[str], last_event_id: str | None = None) -> list[dict]:
    """Subscribe and collect everything up to the server's acknowledgement."""
    await ws.send(json.dumps({"type": "subscribe", "channels": channels, "last_event_id": last_event_id}))
    got = []
    while True:
        message = await receive(ws)
        if message["type"] == "subscribed":
            return got
        got.append(message)
        if message["type"] == "error" and "channel" not in message:
            return got
        if message["type"] == "error" and set(channels) <= {m.get("channel") for m in got if m["type"] == "error"}:
            return got


async def nothing_more(ws: ClientConnection, within_s: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await receive(ws, within_s)


async def test_a_subscribed_client_receives_new_posts_live(live):
    """An anonymous reader of a public topic gets the post the moment it is published, and only page facts."""
    await _public_topic(live)
    async with live.connect() as ws:
        assert await subscribe(ws, ["topic:10"]) == []
        committed = time.monotonic()
        [envelope] = await live.emit(
            post(
                101,
                topic_id=10,
                number=2,
                author_id=BOB,
                author_username="bob",
                text="private words stay on the page",
                mentioned=(ALICE,),
            )
        )
        message = await receive(ws)
        assert time.monotonic() - committed < 2
        assert message == {
            "type": "event",
            "id": message["id"],
            "channel": "topic:10",
            "event": "post.created",
            "data": {"post_id": 101, "topic_id": 10, "post_number": 2, "author_username": "bob"},
        }
        await live.emit(post(201, topic_id=20, number=2, author_id=BOB))  # another topic: not on this channel
        await live.emit(ev.PostHidden(post_id=101, topic_id=10, category_id=1, author_id=BOB, reason="Flagged"))
        hidden = await receive(ws)
        assert (hidden["event"], hidden["data"]) == ("post.hidden", {"post_id": 101, "topic_id": 10})
        assert envelope.id not in json.dumps(hidden), "stream ids, not event ids, identify messages"


async def test_resume_after_a_disconnect_delivers_exactly_the_missed_events(live):
    await _public_topic(live)
    async with live.connect() as ws:
        await subscribe(ws, ["topic:10", "category:1"])
        await live.emit(post(101, topic_id=10, number=2, author_id=BOB))
        seen = [await receive(ws), await receive(ws)]
        assert {m["channel"] for m in seen} == {"topic:10", "category:1"}
        last_id = seen[-1]["id"]
    # Missed while away: two posts here, one elsewhere, an edit and a reaction here.
    await live.emit(post(102, topic_id=10, number=3, author_id=BOB))
    await live.emit(post(301, topic_id=30, number=2, author_id=BOB, category_id=3))
    await live.emit(
        ev.PostEdited(
            post_id=102,
            topic_id=10,
            post_number=3,
            category_id=1,
            author_id=BOB,
            author_username="bob",
            text="edited",
            content_note=None,
            audience=["public"],
            revision=2,
        )
    )
    await live.emit(reaction(101, topic_id=10, post_author_id=BOB, user_id=ALICE))
    async with live.connect() as ws:
        replayed = await subscribe(ws, ["topic:10"], last_event_id=last_id)
        assert [(m["event"], m["data"].get("post_id")) for m in replayed] == [
            ("post.created", 102),
            ("post.edited", 102),
            ("reaction.added", 101),
        ]
        assert all(m["channel"] == "topic:10" for m in replayed)
        ids = [m["id"] for m in replayed]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        await live.emit(post(103, topic_id=10, number=4, author_id=BOB))
        fresh = await receive(ws)
        assert fresh["data"]["post_id"] == 103
        await nothing_more(ws)


async def test_a_channel_the_viewer_may_not_see_is_refused(live):
    await live.emit(
        category(1),
        category(2, audience=["group:5"]),
        topic(10, author_id=ALICE),
        topic(20, author_id=ALICE, category_id=2, audience=["group:5"]),
    )
    await live.known("topics", 20)
    outsider = await live.session(BOB, "bob")
    insider = await live.session(ALICE, "alice", group_ids=(5,))
    async with live.connect() as ws:
        answers = await subscribe(ws, ["topic:20", "category:2", "topic:15", "user:1", "topic:x", "topic:10"])
        assert {(m["channel"], m["code"]) for m in answers} == {
            ("topic:20", "forbidden"),
            ("category:2", "forbidden"),
            ("topic:15", "forbidden"),
            ("user:1", "unauthorized"),
            ("topic:x", "bad_channel"),
        }
        assert all(m["type"] == "error" and m["message"] for m in answers)
    async with live.connect(outsider) as ws:
        answers = await subscribe(ws, ["topic:20", "user:1", "user:2"])
        errors = {(m["channel"], m["code"]) for m in answers if m["type"] == "error"}
        assert errors == {("topic:20", "forbidden"), ("user:1", "forbidden")}
        assert [m["channel"] for m in answers if m["type"] == "event"] == ["user:2"], "their own notifications"
    async with live.connect(insider) as ws:
        answers = await subscribe(ws, ["topic:20", "category:2"])
        assert answers == []
        await live.emit(post(201, topic_id=20, number=2, author_id=BOB, category_id=2, audience=["group:5"]))
        assert (await receive(ws))["data"]["post_id"] == 201


async def test_lists_filter_each_event_by_audience(live):
    """`latest` is open to all, but each topic reaches only those who may see it."""
    await live.emit(category(1), category(2, audience=["group:5"]))
    moderator = await live.session(9, "mod", roles=("moderator",))
    async with live.connect() as anonymous, live.connect(moderator) as staff:
        await subscribe(anonymous, ["latest"])
        await subscribe(staff, ["latest"])
        await live.emit(topic(20, author_id=ALICE, category_id=2, audience=["group:5"]))
        await live.emit(topic(10, author_id=ALICE, category_id=1))
        assert (await receive(anonymous))["data"] == {"topic_id": 10, "category_id": 1}
        assert [(await receive(staff))["data"]["topic_id"], (await receive(staff))["data"]["topic_id"]] == [20, 10]


async def test_user_events_and_private_fields_never_reach_channels(live):
    """user.* events carry email addresses: they never leave on any channel; post text stays out too."""
    await _public_topic(live)
    async with live.connect() as ws:
        await subscribe(ws, ["topic:10", "category:1", "latest"])
        await live.emit(
            registered(50, "newbie", email_address="secret.person@example.org"),
            updated(50, "newbie", email_address="secret.person@example.org"),
            ev.UserSeen(user_id=50, seen_at="2026-01-01T00:00:00+00:00"),
            ev.UserMuted(user_id=50, muted_user_id=ALICE, level="muted"),
            ev.UserSuspended(user_id=50, until=None, reason="private reason"),
        )
        await live.emit(
            post(101, topic_id=10, number=2, author_id=50, author_username="newbie", text="my private story")
        )
        got = [await receive(ws) for _ in range(3)]
        await nothing_more(ws)
    raw = json.dumps(got)
    assert {m["event"] for m in got} == {"post.created"}
    for secret in ("secret.person", "example.org", "private reason", "my private story"):
        assert secret not in raw


async def test_the_user_channel_carries_the_unread_count(live):
    await _public_topic(live)
    alice = await live.session(ALICE, "alice")
    await live.emit(registered(ALICE, "alice"))
    async with live.connect(alice) as ws:
        [first] = await subscribe(ws, [f"user:{ALICE}"])
        assert (first["channel"], first["event"], first["data"]) == ("user:1", "notification.count", {"unread": 0})
        await live.emit(post(101, topic_id=10, number=2, author_id=BOB, reply_to_user_id=ALICE))
        counted = await receive(ws)
        assert (counted["event"], counted["data"]) == ("notification.count", {"unread": 1})
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{live.port}", cookies={SESSION_COOKIE: alice.id, CSRF_COOKIE: alice.csrf}
        ) as http:
            response = await http.post(
                "/api/notifications/read", json={"all": True}, headers={"X-CSRF-Token": alice.csrf}
            )
            assert response.status_code == 204
        assert (await receive(ws))["data"] == {"unread": 0}


async def test_an_id_older_than_the_stream_keeps_gets_reset(live):
    await _public_topic(live)
    async with live.connect() as ws:
        await subscribe(ws, ["topic:10"])
        await live.emit(post(101, topic_id=10, number=2, author_id=BOB))
        old_id = (await receive(ws))["id"]
    for number in range(3, 8):
        await live.emit(post(100 + number, topic_id=10, number=number, author_id=BOB))
    await live.redis.xtrim(ev.stream_name(live.settings.redis_prefix), maxlen=2, approximate=False)
    async with live.connect() as ws:
        end = await _stream_end(live)
        assert await subscribe(ws, ["topic:10"], last_event_id=old_id) == [
            {"type": "reset", "channel": "topic:10", "id": end}
        ], "reset says where to go on from"
        await live.emit(post(108, topic_id=10, number=8, author_id=BOB))
        assert (await receive(ws))["data"]["post_id"] == 108
    async with live.connect() as ws:
        future = "99999999999999-0"
        end = await _stream_end(live)
        assert await subscribe(ws, ["topic:10"], last_event_id=future) == [
            {"type": "reset", "channel": "topic:10", "id": end}
        ]
        bad = await subscribe(ws, ["topic:10"], last_event_id="yesterday")
        assert bad[0]["code"] == "bad_last_event_id"


async def test_malformed_messages_get_errors_and_pings_get_pongs(live):
    await live.emit(category(1, audience=["group:5"]), topic(100, author_id=ALICE, audience=["group:5"]))
    await live.known("topics", 100)  # ids below it that notify does not know are refused, not pending
    async with live.connect() as ws:
        for sent, code in (
            ("not json", "bad_message"),
            ("[1, 2]", "bad_message"),
            ('{"type": "dance"}', "bad_message"),
            ('{"type": "subscribe"}', "bad_message"),
            ('{"type": "subscribe", "channels": "topic:1"}', "bad_message"),
            ("x" * 9000, "too_large"),
        ):
            await ws.send(sent)
            answer = await receive(ws)
            assert (answer["type"], answer["code"]) == ("error", code), sent
        await ws.send('{"type": "ping"}')
        assert await receive(ws) == {"type": "pong"}
        await ws.send(json.dumps({"type": "subscribe", "channels": [f"topic:{i}" for i in range(1, 60)]}))
        answers = [await receive(ws) for _ in range(51)]
        assert sum(1 for a in answers if a.get("code") == "forbidden") == 51


async def test_other_sites_may_not_open_the_socket_with_the_members_cookie(live):
    alice = await live.session(ALICE, "alice")
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with live.connect(alice, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with live.connect(alice, origin=f"http://127.0.0.1:{live.port}") as ws:
        assert await subscribe(ws, [f"user:{ALICE}"]) != []


async def test_an_ended_session_closes_the_socket(live):
    alice = await live.session(ALICE, "alice")
    async with live.connect(alice) as ws:
        await subscribe(ws, [f"user:{ALICE}"])
        await SessionStore(live.redis, live.settings.redis_prefix).delete(alice)
        await live.hub.check_sessions()
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.rcvd.code == CLOSE_SESSION_ENDED


def _stuck_socket(port: int) -> socket.socket:
    """A websocket client that completes the handshake, then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101")
    payload = json.dumps({"type": "subscribe", "channels": ["topic:10"], "last_event_id": None}).encode()
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


async def test_a_slow_client_is_disconnected_and_slows_no_one(live):
    """A client that stops reading fills its queue and is dropped; a reading client gets every event meanwhile."""
    await _public_topic(live)
    live.hub.queue_size = 200  # above the fan-out's batch of 100
    stuck = await asyncio.to_thread(_stuck_socket, live.port)
    try:
        async with live.connect(max_queue=None) as fast:
            await subscribe(fast, ["topic:10"])
            await wait_for(lambda: _subscribers(live, 2), what="both clients subscribed")
            stream = ev.stream_name(live.settings.redis_prefix)
            total, batch = 20_000, 1000
            started = time.monotonic()
            for start in range(0, total, batch):
                pipe = live.redis.pipeline(transaction=False)
                for i in range(start, start + batch):
                    event = post(10_000 + i, topic_id=10, number=i + 2, author_id=BOB)
                    pipe.xadd(stream, {ev.STREAM_FIELD: ev.Envelope.wrap(event, actor_id=BOB).to_json()})
                await pipe.execute()
            received = 0
            while received < total:
                message = await receive(fast, timeout_s=10)
                received += message["type"] == "event"
            elapsed = time.monotonic() - started
            assert live.hub.stats.kicked_slow == 1, "the stuck client was dropped"
            assert received == total and elapsed < 30
            assert _subscribers_now(live) == 1
    finally:
        stuck.close()


async def _subscribers(live: LiveServer, count: int) -> bool:
    return _subscribers_now(live) == count


def _subscribers_now(live: LiveServer) -> int:
    return len(live.hub.channels.get("topic:10", ()))


async def _stream_end(live: LiveServer) -> str:
    info = await live.redis.xinfo_stream(ev.stream_name(live.settings.redis_prefix))
    value = info["last-generated-id"]
    return value.decode() if isinstance(value, bytes) else str(value)


async def _publish_posts(live: LiveServer, first_id: int, count: int, topic_id: int = 10) -> None:
    """Many posts straight onto the stream, as the relay would publish them."""
    stream = ev.stream_name(live.settings.redis_prefix)
    pipe = live.redis.pipeline(transaction=False)
    for i in range(count):
        event = post(first_id + i, topic_id=topic_id, number=first_id + i, author_id=BOB)
        pipe.xadd(stream, {ev.STREAM_FIELD: ev.Envelope.wrap(event, actor_id=BOB).to_json()})
    await pipe.execute()


# --- resuming from far back (issue 12, defect 3) --------------------------------------------------------------


async def test_a_resume_from_hundreds_back_streams_through_and_more_than_the_limit_resets_at_once(live):
    """The issue's case: 977 entries missed on three channels (2,931 messages; the queue holds 256)
    while posts keep coming at 30 a second: all arrive in order, without a 4008, in well under a
    second or two; more than REPLAY_LIMIT back is answered `reset` at once, with the id to go on from."""
    await _public_topic(live)
    channels = ["topic:10", "category:1", "latest"]
    async with live.connect() as ws:
        await subscribe(ws, channels)
        await live.emit(post(101, topic_id=10, number=2, author_id=BOB))
        last_id = [(await receive(ws))["id"] for _ in channels][-1]
    await _publish_posts(live, 1000, 977)
    posting = asyncio.create_task(_keep_posting(live, first_id=5000, per_s=30))
    try:
        async with live.connect(max_queue=None) as ws:
            started = time.monotonic()
            replayed = await subscribe(ws, channels, last_event_id=last_id)
            assert time.monotonic() - started < 5
            assert {m["type"] for m in replayed} == {"event"}
            for channel in channels:
                got = [m["data"]["post_id"] for m in replayed if m["channel"] == channel]
                assert got[:977] == list(range(1000, 1977)), channel
                assert got[977:] == sorted(got[977:]) and set(got[977:]) <= set(range(5000, 6000))
            assert live.hub.stats.kicked_slow == 0
    finally:
        posting.cancel()
    await _publish_posts(live, 2000, 1001)
    async with live.connect() as ws:
        started = time.monotonic()
        answers = await subscribe(ws, ["topic:10"], last_event_id=last_id)
        assert answers == [{"type": "reset", "channel": "topic:10", "id": await _stream_end(live)}]
        assert time.monotonic() - started < 1


async def _keep_posting(live: LiveServer, *, first_id: int, per_s: int) -> None:
    for post_id in itertools.count(first_id):
        await _publish_posts(live, post_id, 1)
        await asyncio.sleep(1 / per_s)


# --- who a viewer is follows the stream (issue 12, defect 10) --------------------------------------------------


def _removed(user_id: int, group_id: int = 5) -> ev.GroupMemberRemoved:
    return ev.GroupMemberRemoved(group_id=group_id, group_name="Peers", user_id=user_id, how="removed", removed_by=9)


async def _private_world(live: LiveServer) -> None:
    await live.emit(
        category(1),
        category(2, audience=["group:5"]),
        topic(20, author_id=BOB, category_id=2, audience=["group:5"]),
    )
    await live.known("topics", 20)


def _private_post(post_id: int) -> ev.PostCreated:
    return post(post_id, topic_id=20, number=post_id, author_id=BOB, category_id=2, audience=["group:5"])


async def test_a_member_removed_from_a_group_stops_receiving_its_events_at_once(live):
    """Within a second of group.member_removed the channel is refused and nothing of the group
    arrives, not even a hidden post's ids; a session read from Redis before the forum refreshed it
    gives nothing back; public events still flow."""
    await _private_world(live)
    alice = await live.session(ALICE, "alice", group_ids=(5,))
    async with live.connect(alice) as ws:
        assert await subscribe(ws, ["topic:20", "latest"]) == []
        await live.emit(_private_post(201))
        assert {(await receive(ws))["channel"] for _ in range(2)} == {"topic:20", "latest"}
        removed_at = time.monotonic()
        await live.emit(_removed(ALICE), updated(ALICE, "alice", group_ids=[]))
        assert await receive(ws) == {
            "type": "error",
            "code": "forbidden",
            "message": "You cannot follow that topic.",
            "channel": "topic:20",
        }
        assert time.monotonic() - removed_at < 1
        await live.emit(_private_post(202), ev.PostHidden(post_id=201, topic_id=20, category_id=2, author_id=BOB,
                                                          reason="Flagged"))  # fmt: skip
        await live.hub.check_sessions()  # the session in Redis still names group 5
        await live.emit(_private_post(203))
        await nothing_more(ws, 0.5)
        await live.emit(topic(11, author_id=BOB, category_id=1))
        assert (await receive(ws))["data"]["topic_id"] == 11, "public events still arrive"


async def test_joining_a_group_demotion_and_suspension_reach_open_sockets_at_once(live):
    await _private_world(live)
    bob = await live.session(BOB, "bob")
    moderator = await live.session(9, "mod", roles=("moderator",))
    suspended = await live.session(ALICE, "alice")
    async with live.connect(bob) as member, live.connect(moderator) as staff, live.connect(suspended) as gone:
        assert await subscribe(member, ["latest"]) == []
        assert await subscribe(staff, ["topic:20"]) == []
        assert await subscribe(gone, ["latest"]) == []
        await live.emit(ev.GroupMemberAdded(group_id=5, group_name="Peers", user_id=BOB, how="added", added_by=9))
        await live.emit(_private_post(201))
        assert (await receive(member))["data"]["post_id"] == 201, "a group joined counts at once"
        assert (await receive(staff))["data"]["post_id"] == 201
        await live.emit(updated(9, "mod", roles=["member"]))
        assert (await receive(staff))["code"] == "forbidden", "a demoted moderator loses what staff may read"
        await live.emit(ev.UserSuspended(user_id=ALICE, until=None, reason="private reason"))
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await receive(gone, timeout_s=1)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_SESSION_ENDED


# --- a channel notify does not know yet (issue 12, defect 16) ---------------------------------------------------


async def test_a_topic_not_known_yet_is_pending_then_subscribed_with_its_first_replies(live):
    await live.emit(category(1))
    await live.known("categories", 1)
    alice = await live.session(ALICE, "alice")
    async with live.connect(alice) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channels": ["topic:30"], "last_event_id": None}))
        assert await receive(ws) == {"type": "pending", "channel": "topic:30"}
        await live.emit(topic(30, author_id=ALICE))
        await live.emit(post(301, topic_id=30, number=2, author_id=BOB))
        got = [await receive(ws), await receive(ws)]
        assert {"type": "subscribed", "channels": ["topic:30"]} in got
        assert [m["data"]["post_id"] for m in got if m["type"] == "event"] == [301]
        await live.emit(post(302, topic_id=30, number=3, author_id=BOB))
        assert (await receive(ws))["data"]["post_id"] == 302
        await nothing_more(ws)


async def test_a_pending_channel_that_turns_out_private_is_refused_no_sooner_than_an_unknown_one(live):
    """Nothing is delivered before access is known; a forbidden one and one that never appears
    are both refused at the deadline; an unknown id below the newest is refused at once."""
    live.hub.pending_s = 1.5
    await live.emit(category(1), category(2, audience=["group:5"]))
    await live.known("categories", 2)
    bob = await live.session(BOB, "bob")
    async with live.connect(bob) as ws:
        asked = time.monotonic()
        await ws.send(json.dumps({"type": "subscribe", "channels": ["topic:31", "topic:99"], "last_event_id": None}))
        assert [await receive(ws), await receive(ws)] == [
            {"type": "pending", "channel": "topic:31"},
            {"type": "pending", "channel": "topic:99"},
        ]
        await live.emit(topic(31, author_id=ALICE, category_id=2, audience=["group:5"]))
        await live.emit(post(311, topic_id=31, number=2, author_id=ALICE, category_id=2, audience=["group:5"]))
        answers = [await receive(ws), await receive(ws)]
        assert time.monotonic() - asked >= 1.4
        assert sorted((m["type"], m["code"], m["channel"]) for m in answers) == [
            ("error", "forbidden", "topic:31"),
            ("error", "forbidden", "topic:99"),
        ]
        await nothing_more(ws)
        assert await subscribe(ws, ["topic:25"]) == [
            {"type": "error", "code": "forbidden", "message": "You cannot follow that topic.", "channel": "topic:25"}
        ]


# --- hostile messages (issue 12, defect 6) ------------------------------------------------------------------------


async def test_hostile_messages_are_answered_and_the_socket_stays_usable(live):
    async with live.connect() as ws:
        for sent, code in (
            ("[" * 4000, "bad_message"),
            ('{"a":' * 3000 + "1" + "}" * 3000, "too_large"),
            ('{"a":' * 1200 + "1" + "}" * 1200, "bad_message"),  # 7,201 bytes, 1,200 deep
            ("€" * 3000, "too_large"),  # 3,000 characters, 9,000 bytes
            (b"\xff\xfe{}", "bad_message"),
            ('{"type": "unsubscribe", "channels": [[1], {}]}', None),
        ):
            await ws.send(sent)
            if code is not None:
                answer = await receive(ws)
                assert (answer["type"], answer["code"]) == ("error", code), sent[:20]
        await ws.send(json.dumps({"type": "subscribe", "channels": [["topic:1"], {"a": 1}, None]}))
        answers = [await receive(ws) for _ in range(3)]
        assert [a["code"] for a in answers] == ["bad_channel"] * 3
        await ws.send('{"type": "ping"}')
        assert await receive(ws) == {"type": "pong"}


# --- Redis down (issue 12, defect 5) ---------------------------------------------------------------------------


async def test_while_redis_is_down_the_upgrade_is_answered_503_and_a_replay_closes_1013(migrated, tmp_path):
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        app = create_app(migrated.replace(redis_url=private.url), background=False)
        async with serving(app) as port:
            url = f"ws://127.0.0.1:{port}/live"
            async with connect(url, open_timeout=5) as ws, connect(url, open_timeout=5) as resuming:
                assert await subscribe(ws, ["latest"]) == []
                private.kill()
                await resuming.send(json.dumps({"type": "subscribe", "channels": ["latest"], "last_event_id": "1-0"}))
                with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                    await receive(resuming)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013, "try again later"
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                async with connect(url, open_timeout=5, additional_headers={"Cookie": f"{SESSION_COOKIE}=abc"}):
                    pass
            response = refused.value.response
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert json.loads(response.body)["error"]["code"] == "unavailable"
            private.start()  # back, so the app shuts down cleanly
    finally:
        private.kill()


async def test_readyz_names_the_live_reader_while_its_redis_is_away_and_is_200_once_it_returns(migrated, tmp_path):
    """The live reader reports failing while Redis is away (/readyz 503 names it), and working once it is back."""
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        app = create_app(migrated.replace(redis_url=private.url), background=True)
        async with serving(app) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await wait_for(lambda: _readyz(http, 200), timeout_s=10, what="the first /readyz 200")
            private.kill()
            await wait_for(lambda: _live_reader_failing(http), timeout_s=10, what="/readyz naming the live reader")
            private.start()
            await wait_for(lambda: _readyz(http, 200), timeout_s=20, what="/readyz 200 after Redis returned")
    finally:
        private.kill()


async def _readyz(http: httpx.AsyncClient, status: int) -> bool:
    return (await http.get("/readyz")).status_code == status


async def _live_reader_failing(http: httpx.AsyncClient) -> bool:
    """Whether /readyz is 503 and names the live reader (the background loop live_fanout) as failing."""
    response = await http.get("/readyz")
    problems = response.json().get("problems", [])
    return response.status_code == 503 and any(p.startswith("live_fanout failing for ") for p in problems)
