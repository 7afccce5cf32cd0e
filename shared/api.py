"""Declaring JSON endpoints once: their route, input schema and answers, from which
both the request validation and the OpenAPI 3.1 document are made.

    api = ApiRouter(tag="topics")

    @api.post("/api/topics", body=TOPIC_IN, answers={201: "Topic", 202: "Pending"}, auth=True)
    async def create_topic(request: Request) -> Response: ...

`body=` schemas validate with `await read_json(request, SCHEMA)`: a 400 for a body
that is not a JSON object, a 422 naming each bad field. A write endpoint's common steps
(writer, permission, body, transaction) are `async with writing(request, SCHEMA) as w:`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, overload

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.sessions import Session
from shared.web import ApiError, require_writer, runtime

Endpoint = Callable[[Request], Awaitable[Response]]


# --- input schemas ---------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input field: its JSON type and the rules a value must meet."""

    type: str  # "string", "integer", "boolean", "array", "object"
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    items: str | None = None  # element type of an array
    nullable: bool = False
    strip: bool = True
    description: str = ""

    def check(self, name: str, value: Any) -> tuple[Any, str | None]:
        """The cleaned value and an error message (None when valid)."""
        if value is None:
            return (None, None) if self.nullable or not self.required else (None, "is required")
        check = _TYPE_CHECKS[self.type]
        if not check(value):
            return None, f"must be {_TYPE_NAMES[self.type]}"
        if self.type == "string":
            return self._check_string(value)
        if self.type == "integer":
            if self.minimum is not None and value < self.minimum:
                return None, f"must be at least {self.minimum}"
            if self.maximum is not None and value > self.maximum:
                return None, f"must be at most {self.maximum}"
        if self.type == "array":
            if self.items and not all(_TYPE_CHECKS[self.items](v) for v in value):
                return None, f"must be a list of {_TYPE_NAMES[self.items]}s"
            if self.max_length is not None and len(value) > self.max_length:
                return None, f"must have at most {self.max_length} items"
        return value, None

    def _check_string(self, value: str) -> tuple[Any, str | None]:
        if self.strip:
            value = value.strip()
        if "\x00" in value:
            return None, "must not contain NUL characters"
        if not _is_utf8(value):  # lone surrogates from JSON "\ud800" cannot be stored
            return None, "must be valid Unicode text"
        if self.required and not value:
            return None, "is required"
        if self.min_length is not None and len(value) < self.min_length:
            return None, f"must be at least {self.min_length} characters"
        if self.max_length is not None and len(value) > self.max_length:
            return None, f"must be at most {self.max_length} characters"
        if self.enum is not None and value not in self.enum:
            return None, f"must be one of: {', '.join(self.enum)}"
        if self.pattern is not None and value and not re.fullmatch(self.pattern, value):
            return None, "has characters or a form that is not allowed"
        return value, None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": [self.type, "null"] if self.nullable else self.type}
        for key, value in (
            ("minLength", self.min_length if self.type == "string" else None),
            ("maxLength", self.max_length if self.type == "string" else None),
            ("maxItems", self.max_length if self.type == "array" else None),
            ("pattern", self.pattern),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("description", self.description or None),
        ):
            if value is not None:
                schema[key] = value
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.items:
            schema["items"] = {"type": self.items}
        return schema


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
_TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
}


@dataclass(frozen=True)
class Schema:
    """A named JSON object schema; unknown fields are rejected."""

    name: str
    fields: dict[str, Field]

    def validate(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "The request body must be a JSON object.")
        errors: dict[str, str] = {}
        for name in data.keys() - self.fields.keys():
            errors[name] = "is not a known field"
        clean: dict[str, Any] = {}
        for name, spec in self.fields.items():
            value, error = spec.check(name, data.get(name))
            if error:
                errors[name] = error
            elif name in data:
                clean[name] = value
        if errors:
            raise ApiError(422, "invalid", "Some fields need attention.", errors)
        return clean

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {name: spec.json_schema() for name, spec in self.fields.items()},
            "required": [name for name, spec in self.fields.items() if spec.required],
            "additionalProperties": False,
        }


async def read_json(request: Request, schema: Schema) -> dict[str, Any]:
    """The request body, parsed and validated against schema."""
    body = await request.body()
    if not body:
        data: Any = {}
    else:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "bad_json", "The request body is not valid JSON.") from None
    return schema.validate(data)


@dataclass(frozen=True)
class Write:
    """A write being served: who asks, the validated JSON body, and a connection in its transaction."""

    who: Session
    data: dict[str, Any]
    conn: asyncpg.Connection


@asynccontextmanager
async def writing(
    request: Request, body: Schema | None = None, *, allowed: Callable[[Session], None] | None = None
) -> AsyncIterator[Write]:
    """A write endpoint's common steps, in this order: the signed-in writer (401, CSRF 403), their
    permission (`allowed` raises to refuse), the JSON body (`{}` without a schema), then a pooled
    connection in a transaction that commits when the block ends.
    """
    who = await require_writer(request)
    if allowed is not None:
        allowed(who)
    data = await read_json(request, body) if body is not None else {}
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        yield Write(who, data, conn)


def query_int(request: Request, name: str, default: int, *, minimum: int = 1, maximum: int = 10_000) -> int:
    """An integer query parameter, 400 when it is not one or out of range."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, "bad_request", f"?{name} must be a whole number.", {name: "must be a whole number"}
        ) from None
    if not minimum <= value <= maximum:
        raise ApiError(
            400,
            "bad_request",
            f"?{name} must be between {minimum} and {maximum}.",
            {name: f"must be between {minimum} and {maximum}"},
        )
    return value


@overload
def query_choice(
    request: Request,
    name: str,
    choices: Iterable[str],
    *,
    default: str,
    message: str | None = None,
    field_error: str = "is not known",
) -> str: ...


@overload
def query_choice(
    request: Request,
    name: str,
    choices: Iterable[str],
    *,
    default: None = None,
    message: str | None = None,
    field_error: str = "is not known",
) -> str | None: ...


def query_choice(
    request: Request,
    name: str,
    choices: Iterable[str],
    *,
    default: str | None = None,
    message: str | None = None,
    field_error: str = "is not known",
) -> str | None:
    """A query parameter that must be one of `choices` (default when absent or empty); 400 otherwise,
    with `message` (by default, the choices listed) and `field_error` for the field."""
    value = request.query_params.get(name) or default
    choices = tuple(choices)
    if value is not None and value not in choices:
        raise ApiError(
            400, "bad_request", message or f"?{name} must be one of {', '.join(choices)}.", {name: field_error}
        )
    return value


def path_int(request: Request, name: str) -> int:
    """An integer path parameter; 404 when it cannot be an id."""
    raw = request.path_params.get(name)
    if isinstance(raw, int):
        return raw
    try:
        value = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ApiError(404, "not_found", "Not found.") from None
    if not 0 < value < 2**63:
        raise ApiError(404, "not_found", "Not found.")
    return value


# --- routes and the OpenAPI document --------------------------------------------------


@dataclass
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    tag: str
    body: Schema | None
    answers: dict[int, str]
    auth: bool
    query: dict[str, str] = field(default_factory=dict)


class ApiRouter:
    """The JSON endpoints of one module."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        body: Schema | None = None,
        answers: dict[int, str] | None = None,
        auth: bool = False,
        query: dict[str, str] | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            summary = (endpoint.__doc__ or endpoint.__name__).strip().splitlines()[0]
            self.operations.append(
                Operation(method, path, endpoint, summary, self.tag, body, answers or {200: "OK"}, auth, query or {})
            )
            return endpoint

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
        return self.route("DELETE", path, **kwargs)


def routes(routers: Iterable[ApiRouter]) -> list[Route]:
    """Starlette routes for every operation, one Route per path with its methods."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for router in routers:
        for op in router.operations:
            by_path.setdefault(op.path, {})[op.method] = op.endpoint
    result = []
    for path, methods in by_path.items():
        result.append(Route(path, _dispatch(methods), methods=list(methods)))
    return result


def _dispatch(methods: dict[str, Endpoint]) -> Endpoint:
    if len(methods) == 1:
        return next(iter(methods.values()))

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await methods[method](request)

    return endpoint


_PATH_PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def openapi(
    routers: Iterable[ApiRouter], *, title: str, version: str, components: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the given routers."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA, **(components or {})}
    for router in routers:
        for op in router.operations:
            path = _PATH_PARAM.sub(r"{\1}", op.path)
            paths.setdefault(path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "tica_session"},
                "token": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{op.method.lower()}_{op.endpoint.__name__}",
        "responses": {},
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer" if ":int" in op.path else "string"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in op.query.items()
    ]
    if params:
        doc["parameters"] = params
    if op.body is not None:
        schemas[op.body.name] = op.body.json_schema()
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.name}"}}},
        }
    for status, description in op.answers.items():
        doc["responses"][str(status)] = {"description": description}
        if status != 204:
            doc["responses"][str(status)]["content"] = {"application/json": {"schema": {"type": "object"}}}
    doc["responses"]["4XX"] = {
        "description": "Client error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if op.auth:
        doc["security"] = [{"session": []}, {"token": []}]
    return doc
