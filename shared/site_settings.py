"""Site settings admins change from /admin/settings, applied by every process within seconds.

The vocabulary (`EDITABLE`) is derived from shared/settings.py's editable variables: each with the
label, section and kind of field the page shows. A stored value is text, checked by the variable's
own parser (`check`, the one validation of values from the page, the API and the database);
`apply(base, stored)` lays the admins' values over the environment's settings.

Every process keeps its settings current with one `Follower`: at start it loads the admins'
values, then reads the event stream with plain XREAD (every process sees every event) from the
stream's last id taken before loading, so no change is missed, and on `setting.changed` replaces
`rt.settings` with `apply(rt.base_settings, event.values)`. The forum loads from its own table and
publishes each snapshot it loads or applies to a Redis key (with the stream position it is
current to); notify, search and the job worker, which must not read the forum's tables, load that
key and read the stream on from its position. After a Redis failure a follower loads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from shared import markdown
from shared.events import STREAM_FIELD, Envelope, EventError, SettingChanged, loop_health, stream_name
from shared.settings import REGISTRATION_MODES, VARIABLES, Settings, Variable

if TYPE_CHECKING:
    from shared.web import Runtime

log = logging.getLogger("tica.site_settings")

SECTIONS = ("Community", "Sign-up", "Posting limits", "Moderation and safety")
KINDS = ("number", "yes_no", "choice", "short_text", "long_text")


@dataclass(frozen=True)
class Editable:
    """One setting admins may change: what the page and the API show of it."""

    key: str  # the Settings attribute
    label: str
    section: str
    kind: str  # one of KINDS: which field the page shows
    variable: Variable
    maximum: int | None = None  # numbers: the largest an admin may set (the code's limits stay sane)
    choices: tuple[tuple[str, str], ...] = ()  # kind "choice": (value, words) pairs

    hint: str = ""  # what the page says of it, when the variable's help (written for operators) will not do

    @property
    def help(self) -> str:
        """What it does, as a sentence: the hint, or the variable's help."""
        text = self.hint or self.variable.help
        return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")

    @property
    def env_name(self) -> str:
        return self.variable.name


REGISTRATION_CHOICES = (
    ("open", "Open: anyone can create an account"),
    ("approval", "Approval: a new account waits until staff approve it"),
    ("invite", "Invitation only: people join with an invitation from staff"),
)
assert tuple(value for value, _ in REGISTRATION_CHOICES) == REGISTRATION_MODES

LIMIT_MAX = 100_000  # per minute or per day

# How each editable variable is shown, in the order the page lists them.
_SHOWN: dict[str, dict[str, Any]] = {
    "site_name": {"label": "Site name", "section": "Community", "kind": "short_text"},
    "welcome_text": {"label": "Welcome text", "section": "Community", "kind": "long_text"},
    "registration_mode": {
        "label": "Who can create an account",
        "section": "Sign-up",
        "kind": "choice",
        "choices": REGISTRATION_CHOICES,
        "hint": "how new people join the community",
    },
    "signup_question": {"label": "Sign-up question", "section": "Sign-up", "kind": "short_text"},
    "posts_per_minute": {"label": "Posts per minute", "section": "Posting limits", "maximum": LIMIT_MAX},
    "new_member_posts_per_minute": {"label": "New members' posts per minute", "maximum": LIMIT_MAX},
    "edits_per_minute": {"label": "Edits per minute", "maximum": LIMIT_MAX},
    "new_member_edits_per_minute": {"label": "New members' edits per minute", "maximum": LIMIT_MAX},
    "topics_per_day": {"label": "Topics per day", "maximum": LIMIT_MAX},
    "new_member_topics_per_day": {"label": "New members' topics per day", "maximum": LIMIT_MAX},
    "flags_per_day": {"label": "Flags per day", "maximum": LIMIT_MAX},
    "new_member_flags_per_day": {"label": "New members' flags per day", "maximum": LIMIT_MAX},
    "conversations_per_day": {"label": "Private conversations started per day", "maximum": LIMIT_MAX},
    "new_member_conversations_per_day": {
        "label": "New members' private conversations started per day",
        "maximum": LIMIT_MAX,
    },
    "conversation_max_members": {"label": "Most people in one private conversation", "maximum": 100},
    "new_member_days": {"label": "Days a member counts as new", "maximum": 3650},
    "flag_hide_score": {"label": "Flag score that hides a post", "section": "Moderation and safety", "maximum": 1000},
    "new_member_review_posts": {"label": "New members' posts checked before they show", "maximum": 1000},
    "safeguarding_hold": {"label": "Hold posts that match a safeguarding phrase", "kind": "yes_no"},
    "safeguarding_realert_minutes": {
        "label": "Minutes before an unpicked safeguarding item alerts again",
        "maximum": 1440,
        "hint": "a safeguarding item nobody has picked up in this time alerts moderators, leads and admins again",
    },
    "quick_exit": {"label": "Show 'Leave this site quickly'", "kind": "yes_no"},
    "quick_exit_url": {"label": "Where 'Leave this site quickly' goes", "kind": "short_text"},
}


def _vocabulary() -> tuple[Editable, ...]:
    """Every editable variable, with how it is shown; an editable variable without an entry in
    _SHOWN (or an entry without a variable) is a mistake found at import."""
    editable = {var.attr: var for var in VARIABLES if var.editable}
    if set(editable) != set(_SHOWN):
        raise RuntimeError(f"shared/site_settings.py: editable settings differ: {set(editable) ^ set(_SHOWN)}")
    items: list[Editable] = []
    section = SECTIONS[0]
    for key, shown in _SHOWN.items():
        section = shown.get("section", section)  # an entry without one is in the section above it
        kind = shown.get("kind", "number")
        items.append(
            Editable(
                key=key,
                label=shown["label"],
                section=section,
                kind=kind,
                variable=editable[key],
                maximum=shown.get("maximum"),
                choices=tuple(shown.get("choices", ())),
                hint=shown.get("hint", ""),
            )
        )
    return tuple(items)


EDITABLE: tuple[Editable, ...] = _vocabulary()
BY_KEY: dict[str, Editable] = {item.key: item for item in EDITABLE}


# --- values: checked, stored as text, applied ---------------------------------------------------------


def check(item: Editable, text: str) -> Any:
    """The typed value of a stored or sent text; ValueError with words for people when it is not one."""
    try:
        value = item.variable.parse(text)
    except ValueError as exc:
        message = str(exc)
        if message.startswith(("invalid literal", "Exceeds the limit")):  # int()'s own words
            message = "must be a whole number"
        raise ValueError(message) from None
    if item.maximum is not None and value > item.maximum:
        raise ValueError(f"must be at most {item.maximum:,}")
    return value


def as_text(value: Any) -> str:
    """A typed value as it is stored (and as the environment variable would say it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sent_text(value: Any) -> str | None:
    """What an admin sent for a setting, as text to check; None for "use the default" (null or
    empty); TypeError for a value that is none of text, a whole number, true or false."""
    if value is None:
        return None
    if isinstance(value, bool):
        return as_text(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.replace("\x00", "")
        return text if text.strip() else None
    raise TypeError("must be text, a whole number, true or false, or null for the default")


def apply(base: Settings, stored: Mapping[str, Any]) -> Settings:
    """`base` (the environment's settings) with the admins' stored values laid over it. A value that
    no longer parses, or a key that is no longer editable, is logged and left out: never a crash."""
    changes: dict[str, Any] = {}
    for key, text in stored.items():
        item = BY_KEY.get(key)
        if item is None or not isinstance(text, str):
            log.warning("site setting %r is not one admins can change: ignored", key)
            continue
        try:
            changes[key] = check(item, text)
        except ValueError as exc:
            log.warning("site setting %s=%r is ignored: it %s", key, text[:80], exc)
    return base.replace(**changes) if changes else base


def valid_stored(stored: Mapping[str, Any]) -> dict[str, str]:
    """The stored values apply() would use (the others are left out)."""
    kept: dict[str, str] = {}
    for key, text in stored.items():
        item = BY_KEY.get(key)
        if item is not None and isinstance(text, str):
            with contextlib.suppress(ValueError):
                check(item, text)
                kept[key] = text
    return kept


# --- the welcome text --------------------------------------------------------------------------------


async def welcome_html(rt: Runtime) -> str:
    """The welcome text as sanitised HTML ("" when there is none), rendered once per text in this
    process (as posts are: markdown to an allow-list, in a render worker, within the budget)."""
    text = rt.settings.welcome_text
    if not text:
        return ""
    cached = rt.extras.get("welcome_html")
    if cached is not None and cached[0] == text:
        html: str = cached[1]
        return html
    try:
        rendered = await markdown.render_async(text, budget_ms=rt.settings.render_budget_ms)
    except markdown.TooComplex:
        log.warning("the welcome text is too complex to render: not shown")
        rendered = None
    html = rendered.cooked if rendered is not None else ""
    rt.extras["welcome_html"] = (text, html)
    return html


# --- the snapshot in Redis, for the services that cannot read the forum's table --------------------------


def snapshot_key(prefix: str) -> str:
    """The Redis key holding the admins' values and the stream position they are current to."""
    return f"{prefix}site-settings"


async def write_snapshot(redis: aioredis.Redis, prefix: str, values: Mapping[str, str], position: str) -> None:
    """Publish a snapshot (the forum does, whenever it loads or applies one). Any forum process may
    write it at any time: each snapshot is whole and names its position, so a reader that goes on
    from that position meets every later change."""
    await redis.set(snapshot_key(prefix), json.dumps({"values": dict(values), "position": position}))


async def read_snapshot(redis: aioredis.Redis, prefix: str) -> tuple[dict[str, str], str] | None:
    """The published snapshot and its position; None when there is none (or it is unreadable)."""
    raw = await redis.get(snapshot_key(prefix))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        values, position = data["values"], data["position"]
    except (ValueError, TypeError, KeyError):
        log.warning("the site settings snapshot in Redis is unreadable: ignored")
        return None
    if not isinstance(values, dict) or not isinstance(position, str):
        return None
    return {str(k): v for k, v in values.items() if isinstance(v, str)}, position


async def stream_end(redis: aioredis.Redis, stream: str) -> str:
    """The id of the stream's last entry ("0-0" when there is no stream yet)."""
    try:
        info = await redis.xinfo_stream(stream)
    except ResponseError:
        return "0-0"
    last = info["last-generated-id"]
    return last.decode() if isinstance(last, bytes) else str(last)


# --- the follower: one per process -------------------------------------------------------------------------

Loader = Callable[["Runtime"], Awaitable[dict[str, str]]]
# Entries that cannot be a setting change are skipped without parsing them (the relay publishes the
# outbox's jsonb as PostgreSQL writes it, so the marker is the type's name alone).
_MARKER = b'"' + SettingChanged.type.encode() + b'"'
_READ_COUNT = 500
_FAILURES = (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Follower:
    """Keeps one process's `rt.settings` current with what admins set.

    `load` reads the admins' values from the forum's table (the forum passes it, and then
    publishes snapshots to Redis); without it the follower reads the snapshot the forum published.
    """

    def __init__(self, load: Loader | None = None) -> None:
        self.load = load
        self.cursor: str | None = None  # the stream id read up to; None: load again first
        self.values: dict[str, str] = {}
        self.applied_ids: deque[str] = deque(maxlen=200)  # envelope ids of the changes applied
        self._waiters: dict[str, asyncio.Future[None]] = {}

    async def start(self, rt: Runtime) -> None:
        """At start-up, before requests: load the values (a failure is left to the loop to retry)."""
        rt.extras["site_settings"] = self
        try:
            self.cursor = await self.sync(rt)
        except _FAILURES as exc:
            log.warning("site settings: could not load them at start, retrying in the background: %r", exc)

    async def run(self, rt: Runtime, stop: asyncio.Event) -> None:
        """Read the stream for changes until `stop`; while Redis (or PostgreSQL) is away, retry with
        backoff, reported as failing, and load everything again once back."""
        rt.extras["site_settings"] = self
        health = loop_health("site_settings")
        stream = stream_name(rt.settings.redis_prefix)
        try:
            while not stop.is_set():
                try:
                    if self.cursor is None:
                        self.cursor = await self.sync(rt)
                    reply = await rt.redis.xread({stream: self.cursor}, count=_READ_COUNT, block=1000)
                    for _, entries in reply or []:
                        for entry_id, fields in entries:
                            await self.handle(rt, _text(entry_id), fields)
                            self.cursor = _text(entry_id)
                    health.working()
                except _FAILURES as exc:
                    self.cursor = None
                    delay_s = health.failed(exc)
                    log.warning("site settings: following changes failed, retrying in %.1f s: %r", delay_s, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay_s)
        finally:
            self.cursor = None  # started again (after a bug): load again first

    async def sync(self, rt: Runtime) -> str:
        """Load the admins' values, apply them, and return the stream position to read on from."""
        prefix = rt.settings.redis_prefix
        if self.load is None:
            published = await read_snapshot(rt.redis, prefix)
            if published is None:  # no forum has published one yet (or Redis lost it): go on from now
                return await stream_end(rt.redis, stream_name(prefix))
            values, position = published
            self.set(rt, values)
            return position
        try:
            position = await stream_end(rt.redis, stream_name(prefix))  # before loading: nothing missed
        except (RedisError, OSError):
            self.set(rt, await self.load(rt))  # the table answers: this process is current all the same
            raise
        self.set(rt, await self.load(rt))
        await write_snapshot(rt.redis, prefix, self.values, position)
        return position

    async def handle(self, rt: Runtime, entry_id: str, fields: Mapping[Any, Any]) -> None:
        """One stream entry: a setting change is applied (and, in the forum, published); others are not ours."""
        raw = fields.get(STREAM_FIELD) or fields.get(STREAM_FIELD.encode())
        if raw is None or _MARKER not in (raw.encode() if isinstance(raw, str) else raw):
            return
        try:
            envelope = Envelope.from_json(raw)
            event = envelope.event()
        except EventError as exc:
            log.warning("site settings: entry %s is not a valid event: %s", entry_id, exc)
            return
        if not isinstance(event, SettingChanged) or not isinstance(event.values, dict):
            return
        self.set(rt, event.values)
        if self.load is not None:
            await write_snapshot(rt.redis, rt.settings.redis_prefix, self.values, entry_id)
        self.applied_ids.append(envelope.id)
        waiter = self._waiters.pop(envelope.id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def set(self, rt: Runtime, values: Mapping[str, Any]) -> None:
        """Make `values` (every value admins have set) this process's settings."""
        self.values = valid_stored(values)
        rt.settings = apply(rt.base_settings, self.values)

    async def applied(self, event_id: str, timeout_s: float) -> bool:
        """Wait until the change with this event id is applied here (False after timeout_s)."""
        if event_id in self.applied_ids:
            return True
        waiter = self._waiters.setdefault(event_id, asyncio.get_running_loop().create_future())
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(event_id, None)


async def changed_here(rt: Runtime, event_id: str, values: Mapping[str, str], *, timeout_s: float = 2.0) -> None:
    """After an admin's change commits in this process: wait (briefly) until this process's follower
    has applied it, so the admin's next page already shows it. A process without a follower (an app
    run without its background loops, as in tests) applies the change itself."""
    follower: Follower | None = rt.extras.get("site_settings")
    if follower is None:
        rt.settings = apply(rt.base_settings, values)
        return
    if not await follower.applied(event_id, timeout_s):
        log.info("site settings: change %s not applied here within %.1f s; it will be shortly", event_id, timeout_s)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
