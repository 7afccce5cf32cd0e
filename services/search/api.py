"""GET /api/search: search the topics, posts and comments on library documents the viewer may
read (shared/API.md, "Search")."""

from __future__ import annotations

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.search import query
from shared.api import ApiRouter, query_int
from shared.web import ApiError, runtime, viewer

api = ApiRouter(tag="search")

MAX_PAGE = 1000
QUERY_HELP = {
    "q": 'words, "phrases", -exclusions, `or`, and filters @username, #category-slug, in:title, '
    "kind:post|topic|document_comment, before:YYYY-MM-DD, after:YYYY-MM-DD",
    "page": f"1-based; {query.PER_PAGE} results a page",
}


async def run_search(request: Request, parsed: query.ParsedQuery, page: int) -> query.SearchResult:
    """Search as the request's viewer: anonymous people see public content, staff everything."""
    who = await viewer(request)
    try:
        return await query.search(runtime(request).pool, parsed, query.audiences_for(who), page=page)
    except asyncpg.QueryCanceledError:
        raise ApiError(
            503,
            "search_busy",
            "The search took too long. Please try again, or search for more specific words.",
            headers={"Retry-After": "5"},
        ) from None


@api.get("/api/search", answers={200: "A page of results", 400: "q is required"}, query=QUERY_HELP)
async def search_endpoint(request: Request) -> Response:
    """Search topics, posts and comments on library documents (best matches first, recent ones boosted)."""
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
