"""The search service: the full-text index of topics, posts and document comments,
built from events, and the search API and page. It owns the schema "search".

Modules: store.py (the index tables and writes to them), indexer.py (the consumer
group that applies events; freshness and /metrics), query.py (the query language,
finding and ranking), api.py (GET /api/search), pages.py (GET /search), reindex.py
(`tica search reindex`: rebuild beside, then swap).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette

from services.search import api, indexer, pages
from shared import api as api_lib
from shared import pages as shared_pages
from shared.settings import Settings
from shared.web import build_app

SCHEMA = "search"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TEMPLATES_DIR = Path(__file__).parent / "templates"

# The JSON API of search, for the OpenAPI document (services/openapi.py).
ROUTERS: list[api_lib.ApiRouter] = [api.api]


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    """The search app; `background=False` leaves its indexer to the caller (tests)."""
    app = build_app(
        settings=settings,
        schema=SCHEMA,
        migrations_dir=MIGRATIONS_DIR,
        routes=[*api_lib.routes(ROUTERS), *pages.routes, *indexer.routes],
        background=(indexer.run_indexer, indexer.prune_applied_events) if background else (),
        follow_settings=background,  # what admins set (the site's name in pages), as the forum publishes it
        ready_detail=indexer.ready_detail,
        exception_handlers=shared_pages.ERROR_HANDLERS,
    )
    app.state.templates = shared_pages.environment(TEMPLATES_DIR)
    return app
