"""A role change reaches the member (issue 14, point 2): notify's writer tells them on
user.role_changed, with the admin's reason ("You are now a moderator", kindly when a role is taken
away), once however often the event is handled; and an open live socket of a demoted moderator
loses what only staff may follow, at once. Roles are changed through the forum's API for real."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from notify_helpers import drain, serving, wait_for
from websockets.asyncio.client import connect

from services.forum.outbox import OUTBOX as FORUM_OUTBOX
from services.notify.app import create_app
from services.notify.writer import handle_event
from shared import events as ev
from shared.sessions import SESSION_COOKIE

PROMOTED = "You have been thoughtful and steady with newcomers"
DEMOTED = "You asked for a rest from moderating"


async def _publish(pool, redis, settings) -> None:
    """The forum's relay, by hand: the outbox onto the stream."""
    await ev.Relay(pool, redis, ev.stream_name(settings.redis_prefix), FORUM_OUTBOX).publish_all()


async def _set_role(admin, member_id: int, role: str, reason: str) -> None:
    response = await admin.client.put(f"/api/admin/members/{member_id}/role", json={"role": role, "reason": reason})
    assert response.status_code == 200, response.text


async def _notifications(member) -> list[dict[str, Any]]:
    response = await member.client.get("/api/notifications")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_the_member_is_told_of_a_role_given_and_taken_back(world, member_factory):
    """Promotion: "You are now a moderator" with the reason, leading to the review queue; the role
    taken back: thanked, kindly, with the reason; each told once even when the events come again."""
    admin = await member_factory("ada", roles=("member", "admin"))
    sam = await member_factory("sam")
    await _set_role(admin, sam.id, "moderator", PROMOTED)
    await _publish(world.pool, world.redis, world.settings)
    await drain(world.consumer)
    [told] = await _notifications(sam)
    assert told["kind"] == "role_changed" and told["read"] is False
    assert told["text"].startswith("You are now a moderator. Thank you for helping to look after the community")
    assert told["text"].endswith(f"The reason given: {PROMOTED}")
    assert told["url"] == "/review"
    assert told["actor"] == {"id": admin.id, "username": None}
    assert told["data"] == {"role": "moderator", "previous_role": "member", "reason": PROMOTED}

    await _set_role(admin, sam.id, "member", DEMOTED)
    await _publish(world.pool, world.redis, world.settings)
    await drain(world.consumer)
    latest, first = await _notifications(sam)
    assert first["id"] == told["id"]
    assert latest["text"].startswith("You are no longer a moderator. Thank you for all you did")
    assert "you are very welcome to keep taking part" in latest["text"]
    assert latest["text"].endswith(f"The reason given: {DEMOTED}")
    assert latest["url"] is None

    # At least once: the same events handled again tell nobody twice.
    for envelope_row in await world.pool.fetch("SELECT payload FROM forum.outbox WHERE type = 'user.role_changed'"):
        await handle_event(world.rt, ev.Envelope(**envelope_row["payload"]))
    assert len(await _notifications(sam)) == 2
    assert await _notifications(admin) == []


async def test_an_admin_made_and_a_step_down_to_moderator(world, member_factory):
    admin = await member_factory("ada", roles=("member", "admin"))
    mo = await member_factory("mo", roles=("member", "moderator"))
    await _set_role(admin, mo.id, "admin", PROMOTED)
    await _set_role(admin, mo.id, "moderator", DEMOTED)
    await _publish(world.pool, world.redis, world.settings)
    await drain(world.consumer)
    stepped_down, made_admin = await _notifications(mo)
    assert made_admin["text"].startswith("You are now an admin.")
    assert stepped_down["text"].startswith("You are now a moderator rather than an admin.")


async def test_a_moderator_made_a_safeguarding_lead_and_back_is_told_so(world, member_factory):
    """The duty given or taken back (roles unchanged) is told as the duty, not as a role change."""
    admin = await member_factory("ada", roles=("member", "admin"))
    mo = await member_factory("mo", roles=("member", "moderator"))
    for lead, reason in ((True, PROMOTED), (False, DEMOTED)):
        response = await admin.client.put(
            f"/api/admin/members/{mo.id}/duties", json={"safeguarding_lead": lead, "reason": reason}
        )
        assert response.status_code == 200, response.text
    await _publish(world.pool, world.redis, world.settings)
    await drain(world.consumer)
    taken_back, given = await _notifications(mo)
    assert given["text"].startswith("You are now a safeguarding lead: you will be told at once, by email too")
    assert given["text"].endswith(f"The reason given: {PROMOTED}")
    assert given["data"]["duty"] == "safeguarding_lead" and given["data"]["duty_held"] is True
    assert taken_back["text"].startswith("You are no longer a safeguarding lead.")
    assert taken_back["text"].endswith(f"The reason given: {DEMOTED}")
    assert "moderator" not in given["text"] + taken_back["text"]


# --- live: a demoted moderator's open socket -----------------------------------------------------------


async def _receive(ws, timeout_s: float = 5.0) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if message["type"] != "ping":
            return message


async def test_a_demoted_moderators_open_socket_loses_staff_channels_at_once(
    app, migrated, pool, redis, member_factory, numbered_groups
):
    """A moderator follows a topic of a private group's category (staff may); demoted through the
    forum, their open socket is told `forbidden` for it and gets nothing more of it."""
    admin = await member_factory("ada", roles=("member", "admin"))
    moderator = await member_factory("mo", roles=("member", "moderator"))
    category = await admin.client.post(
        "/api/categories", json={"name": "Circle room", "group_ids": [numbered_groups[0]]}
    )
    assert category.status_code == 201, category.text
    topic = await admin.client.post(
        "/api/topics", json={"category_id": category.json()["id"], "title": "Our circle", "body": "For the group"}
    )
    assert topic.status_code == 201, topic.text
    topic_id = topic.json()["id"]
    live_app = create_app(migrated, background=True)
    async with serving(live_app) as port:
        await wait_for(lambda: _running(live_app), what="the live fan-out")
        await _publish(pool, redis, migrated)
        await wait_for(
            lambda: pool.fetchval("SELECT 1 FROM notify.topics WHERE id = $1", topic_id), what="the topic in notify"
        )
        headers = {"Cookie": f"{SESSION_COOKIE}={moderator.session.id}"}
        async with connect(f"ws://127.0.0.1:{port}/live", additional_headers=headers, open_timeout=5) as ws:
            channel = f"topic:{topic_id}"
            await ws.send(json.dumps({"type": "subscribe", "channels": [channel], "last_event_id": None}))
            assert await _receive(ws) == {"type": "subscribed", "channels": [channel]}
            await _set_role(admin, moderator.id, "member", DEMOTED)
            await _publish(pool, redis, migrated)
            refused = await _receive(ws)
            assert refused["type"] == "error" and refused["code"] == "forbidden" and refused["channel"] == channel
            reply = await admin.client.post(f"/api/topics/{topic_id}/posts", json={"body": "Only for the circle"})
            assert reply.status_code == 201
            await _publish(pool, redis, migrated)
            try:
                message = await _receive(ws, 0.5)
            except TimeoutError:
                message = None
            assert message is None, message


async def _running(live_app: Any) -> bool:
    return bool(live_app.state.runtime.extras["hub"].running)
