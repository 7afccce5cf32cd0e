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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, overload

import asyncpg
from starlette.convertors import Convertor, register_url_convertor
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

    type: str  # "string", "integer", "boolean", "array", "object"; "file" in a form (documented only)
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
            return (value, None) if (error := self._check_range(value)) is None else (None, error)
        if self.type == "array":
            if self.items and not all(_TYPE_CHECKS[self.items](v) for v in value):
                return None, f"must be a list of {_TYPE_NAMES[self.items]}s"
            if self.max_length is not None and len(value) > self.max_length:
                return None, f"must have at most {self.max_length} items"
            errors = [error for v in value if self.items == "integer" and (error := self._check_range(v))]
            if errors:
                return None, f"has an item that {errors[0]}"
        return value, None

    def _check_range(self, value: int) -> str | None:
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum}"
        return None

    def _check_string(self, value: str) -> tuple[Any, str | None]:
        # The limits the JSON Schema states apply to the value as sent; blanks at the ends are then dropped.
        if self.max_length is not None and len(value) > self.max_length:
            return None, f"must be at most {self.max_length} characters"
        if self.enum is not None and value not in self.enum:
            return None, f"must be one of: {', '.join(self.enum)}"
        if self.strip:
            value = value.strip(_BLANK)
        if "\x00" in value:
            return None, "must not contain NUL characters"
        if not _is_utf8(value):  # lone surrogates from JSON "\ud800" cannot be stored
            return None, "must be valid Unicode text"
        if self.required and not value:
            return None, "is required"
        if self.min_length is not None and len(value) < self.min_length:
            return None, f"must be at least {self.min_length} characters"
        if self.pattern is not None and value and not re.fullmatch(self.pattern, value):
            return None, "has characters or a form that is not allowed"
        return value, None

    def json_schema(self) -> dict[str, Any]:
        """The field as JSON Schema, saying what check() accepts: null for any field that is not
        required, blanks around a pattern (they are dropped) and, unless required or given a
        minimum length, an empty string."""
        if self.type == "file":
            return {"type": "string", "format": "binary", "description": self.description}
        nullable = self.nullable or not self.required
        schema: dict[str, Any] = {"type": [self.type, "null"] if nullable else self.type}
        bounds = {"minimum": self.minimum, "maximum": self.maximum}
        for key, value in (
            ("minLength", self.min_length if self.type == "string" else None),
            ("maxLength", self.max_length if self.type == "string" else None),
            ("maxItems", self.max_length if self.type == "array" else None),
            ("pattern", self._json_pattern()),
            *(bounds.items() if self.type == "integer" else ()),
            ("description", self.description or None),
        ):
            if value is not None:
                schema[key] = value
        if self.enum is not None:
            schema["enum"] = [*self.enum, None] if nullable else list(self.enum)
        if self.items:
            schema["items"] = {"type": self.items, **{k: v for k, v in bounds.items() if v is not None}}
        return schema

    def _json_pattern(self) -> str | None:
        if self.pattern is None:
            return None
        blank = _BLANK_PATTERN if self.strip else ""
        empty = not self.required and not self.min_length
        return f"^{blank}(?:{self.pattern}){'?' if empty else ''}{blank}$"


# What a string field loses at its ends (str.strip() would also take characters JSON Schema's \s does not).
_BLANK = " \t\n\r\v\f"
_BLANK_PATTERN = r"[ \t\n\r\v\f]*"


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
            elif name in data and (value is not None or spec.nullable):  # else null is as good as absent
                clean[name] = value
        if errors:
            raise ApiError(422, "invalid", "Some fields need attention.", errors)
        return clean

    @property
    def required(self) -> bool:
        """Whether a request must send a body: an empty one stands for {} only when no field is required."""
        return any(spec.required for spec in self.fields.values())

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {name: spec.json_schema() for name, spec in self.fields.items()},
            "required": [name for name, spec in self.fields.items() if spec.required],
            "additionalProperties": False,
        }


MAX_JSON_DEPTH = 32  # nesting of arrays and objects in a request body; tica's own bodies use 2


def parse_json(body: bytes) -> Any:
    """A request body as JSON (UTF-8); 400 when it is not JSON or nests deeper than MAX_JSON_DEPTH,
    which is checked before parsing, so a hostile body never reaches the parser's recursion."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_json", "The request body is not valid UTF-8 JSON.") from None
    if _nesting(text) > MAX_JSON_DEPTH:
        raise ApiError(400, "too_deep", f"The request body nests arrays or objects more than {MAX_JSON_DEPTH} deep.")
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError(400, "bad_json", "The request body is not valid JSON.") from None


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def _nesting(text: str) -> int:
    """How deep the brackets outside strings go (at least; it stops counting past the limit)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match[0] in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                break
    return deepest


async def read_json(request: Request, schema: Schema) -> dict[str, Any]:
    """The request body, parsed and validated against schema (an empty body is {}, which a schema
    with required fields refuses)."""
    body = await request.body()
    return schema.validate(parse_json(body) if body else {})


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
    try:
        value = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ApiError(404, "not_found", "Not found.") from None
    if not 0 < value <= MAX_PATH_ID:
        raise ApiError(404, "not_found", "Not found.")
    return value


# --- ids in paths -------------------------------------------------------------------------


MAX_PATH_ID = 10**18 - 1  # every id fits PostgreSQL's bigint with room to spare


class IdConvertor(Convertor[int]):
    """`{name:int}` in every tica route: a positive id of at most 18 digits, no sign, no leading
    zero. Anything else matches no route, so a huge id is a 404 rather than an overflow in the
    database driver. Registered as "int" (replacing Starlette's unbounded one) when this module is
    imported, which every service does before it declares a route."""

    regex = "[1-9][0-9]{0,17}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 < value <= MAX_PATH_ID:
            raise ValueError(f"{value} cannot be an id")
        return str(value)


register_url_convertor("int", IdConvertor())


# --- answers: the JSON shapes the endpoints send -------------------------------------------


@dataclass(frozen=True)
class Shape:
    """A named JSON answer, as the OpenAPI document describes it.

    Each field maps to a type: "string", "integer", "number", "boolean", "datetime" (ISO 8601),
    "object" (any object), "any"; a "?" after it when it may be null. Or a dict (an object of
    such fields), a one-item list (a list of that) or another Shape. A field whose name ends in
    "?" may be absent (it depends on the viewer or the case); Maybe(type) is that type or null.
    Other fields may be added later:
    clients ignore what they do not know.
    """

    name: str
    fields: dict[str, Any]

    def extend(self, name: str, fields: dict[str, Any]) -> Shape:
        """This shape with more fields (or some replaced), under another name."""
        return Shape(name, {**self.fields, **fields})


@dataclass(frozen=True)
class Maybe:
    """A Shape's field that is `of` or null."""

    of: Any


def page_of(item: Shape, name: str | None = None, *, next_type: str = "integer?") -> Shape:
    """A list answer: `{items: [item], next}` (the next page, or null on the last)."""
    return Shape(name or f"{item.name}List", {"items": [item], "next": next_type})


@dataclass(frozen=True)
class File:
    """An answer that is a file, not JSON: its media types ("*/*": whatever the file is)."""

    description: str
    media_types: tuple[str, ...] = ("*/*",)


# A description and a shape may be followed by the media types of other forms of the answer (a CSV export).
Answer = str | Shape | File | tuple[str, Shape] | tuple[str, Shape, str]

STATUS = Shape("Status", {"status": "string", "message?": "string"})


# --- routes and the OpenAPI document --------------------------------------------------


@dataclass
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    tag: str
    body: Schema | None
    answers: Mapping[int, Answer]
    auth: bool
    query: Mapping[str, str | Field] = field(default_factory=dict)
    form: Schema | None = None


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
        answers: Mapping[int, Answer] | None = None,
        auth: bool = False,
        query: Mapping[str, str | Field] | None = None,
        form: Schema | None = None,
    ) -> Callable[[Endpoint], Endpoint]:
        """Declare an endpoint. `answers` maps each status to a Shape (or a description and a Shape,
        or a File); a status of 204 or 400 and above to a description. `query` maps each query
        parameter to a Field (or a description: any string). `form` documents a multipart/form-data
        body (an upload), which the endpoint reads itself."""

        def register(endpoint: Endpoint) -> Endpoint:
            summary = (endpoint.__doc__ or endpoint.__name__).strip().splitlines()[0]
            self.operations.append(
                Operation(
                    method, path, endpoint, summary, self.tag, body, answers or {200: "OK"}, auth, query or {}, form
                )
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


_PATH_PARAM = re.compile(r"{([a-z_]+)(?::([a-z]+))?}")

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
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_PATH_ID}


def _path_schema(name: str, convertor: str) -> dict[str, Any]:
    """An `{x:int}` parameter, or one named `id` or `..._id` (read with path_int, 404 for anything
    else), is an id; any other is a string without a slash."""
    if convertor == "int" or name == "id" or name.endswith("_id"):
        return _ID_SCHEMA
    return {"type": "string", "pattern": "^[^/]+$"}


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
        {"name": name, "in": "path", "required": True, "schema": _path_schema(name, convertor)}
        for name, convertor in _PATH_PARAM.findall(op.path)
    ]
    params += [_query_param(name, spec) for name, spec in op.query.items()]
    if params:
        doc["parameters"] = params
    if op.body is not None:
        schemas[op.body.name] = op.body.json_schema()
        doc["requestBody"] = {
            "required": op.body.required,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.name}"}}},
        }
    if op.form is not None:
        doc["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": op.form.json_schema()}}}
    for status, answer in op.answers.items():
        doc["responses"][str(status)] = _response(status, answer, schemas)
    doc["responses"]["4XX"] = {"description": "Client error", "content": _ERROR}
    if op.auth:
        doc["security"] = [{"session": []}, {"token": []}]
    return doc


def _query_param(name: str, spec: str | Field) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": spec}
    schema = spec.json_schema()
    schema.pop("description", None)
    schema["type"] = spec.type  # a query string is never null: absent is the default
    if "enum" in schema:  # query_choice: empty is the default too
        schema["enum"] = [value for value in schema["enum"] if value is not None] + ([] if spec.required else [""])
    elif spec.type == "integer" and not spec.required:  # query_int: empty is the default too
        schema = {"anyOf": [schema, {"const": ""}]}
    param = {"name": name, "in": "query", "required": spec.required, "schema": schema}
    if spec.description:
        param["description"] = spec.description
    return param


def _response(status: int, answer: Answer, schemas: dict[str, Any]) -> dict[str, Any]:
    if isinstance(answer, File):
        return {"description": answer.description, "content": {t: {"schema": {}} for t in answer.media_types}}
    if isinstance(answer, str):
        if status == 204:
            return {"description": answer}
        content = _ERROR if status >= 400 else {"application/json": {"schema": {"type": "object"}}}
        return {"description": answer, "content": content}
    description, shape, *others = answer if isinstance(answer, tuple) else (answer.name, answer)
    content = {"application/json": {"schema": _schema_of(shape, schemas)}}
    return {"description": description, "content": {**content, **{media: {"schema": {}} for media in others}}}


_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "object": {"type": "object"},
    "any": {},
}


def _schema_of(spec: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a Shape's field type (module docstring of Shape); Shapes become components."""
    if isinstance(spec, Shape):
        built = _schema_of(spec.fields, schemas)
        if schemas.setdefault(spec.name, built) != built:
            raise ValueError(f"two shapes are named {spec.name}")
        return {"$ref": f"#/components/schemas/{spec.name}"}
    if isinstance(spec, Maybe):
        return {"anyOf": [_schema_of(spec.of, schemas), {"type": "null"}]}
    if isinstance(spec, dict):
        return {
            "type": "object",
            "properties": {name.rstrip("?"): _schema_of(value, schemas) for name, value in spec.items()},
            "required": [name for name in spec if not name.endswith("?")],
        }
    if isinstance(spec, list):
        (item,) = spec
        return {"type": "array", "items": _schema_of(item, schemas)}
    base, nullable = spec.removesuffix("?"), spec.endswith("?")
    schema = dict(_TYPES[base])
    if nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema
