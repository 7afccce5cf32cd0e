"""shared/site_settings.py: the editable vocabulary derived from the settings, one validation for
values from anywhere, apply() over the environment's settings, and the follower every process runs
(snapshot, then the event stream with plain XREAD) against a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared import site_settings
from shared.events import STREAM_FIELD, Envelope, SettingChanged, UserRegistered, stream_name
from shared.sessions import SessionStore
from shared.settings import VARIABLES, Settings
from shared.site_settings import BY_KEY, EDITABLE, Follower
from shared.web import Runtime


async def wait_for(check: Callable[[], Awaitable[Any]], *, timeout_s: float = 10.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


# --- the vocabulary and values ---------------------------------------------------------------------------


def test_every_editable_variable_is_in_the_vocabulary():
    """Each variable marked editable is listed once, with a label, a section, a kind that fits its
    default's type and a help sentence; nothing else is."""
    editable = [var.attr for var in VARIABLES if var.editable]
    assert sorted(item.key for item in EDITABLE) == sorted(editable)
    assert len({item.label for item in EDITABLE}) == len(EDITABLE)
    assert {item.section for item in EDITABLE} == set(site_settings.SECTIONS)
    defaults = Settings()
    for item in EDITABLE:
        default = getattr(defaults, item.key)
        expected = {bool: ("yes_no",), int: ("number",), float: ("number",), str: ("choice", "short_text", "long_text")}
        assert item.kind in expected[type(default)], item.key
        assert item.help[0].isupper() and item.help.endswith("."), item.key
        assert (item.kind == "choice") == bool(item.choices), item.key
        assert (item.kind == "number") == (item.maximum is not None), item.key
    assert [value for value, _ in BY_KEY["registration_mode"].choices] == ["open", "approval", "invite"]


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("posts_per_minute", " 12 ", 12),
        ("new_member_review_posts", "0", 0),
        ("safeguarding_hold", "Yes", True),
        ("registration_mode", "APPROVAL", "approval"),
        ("site_name", "  Our \n place ", "Our place"),
        ("welcome_text", "  Hello  ", "Hello"),
    ],
)
def test_check_reads_a_value_with_its_variables_parser(key, text, expected):
    """A value is read by its environment variable's own parser, whoever sends it."""
    assert site_settings.check(BY_KEY[key], text) == expected


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("posts_per_minute", "0", "must be a positive whole number"),
        ("posts_per_minute", "ten", "must be a whole number"),
        ("posts_per_minute", "9" * 5000, "must be a whole number"),
        ("posts_per_minute", "100001", "must be at most 100,000"),
        ("new_member_days", "-1", "must be a whole number, 0 or more"),
        ("new_member_days", "3651", "must be at most 3,650"),
        ("safeguarding_hold", "maybe", "must be true or false"),
        ("registration_mode", "anyone", "must be one of open, approval, invite"),
        ("site_name", "x" * 61, "must be 1 to 60 characters"),
        ("welcome_text", "x" * 5001, "must be at most 5000 characters"),
    ],
)
def test_check_refuses_with_words_for_people(key, text, message):
    """A refused value says why in the parser's words (never int()'s own)."""
    with pytest.raises(ValueError) as refused:
        site_settings.check(BY_KEY[key], text)
    assert str(refused.value) == message


def test_what_an_admin_sends_becomes_text_or_the_default():
    """null and empty text mean the default; true/false and whole numbers become their text; nothing else is taken."""
    assert [site_settings.sent_text(v) for v in (None, "", "  \n", True, False, 7, "x\x00y")] == [
        None,
        None,
        None,
        "true",
        "false",
        "7",
        "xy",
    ]
    for value in (1.5, ["a"], {"a": 1}):
        with pytest.raises(TypeError):
            site_settings.sent_text(value)


def test_apply_lays_admins_values_over_the_environments():
    """apply() keeps the environment's settings as they are and changes only what admins set; a
    value that no longer parses, a key that is not editable, or a value that is not text is ignored."""
    base = Settings.from_env({"TICA_POSTS_PER_MINUTE": "7", "TICA_SITE_NAME": "From the environment"})
    assert site_settings.apply(base, {}) is base
    applied = site_settings.apply(
        base, {"posts_per_minute": "2", "flags_per_day": "none", "port": "81", "site_name": 5, "nothing": "1"}
    )
    assert applied.posts_per_minute == 2
    assert (applied.flags_per_day, applied.port, applied.site_name) == (30, 8000, "From the environment")
    assert base.posts_per_minute == 7
    assert site_settings.valid_stored({"posts_per_minute": "2", "flags_per_day": "none"}) == {"posts_per_minute": "2"}


# --- the follower -------------------------------------------------------------------------------------------


@pytest.fixture
async def rt(settings, pool, redis):
    """A runtime of a process whose environment sets the site's name."""
    return Runtime(settings.replace(site_name="Env name"), pool, redis, SessionStore(redis, settings.redis_prefix))


def change(values: dict[str, str]) -> Envelope:
    return Envelope.wrap(SettingChanged(keys=sorted(values), values=values), actor_id=1)


async def publish(rt: Runtime, envelope: Envelope | bytes) -> str:
    raw = envelope if isinstance(envelope, bytes) else envelope.to_json()
    entry_id = await rt.redis.xadd(stream_name(rt.settings.redis_prefix), {STREAM_FIELD: raw})
    return entry_id.decode()


async def test_a_follower_without_a_snapshot_goes_on_from_the_streams_end(rt):
    """No snapshot published yet: the environment's settings, and what happened before is not replayed."""
    await publish(rt, change({"site_name": "Old change"}))
    follower = Follower()
    await follower.start(rt)
    assert rt.settings.site_name == "Env name" and follower.cursor is not None
    assert rt.extras["site_settings"] is follower


async def test_a_follower_applies_changes_from_the_stream_and_skips_the_rest(rt):
    """From the published snapshot's position: each setting.changed replaces the settings (taking a value
    back restores the environment's); other events, and entries that are not events, change nothing."""
    before = await publish(rt, change({"site_name": "Already in the snapshot"}))
    await site_settings.write_snapshot(rt.redis, rt.settings.redis_prefix, {"site_name": "Snap"}, before)
    follower = Follower()
    await follower.start(rt)
    assert rt.settings.site_name == "Snap" and follower.cursor == before
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(rt, stop))
    try:
        await publish(rt, Envelope.wrap(UserRegistered(user_id=1, username="sam", display_name="Sam"), actor_id=1))
        await publish(rt, b"not an event at all, though it says setting.changed")
        await publish(rt, b'{"id": "x", "type": "setting.changed", "data": {"keys": []}}')
        first = change({"site_name": "Harbour", "posts_per_minute": "3"})
        await publish(rt, first)
        assert await follower.applied(first.id, timeout_s=10)
        assert (rt.settings.site_name, rt.settings.posts_per_minute) == ("Harbour", 3)
        back = change({"posts_per_minute": "3"})
        await publish(rt, back)
        await wait_for(lambda: _true(rt.settings.site_name == "Env name"), what="the environment's name again")
        assert rt.settings.posts_per_minute == 3 and rt.base_settings.site_name == "Env name"
        assert not task.done()
    finally:
        stop.set()
        await task


async def test_the_forums_follower_publishes_what_it_loads_with_the_position_before_loading(rt):
    """A follower with a loader (the forum's table) applies what it loads and publishes it with the stream
    position taken before loading: a change that lands while it loads is after that position, so a
    process that starts from the snapshot still reads it."""
    during: list[str] = []

    async def load(runtime: Runtime) -> dict[str, str]:
        during.append(await publish(runtime, change({"site_name": "Landed while loading"})))
        return {"site_name": "Loaded"}

    follower = Follower(load)
    await follower.start(rt)
    assert rt.settings.site_name == "Loaded"
    published = await site_settings.read_snapshot(rt.redis, rt.settings.redis_prefix)
    assert published is not None
    values, position = published
    assert values == {"site_name": "Loaded"}
    later = await rt.redis.xread({stream_name(rt.settings.redis_prefix): position})
    assert [entry_id.decode() for entry_id, _ in later[0][1]] == during


async def test_a_change_in_a_process_without_a_follower_is_applied_there(rt):
    """An app run without its loops (tests) applies its own change at once."""
    await site_settings.changed_here(rt, "some-event-id", {"flag_hide_score": "9"})
    assert rt.settings.flag_hide_score == 9


async def test_an_unreadable_snapshot_is_ignored(rt):
    """A snapshot key that is not what the forum writes is treated as none."""
    await rt.redis.set(site_settings.snapshot_key(rt.settings.redis_prefix), "{not json")
    assert await site_settings.read_snapshot(rt.redis, rt.settings.redis_prefix) is None
    await Follower().start(rt)
    assert rt.settings.site_name == "Env name"


async def _true(value: bool) -> bool:
    return value
