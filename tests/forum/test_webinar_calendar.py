"""Webinars in calendars (RFC 5545) and UK time on the pages, on both sides of a
daylight-saving change: the clocks go forward on 28 March 2027 (GMT to BST)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar

# 18:00 UK time on each side of the change: 18:00 GMT is 18:00 UTC, 18:00 BST is 17:00 UTC.
BEFORE = ("2027-03-25T18:00:00+00:00", "2027-03-25T19:00:00+00:00")
AFTER = ("2027-04-01T18:00:00+01:00", "2027-04-01T19:00:00+01:00")


async def schedule(admin: Any, title: str, times: tuple[str, str]) -> dict[str, Any]:
    response = await admin.client.post(
        "/api/webinars",
        json={
            "title": title,
            "starts_at": times[0],
            "ends_at": times[1],
            "capacity": 50,
            "join_url": "https://x.test/j",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def events(ics: bytes) -> list[Any]:
    return list(Calendar.from_ical(ics).walk("VEVENT"))


async def test_ics_holds_utc_times_across_a_daylight_saving_change(admin, client):
    gmt = await schedule(admin, "Before the clocks change", BEFORE)
    bst = await schedule(admin, "After the clocks change", AFTER)
    response = await client.get(f"/webinars/{gmt['id']}.ics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    assert b"DTSTART:20270325T180000Z" in response.content
    (event,) = events(response.content)
    assert event.decoded("dtstart") == datetime(2027, 3, 25, 18, 0, tzinfo=UTC)
    assert event.decoded("dtend") == datetime(2027, 3, 25, 19, 0, tzinfo=UTC)
    response = await client.get(f"/webinars/{bst['id']}.ics")
    assert b"DTSTART:20270401T170000Z" in response.content
    (event,) = events(response.content)
    assert event.decoded("dtstart") == datetime(2027, 4, 1, 17, 0, tzinfo=UTC)
    assert str(event["status"]) == "CONFIRMED" and int(event["sequence"]) == 0

    feed = await client.get("/webinars.ics")
    cal = Calendar.from_ical(feed.content)
    assert str(cal["version"]) == "2.0" and "tica" in str(cal["prodid"])
    starts = {str(e["summary"]): e.decoded("dtstart") for e in cal.walk("VEVENT")}
    assert starts == {
        "Before the clocks change": datetime(2027, 3, 25, 18, 0, tzinfo=UTC),
        "After the clocks change": datetime(2027, 4, 1, 17, 0, tzinfo=UTC),
    }


async def test_pages_and_api_name_the_uk_zone(admin, client):
    gmt = await schedule(admin, "Before the clocks change", BEFORE)
    bst = await schedule(admin, "After the clocks change", AFTER)
    assert gmt["starts_at"] == "2027-03-25T18:00:00Z" and gmt["starts_at_local"] == "Thursday 25 March 2027, 18:00 GMT"
    assert bst["starts_at"] == "2027-04-01T17:00:00Z" and bst["starts_at_local"] == "Thursday 1 April 2027, 18:00 BST"
    page = (await client.get(f"/webinars/{gmt['id']}")).text
    assert "Thursday 25 March 2027, 18:00 GMT" in page and "BST" not in page
    page = (await client.get(f"/webinars/{bst['id']}")).text
    assert "Thursday 1 April 2027, 18:00 BST" in page and "GMT" not in page
    listing = (await client.get("/webinars")).text
    assert "18:00 GMT" in listing and "18:00 BST" in listing


async def test_uid_is_stable_sequence_bumps_and_cancelled_shows(admin, client):
    webinar = await schedule(admin, "A webinar that changes", BEFORE)
    url = f"/webinars/{webinar['id']}.ics"
    (first,) = events((await client.get(url)).content)
    response = await admin.client.patch(
        f"/api/webinars/{webinar['id']}", json={"starts_at": AFTER[0], "ends_at": AFTER[1]}
    )
    assert response.status_code == 200
    (moved,) = events((await client.get(url)).content)
    assert str(moved["uid"]) == str(first["uid"])
    assert int(moved["sequence"]) == int(first["sequence"]) + 1
    assert moved.decoded("dtstart") == datetime(2027, 4, 1, 17, 0, tzinfo=UTC)
    await admin.client.patch(f"/api/webinars/{webinar['id']}", json={"attendance": 3})  # not a calendar change
    (same,) = events((await client.get(url)).content)
    assert int(same["sequence"]) == int(moved["sequence"])
    assert (await admin.client.post(f"/api/webinars/{webinar['id']}/cancel", json={})).status_code == 200
    (cancelled,) = events((await client.get(url)).content)
    assert str(cancelled["status"]) == "CANCELLED" and int(cancelled["sequence"]) == int(moved["sequence"]) + 1
    feed = events((await client.get("/webinars.ics")).content)
    assert [str(e["status"]) for e in feed] == ["CANCELLED"]


async def test_calendar_of_an_unknown_webinar_is_404(client):
    assert (await client.get("/webinars/999.ics")).status_code == 404
    assert (await client.get("/webinars/abc.ics")).status_code == 404


async def test_calendar_links_are_absolute_and_its_text_plain_without_a_base_url(admin, migrated):
    """With TICA_BASE_URL unset (a `tica run`), calendar files still link to the site itself, absolutely,
    and the description is text, not markdown."""
    import httpx

    from services.allinone import AllInOne

    made = await schedule(admin, "Grounding together", BEFORE)
    changed = await admin.client.patch(
        f"/api/webinars/{made['id']}",
        json={"description": "A practice of **grounding**, with [notes](https://example.org/notes)."},
    )
    assert changed.status_code == 200, changed.text
    app = AllInOne(migrated.replace(base_url=None, port=8123), background=False)
    async with (
        app.running(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8123") as http,
    ):
        for path in (f"/webinars/{made['id']}.ics", "/webinars.ics"):
            (event,) = events((await http.get(path)).content)
            assert str(event["url"]) == f"http://127.0.0.1:8123/webinars/{made['id']}"
            assert str(event["uid"]) == f"webinar-{made['id']}@127.0.0.1"
            description = str(event["description"])
            assert description.startswith("A practice of grounding, with notes.")
            assert "**" not in description and "](" not in description
            assert description.endswith(f"Details and registration: http://127.0.0.1:8123/webinars/{made['id']}")
