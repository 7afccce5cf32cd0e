"""The three services behind one port, routed as the production proxy routes them.

This module sits above the services (like services/cli.py): it is the one place,
besides the CLI, that knows all three.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services import openapi
from services.forum import app as forum
from services.notify import app as notify
from services.search import app as search
from shared.events import LoopHealth
from shared.settings import Settings
from shared.web import readiness

# Paths routed away from the forum, as in deploy/Caddyfile; a prefix matches
# itself and anything below it ("/search" and "/search/...", not "/searching").
NOTIFY_PATHS = (
    "/live",
    "/api/notifications",
    "/api/me/preferences",
    "/api/watch",
    "/notifications",
    "/preferences",
    "/dev/mail",
    "/unsubscribe",
)
# /metrics is the search index's freshness (services/search/indexer.py). Only here, where one
# process is everything: the public origin in production (deploy/Caddyfile, deploy/k8s) sends it
# to the forum, which has none, and Prometheus scrapes each search replica directly instead.
SEARCH_PATHS = ("/api/search", "/search", "/metrics")


def _matches(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") or path.startswith(p + "?") for p in prefixes)


def service_for(path: str) -> str:
    """Which service answers a path: "notify", "search" or "forum"."""
    if _matches(path, NOTIFY_PATHS):
        return "notify"
    if _matches(path, SEARCH_PATHS):
        return "search"
    return "forum"


class AllInOne:
    """An ASGI app dispatching to the three service apps and running their lifespans."""

    def __init__(self, settings: Settings, *, background: bool = True) -> None:
        self.apps: dict[str, Starlette] = {
            "forum": forum.create_app(settings, background=background),
            "notify": notify.create_app(settings, background=background),
            "search": search.create_app(settings, background=background),
        }
        openapi.serve_on(self.apps["forum"])
        self.schemas = {
            "forum": (forum.SCHEMA, forum.MIGRATIONS_DIR),
            "notify": (notify.SCHEMA, notify.MIGRATIONS_DIR),
            "search": (search.SCHEMA, search.MIGRATIONS_DIR),
        }
        self.loops: list[LoopHealth] = []  # loops of this process beside the apps' (the job worker of `tica run`)

    def loop(self, name: str) -> LoopHealth:
        """The health record of a loop run beside the apps, reported by /readyz like theirs."""
        health = LoopHealth(name)
        self.loops.append(health)
        return health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http" and scope["path"] == "/readyz":
            await self._readyz(scope, receive, send)
            return
        app: ASGIApp = self.apps[service_for(scope["path"])]
        await app(scope, receive, send)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for app in self.apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.running())
        except BaseException as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            raise
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        try:
            await stack.aclose()
        finally:
            await send({"type": "lifespan.shutdown.complete"})

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: dict[str, Any] = {}
        problems = [problem for health in self.loops if (problem := health.problem())]
        for name, app in self.apps.items():
            schema, folder = self.schemas[name]
            result = await readiness(app.state.runtime, schema, folder)
            services[name] = result
            problems += [f"{name}: {p}" for p in result["problems"]]
        body = {"status": "ok" if not problems else "unavailable", "problems": problems, "services": services}
        response = JSONResponse(body, status_code=200 if not problems else 503)
        await response(scope, receive, send)
