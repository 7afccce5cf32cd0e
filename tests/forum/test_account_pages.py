"""Account pages: the whole journey through forms with CSRF, errors, profiles and XSS."""

from __future__ import annotations

import html
import re
import unicodedata

import httpx
import pytest
from test_accounts import (  # noqa: F401 (quick_hashing is an autouse fixture)
    NEW_PASSWORD,
    PASSWORD,
    deliver_mail,
    link_token,
    make_account,
    quick_hashing,
)
from xss_corpus import PAYLOADS, assert_inert

from services.forum.accounts.pages import paragraphs, safe_next
from shared.sessions import CSRF_COOKIE, SESSION_COOKIE

# --- helpers --------------------------------------------------------------------------------


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def submit(client: httpx.AsyncClient, form_page: str, action: str, data: dict) -> httpx.Response:
    """GET the form page, then POST the form with its CSRF token, as a browser does."""
    page = await client.get(form_page)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf_token": csrf_of(page.text), **data})


def h1_count(page: str) -> int:
    return len(re.findall(r"<h1[\s>]", page))


def error_summary(page: str) -> str:
    match = re.search(r'<div class="nhsuk-error-summary".*?</ul>', page, re.S)
    assert match, "no error summary"
    return match.group(0)


def inline_error(page: str, field: str) -> str:
    match = re.search(
        rf'<span class="nhsuk-error-message" id="{field}-error">\s*(<span[^>]*>.*?</span>.*?)</span>', page, re.S
    )
    assert match, f"no inline error for {field}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).split())


# --- the journey -------------------------------------------------------------------------------


async def test_register_verify_login_edit_logout(client, pool, redis, settings):
    """Register, open the mailed link, log in, see the profile, edit it, log out: all by forms with CSRF."""
    page = await client.get("/register")
    assert page.status_code == 200 and h1_count(page.text) == 1
    assert CSRF_COOKIE in client.cookies
    response = await client.post(
        "/register",
        data={
            "csrf_token": csrf_of(page.text),
            "username": "rowan",
            "email": "rowan@example.org",
            "display_name": "Rowan Ash",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 200, response.text
    assert "Check your email" in response.text and "rowan@example.org" in response.text

    token = link_token((await deliver_mail(settings, redis))[0]["text"], "/verify")
    verified = await client.get(f"/verify?token={token}")
    assert verified.status_code == 200 and "Your email address is confirmed" in verified.text
    again = await client.get(f"/verify?token={token}")
    assert again.status_code == 400 and "This link has not worked" in again.text

    response = await submit(
        client, "/login?next=/u/rowan", "/login", {"login": "rowan", "password": PASSWORD, "next": "/u/rowan"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/u/rowan"
    assert SESSION_COOKIE in client.cookies

    profile = await client.get("/u/rowan")
    assert profile.status_code == 200 and h1_count(profile.text) == 1
    assert ">Rowan Ash</h1>" in profile.text and "@rowan" in profile.text
    assert re.search(
        r'<span class="tica-avatar tica-avatar--\d tica-avatar--large" aria-hidden="true">RA</span>', profile.text
    )
    assert "Edit your profile" in profile.text and "member" in profile.text

    response = await submit(
        client,
        "/me/edit",
        "/me/edit",
        {"display_name": "Rowan A.", "pronouns": "they/them", "bio": "Peer supporter.\n\nLikes <b>walks</b>."},
    )
    assert response.status_code == 303 and response.headers["location"] == "/u/rowan"
    profile = await client.get("/u/rowan")
    assert "they/them" in profile.text and "Likes &lt;b&gt;walks&lt;/b&gt;." in profile.text
    assert "<p>Peer supporter.</p>" in profile.text

    header_logout = re.search(
        r'<form class="nhsuk-header__account-form" action="/logout" method="post".*?</form>', profile.text, re.S
    )
    assert header_logout and 'name="csrf_token"' in header_logout.group(0)
    response = await client.post("/logout", data={"csrf_token": csrf_of(header_logout.group(0))})
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert SESSION_COOKIE not in client.cookies
    assert (await client.get("/api/me")).status_code == 401
    assert "Log in" in (await client.get("/u/rowan")).text


async def test_forms_refuse_a_missing_or_wrong_csrf_token(client, pool, member_factory):
    """Every account form answers 403 without its CSRF token, and changes nothing."""
    await make_account(pool)
    await client.get("/login")
    for path, data in (
        ("/login", {"login": "rowan", "password": PASSWORD}),
        ("/register", {"username": "sage", "email": "sage@example.org", "password": PASSWORD}),
        ("/reset", {"email": "rowan@example.org"}),
        ("/reset/confirm", {"token": "x"}),
        ("/logout", {}),
    ):
        for token in (None, "wrong"):
            response = await client.post(path, data={**data, **({"csrf_token": token} if token else {})})
            assert response.status_code == 403, (path, token)
    assert SESSION_COOKIE not in client.cookies
    member = await member_factory("sage2")
    for path in ("/me/edit", "/me/tokens", "/logout", "/me/verify-email"):
        response = await member.client.post(
            path, data={"csrf_token": "wrong", "display_name": "Hacked", "name": "stolen"}
        )
        assert response.status_code == 403, path
    assert (await member.client.get("/api/me")).json()["display_name"] == "Sage2"
    assert (await member.client.get("/api/me/tokens")).json()["items"] == []


# --- logging in ----------------------------------------------------------------------------------


async def test_login_errors_do_not_reveal_accounts(client, pool):
    """A wrong password and an unknown account show the same message, status 400, with the error summary."""
    await make_account(pool)
    wrong = await submit(client, "/login", "/login", {"login": "rowan", "password": "not the password"})
    unknown = await submit(client, "/login", "/login", {"login": "nobody", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 400
    assert error_summary(wrong.text) == error_summary(unknown.text)
    assert 'href="#login"' in error_summary(wrong.text)
    assert inline_error(wrong.text, "login") == inline_error(unknown.text, "login")
    assert "<title>Error: Log in - tica</title>" in wrong.text
    assert 'value="rowan"' in wrong.text and "not the password" not in wrong.text


async def test_login_form_empty_fields(client):
    """Empty fields: 422 with an inline error for each."""
    response = await submit(client, "/login", "/login", {"login": "", "password": ""})
    assert response.status_code == 422
    assert inline_error(response.text, "login") == "Error: Enter your username or email address"
    assert inline_error(response.text, "password") == "Error: Enter your password"


async def test_login_form_suspended_and_rate_limited(client, pool):
    """A suspension is explained (403); too many failures answer 429 with Retry-After."""
    user_id = await make_account(pool)
    await pool.execute(
        "UPDATE forum.users SET suspended_until = now() + interval '1 day', "
        "suspended_reason = 'A break to cool off' WHERE id = $1",
        user_id,
    )
    response = await submit(client, "/login", "/login", {"login": "rowan", "password": PASSWORD})
    assert response.status_code == 403 and "A break to cool off" in response.text
    for _ in range(5):
        await submit(client, "/login", "/login", {"login": "sage", "password": "wrong password!"})
    response = await submit(client, "/login", "/login", {"login": "sage", "password": "wrong password!"})
    assert response.status_code == 429 and "retry-after" in response.headers
    assert "Too many attempts" in error_summary(response.text)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("/t/5?page=2", "/t/5?page=2"),
        ("/", "/"),
        ("", "/"),
        (None, "/"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("relative", "/"),
    ],
)
def test_safe_next(sent, expected):
    """After login only a path on this site is followed."""
    assert safe_next(sent) == expected


async def test_login_redirect_ignores_other_sites(client, pool):
    """A `next` pointing elsewhere sends the member home instead."""
    await make_account(pool)
    response = await submit(
        client, "/login", "/login", {"login": "rowan", "password": PASSWORD, "next": "//evil.example/x"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/"


async def test_login_page_when_logged_in_goes_on(member_factory):
    """A logged-in member opening /login is sent on to `next`."""
    member = await member_factory()
    response = await member.client.get("/login?next=/me/edit")
    assert response.status_code == 303 and response.headers["location"] == "/me/edit"


async def test_log_out_everywhere(app, client, pool):
    """The edit page's button ends every session of the member."""
    await make_account(pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as other:
        for browser in (client, other):
            await submit(browser, "/login", "/login", {"login": "rowan", "password": PASSWORD})
        page = await client.get("/me/edit")
        assert "Log out on every device" in page.text
        response = await client.post("/logout", data={"csrf_token": csrf_of(page.text), "everywhere": "1"})
        assert response.status_code == 303
        assert (await other.get("/api/me")).status_code == 401


# --- registering ----------------------------------------------------------------------------------


async def test_register_form_errors(client, pool):
    """Every bad field gets an inline error and a summary link to it, with status 422."""
    response = await submit(
        client, "/register", "/register", {"username": "_x", "email": "nope", "display_name": "", "password": "short"}
    )
    assert response.status_code == 422
    summary = error_summary(response.text)
    for field in ("username", "email", "password"):
        assert f'href="#{field}"' in summary
    assert inline_error(response.text, "password") == "Error: Your password must be at least 10 characters long"
    assert 'value="_x"' in response.text and 'value="short"' not in response.text
    await make_account(pool, "sage")
    response = await submit(
        client, "/register", "/register", {"username": "SAGE", "email": "new@example.org", "password": PASSWORD}
    )
    assert response.status_code == 422 and "already taken" in inline_error(response.text, "username")


async def test_register_form_existing_email_looks_the_same(client, pool):
    """Registering with an address that has an account shows the same page as a new one."""
    await make_account(pool)
    new = await submit(
        client, "/register", "/register", {"username": "sage", "email": "sage@example.org", "password": PASSWORD}
    )
    taken = await submit(
        client, "/register", "/register", {"username": "ash", "email": "rowan@example.org", "password": PASSWORD}
    )
    assert new.status_code == taken.status_code == 200
    assert new.text.replace("sage@example.org", "@") == taken.text.replace("rowan@example.org", "@")


# --- resetting a password ---------------------------------------------------------------------------


async def test_reset_pages(client, pool, redis, settings):
    """Ask for a link (same answer for unknown addresses), choose a password, log in with it."""
    await make_account(pool)
    unknown = await submit(client, "/reset", "/reset", {"email": "nobody@example.org"})
    known = await submit(client, "/reset", "/reset", {"email": "rowan@example.org"})
    assert unknown.status_code == known.status_code == 200
    assert unknown.text.replace("nobody@example.org", "@") == known.text.replace("rowan@example.org", "@")
    token = link_token((await deliver_mail(settings, redis))[0]["text"], "/reset/confirm")

    assert (await client.get("/reset/confirm?token=nope")).status_code == 400
    page = await client.get(f"/reset/confirm?token={token}")
    assert page.status_code == 200 and h1_count(page.text) == 1 and "Choose a new password" in page.text
    weak = await client.post(
        "/reset/confirm", data={"csrf_token": csrf_of(page.text), "token": token, "password": "qwertyuiop"}
    )
    assert weak.status_code == 422 and "too common" in inline_error(weak.text, "password")
    done = await client.post(
        "/reset/confirm", data={"csrf_token": csrf_of(page.text), "token": token, "password": NEW_PASSWORD}
    )
    assert done.status_code == 200 and "Your password has been changed" in done.text
    fresh = await client.get("/reset")
    expired = await client.post(
        "/reset/confirm", data={"csrf_token": csrf_of(fresh.text), "token": token, "password": NEW_PASSWORD}
    )
    assert expired.status_code == 400 and "This link has expired" in expired.text
    response = await submit(client, "/login", "/login", {"login": "rowan@example.org", "password": NEW_PASSWORD})
    assert response.status_code == 303


async def test_reset_form_errors(client):
    """A malformed address is 422 with an inline error."""
    response = await submit(client, "/reset", "/reset", {"email": "nope"})
    assert response.status_code == 422 and "right format" in inline_error(response.text, "email")


# --- profiles --------------------------------------------------------------------------------------------


async def test_profile_page_404(client):
    """An unknown member is an HTML 404 page."""
    response = await client.get("/u/nobody")
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    assert h1_count(response.text) == 1


XSS_SAMPLE = PAYLOADS[::4][:33]


async def test_profile_fields_render_inert(member_factory, client):
    """XSS payloads in display name, pronouns and bio are shown as text on the profile page."""
    member = await member_factory("rowan")
    for payload in XSS_SAMPLE:
        one_line = re.sub(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]", " ", payload)
        bio = payload.replace("\x00", "")[:3000]
        bio = re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]", " ", bio)
        # Display names refuse invisible (format) characters such as U+200B outright (issue 12).
        display_name = "".join(c for c in one_line if unicodedata.category(c) != "Cf")[:60]
        body = {"display_name": display_name, "pronouns": one_line[:40], "bio": bio}
        response = await member.client.patch("/api/me", json=body)
        assert response.status_code == 200, (payload, response.text)
        for viewer in (client, member.client):
            page = await viewer.get("/u/rowan")
            assert page.status_code == 200
            assert_inert(page.text, page=True, allow_script_src=True)
            assert h1_count(page.text) == 1
        edit = await member.client.get("/me/edit")
        assert_inert(edit.text, page=True, allow_script_src=True)


def test_bio_paragraphs():
    """Blank lines split paragraphs; single newlines are line breaks."""
    assert paragraphs("a\nb\n\n\nc\r\n\r\nd") == [["a", "b"], ["c"], ["d"]]
    assert paragraphs("") == []


async def test_edit_page(member_factory, client):
    """Anonymous visitors are sent to log in; bad input is 422 with inline errors and kept values."""
    response = await client.get("/me/edit")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/me/edit"
    member = await member_factory("rowan")
    page = await member.client.get("/me/edit")
    assert page.status_code == 200 and h1_count(page.text) == 1 and 'value="Rowan"' in page.text
    response = await member.client.post(
        "/me/edit", data={"csrf_token": csrf_of(page.text), "display_name": "x" * 61, "pronouns": "she/her", "bio": ""}
    )
    assert response.status_code == 422
    assert "60 characters or fewer" in inline_error(response.text, "display_name")
    assert 'value="she/her"' in response.text


async def test_resend_verification_page(client, pool, redis, settings):
    """An unverified member can ask for a new link from the edit page."""
    await make_account(pool, verified=False)
    await submit(client, "/login", "/login", {"login": "rowan", "password": PASSWORD})
    page = await client.get("/me/edit")
    assert "You have not confirmed this address yet" in page.text
    response = await client.post("/me/verify-email", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 200 and "We have sent a new link" in response.text
    mails = await deliver_mail(settings, redis)
    assert len(mails) == 1 and "/verify?token=" in mails[0]["text"]


# --- API tokens ------------------------------------------------------------------------------------------


async def test_tokens_page(member_factory, client):
    """A new token is shown once; the list never shows it; revoking stops it working."""
    assert (await client.get("/me/tokens")).status_code == 303
    member = await member_factory()
    page = await member.client.get("/me/tokens")
    assert page.status_code == 200 and h1_count(page.text) == 1 and "You have no tokens" in page.text
    created = await member.client.post(
        "/me/tokens", data={"csrf_token": csrf_of(page.text), "action": "create", "name": "report <script>"}
    )
    assert created.status_code == 200
    token = re.search(r'<code class="tica-token">(tica_[A-Za-z0-9_-]+)</code>', created.text).group(1)
    assert "report &lt;script&gt;" in created.text
    assert_inert(created.text, page=True, allow_script_src=True)
    assert (await client.get("/api/me", headers={"authorization": f"Bearer {token}"})).status_code == 200
    listing = await member.client.get("/me/tokens")
    assert token not in listing.text and "report &lt;script&gt;" in listing.text
    token_id = re.search(r'name="token_id" value="(\d+)"', listing.text).group(1)

    bad = await member.client.post(
        "/me/tokens", data={"csrf_token": csrf_of(listing.text), "action": "create", "name": ""}
    )
    assert bad.status_code == 422 and inline_error(bad.text, "name").startswith("Error: Give the token a name")
    missing = await member.client.post(
        "/me/tokens", data={"csrf_token": csrf_of(listing.text), "action": "revoke", "token_id": "abc"}
    )
    assert missing.status_code == 400
    revoked = await member.client.post(
        "/me/tokens", data={"csrf_token": csrf_of(listing.text), "action": "revoke", "token_id": token_id}
    )
    assert revoked.status_code == 200 and "The token is revoked" in revoked.text
    assert (await client.get("/api/me", headers={"authorization": f"Bearer {token}"})).status_code == 401


async def test_pages_have_one_heading_and_labelled_fields(client):
    """Every anonymous account page has one h1, and every visible input a label."""
    for path in ("/login", "/register", "/reset", "/reset/confirm?token=x", "/verify?token=x"):
        page = (await client.get(path)).text
        assert h1_count(page) == 1, path
        for field_id in re.findall(r'<input[^>]*\bid="([^"]+)"', page):
            if field_id == "search-field":
                continue
            assert f'for="{field_id}"' in page, (path, field_id)
        assert_inert(page, page=True, allow_script_src=True)
