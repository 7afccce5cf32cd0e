"""Topics: routes, SQL and rules (being built)."""

from __future__ import annotations

from shared.api import ApiRouter

api = ApiRouter(tag="topics")
