"""Site settings kept in the forum's database (table forum.site_settings): what admins set over the
environment's defaults, checked, changed in one transaction with their audit entries and one
`setting.changed` event carrying every value admins have set, which every process applies
(shared/site_settings.py). api.py and pages.py are the API and the page built on these actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.forum import access
from services.forum.moderation import audit
from services.forum.outbox import write_event
from shared import markdown, site_settings
from shared.events import Envelope, SettingChanged
from shared.sessions import Session
from shared.settings import Settings
from shared.site_settings import BY_KEY, EDITABLE, Editable
from shared.web import ApiError, Runtime

REASON_MAX = 500
# Changes are made one at a time (a transaction-level advisory lock), so each event's snapshot holds
# every change before it and the events reach the stream in the order of the changes.
CHANGE_LOCK_KEY = 0x7469_6373
ADMINS_ONLY = "Only admins can change the site's settings."
UNKNOWN = "is not a setting admins can change"

STORED_SQL = "SELECT key, value FROM forum.site_settings"
ROWS_SQL = """
SELECT s.key, s.value, s.updated_at, u.username AS updated_by
FROM forum.site_settings s LEFT JOIN forum.users u ON u.id = s.updated_by
"""
UPSERT_SQL = """
INSERT INTO forum.site_settings (key, value, updated_by) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by
"""
DELETE_SQL = "DELETE FROM forum.site_settings WHERE key = $1"


async def stored(conn: asyncpg.Connection) -> dict[str, str]:
    """Every value admins have set, as stored text, by key."""
    return {row["key"]: row["value"] for row in await conn.fetch(STORED_SQL)}


async def load_snapshot(rt: Runtime) -> dict[str, str]:
    """The follower's loader in the forum (shared/site_settings.Follower): read from the table."""
    async with rt.pool.acquire() as conn:
        return await stored(conn)


# --- checking what an admin sends ------------------------------------------------------------------------


def check_values(sent: Mapping[str, Any]) -> dict[str, str | None]:
    """Each sent value as it would be stored (None: take it back to the default). 422 naming every
    unknown key and every value its setting's parser refuses, with the parser's words; nothing is
    changed unless everything is right."""
    errors: dict[str, str] = {}
    clean: dict[str, str | None] = {}
    for key, value in sent.items():
        item = BY_KEY.get(key)
        if item is None:
            errors[key] = UNKNOWN
            continue
        try:
            text = site_settings.sent_text(value)
            clean[key] = None if text is None else site_settings.as_text(site_settings.check(item, text))
        except (TypeError, ValueError) as exc:
            errors[key] = str(exc)
    if errors:
        unknown = [key for key, message in errors.items() if message == UNKNOWN]
        message = (
            f"These are not settings admins can change: {', '.join(unknown)}."
            if unknown and len(unknown) == len(errors)
            else "Some settings need attention."
        )
        raise ApiError(422, "invalid", message, errors)
    return clean


async def check_welcome(clean: Mapping[str, str | None], budget_ms: int) -> None:
    """A welcome text must turn into HTML within the render budget, as a post must (422 otherwise)."""
    text = clean.get("welcome_text")
    if not text:
        return
    try:
        await markdown.render_async(text, budget_ms=budget_ms)
    except markdown.TooComplex:
        raise ApiError(
            422,
            "too_complex",
            "The welcome text is too complex to show: please shorten it or split up its tables and lists.",
            {"welcome_text": "is too complex to show: please shorten it"},
        ) from None


async def check_change(who: Session, sent: Mapping[str, Any], *, budget_ms: int) -> dict[str, str | None]:
    """Check an admin's change before anything is written: who (403), then every value (422)."""
    access.require_admin(who, ADMINS_ONLY)
    clean = check_values(sent)
    await check_welcome(clean, budget_ms)
    return clean


# --- changing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What a change did: the keys whose value changed (in the page's order), every value admins
    have set afterwards, and the event written (None when nothing changed)."""

    keys: list[str]
    values: dict[str, str]
    envelope: Envelope | None


def effective_text(base: Settings, values: Mapping[str, str], key: str) -> str:
    """A setting's value as text with these stored values over the environment's."""
    return site_settings.as_text(getattr(site_settings.apply(base, values), key))


async def change_settings(
    conn: asyncpg.Connection,
    who: Session,
    clean: Mapping[str, str | None],
    *,
    base: Settings,
    reason: str | None = None,
) -> Change:
    """Store checked values (check_change), in the caller's transaction: rows written or removed,
    one audit entry per setting whose value changed, and one `setting.changed` event."""
    access.require_admin(who, ADMINS_ONLY)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", CHANGE_LOCK_KEY)
    before = await stored(conn)
    after = dict(before)
    for key, text in clean.items():
        if text is None:
            after.pop(key, None)
        else:
            after[key] = text
    changed = [item.key for item in EDITABLE if before.get(item.key) != after.get(item.key)]
    if not changed:
        return Change([], after, None)
    for key in changed:
        if key in after:
            await conn.execute(UPSERT_SQL, key, after[key], who.user_id)
        else:
            await conn.execute(DELETE_SQL, key)
        await audit.record_by(
            conn,
            who,
            "setting.change",
            None,
            reason=reason or None,
            before={"key": key, "value": effective_text(base, before, key)},
            after={"key": key, "label": BY_KEY[key].label, "value": effective_text(base, after, key)},
        )
    envelope = await write_event(conn, SettingChanged(keys=changed, values=after), actor_id=who.user_id)
    return Change(changed, after, envelope)


async def settled(rt: Runtime, change: Change) -> None:
    """After the change commits: this process applies it before answering (the admin's next page shows it)."""
    if change.envelope is not None:
        await site_settings.changed_here(rt, change.envelope.id, change.values)


# --- reading, for the API and the page --------------------------------------------------------------------


@dataclass(frozen=True)
class Current:
    """One setting as admins see it: the value in force, the environment's, and who set it here."""

    item: Editable
    value: Any
    default: Any
    set_by_admin: bool
    updated_at: datetime | None
    updated_by: str | None


async def current(conn: asyncpg.Connection, base: Settings) -> list[Current]:
    """Every editable setting, in the page's order, as the table holds it now."""
    rows = {row["key"]: row for row in await conn.fetch(ROWS_SQL)}
    values = site_settings.valid_stored({key: row["value"] for key, row in rows.items()})
    settings = site_settings.apply(base, values)
    listed = []
    for item in EDITABLE:
        row = rows.get(item.key) if item.key in values else None
        listed.append(
            Current(
                item=item,
                value=getattr(settings, item.key),
                default=getattr(base, item.key),
                set_by_admin=row is not None,
                updated_at=row["updated_at"] if row is not None else None,
                updated_by=row["updated_by"] if row is not None else None,
            )
        )
    return listed
