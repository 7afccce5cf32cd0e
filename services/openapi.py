"""The OpenAPI 3.1 document of the whole public API, built from the three services'
declared endpoints (shared.api.ApiRouter). Served at /api/openapi.json by the
all-in-one app and by `tica serve forum` (the proxy routes the path to forum).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.forum import app as forum
from services.notify import app as notify
from services.search import app as search
from shared import api

VERSION = "1"


def routers() -> list[api.ApiRouter]:
    """Every service's routers, forum first."""
    return [*forum.ROUTERS, *getattr(notify, "ROUTERS", []), *getattr(search, "ROUTERS", [])]


def document() -> dict[str, Any]:
    return api.openapi(routers(), title="tica API", version=VERSION)


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document of tica's JSON API."""
    return JSONResponse(document())


route = Route("/api/openapi.json", openapi_json)


def serve_on(forum_app: Starlette) -> None:
    """The document at /api/openapi.json on the forum's app (the proxy sends that path to the forum),
    first, so forum pages that list the API (services/forum/site) find it in the same process."""
    forum_app.router.routes.insert(0, route)
