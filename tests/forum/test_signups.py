"""Sign-up needing approval (issue 14, point 5): a new account waits in the staff queue with its
answer, cannot log in (told kindly, and only with the right password), appears nowhere, and is
mailed when approved or declined; the queue is for staff only; switching modes strands nobody.
Mail goes through a real SMTP server."""

from __future__ import annotations

import asyncio

import pytest
from moderation_helpers import new_category, new_topic
from signup_helpers import PASSWORD, body, cheap_hashing, form, link, mailbox, mode, submit, text_of
from xss_corpus import assert_inert

from services.forum.signups import signups
from shared.events import Envelope

QUESTION = "What brings you to a trauma-informed care community?"
ANSWER = "I am a ward nurse in Leeds.\n\nI want to learn how to make our ward feel safer."


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    cheap_hashing(monkeypatch)


@pytest.fixture
def approval(app):
    with mode(app, "approval", signup_question=QUESTION):
        yield


@pytest.fixture
def mails(settings):
    with mailbox(settings) as box:
        yield box


async def ask_to_join(client, **changes):
    response = await client.post("/api/users", json=body(**{"answer": ANSWER, **changes}))
    assert response.status_code == 201, response.text
    return response.json()


async def log_in(client, login="rowan", password=PASSWORD):
    return await client.post("/api/session", json={"login": login, "password": password})


async def outbox(pool) -> list[tuple[str, dict]]:
    """Every event written (but user.seen, of staff's activity), as (type, data), each checked
    against its definition."""
    rows = await pool.fetch("SELECT payload::text FROM forum.outbox WHERE type <> 'user.seen' ORDER BY id")
    envelopes = [Envelope.from_json(row[0]) for row in rows]
    return [(e.type, e.event().to_data()) for e in envelopes]


# --- approval, end to end through the API -----------------------------------------------------------


async def test_approval_end_to_end(client, pool, approval, mails, moderator):
    """A registration waits with its answer and signup.requested; its link confirms the address; login
    is refused kindly; a moderator sees the answer and approves; the person is mailed and can log in."""
    user = await ask_to_join(client)
    assert user["awaiting_approval"] is True and user["username"] == "rowan" and user["email_verified"] is False
    assert await pool.fetchval("SELECT count(*) FROM forum.users WHERE username = 'rowan'") == 0
    assert [kind for kind, _ in await outbox(pool)] == ["signup.requested"]

    subject, text, _ = await mails.last_to("rowan@example.org")
    assert subject == "Confirm your email address for tica"
    assert "Thank you for asking to join tica" in text and "A moderator will read your request" in text
    verified = await client.post("/api/users/verify", json={"token": link(text, "/verify")})
    assert verified.status_code == 200 and verified.json()["awaiting_approval"] is True
    assert verified.json()["email_verified"] is True

    refused = await log_in(client)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "awaiting_approval"
    assert "A moderator has not yet read your request" in refused.json()["error"]["message"]
    assert "confirm your email" not in refused.json()["error"]["message"]

    queue = await moderator.client.get("/api/admin/signups")
    assert queue.status_code == 200
    [item] = queue.json()["items"]
    assert item["id"] == user["id"] and item["answer"] == ANSWER and item["email_confirmed"] is True
    assert "email" not in item  # addresses are for admins
    decided = await moderator.client.post(f"/api/admin/signups/{user['id']}", json={"decision": "approve"})
    assert decided.status_code == 200
    assert decided.json() == {"status": "approved", "id": user["id"], "username": "rowan"}

    subject, text, html_part = await mails.last_to("rowan@example.org")
    assert subject == "Welcome: you can now sign in to tica"
    assert "You can now log in with your username, rowan" in text and "http://testserver/login" in text
    assert 'href="http://testserver/login"' in html_part
    welcome = await log_in(client)
    assert welcome.status_code == 200 and welcome.json()["id"] == user["id"] and welcome.json()["email_verified"]
    assert (await moderator.client.get("/api/admin/signups")).json()["items"] == []
    kinds = [kind for kind, _ in await outbox(pool)]
    assert kinds == ["signup.requested", "user.registered", "signup.decided"]
    entry = await pool.fetchrow("SELECT actor_id, action, target_type, target_id FROM forum.audit_log")
    assert dict(entry) == {
        "actor_id": moderator.id,
        "action": "signup.approve",
        "target_type": "user",
        "target_id": user["id"],
    }


async def test_login_tells_only_the_right_password_that_an_account_waits(client, approval):
    """A wrong password gets the same 401 as an unknown login; by username or address alike."""
    await ask_to_join(client)
    for login in ("rowan", "ROWAN@example.org"):
        wrong = await log_in(client, login, "not the password at all")
        unknown = await log_in(client, "nobody-" + login, "not the password at all")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        right = await log_in(client, login)
        assert right.status_code == 403 and "confirm your email address" in right.json()["error"]["message"]
        assert "tica_session" not in right.cookies


async def test_decline_mails_the_note_and_frees_the_name(client, pool, approval, mails, moderator):
    """Declining deletes the request, mails the person kindly with the note, and the username and
    address can be used for a genuine second try."""
    user = await ask_to_join(client)
    note = "We are a space for practitioners just now.\nThe Leeds peer group may suit you better."
    decided = await moderator.client.post(
        f"/api/admin/signups/{user['id']}", json={"decision": "decline", "note": note}
    )
    assert decided.status_code == 200 and decided.json()["status"] == "declined"
    _, text, html_part = await mails.last_to("rowan@example.org", "Your request to join tica")
    assert note in text and "This is not a judgement of you" in text and "http://testserver/register" in text
    assert "The Leeds peer group may suit you better." in html_part
    assert await pool.fetchval("SELECT count(*) FROM forum.signups") == 0
    assert (await log_in(client)).status_code == 401
    assert [kind for kind, _ in await outbox(pool)][-1] == "signup.decided"
    entry = await pool.fetchrow("SELECT action, reason FROM forum.audit_log")
    assert entry["action"] == "signup.decline" and entry["reason"] == note
    log = await moderator.client.get("/admin/audit-log")
    assert "Mo turned down the sign-up of someone who asked to join." in log.text
    again = await ask_to_join(client)
    assert again["awaiting_approval"] is True and again["id"] != user["id"]


async def test_a_decision_is_taken_once(client, approval, moderator, admin, mails):
    """Two moderators deciding at once: one decides, the other is told it was decided already (404)."""
    user = await ask_to_join(client)
    path = f"/api/admin/signups/{user['id']}"
    answers = await asyncio.gather(
        moderator.client.post(path, json={"decision": "approve"}),
        admin.client.post(path, json={"decision": "decline"}),
    )
    assert sorted(a.status_code for a in answers) == [200, 404]
    assert len(await mails.to("rowan@example.org")) == 2  # the verification link, then one decision


async def test_answers_are_required_bounded_and_plain(client, approval):
    """The answer is required while sign-up needs approval, at most 2,000 characters, without control characters."""
    for answer, problem in (
        (None, "Answer the question"),
        ("   ", "Answer the question"),
        ("a" * 2001, "at most 2000 characters"),
        ("hello\u202eworld", "control characters"),
    ):
        response = await client.post("/api/users", json=body(answer=answer))
        assert response.status_code == 422, answer
        assert problem in response.json()["error"]["fields"]["answer"]


async def test_an_address_with_an_account_or_request_looks_the_same(client, pool, approval, mails):
    """Registering an address that a member or a waiting request has answers the same shape, creates
    nothing, and mails the address's owner once."""
    first = await ask_to_join(client)
    again = await ask_to_join(client, username="rowan2")
    assert set(again) == set(first) and again["awaiting_approval"] is True and again["id"] != first["id"]
    assert await pool.fetchval("SELECT count(*) FROM forum.signups") == 1
    messages = await mails.to("rowan@example.org")
    assert sorted(str(m["Subject"]) for m in messages) == [
        "Confirm your email address for tica",
        "Someone tried to create a tica account with your email address",
    ]
    taken = await client.post("/api/users", json=body(email="other@example.org", answer=ANSWER))
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "username_taken"


# --- waiting accounts appear nowhere -------------------------------------------------------------------


async def test_waiting_accounts_appear_nowhere(client, pool, approval, admin, member_factory):
    """A waiting account has no profile (404), is not in the directory, cannot be mentioned and
    never reaches search (no user.registered)."""
    await ask_to_join(client, username="newbie", email="newbie@example.org", display_name="Newbie Person")
    sam = await member_factory("sam")
    assert (await sam.client.get("/u/newbie")).status_code == 404
    assert (await sam.client.get("/api/users/newbie")).status_code == 404
    assert (await admin.client.get("/api/users/newbie")).status_code == 404
    directory = await sam.client.get("/api/directory", params={"q": "newbie"})
    assert directory.status_code == 200 and directory.json()["items"] == []
    assert "Newbie Person" not in (await sam.client.get("/members", params={"q": "Newbie"})).text
    category = await new_category(admin)
    topic = await new_topic(sam, category["id"], body="Welcome @newbie and @admin")
    assert 'href="/u/newbie"' not in topic["first_post"]["cooked"]
    created = [data for kind, data in await outbox(pool) if kind == "post.created"]
    assert created and created[-1]["mentioned_user_ids"] == []
    assert "user.registered" not in [kind for kind, _ in await outbox(pool)]


# --- the queue is for staff ---------------------------------------------------------------------------


async def test_the_queue_is_for_staff_only(client, approval, member_factory, moderator, admin):
    """Visitors: 401 (API) and to log in (pages); members: 403; moderators and admins (who also see addresses): 200."""
    user = await ask_to_join(client)
    sam = await member_factory("sam")
    decide = f"/api/admin/signups/{user['id']}"
    assert (await client.get("/api/admin/signups")).status_code == 401
    assert (await client.post(decide, json={"decision": "approve"})).status_code == 401
    page = await client.get("/admin/signups")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/admin/signups"
    assert (await sam.client.get("/api/admin/signups")).status_code == 403
    assert (await sam.client.post(decide, json={"decision": "approve"})).status_code == 403
    assert (await sam.client.get("/admin/signups")).status_code == 403
    refused = await sam.client.post(f"/admin/signups/{user['id']}", data=form(sam, decision="approve"))
    assert refused.status_code == 403
    assert (await moderator.client.get("/admin/signups")).status_code == 200
    [item] = (await admin.client.get("/api/admin/signups")).json()["items"]
    assert item["email"] == "rowan@example.org"
    assert (await moderator.client.post("/api/admin/signups/999999", json={"decision": "approve"})).status_code == 404
    bad = await moderator.client.post(decide, json={"decision": "maybe"})
    assert bad.status_code == 422
    long_note = await moderator.client.post(decide, json={"decision": "decline", "note": "x" * 1001})
    assert long_note.status_code == 422


# --- the pages -------------------------------------------------------------------------------------------


async def test_register_page_asks_the_question_and_says_what_happens_next(client, approval, mails):
    """The form asks the configured question; without an answer it says so; with one, the person is
    told a moderator will read it and that they will be mailed."""
    page = await client.get("/register")
    assert page.status_code == 200 and QUESTION in page.text and "Ask to join" in page.text
    fields = {"username": "rowan", "email": "rowan@example.org", "password": PASSWORD}
    missing = await submit(client, "/register", "/register", fields)
    assert missing.status_code == 422 and "Answer the question, so a moderator can welcome you" in missing.text
    sent = await submit(client, "/register", "/register", {**fields, "answer": ANSWER})
    assert sent.status_code == 200
    words = text_of(sent.text)
    assert "Thank you for asking to join" in words and "We will email you at rowan@example.org" in words
    assert "You will not be able to log in until then" in words
    _, text, _ = await mails.last_to("rowan@example.org")
    confirmed = await client.get("/verify", params={"token": link(text, "/verify")})
    assert confirmed.status_code == 200 and "Your request to join is with the moderators" in confirmed.text
    login = await submit(client, "/login", "/login", {"login": "rowan", "password": PASSWORD})
    assert login.status_code == 403 and "Your account is waiting to be welcomed" in login.text
    assert "A moderator has not yet read your request" in text_of(login.text)


async def test_queue_page_approves_and_declines(client, pool, approval, moderator, mails):
    """The queue lists waiting people oldest first with their answer (escaped); its buttons approve
    and decline (with a note), and say what happened."""
    first = await ask_to_join(client, display_name="Rowan Ash", answer='<script>alert("x")</script>\nLine two')
    second = await ask_to_join(client, username="sky", email="sky@example.org")
    page = await moderator.client.get("/admin/signups")
    assert page.status_code == 200
    assert page.text.index(f'id="signup-{first["id"]}"') < page.text.index(f'id="signup-{second["id"]}"')
    assert "&lt;script&gt;" in page.text and "<script>alert" not in page.text
    assert_inert(page.text, page=True, allow_script_src=True)
    assert "not confirmed yet" in page.text and "Sign-up is open" not in page.text
    done = await moderator.client.post(f"/admin/signups/{first['id']}", data=form(moderator, decision="approve"))
    assert done.status_code == 303
    after = await moderator.client.get(done.headers["location"])
    assert "You welcomed Rowan Ash (rowan)" in text_of(after.text) and f'id="signup-{first["id"]}"' not in after.text
    note = "Thank you for writing. We are not the right place just now."
    declined = await moderator.client.post(
        f"/admin/signups/{second['id']}", data=form(moderator, decision="decline", note=note)
    )
    assert declined.status_code == 303
    after = await moderator.client.get(declined.headers["location"])
    assert "You declined the request" in after.text and "Nobody is waiting." in after.text
    _, text, _ = await mails.last_to("sky@example.org", "Your request to join tica")
    assert note in text
    gone = await moderator.client.post(f"/admin/signups/{second['id']}", data=form(moderator, decision="approve"))
    assert gone.status_code == 404 and "someone may have decided already" in gone.text
    too_long = await ask_to_join(client, username="lee", email="lee@example.org")
    failed = await moderator.client.post(
        f"/admin/signups/{too_long['id']}", data=form(moderator, decision="decline", note="x" * 1001)
    )
    assert failed.status_code == 422 and "There is a problem" in failed.text
    assert f'href="#note-{too_long["id"]}"' in failed.text
    assert await signups.count_waiting(pool) == 1


# --- switching modes ---------------------------------------------------------------------------------------


async def test_switching_modes_strands_nobody(app, client, pool, moderator, mails):
    """Requests made while sign-up needed approval stay in the queue when it opens (the page says so),
    can still be approved, and new registrations are accounts at once."""
    with mode(app, "approval"):
        waiting = await ask_to_join(client)
    with mode(app, "open"):
        page = await moderator.client.get("/admin/signups")
        assert "Sign-up is open to everyone now" in page.text and "they stay here until you decide" in page.text
        assert (await log_in(client)).status_code == 403
        fresh = await client.post("/api/users", json=body(username="sky", email="sky@example.org"))
        assert fresh.status_code == 201 and fresh.json()["awaiting_approval"] is False
        assert (await log_in(client, "sky")).status_code == 200
        approved = await moderator.client.post(f"/api/admin/signups/{waiting['id']}", json={"decision": "approve"})
        assert approved.status_code == 200
        assert (await log_in(client)).status_code == 200
    with mode(app, "invite"):
        assert "Joining is by invitation now" in (await moderator.client.get("/admin/signups")).text


async def test_open_mode_ignores_an_answer(client, pool):
    """In open mode (the default) an answer sent is not needed, and the account is a member at once."""
    response = await client.post("/api/users", json=body(answer="Hello"))
    assert response.status_code == 201 and response.json()["awaiting_approval"] is False
    assert await pool.fetchval("SELECT count(*) FROM forum.users") == 1
    assert await signups.count_waiting(pool) == 0


async def test_mails_use_the_site_name(app, client, moderator, mails):
    """Every account mail names the community as admins named it, never "tica"."""
    with mode(app, "approval", site_name="Safe Harbour"):
        user = await ask_to_join(client)
        await moderator.client.post(f"/api/admin/signups/{user['id']}", json={"decision": "approve"})
        await client.post("/api/password-reset", json={"email": "rowan@example.org"})
    messages = await mails.to("rowan@example.org")
    assert len(messages) == 3
    for message in messages:
        subject = str(message["Subject"])
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "Safe Harbour" in subject and "tica" not in subject.lower() + text.lower(), subject
