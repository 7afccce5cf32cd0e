"""The read-visibility matrix: every read surface, for every viewer, against every kind of thing.

One world is built for the module (tests/read_matrix_helpers.py): a public topic with a hidden, a
deleted and a pending reply; a topic in a group's private category; an anonymous reply; documents
in a public and in the group's folder; a webinar with a join link; and ten viewers (anonymous,
member, group member, outsider, author, moderator, admin, suspended, silenced, removed from the
group). Each ROW says what one viewer gets from one surface for one thing: the status (or the live
answer), and words that must show or must not. The forum answers 404, never 403, for what exists
but is not for the viewer; members-only surfaces send visitors to log in (401 for the API, 303 to
/login for pages). Every route of the three apps has rows here or a NOTE saying why it is not a
read surface: a new route without either fails `test_every_route_is_in_the_matrix`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from read_matrix_helpers import USERNAMES, VIEWERS, WORDS, live_answer, open_world
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute

from services.allinone import AllInOne
from services.notify import digests, preferences, projections
from shared.service_auth import service_headers

W = WORDS
AUTHOR = W["AUTHOR"]
GROUP = "Circle"  # the private group's name; its category and folder are "Circle room", "Circle papers"

# Who may read the group's things: its members (the silenced one too) and staff. The suspended
# member's sessions ended with the suspension; the removed member's sessions lost the group.
INSIDERS = frozenset({"group_member", "author", "moderator", "admin", "silenced"})
SIGNED_OUT = frozenset({"anonymous", "suspended"})
STAFF = frozenset({"moderator", "admin"})
AUTHOR_STAFF = STAFF | {"author"}
SIGNED_IN = frozenset(VIEWERS) - SIGNED_OUT
# Members who may read the private topic but may not change what someone else wrote.
READERS_ONLY = frozenset({"group_member", "silenced"})
OUTSIDE = frozenset(VIEWERS) - INSIDERS - SIGNED_OUT  # member, outsider, removed


@dataclass(frozen=True)
class Expect:
    status: int | str  # HTTP status; for live: "events", "subscribed", "forbidden", "unauthorized"
    shows: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    """What `viewer` gets from `route` (service, method, path template) at `url` for `thing`."""

    surface: str
    route: str
    url: str
    viewer: str
    thing: str
    expect: Expect
    focus: str = ""  # a JSON answer's item with this id is what is checked (an export page)
    leak: str = ""  # a known leak: the row is xfail(strict) with this reason

    @property
    def id(self) -> str:
        return f"{self.surface}:{self.url}:{self.thing}:{self.viewer}"


Rule = Callable[[str], Expect]


def E(status: int | str, shows: Iterable[str] = (), hides: Iterable[str] = ()) -> Expect:
    return Expect(status, tuple(shows), tuple(hides))


def split(who: frozenset[str], yes: Expect, no: Expect, **special: Expect) -> Rule:
    """`yes` for viewers in `who`, `no` for the rest, and a few viewers answered apart."""
    return lambda viewer: special.get(viewer) or (yes if viewer in who else no)


def private(*words: str, ok: int = 200) -> Rule:
    """The group's thing: its readers get it, everyone else a 404 with nothing of it."""
    return split(INSIDERS, E(ok, words), E(404, (), words))


def listed(*words: str) -> Rule:
    """A list everyone may read that names the group's thing only to its readers."""
    return split(INSIDERS, E(200, words), E(200, (), words))


def everyone(status: int | str, shows: Iterable[str] = (), hides: Iterable[str] = ()) -> Rule:
    return lambda viewer: E(status, shows, hides)


def members_only(status: int = 200, *, page: bool, shows: Iterable[str] = ()) -> Rule:
    """Signed-out viewers are sent to log in (303 for pages, 401 for the API)."""
    return split(SIGNED_IN, E(status, shows), E(303 if page else 401))


def role_only(who: frozenset[str], *, page: bool, login: int | None = None, shows: Iterable[str] = ()) -> Rule:
    """Moderator or admin tools: 403 for other members (nothing of a thing is shown either way)."""
    out = login or (303 if page else 401)
    return lambda viewer: E(out) if viewer in SIGNED_OUT else (E(200, shows) if viewer in who else E(403))


def owner_form(who: frozenset[str], *words: str, others: int = 403) -> Rule:
    """A form to change a private thing: its owner and staff get it with the thing's words; readers
    who may not change it 403; outsiders 404 (it does not exist for them); visitors log in."""

    def rule(viewer: str) -> Expect:
        if viewer in SIGNED_OUT:
            return E(303)
        if viewer in who:
            return E(200, words)
        return E(others, (), words) if viewer in INSIDERS else E(404, (), words)

    return rule


ROWS: list[Row] = []


def rows(surface: str, route: str, url: str, thing: str, rule: Rule, viewers: Iterable[str] = VIEWERS) -> None:
    for viewer in viewers:
        ROWS.append(Row(surface, route, url, viewer, thing, rule(viewer)))


def leak(viewer: str, url: str, thing: str, reason: str) -> None:
    """Mark one row as a known leak (xfail, strict): it must be fixed, then this line removed."""
    for i, row in enumerate(ROWS):
        if (row.viewer, row.url, row.thing) == (viewer, url, thing):
            ROWS[i] = Row(row.surface, row.route, row.url, row.viewer, row.thing, row.expect, row.focus, reason)
            return
    raise KeyError((viewer, url, thing))


MARK_PRIV = f"<mark>{W['PRIV']}</mark>"
MARK_ANON = f"<mark>{W['ANON']}</mark>"
NOT_AUTHOR = frozenset(VIEWERS) - {"author"}  # the author's own pages name them in the header
ANON_POST = split(NOT_AUTHOR, E(200, (W["ANON"],), (AUTHOR,)), E(200, (W["ANON"],)))
HIDDEN = split(AUTHOR_STAFF, E(200, (W["PUB"], W["HID"])), E(200, (W["PUB"],), (W["HID"],)))
PENDING = split(AUTHOR_STAFF, E(200, (W["PEND"],)), E(200, (), (W["PEND"],)))
DELETED = everyone(200, (W["PUB"],), (W["DEL"],))

# --- forum pages ------------------------------------------------------------------------------------------------
P = "forum GET "
rows("page", P + "/", "/", "public topic", everyone(200, (W["PUB"],)))
rows("page", P + "/", "/", "private topic", listed(W["PRIV"]))
rows("page", P + "/", "/", "pending post", everyone(200, (), (W["PEND"],)))
rows("page", P + "/categories", "/categories", "private category", listed("Circle room"))
rows("page", P + "/c/{slug}", "/c/{pub_cat_slug}", "public category", everyone(200, (W["PUB"],)))
rows("page", P + "/c/{slug}", "/c/{priv_cat_slug}", "private category", private(W["PRIV"]))
TOPIC = P + "/t/{slug}/{id}"
rows("page", TOPIC, "/t/{pub_slug}/{pub_topic}", "hidden post", HIDDEN)
rows("page", TOPIC, "/t/{pub_slug}/{pub_topic}", "deleted post", DELETED)
rows("page", TOPIC, "/t/{pub_slug}/{pub_topic}", "pending post", PENDING)
rows("page", TOPIC, "/t/{priv_slug}/{priv_topic}", "private topic", private(W["PRIV"], W["PRIVREPLY"]))
rows("page", TOPIC, "/t/{anon_slug}/{anon_topic}", "anonymous post", ANON_POST)
rows("page", P + "/t/{id}", "/t/{priv_topic}", "private topic", private(ok=301))
rows("page", P + "/t/{id}/posts", "/t/{priv_topic}/posts", "private topic", private(ok=303))
rows("page", P + "/p/{id}", "/p/{priv_post}", "private topic", private(ok=302))
rows("page", P + "/p/{id}", "/p/{pend_post}", "pending post", split(AUTHOR_STAFF, E(302), E(404)))
rows("page", P + "/p/{id}", "/p/{hid_post}", "hidden post", everyone(302))
REVISIONS = P + "/posts/{id}/revisions"
rows("page", REVISIONS, "/posts/{priv_post}/revisions", "private topic", private(W["PRIV"]))
rows("page", REVISIONS, "/posts/{hid_post}/revisions", "hidden post", split(AUTHOR_STAFF, E(200, [W["HID"]]), E(404)))
rows("page", P + "/posts/{id}/edit", "/posts/{priv_post}/edit", "private topic", owner_form(AUTHOR_STAFF, W["PRIV"]))
rows(
    "page",
    P + "/posts/{id}/delete",
    "/posts/{priv_post}/delete",
    "private topic (first post: never deleted alone)",
    split(AUTHOR_STAFF, E(409), E(404), **{v: E(403) for v in READERS_ONLY}, **{v: E(303) for v in SIGNED_OUT}),
)
rows(
    "page",
    P + "/posts/{id}/flag",
    "/posts/{priv_post}/flag",
    "private topic",
    split(INSIDERS, E(200, [W["PRIV"]]), E(404, (), [W["PRIV"]]), author=E(403), anonymous=E(303), suspended=E(303)),
)
rows(
    "page",
    P + "/posts/{id}/flag",
    "/posts/{hid_post}/flag",
    "hidden post",
    split(SIGNED_IN, E(409, (), [W["HID"]]), E(303)),
)
rows(
    "page",
    P + "/posts/{id}/appeal",
    "/posts/{hid_post}/appeal",
    "hidden post",
    split(frozenset({"author"}), E(200), E(404), anonymous=E(303), suspended=E(303)),
)
rows(
    "page",
    P + "/posts/{id}/moderate",
    "/posts/{priv_post}/moderate",
    "private topic",
    role_only(STAFF, page=True, login=401, shows=[W["PRIV"]]),
)
rows(
    "page",
    P + "/topics/{id}/moderate",
    "/topics/{priv_topic}/moderate",
    "private topic",
    role_only(STAFF, page=True, login=401, shows=[W["PRIV"]]),
)
rows("page", P + "/u/{username}", f"/u/{AUTHOR}", "anonymous post", everyone(200, (AUTHOR,), (W["ANON"],)))
rows("page", P + "/u/{username}", f"/u/{AUTHOR}", "private topic", split(INSIDERS, E(200), E(200, (), [W["PRIV"]])))
rows(
    "page",
    P + "/new-topic",
    "/new-topic",
    "private category",
    split(
        INSIDERS,
        E(200, ["Circle room"]),
        E(200, (), ["Circle room"]),
        anonymous=E(303),
        suspended=E(303),
        silenced=E(200, (), ["Circle room"]),  # they may not post: no choice of categories
    ),
)
rows("page", P + "/groups", "/groups", "private group", listed(GROUP))
rows("page", P + "/groups/new", "/groups/new", "group form", role_only(frozenset({"admin"}), page=True))
rows("page", P + "/groups/{slug}", "/groups/{group_slug}", "private group", private(GROUP))
rows(
    "page",
    P + "/groups/{slug}/edit",
    "/groups/{group_slug}/edit",
    "private group",
    owner_form(frozenset({"admin"}), GROUP),
)
rows("page", P + "/members", "/members", "directory", members_only(page=True, shows=[AUTHOR]))
rows(
    "page", P + "/members/badges", "/members/badges", "badges (admin form)", role_only(frozenset({"admin"}), page=True)
)
rows("page", P + "/library", "/library", "private folder", listed("Circle papers"))
rows(
    "page",
    P + "/library/folders/new",
    "/library/folders/new",
    "folder form",
    role_only(frozenset({"admin"}), page=True),
)
rows("page", P + "/library/folders/{id}", "/library/folders/{priv_folder}", "private folder", private(W["PRIVDOC"]))
rows(
    "page",
    P + "/library/folders/{id}/edit",
    "/library/folders/{priv_folder}/edit",
    "private folder",
    role_only(frozenset({"admin"}), page=True),
)
rows(
    "page",
    P + "/library/upload",
    "/library/upload",
    "private folder",
    split(INSIDERS, E(200, ["Circle papers"]), E(200, (), ["Circle papers"]), anonymous=E(303), suspended=E(303)),
)
DOC_OWNER = owner_form(AUTHOR_STAFF, W["PRIVDOC"])
rows("page", P + "/library/upload/{id}", "/library/upload/{priv_doc}", "private-folder document", DOC_OWNER)
rows(
    "page",
    P + "/library/documents/{id}",
    "/library/documents/{priv_doc}",
    "private-folder document",
    private(W["PRIVDOC"], W["COMM"]),
)
rows(
    "page",
    P + "/library/documents/{id}",
    "/library/documents/{pub_doc}",
    "public document",
    everyone(200, [W["PUBDOC"]]),
)
rows(
    "download",
    P + "/library/documents/{id}/download",
    "/library/documents/{priv_doc}/download",
    "private-folder document",
    private(W["PRIVDOC"]),
)
rows(
    "download",
    P + "/library/documents/{id}/preview",
    "/library/documents/{priv_doc}/preview",
    "private-folder document",
    private(W["PRIVDOC"]),
)
rows(
    "download",
    P + "/library/documents/{id}/download",
    "/library/documents/{pub_doc}/download",
    "public document",
    everyone(200, [W["PUBDOC"]]),
)
rows(
    "page",
    P + "/library/documents/{id}/edit",
    "/library/documents/{priv_doc}/edit",
    "private-folder document",
    DOC_OWNER,
)
rows(
    "page",
    P + "/library/documents/{id}/delete",
    "/library/documents/{priv_doc}/delete",
    "private-folder document",
    DOC_OWNER,
)
rows(
    "page",
    P + "/library/comments/{id}/edit",
    "/library/comments/{priv_comment}/edit",
    "private-folder comment",
    owner_form(STAFF | {"group_member"}, W["COMM"]),
)
rows("page", P + "/support", "/support", "support page", everyone(200))
rows("page", P + "/guidelines", "/guidelines", "community guidelines", everyone(200, ["Community guidelines"]))
rows("page", P + "/developers", "/developers", "the API's description", everyone(200, ["/api/openapi.json"]))
STAFF_PAGE = role_only(STAFF, page=True, login=401, shows=[W["PEND"]])
rows("page", P + "/review", "/review", "pending post", STAFF_PAGE)
rows("page", P + "/review/members/{username}", f"/review/members/{AUTHOR}", "pending post", STAFF_PAGE)
for path in ("/admin/watched-words", "/admin/safeguarding"):
    rows("page", P + path, path, "admin tool", role_only(frozenset({"admin"}), page=True, login=401))
rows("page", P + "/admin", "/admin", "the admin home", role_only(STAFF, page=True, shows=["Review queue"]))
# Moderators read the log of moderation; what admins did to the site's settings only admins read.
rows("page", P + "/admin/audit-log", "/admin/audit-log", "audit log", role_only(STAFF, page=True, login=401))
# Staff find members; only admins see their email addresses.
AUTHOR_EMAIL = f"{AUTHOR}@example.org"


def member_admin(*, page: bool) -> Rule:
    def rule(viewer: str) -> Expect:
        if viewer in SIGNED_OUT:
            return E(303 if page else 401)
        if viewer == "admin":
            return E(200, [AUTHOR, AUTHOR_EMAIL])
        return E(200, [AUTHOR], [AUTHOR_EMAIL]) if viewer == "moderator" else E(403, (), [AUTHOR_EMAIL])

    return rule


rows("page", P + "/admin/members", "/admin/members", "members and their addresses", member_admin(page=True))
rows("page", P + "/admin/members/{id}", "/admin/members/{user_author}", "a member's standing", member_admin(page=True))
for path in ("/admin/signups", "/admin/invitations"):
    rows("page", P + path, path, "sign-ups", role_only(STAFF, page=True))
rows(
    "page",
    P + "/admin/settings",
    "/admin/settings",
    "site settings",
    role_only(frozenset({"admin"}), page=True),
)
# Categories managed by admins: every one, private ones too, only to them; others learn nothing of them.
ADMIN_SEES_PRIVATE = split(
    frozenset({"admin"}), E(200, ["Circle room"]), E(403, (), ["Circle room"]), anonymous=E(303), suspended=E(303)
)
rows("page", P + "/admin/categories", "/admin/categories", "private category", ADMIN_SEES_PRIVATE)
rows("page", P + "/admin/categories/new", "/admin/categories/new", "private category", ADMIN_SEES_PRIVATE)
for action in ("edit", "archive", "unarchive", "delete"):
    rows(
        "page",
        P + f"/admin/categories/{{id}}/{action}",
        f"/admin/categories/{{priv_cat}}/{action}",
        "private category",
        ADMIN_SEES_PRIVATE,
    )
for path in ("/me/edit", "/me/tokens", "/me/controls", f"/u/{AUTHOR}/mute"):
    route = P + ("/u/{username}/mute" if path.endswith("/mute") else path)
    rows("page", route, path, "own settings", members_only(page=True))
rows("page", P + "/webinars", "/webinars", "webinar", everyone(200, [W["WEBINAR"]], [W["JOIN"]]))
rows("page", P + "/webinars/past", "/webinars/past", "webinar", everyone(200, (), [W["JOIN"]]))
JOIN_LINK = split(
    frozenset({"group_member", "admin"}), E(200, [W["WEBINAR"], W["JOIN"]]), E(200, [W["WEBINAR"]], [W["JOIN"]])
)
rows("page", P + "/webinars/{id:int}", "/webinars/{webinar}", "webinar join link", JOIN_LINK)
rows(
    "calendar",
    P + "/webinars/{id:int}.ics",
    "/webinars/{webinar}.ics",
    "webinar join link",
    everyone(200, [W["WEBINAR"]], [W["JOIN"]]),
)
rows("calendar", P + "/webinars.ics", "/webinars.ics", "webinar join link", everyone(200, [W["WEBINAR"]], [W["JOIN"]]))
for path in (
    "/webinars/new",
    "/webinars/{webinar}/edit",
    "/webinars/{webinar}/cancel",
    "/webinars/{webinar}/registrations",
):
    rows(
        "page",
        P + path.replace("{webinar}", "{id:int}"),
        path,
        "webinar organiser tool",
        role_only(frozenset({"admin"}), page=True),
    )

# --- the forum's JSON API ---------------------------------------------------------------------------------------
A = "forum GET /api"
rows("api", A + "/categories", "/api/categories", "private category", listed("Circle room"))
rows("api", A + "/topics", "/api/topics", "private topic", listed(W["PRIV"]))
rows("api", A + "/topics", "/api/topics?category_id={priv_cat}", "private category", private(W["PRIV"]))
rows("api", A + "/topics/{id}", "/api/topics/{pub_topic}", "hidden post", HIDDEN)
rows("api", A + "/topics/{id}", "/api/topics/{pub_topic}", "deleted post", DELETED)
rows("api", A + "/topics/{id}", "/api/topics/{pub_topic}", "pending post", PENDING)
rows("api", A + "/topics/{id}", "/api/topics/{priv_topic}", "private topic", private(W["PRIV"], W["PRIVREPLY"]))
rows("api", A + "/topics/{id}", "/api/topics/{anon_topic}", "anonymous post", everyone(200, [W["ANON"]], [AUTHOR]))
rows(
    "api",
    A + "/posts/{id}",
    "/api/posts/{hid_post}",
    "hidden post",
    split(AUTHOR_STAFF, E(200, [W["HID"]]), E(200, (), [W["HID"]])),
)
rows("api", A + "/posts/{id}", "/api/posts/{del_post}", "deleted post", everyone(200, (), [W["DEL"]]))
rows(
    "api",
    A + "/posts/{id}",
    "/api/posts/{pend_post}",
    "pending post",
    split(AUTHOR_STAFF, E(200, [W["PEND"]]), E(404, (), [W["PEND"]])),
)
rows("api", A + "/posts/{id}", "/api/posts/{priv_post}", "private topic", private(W["PRIV"]))
rows("api", A + "/posts/{id}", "/api/posts/{anon_post}", "anonymous post", everyone(200, [W["ANON"]], [AUTHOR]))
API_REVISIONS = A + "/posts/{id}/revisions"
rows("api", API_REVISIONS, "/api/posts/{priv_post}/revisions", "private topic", private(W["PRIV"]))
rows(
    "api",
    API_REVISIONS,
    "/api/posts/{hid_post}/revisions",
    "hidden post",
    split(AUTHOR_STAFF, E(200, [W["HID"]]), E(404)),
)
rows(
    "api",
    API_REVISIONS,
    "/api/posts/{del_post}/revisions",
    "deleted post",
    split(STAFF, E(200, (), [W["DEL"]]), E(404)),
)
rows(
    "api",
    A + "/posts/{id}/appeal",
    "/api/posts/{hid_post}/appeal",
    "hidden post (no appeal yet)",
    split(SIGNED_IN, E(404), E(401)),
)
for path in ("/me", "/me/tokens", "/me/controls", "/directory"):
    rows(
        "api", A + path, "/api" + path, "own account" if path != "/directory" else "directory", members_only(page=False)
    )
rows("api", A + "/users/{username}", f"/api/users/{AUTHOR}", "anonymous post", everyone(200, [AUTHOR], [W["ANON"]]))
rows(
    "api",
    A + "/users/{username}",
    f"/api/users/{AUTHOR}",
    "private group",
    split(frozenset({"author", "admin"}), E(200, [GROUP]), E(200, (), [GROUP])),
)
rows("api", A + "/groups", "/api/groups", "private group", listed(GROUP))
rows("api", A + "/groups/{id:int}", "/api/groups/{group}", "private group", private(GROUP))
rows(
    "api",
    A + "/groups/{id:int}/members",
    "/api/groups/{group}/members",
    "private group",
    split(INSIDERS, E(200, [AUTHOR]), E(404, (), [AUTHOR]), anonymous=E(401), suspended=E(401)),
)
for path in ("/requests", "/invites"):
    rows(
        "api",
        A + "/groups/{id:int}" + path,
        "/api/groups/{group}" + path,
        "private group",
        split(INSIDERS, E(403), E(404), admin=E(200), anonymous=E(401), suspended=E(401)),
    )
rows("api", A + "/badges", "/api/badges", "badges", everyone(200))
rows("api", A + "/folders", "/api/folders", "private folder", listed("Circle papers"))
rows("api", A + "/folders/{id:int}", "/api/folders/{priv_folder}", "private folder", private(W["PRIVDOC"]))
rows("api", A + "/documents/{id:int}", "/api/documents/{priv_doc}", "private-folder document", private(W["PRIVDOC"]))
rows(
    "download",
    A + "/documents/{id:int}/download",
    "/api/documents/{priv_doc}/download",
    "private-folder document",
    private(W["PRIVDOC"]),
)
rows(
    "download",
    A + "/documents/{id:int}/preview",
    "/api/documents/{priv_doc}/preview",
    "private-folder document",
    private(W["PRIVDOC"]),
)
rows(
    "api",
    A + "/documents/{id:int}/comments",
    "/api/documents/{priv_doc}/comments",
    "private-folder comment",
    private(W["COMM"]),
)
STAFF_API = role_only(STAFF, page=False, shows=[W["PEND"]])
rows("api", A + "/review", "/api/review", "pending post", STAFF_API)
rows("api", A + "/review/{id:int}", "/api/review/{review}", "pending post", STAFF_API)
rows("api", A + "/users/{id}/moderation", "/api/users/{user_author}/moderation", "pending post", STAFF_API)
rows("api", A + "/support", "/api/support", "support", everyone(200))
for path in ("/admin/watched-words", "/admin/safeguarding-phrases", "/admin/settings"):
    rows("api", A + path, "/api" + path, "admin tool", role_only(frozenset({"admin"}), page=False))
for path in ("/admin/audit-log", "/admin/signups", "/admin/invitations"):
    rows("api", A + path, "/api" + path, "staff tool", role_only(STAFF, page=False))
rows("api", A + "/admin/members", "/api/admin/members", "members and their addresses", member_admin(page=False))
rows(
    "api",
    A + "/admin/members/{id}",
    "/api/admin/members/{user_author}",
    "a member's standing",
    member_admin(page=False),
)
rows("api", A + "/site", "/api/site", "the site's name and welcome", everyone(200, ["tica"]))
rows("api", A + "/webinars", "/api/webinars", "webinar join link", JOIN_LINK)
rows("api", A + "/webinars/{id:int}", "/api/webinars/{webinar}", "webinar join link", JOIN_LINK)
rows(
    "api",
    A + "/webinars/{id:int}/registrations",
    "/api/webinars/{webinar}/registrations",
    "registrations",
    role_only(frozenset({"admin"}), page=False),
)

# --- the export API: tica's own services only, everything with its audience; anonymity kept -------------------------
EXPORT_VIEWERS = (*VIEWERS, "service")
for kind in ("categories", "topics", "posts", "document-comments"):
    shows = {
        "categories": ["Circle room"],
        "topics": [W["PRIV"]],
        "posts": [W["PRIV"]],
        "document-comments": [W["COMM"]],
    }
    rule = split(frozenset({"service"}), E(200, [*shows[kind], "group:{group}"]), E(401, (), shows[kind]))
    rows("export", A + f"/export/{kind}", f"/api/export/{kind}", "private things", rule, EXPORT_VIEWERS)
ROWS.append(
    Row(
        "export",
        A + "/export/posts",
        "/api/export/posts",
        "service",
        "anonymous post",
        E(200, [W["ANON"]], [AUTHOR]),
        "{anon_post}",
    )
)

rows(
    "export",
    A + "/export/messages",
    "/api/export/messages",
    "private conversation",
    split(frozenset({"service"}), E(200, [W["CONVO"], "conversation:{convo}"]), E(401, (), [W["CONVO"]])),
    EXPORT_VIEWERS,
)

# --- search -------------------------------------------------------------------------------------------------------
S = "search GET "
rows("search", S + "/api/search", f"/api/search?q={W['PRIV']}", "private topic", listed(W["PRIV"]))
rows("search", S + "/api/search", f"/api/search?q={W['COMM']}", "private-folder comment", listed(W["COMM"]))
for word, thing in (("HID", "hidden post"), ("DEL", "deleted post"), ("PEND", "pending post")):
    rows("search", S + "/api/search", f"/api/search?q={W[word]}", thing, everyone(200, (), [W[word]]))
rows("search", S + "/api/search", f"/api/search?q={W['ANON']}", "anonymous post", everyone(200, [W["ANON"]], [AUTHOR]))
rows("search", S + "/api/search", f"/api/search?q=@{AUTHOR}", "anonymous post", everyone(200, (), [W["ANON"]]))
rows("search", S + "/api/search", f"/api/search?q=@{AUTHOR}", "private topic", listed(W["PRIV"]))
rows("search", S + "/search", f"/search?q={W['PRIV']}", "private topic", listed(MARK_PRIV))
rows(
    "search",
    S + "/search",
    f"/search?q={W['ANON']}",
    "anonymous post",
    split(NOT_AUTHOR, E(200, [MARK_ANON], [AUTHOR]), E(200, [MARK_ANON])),
)

# --- notifications -------------------------------------------------------------------------------------------------
N = "notify GET "
NOTES_RULE = {
    "author": E(200, [W["PRIV"]]),  # a group member's reply in the private topic
    "member": E(200, [W["MELTOPIC"]], [AUTHOR]),  # the anonymous reply to Mel's topic names nobody
    "outsider": E(200, (), [W["PRIV"], W["PRIVREPLY"]]),  # mentioned in a topic they may not read
    "removed": E(200, (), [W["PRIV"], W["PRIVREPLY"]]),  # mentioned after leaving the group
}
for route, url, page in (
    (N + "/api/notifications", "/api/notifications", False),
    (N + "/notifications", "/notifications", True),
):
    rows(
        "notifications",
        route,
        url,
        "notifications",
        lambda v, page=page: (
            NOTES_RULE.get(v)
            or (
                E(303 if page else 401) if v in SIGNED_OUT else E(200, (), [W["PRIV"]]) if v not in INSIDERS else E(200)
            )
        ),
    )
rows(
    "notifications",
    N + "/notifications/{id}",
    "/notifications/{author_note}",
    "someone else's notification",
    split(frozenset({"author"}), E(303), E(404), anonymous=E(303), suspended=E(303)),
)
rows("notifications", N + "/api/me/preferences", "/api/me/preferences", "own preferences", members_only(page=False))
rows("notifications", N + "/preferences", "/preferences", "own preferences", members_only(page=True))
rows(
    "notifications",
    N + "/api/watch",
    "/api/watch?target=topic:{priv_topic}",
    "private topic",
    split(INSIDERS, E(200), E(404), anonymous=E(401), suspended=E(401)),
)
for path in ("/dev/mail", "/dev/mail/0"):
    rows(
        "notifications",
        N + path.replace("/0", "/{index}"),
        path,
        "development mailbox (off: SMTP or not all-in-one)",
        everyone(404),
    )

# --- live channels, subscribed now and replayed from before the world was made -------------------------------------
L = "notify WS /live"
CHANNEL_IS_PRIVATE = split(INSIDERS, E("events", ['"post_id": {priv_reply},']), E("forbidden"))
for replay in (False, True):
    surface = "live replay" if replay else "live"
    rows(
        surface,
        L,
        "topic:{priv_topic}",
        "private topic",
        CHANNEL_IS_PRIVATE if replay else split(INSIDERS, E("subscribed"), E("forbidden")),
    )
    rows(
        surface,
        L,
        "category:{priv_cat}",
        "private category",
        CHANNEL_IS_PRIVATE if replay else split(INSIDERS, E("subscribed"), E("forbidden")),
    )
    public = (
        everyone("events", ['"post_id": {pub_post},'], ['"post_id": {pend_post},'])
        if replay
        else everyone("subscribed")
    )
    rows(surface, L, "topic:{pub_topic}", "public topic", public)
    rows(
        surface,
        L,
        "user:{user_author}",
        "someone's notifications",
        split(
            frozenset({"author"}),
            E("events", ["notification.count"]),
            E("forbidden"),
            anonymous=E("unauthorized"),
            suspended=E("unauthorized"),
        ),
    )
rows(
    "live replay", L, "topic:{anon_topic}", "anonymous post", everyone("events", ['"post_id": {anon_post},'], [AUTHOR])
)
rows(
    "live replay",
    L,
    "latest",
    "private topic",
    split(
        INSIDERS,
        E("events", ['"topic_id": {priv_topic},']),
        E("events", ['"topic_id": {pub_topic},'], ['"topic_id": {priv_topic},']),
    ),
)

# --- the weekly digest each member would get -----------------------------------------------------------------------
DIGEST_RULE = split(
    INSIDERS, E("built", [W["PRIV"]]), E("built", (), [W["PRIV"], W["PRIVDOC"]]), suspended=E("not wanted")
)
rows("digest", "", "weekly digest", "private topic", DIGEST_RULE, [v for v in VIEWERS if v != "anonymous"])
rows(
    "digest",
    "",
    "weekly digest",
    "anonymous post",
    lambda v: E("not wanted") if v == "suspended" else E("built", (), [AUTHOR] if v != "author" else ()),
    [v for v in VIEWERS if v != "anonymous"],
)

# --- private messages ----------------------------------------------------------------------------------------------
# The author and the group member talk (CONVO); the member writes to the moderators (MODBOX); the member reported
# the outsider's fifth message (REPORTED): moderators see it and the three before on its review item, never the
# first (EARLY), and read no conversation they are not in, admins included.
CONVO_MEMBERS = frozenset({"author", "group_member"})
MODBOX_READERS = frozenset({"member"}) | STAFF
TALKERS = frozenset({"member", "outsider"})


def in_conversation(who: frozenset[str], *words: str, page: bool, ok: int = 200) -> Rule:
    """A conversation: its members (and staff for the moderators' inbox) read it; everyone else 404."""
    out = 303 if page else 401
    return split(who, E(ok, words), E(404, (), words), anonymous=E(out), suspended=E(out))


def inbox(who: frozenset[str], *words: str, page: bool) -> Rule:
    """A member's own list: it names a conversation only to those in it."""
    out = 303 if page else 401
    return split(who, E(200, words), E(200, (), words), anonymous=E(out), suspended=E(out))


for page, base in ((True, P), (False, A)):
    surface, prefix = ("page", "") if page else ("api", "/api")
    route = base + ("/messages" if page else "/conversations")
    url = "/messages" if page else "/api/conversations"
    rows(surface, route, url, "private conversation", inbox(CONVO_MEMBERS, W["CONVO"], page=page))
    rows(surface, route, url, "moderators' inbox", inbox(frozenset({"member"}), W["MODBOX"], page=page))
    one = route + ("/{id}" if page else "/{id:int}")
    rows(
        surface, one, f"{url}/{{convo}}", "private conversation", in_conversation(CONVO_MEMBERS, W["CONVO"], page=page)
    )
    rows(
        surface, one, f"{url}/{{modbox}}", "moderators' inbox", in_conversation(MODBOX_READERS, W["MODBOX"], page=page)
    )
    early = (W["EARLY"],) if page else ()  # the API's conversation has no messages: they have rows below
    rows(surface, one, f"{url}/{{talk}}", "reported message", in_conversation(TALKERS, *early, page=page))
    moderators = route + "/moderators"
    # not there for members (404): the inbox is staff's, and members write to it from their own
    rows(surface, moderators, f"{url}/moderators", "moderators' inbox", in_conversation(STAFF, W["MODBOX"], page=page))
rows(
    "api",
    A + "/conversations/{id:int}/messages",
    "/api/conversations/{convo}/messages",
    "private conversation",
    in_conversation(CONVO_MEMBERS, W["CONVO"], page=False),
)
rows(
    "api",
    A + "/conversations/{id:int}/messages",
    "/api/conversations/{talk}/messages",
    "reported message",
    in_conversation(TALKERS, W["EARLY"], W["REPORTED"], page=False),
)
rows(
    "page",
    P + "/messages/{id}/after/{message_id}",
    "/messages/{convo}/after/{convo_message}",
    "private conversation",
    in_conversation(CONVO_MEMBERS, W["CONVO"], page=True),
)
rows(
    "page",
    P + "/messages/{id}/messages/{message_id}/report",
    "/messages/{talk}/messages/{reported_message}/report",
    "reported message",
    # its author may not report it (403, as for a post), nor anyone twice (409); to others it does not exist
    split(
        frozenset({"member"}),
        E(409),  # the member reported it already
        E(404, (), [W["REPORTED"]]),
        outsider=E(403),
        anonymous=E(303),
        suspended=E(303),
    ),
)
rows("page", P + "/messages/new", "/messages/new", "new message form", members_only(page=True))
rows("page", P + "/account/messages", "/account/messages", "own messaging settings", members_only(page=True))
rows("api", A + "/me/messaging", "/api/me/messaging", "own messaging settings", members_only(page=False))
rows("api", A + "/me/blocks", "/api/me/blocks", "own blocks", members_only(page=False))
rows("api", A + "/me/badges", "/api/me/badges", "own badges to show", members_only(page=False))
REPORTED_ITEM = split(STAFF, E(200, [W["REPORTED"]], [W["EARLY"]]), E(403, (), [W["REPORTED"]]))
rows(
    "page",
    P + "/review/{id}",
    "/review/{message_review}",
    "reported message",
    lambda v: E(401) if v in SIGNED_OUT else REPORTED_ITEM(v),  # as /review (STAFF_PAGE)
)
rows(
    "api",
    A + "/review/{id:int}",
    "/api/review/{message_review}",
    "reported message",
    lambda v: E(401) if v in SIGNED_OUT else REPORTED_ITEM(v),
)
for word, who, thing in (
    ("CONVO", CONVO_MEMBERS, "private conversation"),
    ("MODBOX", MODBOX_READERS, "moderators' inbox"),
    ("REPORTED", TALKERS, "reported message"),
):
    found = split(who, E(200, [W[word]]), E(200, (), [W[word]]))
    rows("search", S + "/api/search", f"/api/search?q={W[word]}", thing, found)
    mark = f"<mark>{W[word]}</mark>"  # the page repeats the query in its search box
    rows("search", S + "/search", f"/search?q={W[word]}", thing, split(who, E(200, [mark]), E(200, (), [mark])))
for route, url, page in (
    (N + "/api/notifications", "/api/notifications", False),
    (N + "/notifications", "/notifications", True),
):
    rows("notifications", route, url, "private conversation", inbox(CONVO_MEMBERS, W["CONVO"], page=page))
for replay in (False, True):
    surface = "live replay" if replay else "live"
    # Members of a conversation follow it: the replay names new messages, never their words; anyone else,
    # a visitor included, is refused (the channel's existence is no one else's business).
    for channel, who, word, thing in (
        ("conversation:{convo}", CONVO_MEMBERS, W["CONVO"], "private conversation"),
        ("conversation:{modbox}", MODBOX_READERS, W["MODBOX"], "moderators' inbox"),
    ):
        yes = E("events", ["message.created"], [word]) if replay else E("subscribed")
        rows(surface, L, channel, thing, split(who, yes, E("forbidden")))
    out = {v: E("unauthorized") for v in SIGNED_OUT}
    rows(
        surface,
        L,
        "review",
        "the review queue",
        split(STAFF, E("subscribed", (), [W["REPORTED"]]), E("forbidden"), **out),
    )

# --- the safeguarding loop, outreach and revisions -----------------------------------------------------------------
rows("api", A + "/review/counts", "/api/review/counts", "the review queue", role_only(STAFF, page=False))
rows(
    "page",
    P + "/review/{id}/outreach",
    "/review/{review}/outreach",
    "pending post (not a safeguarding item: nobody reaches out from it)",
    lambda v: E(303) if v in SIGNED_OUT else E(422) if v in STAFF else E(404),
)
rows(
    "page",
    P + "/review/{id}/pickup",
    "/review/{review}/pickup",
    "pending post (not a safeguarding item: never picked up)",
    lambda v: E(401) if v in SIGNED_OUT else E(409) if v in STAFF else E(403, (), [W["PEND"]]),
)
rows(
    "page",
    P + "/admin/outreach-template",
    "/admin/outreach-template",
    "outreach template",
    role_only(frozenset({"admin"}), page=True),
)
rows(
    "page",
    P + "/posts/{id}/revisions/{revision}/redact",
    "/posts/{priv_post}/revisions/1/redact",
    "private topic (its only version: the current one, never redacted)",
    split(AUTHOR_STAFF, E(409), E(404), **{v: E(403) for v in READERS_ONLY}, **{v: E(303) for v in SIGNED_OUT}),
)

# --- routes that are not read surfaces: each says why ------------------------------------------------------------
# Writes (POST, PUT, PATCH, DELETE): they change things rather than show them; each package's own
# tests check who may make them. A GET beside them that shows something has rows above.
WRITES = """
forum PUT /api/me/badges
forum POST /me/badges
forum POST /account/messages
forum POST /account/messages/block
forum POST /account/messages/unblock
forum POST /messages/new
forum POST /messages/{id}
forum POST /messages/{id}/accept
forum POST /messages/{id}/decline
forum POST /messages/{id}/invite
forum POST /messages/{id}/leave
forum POST /messages/{id}/messages/{message_id}/react
forum POST /messages/{id}/messages/{message_id}/report
forum POST /api/conversations
forum POST /api/conversations/{id:int}/accept
forum POST /api/conversations/{id:int}/decline
forum POST /api/conversations/{id:int}/invitations
forum POST /api/conversations/{id:int}/leave
forum POST /api/conversations/{id:int}/messages
forum POST /api/conversations/{id:int}/read
forum POST /api/messages/{id:int}/flags
forum PUT /api/messages/{id:int}/reactions/{kind}
forum DELETE /api/messages/{id:int}/reactions/{kind}
forum PUT /api/me/messaging
forum PUT /api/me/blocks/{username}
forum DELETE /api/me/blocks/{username}
forum POST /admin/outreach-template
forum POST /review/{id}/outreach
forum POST /review/{id}/pickup
forum POST /api/review/{id:int}/pickup
forum DELETE /api/review/{id:int}/pickup
forum POST /admin/members/{id}/duties
forum PUT /api/admin/members/{id}/duties
forum POST /posts/{id}/revisions/{revision}/redact
forum POST /api/posts/{id}/revisions/{revision}/redact
forum POST /admin/safeguarding
forum POST /admin/watched-words
forum POST /admin/watched-words/{id}/delete
forum POST /api/admin/safeguarding-phrases
forum DELETE /api/admin/safeguarding-phrases/{phrase}
forum POST /api/admin/watched-words
forum DELETE /api/admin/watched-words/{id}
forum POST /api/badges
forum POST /api/categories
forum PATCH /api/categories/{id}
forum DELETE /api/categories/{id}
forum PUT /api/categories/order
forum POST /api/categories/{id}/archive
forum DELETE /api/categories/{id}/archive
forum POST /admin/categories/new
forum POST /admin/categories/{id}/edit
forum POST /admin/categories/{id}/move
forum POST /admin/categories/{id}/archive
forum POST /admin/categories/{id}/unarchive
forum POST /admin/categories/{id}/delete
forum DELETE /api/document-comments/{id:int}
forum PATCH /api/document-comments/{id:int}
forum POST /api/document-comments/{id:int}/flags
forum POST /api/document-comments/{id:int}/reactions
forum DELETE /api/document-comments/{id:int}/reactions/{kind}
forum POST /api/documents
forum DELETE /api/documents/{id:int}
forum PATCH /api/documents/{id:int}
forum POST /api/documents/{id:int}/comments
forum POST /api/documents/{id:int}/versions
forum POST /api/folders
forum DELETE /api/folders/{id:int}
forum PATCH /api/folders/{id:int}
forum POST /api/group-invites/accept
forum POST /api/groups
forum PATCH /api/groups/{id:int}
forum POST /api/groups/{id:int}/invites
forum DELETE /api/groups/{id:int}/invites/{invite_id:int}
forum POST /api/groups/{id:int}/members
forum DELETE /api/groups/{id:int}/members/{user_id:int}
forum PATCH /api/groups/{id:int}/members/{user_id:int}
forum DELETE /api/groups/{id:int}/membership
forum POST /api/groups/{id:int}/membership
forum POST /api/groups/{id:int}/requests/{user_id:int}
forum PATCH /api/me
forum PUT /api/me/controls
forum POST /api/me/tokens
forum DELETE /api/me/tokens/{token_id}
forum POST /api/me/verify-email
forum POST /api/password-reset
forum POST /api/password-reset/confirm
forum DELETE /api/posts/{id}
forum PATCH /api/posts/{id}
forum POST /api/posts/{id}/appeal
forum POST /api/posts/{id}/flags
forum POST /api/posts/{id}/hide
forum POST /api/posts/{id}/reactions
forum DELETE /api/posts/{id}/reactions/{kind}
forum POST /api/posts/{id}/restore
forum POST /api/posts/{id}/reveal-author
forum POST /api/review/{id:int}
forum DELETE /api/session
forum POST /api/session
forum POST /api/session/revoke-all
forum POST /api/topics
forum POST /api/topics/{id}/moderate
forum POST /api/topics/{id}/posts
forum POST /api/users
forum POST /api/users/verify
forum PUT /api/users/{id}/mute
forum DELETE /api/users/{id}/silence
forum POST /api/users/{id}/silence
forum DELETE /api/users/{id}/suspend
forum POST /api/users/{id}/suspend
forum POST /api/users/{username}/badges
forum DELETE /api/users/{username}/badges/{badge_id}
forum POST /api/webinars
forum PATCH /api/webinars/{id:int}
forum POST /api/webinars/{id:int}/cancel
forum DELETE /api/webinars/{id:int}/registration
forum POST /api/webinars/{id:int}/registration
forum POST /groups/invitations/{token}
forum POST /groups/new
forum POST /groups/{slug}/edit
forum POST /groups/{slug}/invites
forum POST /groups/{slug}/invites/{user_id}/revoke
forum POST /groups/{slug}/join
forum POST /groups/{slug}/leave
forum POST /groups/{slug}/members
forum POST /groups/{slug}/members/{user_id}/owner
forum POST /groups/{slug}/members/{user_id}/remove
forum POST /groups/{slug}/requests/{user_id}
forum POST /library/comments/{id}/delete
forum POST /library/comments/{id}/edit
forum POST /library/comments/{id}/react
forum POST /library/documents/{id}/comments
forum POST /library/documents/{id}/delete
forum POST /library/documents/{id}/edit
forum POST /library/folders/new
forum POST /library/folders/{id}/edit
forum POST /library/upload
forum POST /library/upload/{id}
forum POST /login
forum POST /logout
forum POST /me/controls
forum POST /me/edit
forum POST /me/tokens
forum POST /me/verify-email
forum POST /members/badges
forum POST /new-topic
forum POST /posts/{id}/appeal
forum POST /posts/{id}/delete
forum POST /posts/{id}/edit
forum POST /posts/{id}/flag
forum POST /posts/{id}/moderate
forum POST /posts/{id}/reveal-author
forum POST /register
forum POST /reset
forum POST /reset/confirm
forum POST /review/members/{username}/sanction
forum POST /review/{id}
forum POST /t/{id}/posts
forum POST /t/{id}/posts/{post_id}/react
forum POST /topics/{id}/moderate
forum POST /u/{username}/mute
forum POST /webinars/new
forum POST /webinars/{id:int}/cancel
forum POST /webinars/{id:int}/edit
forum POST /webinars/{id:int}/register
forum POST /webinars/{id:int}/unregister
forum POST /admin/members/{id}/role
forum PUT /api/admin/members/{id}/role
forum POST /admin/signups/{id}
forum POST /api/admin/signups/{id:int}
forum POST /admin/invitations
forum POST /admin/invitations/{id}/resend
forum POST /admin/invitations/{id}/withdraw
forum POST /api/admin/invitations
forum DELETE /api/admin/invitations/{id:int}
forum POST /api/admin/invitations/{id:int}/resend
forum POST /admin/settings
forum PATCH /api/admin/settings
notify PUT /api/me/preferences
notify POST /api/notifications/read
notify PUT /api/watch
notify POST /notifications/read
notify POST /notifications/watch
notify POST /preferences
notify POST /unsubscribe
"""
NOTES: dict[str, str] = {route: "write" for route in WRITES.split("\n") if route}
NOTES |= {
    "allinone GET /readyz": "not content: readiness of the three services (migrations, database, Redis)",
    "forum GET /api/openapi.json": "not content: the API's description, the same for everyone",
    "forum GET /healthz": "not content: liveness",
    "forum GET /readyz": "not content: readiness",
    "notify GET /healthz": "not content: liveness",
    "notify GET /readyz": "not content: readiness",
    "search GET /healthz": "not content: liveness",
    "search GET /readyz": "not content: readiness",
    "search GET /metrics": "not content: index freshness figures (counts and lags, no text)",
    "forum MOUNT /static/nhsuk": "not content: the NHS.UK frontend's files",
    "forum MOUNT /static/tica": "not content: tica's own CSS and scripts",
    "forum MOUNT /static/build": "not content: the NHS.UK stylesheet as built for tica (package.json)",
    "forum GET /favicon.ico": "not content: the site's icon",
    "forum GET /login": "not content: the login form",
    "forum GET /register": "not content: the registration form",
    "forum GET /reset": "not content: the password reset form",
    "forum GET /reset/confirm": "not content: the form behind an emailed, signed reset link",
    "forum GET /verify": "not content: the landing of an emailed, signed verification link",
    "forum GET /groups/invitations/{token}": "not content: the landing of an emailed, signed invitation",
    "notify GET /unsubscribe": "not content: the landing of a signed one-click unsubscribe link",
}


# --- the checks ---------------------------------------------------------------------------------------------------


def app_routes(apps: dict[str, Any]) -> set[str]:
    """Every route of the given service apps as "service METHOD path" (HEAD goes with GET), and the
    one the all-in-one app answers itself."""
    found = {"allinone GET /readyz"}
    for service, app in apps.items():
        for route in app.routes:
            if isinstance(route, Route):
                found |= {f"{service} {method} {route.path}" for method in (route.methods or set()) - {"HEAD"}}
            elif isinstance(route, WebSocketRoute):
                found.add(f"{service} WS {route.path}")
            elif isinstance(route, Mount):
                found.add(f"{service} MOUNT {route.path}")
            else:
                found.add(f"{service} {type(route).__name__} {getattr(route, 'path', '?')}")
    return found


def unaccounted(routes: Iterable[str], rows: Iterable[Row], notes: dict[str, str]) -> list[str]:
    """Routes with neither a row in the matrix nor a note."""
    return sorted(set(routes) - {row.route for row in rows} - set(notes))


def unknown(routes: Iterable[str], rows: Iterable[Row], notes: dict[str, str]) -> list[str]:
    """Rows and notes naming a route no app has (a typo, or a route gone)."""
    return sorted(({row.route for row in rows if row.route} | set(notes)) - set(routes))


def test_every_route_is_in_the_matrix(settings):
    """Each route of the forum, notify and search has rows in the matrix or a note saying why not."""
    routes = app_routes(AllInOne(settings, background=False).apps)
    assert unaccounted(routes, ROWS, NOTES) == []
    assert unknown(routes, ROWS, NOTES) == []


def test_the_route_check_finds_a_route_without_a_row(settings):
    """The enumeration catches a route added to an app (self-check of the checking functions)."""
    apps = AllInOne(settings, background=False).apps
    routes = app_routes(apps)
    extra = Starlette(
        routes=[Route("/api/secrets", lambda request: None), WebSocketRoute("/backstage", lambda ws: None)]
    )
    assert unaccounted(routes | app_routes({"forum": extra}), ROWS, NOTES) == [
        "forum GET /api/secrets",
        "forum WS /backstage",
    ]
    assert unaccounted(routes, ROWS, {k: v for k, v in NOTES.items() if k != "forum POST /api/users"}) == [
        "forum POST /api/users"
    ]
    assert unknown(routes - {"forum GET /support"}, ROWS, NOTES) == ["forum GET /support"]


@pytest.fixture(autouse=True)
def clean() -> None:
    """The world is built once for the module (conftest's `clean` would empty it before each test)."""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(migrated, pool, redis):
    async with open_world(migrated, pool, redis) as built:
        built.clients["service"] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=built.app),
            base_url="http://testserver",
            headers=service_headers(migrated),
        )
        built.cache = {}
        yield built


def _params(surfaces: set[str], include: bool) -> list[Any]:
    chosen = [row for row in ROWS if (row.surface in surfaces) == include]
    return [
        pytest.param(row, id=row.id, marks=[pytest.mark.xfail(strict=True, reason=row.leak)] if row.leak else [])
        for row in chosen
    ]


NOT_HTTP = {"live", "live replay", "digest"}


def _check_text(row: Row, world: Any, text: str) -> None:
    lowered = text.lower()
    for word in row.expect.shows:
        assert world.url(word).lower() in lowered, f"{row.viewer} should see {word!r} ({row.thing})"
    for word in row.expect.hides:
        assert world.url(word).lower() not in lowered, f"LEAK? {row.viewer} sees {word!r} ({row.thing})"


async def _get(world: Any, viewer: str, url: str) -> tuple[int, str, str]:
    key = (viewer, url)
    if key not in world.cache:
        response = await world.clients[viewer].get(url)
        world.cache[key] = (
            response.status_code,
            response.content.decode("latin-1"),
            response.headers.get("location", ""),
        )
    return world.cache[key]


@pytest.mark.parametrize("row", _params(NOT_HTTP, include=False))
async def test_http_surface(world, row: Row):
    """Pages, the JSON API, search, notifications, exports, calendar files, downloads and previews."""
    status, text, location = await _get(world, row.viewer, world.url(row.url))
    assert status == row.expect.status, f"{row.viewer} GET {row.url}: {status} {text[:300]}"
    if status == 303 and row.viewer in SIGNED_OUT:
        assert location.startswith("/login"), location
    if row.focus:
        [item] = [i for i in json.loads(text)["items"] if i["id"] == int(world.url(row.focus))]
        text = json.dumps(item)
    _check_text(row, world, text)


@pytest.mark.parametrize("row", _params({"live", "live replay"}, include=True))
async def test_live_channel(world, row: Row):
    """notify's /live socket: subscribing now, and replaying from before the world was made."""
    messages = await live_answer(world, row.viewer, world.url(row.url), replay=row.surface == "live replay")
    errors = [m.get("code") for m in messages if m["type"] == "error"]
    if row.expect.status in ("forbidden", "unauthorized"):
        assert errors == [row.expect.status] and all(m["type"] == "error" for m in messages), messages
    else:
        assert errors == [], messages
        if row.expect.status == "events":
            assert any(m["type"] == "event" for m in messages), messages
    _check_text(row, world, json.dumps(messages))


@pytest.mark.parametrize("row", _params({"digest"}, include=True))
async def test_digest(world, row: Row):
    """The weekly digest a member would get now (built and rendered as the digest job does)."""
    user_id = world.users[row.viewer]
    now = datetime.now(UTC)
    async with world.pool.acquire() as conn:
        member = await projections.fetch_member(conn, user_id)
        prefs = await preferences.get_preferences(conn, user_id)
        if member is None or not digests.wants_digest(member, prefs, now):
            assert row.expect.status == "not wanted"
            return
        index = await digests.ActivityIndex.load(conn, now)
        digest = await digests.build_digest(
            conn, member, frequency="weekly", since=now - timedelta(days=7), index=index, base_url="http://testserver"
        )
    subject, text, html = digests.render_digest(world.settings, digest)
    assert row.expect.status == "built"
    _check_text(row, world, "\n".join((subject, text, html)))


def test_the_matrix_covers_every_viewer_and_state():
    """Each viewer appears, and each state the issue names has rows."""
    assert {row.viewer for row in ROWS} >= set(VIEWERS)
    things = " ".join(row.thing for row in ROWS)
    for state in ("hidden", "deleted", "pending", "anonymous", "private-folder", "private topic", "public"):
        assert state in things, state
    assert len(USERNAMES) == len(VIEWERS) - 1
