"""Unsubscribing without logging in: signed links in every digest and notification
mail, and RFC 8058 one-click (`List-Unsubscribe-Post: List-Unsubscribe=One-Click`).

A token names a member and a list (digest, reply, mention, watched, message) and carries an
HMAC-SHA256 of both with the install's secret key. `GET /unsubscribe?token=` asks
first (link scanners must not unsubscribe anyone); `POST` unsubscribes at once,
with no CSRF token: the signed token is the proof, and mail clients post nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from services.notify import preferences
from shared.pages import Pages, render
from shared.settings import Settings
from shared.web import runtime

pages = Pages()

# list name -> (the preference it turns off, what it is in words)
LISTS: dict[str, tuple[str, str]] = {
    "digest": ("digest", "the summary email"),
    "reply": ("email_on_reply", "emails about replies and quotes"),
    "mention": ("email_on_mention", "emails about mentions"),
    "watched": ("email_on_watched", "emails about new posts in what you watch"),
    "message": ("email_on_message", "emails about private messages"),
}
_PURPOSE = b"tica unsubscribe v1:"


def _mac(settings: Settings, payload: str) -> str:
    digest = hmac.new(settings.key, _PURPOSE + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(settings: Settings, user_id: int, list_name: str) -> str:
    """A token that unsubscribes one member from one list (it does not expire)."""
    assert list_name in LISTS
    payload = f"{user_id}.{list_name}"
    return f"{payload}.{_mac(settings, payload)}"


def read_token(settings: Settings, token: str | None) -> tuple[int, str] | None:
    """(user id, list) of a genuine token; None for anything else."""
    if not token or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in LISTS:
        return None
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_mac(settings, payload), parts[2]):
        return None
    user_id = int(parts[0])
    return (user_id, parts[1]) if 0 < user_id < 2**63 else None


def unsubscribe_url(settings: Settings, user_id: int, list_name: str) -> str:
    return f"{settings.public_url}/unsubscribe?{urlencode({'token': make_token(settings, user_id, list_name)})}"


def headers(settings: Settings, user_id: int, list_name: str) -> dict[str, str]:
    """The RFC 2369 and RFC 8058 headers for a mail of this list."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(settings, user_id, list_name)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


async def _token(request: Request) -> str | None:
    token = request.query_params.get("token")
    if token is None and request.method == "POST":
        form = await request.form()
        value = form.get("token")
        token = value if isinstance(value, str) else None
    return token


@pages.form("/unsubscribe")
async def unsubscribe(request: Request) -> Response:
    """GET: ask whether to stop a list. POST (the page's button, or a mail client's one click): stop it."""
    rt = runtime(request)
    token = await _token(request)
    found = read_token(rt.settings, token)
    if found is None:
        return await render(request, "notify/unsubscribe.html", {"invalid": True}, status=400)
    user_id, list_name = found
    preference, what = LISTS[list_name]
    if request.method == "GET":
        return await render(request, "notify/unsubscribe.html", {"token": token, "what": what})
    async with rt.pool.acquire() as conn, conn.transaction():
        await preferences.update_preferences(conn, user_id, {preference: "never"})
    return await render(request, "notify/unsubscribe.html", {"done": True, "what": what})


routes = pages.routes
