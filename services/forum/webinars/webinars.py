"""Webinars: scheduling them (admins and each webinar's organisers), registration with
an exact capacity and a waiting list, the join link for registered members only, email
reminders 24 hours and 1 hour before, and what is added afterwards (attendance,
recording, slides): the rules, SQL, actions, events and mail (api.py is the JSON API,
pages.py the pages, calendar.py the .ics files). Each webinar has a discussion topic in
the "Webinars" category.

Times are stored in UTC and shown in Europe/London with the zone named (GMT or BST).

Capacity is exact under concurrency: every registration change first locks the
webinar's row (SELECT ... FOR UPDATE), so seats are counted and taken one request at a
time. Cancelling a seat promotes the longest-waiting member in the same transaction.

Reminders are arq `send_mail` jobs deferred to their time, with ids that name the
webinar, its start time, the member and the reminder. Moving a webinar (or a member
cancelling) deletes the old jobs from the queue and queues new ones; a cancelled
webinar's reminders are deleted and a cancellation mail is sent instead. Queue changes
follow the database commit: Redis is not part of the transaction.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from arq.connections import ArqRedis
from arq.constants import job_key_prefix

from services.forum import access
from services.forum.outbox import write_event
from services.forum.topics import categories, posts
from shared.events import WebinarCancelled, WebinarRegistered, WebinarScheduled, WebinarUpdated
from shared.jobs import job_id
from shared.sessions import Session
from shared.web import ApiError, Runtime, invalid

LONDON = ZoneInfo("Europe/London")
STATUSES = ("scheduled", "live", "finished", "cancelled")
CATEGORY_SLUG = "webinars"
TITLE_MIN, TITLE_MAX = 5, 200
DESCRIPTION_MAX = 10_000
URL_MAX = 500
SPEAKERS_MAX = 20
THEMES_MAX = 10
CAPACITY_MAX = 100_000
REMINDERS = (("24h", timedelta(hours=24)), ("1h", timedelta(hours=1)))
HTTPS_URL = r"https://[^\s<>\"']+"

COLUMNS = (
    "w.*, (SELECT count(*) FROM forum.webinar_registrations r WHERE r.webinar_id = w.id "
    "AND r.status = 'registered')::int AS registered_count, "
    "(SELECT count(*) FROM forum.webinar_registrations r WHERE r.webinar_id = w.id "
    "AND r.status = 'waiting')::int AS waiting_count"
)


def not_found() -> ApiError:
    return ApiError(404, "not_found", "We could not find that webinar.")


# --- times -------------------------------------------------------------------------


def parse_time(field: str, value: str) -> datetime:
    """An ISO 8601 time with an offset, as UTC; 422 otherwise."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise invalid(field, "must be a date and time like 2026-03-29T18:00:00Z") from None
    if parsed.tzinfo is None:
        raise invalid(field, "must include a time zone offset, like Z or +01:00")
    return parsed.astimezone(UTC)


def london(when: datetime) -> datetime:
    """A moment in UK time (GMT or BST)."""
    return when.astimezone(LONDON)


def format_london(when: datetime) -> str:
    """E.g. "Sunday 29 March 2026, 18:00 BST": the UK time with its zone named."""
    local = london(when)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()}"


def iso(when: datetime) -> str:
    """A moment in UTC as ISO 8601 with "Z", as the API and reminder ids write it."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- input -------------------------------------------------------------------------


def clean_speakers(raw: list[Any]) -> list[dict[str, Any]]:
    """Speakers as stored: name (required), role, organisation, expert_by_experience, user_id."""
    speakers = []
    for i, item in enumerate(raw):
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise invalid("speakers", f"speaker {i + 1} needs a name (up to 200 characters)")
        unknown = set(item) - {"name", "role", "organisation", "expert_by_experience", "user_id"}
        if unknown:
            raise invalid("speakers", f"speaker {i + 1} has unknown fields: {', '.join(sorted(unknown))}")
        speaker: dict[str, Any] = {"name": name.strip()}
        for key in ("role", "organisation"):
            value = item.get(key) or ""
            if not isinstance(value, str) or len(value) > 200:
                raise invalid("speakers", f"speaker {i + 1}: {key} must be text up to 200 characters")
            speaker[key] = value.strip()
        expert = item.get("expert_by_experience", False)
        if not isinstance(expert, bool):
            raise invalid("speakers", f"speaker {i + 1}: expert_by_experience must be true or false")
        speaker["expert_by_experience"] = expert
        user_id = item.get("user_id")
        if user_id is not None and (
            isinstance(user_id, bool) or not isinstance(user_id, int) or not 0 < user_id < access.MAX_ID
        ):
            raise invalid("speakers", f"speaker {i + 1}: user_id must be a member id")
        speaker["user_id"] = user_id
        speakers.append(speaker)
    return speakers


def clean_themes(raw: list[str]) -> list[str]:
    """Themes without blanks or repeats, in the order given; 422 when one is too long."""
    themes = [t.strip() for t in raw if t.strip()]
    if any(len(t) > 60 for t in themes):
        raise invalid("themes", "each theme must be at most 60 characters")
    return list(dict.fromkeys(themes))


async def check_members(conn: asyncpg.Connection, field: str, ids: list[int]) -> None:
    """422 when an id is not a member."""
    wanted = sorted({i for i in ids if i is not None})
    if any(not 0 < i < access.MAX_ID for i in wanted):
        raise invalid(field, "must be ids of members")
    found = await conn.fetchval("SELECT count(*) FROM forum.users WHERE id = ANY($1::bigint[])", wanted)
    if found != len(wanted):
        raise invalid(field, "must be ids of existing members")


async def clean_input(conn: asyncpg.Connection, data: dict[str, Any], current: asyncpg.Record | None) -> dict[str, Any]:
    """Validated column values from WEBINAR_IN / WEBINAR_PATCH data (only those given)."""
    clean: dict[str, Any] = {}
    for key in ("title", "capacity", "status", "attendance", "recording_url", "slides_url", "join_url", "chair"):
        if data.get(key) is not None:
            clean[key] = data[key]
    if "description" in data:
        clean["description"] = (data["description"] or "").replace("\r\n", "\n").strip()
    for key in ("starts_at", "ends_at"):
        if data.get(key) is not None:
            clean[key] = parse_time(key, data[key])
    starts = clean.get("starts_at", current["starts_at"] if current else None)
    ends = clean.get("ends_at", current["ends_at"] if current else None)
    if starts is not None and ends is not None and ends <= starts:
        raise invalid("ends_at", "must be after the start")
    if ends is not None and starts is not None and ends - starts > timedelta(hours=24):
        raise invalid("ends_at", "must be within 24 hours of the start")
    if data.get("speakers") is not None:
        clean["speakers"] = clean_speakers(data["speakers"])
        await check_members(conn, "speakers", [s["user_id"] for s in clean["speakers"] if s["user_id"]])
    if data.get("themes") is not None:
        clean["themes"] = clean_themes(data["themes"])
    if data.get("organiser_ids") is not None:
        await check_members(conn, "organiser_ids", data["organiser_ids"])
        clean["organiser_ids"] = sorted(set(data["organiser_ids"]))
    if "slides_document_id" in data:
        doc = data["slides_document_id"]
        if doc is not None and not await conn.fetchval("SELECT true FROM forum.documents WHERE id = $1", doc):
            raise invalid("slides_document_id", "must be the id of a document in the library")
        clean["slides_document_id"] = doc
    for key in ("recording_url", "slides_url"):
        if key in data and data[key] is None:
            clean[key] = None
    return clean


# --- reading -----------------------------------------------------------------------


async def fetch_webinar(conn: asyncpg.Connection, webinar_id: int, *, lock: bool = False) -> asyncpg.Record:
    """One webinar with its counts; 404 when missing. `lock` holds its row until commit."""
    if lock:
        await conn.execute("SELECT 1 FROM forum.webinars WHERE id = $1 FOR UPDATE", webinar_id)
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM forum.webinars w WHERE w.id = $1", webinar_id)
    if row is None:
        raise not_found()
    return row


async def list_webinars(
    conn: asyncpg.Connection, *, past: bool, limit: int = 100, offset: int = 0
) -> list[asyncpg.Record]:
    """Upcoming webinars soonest first (not yet ended), or past ones latest first."""
    if past:
        sql = (
            f"SELECT {COLUMNS} FROM forum.webinars w WHERE w.ends_at <= now() "
            "ORDER BY w.starts_at DESC, w.id DESC LIMIT $1 OFFSET $2"
        )
    else:
        sql = (
            f"SELECT {COLUMNS} FROM forum.webinars w WHERE w.ends_at > now() "
            "ORDER BY w.starts_at, w.id LIMIT $1 OFFSET $2"
        )
    return list(await conn.fetch(sql, limit, offset))


async def my_registration(conn: asyncpg.Connection, webinar_id: int, who: Session | None) -> str | None:
    """'registered', 'waiting' or None."""
    if who is None:
        return None
    status: str | None = await conn.fetchval(
        "SELECT status FROM forum.webinar_registrations WHERE webinar_id = $1 AND user_id = $2",
        webinar_id,
        who.user_id,
    )
    return status


async def waiting_position(conn: asyncpg.Connection, webinar_id: int, user_id: int) -> int | None:
    """1 for the next member to get a seat."""
    position: int | None = await conn.fetchval(
        "SELECT n FROM (SELECT user_id, row_number() OVER (ORDER BY id) AS n FROM forum.webinar_registrations "
        "WHERE webinar_id = $1 AND status = 'waiting') q WHERE user_id = $2",
        webinar_id,
        user_id,
    )
    return position


def is_organiser(who: Session | None, row: asyncpg.Record) -> bool:
    """Whether the viewer may change this webinar: an admin or one of its organisers."""
    return access.may_organise(who, row["organiser_ids"])


def require_organiser(who: Session, row: asyncpg.Record) -> None:
    """The webinar's organisers and admins only (403 for everyone else)."""
    if not is_organiser(who, row):
        raise ApiError(403, "forbidden", "Only the webinar's organisers and admins can do that.")


def may_join(who: Session | None, row: asyncpg.Record, registration: str | None) -> bool:
    """The join link goes to registered members and organisers only."""
    return row["status"] in ("scheduled", "live") and (registration == "registered" or is_organiser(who, row))


def webinar_url(webinar_id: int) -> str:
    """The webinar's page."""
    return f"/webinars/{webinar_id}"


# --- changes -----------------------------------------------------------------------


async def webinars_category(conn: asyncpg.Connection, who: Session) -> asyncpg.Record:
    """The public "Webinars" category, created the first time it is needed."""
    row = await categories.fetch_category_by_slug(conn, CATEGORY_SLUG)
    if row is not None:
        return row
    row = await categories.insert_category(
        conn,
        name="Webinars",
        slug=CATEGORY_SLUG,
        description="The conversation before and after each webinar.",
        colour="005eb8",
        position=100,
        group_ids=[],
    )
    await categories.record_category_event(conn, row, who, created=True)
    return row


def topic_body(row: asyncpg.Record) -> str:
    """The first post of a webinar's discussion topic: when, what, and a link to its page."""
    when = format_london(row["starts_at"])
    intro = row["description"] or "Share your questions before the webinar and your thoughts after it."
    return (
        f"**{when}**\n\n{intro}\n\n[The webinar page: register and add it to your calendar]({webinar_url(row['id'])})"
    )


async def create_webinar(conn: asyncpg.Connection, who: Session, data: dict[str, Any]) -> asyncpg.Record:
    """Check and schedule a webinar (WEBINAR_IN data) with its discussion topic; admins only."""
    if not access.is_admin(who):
        raise ApiError(403, "forbidden", "Only admins can schedule webinars.")
    clean = await clean_input(conn, data, None)
    webinar_id = await conn.fetchval(
        "INSERT INTO forum.webinars (title, description, starts_at, ends_at, chair, speakers, capacity, themes, "
        "join_url, organiser_ids, created_by) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11) "
        "RETURNING id",
        clean["title"],
        clean.get("description", ""),
        clean["starts_at"],
        clean["ends_at"],
        clean.get("chair", ""),
        clean.get("speakers", []),
        clean["capacity"],
        clean.get("themes", []),
        clean.get("join_url", ""),
        clean.get("organiser_ids", []),
        who.user_id,
    )
    row = await fetch_webinar(conn, webinar_id)
    category = await webinars_category(conn, who)
    topic, _ = await posts.start_topic(
        conn, who, {"category_id": category["id"], "title": row["title"], "body": topic_body(row)}
    )
    await conn.execute("UPDATE forum.webinars SET topic_id = $2 WHERE id = $1", webinar_id, topic["id"])
    event = WebinarScheduled(**_event_fields(row), ends_at=iso(row["ends_at"]), topic_id=topic["id"])
    await write_event(conn, event, actor_id=who.user_id)
    return await fetch_webinar(conn, webinar_id)


def _event_fields(row: asyncpg.Record) -> dict[str, Any]:
    """The fields every webinar event carries (shared.events.WebinarEvent and its audience)."""
    return {
        "webinar_id": row["id"],
        "title": row["title"],
        "starts_at": iso(row["starts_at"]),
        "audience": access.webinar_audience(),
    }


_UPDATABLE = (
    "title",
    "description",
    "starts_at",
    "ends_at",
    "chair",
    "speakers",
    "capacity",
    "themes",
    "status",
    "join_url",
    "organiser_ids",
    "attendance",
    "recording_url",
    "slides_url",
    "slides_document_id",
)
# Changes a calendar shows: they bump the RFC 5545 SEQUENCE.
_CALENDAR_FIELDS = ("title", "description", "starts_at", "ends_at", "status")


async def update_webinar(
    conn: asyncpg.Connection, who: Session, webinar_id: int, data: dict[str, Any]
) -> tuple[asyncpg.Record, asyncpg.Record, list[int]]:
    """Apply a WEBINAR_PATCH; returns (before, after, ids of members promoted off the waiting list)."""
    before = await fetch_webinar(conn, webinar_id, lock=True)
    require_organiser(who, before)
    if before["status"] == "cancelled":
        raise ApiError(409, "cancelled", "This webinar was cancelled and can no longer be changed.")
    clean = await clean_input(conn, data, before)
    if "organiser_ids" in clean and not access.is_admin(who):
        raise ApiError(403, "forbidden", "Only admins can change who organises a webinar.")
    if clean.get("capacity", before["capacity"]) < before["registered_count"]:
        raise ApiError(
            409,
            "capacity_below_registered",
            f"{before['registered_count']} members already have a seat: the capacity cannot be lower than that.",
            {"capacity": f"must be at least {before['registered_count']}"},
        )
    changed = {k: v for k, v in clean.items() if k in _UPDATABLE and before[k] != v}
    if not changed:
        return before, before, []
    bump = any(k in _CALENDAR_FIELDS for k in changed)
    sets = ", ".join(f"{k} = ${i + 2}" + ("::jsonb" if k == "speakers" else "") for i, k in enumerate(changed))
    await conn.execute(
        f"UPDATE forum.webinars SET {sets}, updated_at = now(), sequence = sequence + {int(bump)} WHERE id = $1",
        webinar_id,
        *changed.values(),
    )
    promoted = await promote_waiting(conn, webinar_id)
    after = await fetch_webinar(conn, webinar_id)
    event = WebinarUpdated(
        **_event_fields(after), ends_at=iso(after["ends_at"]), status=after["status"], sequence=after["sequence"]
    )
    await write_event(conn, event, actor_id=who.user_id)
    return before, after, promoted


async def cancel_webinar(conn: asyncpg.Connection, who: Session, webinar_id: int) -> asyncpg.Record:
    """Cancel a webinar (409 when it is already cancelled or finished)."""
    row = await fetch_webinar(conn, webinar_id, lock=True)
    require_organiser(who, row)
    if row["status"] in ("cancelled", "finished"):
        raise ApiError(409, row["status"], f"This webinar is already {row['status']}.")
    await conn.execute(
        "UPDATE forum.webinars SET status = 'cancelled', sequence = sequence + 1, updated_at = now() WHERE id = $1",
        webinar_id,
    )
    event = WebinarCancelled(**_event_fields(row))
    await write_event(conn, event, actor_id=who.user_id)
    return await fetch_webinar(conn, webinar_id)


async def promote_waiting(conn: asyncpg.Connection, webinar_id: int) -> list[int]:
    """Give free seats to the waiting list in order (the webinar's row must be locked); their ids."""
    rows = await conn.fetch(
        "UPDATE forum.webinar_registrations SET status = 'registered' WHERE (webinar_id, user_id) IN ("
        " SELECT webinar_id, user_id FROM forum.webinar_registrations WHERE webinar_id = $1 AND status = 'waiting'"
        " ORDER BY id LIMIT greatest(0, (SELECT capacity FROM forum.webinars WHERE id = $1)"
        " - (SELECT count(*) FROM forum.webinar_registrations WHERE webinar_id = $1 AND status = 'registered'))"
        ") RETURNING user_id",
        webinar_id,
    )
    for r in rows:
        event = WebinarRegistered(
            webinar_id=webinar_id, user_id=r["user_id"], status="registered", audience=access.registration_audience()
        )
        await write_event(conn, event, actor_id=None)
    return [r["user_id"] for r in rows]


async def register(conn: asyncpg.Connection, who: Session, webinar_id: int) -> str:
    """Take a seat, or a place on the waiting list when it is full: 'registered' or 'waiting'."""
    row = await fetch_webinar(conn, webinar_id, lock=True)
    if row["status"] not in ("scheduled", "live") or row["ends_at"] <= datetime.now(UTC):
        raise ApiError(409, "closed", "Registration for this webinar is closed.")
    if await my_registration(conn, webinar_id, who) is not None:
        raise ApiError(409, "already_registered", "You are already registered or on the waiting list.")
    status = "registered" if row["registered_count"] < row["capacity"] else "waiting"
    await conn.execute(
        "INSERT INTO forum.webinar_registrations (webinar_id, user_id, status) VALUES ($1, $2, $3)",
        webinar_id,
        who.user_id,
        status,
    )
    event = WebinarRegistered(
        webinar_id=webinar_id, user_id=who.user_id, status=status, audience=access.registration_audience()
    )
    await write_event(conn, event, actor_id=who.user_id)
    return status


async def unregister(conn: asyncpg.Connection, who: Session, webinar_id: int) -> tuple[asyncpg.Record, list[int]]:
    """Give up a seat or waiting place (404 when there is none); returns (webinar, promoted member ids)."""
    row = await fetch_webinar(conn, webinar_id, lock=True)
    deleted = await conn.fetchval(
        "DELETE FROM forum.webinar_registrations WHERE webinar_id = $1 AND user_id = $2 RETURNING status",
        webinar_id,
        who.user_id,
    )
    if deleted is None:
        raise ApiError(404, "not_registered", "You are not registered for this webinar.")
    event = WebinarRegistered(
        webinar_id=webinar_id, user_id=who.user_id, status="cancelled", audience=access.registration_audience()
    )
    await write_event(conn, event, actor_id=who.user_id)
    promoted = await promote_waiting(conn, webinar_id) if row["status"] in ("scheduled", "live") else []
    return row, promoted


async def registrations(conn: asyncpg.Connection, webinar_id: int) -> list[asyncpg.Record]:
    """Everyone registered or waiting, seats first, each in the order they signed up."""
    return list(
        await conn.fetch(
            "SELECT r.user_id, u.username, u.display_name, u.email, r.status, r.created_at "
            "FROM forum.webinar_registrations r JOIN forum.users u ON u.id = r.user_id "
            "WHERE r.webinar_id = $1 ORDER BY r.status, r.id",
            webinar_id,
        )
    )


async def registrants(conn: asyncpg.Connection, webinar_id: int, user_ids: list[int] | None = None) -> list[Recipient]:
    """The members with a seat (all of them, or those among user_ids) and their email."""
    rows = await conn.fetch(
        "SELECT u.id, u.email, u.display_name FROM forum.webinar_registrations r "
        "JOIN forum.users u ON u.id = r.user_id "
        "WHERE r.webinar_id = $1 AND r.status = 'registered' AND ($2::bigint[] IS NULL OR u.id = ANY($2)) "
        "ORDER BY r.id",
        webinar_id,
        user_ids,
    )
    return [Recipient(r["id"], r["email"], r["display_name"]) for r in rows]


def registrations_csv(rows: list[asyncpg.Record]) -> str:
    """The registration list for organisers; cells that a spreadsheet would run as formulas are quoted."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["username", "display_name", "email", "status", "registered_at"])
    for r in rows:
        cells = [r["username"], r["display_name"], r["email"], r["status"], iso(r["created_at"])]
        writer.writerow([_safe_cell(c) for c in cells])
    return out.getvalue()


def _safe_cell(value: str) -> str:
    return "'" + value if re.match(r"[=+\-@\t\r]", value) else value


# --- reminders ---------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    user_id: int
    email: str
    name: str


def reminder_name(webinar_id: int, starts_at: datetime, user_id: int, kind: str) -> str:
    """The reminder's job id (before the install's prefix): a moved webinar gets new ids."""
    return f"webinar:{webinar_id}:{iso(starts_at)}:{user_id}:{kind}"


def reminder_times(starts_at: datetime, now: datetime | None = None) -> list[tuple[str, datetime]]:
    """The reminders still ahead: 24 hours and 1 hour before the start."""
    now = now or datetime.now(UTC)
    return [(kind, starts_at - before) for kind, before in REMINDERS if starts_at - before > now]


def reminder_mail(row: asyncpg.Record, kind: str, base_url: str) -> tuple[str, str]:
    """The subject and text of a reminder (kind 24h or 1h)."""
    when = "tomorrow" if kind == "24h" else "in one hour"
    subject = f"Reminder: {row['title']} starts {when}"
    text = (
        f'Hello,\n\nThe webinar "{row["title"]}" starts {format_london(row["starts_at"])}.\n\n'
        f"Join here: {row['join_url'] or 'the link will be on the webinar page'}\n\n"
        f"The webinar page: {base_url}{webinar_url(row['id'])}\n\n"
        "If you can no longer come, please cancel your place there so someone on the waiting list can have it.\n"
    )
    return subject, text


async def queue_reminders(queue: ArqRedis, row: asyncpg.Record, people: list[Recipient], base_url: str) -> None:
    """Queue each person's reminders, deferred to their times (same ids, one job)."""
    for kind, at in reminder_times(row["starts_at"]):
        subject, text = reminder_mail(row, kind, base_url)
        for person in people:
            name = reminder_name(row["id"], row["starts_at"], person.user_id, kind)
            await queue.enqueue_job(
                "send_mail",
                _job_id=job_id(queue, name),
                _defer_until=at,
                to=person.email,
                subject=subject,
                text=text,
                html=None,
                key=name,
            )


async def drop_reminders(queue: ArqRedis, webinar_id: int, starts_at: datetime, user_ids: list[int]) -> None:
    """Remove reminders not yet sent: out of the queue, and their job records deleted."""
    for user_id in user_ids:
        for kind, _ in REMINDERS:
            jid = job_id(queue, reminder_name(webinar_id, starts_at, user_id, kind))
            await queue.zrem(queue.default_queue_name, jid)
            await queue.delete(job_key_prefix + jid)


async def send_notice(
    queue: ArqRedis, row: asyncpg.Record, people: list[Recipient], *, kind: str, subject: str, text: str
) -> None:
    """One mail now to each person (cancellation, a changed time, a seat from the waiting list)."""
    for person in people:
        key = f"webinar:{row['id']}:{row['sequence']}:{person.user_id}:{kind}"
        await queue.enqueue_job(
            "send_mail",
            _job_id=job_id(queue, f"mail:{key}"),
            to=person.email,
            subject=subject,
            text=text,
            html=None,
            key=key,
        )


async def after_change(
    rt: Runtime, before: asyncpg.Record, after: asyncpg.Record, promoted: list[int], seated: list[Recipient]
) -> None:
    """Bring the queue in line with a committed change: move, cancel, or new seats."""
    queue: ArqRedis = rt.extras["queue"]
    base = rt.settings.public_url
    page = f"{base}{webinar_url(after['id'])}"
    everyone = [p.user_id for p in seated]
    if after["status"] == "cancelled" and before["status"] != "cancelled":
        await drop_reminders(queue, before["id"], before["starts_at"], everyone)
        text = (
            f'Hello,\n\nWe are sorry: the webinar "{after["title"]}" planned for '
            f"{format_london(after['starts_at'])} has been cancelled.\n\nThe webinar page: {page}\n"
        )
        await send_notice(queue, after, seated, kind="cancelled", subject=f"Cancelled: {after['title']}", text=text)
        return
    # Reminders carry the title, time and join link: replace them on any change.
    await drop_reminders(queue, before["id"], before["starts_at"], everyone)
    if before["starts_at"] != after["starts_at"]:
        text = (
            f'Hello,\n\nThe webinar "{after["title"]}" has moved. It now starts '
            f"{format_london(after['starts_at'])}.\n\nThe webinar page: {page}\n"
        )
        await send_notice(queue, after, seated, kind="moved", subject=f"New time: {after['title']}", text=text)
    if after["status"] in ("scheduled", "live"):
        await queue_reminders(queue, after, seated, base)
    await notify_promoted(rt, after, [p for p in seated if p.user_id in promoted])


async def notify_promoted(rt: Runtime, row: asyncpg.Record, people: list[Recipient]) -> None:
    """Tell members who moved off the waiting list that they have a seat."""
    text = (
        f'Hello,\n\nA seat has become free and it is yours: "{row["title"]}", '
        f"{format_london(row['starts_at'])}.\n\nThe webinar page (with the join link): "
        f"{rt.settings.public_url}{webinar_url(row['id'])}\n"
    )
    await send_notice(
        rt.extras["queue"], row, people, kind="seat", subject=f"You have a seat: {row['title']}", text=text
    )


# --- changes with their mail: after the commit, the queue follows -----------------------


async def change(rt: Runtime, who: Session, webinar_id: int, data: dict[str, Any]) -> asyncpg.Record:
    """Update a webinar, then move reminders and send notices (shared by the API and the pages)."""
    async with rt.pool.acquire() as conn, conn.transaction():
        before, after, promoted = await update_webinar(conn, who, webinar_id, data)
        seated = await registrants(conn, webinar_id)
    await after_change(rt, before, after, promoted, seated)
    return after


async def cancel(rt: Runtime, who: Session, webinar_id: int) -> asyncpg.Record:
    """Cancel a webinar, then drop its reminders and tell those with a seat."""
    async with rt.pool.acquire() as conn, conn.transaction():
        before = await fetch_webinar(conn, webinar_id)
        after = await cancel_webinar(conn, who, webinar_id)
        seated = await registrants(conn, webinar_id)
    await after_change(rt, before, after, [], seated)
    return after


async def take_seat(rt: Runtime, who: Session, webinar_id: int) -> tuple[str, asyncpg.Record]:
    """Register (a seat or a waiting place), then queue the reminders of a seat."""
    async with rt.pool.acquire() as conn, conn.transaction():
        status = await register(conn, who, webinar_id)
        row = await fetch_webinar(conn, webinar_id)
        seated = await registrants(conn, webinar_id, [who.user_id]) if status == "registered" else []
    if seated:
        await queue_reminders(rt.extras["queue"], row, seated, rt.settings.public_url)
    return status, row


async def give_up_seat(rt: Runtime, who: Session, webinar_id: int) -> asyncpg.Record:
    """Give up a seat or waiting place, then drop its reminders and tell whoever got the seat."""
    async with rt.pool.acquire() as conn, conn.transaction():
        row, promoted = await unregister(conn, who, webinar_id)
        seated = await registrants(conn, webinar_id, promoted) if promoted else []
    await drop_reminders(rt.extras["queue"], webinar_id, row["starts_at"], [who.user_id])
    if seated:
        await queue_reminders(rt.extras["queue"], row, seated, rt.settings.public_url)
        await notify_promoted(rt, row, seated)
    return row
