"""What /live reads and writes: stream entries read as channel messages, the messages sent to
clients and read from them, and the codes a socket is closed with.

An entry that is not a valid event is logged with its id and type and not forwarded (the durable
consumers dead-letter it). A client's message that is too large, not UTF-8, not JSON, nested too deep
or not an object is answered with an error, never dropped.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from services.notify import channels as ch
from services.notify.channels import Message, live_messages
from shared import events as ev

log = logging.getLogger("tica.live")

STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
MAX_MESSAGE_BYTES = 8192
CLOSE_SESSION_ENDED = 4001
CLOSE_BAD_ORIGIN = 4003
CLOSE_TOO_SLOW = 4008
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013
CLOSE_REASONS = {
    CLOSE_SESSION_ENDED: "Your session ended.",
    CLOSE_TOO_SLOW: "Too far behind: reconnect and resume.",
    CLOSE_INTERNAL: "Something went wrong: reconnect.",
    CLOSE_TRY_LATER: "Live updates are unavailable for a moment: try again later.",
}

StreamKey = tuple[int, int]


def stream_key(entry_id: str) -> StreamKey:
    """A stream id as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- stream entries in ---------------------------------------------------------------------------------


FIRST_SEEN_KEPT = 20_000  # envelopes remembered: far more than a relay's retry can repeat
FIRST_SEEN_BACK = 2_000  # entries read back at start: a repeated batch follows its first within 1,000


@dataclass
class FirstSeen:
    """Which stream entry first carried each recent event. The outbox relay publishes at least
    once: when Redis goes away between its XADD and the answer, the batch is added again, so one
    event can sit in the stream twice (same envelope id, a later entry id). Live clients get the
    first and never the repeat, whether it reaches them live or by replay."""

    kept: int = FIRST_SEEN_KEPT
    entries: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def is_repeat(self, envelope_id: str, entry_id: str) -> bool:
        first = self.entries.get(envelope_id)
        if first is not None:
            return stream_key(entry_id) > stream_key(first)
        self.entries[envelope_id] = entry_id
        if len(self.entries) > self.kept:
            self.entries.popitem(last=False)
        return False

    def remember(self, entries: list[tuple[Any, dict[Any, Any]]]) -> None:
        """Learn the events of stream entries read before this process fanned out (oldest first), so
        a repeat of one of them after a restart is known for what it is."""
        for entry_id, fields in entries:
            raw = fields.get(ev.STREAM_FIELD.encode()) or fields.get(ev.STREAM_FIELD)
            try:
                envelope_id = json.loads(raw or b"")["id"]
            except (TypeError, ValueError, KeyError):
                continue
            if isinstance(envelope_id, str):
                self.is_repeat(envelope_id, as_str(entry_id))


def read_entry(entry_id: str, fields: dict[Any, Any]) -> tuple[ev.Envelope, list[Message]] | None:
    """An event entry's envelope and channel messages; None, logged with the entry id and event
    type, when it is not a valid event. The durable consumers dead-letter such an entry; live
    serves the others and says which one it could not read, so a renamed field is seen, not silent."""
    raw = fields.get(ev.STREAM_FIELD.encode()) or fields.get(ev.STREAM_FIELD)
    try:
        envelope = ev.Envelope.from_json(raw or b"")
    except ev.EventError as exc:
        log.warning(
            "live: stream entry %s (type %s) is not an event, not forwarded: %s", entry_id, _claimed_type(raw), exc
        )
        return None
    try:
        return envelope, live_messages(envelope)
    except ev.EventError as exc:
        log.warning(
            "live: stream entry %s (type %s) does not match its definition, not forwarded: %s",
            entry_id,
            envelope.type,
            exc,
        )
    except Exception:  # a handler bug must not stop the fan-out for everyone else
        log.exception("live: stream entry %s (type %s) could not be forwarded", entry_id, envelope.type)
    return None


def _claimed_type(raw: Any) -> str:
    """The type an unreadable entry says it has, for the log ("?" when it says none)."""
    try:
        value = json.loads(raw or b"")
    except (TypeError, ValueError, RecursionError):
        return "?"
    return str(value.get("type", "?")) if isinstance(value, dict) else "?"


# --- messages out ----------------------------------------------------------------------------------------


def event_message(entry_id: str, channel: str, event_type: str, data: dict[str, Any]) -> str:
    """The text of one event on one channel, as clients receive it."""
    return dumps({"type": "event", "id": entry_id, "channel": channel, "event": event_type, "data": data})


def count_message(entry_id: str, channel: str, unread: int) -> str:
    """A member's unread count on their `user:N` channel."""
    return event_message(entry_id, channel, "notification.count", {"unread": unread})


def error(code: str, message: str, channel: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if channel is not None:
        body["channel"] = channel
    return body


def forbidden(channel: str) -> dict[str, Any]:
    # The same answer for what does not exist and what is private: outsiders learn nothing.
    kind = (ch.parse(channel) or ("channel", 0))[0]
    return error("forbidden", f"You cannot follow that {kind}.", channel)


# --- messages in -----------------------------------------------------------------------------------------


def parse_message(text: str | None, data: bytes | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A client's message as a JSON object, or None and the error to answer: too large, not UTF-8,
    not JSON, nested too deep (json raises RecursionError), not an object."""
    if text is None:
        if len(data or b"") > MAX_MESSAGE_BYTES:
            return None, error("too_large", f"Messages are at most {MAX_MESSAGE_BYTES} bytes.")
        try:
            text = (data or b"").decode("utf-8")
        except UnicodeDecodeError:
            return None, error("bad_message", "Messages are JSON text in UTF-8.")
    elif len(text) > MAX_MESSAGE_BYTES or len(text.encode()) > MAX_MESSAGE_BYTES:
        return None, error("too_large", f"Messages are at most {MAX_MESSAGE_BYTES} bytes.")
    try:
        message = json.loads(text)
    except RecursionError:
        return None, error("bad_message", "The message is nested too deeply.")
    except ValueError:
        message = None
    if not isinstance(message, dict):
        return None, error("bad_message", "Messages are JSON objects with a type.")
    return message, None
