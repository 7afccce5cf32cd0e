"""Pages for reading and writing: the latest topics, a topic with its posts,
starting a topic, replying, reacting, editing (with revisions and their diffs) and deleting.
Safety shows here too: the support panel after a post that matched a safeguarding phrase,
"waiting for review" notices, hidden posts with their reason (to their author), posts of
ignored members folded away, content notes folded or open as each member chose, and
"Anonymous member" for pseudonymous posts. Moderation pages live in moderation/pages.py; each
post's markup and its cache in fragments.py.

Every write calls the same check-then-do functions as the JSON API (posts.py, revisions.py,
moves.py) and validates with its schemas (api.py); who may do what comes from access.py. An
ApiError for a field becomes the NHS.UK error summary on the form. The categories' own pages are
in category_pages.py. Pages work without
JavaScript; shared/static/js/tica.js only adds small enhancements.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
from markupsafe import Markup, escape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.forum import access
from services.forum.directory import directory
from services.forum.moderation import screening
from services.forum.topics import api, categories, moves, posts, revisions, topics
from services.forum.topics.fragments import (
    ANONYMOUS_PERSON,
    Rights,
    author_of,
    person,
    post_facts,
    post_fragment,
    shown,
    viewing,
)
from services.forum.writings import writings
from services.forum.writings.targets import POST
from shared import site_settings
from shared.api import path_int, query_int
from shared.pages import Pages, cookies_secure, csrf_token, form_data, form_errors, form_text, render, signed_in, when
from shared.sessions import Session
from shared.web import ApiError, runtime, viewer

pages = Pages()

KIND_COLOURS = {"discussion": "blue", "blog": "green", "case_study": "aqua-green", "narrative": "purple"}
FIELD_LABELS = {
    "category_id": "Category",
    "kind": "Kind of topic",
    "title": "Title",
    "body": "Your post",
    "content_note": "Content note",
    "edit_reason": "Reason for the change",
    "reply_to": "The post you reply to",
    "anonymous": "Posting anonymously",
}
HIDDEN_FIELDS = {"reply_to": "body"}  # a hidden field's errors point at the text box instead
# After posting, what the topic page says (?notice=): the support panel, "waiting for review", or both.
NOTICES = ("support", "pending", "held")
DRAFT_SENT_COOKIE = "tica_draft_sent"  # read (and expired) by shared/static/js/drafts.js


def topic_view(row: asyncpg.Record, who: Session | None) -> dict[str, Any]:
    """A topic as the lists and the topic page show it."""
    return {
        "id": row["id"],
        "title": row["title"],
        "url": topics.topic_url(row["id"], row["slug"]),
        "kind": row["kind"],
        "kind_label": topics.KIND_LABELS[row["kind"]],
        "kind_colour": KIND_COLOURS[row["kind"]],
        "category": {
            "id": row["category_id"],
            "name": row["category_name"],
            "url": f"/c/{row['category_slug']}",
            "colour": row["category_colour"],
        },
        "author": author_of(row, who),
        "replies": max(0, row["posts_count"] - 1),
        "reactions": row["reactions_count"],
        "created": when(row["created_at"]),
        "last_activity": when(row["last_posted_at"]),
        "pinned": row["pinned"],
        "closed": row["closed"],
        "content_note": row["content_note"],
        "unread": row["unread"] if who else None,
        "new": bool(row["is_new"]) if who else False,
        "status": row["status"],
        "allow_anonymous": row["allow_anonymous"],
        "anonymous": row["anonymous"],
        "own": who is not None and who.user_id == row["author_id"],
        "archived": row["category_archived_at"] is not None,
    }


def _posted(request: Request, who: Session, draft: str, location: str) -> Response:
    """The redirect after a successful post, telling drafts.js (shared/static/js/drafts.js) on the
    next page to forget the member's draft of this form: the cookie names the member and the form,
    never the text, which stays in the member's browser."""
    response = RedirectResponse(location, status_code=303)
    response.set_cookie(
        DRAFT_SENT_COOKIE,
        f"{who.user_id}.{draft}",
        max_age=300,
        httponly=False,
        samesite="lax",
        secure=cookies_secure(request),
        path="/",
    )
    return response


def _errors(exc: ApiError, field: str) -> dict[str, Any]:
    """An action's ApiError as the form's error summary, fields named as the forms label them."""
    return form_errors(exc, field, labels=FIELD_LABELS, anchors=HIDDEN_FIELDS)


def _text(form: FormData, name: str) -> str:
    return form_text(form, name, strip=False)


def _optional_int(form: FormData, name: str) -> int | str | None:
    """A whole number from a form field; the text itself when it is not one (the schema then says why)."""
    value = _text(form, name).strip()
    if not value:
        return None
    return int(value) if value.isdigit() and len(value) < 19 else value


def _login_redirect(request: Request, target: str | None = None) -> Response:
    """To the login page, coming back afterwards to `target` (by default this page)."""
    target = target or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _list_url(base: str, query: topics.TopicQuery, **changes: Any) -> str:
    values = {"kind": query.kind, "sort": query.sort, "page": query.page, **changes}
    params = {
        k: v for k, v in values.items() if v and not (k == "sort" and v == "latest") and not (k == "page" and v == 1)
    }
    return base + ("?" + urlencode(params) if params else "")


def page_items(base: str, current: int, last: int) -> list[dict[str, Any]]:
    """Numbered pagination: first, last, and the pages around the current one, with gaps."""
    shown = sorted({1, last, current - 1, current, current + 1} & set(range(1, last + 1)))
    items: list[dict[str, Any]] = []
    for number in shown:
        if items and number - items[-1]["number"] > 1:
            items.append({"ellipsis": True, "number": 0})
        items.append(
            {"number": number, "href": f"{base}?page={number}" if number > 1 else base, "current": number == current}
        )
    return items


# --- diffs -------------------------------------------------------------------------------------

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


def diff_html(old: str, new: str) -> Markup:
    """Word-level differences as <del>/<ins> markup; every piece of text is escaped."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(str(escape("".join(a[i1:i2]))))
            continue
        if op in ("delete", "replace"):
            out.append(f'<del><span class="nhsuk-u-visually-hidden">removed: </span>{escape("".join(a[i1:i2]))}</del>')
        if op in ("insert", "replace"):
            out.append(f'<ins><span class="nhsuk-u-visually-hidden">added: </span>{escape("".join(b[j1:j2]))}</ins>')
    return Markup("".join(out))  # noqa: S704 - built from escaped pieces only


# --- lists ---------------------------------------------------------------------------------------


async def topic_list_context(
    conn: asyncpg.Connection, who: Session | None, base: str, query: topics.TopicQuery
) -> dict[str, Any]:
    rows, has_next = await topics.list_topics(conn, who, query)
    views = [topic_view(row, who) for row in rows]
    return {
        "topics": shown(views),  # attributes, as the templates read them (see Shown)
        "new_count": sum(1 for t in views if t["new"]),
        "topic_query": query,  # not "query": the layout's search box shows that
        "kinds": [
            {
                "value": k,
                "label": topics.KIND_LABELS[k],
                "href": _list_url(base, query, kind=k, page=1),
                "current": query.kind == k,
            }
            for k in topics.KINDS
        ],
        "all_kinds_href": _list_url(base, query, kind=None, page=1),
        "sorts": [
            {
                "value": s,
                "label": "Latest" if s == "latest" else "Top",
                "current": query.sort == s,
                "href": _list_url(base, query, sort=s, page=1),
            }
            for s in topics.SORTS
        ],
        "previous_url": _list_url(base, query, page=query.page - 1) if query.page > 1 else None,
        "next_url": _list_url(base, query, page=query.page + 1) if has_next else None,
    }


@pages.get("/")
async def home_page(request: Request) -> Response:
    """The latest (or top) topics, filtered by kind; what is new since the member's last visit."""
    who = await viewer(request)
    query = topics.parse_topic_query(request)
    async with runtime(request).pool.acquire() as conn:
        context = await topic_list_context(conn, who, "/", query)
    if not context["topics"] and query.page > 1:
        raise ApiError(404, "not_found", "There is no such page of topics.")
    if who is None:  # the welcome admins write (shared/site_settings.py), rendered once per text
        context["welcome_html"] = await site_settings.welcome_html(runtime(request))
    return await render(request, "topics/home.html", context)


# --- starting a topic --------------------------------------------------------------------------


def _category_choices(rows: list[asyncpg.Record], chosen: Any) -> list[dict[str, Any]]:
    """The new-topic form's categories: those that take posts, each subcategory after its parent and
    named with it ("Parent > Subcategory", with a single angle quote)."""
    choices = []
    for parent, children in categories.arranged(rows):
        for r in (parent, *children):
            text = r["name"] if r is parent else f"{parent['name']}\u00a0\u203a {r['name']}"
            choices.append({"value": str(r["id"]), "text": text, "selected": str(r["id"]) == str(chosen)})
    return choices


async def _new_topic_context(conn: asyncpg.Connection, who: Session, form: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in await categories.list_readable(conn, who) if categories.takes_posts(r)]
    blocked, blocked_message = "", ""
    try:
        await posts.check_can_post(conn, who)
    except ApiError as exc:
        blocked, blocked_message = exc.code, exc.message
    return {
        "categories": _category_choices(rows, form.get("category_id")),
        "anonymous_categories": [r["name"] for r in rows if r["allow_anonymous"]],
        "kinds": [{"value": k, "text": topics.KIND_LABELS[k]} for k in topics.KINDS],
        "form": form,
        "blocked": blocked,
        "blocked_message": blocked_message,
        "note_max": posts.CONTENT_NOTE_MAX,
    }


async def _new_topic_start(conn: asyncpg.Connection, who: Session, wanted: str) -> dict[str, Any]:
    """The new-topic form's first values: the category asked for (?category=, when the viewer may post
    in it) and its default kind."""
    start = {"category_id": "", "kind": "discussion"}
    if wanted.isdigit() and len(wanted) < 19:
        row = await categories.fetch_category(conn, int(wanted))
        if row is not None and access.groups_readable(who, row["group_ids"]) and categories.takes_posts(row):
            start = {"category_id": wanted, "kind": row["default_kind"]}
    return start


@pages.form("/new-topic")
@signed_in(viewer, _login_redirect)
async def new_topic_page(request: Request, who: Session) -> Response:
    """Start a topic: category, kind, title, body and an optional content note."""
    if request.method == "GET":
        async with runtime(request).pool.acquire() as conn:
            start = await _new_topic_start(conn, who, request.query_params.get("category", ""))
            context = await _new_topic_context(conn, who, start)
        return await render(request, "topics/new_topic.html", context)
    submitted = await form_data(request)
    form: dict[str, Any] = {
        name: _text(submitted, name) for name in ("category_id", "kind", "title", "body", "content_note")
    }
    data: dict[str, Any] = {
        **form,
        "category_id": _optional_int(submitted, "category_id"),
        "kind": form["kind"] or None,
        "anonymous": _anonymous_choice(submitted),
    }
    form["anonymous"] = bool(data["anonymous"])
    rt = runtime(request)
    try:
        clean = api.TOPIC_IN.validate(data)
        async with rt.pool.acquire() as conn, conn.transaction():
            row, written = await posts.start_topic(conn, who, clean, screening.PostingRules.of(rt))
            notice = _notice(written)
    except ApiError as exc:
        if exc.status == 404:  # a category that is not (or no longer) there
            exc = ApiError(422, "invalid", exc.message, {"category_id": "must be one of the categories listed"})
        if exc.status not in (409, 422, 429):
            raise
        async with rt.pool.acquire() as conn:
            context = await _new_topic_context(conn, who, form)
        field = "body" if exc.code == "blocked_word" else "title"
        return await render(
            request,
            "topics/new_topic.html",
            {**context, **_errors(exc, field)},
            status=429 if exc.status == 429 else 422,
            headers=exc.headers,
        )
    suffix = f"?notice={notice}" if notice else ""
    return _posted(request, who, "new-topic", topics.topic_url(row["id"], row["slug"]) + suffix)


# --- a topic -------------------------------------------------------------------------------------


async def _reply_defaults(
    conn: asyncpg.Connection, who: Session | None, topic_id: int, request: Request
) -> dict[str, Any]:
    """The reply form's starting values from ?reply_to= or ?quote= (ignored unless a post of this topic)."""
    wanted = {"reply_to": request.query_params.get("reply_to"), "quote": request.query_params.get("quote")}
    for name, value in wanted.items():
        if not value or not value.isdigit() or len(value) > 18:
            continue
        row = await posts.fetch_post(conn, int(value))
        if row is None or row["topic_id"] != topic_id or row["status"] != "visible":
            continue
        said = topics.ANONYMOUS_NAME if row["anonymous"] else row["username"]
        defaults: dict[str, Any] = {
            "reply_to": row["id"],
            "reply_to_label": f"#{row['post_number']} by {said}",
            "body": "",
        }
        if name == "quote":
            defaults["body"] = f'[quote="{said}, post:{row["id"]}, topic:{topic_id}"]\n{row["raw"]}\n[/quote]\n\n'
        return defaults
    return {"reply_to": None, "body": ""}


def _may_reply(who: Session | None, topic: dict[str, Any], row: asyncpg.Record) -> tuple[str, str]:
    """Why the reply form is not shown ("" when it is), and what to tell the member; `row` is the
    topic as topics.topic_row gave it, with the viewer's standing (as posts.check_can_post reads it)."""
    reason = access.may_reply(who, closed=topic["closed"], status=topic["status"], archived=topic["archived"])
    if reason:
        return reason, categories.ARCHIVED_MESSAGE if reason == "archived" else ""
    refusal = posts.posting_refusal(
        exists=row["viewer_exists"],
        verified=row["viewer_verified"],
        silenced=row["viewer_silenced"],
        silenced_until=row["viewer_silenced_until"],
        silenced_reason=row["viewer_silenced_reason"],
    )
    return (refusal.code, refusal.message) if refusal is not None else ("", "")


async def _topic_context(
    request: Request,
    conn: asyncpg.Connection,
    who: Session | None,
    topic_id: int,
    page: int,
    row: asyncpg.Record | None = None,
) -> dict[str, Any]:
    """The topic page's values; `row` is the topic as topics.topic_row gave it, when already fetched."""
    row, rows, has_next = await posts.topic_page(conn, who, topic_id, page, row)
    topic = topic_view(row, who)
    if rows and not has_next:  # the last page: no need to count
        total = (page - 1) * posts.POSTS_PER_PAGE + len(rows)
    else:
        total = await posts.count_topic_posts(conn, who, topic_id)
    last_page = max(1, (total - 1) // posts.POSTS_PER_PAGE + 1)
    if page > last_page:
        raise ApiError(404, "not_found", "This topic does not have that many pages.")
    seen = viewing(who, row)
    badges = await directory.shown_badges(conn, [r["author_id"] for r in rows if not r["anonymous"]])
    asked: dict[tuple[str, int], Rights] = {}  # access.py's answers per status and author on this page
    csrf_html = str(escape(csrf_token(request, who)))
    cannot_reply, blocked_message = _may_reply(who, topic, row)
    notice = request.query_params.get("notice") if who is not None else None
    form = await _reply_defaults(conn, who, topic_id, request)
    form.setdefault("anonymous", topic["anonymous"] and topic["own"])
    return {
        "topic": shown(topic),  # attributes, as the template reads them (see Shown)
        # The posts' markup as one piece: autoescaped fragments and an escaped token.
        "posts_html": Markup(  # noqa: S704
            "\n".join(
                post_fragment(
                    request,
                    r,
                    post_facts(r, who, seen, asked),
                    topic,
                    not cannot_reply,
                    csrf_html,
                    () if r["anonymous"] else badges.get(r["author_id"], ()),
                )
                for r in rows
            )
        ),
        "page": page,
        "page_links": page_items(topic["url"], page, last_page) if last_page > 1 else [],
        "previous_url": f"{topic['url']}?page={page - 1}" if page > 1 else None,
        "next_url": f"{topic['url']}?page={page + 1}" if page < last_page else None,
        "last_page": last_page,
        "cannot_reply": cannot_reply,
        "blocked_message": blocked_message,
        "form": shown(form),
        "notice": notice if notice in NOTICES else None,
        "support": screening.support_panel(held=notice == "held") if notice in ("support", "held") else None,
        "staff": access.is_staff(who),
    }


@pages.get("/t/{id}")
async def topic_without_slug(request: Request) -> Response:
    """/t/{id} goes to the topic's full address."""
    topic_id = path_int(request, "id")
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        topic = await topics.readable_topic(conn, who, topic_id)
    return RedirectResponse(topics.topic_url(topic.id, topic.slug), status_code=301)


async def _post_location(
    conn: asyncpg.Connection,
    who: Session | None,
    post: asyncpg.Record,
    topic: topics.TopicContext,
    notice: str | None = None,
) -> str:
    page = await posts.page_of_post(conn, who, post)
    params = {"page": page if page > 1 else None, "notice": notice}
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{topics.topic_url(topic.id, topic.slug)}{'?' + query if query else ''}#post-{post['post_number']}"


def _notice(written: posts.Written) -> str | None:
    """What the topic page tells the author after posting: support offered, waiting for review, or both."""
    if written.post["status"] == "pending":
        return "held" if written.support else "pending"
    return "support" if written.support else None


def _anonymous_choice(form: FormData) -> bool | None:
    """The "post anonymously" checkbox: None when the form did not offer it."""
    if not _text(form, "anonymous_offered"):
        return None
    return _text(form, "anonymous") == "1"


@pages.get("/t/{id}/posts")
async def reply_form_address(request: Request) -> Response:
    """The reply form's address, opened (a page refused with errors, reloaded or bookmarked, without
    JavaScript): the topic, where the reply form is, rather than a 404."""
    topic_id = path_int(request, "id")
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        topic = await topics.readable_topic(conn, who, topic_id)
    return RedirectResponse(topics.topic_url(topic.id, topic.slug) + "#reply", status_code=303)


@pages.post("/t/{id}/posts")
async def reply_submit(request: Request) -> Response:
    """The reply form: write the reply, or show the page again with what needs fixing."""
    topic_id = path_int(request, "id")
    who = await viewer(request)
    form = await form_data(request)
    if who is None:
        return _login_redirect(request, f"/t/{topic_id}")
    data = {
        "body": _text(form, "body"),
        "reply_to": _optional_int(form, "reply_to"),
        "content_note": _text(form, "content_note"),
        "anonymous": _anonymous_choice(form),
    }
    rt = runtime(request)
    try:
        clean = api.REPLY_IN.validate(data)
        async with rt.pool.acquire() as conn, conn.transaction():
            written = await posts.reply(conn, who, topic_id, clean, screening.PostingRules.of(rt))
            topic = await topics.readable_topic(conn, who, topic_id)
            location = await _post_location(conn, who, written.post, topic, _notice(written))
    except ApiError as exc:
        if exc.status not in (409, 422, 429):
            raise
        async with rt.pool.acquire() as conn:
            last = max(1, (await posts.count_topic_posts(conn, who, topic_id) - 1) // posts.POSTS_PER_PAGE + 1)
            context = await _topic_context(request, conn, who, topic_id, last)
        context["form"] = {
            "body": data["body"],
            "content_note": data["content_note"],
            "reply_to": data["reply_to"] if isinstance(data["reply_to"], int) else None,
            "anonymous": bool(data["anonymous"]),
        }
        return await render(
            request,
            "topics/topic.html",
            {**context, **_errors(exc, "body")},
            status=429 if exc.status == 429 else 422,
            headers=exc.headers,
        )
    return _posted(request, who, f"reply-{topic_id}", location)


@pages.post("/t/{id}/posts/{post_id}/react")
async def react_submit(request: Request) -> Response:
    """A reaction button: give the reaction, or take it back when already given."""
    topic_id, post_id = path_int(request, "id"), path_int(request, "post_id")
    who = await viewer(request)
    form = await form_data(request)
    if who is None:
        return _login_redirect(request, f"/t/{topic_id}")
    kind = _text(form, "kind")
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        post, topic = await posts.readable_post(conn, who, post_id)
        if topic.id != topic_id:
            raise ApiError(404, "not_found", "We could not find that post.")
        given = await posts.my_reactions(conn, who, [post_id])
        if kind in given.get(post_id, set()):
            await writings.unreact(conn, who, POST, post_id, kind)
        else:
            await writings.react(conn, who, POST, post_id, kind)
        location = await _post_location(conn, who, post, topic)
    return RedirectResponse(location, status_code=303)


@pages.get("/t/{slug}/{id}")
async def topic_page(request: Request) -> Response:
    """A topic and one page of its posts, with the reply form; a wrong slug redirects (301)."""
    topic_id = path_int(request, "id")
    who = await viewer(request)
    page = query_int(request, "page", 1)
    async with runtime(request).pool.acquire() as conn:
        # topic_row checks what posts.readable_topic does (404 otherwise), with all the page needs.
        found = await topics.topic_row(conn, who, topic_id)
        if request.path_params.get("slug") != found["slug"]:
            target = topics.topic_url(found["id"], found["slug"])
            return RedirectResponse(target + (f"?{request.url.query}" if request.url.query else ""), status_code=301)
        context = await _topic_context(request, conn, who, topic_id, page, found)
    return await render(request, "topics/topic.html", context)


@pages.get("/p/{id}")
async def post_link(request: Request) -> Response:
    """/p/{id} (quotes link here) goes to the post on its topic's page."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        post, topic = await posts.readable_post(conn, who, post_id)
        location = await _post_location(conn, who, post, topic)
    return RedirectResponse(location, status_code=302)


# --- editing, revisions, deleting ----------------------------------------------------------------


@pages.form("/posts/{id}/edit")
async def edit_post_page(request: Request) -> Response:
    """Edit a post, with an optional reason; the previous version is kept."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    if who is None:
        return _login_redirect(request)
    rt = runtime(request)
    pool = rt.pool
    if request.method == "GET":
        async with pool.acquire() as conn:
            post, topic = await revisions.check_edit(conn, who, post_id)
        form = {"body": post["raw"], "content_note": post["content_note"] or "", "edit_reason": ""}
        return await render(request, "topics/edit_post.html", _edit_context(post, topic, form))
    submitted = await form_data(request)
    form = {name: _text(submitted, name) for name in ("body", "content_note", "edit_reason")}
    try:
        clean = api.POST_PATCH.validate(form)
        async with pool.acquire() as conn, conn.transaction():
            post = await revisions.edit_post(conn, who, post_id, clean, screening.PostingRules.of(rt))
            topic = await topics.readable_topic(conn, who, post["topic_id"])
            location = await _post_location(conn, who, post, topic)
    except ApiError as exc:
        if exc.status not in (409, 422, 429):
            raise
        async with pool.acquire() as conn:
            post, topic = await revisions.check_edit(conn, who, post_id)
        context = {**_edit_context(post, topic, form), **_errors(exc, "body")}
        status = 429 if exc.status == 429 else 422
        return await render(request, "topics/edit_post.html", context, status=status, headers=exc.headers)
    return _posted(request, who, f"edit-{post_id}", location)


def _edit_context(post: asyncpg.Record, topic: topics.TopicContext, form: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {"id": post["id"], "number": post["post_number"]},
        "form": form,
        "note_max": posts.CONTENT_NOTE_MAX,
        "topic": {"title": topic.title, "url": topics.topic_url(topic.id, topic.slug)},
    }


REDACTED_BY_WORDS = {
    revisions.REDACTED_BY_AUTHOR: "by its author",
    revisions.REDACTED_BY_MODERATOR: "by a moderator",
}


def _version_views(who: Session | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The versions as the page shows them, oldest first: each with its diff from the one before.

    A redacted version the viewer may not read shows neither its text nor its content note, and
    neither diff touching it does: the next version is shown whole instead of as a change."""
    readable = access.redacted_text_shown(who)
    versions = []
    previous: dict[str, Any] | None = None
    for item in items:
        redaction = item["redacted"]
        withheld = redaction is not None and not readable
        compared = previous is not None and not previous["withheld"] and not withheld
        editor = item["editor"]
        versions.append(
            {
                "revision": item["revision"],
                "editor": person(editor["id"], editor["username"], editor["display_name"])
                if editor["id"] is not None
                else dict(ANONYMOUS_PERSON),
                "reason": item["reason"],
                "created": when(datetime.fromisoformat(item["created_at"])),
                "diff": diff_html(previous["raw"], item["raw"]) if compared and previous else None,
                "raw": item["raw"],
                "withheld": withheld,
                "redacted": {
                    "by": REDACTED_BY_WORDS[redaction["by"]],
                    "when": when(datetime.fromisoformat(redaction["at"])),
                }
                if redaction
                else None,
                "can_redact": item["can_redact"],
                "content_note": None if withheld else item["content_note"],
                "note_changed": compared and previous is not None and previous["content_note"] != item["content_note"],
                "previous_note": previous["content_note"] if compared and previous else None,
            }
        )
        previous = {**item, "withheld": withheld}
    return versions


@pages.get("/posts/{id}/revisions")
async def revisions_page(request: Request) -> Response:
    """Every version of a post, newest first, each with who, when, why, and what changed; a button
    to remove each earlier version for its author and staff (?removed=N after removing one)."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        post, topic, items = await revisions.post_revisions(conn, who, post_id)
    removed = request.query_params.get("removed", "")
    return await render(
        request,
        "topics/revisions.html",
        {
            "post": {
                "id": post["id"],
                "number": post["post_number"],
                "status": post["status"],
                "own": who is not None and who.user_id == post["author_id"],
                "can_reveal": post["anonymous"] and access.may_reveal_author(who),
            },
            "topic": {"title": topic.title, "url": topics.topic_url(topic.id, topic.slug)},
            "versions": list(reversed(_version_views(who, items))),
            "removed": next((i["revision"] for i in items if str(i["revision"]) == removed and i["redacted"]), None),
            "admin": access.redacted_text_shown(who),
        },
    )


@pages.form("/posts/{id}/revisions/{revision}/redact")
async def redact_revision_page(request: Request) -> Response:
    """Confirm (GET) and remove (POST) an earlier version of a post: its author or staff."""
    post_id = path_int(request, "id")
    revision = path_int(request, "revision")
    who = await viewer(request)
    if who is None:
        return _login_redirect(request)
    pool = runtime(request).pool
    if request.method == "GET":
        async with pool.acquire() as conn:
            post, topic = await revisions.check_redact(conn, who, post_id, revision)
            _, _, items = await revisions.post_revisions(conn, who, post_id)
        item = next(i for i in items if i["revision"] == revision)
        if item["redacted"] is not None:  # already removed: nothing to confirm
            return RedirectResponse(f"/posts/{post_id}/revisions?removed={revision}#revision-{revision}", 303)
        return await render(
            request,
            "topics/redact_revision.html",
            {
                "post": {"id": post["id"], "number": post["post_number"], "own": post["author_id"] == who.user_id},
                "version": {"revision": revision, "raw": item["raw"], "content_note": item["content_note"]},
                "topic": {"title": topic.title, "url": topics.topic_url(topic.id, topic.slug)},
            },
        )
    await form_data(request)
    async with pool.acquire() as conn, conn.transaction():
        await revisions.redact_revision(conn, who, post_id, revision)
    return RedirectResponse(f"/posts/{post_id}/revisions?removed={revision}#revision-{revision}", status_code=303)


@pages.form("/posts/{id}/delete")
async def delete_post_page(request: Request) -> Response:
    """Confirm (GET) and delete (POST) a post; the first post of a topic cannot be deleted on its own."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    if who is None:
        return _login_redirect(request)
    pool = runtime(request).pool
    if request.method == "GET":
        async with pool.acquire() as conn:
            post, topic = await moves.check_delete(conn, who, post_id)
        return await render(
            request,
            "topics/delete_post.html",
            {
                "post": {"id": post["id"], "number": post["post_number"], "own": post["author_id"] == who.user_id},
                "topic": {"title": topic.title, "url": topics.topic_url(topic.id, topic.slug)},
            },
        )
    await form_data(request)
    async with pool.acquire() as conn, conn.transaction():
        post, topic = await posts.readable_post(conn, who, post_id)
        await moves.delete_post(conn, who, post_id)
        location = await _post_location(conn, who, post, topic)
    return RedirectResponse(location, status_code=303)


routes = pages.routes
