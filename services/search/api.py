"""GET /api/search: search the topics, posts and comments on library documents the viewer may
read, and the private messages of their own conversations (shared/API.md, "Search")."""

from __future__ import annotations

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.search import query
from shared.api import ApiRouter, Field, Maybe, Shape, query_int
from shared.web import ApiError, runtime, viewer

api = ApiRouter(tag="search")

MAX_PAGE = 1000
QUERY_HELP = {
    "q": Field(
        "string",
        required=True,
        pattern=r"[\s\S]*\S[\s\S]*",
        description='words, "phrases", -exclusions, `or`, and filters @username, #category-slug, in:title, '
        "kind:post|topic|document_comment|message, before:YYYY-MM-DD, after:YYYY-MM-DD (400 when it asks for nothing)",
    ),
    "page": Field("integer", minimum=1, maximum=MAX_PAGE, description=f"1-based; {query.PER_PAGE} results a page"),
}
RESULT = Shape(
    "SearchResult",
    {
        "kind": "string",
        "id": "integer",
        "topic_id": "integer?",
        "post_number": "integer?",
        "document_id": "integer?",
        "conversation_id": "integer?",
        "title": "string?",
        "snippet": "string",
        "author": Maybe(Shape("Author", {"id": "integer?", "username": "string", "display_name": "string"})),
        "created_at": "datetime",
        "url": "string",
        "category": Maybe({"id": "integer", "slug": "string", "name": "string"}),
        "topic_kind": "string?",
        "content_note": "string?",
    },
)
RESULTS = Shape("SearchResults", {"items": [RESULT], "next": "integer?", "took_ms": "number"})


async def run_search(request: Request, parsed: query.ParsedQuery, page: int) -> query.SearchResult:
    """Search as the request's viewer: anonymous people see public content, staff everything."""
    who = await viewer(request)
    try:
        return await query.search(runtime(request).pool, parsed, query.audiences_for(who), page=page, viewer=who)
    except asyncpg.QueryCanceledError:
        raise ApiError(
            503,
            "search_busy",
            "The search took too long. Please try again, or search for more specific words.",
            headers={"Retry-After": "5"},
        ) from None


@api.get(
    "/api/search",
    answers={200: ("A page of results", RESULTS), 400: "q is required", 503: "The search took too long (Retry-After)"},
    query=QUERY_HELP,
)
async def search_endpoint(request: Request) -> Response:
    """Search topics, posts, comments on library documents and your own private messages (best matches first,
    recent ones boosted)."""
    parsed = query.parse(request.query_params.get("q", ""))
    page = query_int(request, "page", 1, minimum=1, maximum=MAX_PAGE)
    if parsed.is_empty:
        raise ApiError(
            400,
            "q_required",
            "q is required: the words to search for, or a filter such as @username.",
            {"q": "is required"},
        )
    result = await run_search(request, parsed, page)
    return JSONResponse({"items": result.items, "next": result.next_page, "took_ms": result.took_ms})
