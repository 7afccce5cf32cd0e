"""The search service: the full-text index of topics, posts and document comments,
built from events, and the search API. It owns the schema "search".
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette

from shared.settings import Settings
from shared.web import build_app

SCHEMA = "search"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    """The search app; `background=False` leaves its indexer to the caller (tests)."""
    return build_app(settings=settings, schema=SCHEMA, migrations_dir=MIGRATIONS_DIR, routes=[])
