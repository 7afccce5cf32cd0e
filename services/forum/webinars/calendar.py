"""Webinars as iCalendar (RFC 5545): one `.ics` per webinar and a feed of upcoming ones.

UIDs are stable (`webinar-{id}@{host}`), SEQUENCE is the webinar's own counter (bumped on
every change a calendar shows), a cancelled webinar stays in the feed with STATUS:CANCELLED
so calendar apps remove it, and times are UTC (`...Z`). Links are absolute, from the public
URL, and the description is plain text (its markdown rendered, then its text taken). The join
link is never put in a calendar file: these are public, and the link is for registered members only.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
from icalendar import Calendar, Event
from starlette.requests import Request
from starlette.responses import Response

from services.forum.webinars import webinars
from shared import markdown
from shared.api import path_int
from shared.settings import Settings
from shared.web import runtime

PRODID = "-//tica//webinars//EN"
FEED_PAST_DAYS = 30  # recent webinars stay in the feed, so a late cancellation or recording still arrives
FEED_SQL = (
    f"SELECT {webinars.COLUMNS} FROM forum.webinars w WHERE w.ends_at > now() - $1::interval "
    "ORDER BY w.starts_at LIMIT 500"
)


def new_calendar(name: str) -> Calendar:
    """An empty calendar with tica's PRODID, published under this name."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    return cal


# Plain descriptions by (webinar id, last change): any change moves updated_at, so an entry never goes
# stale, and the feed does not render every webinar's markdown on every fetch.
_PLAIN: OrderedDict[tuple[int, datetime], str] = OrderedDict()
PLAIN_CACHE_SIZE = 1000


async def plain_description(row: asyncpg.Record, settings: Settings) -> str:
    """A webinar's description as calendar apps show it: text, not markdown."""
    key = (row["id"], row["updated_at"])
    if key in _PLAIN:
        _PLAIN.move_to_end(key)
        return _PLAIN[key]
    raw = row["description"] or ""
    try:
        text = (await markdown.render_async(raw, budget_ms=settings.render_budget_ms)).text if raw else ""
    except markdown.TooComplex:
        text = " ".join(raw.split())  # still readable, if not pretty
    _PLAIN[key] = text
    if len(_PLAIN) > PLAIN_CACHE_SIZE:
        _PLAIN.popitem(last=False)
    return text


def webinar_event(row: asyncpg.Record, base_url: str, description: str) -> Event:
    """One VEVENT for a webinar row; `base_url` is the public URL, `description` plain text."""
    host = urlsplit(base_url).hostname or "tica"
    page = f"{base_url}{webinars.webinar_url(row['id'])}"
    event = Event()
    event.add("uid", f"webinar-{row['id']}@{host}")
    event.add("sequence", row["sequence"])
    event.add("dtstamp", row["updated_at"].astimezone(UTC))
    event.add("last-modified", row["updated_at"].astimezone(UTC))
    event.add("created", row["created_at"].astimezone(UTC))
    event.add("dtstart", row["starts_at"].astimezone(UTC))
    event.add("dtend", row["ends_at"].astimezone(UTC))
    event.add("summary", row["title"])
    event.add("description", f"{description}\n\nDetails and registration: {page}".strip())
    event.add("url", page)
    event.add("status", "CANCELLED" if row["status"] == "cancelled" else "CONFIRMED")
    return event


def ics_response(cal: Calendar, filename: str) -> Response:
    """A calendar file, shown inline so a calendar app opens it."""
    return Response(
        cal.to_ical(),
        media_type="text/calendar; charset=utf-8",
        headers={"content-disposition": f'inline; filename="{filename}"', "cache-control": "no-cache"},
    )


async def webinar_ics(request: Request) -> Response:
    """GET /webinars/{id}.ics: add one webinar to a calendar."""
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        row = await webinars.fetch_webinar(conn, path_int(request, "id"))
    cal = new_calendar(row["title"])
    cal.add_component(webinar_event(row, rt.settings.public_url, await plain_description(row, rt.settings)))
    return ics_response(cal, f"webinar-{row['id']}.ics")


async def feed_ics(request: Request) -> Response:
    """GET /webinars.ics: upcoming webinars (and those of the last month), to subscribe to."""
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(FEED_SQL, timedelta(days=FEED_PAST_DAYS))
    cal = new_calendar("tica webinars")
    for row in rows:
        cal.add_component(webinar_event(row, rt.settings.public_url, await plain_description(row, rt.settings)))
    return ics_response(cal, "webinars.ics")
