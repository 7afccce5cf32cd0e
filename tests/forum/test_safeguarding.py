"""The safeguarding loop in the forum: alerts (and re-alerts, admins added) when a safeguarding item
waits, the safeguarding lead duty, "I'm looking at this", the header's count, and what was done."""

from __future__ import annotations

import asyncio
import time

import pytest
from moderation_helpers import audit_actions, events, flag, forum_runtime, reply, review_of, settings_changed

from services.forum.moderation import safeguarding

CRISIS = "Some nights I still think I want to end my life"


async def _make_lead(admin, member, *, status=200):
    response = await admin.client.put(
        f"/api/admin/members/{member.id}/duties",
        json={"safeguarding_lead": True, "reason": "Leads safeguarding for the community"},
    )
    assert response.status_code == status, response.text
    return response


@pytest.fixture
async def lead(member_factory, admin):
    member = await member_factory("lena", roles=("member", "moderator"))
    await _make_lead(admin, member)
    return member


async def test_a_safeguarding_post_alerts_moderators_and_leads_at_once(
    sam, topic, moderator, admin, lead, member_factory, pool
):
    """Round 1 goes to every moderator and lead (not admins), the leads are mailed, once per opening."""
    post = await reply(sam, topic["id"], CRISIS)
    item = await review_of(pool, post["id"], "safeguarding")
    [alert] = await events(pool, "safeguarding.alerted")
    assert alert.review_id == item["id"] and alert.round == 1
    assert sorted(alert.recipient_ids) == sorted([moderator.id, lead.id])
    assert alert.email_ids == [lead.id]
    assert (alert.post_id, alert.topic_id, alert.topic_title) == (post["id"], topic["id"], topic["title"])
    assert alert.message_id is None and alert.conversation_id is None
    assert item["alert_round"] == 1 and item["alerted_at"] is not None
    # More reasons on the same waiting item (a member's safeguarding flag) alert nobody again.
    assert (await flag(await member_factory(), post["id"], "safeguarding")).status_code == 201
    assert len(await events(pool, "safeguarding.alerted")) == 1


async def test_a_flag_for_safeguarding_alerts_and_a_reopened_item_alerts_again(
    sam, topic, moderator, member_factory, pool
):
    """A member's safeguarding flag opens an item that alerts; closed and flagged again, it alerts afresh."""
    post = await reply(sam, topic["id"], "A hard week, but I am getting through it")
    assert await events(pool, "safeguarding.alerted") == []
    assert (await flag(await member_factory(), post["id"], "safeguarding")).status_code == 201
    item = await review_of(pool, post["id"], "safeguarding")
    [first] = await events(pool, "safeguarding.alerted")
    assert first.review_id == item["id"] and first.recipient_ids == [moderator.id]
    closed = await moderator.client.post(
        f"/api/review/{item['id']}",
        json={"action": "ignore", "outcome": "no_action", "note": "Read it: they are getting through."},
    )
    assert closed.status_code == 200, closed.text
    assert (await flag(await member_factory(), post["id"], "safeguarding")).status_code == 201
    alerts = await events(pool, "safeguarding.alerted")
    assert [(a.review_id, a.round) for a in alerts] == [(item["id"], 1), (item["id"], 1)]
    again = await review_of(pool, post["id"], "safeguarding")
    assert again["outcome"] is None and again["picked_up_by"] is None


async def test_the_safeguarding_lead_duty(admin, moderator, sam, member_factory, pool, client):
    """Admins give and take the duty, staff only, with a reason; audited; the member told; demoting ends it."""
    refused = await _make_lead(admin, sam, status=409)
    assert refused.json()["error"]["code"] == "not_staff"
    given = await _make_lead(admin, moderator)
    assert given.json()["member"]["safeguarding_lead"] is True
    assert (await _make_lead(admin, moderator, status=409)).json()["error"]["code"] == "same_duty"
    no_reason = await admin.client.put(
        f"/api/admin/members/{moderator.id}/duties", json={"safeguarding_lead": False, "reason": ""}
    )
    assert no_reason.status_code == 422
    other_mod = await member_factory("mira", roles=("member", "moderator"))
    assert (await _make_lead(other_mod, moderator, status=403)).status_code == 403
    anonymous = await client.put(
        f"/api/admin/members/{moderator.id}/duties", json={"safeguarding_lead": True, "reason": "Because"}
    )
    assert anonymous.status_code in (401, 403)
    missing = await admin.client.put(
        "/api/admin/members/999999/duties", json={"safeguarding_lead": True, "reason": "Because"}
    )
    assert missing.status_code == 404
    [told] = [e for e in await events(pool, "user.role_changed") if e.duty]
    assert (told.user_id, told.duty, told.duty_held) == (moderator.id, "safeguarding_lead", True)
    assert "user.safeguarding_lead" in await audit_actions(pool)
    demoted = await admin.client.put(
        f"/api/admin/members/{moderator.id}/role", json={"role": "member", "reason": "Stepping back for now"}
    )
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["member"]["safeguarding_lead"] is False
    listed = (await admin.client.get(f"/api/admin/members/{moderator.id}")).json()
    assert listed["member"]["safeguarding_lead"] is False


async def _run_realerts(app, seconds: float) -> None:
    """The forum's re-alert loop, running for a while (the test app runs no background loops)."""
    stop = asyncio.Event()
    task = asyncio.create_task(safeguarding.realert_loop(forum_runtime(app), stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, timeout=5)


async def test_an_item_nobody_picks_up_alerts_again_with_admins_until_picked_up(
    app, sam, topic, moderator, admin, pool
):
    """With a 0.02-minute delay the loop alerts again (round 2, admins too) on time, and stops once picked up."""
    post = await reply(sam, topic["id"], CRISIS)
    item = await review_of(pool, post["id"], "safeguarding")
    with settings_changed(app, safeguarding_realert_minutes=0.02):  # 1.2 s
        started = time.monotonic()
        await _run_realerts(app, 1.6)
        alerts = await events(pool, "safeguarding.alerted")
        assert [a.round for a in alerts] == [1, 2], time.monotonic() - started
        assert sorted(alerts[1].recipient_ids) == sorted([moderator.id, admin.id])
        after = await review_of(pool, post["id"], "safeguarding")
        late_s = (after["alerted_at"] - item["alerted_at"]).total_seconds()
        assert 1.2 <= late_s <= 1.2 * 1.1 + 0.15, late_s
        picked = await moderator.client.post(f"/api/review/{item['id']}/pickup", json={})
        assert picked.status_code == 200, picked.text
        await _run_realerts(app, 1.6)
        assert len(await events(pool, "safeguarding.alerted")) == 2
        # Put down, it waits for someone again: alerted a full delay later.
        assert (await moderator.client.delete(f"/api/review/{item['id']}/pickup")).status_code == 200
        await _run_realerts(app, 1.6)
        assert [a.round for a in await events(pool, "safeguarding.alerted")] == [1, 2, 3]


async def test_a_resolved_item_alerts_no_more(app, sam, topic, moderator, pool):
    post = await reply(sam, topic["id"], CRISIS)
    item = await review_of(pool, post["id"], "safeguarding")
    closed = await moderator.client.post(
        f"/api/review/{item['id']}",
        json={"action": "approve", "outcome": "signposted", "note": "Replied in the topic with the support lines."},
    )
    assert closed.status_code == 200, closed.text
    with settings_changed(app, safeguarding_realert_minutes=0.02):
        await _run_realerts(app, 1.6)
    assert [a.round for a in await events(pool, "safeguarding.alerted")] == [1]


async def test_pick_up_put_down_and_take_over(sam, topic, moderator, member_factory, pool, client):
    """One moderator has it at a time: others are told who (409) and may take it over explicitly; audited."""
    post = await reply(sam, topic["id"], CRISIS)
    item_id = (await review_of(pool, post["id"], "safeguarding"))["id"]
    other = await member_factory("mira", roles=("member", "moderator"))
    picked = await moderator.client.post(f"/api/review/{item_id}/pickup")
    assert picked.status_code == 200, picked.text
    part = picked.json()["safeguarding"]
    assert part["picked_up"]["by"]["username"] == "mo" and part["picked_up"]["at"]
    assert (await moderator.client.post(f"/api/review/{item_id}/pickup")).status_code == 200  # still theirs
    clash = await other.client.post(f"/api/review/{item_id}/pickup", json={})
    assert clash.status_code == 409 and "Mo (@mo)" in clash.json()["error"]["message"]
    assert (await other.client.delete(f"/api/review/{item_id}/pickup")).status_code == 409
    taken = await other.client.post(f"/api/review/{item_id}/pickup", json={"take_over": True})
    assert taken.status_code == 200 and taken.json()["safeguarding"]["picked_up"]["by"]["username"] == "mira"
    assert (await moderator.client.delete(f"/api/review/{item_id}/pickup")).status_code == 409
    put_down = await other.client.delete(f"/api/review/{item_id}/pickup")
    assert put_down.status_code == 200 and put_down.json()["safeguarding"]["picked_up"] is None
    assert (await other.client.delete(f"/api/review/{item_id}/pickup")).status_code == 409
    picked_events = await events(pool, "safeguarding.picked_up")
    assert [(e.moderator_id, e.moderator_username) for e in picked_events] == [
        (moderator.id, "mo"),
        (other.id, "mira"),
        (None, None),
    ]
    assert [a for a in await audit_actions(pool) if a.startswith("review.")] == [
        "review.pick_up",
        "review.take_over",
        "review.put_down",
    ]
    assert (await sam.client.post(f"/api/review/{item_id}/pickup")).status_code == 403
    assert (await client.post(f"/api/review/{item_id}/pickup")).status_code in (401, 403)
    assert (await moderator.client.post("/api/review/999999/pickup")).status_code == 404
    flagged = await reply(sam, topic["id"], "Buy cheap watches")
    await flag(await member_factory(), flagged["id"], "spam")
    spam_item = (await review_of(pool, flagged["id"], "flagged_post"))["id"]
    not_safeguarding = await moderator.client.post(f"/api/review/{spam_item}/pickup")
    assert not_safeguarding.status_code == 409


async def test_review_counts_for_the_header(sam, topic, moderator, member_factory, client, pool):
    """Staff get the count (API and every page's header); members and visitors do not."""
    empty = await moderator.client.get("/api/review/counts")
    assert empty.status_code == 200 and empty.json() == {"waiting": 0, "safeguarding": 0}
    page = (await moderator.client.get("/")).text
    assert 'id="tica-review-count"' in page and " hidden>" in page.split('id="tica-review-count"')[1][:300]
    await reply(sam, topic["id"], CRISIS)
    flagged = await reply(sam, topic["id"], "Buy cheap watches")
    await flag(await member_factory(), flagged["id"], "spam")
    counts = await moderator.client.get("/api/review/counts")
    assert counts.json() == {"waiting": 2, "safeguarding": 1}
    page = (await moderator.client.get("/")).text
    badge = page.split('id="tica-review-count"')[1][:500]
    assert "tica-review-count--safeguarding" in badge and ">2</span>" in badge
    assert "2 waiting, 1 about safeguarding" in badge
    assert (await sam.client.get("/api/review/counts")).status_code == 403
    assert (await client.get("/api/review/counts")).status_code == 401
    assert "tica-review-count" not in (await sam.client.get("/")).text


async def test_closing_a_safeguarding_item_records_what_was_done(sam, topic, moderator, pool):
    """Outcome and note are required for safeguarding items, kept, audited, an event; shown afterwards."""
    post = await reply(sam, topic["id"], CRISIS)
    item_id = (await review_of(pool, post["id"], "safeguarding"))["id"]
    missing = await moderator.client.post(f"/api/review/{item_id}", json={"action": "approve"})
    assert missing.status_code == 422 and "outcome" in missing.json()["error"]["fields"]
    no_note = await moderator.client.post(
        f"/api/review/{item_id}", json={"action": "approve", "outcome": "reached_out", "note": "  "}
    )
    assert no_note.status_code == 422 and "note" in no_note.json()["error"]["fields"]
    wrong = await moderator.client.post(
        f"/api/review/{item_id}", json={"action": "approve", "outcome": "shrugged", "note": "x"}
    )
    assert wrong.status_code == 422
    assert (await review_of(pool, post["id"], "safeguarding"))["status"] == "pending"
    done = await moderator.client.post(
        f"/api/review/{item_id}",
        json={"action": "approve", "outcome": "reached_out", "note": "Sent a private message with the support lines."},
    )
    assert done.status_code == 200, done.text
    part = done.json()["safeguarding"]
    assert (part["outcome"], part["outcome_label"]) == ("reached_out", "Reached out to them")
    assert part["outcome_note"] == "Sent a private message with the support lines."
    [resolved] = await events(pool, "safeguarding.resolved")
    assert (resolved.review_id, resolved.outcome, resolved.moderator_id) == (item_id, "reached_out", moderator.id)
    assert "review.safeguarding_outcome" in await audit_actions(pool)
    page = await moderator.client.get(f"/review/{item_id}")
    assert page.status_code == 200 and "What was done: Reached out to them." in page.text


async def test_other_items_close_without_an_outcome(sam, topic, moderator, member_factory, pool):
    flagged = await reply(sam, topic["id"], "Buy cheap watches")
    await flag(await member_factory(), flagged["id"], "spam")
    item_id = (await review_of(pool, flagged["id"], "flagged_post"))["id"]
    done = await moderator.client.post(f"/api/review/{item_id}", json={"action": "ignore"})
    assert done.status_code == 200 and done.json()["safeguarding"] is None


def _form(member, **fields):
    return {**fields, "csrf_token": member.session.csrf}


async def test_the_item_page_picks_up_takes_over_and_closes(sam, topic, moderator, member_factory, pool):
    """Without JavaScript: the item page, "I'm looking at this", the take-over confirmation, closing with
    what was done (a clear error without it)."""
    post = await reply(sam, topic["id"], CRISIS)
    item_id = (await review_of(pool, post["id"], "safeguarding"))["id"]
    page = await moderator.client.get(f"/review/{item_id}")
    assert page.status_code == 200 and "I&rsquo;m looking at this" in page.text
    assert "Nobody has said they are looking at this yet" in page.text
    assert "Nobody has reached out from this item yet" in page.text
    assert f'href="/review/{item_id}/outreach"' in page.text
    picked = await moderator.client.post(f"/review/{item_id}/pickup", data=_form(moderator, action="pick_up"))
    assert picked.status_code == 303 and picked.headers["location"] == f"/review/{item_id}?done=pick_up"
    shown = (await moderator.client.get(picked.headers["location"])).text
    assert "You are looking at this" in shown and "Stop looking at this" in shown
    other = await member_factory("mira", roles=("member", "moderator"))
    queue = (await other.client.get("/review")).text
    assert "Mo (@mo) is looking at this" in queue
    confirm = await other.client.get(f"/review/{item_id}/pickup")
    assert confirm.status_code == 200 and "Yes, take it over" in confirm.text
    clash = await other.client.post(f"/review/{item_id}/pickup", data=_form(other, action="pick_up"))
    assert clash.status_code == 409 and "is already looking at this" in clash.text
    taken = await other.client.post(f"/review/{item_id}/pickup", data=_form(other, action="take_over"))
    assert taken.status_code == 303
    bad = await other.client.post(f"/review/{item_id}/pickup", data=_form(other, action="dance"))
    assert bad.status_code == 422
    unfinished = await other.client.post(
        f"/review/{item_id}", data=_form(other, action="approve", back="item", note="Messaged them")
    )
    assert unfinished.status_code == 422 and "What was done is needed" in unfinished.text
    assert "Messaged them" in unfinished.text  # what was typed is kept
    closed = await other.client.post(
        f"/review/{item_id}",
        data=_form(other, action="approve", back="item", outcome="escalated", note="Called the crisis team."),
    )
    assert closed.status_code == 303 and closed.headers["location"] == f"/review/{item_id}?done=closed"
    final = (await other.client.get(closed.headers["location"])).text
    assert "What was done: Escalated outside the community." in final and "Called the crisis team." in final
    assert (await sam.client.get(f"/review/{item_id}")).status_code == 403
    assert (await moderator.client.get("/review/999999")).status_code == 404


async def test_the_members_admin_page_gives_and_takes_the_duty(admin, moderator, sam, pool):
    """/admin/members/{id}: admins give a moderator the duty and take it back, with a reason; clear errors."""
    page = await admin.client.get(f"/admin/members/{moderator.id}")
    assert page.status_code == 200 and "Make Mo a safeguarding lead" in page.text
    no_reason = await admin.client.post(
        f"/admin/members/{moderator.id}/duties", data=_form(admin, lead="yes", reason="")
    )
    assert no_reason.status_code == 422 and "Reason is required" in no_reason.text
    given = await admin.client.post(
        f"/admin/members/{moderator.id}/duties", data=_form(admin, lead="yes", reason="Leads safeguarding")
    )
    assert given.status_code == 303 and given.headers["location"].endswith("?done=duty#duty-heading")
    shown = (await admin.client.get(given.headers["location"])).text
    assert "Mo is now a safeguarding lead" in shown and "Moderator, safeguarding lead" in shown
    taken = await admin.client.post(
        f"/admin/members/{moderator.id}/duties", data=_form(admin, lead="no", reason="Handing over to Lena")
    )
    assert taken.status_code == 303
    assert (await pool.fetchval("SELECT safeguarding_lead FROM forum.users WHERE id = $1", moderator.id)) is False
    not_staff = await admin.client.post(
        f"/admin/members/{sam.id}/duties", data=_form(admin, lead="yes", reason="Because they care")
    )
    assert not_staff.status_code == 409 and "Only staff can be safeguarding leads" in not_staff.text
    assert "Make Sam a safeguarding lead" not in (await admin.client.get(f"/admin/members/{sam.id}")).text
    refused = await moderator.client.post(
        f"/admin/members/{moderator.id}/duties", data=_form(moderator, lead="yes", reason="Myself")
    )
    assert refused.status_code == 403


async def test_the_item_page_shows_outreach_sent_from_it(sam, topic, moderator, pool):
    """Outreach sent from a safeguarding item (the messages package) is listed on the item's page."""
    post = await reply(sam, topic["id"], CRISIS)
    item_id = (await review_of(pool, post["id"], "safeguarding"))["id"]
    sent = await moderator.client.post(
        f"/review/{item_id}/outreach",
        data=_form(moderator, title="Checking in with you", text="Hello Sam, we read what you wrote."),
    )
    assert sent.status_code == 303, sent.text
    page = (await moderator.client.get(f"/review/{item_id}")).text
    assert "Conversation started by" in page and "No reply yet" in page
    assert "Nobody has reached out from this item yet" not in page


async def test_a_private_message_that_matches_a_phrase_alerts_staff_too(sam, moderator, member_factory, pool):
    """A safeguarding_message item alerts like a post's, naming the message and its conversation (not a topic)."""
    await member_factory("bea")
    started = await sam.client.post(
        "/api/conversations", json={"recipients": ["bea"], "title": "Hello", "text": CRISIS}
    )
    assert started.status_code == 201, started.text
    item = await pool.fetchrow("SELECT id, message_id FROM forum.reviewables WHERE kind = 'safeguarding_message'")
    [alert] = await events(pool, "safeguarding.alerted")
    assert (alert.review_id, alert.round, alert.recipient_ids) == (item["id"], 1, [moderator.id])
    assert alert.message_id == item["message_id"] and alert.conversation_id == started.json()["id"]
    assert alert.post_id is None and alert.topic_title is None
    counts = (await moderator.client.get("/api/review/counts")).json()
    assert counts == {"waiting": 1, "safeguarding": 1}
    picked = await moderator.client.post(f"/api/review/{item['id']}/pickup")
    assert picked.status_code == 200 and picked.json()["safeguarding"]["picked_up"]["by"]["id"] == moderator.id
    page = await moderator.client.get(f"/review/{item['id']}")
    assert page.status_code == 200 and "You are looking at this" in page.text and "What was done" in page.text


async def test_the_queue_asks_what_was_done_before_closing_a_safeguarding_item(sam, topic, moderator, pool):
    """From the queue too: no outcome, a clear 422 pointing at the choice, with what was typed kept."""
    post = await reply(sam, topic["id"], CRISIS)
    item_id = (await review_of(pool, post["id"], "safeguarding"))["id"]
    queue = (await moderator.client.get("/review")).text
    assert f'id="outcome-{item_id}"' in queue and f'id="note-{item_id}"' in queue
    refused = await moderator.client.post(
        f"/review/{item_id}", data=_form(moderator, action="approve", note="Sent the support lines")
    )
    assert refused.status_code == 422
    assert f'href="#outcome-{item_id}"' in refused.text and "What was done is needed" in refused.text
    assert "Sent the support lines" in refused.text
    done = await moderator.client.post(
        f"/review/{item_id}",
        data=_form(moderator, action="approve", outcome="signposted", note="Sent the support lines"),
    )
    assert done.status_code == 303 and done.headers["location"] == "/review?done=approve"
    assert (await review_of(pool, post["id"], "safeguarding"))["outcome"] == "signposted"


def test_the_re_alert_loop_looks_often_enough():
    """Within ~10% of the delay: a twentieth of it, between 0.05 s and 30 s."""
    assert safeguarding.check_interval_s(30) == 30.0  # 30 minutes: at most 30 s late (under 2%)
    assert safeguarding.check_interval_s(5) == 15.0
    assert safeguarding.check_interval_s(0.02) == pytest.approx(0.06)
    assert safeguarding.check_interval_s(0.001) == 0.05


async def test_an_item_waiting_since_before_alerts_existed_is_alerted_by_the_loop(app, sam, topic, moderator, pool):
    """A pending safeguarding item never alerted (round 0) gets its first alert from the loop, at once."""
    post = await reply(sam, topic["id"], CRISIS)
    await pool.execute("DELETE FROM forum.outbox WHERE type = 'safeguarding.alerted'")
    await pool.execute("UPDATE forum.reviewables SET alert_round = 0, alerted_at = NULL WHERE post_id = $1", post["id"])
    await _run_realerts(app, 0.3)
    [alert] = await events(pool, "safeguarding.alerted")
    assert (alert.round, alert.recipient_ids) == (1, [moderator.id])


async def test_pages_of_other_services_carry_an_empty_review_count_for_staff(moderator, sam):
    """notify's pages cannot count the queue: staff get the badge empty and hidden, for live.js to fill."""
    page = (await moderator.client.get("/notifications")).text
    badge = page.split('id="tica-review-count"')[1][:400]
    assert "hidden" in badge.split(">")[0] and "data-review-count></span>" in badge
    assert "tica-review-count" not in (await sam.client.get("/notifications")).text
