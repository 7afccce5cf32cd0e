"""The demo's groups and webinars, made through the groups' and webinars' own actions: an open
group and one that owners approve (with a request still waiting), an upcoming webinar with an
expert by experience among its speakers and members registered, and a past one with its
attendance, recording and slides; then moved back to when they happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.forum.demo.discussions import backdate_topic
from services.forum.demo.library import PRIMARY_CARE_SLIDES
from services.forum.groups import groups
from services.forum.webinars import webinars
from shared.sessions import Session


@dataclass(frozen=True)
class DemoGroup:
    name: str
    access: str
    description: str
    owner: str
    days_ago: int
    joined: list[str] = field(default_factory=list)  # joined (open) or approved (on request), in order
    waiting: dict[str, str] = field(default_factory=dict)  # asked to join, not yet answered: who -> message


GROUPS = [
    DemoGroup(
        "Reflective practice circle",
        "open",
        "A space for practitioners to think together about the work and how it affects us. Monthly prompts, "
        "and a place to ask how others protect time for reflection. Everyone is welcome.",
        owner="priya",
        days_ago=180,
        joined=["jordan", "mo", "ada"],
    ),
    DemoGroup(
        "Co-production network",
        "request",
        "People with lived experience and the professionals who work alongside them, co-producing services "
        "as equals. An owner answers each request to join, so that members know who is in the room.",
        owner="sam",
        days_ago=150,
        joined=["priya"],
        waiting={
            "jordan": "I manage an adult social care service and want to learn how to co-produce well, "
            "starting with paying people fairly."
        },
    ),
]
GROUP_JOINS_DAYS_APART = 11  # the members of a group joined one after another, this many days apart

BACKDATE_GROUP_SQL = """
UPDATE forum.groups
SET created_at = now() - make_interval(days => $2), updated_at = now() - make_interval(days => $2)
WHERE id = $1
"""
# The owner was there from the start ($4 lists the members in the order they came), the others
# joined in turn, some days apart.
BACKDATE_MEMBERS_SQL = """
UPDATE forum.group_members
SET created_at = now() - make_interval(days => $2)
    + make_interval(days => (array_position($4::bigint[], user_id) - 1) * $3)
WHERE group_id = $1
"""
BACKDATE_REQUESTS_SQL = "UPDATE forum.group_requests SET created_at = now() - interval '2 days' WHERE group_id = $1"


async def _seed_group(conn: asyncpg.Connection, people: dict[str, Session], demo: DemoGroup) -> None:
    admin, owner = people["ada"], people[demo.owner]
    group = await groups.create_group(
        conn, admin, {"name": demo.name, "access": demo.access, "description": demo.description}
    )
    await groups.add_member(conn, admin, group["id"], demo.owner, owner=True)
    for name in demo.joined:
        member = people[name]
        if await groups.join(conn, member, group["id"], "I would love to learn with you all.") == "requested":
            await groups.decide_request(conn, owner, group["id"], member.user_id, "approve")
    for name, message in demo.waiting.items():
        await groups.join(conn, people[name], group["id"], message)
    await conn.execute(BACKDATE_GROUP_SQL, group["id"], demo.days_ago)
    order = [people[name].user_id for name in (demo.owner, *demo.joined)]
    await conn.execute(BACKDATE_MEMBERS_SQL, group["id"], demo.days_ago, GROUP_JOINS_DAYS_APART, order)
    await conn.execute(BACKDATE_REQUESTS_SQL, group["id"])


# --- webinars ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoWebinar:
    data: dict[str, Any]  # as the API takes it (WEBINAR_IN), without times, speakers and organisers
    speakers: list[tuple[str | None, dict[str, Any]]]  # (the demo login of one of our people, the speaker)
    starts_in: timedelta  # from now; negative for one that has happened
    scheduled_days_ago: int
    organisers: list[str]
    registered: list[str] = field(default_factory=list)
    afterwards: dict[str, Any] = field(default_factory=dict)  # what was recorded after it (WEBINAR_PATCH)
    slides: str | None = None  # the title of its slides in the library
    duration: timedelta = timedelta(hours=1, minutes=30)


def _at_half_past_twelve(days: int) -> datetime:
    """A lunchtime slot `days` from today (negative: in the past), 12:30 UK time."""
    day = datetime.now(UTC).astimezone(webinars.LONDON) + timedelta(days=days)
    return day.replace(hour=12, minute=30, second=0, microsecond=0).astimezone(UTC)


UPCOMING = DemoWebinar(
    {
        "title": "Co-producing care plans with experts by experience",
        "description": (
            "What changes when people write their own care plans with us, rather than sign the ones we write? "
            "Sam Taylor and Priya Shah share a year of co-producing care plans in a community mental health "
            "team: what helped, what got in the way, and what they would do differently.\n\n"
            "There will be time for questions. You can also post them in the discussion beforehand, and ask "
            "anonymously if you prefer."
        ),
        "chair": "Ada Okafor",
        "capacity": 100,
        "themes": ["co-production", "lived experience", "care planning"],
        "join_url": "https://video.example.org/tica/co-producing-care-plans",
    },
    speakers=[
        (
            "sam",
            {
                "name": "Sam Taylor",
                "role": "Expert by experience",
                "organisation": "Co-production network",
                "expert_by_experience": True,
            },
        ),
        (
            "priya",
            {"name": "Priya Shah", "role": "Clinical psychologist", "organisation": "NHS community mental health team"},
        ),
    ],
    starts_in=timedelta(days=12),
    scheduled_days_ago=6,
    organisers=["ada", "sam"],
    registered=["priya", "jordan", "mo"],
)
PAST = DemoWebinar(
    {
        "title": "Trauma-informed approaches in primary care",
        "description": (
            "Two GP practices on becoming more trauma-informed, from the reception desk to the consulting room. "
            "With a patient partner who helped one of the practices rethink its waiting room and its letters."
        ),
        "chair": "Ada Okafor",
        "capacity": 150,
        "themes": ["primary care", "first contact"],
    },
    speakers=[
        (None, {"name": "Dr Hannah Reid", "role": "GP partner", "organisation": "Riverside Medical Practice"}),
        (None, {"name": "Marcus Bell", "role": "Practice manager", "organisation": "Hillcrest Surgery"}),
        (
            None,
            {
                "name": "Grace Adeyemi",
                "role": "Patient partner",
                "organisation": "Hillcrest Surgery patient group",
                "expert_by_experience": True,
            },
        ),
    ],
    starts_in=-timedelta(days=10),
    scheduled_days_ago=40,
    organisers=["ada"],
    afterwards={
        "status": "finished",
        "attendance": 86,
        "recording_url": "https://video.example.org/tica/primary-care-recording",
    },
    slides=PRIMARY_CARE_SLIDES,
)

BACKDATE_WEBINAR_SQL = """
UPDATE forum.webinars SET created_at = now() - make_interval(days => $2),
    updated_at = CASE WHEN status = 'finished' THEN ends_at + interval '7 days' ELSE now() - make_interval(days => $2)
    END
WHERE id = $1
"""
# Registrations came in over the days after it was announced.
BACKDATE_REGISTRATIONS_SQL = """
UPDATE forum.webinar_registrations r SET created_at = w.created_at + (r.id - first.id + 1) * interval '19 hours'
FROM forum.webinars w, (SELECT min(id) AS id FROM forum.webinar_registrations WHERE webinar_id = $1) first
WHERE r.webinar_id = $1 AND w.id = $1
"""


async def _seed_webinar(
    conn: asyncpg.Connection, people: dict[str, Session], demo: DemoWebinar, document_ids: dict[str, int]
) -> None:
    starts_at = _at_half_past_twelve(demo.starts_in.days)
    data = {
        **demo.data,
        "starts_at": webinars.iso(starts_at),
        "ends_at": webinars.iso(starts_at + demo.duration),
        "organiser_ids": [people[name].user_id for name in demo.organisers],
        "speakers": [
            {**speaker, "user_id": people[login].user_id if login else None} for login, speaker in demo.speakers
        ],
    }
    row = await webinars.create_webinar(conn, people["ada"], data)
    for name in demo.registered:
        await webinars.register(conn, people[name], row["id"])
    if demo.afterwards:
        slides = {"slides_document_id": document_ids[demo.slides]} if demo.slides else {}
        await webinars.update_webinar(conn, people["ada"], row["id"], {**demo.afterwards, **slides})
    await conn.execute(BACKDATE_WEBINAR_SQL, row["id"], demo.scheduled_days_ago)
    await conn.execute(BACKDATE_REGISTRATIONS_SQL, row["id"])
    await backdate_topic(conn, row["topic_id"], demo.scheduled_days_ago * 24)


async def seed_community(conn: asyncpg.Connection, people: dict[str, Session], document_ids: dict[str, int]) -> None:
    """The demo's groups and webinars (the past webinar's slides are a library document)."""
    for group in GROUPS:
        await _seed_group(conn, people, group)
    for webinar in (UPCOMING, PAST):
        await _seed_webinar(conn, people, webinar, document_ids)
