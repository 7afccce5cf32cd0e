"""GET /search: the results page, with filters (kind, category, dates) as a plain GET form
that works without JavaScript, highlighted snippets, and a helpful page when nothing matches.

The search box in every page's header (shared/templates/layout.html) sends `q` here.
The form's fields add to what `q` itself says (they win when both give the same filter).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from services.search import query
from services.search.api import MAX_PAGE, run_search
from shared.pages import Pages, render
from shared.sessions import Session
from shared.web import runtime, viewer

pages = Pages()

KIND_CHOICES = (
    ("", "Everything"),
    ("topic", "Topics (titles)"),
    ("post", "Posts and replies"),
    ("document_comment", "Comments on documents"),
    ("message", "Your private messages"),
)
KIND_LABELS = {
    "topic": "Topic",
    "post": "Post",
    "document_comment": "Comment on a document",
    "message": "Private message",
}
FORM_FIELDS = ("q", "kind", "category", "after", "before")

CATEGORIES_SQL = """
SELECT slug, name FROM search.categories
WHERE $1::text[] IS NULL OR audience && $1::text[]
ORDER BY lower(name), category_id
"""


def _field(request: Request, name: str, max_chars: int = 100) -> str:
    return query.clean_query(request.query_params.get(name, ""))[:max_chars]


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "")
    return int(raw) if raw.isdigit() and 0 < int(raw) <= MAX_PAGE else 1


def apply_form(parsed: query.ParsedQuery, form: dict[str, str]) -> list[dict[str, str]]:
    """Add the form's filters to the parsed query; the errors to show (error-summary items)."""
    errors = []
    if form["kind"] in query.KINDS:
        parsed.kind, parsed.in_title = form["kind"], False
    elif form["kind"]:
        errors.append({"text": "Choose what to search from the list", "href": "#kind"})
    if form["category"]:
        parsed.category = form["category"].lower()
    for name, label in (("after", "From"), ("before", "Before")):
        if not form[name]:
            continue
        day = query.parse_date(form[name])
        if day is None:
            errors.append({"text": f"{label}: enter a real date, for example 2024-03-27", "href": f"#{name}"})
        else:
            setattr(parsed, name, day)
    return errors


def _link(form: dict[str, str], **changes: Any) -> str:
    values = {**form, **changes}
    return "/search?" + urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _when(value: str) -> dict[str, str]:
    moment = datetime.fromisoformat(value)
    return {"iso": value, "text": f"{moment.day} {moment:%B %Y}"}


def view_item(item: dict[str, Any]) -> dict[str, Any]:
    """A result as the template shows it."""
    return {**item, "kind_label": KIND_LABELS.get(item["kind"], item["kind"]), "when": _when(item["created_at"])}


async def _categories(request: Request, who: Session | None) -> list[dict[str, str]]:
    rows = await runtime(request).pool.fetch(CATEGORIES_SQL, query.audiences_for(who))
    return [{"slug": row["slug"], "name": row["name"]} for row in rows]


@pages.get("/search")
async def search_page(request: Request) -> Response:
    """The search page: the form, then results, or help when there is nothing to show."""
    form = {name: _field(request, name, query.MAX_QUERY_CHARS if name == "q" else 100) for name in FORM_FIELDS}
    page = _page_number(request)
    parsed = query.parse(form["q"])
    error_list = apply_form(parsed, form)
    who = await viewer(request)
    context: dict[str, Any] = {
        "form": form,
        "kinds": KIND_CHOICES,
        "categories": await _categories(request, who),
        "errors": bool(error_list),
        "error_list": error_list,
        "searched": not parsed.is_empty,
        "field_errors": {e["href"][1:]: e["text"] for e in error_list},
        "filtered": any(form[name] for name in ("kind", "category", "after", "before")),
        "without_filters": _link({"q": form["q"]}),
        "page": page,
        "items": [],
        "today": date.today().isoformat(),
    }
    if not parsed.is_empty:
        result = await run_search(request, parsed, page)
        context.update(
            {
                "items": [view_item(item) for item in result.items],
                "took_ms": result.took_ms,
                "more_than_shown": result.more_than_shown and result.next_page is None,
                "next_url": _link(form, page=result.next_page) if result.next_page else None,
                "previous_url": _link(form, page=page - 1 if page > 2 else None) if page > 1 else None,
                "unknown_author": parsed.author if result.prepared and result.prepared.unknown_author else None,
                "unknown_category": parsed.category if result.prepared and result.prepared.unknown_category else None,
            }
        )
    return await render(request, "search/results.html", context)


routes = pages.routes
