"""Joining by invitation (issue 14, point 5): without an invitation there is no form (the API says
403); staff invite by email with a note; the signed link opens the form with the address, which
then counts as confirmed; single use; 28 days; withdrawn; resent (the old link stops working);
staff only, limited per day; invitations skip approval and outlive a change of mode. Mail goes
through a real SMTP server."""

from __future__ import annotations

import pytest
from signup_helpers import PASSWORD, body, cheap_hashing, form, link, mailbox, mode, submit, text_of

from services.forum.signups import invitations
from shared import ratelimit

NOTE = "Hello Rowan, it was good to meet you at the Leeds network day.\nDo join us!"


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    cheap_hashing(monkeypatch)


@pytest.fixture
def invite_only(app):
    with mode(app, "invite"):
        yield


@pytest.fixture
def mails(settings):
    with mailbox(settings) as box:
        yield box


async def invite(member, email="rowan@example.org", note=None, status=201):
    response = await member.client.post("/api/admin/invitations", json={"email": email, "note": note})
    assert response.status_code == status, response.text
    return response.json()


async def invitation_token(mails, email="rowan@example.org") -> str:
    _, text, _ = await mails.last_to(email, "You are invited to join tica")
    return link(text, "/register", "invitation")


async def register(client, token, **changes):
    return await client.post("/api/users", json=body(invitation=token, **changes))


async def log_in(client, login="rowan"):
    return await client.post("/api/session", json={"login": login, "password": PASSWORD})


# --- without an invitation ---------------------------------------------------------------------------


async def test_without_an_invitation_there_is_no_way_in(client, pool, invite_only):
    """The register page says joining is by invitation and whom to ask, with no form; the API says 403."""
    page = await client.get("/register")
    assert page.status_code == 200 and "Joining is by invitation" in page.text
    assert "ask a moderator" in page.text and '<form method="post" action="/register"' not in page.text
    refused = await client.post("/api/users", json=body())
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "invitation_required"
    assert "Joining this community is by invitation" in refused.json()["error"]["message"]
    posted = await submit(client, "/login", "/register", {"username": "rowan", "email": "r@example.org"})
    assert posted.status_code == 403 and "Joining is by invitation" in posted.text
    assert await pool.fetchval("SELECT count(*) FROM forum.users") == 0


# --- the invitation, end to end ---------------------------------------------------------------------------


async def test_invite_register_with_the_invited_address(client, pool, invite_only, mails, moderator):
    """A moderator invites with a note; the mail's link opens the form with the address; registering
    with it makes a confirmed account (no mail to confirm), marks the invitation used, and it can log in."""
    sent = await invite(moderator, note=NOTE)
    assert sent["status"] == "pending" and sent["note"] == NOTE and sent["invited_by"]["username"] == "mo"
    subject, text, html_part = await mails.last_to("rowan@example.org")
    assert subject == "You are invited to join tica"
    assert "Mo has invited you to join tica." in text and NOTE in text and "works for 28 days" in text
    token = await invitation_token(mails)
    assert f"/register?invitation={token}" in html_part
    page = await client.get("/register", params={"invitation": token})
    assert page.status_code == 200 and 'value="rowan@example.org"' in page.text
    assert f'name="invitation" value="{token}"' in page.text and "You have been invited to join tica" in page.text

    done = await submit(
        client,
        f"/register?invitation={token}",
        "/register",
        {"invitation": token, "username": "rowan", "email": "rowan@example.org", "password": PASSWORD},
    )
    assert done.status_code == 200 and "Your account is ready" in done.text
    user = await pool.fetchrow("SELECT id, email_verified_at FROM forum.users WHERE username = 'rowan'")
    assert user["email_verified_at"] is not None
    assert len(await mails.to("rowan@example.org")) == 1  # the invitation only: nothing to confirm
    listed = (await moderator.client.get("/api/admin/invitations")).json()["items"]
    assert listed[0]["status"] == "used" and listed[0]["used_by"]["id"] == user["id"]
    assert (await log_in(client)).status_code == 200
    entry = await pool.fetchrow("SELECT action, target_type, target_id FROM forum.audit_log")
    assert dict(entry) == {"action": "invitation.send", "target_type": "invitation", "target_id": sent["id"]}
    kinds = await pool.fetch("SELECT type FROM forum.outbox WHERE type <> 'user.seen' ORDER BY id")
    assert [row["type"] for row in kinds] == ["invitation.sent", "user.registered"]


async def test_another_address_must_be_confirmed(client, invite_only, mails, admin):
    """Registering with another address than the invited one works, but that address must be confirmed."""
    await invite(admin)
    token = await invitation_token(mails)
    response = await register(client, token, email="rowan.ash@example.org")
    assert response.status_code == 201 and response.json()["email_verified"] is False
    subject, _, _ = await mails.last_to("rowan.ash@example.org")
    assert subject == "Confirm your email address for tica"


async def test_an_invitation_is_used_once(client, invite_only, mails, admin):
    """A second registration with the same link is refused, kindly, in the API and on the page."""
    await invite(admin)
    token = await invitation_token(mails)
    assert (await register(client, token)).status_code == 201
    again = await register(client, token, username="rowan2", email="rowan2@example.org")
    assert again.status_code == 400 and again.json()["error"]["fields"] == {"invitation": "used"}
    page = await client.get("/register", params={"invitation": token})
    assert page.status_code == 400 and "This invitation has been used" in page.text
    assert "already been used to create an account" in page.text and 'href="/login"' in page.text


async def test_an_invitation_expires_after_28_days(client, pool, invite_only, mails, admin):
    """28 days after it was sent, the link says the invitation has expired (the clock moved in the database)."""
    sent = await invite(admin)
    token = await invitation_token(mails)
    assert (await client.get("/register", params={"invitation": token})).status_code == 200
    await pool.execute(
        "UPDATE forum.invitations SET created_at = created_at - interval '28 days 1 minute', "
        "sent_at = sent_at - interval '28 days 1 minute', expires_at = expires_at - interval '28 days 1 minute' "
        "WHERE id = $1",
        sent["id"],
    )
    page = await client.get("/register", params={"invitation": token})
    assert page.status_code == 400 and "This invitation has expired" in page.text and "28 days" in page.text
    refused = await register(client, token)
    assert refused.status_code == 400 and refused.json()["error"]["fields"] == {"invitation": "expired"}
    [listed] = (await admin.client.get("/api/admin/invitations", params={"status": "expired"})).json()["items"]
    assert listed["id"] == sent["id"]
    assert await invitations.count_pending_invitations(pool) == 0


async def test_a_withdrawn_invitation_stops_working(client, pool, invite_only, mails, moderator):
    """Withdrawing (audited) makes the link say so; it cannot be withdrawn twice or resent."""
    sent = await invite(moderator)
    token = await invitation_token(mails)
    assert (await moderator.client.delete(f"/api/admin/invitations/{sent['id']}")).status_code == 204
    page = await client.get("/register", params={"invitation": token})
    assert page.status_code == 400 and "This invitation was withdrawn" in page.text
    assert (await register(client, token)).json()["error"]["fields"] == {"invitation": "withdrawn"}
    assert (await moderator.client.delete(f"/api/admin/invitations/{sent['id']}")).status_code == 409
    assert (await moderator.client.post(f"/api/admin/invitations/{sent['id']}/resend")).status_code == 409
    assert (await moderator.client.delete("/api/admin/invitations/999999")).status_code == 404
    actions = [row["action"] for row in await pool.fetch("SELECT action FROM forum.audit_log ORDER BY id")]
    assert actions == ["invitation.send", "invitation.revoke"]
    kinds = [r["kind"] for r in await pool.fetch("SELECT payload->>'type' AS kind FROM forum.outbox ORDER BY id")]
    assert [k for k in kinds if k.startswith("invitation.")] == ["invitation.sent", "invitation.withdrawn"]
    [listed] = (await moderator.client.get("/api/admin/invitations")).json()["items"]
    assert listed["status"] == "withdrawn" and listed["withdrawn_at"]


async def test_resending_replaces_the_link(client, pool, invite_only, mails, admin):
    """Resending mails a new link valid 28 days from now; the old link says it was replaced."""
    sent = await invite(admin)
    old = await invitation_token(mails)
    await pool.execute("UPDATE forum.invitations SET expires_at = now() - interval '1 day' WHERE id = $1", sent["id"])
    resent = await admin.client.post(f"/api/admin/invitations/{sent['id']}/resend")
    assert resent.status_code == 200 and resent.json()["status"] == "pending"
    messages = await mails.to("rowan@example.org")
    assert len(messages) == 2
    new = await invitation_token(mails)
    assert new != old
    page = await client.get("/register", params={"invitation": old})
    assert page.status_code == 400 and "replaced by a newer one" in page.text
    assert (await register(client, new)).status_code == 201


async def test_forged_links_are_refused(client, invite_only, mails, admin):
    """A link with a wrong signature, an unknown id or a made-up later version opens nothing."""
    sent = await invite(admin)
    token = await invitation_token(mails)
    number, version, signature = token.split(".")
    for forged in (
        f"{number}.{version}.{signature[:-2]}xx",
        f"{int(number) + 1}.{version}.{signature}",
        f"{number}.{int(version) + 1}.{signature}",
        "not-a-token",
        "1.1." + "x" * 190,
    ):
        page = await client.get("/register", params={"invitation": forged})
        assert page.status_code == 400 and "not complete or not right" in page.text, forged
        assert (await register(client, forged)).json()["error"]["fields"] == {"invitation": "unknown"}
    page = await client.get("/register", params={"invitation": "1.1." + "x" * 300})
    assert page.status_code == 400 and "not complete or not right" in page.text
    assert (await register(client, "1.1." + "x" * 300)).status_code == 422  # longer than any token
    assert sent["status"] == "pending"


# --- invitations in the other modes --------------------------------------------------------------------


async def test_an_invitation_skips_approval_and_outlives_a_change_of_mode(app, client, pool, mails, moderator):
    """An invitation sent while joining was by invitation still works once sign-up needs approval,
    and its person skips the queue (no answer needed)."""
    with mode(app, "invite"):
        await invite(moderator)
    token = await invitation_token(mails)
    with mode(app, "approval"):
        page = await client.get("/register", params={"invitation": token})
        assert page.status_code == 200 and 'name="answer"' not in page.text
        response = await register(client, token)
        assert response.status_code == 201 and response.json()["awaiting_approval"] is False
        assert (await log_in(client)).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM forum.signups") == 0


# --- staff only, limits, problems ------------------------------------------------------------------------


async def test_invitations_are_for_staff_only(client, member_factory, moderator):
    """Visitors: 401 (API) and to log in (pages); members: 403; moderators: allowed."""
    sent = await invite(moderator)
    sam = await member_factory("sam")
    for path, method in (
        ("/api/admin/invitations", "GET"),
        ("/api/admin/invitations", "POST"),
        (f"/api/admin/invitations/{sent['id']}/resend", "POST"),
        (f"/api/admin/invitations/{sent['id']}", "DELETE"),
    ):
        payload = {"json": {"email": "x@example.org"}} if method == "POST" and path.endswith("invitations") else {}
        assert (await client.request(method, path, **payload)).status_code == 401, path
        assert (await sam.client.request(method, path, **payload)).status_code == 403, path
    page = await client.get("/admin/invitations")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/admin/invitations"
    assert (await sam.client.get("/admin/invitations")).status_code == 403
    posted = await sam.client.post("/admin/invitations", data=form(sam, email="x@example.org"))
    assert posted.status_code == 403
    resent = await sam.client.post(f"/admin/invitations/{sent['id']}/resend", data=form(sam))
    assert resent.status_code == 403
    assert (await moderator.client.get("/admin/invitations")).status_code == 200


async def test_invitations_are_limited_per_staff_member_per_day(monkeypatch, moderator, admin, mails):
    """Past the day's allowance a staff member is told to wait (429); another staff member is not."""
    monkeypatch.setattr(invitations, "INVITE_LIMIT", ratelimit.Limit("site-invite", 2, 86400, "Try tomorrow."))
    await invite(moderator, "a@example.org")
    await invite(moderator, "b@example.org")
    limited = await moderator.client.post("/api/admin/invitations", json={"email": "c@example.org"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 3600
    await invite(admin, "c@example.org")


async def test_bad_invitations_are_refused(moderator, mails):
    """A bad address or an over-long note is 422; inviting an address twice is 409 (resend instead)."""
    bad = await moderator.client.post("/api/admin/invitations", json={"email": "not an address"})
    assert bad.status_code == 422 and "email" in bad.json()["error"]["fields"]
    long_note = await moderator.client.post(
        "/api/admin/invitations", json={"email": "a@example.org", "note": "x" * 1001}
    )
    assert long_note.status_code == 422
    control = await moderator.client.post("/api/admin/invitations", json={"email": "a@example.org", "note": "a\u202eb"})
    assert control.status_code == 422 and "control characters" in control.json()["error"]["fields"]["note"]
    await invite(moderator, "a@example.org")
    twice = await moderator.client.post("/api/admin/invitations", json={"email": "A@example.org"})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_invited"
    wrong_status = await moderator.client.get("/api/admin/invitations", params={"status": "lost"})
    assert wrong_status.status_code == 400


# --- the page ------------------------------------------------------------------------------------------------


async def test_invitations_page_sends_resends_and_withdraws(pool, moderator, mails):
    """The page's form sends (errors shown on the form), its buttons resend and withdraw, each saying what happened."""
    page = await moderator.client.get("/admin/invitations")
    assert page.status_code == 200 and "No invitations." in page.text
    bad = await moderator.client.post("/admin/invitations", data=form(moderator, email="nope", note=NOTE))
    assert bad.status_code == 422 and "There is a problem" in bad.text and "Do join us!" in bad.text
    sent = await moderator.client.post("/admin/invitations", data=form(moderator, email="rowan@example.org", note=NOTE))
    assert sent.status_code == 303
    listing = await moderator.client.get(sent.headers["location"])
    assert "The invitation is on its way" in listing.text and "rowan@example.org" in listing.text
    assert "Waiting to be used" in listing.text
    [invitation_id] = [row["id"] for row in await pool.fetch("SELECT id FROM forum.invitations")]
    resent = await moderator.client.post(f"/admin/invitations/{invitation_id}/resend", data=form(moderator))
    assert resent.status_code == 303
    assert "The earlier link no longer works" in (await moderator.client.get(resent.headers["location"])).text
    withdrawn = await moderator.client.post(f"/admin/invitations/{invitation_id}/withdraw", data=form(moderator))
    assert withdrawn.status_code == 303
    after = await moderator.client.get(withdrawn.headers["location"])
    assert "The invitation was withdrawn" in after.text and "Withdrawn" in text_of(after.text)
    again = await moderator.client.post(f"/admin/invitations/{invitation_id}/withdraw", data=form(moderator))
    assert again.status_code == 422 and "send a new one" in again.text
    filtered = await moderator.client.get("/admin/invitations", params={"status": "pending"})
    assert "rowan@example.org" not in filtered.text
    assert len(await mails.to("rowan@example.org")) == 2
