"""The admin home's sections: each of staff's tools, who may use it, and what waits there.

Each section names the role that may use its tool (the tool's own page checks again, through
services/forum/access.py: a link shown here never grants anything). Counts come from the concept
that owns them (the review queue, sign-ups, invitations), asked once per page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.forum import access
from services.forum.moderation import moderation
from services.forum.signups import invitations, signups
from services.forum.writings.reviews import KIND_LABELS
from shared.sessions import Session

STAFF, ADMINS = "staff", "admins"


@dataclass(frozen=True)
class Section:
    """One tool on the admin home: its page, what it is for, and who may use it."""

    title: str
    url: str
    description: str
    who: str  # STAFF (moderators and admins) or ADMINS
    group: str  # the heading it sits under


@dataclass(frozen=True)
class Count:
    """Something waiting for staff: how many, in words, and where to act on it."""

    text: str
    number: int
    url: str
    needs_you: bool = True  # False: for information (invitations waiting for the people invited)


SECTIONS: tuple[Section, ...] = (
    Section(
        "Review queue",
        "/review",
        "Flagged posts and comments, posts waiting for approval, safeguarding items and appeals, most urgent first.",
        STAFF,
        "Keeping people safe",
    ),
    Section(
        "Sign-ups and invitations",
        "/admin/signups",
        "People waiting to join, and invitations to join by email.",
        STAFF,
        "Keeping people safe",
    ),
    Section(
        "Audit log",
        "/admin/audit-log",
        "Every moderation action: who did what, when and why.",
        STAFF,
        "Keeping people safe",
    ),
    Section(
        "Watched words",
        "/admin/watched-words",
        "Words that block, hold, soften or flag a post.",
        ADMINS,
        "Keeping people safe",
    ),
    Section(
        "Safeguarding phrases",
        "/admin/safeguarding",
        "Phrases that show a writer where to find support and put their post first in the review queue.",
        ADMINS,
        "Keeping people safe",
    ),
    Section(
        "Members",
        "/admin/members",
        "Find a member, see their standing, silence or suspend, and choose moderators and admins.",
        STAFF,
        "People",
    ),
    Section("Groups", "/groups", "Groups, their members and their private categories and folders.", ADMINS, "People"),
    Section(
        "Badges",
        "/members/badges",
        "Badges members can be given, such as \u201cExpert by experience\u201d.",
        ADMINS,
        "People",
    ),
    Section(
        "Categories",
        "/admin/categories",
        "Create, edit, reorder and archive the forum's categories.",
        ADMINS,
        "The community's spaces",
    ),
    Section(
        "Library folders", "/library", "The subject folders of the shared library.", ADMINS, "The community's spaces"
    ),
    Section("Webinars", "/webinars/new", "Schedule a webinar and its discussion.", ADMINS, "The community's spaces"),
    Section(
        "Settings",
        "/admin/settings",
        "The community's name and welcome, how people join, posting limits, and moderation and safety.",
        ADMINS,
        "Settings",
    ),
)


def may_use(who: Session, section: Section) -> bool:
    """Whether the viewer may use a section's tool (its page decides again)."""
    return access.is_admin(who) if section.who == ADMINS else access.is_staff(who)


def sections_for(who: Session) -> list[dict[str, Any]]:
    """The viewer's sections under their headings, in order: [{"heading", "sections"}]."""
    access.require_staff(who, "The admin pages are for moderators and admins.")
    groups: dict[str, list[Section]] = {}
    for section in SECTIONS:
        if may_use(who, section):
            groups.setdefault(section.group, []).append(section)
    return [{"heading": heading, "sections": items} for heading, items in groups.items()]


CountSource = Callable[[asyncpg.Connection, Session], Awaitable[list[Count]]]


async def queue_counts(conn: asyncpg.Connection, who: Session) -> list[Count]:
    """What waits in the review queue, by kind (only kinds with something waiting)."""
    counts = await moderation.queue_counts(conn, who)
    return [Count(KIND_LABELS[kind], number, f"/review?kind={kind}") for kind, number in counts.items() if number]


@dataclass
class Waiting:
    """Everything that waits for the viewer, by the section it belongs to (its url)."""

    by_section: dict[str, list[Count]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(count.number for counts in self.by_section.values() for count in counts if count.needs_you)


async def signup_counts(conn: asyncpg.Connection, who: Session) -> list[Count]:
    """People waiting for approval (staff act on them), and invitations not yet used (for information)."""
    access.require_staff(who)
    found = []
    if waiting_people := await signups.count_waiting(conn):
        found.append(
            Count(
                "people waiting to join" if waiting_people > 1 else "person waiting to join",
                waiting_people,
                "/admin/signups",
            )
        )
    if open_invitations := await invitations.count_pending_invitations(conn):
        text = "invitations not used yet" if open_invitations > 1 else "invitation not used yet"
        found.append(Count(text, open_invitations, "/admin/invitations", needs_you=False))
    return found


# Where each section's counts come from.
COUNT_SOURCES: dict[str, CountSource] = {"/review": queue_counts, "/admin/signups": signup_counts}


async def waiting(conn: asyncpg.Connection, who: Session) -> Waiting:
    """What waits in each section the viewer may use."""
    found = Waiting()
    for section in SECTIONS:
        source = COUNT_SOURCES.get(section.url)
        if source is not None and may_use(who, section):
            found.by_section[section.url] = await source(conn, who)
    return found
