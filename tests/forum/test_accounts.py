"""Accounts API: registration, verification, sessions, profile, password reset, API tokens."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from xss_corpus import PAYLOADS

from services.forum.accounts import accounts, passwords, tokens
from services.notify.mail import dev_mailbox_key
from services.notify.worker import create_worker
from shared.events import Envelope
from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SessionStore

PASSWORD = "correct horse battery"
NEW_PASSWORD = "violet lantern orchard"


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    """Real argon2id with cheap parameters, so logins are fast (test_passwords checks the real ones)."""
    monkeypatch.setattr(passwords, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    passwords._dummy_hash.cache_clear()
    yield
    passwords._dummy_hash.cache_clear()


async def deliver_mail(settings, redis) -> list[dict]:
    """Run the queued mail jobs; every mail in the development mailbox, oldest first."""
    worker = create_worker(settings, burst=True)
    await worker.main()
    await worker.close()
    return [json.loads(raw) for raw in reversed(await redis.lrange(dev_mailbox_key(settings), 0, -1))]


def link_token(text: str, path: str) -> str:
    match = re.search(rf"http://testserver{re.escape(path)}\?token=([A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)


async def make_account(
    pool,
    username: str = "rowan",
    *,
    password: str = PASSWORD,
    verified: bool = True,
    roles: tuple[str, ...] = ("member",),
    email: str | None = None,
) -> int:
    """An account with a real password hash, straight into the database."""
    return await pool.fetchval(
        "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at) "
        "VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END) RETURNING id",
        username,
        email or f"{username.lower()}@example.org",
        await passwords.hash_password(password),
        username.title(),
        list(roles),
        verified,
    )


async def log_in(client, login: str, password: str = PASSWORD):
    response = await client.post("/api/session", json={"login": login, "password": password})
    if response.status_code == 200:
        client.headers[CSRF_HEADER] = client.cookies[CSRF_COOKIE]
    return response


async def outbox_types(pool) -> list[str]:
    return [row["type"] for row in await pool.fetch("SELECT type FROM forum.outbox ORDER BY id")]


def register_body(**changes) -> dict:
    return {"username": "rowan", "email": "rowan@example.org", "password": PASSWORD, **changes}


USER_KEYS = {
    "id",
    "username",
    "display_name",
    "pronouns",
    "bio",
    "roles",
    "created_at",
    "avatar",
    "organisation",
    "interests",
    "badges",
}
PRIVATE_KEYS = USER_KEYS | {"email", "email_verified", "groups", "in_directory"}
REGISTERED_KEYS = PRIVATE_KEYS | {"awaiting_approval"}  # the answer of registration and verification


# --- registration ------------------------------------------------------------------------


async def test_register_then_verify_by_mail(client, pool, redis, settings):
    """Registration answers 201 with the private user, mails a link, and the link verifies the address."""
    response = await client.post("/api/users", json=register_body(display_name="Rowan Ash"))
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == REGISTERED_KEYS and user["awaiting_approval"] is False
    assert user["username"] == "rowan" and user["display_name"] == "Rowan Ash" and user["roles"] == ["member"]
    assert user["email_verified"] is False and user["groups"] == []
    assert user["avatar"]["initials"] == "RA"
    assert await pool.fetchval("SELECT password_hash FROM forum.users WHERE id = $1", user["id"]) != PASSWORD

    mails = await deliver_mail(settings, redis)
    assert len(mails) == 1 and mails[0]["to"] == "rowan@example.org"
    assert "Welcome to tica. Confirm your email address by opening this link:" in mails[0]["text"]
    token = link_token(mails[0]["text"], "/verify")
    assert f"/verify?token={token}" in mails[0]["html"]

    response = await client.post("/api/users/verify", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json()["email_verified"] is True
    again = await client.post("/api/users/verify", json={"token": token})
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"
    assert await outbox_types(pool) == ["user.registered", "user.updated"]
    envelope = Envelope.from_json(await pool.fetchval("SELECT payload::text FROM forum.outbox ORDER BY id LIMIT 1"))
    assert envelope.event().to_data() == {
        "user_id": user["id"],
        "username": "rowan",
        "display_name": "Rowan Ash",
        "email": "rowan@example.org",
        "email_verified": False,
    }


async def test_register_display_name_defaults_to_username(client):
    """Without a display name, the username is used."""
    response = await client.post("/api/users", json=register_body())
    assert response.status_code == 201 and response.json()["display_name"] == "rowan"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "a" * 21}, "username"),
        ({"username": "_rowan"}, "username"),
        ({"username": "row an"}, "username"),
        ({"username": "rowan!"}, "username"),
        ({"username": "Admin"}, "username"),
        ({"username": "moderator"}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": ""}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 201}, "password"),
        ({"password": "password123"}, "password"),
        ({"password": "QwertyUIOP"}, "password"),
        ({"password": "aaaaaaaaaaaa"}, "password"),
        ({"password": "rowan@example.org"}, "password"),
        ({"username": "longusername", "password": "LongUsername"}, "password"),
        ({"display_name": "x" * 61}, "display_name"),
        ({"display_name": "Evil\u202eName"}, "display_name"),
        ({"surprise": 1}, "surprise"),
        ({"username": 5}, "username"),
    ],
)
async def test_register_rejects_bad_fields(client, changes, field):
    """Each rule answers 422 naming the field."""
    response = await client.post("/api/users", json=register_body(**changes))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"]


async def test_register_username_taken_case_insensitively(client, pool):
    """A username differing only in case is taken: 409."""
    await make_account(pool, "Rowan")
    response = await client.post("/api/users", json=register_body(username="rOWAN", email="other@example.org"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "username_taken" and "username" in response.json()["error"]["fields"]


async def test_register_existing_email_reveals_nothing(client, pool, redis, settings):
    """An address with an account gets the same 201 shape; nothing is created; its owner is told by mail."""
    owner_id = await make_account(pool, "rowan")
    new = await client.post("/api/users", json=register_body(username="fresh", email="fresh@example.org"))
    taken = await client.post("/api/users", json=register_body(username="sneaky", email="ROWAN@example.org"))
    assert taken.status_code == new.status_code == 201
    assert set(taken.json()) == set(new.json())
    assert taken.json()["username"] == "sneaky" and taken.json()["email_verified"] is False
    assert taken.json()["id"] not in (owner_id, new.json()["id"])
    assert await pool.fetchval("SELECT count(*) FROM forum.users WHERE username = 'sneaky'") == 0

    again = await client.post("/api/users", json=register_body(username="sneaky2", email="rowan@example.org"))
    assert again.status_code == 201
    mails = await deliver_mail(settings, redis)
    to_owner = [m for m in mails if m["to"] == "rowan@example.org"]
    assert len(to_owner) == 1, "one warning a day, however many tries"
    assert "tried to create a new tica account with this email address" in to_owner[0]["text"]
    assert "rowan" in to_owner[0]["text"] and "http://testserver/reset" in to_owner[0]["text"]
    assert "/verify?token=" not in to_owner[0]["text"]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", ""])
async def test_unauthenticated_writes_require_json(client, content_type):
    """Login, registration, verification and reset refuse a non-JSON body (login CSRF): 415."""
    headers = {"content-type": content_type} if content_type else {}
    for path in (
        "/api/users",
        "/api/session",
        "/api/users/verify",
        "/api/password-reset",
        "/api/password-reset/confirm",
    ):
        response = await client.post(path, content=b"login=a&password=b", headers=headers)
        assert response.status_code == 415, (path, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_register_bad_json_and_huge_body(client):
    """Malformed JSON is 400, a JSON array 400, a body over the limit 413."""
    headers = {"content-type": "application/json"}
    assert (await client.post("/api/users", content=b"{nope", headers=headers)).status_code == 400
    assert (await client.post("/api/users", content=b"[1]", headers=headers)).status_code == 400
    huge = json.dumps(register_body(display_name="x" * 2_000_000)).encode()
    response = await client.post("/api/users", content=huge, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


async def test_register_rate_limited_per_address(client, settings, redis):
    """More than 10 new accounts from one address in an hour: 429 with Retry-After."""
    from shared.ratelimit import rate_key

    await redis.set(rate_key(settings.redis_prefix, "register-address", "127.0.0.1"), 10, ex=3600)
    response = await client.post("/api/users", json=register_body())
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0


# --- verification ------------------------------------------------------------------------


async def test_verify_rejects_unknown_and_expired_tokens(client, pool, redis, settings):
    """An unknown, overlong or expired token is 400 invalid_token; an empty one 422."""
    for token in ("nope", "x" * 500):
        response = await client.post("/api/users/verify", json={"token": token})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_token"
    assert (await client.post("/api/users/verify", json={"token": ""})).status_code == 422
    await client.post("/api/users", json=register_body())
    token = link_token((await deliver_mail(settings, redis))[0]["text"], "/verify")
    await pool.execute("UPDATE forum.email_tokens SET expires_at = now() - interval '1 second'")
    response = await client.post("/api/users/verify", json={"token": token})
    assert response.status_code == 400
    assert await pool.fetchval("SELECT email_verified_at FROM forum.users") is None


async def test_resend_verification(member_factory, pool, client, redis, settings):
    """An unverified member can ask for a new link; it needs CSRF; a verified one gets no mail."""
    await client.post("/api/users", json=register_body())
    await deliver_mail(settings, redis)
    assert (await log_in(client, "rowan")).status_code == 200
    response = await client.post("/api/me/verify-email", headers={CSRF_HEADER: ""})
    assert response.status_code == 403
    response = await client.post("/api/me/verify-email")
    assert response.status_code == 202
    mails = await deliver_mail(settings, redis)
    token = link_token(mails[-1]["text"], "/verify")
    assert (await client.post("/api/users/verify", json={"token": token})).status_code == 200
    verified = await member_factory()
    assert (await verified.client.post("/api/me/verify-email")).status_code == 202
    assert len(await deliver_mail(settings, redis)) == len(mails)
    assert (await client.post("/api/me/verify-email")).status_code == 202  # already verified now: nothing to do


# --- sessions ------------------------------------------------------------------------------


async def test_login_sets_cookies_and_opens_a_session(client, pool, redis, settings):
    """Login by username or email (any case) answers the private user and sets both cookies."""
    user_id = await make_account(pool, "Rowan")
    for login in ("rowan", "ROWAN@example.org"):
        client.cookies.clear()
        response = await log_in(client, login)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == user_id and response.json()["email"] == "rowan@example.org"
        cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
        assert "HttpOnly" in cookies[SESSION_COOKIE] and "SameSite=lax" in cookies[SESSION_COOKIE]
        assert "Path=/" in cookies[SESSION_COOKIE] and "Secure" not in cookies[SESSION_COOKIE]
        assert "HttpOnly" not in cookies[CSRF_COOKIE]
        session = await SessionStore(redis, settings.redis_prefix).get(client.cookies[SESSION_COOKIE])
        assert session is not None and session.user_id == user_id and session.roles == ["member"]
        assert session.csrf == client.cookies[CSRF_COOKIE] and session.group_ids == []
    me = await client.get("/api/me")
    assert me.status_code == 200 and set(me.json()) == PRIVATE_KEYS
    visits = await pool.fetchrow("SELECT last_seen_at, previous_visit_at FROM forum.users WHERE id = $1", user_id)
    assert visits["last_seen_at"] is not None and visits["previous_visit_at"] is not None
    assert await outbox_types(pool) == ["user.seen", "user.seen"]


async def test_login_over_https_sets_secure_cookies(app, pool):
    """Behind https, both cookies are Secure."""
    import httpx

    await make_account(pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as http:
        response = await http.post("/api/session", json={"login": "rowan", "password": PASSWORD})
    assert response.status_code == 200
    assert all("Secure" in cookie for cookie in response.headers.get_list("set-cookie"))


async def test_login_replaces_an_earlier_session(client, pool, redis, settings):
    """A login drops the session the browser had (no session fixation)."""
    await make_account(pool)
    await log_in(client, "rowan")
    first = client.cookies[SESSION_COOKIE]
    await log_in(client, "rowan")
    assert client.cookies[SESSION_COOKIE] != first
    assert await SessionStore(redis, settings.redis_prefix).get(first) is None


async def test_login_failure_is_the_same_for_unknown_and_wrong(client, pool):
    """A wrong password and an unknown login get the same 401 and message."""
    await make_account(pool)
    wrong = await log_in(client, "rowan", "not the password")
    unknown = await log_in(client, "nobody-here", "not the password")
    unknown_email = await log_in(client, "nobody@example.org", "not the password")
    assert wrong.status_code == unknown.status_code == unknown_email.status_code == 401
    assert wrong.json() == unknown.json() == unknown_email.json()
    assert wrong.json()["error"]["code"] == "invalid_login"
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")


async def test_login_needs_both_fields(client):
    """Missing or empty login and password: 422 naming them."""
    response = await client.post("/api/session", json={"login": " "})
    assert response.status_code == 422 and set(response.json()["error"]["fields"]) == {"login", "password"}


async def test_member_factory_accounts_cannot_log_in(client, member_factory):
    """An account whose hash is a placeholder cannot log in (and nothing breaks)."""
    member = await member_factory()
    assert (await log_in(client, member.username, "no-login")).status_code == 401


async def test_unverified_member_can_log_in(client, pool):
    """An unverified address does not stop a login; the owner sees email_verified false."""
    await make_account(pool, verified=False)
    response = await log_in(client, "rowan")
    assert response.status_code == 200 and response.json()["email_verified"] is False


async def test_suspended_member_cannot_log_in(client, pool):
    """A suspended member gets 403 with the reason and until, only after the right password."""
    until = datetime.now(UTC) + timedelta(days=3)
    user_id = await make_account(pool)
    await pool.execute(
        "UPDATE forum.users SET suspended_until = $2, suspended_reason = 'Repeated personal attacks' WHERE id = $1",
        user_id,
        until,
    )
    assert (await log_in(client, "rowan", "wrong password!")).status_code == 401
    response = await log_in(client, "rowan")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "suspended" and "Repeated personal attacks" in error["message"]
    assert error["fields"]["reason"] == "Repeated personal attacks"
    assert datetime.fromisoformat(error["fields"]["until"]) == until.replace(microsecond=until.microsecond)
    assert SESSION_COOKIE not in client.cookies
    await pool.execute("UPDATE forum.users SET suspended_until = now() - interval '1 minute'")
    assert (await log_in(client, "rowan")).status_code == 200


async def test_login_rate_limited_per_account(client, pool):
    """After 5 failures for one login in 15 minutes even the right password gets 429; other logins do not."""
    await make_account(pool)
    await make_account(pool, "sage")
    for _ in range(5):
        assert (await log_in(client, "Rowan", "wrong password!")).status_code == 401
    response = await log_in(client, "rowan")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 0 < int(response.headers["retry-after"]) <= 900
    assert (await log_in(client, "sage")).status_code == 200


async def test_successful_logins_do_not_count(client, pool):
    """Logging in successfully many times never hits the limit."""
    await make_account(pool)
    for _ in range(7):
        assert (await log_in(client, "rowan")).status_code == 200


async def test_login_rate_limited_per_address(client, pool):
    """20 failures from one address, over any logins, and the 21st attempt is 429."""
    await make_account(pool)
    for i in range(20):
        assert (await log_in(client, f"someone{i}", "wrong password!")).status_code == 401
    response = await log_in(client, "rowan")
    assert response.status_code == 429 and "retry-after" in response.headers


async def test_logout_needs_csrf_and_ends_the_session(client, pool):
    """DELETE /api/session: 403 without the CSRF header, 204 with it; cookies cleared; 401 after."""
    await make_account(pool)
    await log_in(client, "rowan")
    response = await client.delete("/api/session", headers={CSRF_HEADER: "wrong"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "csrf_failed"
    session_id = client.cookies[SESSION_COOKIE]
    response = await client.delete("/api/session")
    assert response.status_code == 204
    assert any(c.startswith(f"{SESSION_COOKIE}=") and "Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    client.cookies.set(SESSION_COOKIE, session_id)
    assert (await client.get("/api/me")).status_code == 401
    assert (await client.delete("/api/session")).status_code == 401


async def test_revoke_all_ends_every_session(app, client, pool):
    """POST /api/session/revoke-all logs the member out in every browser; it needs CSRF."""
    import httpx

    await make_account(pool)
    await log_in(client, "rowan")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as other:
        await log_in(other, "rowan")
        assert (await other.get("/api/me")).status_code == 200
        assert (await client.post("/api/session/revoke-all", headers={CSRF_HEADER: ""})).status_code == 403
        assert (await client.post("/api/session/revoke-all")).status_code == 204
        assert (await other.get("/api/me")).status_code == 401
    assert (await client.get("/api/me")).status_code == 401


# --- me --------------------------------------------------------------------------------------


async def test_me_needs_a_viewer(client):
    """Anonymous: 401; a garbage cookie: 401; a bad bearer token: 401 invalid_token."""
    assert (await client.get("/api/me")).status_code == 401
    client.cookies.set(SESSION_COOKIE, "garbage")
    assert (await client.get("/api/me")).status_code == 401
    response = await client.get("/api/me", headers={"authorization": "Bearer tica_nope"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"


async def test_me_of_a_deleted_account_is_401(member_factory, pool):
    """A session whose account is gone answers 401 (and ends)."""
    member = await member_factory()
    await pool.execute("DELETE FROM forum.users WHERE id = $1", member.id)
    assert (await member.client.get("/api/me")).status_code == 401


async def test_patch_me_updates_the_profile(member_factory, pool):
    """PATCH /api/me changes display name, pronouns and bio, and records user.updated."""
    member = await member_factory("rowan")
    response = await member.client.patch(
        "/api/me", json={"display_name": "Rowan Ash", "pronouns": "they/them", "bio": "Peer supporter.\n\nLikes walks."}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["display_name"], body["pronouns"], body["bio"]) == (
        "Rowan Ash",
        "they/them",
        "Peer supporter.\n\nLikes walks.",
    )
    assert body["avatar"]["initials"] == "RA"
    assert [t for t in await outbox_types(pool) if t != "user.seen"] == ["user.updated"]
    payload = json.loads(await pool.fetchval("SELECT payload::text FROM forum.outbox"))
    assert payload["data"]["display_name"] == "Rowan Ash" and payload["actor_id"] == member.id
    response = await member.client.patch("/api/me", json={"display_name": "", "pronouns": ""})
    assert response.json()["display_name"] == "rowan" and response.json()["pronouns"] is None
    assert response.json()["bio"] == "Peer supporter.\n\nLikes walks."


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": "x" * 61},
        {"pronouns": "x" * 41},
        {"bio": "x" * 3001},
        {"bio": "bell\x07"},
        {"display_name": "two\nlines"},
        {"roles": ["admin"]},
        {"username": "someone"},
        {"display_name": 3},
    ],
)
async def test_patch_me_rejects_bad_fields(member_factory, body):
    """Too long, control characters, unknown or read-only fields: 422."""
    member = await member_factory()
    response = await member.client.patch("/api/me", json=body)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid"


async def test_patch_me_needs_csrf_and_a_viewer(member_factory, client):
    """Without the CSRF header: 403 and nothing changes; anonymous: 401."""
    member = await member_factory()
    response = await member.client.patch("/api/me", json={"bio": "x"}, headers={CSRF_HEADER: ""})
    assert response.status_code == 403
    assert (await member.client.get("/api/me")).json()["bio"] == ""
    assert (await client.patch("/api/me", json={"bio": "x"})).status_code == 401


async def test_profile_fields_are_plain_strings(member_factory, client):
    """XSS payloads come back exactly as typed, as JSON strings, never changed or rendered."""
    member = await member_factory("rowan")
    for payload in PAYLOADS[::12]:
        bio = payload[:3000]
        response = await member.client.patch("/api/me", json={"bio": bio, "display_name": _one_line(payload)[:60]})
        if "\x00" in payload or accounts.profile_problems(bio=bio):
            continue
        assert response.status_code == 200, (payload, response.text)
        public = (await client.get("/api/users/rowan")).json()
        assert public["bio"] == bio.strip() and public["display_name"] == (_one_line(payload)[:60].strip() or "rowan")


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]", " ", text)


# --- public profiles -----------------------------------------------------------------------------


async def test_public_profile(client, member_factory):
    """GET /api/users/{username}: public fields for others, email for the owner and admins, 404 unknown."""
    member = await member_factory("rowan")
    admin = await member_factory("boss", roles=("member", "admin"))
    other = await member_factory("sage")
    public = await client.get("/api/users/ROWAN")
    assert public.status_code == 200 and set(public.json()) == USER_KEYS
    assert public.json()["avatar"]["colour"] in accounts.AVATAR_PALETTE
    assert set((await other.client.get("/api/users/rowan")).json()) == USER_KEYS
    assert (await member.client.get("/api/users/rowan")).json()["email"] == "rowan@example.org"
    assert (await admin.client.get("/api/users/rowan")).json()["email"] == "rowan@example.org"
    for name in ("nobody", "x" * 300, "%00"):
        response = await client.get(f"/api/users/{name}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_avatar_initials_and_colours():
    """Initials come from the display name's first and last words; colours are fixed by id and readable."""
    assert accounts.initials("Rowan Ash", "rowan") == "RA"
    assert accounts.initials("rowan", "rowan") == "R"
    assert accounts.initials("Mary Anne de la Cruz", "m") == "MC"
    assert accounts.initials("<script>", "zed") == "Z"
    assert accounts.initials("  ", "quinn") == "Q"
    assert accounts.avatar_index(7) == accounts.avatar_index(7 + len(accounts.AVATAR_PALETTE))

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    for colour in accounts.AVATAR_PALETTE:
        assert 1.05 / (luminance(colour) + 0.05) >= 4.5, colour


# --- password reset ---------------------------------------------------------------------------------


async def test_password_reset_flow(app, client, pool, redis, settings):
    """A reset mail's token sets a new password once, and every session of the account ends."""
    import httpx

    user_id = await make_account(pool, verified=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as browser:
        await log_in(browser, "rowan")
        response = await client.post("/api/password-reset", json={"email": "Rowan@Example.org"})
        assert response.status_code == 202
        mails = await deliver_mail(settings, redis)
        assert [m["to"] for m in mails] == ["rowan@example.org"]
        token = link_token(mails[0]["text"], "/reset/confirm")
        assert "1 hour" in mails[0]["text"]

        weak = await client.post("/api/password-reset/confirm", json={"token": token, "password": "password123"})
        assert weak.status_code == 422 and "password" in weak.json()["error"]["fields"]
        response = await client.post("/api/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 200, response.text
        assert response.json()["id"] == user_id and response.json()["email_verified"] is True
        assert (await browser.get("/api/me")).status_code == 401

    reused = await client.post("/api/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD + "!"})
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "invalid_token"
    assert (await log_in(client, "rowan")).status_code == 401
    assert (await log_in(client, "rowan", NEW_PASSWORD)).status_code == 200
    assert [t for t in await outbox_types(pool) if t != "user.seen"] == ["user.updated"]


async def test_password_reset_reveals_nothing(client, pool, redis, settings):
    """A reset for an unknown address answers exactly as for a known one, and sends nothing."""
    await make_account(pool)
    known = await client.post("/api/password-reset", json={"email": "rowan@example.org"})
    unknown = await client.post("/api/password-reset", json={"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert [m["to"] for m in await deliver_mail(settings, redis)] == ["rowan@example.org"]


async def test_password_reset_errors(client, pool, redis, settings):
    """Bad address 422; a bad, expired or other-purpose token 400; too many requests 429."""
    await make_account(pool, verified=False)
    response = await client.post("/api/password-reset", json={"email": "nope"})
    assert response.status_code == 422 and "email" in response.json()["error"]["fields"]
    assert (await client.post("/api/password-reset", json={})).status_code == 422
    for token in ("nope", "x" * 300):
        response = await client.post("/api/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
        assert response.status_code == 400

    await client.post("/api/password-reset", json={"email": "rowan@example.org"})
    token = link_token((await deliver_mail(settings, redis))[0]["text"], "/reset/confirm")
    await pool.execute("UPDATE forum.email_tokens SET expires_at = now() - interval '1 second'")
    response = await client.post("/api/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 400

    for _ in range(2):
        assert (await client.post("/api/password-reset", json={"email": "rowan@example.org"})).status_code == 202
    limited = await client.post("/api/password-reset", json={"email": "ROWAN@example.org"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    unknown = await client.post("/api/password-reset", json={"email": "nobody@example.org"})
    assert unknown.status_code == 202


async def test_verify_token_cannot_reset_a_password(client, pool, redis, settings):
    """Tokens only work for their own purpose."""
    await client.post("/api/users", json=register_body())
    token = link_token((await deliver_mail(settings, redis))[0]["text"], "/verify")
    response = await client.post("/api/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 400


async def test_reset_confirm_rate_limited_per_address(client, settings, redis):
    """Guessing reset tokens from one address is cut off with 429."""
    for _ in range(20):
        await client.post("/api/password-reset/confirm", json={"token": "guess", "password": NEW_PASSWORD})
    response = await client.post("/api/password-reset/confirm", json={"token": "guess", "password": NEW_PASSWORD})
    assert response.status_code == 429 and "retry-after" in response.headers


# --- API tokens -----------------------------------------------------------------------------------


async def test_api_token_lifecycle(member_factory, client, pool, redis, settings):
    """A token is shown once, authenticates as Bearer (no CSRF needed), is listed without its secret,
    and stops working the moment it is revoked."""
    member = await member_factory("rowan")
    response = await member.client.post("/api/me/tokens", json={"name": "weekly report"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "name", "token", "created_at", "last_used_at"}
    token = created["token"]
    assert token.startswith("tica_") and len(token) > 40
    stored = await pool.fetchval("SELECT token_hash FROM forum.api_tokens WHERE id = $1", created["id"])
    assert stored != token and len(stored) == 64

    bearer = {"authorization": f"Bearer {token}"}
    me = await client.get("/api/me", headers=bearer)
    assert me.status_code == 200 and me.json()["username"] == "rowan"
    assert (await client.patch("/api/me", json={"pronouns": "she/her"}, headers=bearer)).status_code == 200

    listed = (await member.client.get("/api/me/tokens")).json()
    assert listed == {
        "items": [
            {"id": created["id"], "name": "weekly report", "created_at": created["created_at"], "last_used_at": None}
        ],
        "next": None,
    }
    assert token not in json.dumps(listed)

    response = await member.client.delete(f"/api/me/tokens/{created['id']}", headers={CSRF_HEADER: ""})
    assert response.status_code == 403
    assert (await member.client.delete(f"/api/me/tokens/{created['id']}")).status_code == 204
    assert (await client.get("/api/me", headers=bearer)).status_code == 401
    assert (await member.client.get("/api/me/tokens")).json()["items"] == []
    assert (await member.client.delete(f"/api/me/tokens/{created['id']}")).status_code == 404


async def test_api_token_errors(member_factory, client):
    """No CSRF 403, anonymous 401, bad names 422, someone else's or unknown token 404, too many 409."""
    member = await member_factory()
    other = await member_factory()
    assert (
        await member.client.post("/api/me/tokens", json={"name": "x"}, headers={CSRF_HEADER: ""})
    ).status_code == 403
    assert (await client.post("/api/me/tokens", json={"name": "x"})).status_code == 401
    assert (await client.get("/api/me/tokens")).status_code == 401
    for body in ({"name": " "}, {"name": "x" * 61}, {"name": "a\nb"}, {}, {"name": 1}):
        assert (await member.client.post("/api/me/tokens", json=body)).status_code == 422, body
    theirs = (await other.client.post("/api/me/tokens", json={"name": "theirs"})).json()
    for token_id in (theirs["id"], 999999, "abc", "0", "-1", "99999999999999999999999"):
        assert (await member.client.delete(f"/api/me/tokens/{token_id}")).status_code == 404, token_id
    for i in range(tokens.MAX_API_TOKENS):
        assert (await member.client.post("/api/me/tokens", json={"name": f"t{i}"})).status_code == 201
    response = await member.client.post("/api/me/tokens", json={"name": "one too many"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "too_many_tokens"


async def test_api_token_cannot_log_out(member_factory, client):
    """DELETE /api/session with a bearer token is a clear 400, not a silent no-op."""
    member = await member_factory()
    token = (await member.client.post("/api/me/tokens", json={"name": "bot"})).json()["token"]
    response = await client.delete("/api/session", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_session"


# --- the API document ---------------------------------------------------------------------------------


async def test_openapi_lists_the_account_endpoints(client):
    """Every account endpoint is in the OpenAPI document."""
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    for path, method in (
        ("/api/users", "post"),
        ("/api/users/verify", "post"),
        ("/api/session", "post"),
        ("/api/session", "delete"),
        ("/api/session/revoke-all", "post"),
        ("/api/me", "get"),
        ("/api/me", "patch"),
        ("/api/password-reset", "post"),
        ("/api/password-reset/confirm", "post"),
        ("/api/me/tokens", "post"),
        ("/api/me/tokens", "get"),
        ("/api/me/tokens/{token_id}", "delete"),
        ("/api/users/{username}", "get"),
    ):
        assert method in paths[path], (path, method)
