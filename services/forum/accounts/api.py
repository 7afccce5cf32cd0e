"""The accounts JSON API: registration, sessions, the viewer's own account, password reset,
API tokens, public profiles and member controls; its request schemas and the user, token and
avatar shapes (the pages use the same shapes).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.accounts import controls, login, registration, tokens
from services.forum.accounts.accounts import (
    AVATAR_PALETTE,
    BIO_MAX,
    DISPLAY_NAME_MAX,
    EMAIL_MAX,
    INTERESTS_MAX,
    ORGANISATION_MAX,
    PRONOUNS_MAX,
    User,
    avatar_index,
    current_user,
    initials,
    profile,
    update_me,
)
from services.forum.accounts.password_reset import confirm_reset, request_reset
from services.forum.signups import invitations, signups
from shared.api import STATUS, ApiRouter, Field, Schema, Shape, page_of, path_int, read_json, writing
from shared.sessions import SESSION_COOKIE, Session
from shared.web import ApiError, require_viewer, require_writer, runtime, viewer

api = ApiRouter(tag="accounts")
controls_api = ApiRouter(tag="member controls")

# --- JSON shapes ---------------------------------------------------------------------

PERSON = Shape("Person", {"id": "integer?", "username": "string?", "display_name": "string"})
AVATAR = Shape("Avatar", {"initials": "string", "colour": "string"})
PUBLIC_USER = Shape(
    "User",
    {
        "id": "integer",
        "username": "string",
        "display_name": "string",
        "pronouns": "string?",
        "bio": "string?",
        "roles": ["string"],
        "created_at": "datetime",
        "avatar": AVATAR,
        "organisation": "string?",
        "interests": "string?",
        "badges": [{"id": "integer", "name": "string", "description": "string?"}],
        "email?": "string",
        "email_verified?": "boolean",
        "groups?": [{"id": "integer", "name": "string", "slug": "string", "owner": "boolean"}],
        "in_directory?": "boolean",
    },
)
PRIVATE_USER = PUBLIC_USER.extend(
    "OwnUser",
    {
        "email": "string",
        "email_verified": "boolean",
        "groups": [{"id": "integer", "name": "string", "slug": "string", "owner": "boolean"}],
        "in_directory": "boolean",
    },
)
REGISTERED_USER = PRIVATE_USER.extend("RegisteredUser", {"awaiting_approval": "boolean"})
TOKEN = Shape("ApiToken", {"id": "integer", "name": "string", "created_at": "datetime", "last_used_at": "datetime?"})
NEW_TOKEN = TOKEN.extend("NewApiToken", {"token": "string"})
CONTROLS = Shape(
    "MemberControls",
    {
        "content_notes": "string",
        "members": [{"user": PERSON, "level": "string", "since": "datetime"}],
    },
)
MUTED = Shape("Muted", {"user_id": "integer", "username": "string", "level": "string"})
REFUSED_LINK = "invalid_token: the link is unknown, used or expired"


def avatar_json(user_id: int, display_name: str, username: str) -> dict[str, str]:
    """An initials avatar: the letters and the background colour."""
    return {"initials": initials(display_name, username), "colour": AVATAR_PALETTE[avatar_index(user_id)]}


def public_json(user: User) -> dict[str, Any]:
    """What anyone may see of an account."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "pronouns": user.pronouns,
        "bio": user.bio,
        "roles": list(user.roles),
        "created_at": user.created_at.isoformat(),
        "avatar": avatar_json(user.id, user.display_name, user.username),
        "organisation": user.organisation,
        "interests": user.interests,
        "badges": [dict(badge) for badge in user.badges],
    }


def private_json(user: User) -> dict[str, Any]:
    """What the member (and admins) see: the public profile plus email, verification, groups and directory choice."""
    return {
        **public_json(user),
        "email": user.email,
        "email_verified": user.email_verified,
        "groups": [dict(group) for group in user.groups],
        "in_directory": user.in_directory,
    }


def json_for(user: User, session: Session | None) -> dict[str, Any]:
    """The user JSON a viewer may see: private to its owner and admins, public to everyone else."""
    if access.may_see_email(session, user.id):
        return private_json(user)
    return public_json(user)


def token_json(row: asyncpg.Record) -> dict[str, Any]:
    """A personal API token as its owner sees it (never the token itself)."""
    last_used = row["last_used_at"]
    return {
        "id": row["id"],
        "name": row["name"],
        "created_at": row["created_at"].isoformat(),
        "last_used_at": last_used.isoformat() if last_used else None,
    }


def new_token_json(row: asyncpg.Record, token: str) -> dict[str, Any]:
    """A token just created: the one time the token itself is shown."""
    return {**token_json(row), "token": token}


# --- HTTP helpers ------------------------------------------------------------------------


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON: a cross-site form cannot send that without a preflight,
    which closes login and registration CSRF."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the request body as JSON (Content-Type: application/json).")


# --- request schemas --------------------------------------------------------------------------

REGISTER_IN = Schema(
    "Registration",
    {
        "username": Field(
            "string",
            required=True,
            max_length=200,
            description="3-20 letters, digits, _ or -, starting with a letter or digit",
        ),
        "email": Field("string", required=True, max_length=EMAIL_MAX),
        "password": Field(
            "string",
            required=True,
            strip=False,
            max_length=1000,
            description="at least 10 characters, not a common password",
        ),
        "display_name": Field("string", nullable=True, max_length=1000),
        "answer": Field(
            "string",
            nullable=True,
            max_length=signups.ANSWER_MAX,
            description="the answer to the sign-up question (GET /api/site): required while sign-up needs "
            "approval, unless with an invitation; seen by staff only",
        ),
        "invitation": Field(
            "string",
            nullable=True,
            max_length=invitations.TOKEN_MAX,
            description="the token of an invitation (the `invitation` of the link in its mail): required while "
            "joining is by invitation; skips approval",
        ),
    },
)
VERIFY_IN = Schema("EmailVerification", {"token": Field("string", required=True, max_length=1000)})
LOGIN_IN = Schema(
    "Login",
    {
        "login": Field("string", required=True, max_length=EMAIL_MAX, description="username or email address"),
        "password": Field("string", required=True, strip=False, max_length=1000),
    },
)
PROFILE_IN = Schema(
    "ProfileChange",
    {
        "display_name": Field("string", nullable=True, max_length=DISPLAY_NAME_MAX),
        "pronouns": Field("string", nullable=True, max_length=PRONOUNS_MAX),
        "bio": Field("string", nullable=True, max_length=BIO_MAX),
        "organisation": Field("string", nullable=True, max_length=ORGANISATION_MAX),
        "interests": Field(
            "string",
            nullable=True,
            max_length=INTERESTS_MAX,
            description="what you would like to talk about, shown in the member directory",
        ),
        "in_directory": Field("boolean", nullable=True, description="false: the member directory leaves you out"),
    },
)
RESET_IN = Schema("PasswordResetRequest", {"email": Field("string", required=True, max_length=1000)})
RESET_CONFIRM_IN = Schema(
    "PasswordReset",
    {
        "token": Field("string", required=True, max_length=1000),
        "password": Field("string", required=True, strip=False, max_length=1000),
    },
)
TOKEN_IN = Schema("ApiTokenRequest", {"name": Field("string", required=True, max_length=1000)})
MUTE_IN = Schema("MuteIn", {"level": Field("string", required=True, enum=controls.LEVELS)})
CONTROLS_IN = Schema("MemberControlsIn", {"content_notes": Field("string", required=True, enum=controls.CONTENT_NOTES)})


# --- endpoints ------------------------------------------------------------------------------


def registered_json(done: registration.Registered) -> dict[str, Any]:
    """A registration's answer: the account as its owner sees it, and whether it waits for approval."""
    return {**private_json(done.user), "awaiting_approval": done.waiting}


@api.post(
    "/api/users",
    body=REGISTER_IN,
    answers={
        201: ("User; a verification email is sent (unless the invited address was used)", REGISTERED_USER),
        400: "invalid_invitation: the invitation cannot be used (fields.invitation: unknown, replaced, expired, "
        "used or withdrawn)",
        403: "invitation_required: joining is by invitation",
        409: "username_taken",
        422: "invalid: a field needs attention",
        429: "rate_limited: too many registrations from this network",
    },
)
async def create_user(request: Request) -> Response:
    """Register an account (201 user); a verification email is sent.

    How depends on the site's sign-up mode (GET /api/site): open, anyone registers; approval, the
    account waits for a moderator (`awaiting_approval: true`, `answer` required; it cannot log in
    until approved, and is mailed either way); invite, an `invitation` is required (403
    `invitation_required` without, 400 `invalid_invitation` when it cannot be used). An invitation
    skips approval; registering with the invited address confirms it (no mail).

    The answer does not reveal whether the email address already has an account:
    then nothing is created, the body looks the same, and the address's owner is told
    by email that someone tried to register with it. 409 `username_taken`, 422 with
    `fields` for a bad username, email, password or answer, 415 for a body that is not JSON.
    """
    require_json(request)
    data = await read_json(request, REGISTER_IN)
    done = await registration.register(
        runtime(request),
        username=data["username"],
        email=data["email"],
        password=data["password"],
        display_name=data.get("display_name"),
        address=login.client_address(request),
        answer=data.get("answer"),
        invitation=data.get("invitation"),
    )
    return JSONResponse(registered_json(done), status_code=201)


@api.post(
    "/api/users/verify",
    body=VERIFY_IN,
    answers={200: ("User (email verified)", REGISTERED_USER), 400: REFUSED_LINK},
)
async def verify_user(request: Request) -> Response:
    """Confirm an email address with the token from the verification mail (400 `invalid_token`);
    `awaiting_approval` says whether the account still waits for a moderator."""
    require_json(request)
    data = await read_json(request, VERIFY_IN)
    done = await registration.verify_email(runtime(request), data["token"])
    return JSONResponse(registered_json(done))


@api.post(
    "/api/me/verify-email", answers={202: ("A new verification link is on its way: {status: sent}", STATUS)}, auth=True
)
async def resend_verify(request: Request) -> Response:
    """Mail a new verification link to the viewer's own address."""
    session = await require_writer(request)
    await registration.resend_verification(runtime(request), session)
    return JSONResponse({"status": "sent"}, status_code=202)


@api.post("/api/session", body=LOGIN_IN, answers={200: ("User; sets tica_session and tica_csrf cookies", PRIVATE_USER)})
async def create_session(request: Request) -> Response:
    """Log in with a username or email address and a password.

    401 `invalid_login` (the same for an unknown login and a wrong password),
    403 `suspended` (message and fields `until`, `reason`), 403 `awaiting_approval` (the right
    password of an account waiting for a moderator), 429 with Retry-After after
    5 failures for one login or 20 from one address in 15 minutes.
    """
    require_json(request)
    data = await read_json(request, LOGIN_IN)
    rt = runtime(request)
    previous = await _cookie_session(request)
    user, session = await login.log_in(
        rt, login=data["login"], password=data["password"], address=login.client_address(request), previous=previous
    )
    response = JSONResponse(private_json(user))
    login.set_session_cookies(response, request, session)
    return response


async def _cookie_session(request: Request) -> Session | None:
    """The session the cookie names, if any (a login ignores a bearer token)."""
    return await runtime(request).sessions.get(request.cookies.get(SESSION_COOKIE))


@api.delete("/api/session", answers={204: "Logged out", 400: "no_session: the request used an API token"}, auth=True)
async def delete_session(request: Request) -> Response:
    """Log out this session and clear its cookies."""
    session = await require_writer(request)
    if session.via_token:
        raise ApiError(
            400, "no_session", "This request uses an API token, not a session. To stop using the token, revoke it."
        )
    await runtime(request).sessions.delete(session)
    response = Response(status_code=204)
    login.clear_session_cookies(response, request)
    return response


@api.post("/api/session/revoke-all", answers={204: "Every session of the viewer ended"}, auth=True)
async def revoke_all_sessions(request: Request) -> Response:
    """Log out everywhere: every session of the viewer ends (API tokens stay until revoked)."""
    session = await require_writer(request)
    await runtime(request).sessions.delete_all(session.user_id)
    response = Response(status_code=204)
    if not session.via_token:
        login.clear_session_cookies(response, request)
    return response


@api.get("/api/me", answers={200: ("User with roles, groups, email", PRIVATE_USER)}, auth=True)
async def get_me(request: Request) -> Response:
    """The viewer's own account (401 when anonymous)."""
    session = await require_viewer(request)
    return JSONResponse(private_json(await current_user(runtime(request), session)))


@api.patch("/api/me", body=PROFILE_IN, answers={200: PRIVATE_USER}, auth=True)
async def patch_me(request: Request) -> Response:
    """Change the viewer's display name, pronouns, bio, organisation, interests or directory listing.

    An empty display name means the username; `in_directory: false` leaves the member directory.
    """
    session = await require_writer(request)
    data = await read_json(request, PROFILE_IN)
    user = await update_me(runtime(request), session, data)
    return JSONResponse(private_json(user))


@api.post(
    "/api/password-reset", body=RESET_IN, answers={202: ("A link is mailed if an account has the address", STATUS)}
)
async def password_reset(request: Request) -> Response:
    """Ask for a password reset link; always 202, whether or not an account has the address."""
    require_json(request)
    data = await read_json(request, RESET_IN)
    await request_reset(runtime(request), email=data["email"], address=login.client_address(request))
    return JSONResponse(
        {
            "status": "accepted",
            "message": "If an account uses that address, we have sent it a link "
            "to choose a new password. The link works for 1 hour.",
        },
        status_code=202,
    )


@api.post("/api/password-reset/confirm", body=RESET_CONFIRM_IN, answers={200: PRIVATE_USER, 400: REFUSED_LINK})
async def password_reset_confirm(request: Request) -> Response:
    """Choose a new password with the token from the reset mail; every session of the account ends."""
    require_json(request)
    data = await read_json(request, RESET_CONFIRM_IN)
    user = await confirm_reset(
        runtime(request), token=data["token"], password=data["password"], address=login.client_address(request)
    )
    return JSONResponse(private_json(user))


@api.post("/api/me/tokens", body=TOKEN_IN, answers={201: ("The token, shown this once", NEW_TOKEN)}, auth=True)
async def post_token(request: Request) -> Response:
    """Create a personal API token (`Authorization: Bearer <token>`); the token is shown only now."""
    session = await require_writer(request)
    data = await read_json(request, TOKEN_IN)
    row, token = await tokens.create_api_token(runtime(request), session, data["name"])
    return JSONResponse(new_token_json(row, token), status_code=201)


@api.get("/api/me/tokens", answers={200: page_of(TOKEN)}, auth=True)
async def get_tokens(request: Request) -> Response:
    """The viewer's live API tokens (never the tokens themselves)."""
    session = await require_viewer(request)
    rows = await tokens.list_api_tokens(runtime(request), session)
    return JSONResponse({"items": [token_json(row) for row in rows], "next": None})


@api.delete("/api/me/tokens/{token_id}", answers={204: "Revoked"}, auth=True)
async def delete_token(request: Request) -> Response:
    """Revoke one of the viewer's API tokens; it stops working at once."""
    session = await require_writer(request)
    await tokens.revoke_api_token(runtime(request), session, path_int(request, "token_id"))
    return Response(status_code=204)


@api.get(
    "/api/users/{username}",
    answers={200: ("Public profile (with email, groups for the member and admins)", PUBLIC_USER)},
)
async def get_user(request: Request) -> Response:
    """A member's public profile (with email for the member and admins); 404 for an unknown username."""
    user = await profile(runtime(request), request.path_params["username"])
    return JSONResponse(json_for(user, await viewer(request)))


# --- member controls ------------------------------------------------------------------------------


@controls_api.get("/api/me/controls", answers={200: CONTROLS}, auth=True)
async def get_controls_endpoint(request: Request) -> Response:
    """Your safety choices: content notes folded or shown, and the members you mute or ignore."""
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        body = await controls.controls(conn, who)
    return JSONResponse(body)


@controls_api.put("/api/me/controls", body=CONTROLS_IN, answers={200: CONTROLS}, auth=True)
async def put_controls_endpoint(request: Request) -> Response:
    """Choose whether posts with a content note start folded (collapse) or open (show)."""
    async with writing(request, CONTROLS_IN) as w:
        await controls.set_content_notes(w.conn, w.who, w.data["content_notes"])
        body = await controls.controls(w.conn, w.who)
    return JSONResponse(body)


@controls_api.put("/api/users/{id}/mute", body=MUTE_IN, answers={200: MUTED}, auth=True)
async def mute_endpoint(request: Request) -> Response:
    """Mute (no notifications), ignore (also fold their posts away) or stop muting a member: level none."""
    user_id = path_int(request, "id")
    async with writing(request, MUTE_IN) as w:
        body = await controls.set_level(w.conn, w.who, user_id, w.data["level"])
    return JSONResponse(body)
