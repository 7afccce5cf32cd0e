"""The admin home, /admin: staff's tools under plain headings, each only for the role that may use
it, with what waits in the review queue."""

from __future__ import annotations

import re

from moderation_helpers import flag, reply

from services.forum.admin import admin as admin_home

ADMIN_ONLY = [s.url for s in admin_home.SECTIONS if s.who == admin_home.ADMINS]
FOR_STAFF = [s.url for s in admin_home.SECTIONS if s.who == admin_home.STAFF]


def links(html: str) -> set[str]:
    return set(re.findall(r'class="nhsuk-card__link" href="([^"]+)"', html))


async def test_admins_see_every_tool(admin):
    """An admin's home links every section, under headings."""
    page = await admin.client.get("/admin")
    assert page.status_code == 200
    assert links(page.text) == {s.url for s in admin_home.SECTIONS}
    assert "Keeping people safe" in page.text and "Nothing is waiting for you." in page.text


async def test_moderators_see_only_their_tools(moderator):
    """A moderator's home links the staff tools and none of the admins' (and says admins see more)."""
    page = await moderator.client.get("/admin")
    assert page.status_code == 200
    assert links(page.text) == set(FOR_STAFF)
    assert ADMIN_ONLY and not links(page.text) & set(ADMIN_ONLY)
    assert "admins see more" in page.text


async def test_members_and_visitors_are_refused(client, member_factory):
    """Members get 403 and visitors are sent to log in."""
    member = await member_factory("bea")
    assert (await member.client.get("/admin")).status_code == 403
    visitor = await client.get("/admin")
    assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login")


async def test_what_waits_in_the_queue_is_counted(moderator, sam, topic, member_factory):
    """Flagged posts waiting in the review queue show as a count linking to that kind of item."""
    post = await reply(sam, topic["id"], "Something someone will flag")
    bea = await member_factory("bea")
    assert (await flag(bea, post["id"])).status_code == 201
    page = await moderator.client.get("/admin")
    assert "1 thing waits for you below." in page.text
    assert re.search(r">1</strong> Flagged post", page.text)


async def test_people_waiting_to_join_are_counted(admin, moderator, client):
    """A sign-up waiting for approval waits for staff; an unused invitation is shown but waits for no one."""
    changed = await admin.client.patch("/api/admin/settings", json={"values": {"registration_mode": "approval"}})
    assert changed.status_code == 200, changed.text
    asked = await client.post(
        "/api/users",
        json={
            "username": "newcomer",
            "email": "newcomer@example.org",
            "password": "a long and unusual passphrase",
            "answer": "I work in a crisis team.",
        },
    )
    assert asked.status_code == 201, asked.text
    invited = await moderator.client.post("/api/admin/invitations", json={"email": "friend@example.org"})
    assert invited.status_code == 201, invited.text
    page = await moderator.client.get("/admin")
    assert re.search(r">1</strong> person waiting to join", page.text)
    assert re.search(r">1</strong> invitation not used yet", page.text)
    assert "1 thing waits for you below." in page.text
