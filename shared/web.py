"""What every service's Starlette app shares: the runtime it opens in its lifespan,
the JSON error shape, health endpoints, request ids and access logs, security
headers, the request body limit, who the viewer is, and the supervision of its
background loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import db, site_settings
from shared.events import LoopHealth, set_loop_health
from shared.logs import request_id_var
from shared.sessions import CSRF_HEADER, Session, SessionStore, csrf_ok
from shared.settings import Settings

log = logging.getLogger("tica.web")
access_log = logging.getLogger("tica.access")


# --- errors ------------------------------------------------------------------


class ApiError(Exception):
    """A client error with the public shape `{"error": {code, message, fields}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields, self.headers = status, code, message, fields, headers


def invalid(field: str, message: str) -> ApiError:
    """The 422 a form or API client gets for one bad field."""
    return ApiError(422, "invalid", "Some fields need attention.", {field: message})


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "Something went wrong on our side. It has been logged.")


RETRY_AFTER_S = 5


async def redis_away_handler(request: Request, exc: Exception) -> Response:
    """Redis (sessions, rate limits, the job queue) cannot be reached, as while it restarts: a 503
    that says to try again shortly, as a page or in the JSON shape, as the app answers its other errors."""
    log.warning("redis unreachable on %s %s: %s", request.scope.get("method", "websocket"), request.url.path, exc)
    # Unless already known, the error page is for a visitor: asking Redis who it is would fail again.
    request.scope.setdefault("viewer", None)
    away = ApiError(
        503,
        "unavailable",
        "Part of tica is restarting, so we could not finish that just now. Please try again in a few seconds.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
    handlers: Mapping[Any, Any] = getattr(request.app, "exception_handlers", {})
    response: Response = await handlers.get(ApiError, api_error_handler)(request, away)
    return response


async def client_left_handler(request: Request, exc: Exception) -> Response:
    """The client went away while sending its request (a phone losing signal mid-post): nothing to
    answer and nothing wrong here. The access log shows it as 499, as nginx does."""
    log.info("client left before its request was read: %s %s", request.method, request.url.path)
    return Response(status_code=499)


ERROR_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    ApiError: api_error_handler,
    HTTPException: http_error_handler,
    RedisConnectionError: redis_away_handler,
    RedisTimeoutError: redis_away_handler,
    ClientDisconnect: client_left_handler,
    Exception: server_error_handler,
}


# --- runtime -----------------------------------------------------------------


@dataclass
class Runtime:
    """The connections one service process holds, opened in its lifespan."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    sessions: SessionStore
    extras: dict[str, Any] = field(default_factory=dict)
    loops: list[LoopHealth] = field(default_factory=list)  # its background loops, for /readyz
    # The settings from the environment: `settings` is these with the admins' values laid over them
    # (shared/site_settings.py), so a value an admin takes back falls back to the environment's.
    base_settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.base_settings = self.settings


def settle_gc() -> None:
    """Tune the garbage collector for a serving process, once its app is built.

    Everything alive now (modules, the app) lives as long as the process: frozen, the collector
    never scans it again. Collections are rarer (gen0 every 7,000 allocations instead of 700): a
    request allocates thousands of short-lived objects, and the full collections had paused a
    busy worker for 20-30 ms several times a minute.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)


@asynccontextmanager
async def open_runtime(settings: Settings, *, pool_max: int = 10) -> AsyncIterator[Runtime]:
    """Open the pool and Redis for one service; close them when the service stops."""
    assert settings.database_url and settings.redis_url, "embedded servers are resolved before apps start"
    pool = await db.create_pool(settings.database_url, max_size=pool_max)
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        yield Runtime(settings, pool, redis, SessionStore(redis, settings.redis_prefix))
    finally:
        await redis.aclose()
        await pool.close()


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


# --- health --------------------------------------------------------------------


async def readiness(rt: Runtime, schema: str, migrations_dir: Path) -> dict[str, Any]:
    """Why the service is not ready (empty `problems` when it is): a server it cannot reach,
    migrations not applied, or a background loop failing or stopped."""
    problems: list[str] = [problem for health in rt.loops if (problem := health.problem())]
    try:
        async with rt.pool.acquire(timeout=2) as conn:
            pending = await db.pending_migrations(conn, schema, db.load_migrations(schema, migrations_dir))
            if pending:
                problems.append(f"migrations not applied: {', '.join(pending)}")
    except db.MigrationError as exc:
        problems.append(str(exc))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        problems.append(f"postgresql unreachable: {exc.__class__.__name__}")
    try:
        await rt.redis.ping()
    except (RedisError, OSError) as exc:
        problems.append(f"redis unreachable: {exc.__class__.__name__}")
    return {"problems": problems}


def health_routes(
    schema: str, migrations_dir: Path, detail: Callable[[Runtime], Awaitable[dict[str, Any]]] | None = None
) -> list[Route]:
    """`/healthz` (the process answers) and `/readyz` (it can do its work; 503 says why not)."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        rt = runtime(request)
        result = await readiness(rt, schema, migrations_dir)
        body: dict[str, Any] = {"status": "ok" if not result["problems"] else "unavailable", **result}
        if detail is not None:
            try:
                body["detail"] = await detail(rt)
            except (RedisError, OSError, asyncpg.PostgresError) as exc:
                body["detail"] = {"error": exc.__class__.__name__}
        return JSONResponse(body, status_code=200 if not result["problems"] else 503)

    return [Route("/healthz", healthz), Route("/readyz", readyz)]


# --- viewer --------------------------------------------------------------------


async def viewer(request: Request) -> Session | None:
    """The signed-in viewer (session cookie or personal API token), cached per request."""
    if "viewer" in request.scope:
        cached: Session | None = request.scope["viewer"]
        return cached
    rt = runtime(request)
    session: Session | None = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        session = await rt.sessions.for_token(auth[7:].strip())
        if session is None:
            raise ApiError(401, "invalid_token", "The API token is not valid or was revoked.")
    else:
        session = await rt.sessions.get(request.cookies.get("tica_session"))
    request.scope["viewer"] = session
    return session


async def require_viewer(request: Request, refusal: str = "Please log in first.") -> Session:
    """The signed-in viewer; 401 with `refusal` for a visitor."""
    session = await viewer(request)
    if session is None:
        raise ApiError(401, "unauthorized", refusal)
    return session


async def require_writer(request: Request) -> Session:
    """The viewer of a write: signed in, and with the CSRF token when the session cookie is used."""
    session = await require_viewer(request)
    check_csrf(request, session)
    return session


def check_csrf(request: Request, session: Session) -> None:
    """Cookie-authenticated writes must echo the CSRF token; API tokens need not."""
    if session.via_token:
        return
    if not csrf_ok(session, request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf_failed", "The CSRF token is missing or wrong. Reload the page and try again.")


# --- middleware --------------------------------------------------------------------

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

HSTS = "max-age=31536000; includeSubDomains"


def content_security_policy(settings: Settings) -> str:
    """Scripts connect only to this site: its origin and the websocket form of it (which 'self' does
    not cover in every browser). Images come only from this site (and data: URLs): a post cannot
    show a remote image, so it cannot carry a tracking pixel."""
    host = urlsplit(settings.public_url).netloc.rpartition("@")[2].lower()
    websocket = f"{'wss' if settings.https else 'ws'}://{host}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {websocket}; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """The headers every response carries; HSTS once the public URL is https."""
    headers = [
        (b"content-security-policy", content_security_policy(settings).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"x-frame-options", b"DENY"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    ]
    if settings.https:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


class BodyTooLarge(Exception):
    pass


class RequestLimit:
    """Pure ASGI middleware: at most `limit` HTTP requests in progress in this process; the others wait
    their turn, in order of arrival.

    Without a limit every request starts the moment it arrives and all of them share the CPU, so under
    load each one finishes late, and some very late: a worker taking 32 topic pages at once answered
    its slowest hundredth in twice its median time. Taking them a few at a time, the median is the
    same and the slowest are a quarter quicker. A slot is given back when the response starts, so a
    long download does not hold one; websockets, health checks and uploads (`exempt`) are not counted.
    """

    def __init__(self, app: ASGIApp, *, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(limit)  # first come, first served
        self.exempt = exempt or ("\0",)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        await self.slots.acquire()
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                self.slots.release()

        async def send_started(message: Message) -> None:
            if message["type"] == "http.response.start":
                give_back()
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        finally:
            give_back()


class RequestContext:
    """Pure ASGI middleware: request id, JSON access log, security headers, body limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        headers: list[tuple[bytes, bytes]],
        large_body_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.headers = headers
        self.large_body_paths = large_body_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        sent_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = sent_id if _REQUEST_ID.match(sent_id) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = {"code": 0, "started": False}
        limit = None if scope["path"].startswith(self.large_body_paths or ("\0",)) else self.max_body_bytes

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    *self.headers,
                ]
            await send(message)

        try:
            if scope["type"] == "http" and limit is not None:
                length = headers.get(b"content-length", b"0")
                if length.isdigit() and int(length) > limit:
                    await _too_large(send_wrapper, limit)
                    return
                receive = _limited(receive, limit)
            try:
                await self.app(scope, receive, send_wrapper)
            except BodyTooLarge:
                if not status["started"]:
                    await _too_large(send_wrapper, limit or 0)
        finally:
            if scope["type"] == "http":
                access_log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status["code"],
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status["code"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge()
        return message

    return wrapped


async def _too_large(send: Send, limit: int) -> None:
    response = error_response(413, "payload_too_large", f"The request body is larger than {limit} bytes.")
    await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


# --- app factory ---------------------------------------------------------------

BackgroundTask = Callable[[Runtime, asyncio.Event], Awaitable[None]]
StartupHook = Callable[[Runtime], Awaitable[None]]


def build_app(
    *,
    settings: Settings,
    schema: str,
    migrations_dir: Path,
    routes: list[Any],
    background: tuple[BackgroundTask, ...] = (),
    startup: tuple[StartupHook, ...] = (),
    shutdown: tuple[StartupHook, ...] = (),
    ready_detail: Callable[[Runtime], Awaitable[dict[str, Any]]] | None = None,
    exception_handlers: dict[Any, Any] | None = None,
    large_body_paths: tuple[str, ...] = (),
    pool_max: int = 10,
    follow_settings: bool = False,
    settings_loader: site_settings.Loader | None = None,
) -> Starlette:
    """A service's Starlette app: lifespan opens its runtime and runs its background loops.

    With `follow_settings` it also keeps the runtime's settings current with what admins set
    (shared/site_settings.py): loaded at start, then followed by the `site_settings` loop; the
    forum gives its `settings_loader`, the other services read the snapshot the forum publishes."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings, pool_max=pool_max) as rt:
            app.state.runtime = rt
            loops = background
            if follow_settings:
                follower = site_settings.Follower(settings_loader)
                await follower.start(rt)
                loops = (*background, _settings_loop(follower))
            for hook in startup:
                await hook(rt)
            stop = asyncio.Event()
            tasks = []
            for task in loops:
                health = LoopHealth(getattr(task, "__name__", "background task"))
                rt.loops.append(health)
                run = functools.partial(task, rt, stop)
                tasks.append(asyncio.create_task(supervise(health, run, stop), name=health.name))
            try:
                yield
            finally:
                stop.set()
                await _finish(tasks)
                for hook in shutdown:
                    await hook(rt)

    app = Starlette(
        routes=[*health_routes(schema, migrations_dir, ready_detail), *routes],
        exception_handlers={**ERROR_HANDLERS, **(exception_handlers or {})},
        lifespan=lifespan,
    )
    # As many requests in progress as the process has database connections (RequestLimit); the access
    # log (RequestContext, outside it) counts the wait in a request's time.
    app.add_middleware(RequestLimit, limit=pool_max, exempt=("/healthz", "/readyz", "/metrics", *large_body_paths))
    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.max_body_bytes,
        headers=security_headers(settings),
        large_body_paths=large_body_paths,
    )
    return app


def _settings_loop(follower: site_settings.Follower) -> BackgroundTask:
    async def site_settings(rt: Runtime, stop: asyncio.Event) -> None:  # its name is what /readyz says
        await follower.run(rt, stop)

    return site_settings


SETTLE_S = 3.0  # a restarted loop that runs this long without failing is well again
_CONNECTION_ERRORS = (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def supervise(health: LoopHealth, run: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run a long-running loop until `stop`, restarting it with backoff whenever it fails or ends by
    itself. `health` (the loop's own, which it reports to as well: shared.events.loop_health) is
    failing from a failure until the loop says it works, or has run SETTLE_S without failing again;
    it is stopped if the supervision ends before `stop`."""
    set_loop_health(health)
    try:
        while not stop.is_set():
            failures = health.failures
            attempt = asyncio.ensure_future(run())
            try:
                if failures:
                    done, _ = await asyncio.wait({attempt}, timeout=SETTLE_S)
                    if not done and health.failures == failures:  # it has not failed again meanwhile
                        health.working()
                await attempt
                if stop.is_set():
                    return
                raise RuntimeError("it ended by itself")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay_s = health.failed(exc)
                if isinstance(exc, _CONNECTION_ERRORS):
                    log.warning("%s failed, restarting in %.1f s: %r", health.name, delay_s, exc)
                else:
                    log.exception("%s failed, restarting in %.1f s", health.name, delay_s, exc_info=exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay_s)
            finally:
                if not attempt.done():
                    attempt.cancel()
                    await asyncio.gather(attempt, return_exceptions=True)
    finally:
        if not stop.is_set():
            health.stopped = True


async def _finish(tasks: list[asyncio.Task[None]], timeout_s: float = 5.0) -> None:
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
