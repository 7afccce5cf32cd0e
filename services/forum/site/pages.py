"""The site's own pages, the same for everyone: the community guidelines (/guidelines), linked
from every page's footer and from the flag form, and the API's operations as a readable page
(/developers), listed from the OpenAPI document the site serves at /api/openapi.json.

The OpenAPI document covers the three services and is built above them (services/openapi.py),
so the forum reads it as any client does, from the site itself, and keeps it for the process's
life (it changes only with the code). When it cannot be read, the page still links it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.pages import Pages, render

OPENAPI_PATH = "/api/openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")
READ_TIMEOUT_S = 5.0
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
    """The site's OpenAPI document: answered in this process when this app serves it (`tica serve
    forum`), else asked of the server this request came in on (`tica run` answers it beside the
    apps); None when neither answers."""
    state = request.app.state
    cached = getattr(state, "openapi_document", None)
    if cached is not None:
        return dict(cached)
    body = await _in_process(request) or await _over_http(request)
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


async def _over_http(request: Request) -> bytes | None:
    server = request.scope.get("server")
    if not server or server[1] is None:  # a unix socket, or no server (in-process tests)
        return None
    host, port = server
    host = f"[{host}]" if ":" in host else host
    try:
        async with httpx.AsyncClient(timeout=READ_TIMEOUT_S) as client:
            response = await client.get(f"http://{host}:{port}{OPENAPI_PATH}")
    except httpx.HTTPError as exc:
        log.info("could not read the OpenAPI document from %s:%s: %s", host, port, exc)
        return None
    return response.content if response.status_code == 200 else None


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
