"""Account pages: log in and out, create an account (as the sign-up mode says: open, approval or
by invitation), confirm an email address, reset a password, a member's profile, editing your own
profile and your API tokens.

They call the same actions as the JSON API (api.py) and show its shapes, so a form and the API
follow the same rules; an ApiError becomes the NHS.UK error summary and inline errors on the form.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.accounts import accounts, api, login, password_reset, registration, tokens
from services.forum.directory import directory
from services.forum.messages import consent
from services.forum.signups import signups
from shared.pages import Pages, form_data, form_errors, form_text, member_session, members_only, render
from shared.sessions import Session
from shared.web import ApiError, Runtime, runtime, viewer

pages = Pages()

# --- helpers ---------------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this site, never another site ("//host", "/\\host")."""
    if not value or not value.startswith("/") or value.startswith("//") or len(value) > 2000:
        return "/"
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    return value


def _status(exc: ApiError) -> int:
    """Form pages answer 400 or 422 for what the person can fix, and keep 403 and 429."""
    if exc.status in (403, 429):
        return exc.status
    return 422 if exc.status in (409, 422) else 400


async def _form_failed(request: Request, template: str, exc: ApiError, field: str, context: dict[str, Any]) -> Response:
    return await render(
        request, template, {**context, **form_errors(exc, field)}, status=_status(exc), headers=exc.headers
    )


# --- logging in and out ------------------------------------------------------------------


@pages.form("/login")
async def login_page(request: Request) -> Response:
    """Log in with a username or email address; then go to `next` (a path on this site)."""
    if request.method == "GET":
        next_path = safe_next(request.query_params.get("next"))
        if await member_session(request) is not None:
            return RedirectResponse(next_path, status_code=303)
        context = {"next": next_path, "values": {}, "site_name": runtime(request).settings.site_name}
        return await render(request, "accounts/login.html", context)
    form = await form_data(request)
    next_path = safe_next(form_text(form, "next"))
    values = {"login": form_text(form, "login")}
    try:
        _, session = await login.log_in(
            runtime(request),
            login=values["login"],
            password=form_text(form, "password", strip=False),
            address=login.client_address(request),
            previous=await member_session(request),
        )
    except ApiError as exc:
        if exc.code == "awaiting_approval":
            return await render(request, "signups/waiting.html", {"message": exc.message}, status=403)
        context = {"next": next_path, "values": values, "site_name": runtime(request).settings.site_name}
        return await _form_failed(request, "accounts/login.html", exc, "login", context)
    response = RedirectResponse(next_path, status_code=303)
    login.set_session_cookies(response, request, session)
    return response


@pages.post("/logout")
async def logout_page(request: Request) -> Response:
    """Log out (the header's form), or log out on every device (`everywhere=1`)."""
    form = await form_data(request)
    session = await member_session(request)
    response = RedirectResponse("/", status_code=303)
    if session is not None:
        sessions = runtime(request).sessions
        if form_text(form, "everywhere") == "1":
            await sessions.delete_all(session.user_id)
        else:
            await sessions.delete(session)
    login.clear_session_cookies(response, request)
    return response


# --- creating an account -------------------------------------------------------------------


def _register_context(rt: Runtime, mode: str, invitation: str, values: dict[str, str]) -> dict[str, Any]:
    """What the registration form shows: the sign-up question when the account will wait for a
    moderator, the invitation it carries (which skips that)."""
    return {
        "values": values,
        "invitation": invitation,
        "question": rt.settings.signup_question if registration.must_wait(mode, invitation) else None,
        "answer_max": signups.ANSWER_MAX,
        "site_name": rt.settings.site_name,
    }


async def _by_invitation_only(request: Request, status: int = 200) -> Response:
    """Joining is by invitation: said plainly, with whom to ask, and no form."""
    context = {"message": registration.INVITE_ONLY, "site_name": runtime(request).settings.site_name}
    return await render(request, "accounts/register_by_invitation.html", context, status=status)


async def _invitation_unusable(request: Request, exc: ApiError) -> Response:
    """An invitation link that cannot be used, and why (expired, used, withdrawn, replaced)."""
    reason = (exc.fields or {}).get("invitation", "unknown")
    return await render(
        request, "accounts/register_invitation.html", {"message": exc.message, "reason": reason}, status=400
    )


@pages.form("/register")
async def register_page(request: Request) -> Response:
    """Create an account, as the sign-up mode says: open (then "check your email"), approval (with
    the sign-up question; then "a moderator will read it") or by invitation (the invitation's link
    opens the form with the invited address; without one, no form)."""
    rt = runtime(request)
    mode = rt.settings.registration_mode
    if request.method == "GET":
        invitation = request.query_params.get("invitation", "")
        if not invitation and mode == "invite":
            return await _by_invitation_only(request)
        try:
            invited = await registration.check_invitation(rt, invitation)
        except ApiError as exc:
            return await _invitation_unusable(request, exc)
        values = {"email": invited.email} if invited else {}
        return await render(request, "accounts/register.html", _register_context(rt, mode, invitation, values))
    form = await form_data(request)
    values = {name: form_text(form, name) for name in ("username", "email", "display_name", "answer")}
    invitation = form_text(form, "invitation")
    password = form_text(form, "password", strip=False)
    try:
        registration.check_invited(mode, invitation)
        await registration.check_invitation(rt, invitation)
        await _every_registration_problem(rt, mode, invitation, values, password)
        done = await registration.register(
            rt,
            username=values["username"],
            email=values["email"],
            password=password,
            display_name=values["display_name"] or None,
            address=login.client_address(request),
            answer=values["answer"],
            invitation=invitation or None,
        )
    except ApiError as exc:
        if exc.code == "invitation_required":
            return await _by_invitation_only(request, status=403)
        if exc.code == "invalid_invitation":
            return await _invitation_unusable(request, exc)
        context = _register_context(rt, mode, invitation, values)
        return await _form_failed(request, "accounts/register.html", exc, "username", context)
    context = {"email": values["email"], "waiting": done.waiting, "confirmed": done.user.email_verified}
    return await render(request, "accounts/register_sent.html", context)


async def _every_registration_problem(
    rt: Runtime, mode: str, invitation: str, values: dict[str, str], password: str
) -> None:
    """All of a registration's problems at once (422), the taken username and a display name too like
    another member's among them, so the form shows every one in its error summary, not one a try."""
    problems = accounts.registration_problems(
        username=values["username"],
        email=values["email"],
        password=password,
        display_name=values["display_name"] or None,
    )
    problems.update(registration.answer_problems(mode, invitation, values["answer"]))
    async with rt.pool.acquire() as conn:
        if "username" not in problems and await _username_in_use(conn, values["username"]):
            problems["username"] = (accounts.username_taken().fields or {})["username"]
        if "display_name" not in problems:
            try:
                await accounts.check_display_name(
                    conn, values["display_name"] or None, user_id=None, username=values["username"]
                )
            except ApiError as exc:
                problems["display_name"] = (exc.fields or {})["display_name"]
    if problems:  # in the order the form asks
        order = {"username": 0, "email": 1, "display_name": 2, "password": 3, "answer": 4}
        raise accounts.invalid({name: problems[name] for name in sorted(problems, key=lambda n: order.get(n, 5))})


async def _username_in_use(conn: asyncpg.Connection, username: str) -> bool:
    """Whether a member or a person waiting for approval has the username."""
    member = await accounts.user_by_username(conn, username)
    return member is not None or await signups.waiting_by_username(conn, username) is not None


@pages.get("/verify")
async def verify_page(request: Request) -> Response:
    """The link in the verification mail: confirms the address and says so (and, for an account
    waiting for approval, what happens next)."""
    try:
        done = await registration.verify_email(runtime(request), request.query_params.get("token", ""))
    except ApiError as exc:
        return await render(request, "accounts/verify.html", {"verified": False, "message": exc.message}, status=400)
    if done.waiting:
        return await render(request, "signups/verified_waiting.html", {"user": done.user})
    return await render(request, "accounts/verify.html", {"verified": True, "user": done.user})


# --- resetting a password -----------------------------------------------------------------------


@pages.form("/reset")
async def reset_page(request: Request) -> Response:
    """Ask for a reset link; the answer never says whether an account has the address."""
    if request.method == "GET":
        return await render(request, "accounts/reset.html", {"values": {}})
    form = await form_data(request)
    values = {"email": form_text(form, "email")}
    try:
        await password_reset.request_reset(
            runtime(request), email=values["email"], address=login.client_address(request)
        )
    except ApiError as exc:
        return await _form_failed(request, "accounts/reset.html", exc, "email", {"values": values})
    return await render(request, "accounts/reset_sent.html", {"email": values["email"]})


@pages.form("/reset/confirm")
async def reset_confirm_page(request: Request) -> Response:
    """Choose a new password with the link from the reset mail."""
    rt = runtime(request)
    if request.method == "GET":
        token = request.query_params.get("token", "")
        if await password_reset.reset_token_user(rt, token) is None:
            return await render(request, "accounts/reset_confirm.html", {"expired": True}, status=400)
        return await render(request, "accounts/reset_confirm.html", {"token": token})
    form = await form_data(request)
    token = form_text(form, "token")
    try:
        await password_reset.confirm_reset(
            rt, token=token, password=form_text(form, "password", strip=False), address=login.client_address(request)
        )
    except ApiError as exc:
        if exc.code == "invalid_token":
            return await render(request, "accounts/reset_confirm.html", {"expired": True}, status=400)
        return await _form_failed(request, "accounts/reset_confirm.html", exc, "password", {"token": token})
    request.scope["viewer"] = None  # the session this request came with has just ended
    response = await render(request, "accounts/reset_done.html")
    login.clear_session_cookies(response, request)  # every session ended, this browser's too
    return response


# --- profiles ------------------------------------------------------------------------------------


def paragraphs(text: str) -> list[list[str]]:
    """Plain text as paragraphs of lines (blank lines separate paragraphs), for escaped rendering."""
    blocks = [block.strip("\n") for block in text.replace("\r\n", "\n").split("\n\n")]
    return [block.split("\n") for block in blocks if block.strip()]


def page_user(user: accounts.User) -> dict[str, Any]:
    """A user as profile templates use it: the public JSON plus the avatar's class and the joined date."""
    return {
        **api.public_json(user),
        "avatar_class": f"tica-avatar--{accounts.avatar_index(user.id)}",
        "joined": f"{user.created_at.day} {user.created_at:%B %Y}",
        "bio_paragraphs": paragraphs(user.bio),
        "interests_paragraphs": paragraphs(user.interests),
    }


@pages.get("/u/{username}")
async def profile_page(request: Request) -> Response:
    """A member's profile: avatar, name, pronouns, roles, when they joined, their bio."""
    user = await accounts.profile(runtime(request), request.path_params["username"])
    session = await viewer(request)
    own = access.is_self(session, user.id)
    blocked = False
    if session is not None and not own:
        async with runtime(request).pool.acquire() as conn:
            blocked = await consent.has_blocked(conn, session.user_id, user.id)
    context = {"user": page_user(user), "own": own, "blocked": blocked}
    return await render(request, "accounts/profile.html", context)


async def _my_badges(request: Request, user_id: int) -> list[dict[str, Any]]:
    """The member's badges for the edit page's choice of which show on their posts."""
    async with runtime(request).pool.acquire() as conn:
        rows = await directory.my_badges(conn, user_id)
    return [{"id": r["id"], "name": r["name"], "description": r["description"], "shown": r["shown"]} for r in rows]


def _edit_context(
    user: accounts.User, values: dict[str, str] | None = None, badges: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    current = {
        "display_name": user.display_name,
        "pronouns": user.pronouns or "",
        "bio": user.bio,
        "organisation": user.organisation,
        "interests": user.interests,
        "in_directory": user.in_directory,
    }
    return {
        "user": page_user(user),
        "email": user.email,
        "email_verified": user.email_verified,
        "values": values or current,
        "badges": badges or [],
    }


@pages.form("/me/edit")
@members_only
async def edit_page(request: Request, session: Session) -> Response:
    """Edit your display name, pronouns and bio."""
    rt = runtime(request)
    user = await accounts.current_user(rt, session)
    badges = await _my_badges(request, user.id)
    if request.method == "GET":
        context = {**_edit_context(user, badges=badges), "badges_saved": request.query_params.get("done") == "badges"}
        return await render(request, "accounts/edit.html", context)
    form = await form_data(request)
    values: dict[str, Any] = {
        "display_name": form_text(form, "display_name"),
        "pronouns": form_text(form, "pronouns"),
        "bio": form_text(form, "bio"),
        "organisation": form_text(form, "organisation"),
        "interests": form_text(form, "interests"),
        "in_directory": form_text(form, "in_directory") == "1",
    }
    try:
        user = await accounts.update_me(rt, session, values)
    except ApiError as exc:
        context = _edit_context(user, values, badges)
        return await _form_failed(request, "accounts/edit.html", exc, "display_name", context)
    return RedirectResponse(f"/u/{user.username}", status_code=303)


@pages.post("/me/verify-email")
@members_only
async def resend_page(request: Request, session: Session) -> Response:
    """Ask for a new verification mail (from the profile edit page)."""
    await form_data(request)
    rt = runtime(request)
    try:
        await registration.resend_verification(rt, session)
    except ApiError as exc:
        user = await accounts.current_user(rt, session)
        return await _form_failed(request, "accounts/edit.html", exc, "resend", _edit_context(user))
    user = await accounts.current_user(rt, session)
    return await render(request, "accounts/edit.html", {**_edit_context(user), "resent": True})


@pages.form("/me/tokens")
@members_only
async def tokens_page(request: Request, session: Session) -> Response:
    """Your personal API tokens: create one (shown once), revoke one."""
    rt = runtime(request)
    context: dict[str, Any] = {"values": {}}
    if request.method == "POST":
        form = await form_data(request)
        try:
            if form_text(form, "action") == "revoke":
                token_id = form_text(form, "token_id")
                if not token_id.isdigit() or len(token_id) > 18:
                    raise ApiError(404, "not_found", "There is no such token.")
                await tokens.revoke_api_token(rt, session, int(token_id))
                context["revoked"] = True
            else:
                context["values"] = {"name": form_text(form, "name")}
                context["created"] = api.new_token_json(
                    *await tokens.create_api_token(rt, session, context["values"]["name"])
                )
                context["values"] = {}
        except ApiError as exc:
            context["tokens"] = await _tokens(rt, session)
            return await _form_failed(request, "accounts/tokens.html", exc, "name", context)
    context["tokens"] = await _tokens(rt, session)
    return await render(request, "accounts/tokens.html", context)


async def _tokens(rt: Runtime, session: Session) -> list[dict[str, Any]]:
    return [api.token_json(row) for row in await tokens.list_api_tokens(rt, session)]


routes = pages.routes
