"""The site's own pages, the same for everyone: the community guidelines (/guidelines), linked
from every page's footer and from the flag form, and the API's operations as a readable page
(/developers), listed from the OpenAPI document the site serves at /api/openapi.json.

The OpenAPI document covers the three services and is built above them (services/openapi.py), which
serves it on the forum's app: the page reads it from there and keeps it for the process's life (it
changes only with the code). Where it is not served (a forum app alone), the page still links it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.pages import Pages, render

OPENAPI_PATH = "/api/openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")
log = logging.getLogger("tica.forum.site")
pages = Pages()


@pages.get("/guidelines")
async def guidelines_page(request: Request) -> Response:
    """How we look after each other here, what moderators do and how to appeal."""
    return await render(request, "site/guidelines.html")


@pages.get("/developers")
async def api_page(request: Request) -> Response:
    """The JSON API's operations, grouped by tag, with the OpenAPI document linked."""
    document = await openapi_document(request)
    return await render(
        request,
        "site/api.html",
        {"openapi_path": OPENAPI_PATH, "groups": operation_groups(document) if document else None},
    )


async def openapi_document(request: Request) -> dict[str, Any] | None:
    """The site's OpenAPI document, as this process serves it at /api/openapi.json (the runner adds
    that route to the forum's app: services/openapi.py serve_on); None where it does not (a forum app
    on its own, in tests)."""
    state = request.app.state
    cached = getattr(state, "openapi_document", None)
    if cached is not None:
        return dict(cached)
    body = await _in_process(request)
    if body is None:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        log.warning("the OpenAPI document is not JSON")
        return None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        return None
    state.openapi_document = document
    return dict(document)


async def _in_process(request: Request) -> bytes | None:
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.path == OPENAPI_PATH:
            response = await route.endpoint(request)
            return bytes(response.body) if response.status_code == 200 else None
    return None


def operation_groups(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations by tag, in the document's tag order (then as they first appear): each with its
    method, path, summary and description."""
    described = {tag["name"]: tag for tag in document.get("tags", []) if isinstance(tag, dict) and "name" in tag}
    groups: dict[str, dict[str, Any]] = {
        name: {"name": name, "description": tag.get("description", ""), "operations": []}
        for name, tag in described.items()
    }
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method) if isinstance(item, dict) else None
            if not isinstance(operation, dict):
                continue
            for tag in operation.get("tags") or ["other"]:
                group = groups.setdefault(tag, {"name": tag, "description": "", "operations": []})
                group["operations"].append(
                    {
                        "id": operation.get("operationId", f"{method}-{path}"),
                        "method": method.upper(),
                        "path": path,
                        "summary": operation.get("summary", ""),
                        "description": operation.get("description", ""),
                        "deprecated": bool(operation.get("deprecated")),
                    }
                )
    return [group for group in groups.values() if group["operations"]]


routes = pages.routes
