"""Webinars: scheduling, exact capacity with a waiting list, the join link for registered
members only, reminders that follow the webinar's time, organisers' exports, and pages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from xss_corpus import PAYLOADS, assert_inert

from services.forum.webinars import webinars
from shared.jobs import job_id, open_queue

JOIN = "https://meet.example.org/secret-room-42"


def soon(days: float = 3, hours: float = 0) -> datetime:
    start = datetime.now(UTC) + timedelta(days=days, hours=hours)
    return start.replace(second=0, microsecond=0)


def body(start: datetime | None = None, **extra: Any) -> dict[str, Any]:
    start = start or soon()
    return {
        "title": "Trauma-informed supervision",
        "description": "How supervision can **hold** people.",
        "starts_at": webinars.iso(start),
        "ends_at": webinars.iso(start + timedelta(hours=1, minutes=30)),
        "capacity": 2,
        "chair": "Dr Amara Okafor",
        "speakers": [
            {"name": "Sam Lee", "role": "Peer lead", "organisation": "Mind", "expert_by_experience": True},
            {"name": "Jo Park", "role": "Psychologist", "organisation": "NHS Leeds"},
        ],
        "themes": ["supervision", "staff wellbeing"],
        "join_url": JOIN,
        **extra,
    }


async def schedule(admin: Any, **extra: Any) -> dict[str, Any]:
    response = await admin.client.post("/api/webinars", json=body(**extra))
    assert response.status_code == 201, response.text
    return response.json()


@pytest_asyncio.fixture(loop_scope="session")
async def queue(settings) -> AsyncIterator[ArqRedis]:
    q = await open_queue(settings)
    yield q
    await q.aclose()


async def queued_at(queue: ArqRedis, name: str) -> datetime | None:
    score = await queue.zscore(queue.default_queue_name, job_id(queue, name))
    return None if score is None else datetime.fromtimestamp(score / 1000, UTC)


async def queued_mails(queue: ArqRedis) -> list[dict[str, Any]]:
    jobs = await queue.queued_jobs(queue_name=queue.default_queue_name)
    return [j.kwargs for j in jobs if j.function == "send_mail"]


# --- scheduling ---------------------------------------------------------------------


async def test_schedule_creates_a_linked_discussion_topic(admin, pool):
    webinar = await schedule(admin)
    assert webinar["status"] == "scheduled" and webinar["capacity"] == 2
    assert webinar["speakers"][0]["expert_by_experience"] is True
    assert webinar["speakers"][1]["expert_by_experience"] is False
    assert webinar["join_url"] == JOIN  # the organiser sees it
    topic = await pool.fetchrow(
        "SELECT t.title, c.slug, p.raw FROM forum.topics t JOIN forum.categories c ON c.id = t.category_id "
        "JOIN forum.posts p ON p.topic_id = t.id WHERE t.id = $1",
        webinar["topic_id"],
    )
    assert topic["slug"] == "webinars" and topic["title"] == webinar["title"]
    assert f"/webinars/{webinar['id']}" in topic["raw"]  # the topic links back
    assert JOIN not in topic["raw"]
    second = await schedule(admin)
    assert await pool.fetchval("SELECT count(*) FROM forum.categories WHERE slug = 'webinars'") == 1
    assert second["topic_id"] != webinar["topic_id"]
    types = [r["type"] for r in await pool.fetch("SELECT type FROM forum.outbox ORDER BY id")]
    assert types.count("webinar.scheduled") == 2


async def test_scheduling_needs_an_admin_and_valid_input(admin, sam, client):
    assert (await client.post("/api/webinars", json=body())).status_code == 401
    assert (await sam.client.post("/api/webinars", json=body())).status_code == 403
    response = await admin.client.post("/api/webinars", json=body(starts_at="2027-03-25T18:00:00"))
    assert response.status_code == 422 and "starts_at" in response.json()["error"]["fields"]
    start = soon()
    bad = body(start, ends_at=webinars.iso(start - timedelta(hours=1)))
    response = await admin.client.post("/api/webinars", json=bad)
    assert response.status_code == 422 and "ends_at" in response.json()["error"]["fields"]
    for extra in (
        {"capacity": 0},
        {"join_url": "javascript:alert(1)"},
        {"speakers": [{"role": "no name"}]},
        {"speakers": [{"name": "X", "user_id": 999999}]},
        {"title": "Hi"},
        {"nonsense": 1},
    ):
        response = await admin.client.post("/api/webinars", json=body(**extra))
        assert response.status_code == 422, extra
        assert response.json()["error"]["fields"]
    assert (await client.get("/api/webinars/999")).status_code == 404
    assert (await client.get("/api/webinars?when=later")).status_code == 400


async def test_only_organisers_change_and_cancel(admin, sam, member_factory):
    organiser = await member_factory("olu")
    webinar = await schedule(admin, organiser_ids=[organiser.id])
    url = f"/api/webinars/{webinar['id']}"
    assert (await sam.client.patch(url, json={"title": "Taken over"})).status_code == 403
    assert (await sam.client.post(f"{url}/cancel", json={})).status_code == 403
    response = await organiser.client.patch(url, json={"title": "Supervision that holds"})
    assert response.status_code == 200 and response.json()["sequence"] == 1
    response = await organiser.client.patch(url, json={"organiser_ids": [organiser.id, sam.id]})
    assert response.status_code == 403  # only admins choose organisers
    assert (await organiser.client.post(f"{url}/cancel", json={})).status_code == 200
    assert (await organiser.client.post(f"{url}/cancel", json={})).status_code == 409
    assert (await organiser.client.patch(url, json={"title": "Back again"})).status_code == 409
    assert (await sam.client.post(f"{url}/registration")).status_code == 409


async def test_after_the_webinar_attendance_recording_and_slides(admin, client):
    webinar = await schedule(admin)
    url = f"/api/webinars/{webinar['id']}"
    response = await admin.client.patch(
        url, json={"status": "finished", "attendance": 187, "recording_url": "https://video.example.org/r/1"}
    )
    assert response.status_code == 200, response.text
    public = (await client.get(url)).json()
    assert public["attendance"] == 187 and public["recording_url"] == "https://video.example.org/r/1"
    assert public["status"] == "finished"
    response = await admin.client.patch(url, json={"slides_document_id": 424242})
    assert response.status_code == 422 and "slides_document_id" in response.json()["error"]["fields"]
    response = await admin.client.patch(url, json={"attendance": -1})
    assert response.status_code == 422


# --- registration -------------------------------------------------------------------


async def test_the_last_seat_taken_by_two_at_once_goes_to_exactly_one(admin, member_factory, pool):
    for attempt in range(5):  # a race is only a race if it is run a few times
        webinar = await schedule(admin)
        url = f"/api/webinars/{webinar['id']}/registration"
        first, a, b = [await member_factory() for _ in range(3)]
        assert (await first.client.post(url)).json()["status"] == "registered"
        answers = await asyncio.gather(a.client.post(url), b.client.post(url))
        assert [r.status_code for r in answers] == [201, 201], attempt
        assert sorted(r.json()["status"] for r in answers) == ["registered", "waiting"]
        seats = await pool.fetchval(
            "SELECT count(*) FROM forum.webinar_registrations WHERE webinar_id = $1 AND status = 'registered'",
            webinar["id"],
        )
        assert seats == 2


async def test_cancelling_a_seat_promotes_the_first_on_the_waiting_list(admin, member_factory, queue):
    webinar = await schedule(admin, capacity=1)
    url = f"/api/webinars/{webinar['id']}"
    a, b, c = [await member_factory(name) for name in ("ann", "ben", "cal")]
    for m, expected in ((a, "registered"), (b, "waiting"), (c, "waiting")):
        response = await m.client.post(f"{url}/registration")
        assert response.json()["status"] == expected
    assert (await c.client.get(url)).json()["waiting_position"] == 2
    assert (await b.client.post(f"{url}/registration")).status_code == 409  # already on the list
    assert (await a.client.delete(f"{url}/registration")).status_code == 204
    assert (await a.client.delete(f"{url}/registration")).status_code == 404
    ben = (await b.client.get(url)).json()
    assert ben["my_registration"] == "registered" and ben["join_url"] == JOIN
    cal = (await c.client.get(url)).json()
    assert cal["my_registration"] == "waiting" and cal["waiting_position"] == 1
    starts = datetime.fromisoformat(webinar["starts_at"])
    assert await queued_at(queue, webinars.reminder_name(webinar["id"], starts, b.id, "24h")) is not None
    assert await queued_at(queue, webinars.reminder_name(webinar["id"], starts, a.id, "24h")) is None
    seat_mail = [m for m in await queued_mails(queue) if m["subject"].startswith("You have a seat")]
    assert [m["to"] for m in seat_mail] == ["ben@example.org"]


async def test_every_change_of_place_is_an_event(admin, member_factory, pool):
    """Taking, waiting for and giving up a place are webinar.registered events (notify keeps who to tell)."""
    webinar = await schedule(admin, capacity=1)
    url = f"/api/webinars/{webinar['id']}/registration"
    a, b = [await member_factory(name) for name in ("ari", "bo")]
    await a.client.post(url)
    await b.client.post(url)
    await a.client.delete(url)
    rows = await pool.fetch(
        "SELECT payload->'data'->>'user_id' AS user_id, payload->'data'->>'status' AS status "
        "FROM forum.outbox WHERE type = 'webinar.registered' ORDER BY id"
    )
    assert [(int(r["user_id"]), r["status"]) for r in rows] == [
        (a.id, "registered"),
        (b.id, "waiting"),
        (a.id, "cancelled"),
        (b.id, "registered"),
    ]


async def test_raising_the_capacity_promotes_and_lowering_below_seats_is_refused(admin, member_factory):
    webinar = await schedule(admin, capacity=1)
    url = f"/api/webinars/{webinar['id']}"
    a, b = await member_factory(), await member_factory()
    await a.client.post(f"{url}/registration")
    await b.client.post(f"{url}/registration")
    assert (await admin.client.patch(url, json={"capacity": 2})).json()["registered_count"] == 2
    assert (await b.client.get(url)).json()["my_registration"] == "registered"
    response = await admin.client.patch(url, json={"capacity": 1})
    assert response.status_code == 409 and "capacity" in response.json()["error"]["fields"]


async def test_registration_needs_a_login(admin, client):
    webinar = await schedule(admin)
    assert (await client.post(f"/api/webinars/{webinar['id']}/registration")).status_code == 401
    assert (await client.post("/api/webinars/999/registration")).status_code == 401


# --- the join link ------------------------------------------------------------------


async def test_the_join_link_only_reaches_registered_members(admin, member_factory, client, pool, queue):
    webinar = await schedule(admin, capacity=1)
    api = f"/api/webinars/{webinar['id']}"
    page = f"/webinars/{webinar['id']}"
    seated, waiting, other = [await member_factory(n) for n in ("sita", "wes", "otto")]
    await seated.client.post(f"{api}/registration")
    await waiting.client.post(f"{api}/registration")
    for who in (client, waiting.client, other.client):
        assert "join_url" not in (await who.get(api)).json()
        assert all("join_url" not in w for w in (await who.get("/api/webinars")).json()["items"])
        html = (await who.get(page)).text
        assert JOIN not in html
    assert (await seated.client.get(api)).json()["join_url"] == JOIN
    assert JOIN in (await seated.client.get(page)).text
    assert JOIN not in (await client.get(f"{page}.ics")).text
    assert JOIN not in (await client.get("/webinars.ics")).text
    payloads = [r["payload"] for r in await pool.fetch("SELECT payload FROM forum.outbox")]
    assert JOIN not in json.dumps(payloads)  # so neither search nor notify ever holds it
    with_link = {m["to"] for m in await queued_mails(queue) if JOIN in m["text"]}
    assert with_link == {"sita@example.org"}


# --- reminders ----------------------------------------------------------------------


async def test_a_moved_webinar_moves_its_reminders(admin, sam, queue):
    start = soon(days=3)
    webinar = await schedule(admin, start=start)
    url = f"/api/webinars/{webinar['id']}"
    assert (await sam.client.post(f"{url}/registration")).json()["status"] == "registered"
    old = {kind: webinars.reminder_name(webinar["id"], start, sam.id, kind) for kind in ("24h", "1h")}
    assert await queued_at(queue, old["24h"]) == start - timedelta(hours=24)
    assert await queued_at(queue, old["1h"]) == start - timedelta(hours=1)

    later = start + timedelta(days=2, hours=3)
    response = await admin.client.patch(
        url, json={"starts_at": webinars.iso(later), "ends_at": webinars.iso(later + timedelta(hours=1))}
    )
    assert response.status_code == 200, response.text
    for name in old.values():
        assert await queued_at(queue, name) is None
        assert not await queue.exists(job_key_prefix + job_id(queue, name))
    new = {kind: webinars.reminder_name(webinar["id"], later, sam.id, kind) for kind in ("24h", "1h")}
    assert await queued_at(queue, new["24h"]) == later - timedelta(hours=24)
    assert await queued_at(queue, new["1h"]) == later - timedelta(hours=1)
    moved = [m for m in await queued_mails(queue) if m["subject"].startswith("New time")]
    assert [m["to"] for m in moved] == ["sam@example.org"]

    assert (await admin.client.post(f"{url}/cancel", json={"reason": "Speaker unwell"})).status_code == 200
    for name in new.values():
        assert await queued_at(queue, name) is None
    cancelled = [m for m in await queued_mails(queue) if m["subject"].startswith("Cancelled")]
    assert [m["to"] for m in cancelled] == ["sam@example.org"]


async def test_no_reminder_for_a_time_already_past(admin, sam, queue):
    start = soon(days=0, hours=5)
    webinar = await schedule(admin, start=start)
    await sam.client.post(f"/api/webinars/{webinar['id']}/registration")
    assert await queued_at(queue, webinars.reminder_name(webinar["id"], start, sam.id, "24h")) is None
    assert await queued_at(queue, webinars.reminder_name(webinar["id"], start, sam.id, "1h")) is not None


# --- organisers' list ---------------------------------------------------------------


async def test_organisers_see_and_export_registrations(admin, sam, member_factory):
    webinar = await schedule(admin, capacity=1)
    url = f"/api/webinars/{webinar['id']}"
    tricky = await member_factory("eve")
    await tricky.client.patch("/api/me", json={"display_name": "=HYPERLINK(1)"})
    await sam.client.post(f"{url}/registration")
    await tricky.client.post(f"{url}/registration")
    listing = (await admin.client.get(f"{url}/registrations")).json()["registrations"]
    assert [(r["username"], r["status"]) for r in listing] == [("sam", "registered"), ("eve", "waiting")]
    response = await admin.client.get(f"{url}/registrations?format=csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0] == "username,display_name,email,status,registered_at"
    assert lines[1].startswith("sam,Sam,sam@example.org,registered,")
    assert (await sam.client.get(f"{url}/registrations")).status_code == 403
    assert (await sam.client.get(f"/webinars/{webinar['id']}/registrations")).status_code == 403
    assert (await admin.client.get(f"{url}/registrations?format=xml")).status_code == 400
    page = await admin.client.get(f"/webinars/{webinar['id']}/registrations?format=csv")
    assert page.status_code == 200 and "sam@example.org" in page.text


def test_csv_cells_never_run_as_formulas():
    assert webinars._safe_cell("=SUM(A1)") == "'=SUM(A1)"
    assert webinars._safe_cell("Sam") == "Sam"


# --- pages --------------------------------------------------------------------------


async def test_pages_list_show_register_and_cancel(admin, sam, client):
    webinar = await schedule(admin)
    listing = await client.get("/webinars")
    assert listing.status_code == 200 and webinar["title"] in listing.text
    assert (await client.get("/webinars/past")).status_code == 200
    page = await client.get(f"/webinars/{webinar['id']}")
    assert page.status_code == 200 and page.text.count("<h1") == 1
    assert "Sam Lee" in page.text and "Expert by experience" in page.text
    assert f"/t/{webinar['topic_id']}" in page.text and f"/webinars/{webinar['id']}.ics" in page.text
    assert (await client.get("/webinars/999")).status_code == 404

    form = {"csrf_token": sam.session.csrf}
    response = await sam.client.post(f"/webinars/{webinar['id']}/register", data=form)
    assert response.status_code == 303 and response.headers["location"].endswith("done=registered")
    page = await sam.client.get(response.headers["location"])
    assert "You have a seat" in page.text and JOIN in page.text
    response = await sam.client.post(f"/webinars/{webinar['id']}/unregister", data=form)
    assert response.status_code == 303
    assert JOIN not in (await sam.client.get(f"/webinars/{webinar['id']}")).text
    bad = await sam.client.post(f"/webinars/{webinar['id']}/register", data={"csrf_token": "wrong"})
    assert bad.status_code == 403
    anonymous = await client.post(f"/webinars/{webinar['id']}/register", data={})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


async def test_organiser_forms_schedule_edit_and_cancel(admin, sam, pool):
    assert (await sam.client.get("/webinars/new")).status_code == 403
    assert (await admin.client.get("/webinars/new")).status_code == 200
    form = {
        "csrf_token": admin.session.csrf,
        "title": "Safety and choice",
        "description": "",
        "date": "2027-03-25",
        "start_time": "18:00",
        "end_time": "19:30",
        "capacity": "120",
        "chair": "",
        "speakers": "Ria Das | Nurse | NHS Kent | expert by experience\nTom Hill",
        "themes": "safety, choice",
        "join_url": "",
    }
    response = await admin.client.post("/webinars/new", data={**form, "end_time": "17:00"})
    assert response.status_code == 422 and 'href="#end_time"' in response.text
    response = await admin.client.post("/webinars/new", data={**form, "date": "25/03/2027"})
    assert response.status_code == 422 and 'href="#date"' in response.text
    response = await admin.client.post("/webinars/new", data=form)
    assert response.status_code == 303, response.text
    row = await pool.fetchrow("SELECT * FROM forum.webinars WHERE title = 'Safety and choice'")
    assert row["starts_at"] == datetime(2027, 3, 25, 18, 0, tzinfo=UTC)  # GMT: UK time is UTC
    assert row["speakers"][0]["expert_by_experience"] and row["speakers"][1]["name"] == "Tom Hill"
    edit = await admin.client.get(f"/webinars/{row['id']}/edit")
    assert edit.status_code == 200 and 'value="18:00"' in edit.text
    response = await admin.client.post(
        f"/webinars/{row['id']}/edit",
        data={
            **form,
            "date": "2027-04-01",
            "status": "finished",
            "attendance": "99",
            "recording_url": "",
            "slides_url": "",
            "slides_document_id": "",
        },
    )
    assert response.status_code == 303, response.text
    row = await pool.fetchrow("SELECT * FROM forum.webinars WHERE id = $1", row["id"])
    assert row["starts_at"] == datetime(2027, 4, 1, 17, 0, tzinfo=UTC)  # BST: an hour ahead of UTC
    assert row["attendance"] == 99 and row["status"] == "finished"
    assert (await sam.client.get(f"/webinars/{row['id']}/cancel")).status_code == 403
    other = await schedule(admin)
    assert (await admin.client.get(f"/webinars/{other['id']}/cancel")).status_code == 200
    response = await admin.client.post(f"/webinars/{other['id']}/cancel", data={"csrf_token": admin.session.csrf})
    assert response.status_code == 303
    assert "has been cancelled" in (await admin.client.get(f"/webinars/{other['id']}")).text


@pytest.mark.parametrize("path", ["/webinars", "/webinars/past"])
async def test_header_links_to_webinars(client, path):
    page = await client.get(path)
    assert 'href="/webinars"' in page.text and 'aria-current="page"' in page.text


async def test_webinar_pages_keep_hostile_text_inert(admin, client):
    for payload in PAYLOADS[::7]:
        webinar = await schedule(
            admin,
            title=f"Webinar {payload}"[:200],
            description=payload,
            chair=payload[:200],
            speakers=[{"name": payload[:200] or "x", "role": payload[:200], "organisation": payload[:200]}],
            themes=[payload[:60] or "x"],
        )
        assert_inert((await client.get(f"/webinars/{webinar['id']}")).text, page=True, allow_script_src=True)
    assert_inert((await client.get("/webinars")).text, page=True, allow_script_src=True)
