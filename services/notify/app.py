"""The notify service: notifications, watch levels, preferences, the live websocket
endpoint, email and digests (the arq worker). It owns the schema "notify".
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette

from services.notify import devmail
from shared import pages
from shared.settings import Settings
from shared.web import build_app

SCHEMA = "notify"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


TEMPLATES_DIR = Path(__file__).parent / "templates"


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    """The notify app; `background=False` leaves its consumers to the caller (tests)."""
    app = build_app(settings=settings, schema=SCHEMA, migrations_dir=MIGRATIONS_DIR,
                    routes=devmail.routes, exception_handlers=pages.ERROR_HANDLERS)
    app.state.templates = pages.environment(TEMPLATES_DIR)
    return app
