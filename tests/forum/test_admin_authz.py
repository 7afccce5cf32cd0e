"""Who may use the admin tools: every route under /admin and /api/admin, and every change to
categories, is in the table below with the role it needs; visitors are asked to log in, members get
403, moderators 403 for the admins' tools, and the role is checked before anything else (a member
gets 403 even for an id that does not exist). A new admin route without a row fails the first test."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import Route

STAFF, ADMINS = "staff", "admins"

# (method, path as routed) -> who may use it.
TABLE: dict[tuple[str, str], str] = {
    ("GET", "/admin"): STAFF,
    ("GET", "/admin/audit-log"): STAFF,
    ("GET", "/admin/watched-words"): ADMINS,
    ("POST", "/admin/watched-words"): ADMINS,
    ("POST", "/admin/watched-words/{id}/delete"): ADMINS,
    ("GET", "/admin/safeguarding"): ADMINS,
    ("POST", "/admin/safeguarding"): ADMINS,
    ("GET", "/api/admin/audit-log"): STAFF,
    ("GET", "/api/admin/watched-words"): ADMINS,
    ("POST", "/api/admin/watched-words"): ADMINS,
    ("DELETE", "/api/admin/watched-words/{id}"): ADMINS,
    ("GET", "/api/admin/safeguarding-phrases"): ADMINS,
    ("POST", "/api/admin/safeguarding-phrases"): ADMINS,
    ("DELETE", "/api/admin/safeguarding-phrases/{phrase}"): ADMINS,
    # Members and roles
    ("GET", "/admin/members"): STAFF,
    ("GET", "/admin/members/{id}"): STAFF,
    ("POST", "/admin/members/{id}/role"): ADMINS,
    ("GET", "/api/admin/members"): STAFF,
    ("GET", "/api/admin/members/{id}"): STAFF,
    ("PUT", "/api/admin/members/{id}/role"): ADMINS,
    ("POST", "/admin/members/{id}/duties"): ADMINS,
    ("PUT", "/api/admin/members/{id}/duties"): ADMINS,
    # Outreach from safeguarding items: its kind words
    ("GET", "/admin/outreach-template"): ADMINS,
    ("POST", "/admin/outreach-template"): ADMINS,
    # Sign-ups and invitations
    ("GET", "/admin/signups"): STAFF,
    ("POST", "/admin/signups/{id}"): STAFF,
    ("GET", "/admin/invitations"): STAFF,
    ("POST", "/admin/invitations"): STAFF,
    ("POST", "/admin/invitations/{id}/resend"): STAFF,
    ("POST", "/admin/invitations/{id}/withdraw"): STAFF,
    ("GET", "/api/admin/signups"): STAFF,
    ("POST", "/api/admin/signups/{id:int}"): STAFF,
    ("GET", "/api/admin/invitations"): STAFF,
    ("POST", "/api/admin/invitations"): STAFF,
    ("DELETE", "/api/admin/invitations/{id:int}"): STAFF,
    ("POST", "/api/admin/invitations/{id:int}/resend"): STAFF,
    # Settings
    ("GET", "/admin/settings"): ADMINS,
    ("POST", "/admin/settings"): ADMINS,
    ("GET", "/api/admin/settings"): ADMINS,
    ("PATCH", "/api/admin/settings"): ADMINS,
    # Categories
    ("GET", "/admin/categories"): ADMINS,
    ("GET", "/admin/categories/new"): ADMINS,
    ("POST", "/admin/categories/new"): ADMINS,
    ("GET", "/admin/categories/{id}/edit"): ADMINS,
    ("POST", "/admin/categories/{id}/edit"): ADMINS,
    ("POST", "/admin/categories/{id}/move"): ADMINS,
    ("GET", "/admin/categories/{id}/archive"): ADMINS,
    ("POST", "/admin/categories/{id}/archive"): ADMINS,
    ("GET", "/admin/categories/{id}/unarchive"): ADMINS,
    ("POST", "/admin/categories/{id}/unarchive"): ADMINS,
    ("GET", "/admin/categories/{id}/delete"): ADMINS,
    ("POST", "/admin/categories/{id}/delete"): ADMINS,
    ("POST", "/api/categories"): ADMINS,
    ("PATCH", "/api/categories/{id}"): ADMINS,
    ("DELETE", "/api/categories/{id}"): ADMINS,
    ("PUT", "/api/categories/order"): ADMINS,
    ("POST", "/api/categories/{id}/archive"): ADMINS,
    ("DELETE", "/api/categories/{id}/archive"): ADMINS,
}
MISSING_ID = "987654321"


def admin_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) of the forum under /admin or /api/admin, and every change to categories."""
    found = set()
    for route in app.routes:
        if not isinstance(route, Route):
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            changes_categories = route.path.startswith("/api/categories") and method != "GET"
            if route.path.startswith(("/admin", "/api/admin")) or changes_categories:
                found.add((method, route.path))
    return found


def test_every_admin_route_is_in_the_table(app):
    """The table names every admin route, and only routes that exist."""
    assert admin_routes(app.apps["forum"]) == set(TABLE)


def concrete(path: str) -> str:
    """The path with every parameter as an id no row has (or a word where a word is routed)."""
    return re.sub(
        r"\{([a-z_]+)(?::[a-z]+)?\}", lambda m: "no-such-thing" if m.group(1) == "phrase" else MISSING_ID, path
    )


async def call(client: Any, method: str, path: str, csrf: str | None) -> Any:
    """A request as a browser or a script would send it: forms (with the viewer's own CSRF token)
    to pages, an empty JSON object to the API."""
    url = concrete(path)
    if path.startswith("/api/"):
        return await client.request(method, url, json={}) if method != "GET" else await client.get(url)
    if method == "GET":
        return await client.get(url)
    return await client.request(method, url, data={"csrf_token": csrf or "none"})


def refused_visitor(response: Any, method: str, path: str) -> bool:
    """The API answers 401; a page asks to log in (401, or 303 to /login); a form a visitor posts
    without a valid CSRF token is refused as anybody's is (403, shared.pages.form_member)."""
    if path.startswith("/api/"):
        return response.status_code == 401
    if method == "POST" and response.status_code == 403:
        return True
    return response.status_code == 401 or (response.status_code == 303 and "/login" in response.headers["location"])


@pytest.mark.parametrize(("method", "path"), sorted(TABLE), ids=[f"{m} {p}" for m, p in sorted(TABLE)])
async def test_each_role_gets_what_the_table_says(client, member_factory, method, path):
    """Visitors log in first, members 403, moderators 403 for the admins' tools, the allowed roles pass the check."""
    member = await member_factory("plain")
    moderator = await member_factory("mo", roles=("member", "moderator"))
    admin = await member_factory("ada", roles=("member", "admin"))
    visitor = await call(client, method, path, None)
    assert refused_visitor(visitor, method, path), (visitor.status_code, visitor.text[:200])
    refused = await call(member.client, method, path, member.session.csrf)
    assert refused.status_code == 403, (refused.status_code, refused.text[:200])
    by_moderator = await call(moderator.client, method, path, moderator.session.csrf)
    if TABLE[(method, path)] == ADMINS:
        assert by_moderator.status_code == 403, (by_moderator.status_code, by_moderator.text[:200])
    else:
        assert by_moderator.status_code not in (401, 403), (by_moderator.status_code, by_moderator.text[:200])
    by_admin = await call(admin.client, method, path, admin.session.csrf)
    assert by_admin.status_code not in (401, 403, 500), (by_admin.status_code, by_admin.text[:200])
