"""Server-rendered pages: the Jinja2 environment with the NHS.UK frontend macros and
tica's layout, static assets, CSRF for forms, the helpers every service's form pages share
(the member, field text, error summaries, dates) and the page error handlers.

Every service renders with `render(request, "name.html", {...})`; templates extend
"layout.html" (shared/templates). Forms carry `{{ csrf_field() }}`; handlers call
`await form_data(request)`, which checks it. A module's pages are declared where their handlers
are, with a Pages (the pages' counterpart of shared.api.ApiRouter):

    pages = Pages()

    @pages.route("/posts/{id}/edit", methods=["GET", "POST"])
    async def edit_post_page(request: Request) -> Response: ...
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import asyncpg
import jinja2
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from shared.sessions import CSRF_COOKIE, Session, csrf_ok
from shared.web import ERROR_HANDLERS as ERROR_HANDLERS_JSON
from shared.web import ApiError, runtime, viewer

SHARED_TEMPLATES = Path(__file__).parent / "templates"
SHARED_STATIC = Path(__file__).parent / "static"
BUILD_DIR = ".tica"  # in node_modules: what package.json's build script writes
CSRF_FIELD = "csrf_token"
log = logging.getLogger("tica.pages")
Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])


# --- declaring pages ---------------------------------------------------------------------------------


@dataclass
class _Declared:
    path: str
    methods: tuple[str, ...]
    name: str | None
    endpoint: Callable[..., Awaitable[Response]] | None = None


class Pages:
    """A module's HTML pages, each declared by a decorator right above its handler.

    `routes` are Starlette routes in the order the decorators are written, which is the order
    Starlette tries them in (so "/groups/new" is written before "/groups/{slug}"). Stacked
    decorators count from the top, as they read; `add` declares a handler that lives elsewhere.
    """

    def __init__(self) -> None:
        self._declared: list[_Declared] = []

    def route(
        self, path: str, *, methods: Sequence[str] = ("GET",), name: str | None = None
    ) -> Callable[[Endpoint], Endpoint]:
        """A page answering `methods` at `path` (named after its handler unless `name` is given)."""
        declared = _Declared(path, tuple(methods), name)
        self._declared.append(declared)  # now, not when applied: stacked decorators apply bottom up

        def register(endpoint: Endpoint) -> Endpoint:
            declared.endpoint = endpoint
            return endpoint

        return register

    def get(self, path: str, *, name: str | None = None) -> Callable[[Endpoint], Endpoint]:
        """A page that is only read."""
        return self.route(path, methods=("GET",), name=name)

    def post(self, path: str, *, name: str | None = None) -> Callable[[Endpoint], Endpoint]:
        """A form's action that has no page of its own."""
        return self.route(path, methods=("POST",), name=name)

    def form(self, path: str, *, name: str | None = None) -> Callable[[Endpoint], Endpoint]:
        """A form page: shown on GET, submitted by POST."""
        return self.route(path, methods=("GET", "POST"), name=name)

    def add(
        self, path: str, endpoint: Callable[..., Awaitable[Response]], *, methods: Sequence[str] = ("GET",)
    ) -> None:
        """A page whose handler is defined in another module."""
        self.route(path, methods=methods)(endpoint)

    @property
    def routes(self) -> list[BaseRoute]:
        """The Starlette routes, in the order declared."""
        routes: list[BaseRoute] = []
        for d in self._declared:
            if d.endpoint is None:
                raise RuntimeError(f"page {d.path} declared without a handler")
            routes.append(Route(d.path, d.endpoint, methods=list(d.methods), name=d.name))
        return routes


def assets_dir() -> Path:
    """node_modules, installed by `make` (TICA_ASSETS_DIR overrides; the container sets its own)."""
    configured = os.environ.get("TICA_ASSETS_DIR")
    if configured:
        return Path(configured)
    for candidate in (Path.cwd() / "node_modules", Path(__file__).resolve().parents[1] / "node_modules"):
        if candidate.is_dir():
            return candidate
    return Path.cwd() / "node_modules"


class CompactLoader(jinja2.BaseLoader):
    """Another loader's page templates without the indentation at the start of their lines.

    Indentation keeps templates readable, but sent on every page it was a quarter of a topic page's
    bytes. Whitespace inside <pre> and <textarea> comes from values, never from template text, so
    nothing shown changes.
    """

    INDENT = re.compile(r"\n[ \t]+")

    def __init__(self, inner: jinja2.BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Any]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        return self.INDENT.sub("\n", source), filename, uptodate

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


class Environment(jinja2.Environment):
    """Jinja2's environment, with each template's globals a plain dict rather than a ChainMap over the
    environment's: every `{% from ... import %}` compares the two key sets, and a ChainMap made that a
    slow Python loop on each render. Our globals are all set before the first template loads."""

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


@functools.cache
def environment(*template_dirs: Path) -> jinja2.Environment:
    """A Jinja2 environment: the service's templates, then the shared ones, then NHS.UK's.

    One per set of folders in a process (apps made again, as tests do, share it): it holds no
    per-app state, and building it loads the NHS.UK component macros."""
    loader = CompactLoader(
        jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader([*(str(d) for d in template_dirs), str(SHARED_TEMPLATES)]),
                jinja2.PackageLoader("nhsuk_frontend_jinja"),
            ]
        )
    )
    env = _bare_environment(loader)
    # Globals are set before any template is loaded: a template keeps the globals it was loaded with.
    env.globals["asset_path"] = "/static/nhsuk/assets"
    env.globals.update(nhsuk_components(_bare_environment(loader)))
    return env


def _bare_environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    # auto_reload off: templates ship with the code; checking their files at every render costs time.
    return Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


# The NHS.UK components every page may call without importing them: `button(...)`, `input(...)`.
NHSUK_COMPONENTS = (
    "action-link", "back-link", "breadcrumb", "button", "card", "checkboxes", "details", "error-summary",
    "inset-text", "input", "notification-banner", "pagination", "panel", "password-input", "radios", "select",
    "summary-list", "tag", "textarea", "warning-callout",
)  # fmt: skip


def nhsuk_components(env: jinja2.Environment) -> dict[str, Any]:
    """Each NHS.UK component's macro by its own name (back-link -> backLink), loaded once from `env`
    (a twin of the pages' environment, so that the pages' templates all see the same globals)."""
    macros: dict[str, Any] = {}
    for component in NHSUK_COMPONENTS:
        first, *rest = component.split("-")
        name = first + "".join(word.title() for word in rest)
        module = env.get_template(f"nhsuk/components/{component}/macro.jinja").module
        macros[name] = getattr(module, name)
    return macros


def static_routes() -> list[BaseRoute]:
    """`/static/nhsuk` (the NHS.UK frontend package: its script and images), `/static/build` (its
    stylesheet as `npm ci` builds it: see package.json), `/static/tica` (our own CSS and JS), and
    `/favicon.ico` (tica's icon), which some browsers and tools ask for whatever a page links."""
    nhsuk = assets_dir() / "nhsuk-frontend" / "dist" / "nhsuk"
    built = assets_dir() / BUILD_DIR
    if not (built / "nhsuk-frontend.min.css").is_file():
        log.warning("no %s/nhsuk-frontend.min.css: pages will be unstyled (run `npm ci`)", built)
    favicon = SHARED_STATIC / "images" / "favicon.svg"

    async def favicon_ico(request: Request) -> Response:
        return FileResponse(favicon, media_type="image/svg+xml", headers={"cache-control": "public, max-age=86400"})

    return [
        Mount("/static/nhsuk", app=StaticFiles(directory=nhsuk, check_dir=False), name="nhsuk"),
        Mount("/static/build", app=StaticFiles(directory=built, check_dir=False), name="build"),
        Mount("/static/tica", app=StaticFiles(directory=SHARED_STATIC, check_dir=False), name="tica"),
        Route("/favicon.ico", favicon_ico, methods=["GET"], name="favicon"),
    ]


def csrf_token(request: Request, session: Session | None) -> str:
    """The token forms must echo: the session's, or a per-browser one before login."""
    if session is not None and not session.via_token:
        return session.csrf
    token = request.cookies.get(CSRF_COOKIE) or request.scope.get("new_csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.scope["new_csrf"] = token
    return str(token)


async def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render a page with the viewer, CSRF token, current path, the site's name, and whether "Leave
    this site quickly" shows and where it goes (as admins set them: shared/site_settings.py) available
    to the template."""
    env: jinja2.Environment = request.app.state.templates
    session = await viewer(request)
    token = csrf_token(request, session)
    settings = runtime(request).settings
    values = {
        "request": request,
        "viewer": session,
        "csrf_token": token,
        "site_name": settings.site_name,
        "quick_exit": settings.quick_exit,
        "quick_exit_url": settings.quick_exit_url,
        "path": request.url.path,
        "query": request.query_params.get("q", "") if request.url.path.startswith("/search") else "",
        **(await _service_context(request, session)),
        **(context or {}),
    }
    html = env.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.headers["cache-control"] = "no-store" if session else "no-cache"
    if request.cookies.get(CSRF_COOKIE) != token:
        set_csrf_cookie(response, request, token)
    return response


async def _service_context(request: Request, session: Session | None) -> dict[str, Any]:
    """What a service adds to every page it renders (app.state.page_context, e.g. the forum's review count
    in the header for staff); nothing when it adds nothing."""
    add: Callable[[Request, Session | None], Awaitable[dict[str, Any]]] | None = getattr(
        request.app.state, "page_context", None
    )
    return await add(request, session) if add is not None else {}


def cookies_secure(request: Request) -> bool:
    """Cookies are Secure (sent over https only) when the site is public over https, whatever scheme
    the request reached this process with, and on any https request."""
    return request.url.scheme == "https" or runtime(request).settings.https


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    """The CSRF cookie is readable by our script (it echoes it in X-CSRF-Token)."""
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=False,
        samesite="lax",
        secure=cookies_secure(request),
        path="/",
        max_age=30 * 86400,
    )


async def form_data(request: Request) -> FormData:
    """The submitted form, after checking its CSRF token (403 otherwise)."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    session = await viewer(request)
    if session is not None and not session.via_token:
        valid = isinstance(sent, str) and csrf_ok(session, sent)
    else:
        cookie = request.cookies.get(CSRF_COOKIE)
        valid = isinstance(sent, str) and bool(cookie) and secrets.compare_digest(sent, cookie or "")
    if not valid:
        raise ApiError(403, "csrf_failed", "This form has expired. Go back, reload the page and try again.")
    return form


def login_redirect(request: Request, target: str | None = None) -> Response:
    """To the login page, coming back afterwards to `target` (by default this page's path)."""
    return RedirectResponse(f"/login?next={quote(target or request.url.path)}", status_code=303)


# --- helpers for pages with forms ---------------------------------------------------------------


async def member_session(request: Request) -> Session | None:
    """The viewer signed in with a session cookie (pages never act for an API token)."""
    who = await viewer(request)
    return who if who is not None and not who.via_token else None


async def form_member(request: Request) -> Session | None:
    """The member using a form page, or None for a visitor (to send to log in). A visitor's form
    is still read, so that one with a wrong CSRF token is refused (403) like anybody's."""
    who = await member_session(request)
    if who is None and request.method == "POST":
        await form_data(request)
    return who


def signed_in(
    find: Callable[[Request], Awaitable[Session | None]], login: Callable[[Request], Response] = login_redirect
) -> Callable[[Callable[[Request, Session], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """A decorator for a page only members use, given the member as `find` tells (viewer,
    member_session or form_member); a visitor gets `login` (by default: log in, then back here)."""

    def decorate(page: Callable[[Request, Session], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(page)
        async def endpoint(request: Request) -> Response:
            who = await find(request)
            if who is None:
                return login(request)
            return await page(request, who)

        return endpoint

    return decorate


members_only = signed_in(form_member)  # the usual case: see form_member


def form_text(form: FormData, name: str, *, strip: bool = True) -> str:
    """A form field's text ("" when absent); NUL is dropped, as no field has a use for it and
    PostgreSQL refuses it."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    value = value.replace("\x00", "")
    return value.strip() if strip else value


def form_errors(
    exc: ApiError,
    field: str,
    *,
    labels: Mapping[str, str] | None = None,
    anchors: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The layout's error summary and inline errors for a failed action.

    Field problems (422, 409) go next to their fields, each message after its field's label when
    `labels` is given (a field without one is named from its key); anything else is one message at
    `field`. `anchors` points a field the page does not show (a hidden input) at one it does.
    """
    if exc.status in (409, 422) and exc.fields:
        fields = dict(exc.fields)
        if labels is not None:
            fields = {
                name: f"{labels.get(name, name.replace('_', ' ').capitalize())} {text}" for name, text in fields.items()
            }
    else:
        fields = {field: exc.message}
    to = anchors or {}
    return {
        "errors": fields,
        "error_list": [{"text": text, "href": f"#{to.get(name, name)}"} for name, text in fields.items()],
    }


Save = Callable[[asyncpg.Connection, dict[str, Any]], Awaitable[str]]


async def form_page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    read: Callable[[FormData], dict[str, Any]],
    save: Save,
    field: str,
) -> Response:
    """A form page: on GET the form; on POST the form's `read` values saved by `save` in one
    transaction, then a 303 to where `save` says, or on an ApiError the form again with the values as
    typed and what to fix (`field` takes an error that names no field), answering page_status."""
    if request.method == "GET":
        return await render(request, template, context)
    values = read(await form_data(request))
    try:
        async with runtime(request).pool.acquire() as conn, conn.transaction():
            target = await save(conn, values)
    except ApiError as exc:
        context.update(values=values, **form_errors(exc, field))
        return await render(request, template, context, status=page_status(exc))
    return RedirectResponse(target, status_code=303)


def page_status(exc: ApiError) -> int:
    """A form page's status for a failed action: 422 for what the person can fix, 400 for a bad
    request; refusals, missing things, size and type limits and rate limits keep their own."""
    return exc.status if exc.status in (403, 404, 413, 415, 429) else 422 if exc.status in (409, 422) else 400


# --- times as pages show them ----------------------------------------------------------------------


def day(moment: datetime) -> str:
    """A date as people write it: "4 March 2025"."""
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y}"


def ago(moment: datetime, now: datetime | None = None) -> str:
    """A moment as people say it: "just now", "5 minutes ago", "3 days ago", "4 March 2025"."""
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    for limit, size, unit in ((3600, 60, "minute"), (86400, 3600, "hour"), (7 * 86400, 86400, "day")):
        if seconds < limit:
            count = int(seconds // size)
            if count < 1:
                return "just now"
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return f"{moment.day} {moment:%B %Y}"


def when(moment: datetime, text: str | None = None) -> dict[str, str]:
    """A moment for a <time> element; `text` is ago(moment) when already worked out."""
    return {"iso": moment.isoformat(), "text": text or ago(moment), "title": f"{moment:%d %B %Y, %H:%M} UTC"}


def wants_html(request: Request) -> bool:
    """Page requests get HTML errors; /api and scripts get JSON."""
    return not request.url.path.startswith("/api/")


_HEADINGS = {
    400: "Something in the request was wrong",
    401: "Please log in",
    403: "You cannot do that",
    404: "Page not found",
    405: "That is not possible here",
    409: "That changed meanwhile",
    413: "That is too large",
    415: "That kind of file is not accepted",
    422: "Please check your input",
    429: "You are going a little fast",
    500: "Sorry, something went wrong",
    503: "Sorry, we could not do that just now",
}


async def _page_or_json(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        status, message, headers = exc.status, exc.message, exc.headers
    elif isinstance(exc, HTTPException):
        status, headers = exc.status_code, exc.headers
        message = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else ""
    else:
        status, message, headers = 500, "It has been logged, and we will look into it.", None
    if not wants_html(request):
        handler = ERROR_HANDLERS_JSON.get(type(exc)) or ERROR_HANDLERS_JSON[Exception]
        return await handler(request, exc)
    if status == 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if status == 404 and not message:
        message = "We could not find that page. It may have been moved, or you may not have access to it."
    try:
        return await render(
            request,
            "error.html",
            {"status": status, "heading": _HEADINGS.get(status, "Error"), "message": message},
            status=status,
            headers=headers,
        )
    except Exception:  # the error page itself must never fail
        log.exception("error page failed")
        return HTMLResponse("<h1>Sorry, something went wrong</h1>", status_code=status)


ERROR_HANDLERS: dict[Any, Any] = {ApiError: _page_or_json, HTTPException: _page_or_json, Exception: _page_or_json}
