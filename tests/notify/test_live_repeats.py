"""An event the relay published twice (Redis went away between its XADD and the answer) reaches a
live reader once: live, by replay, and after notify restarts with the first copy before the reader's
resume point."""

# ruff: noqa: F811  (tests take the imported `live` fixture by name)

from __future__ import annotations

from notify_helpers import post, serving, wait_for
from test_live import BOB, LiveServer, _public_topic, live, receive, subscribe  # noqa: F401 (live: a fixture)

from services.notify.app import create_app
from services.notify.live_wire import FirstSeen
from shared import events as ev


async def _publish_twice(server: LiveServer, event: ev.Event) -> list[str]:
    """One envelope added to the stream twice, as a relay's retried batch adds it: the two entry ids."""
    stream = ev.stream_name(server.settings.redis_prefix)
    payload = ev.Envelope.wrap(event, actor_id=BOB).to_json()
    return [(await server.redis.xadd(stream, {ev.STREAM_FIELD: payload})).decode() for _ in range(2)]


def test_first_seen_knows_a_repeat_by_its_later_entry():
    """The first entry of an envelope passes (again too); a later entry with the same envelope is a repeat."""
    seen = FirstSeen(kept=2)
    assert not seen.is_repeat("a", "5-0") and not seen.is_repeat("a", "5-0")
    assert seen.is_repeat("a", "9-0")
    assert not seen.is_repeat("b", "10-0") and not seen.is_repeat("c", "11-0")
    assert not seen.is_repeat("a", "12-0")  # forgotten beyond `kept`: only recent repeats are caught


async def test_a_repeated_event_is_sent_once_live_and_by_replay(live):
    """A subscribed reader gets the event once; a reader resuming from before both copies gets it once."""
    await _public_topic(live)
    async with live.connect() as ws:
        await subscribe(ws, ["topic:10"])
        before = (await live.redis.xinfo_stream(ev.stream_name(live.settings.redis_prefix)))["last-generated-id"]
        await _publish_twice(live, post(501, topic_id=10, number=2, author_id=BOB))
        await _publish_twice(live, post(502, topic_id=10, number=3, author_id=BOB))
        got = [(await receive(ws))["data"]["post_id"] for _ in range(2)]
        assert got == [501, 502]
    async with live.connect() as ws:
        replayed = await subscribe(ws, ["topic:10"], last_event_id=before.decode())
        assert [m["data"]["post_id"] for m in replayed if m["type"] == "event"] == [501, 502]


async def test_after_a_restart_the_repeat_of_an_event_read_before_is_not_sent(migrated, pool, redis):
    """notify restarted: a reader who got the first copy resumes from it and is not sent the repeat."""
    first = create_app(migrated, background=True)
    async with serving(first) as port:
        server = LiveServer(port, first, migrated, pool, redis)
        await wait_for(lambda: _hub_running(server), what="the live fan-out")
        await _public_topic(server)
        first_copy, _ = await _publish_twice(server, post(601, topic_id=10, number=2, author_id=BOB))
    second = create_app(migrated, background=True)
    async with serving(second) as port:
        server = LiveServer(port, second, migrated, pool, redis)
        await wait_for(lambda: _hub_running(server), what="the live fan-out again")
        await server.emit(post(602, topic_id=10, number=3, author_id=BOB))
        async with server.connect() as ws:
            replayed = await subscribe(ws, ["topic:10"], last_event_id=first_copy)
            assert [m["data"]["post_id"] for m in replayed if m["type"] == "event"] == [602]


async def _hub_running(server: LiveServer) -> bool:
    return server.hub.running
