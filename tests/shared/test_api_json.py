"""Hostile JSON bodies: nested far too deep, or not JSON at all, get a 400 with a message on every
JSON endpoint of the three services, and leave no traceback in the log."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from services import openapi
from shared.api import MAX_JSON_DEPTH, parse_json
from shared.web import ApiError

DEEP = b"[" * 1000 + b"]" * 1000
_PARAM = re.compile(r"{[a-z_]+(?::[a-z]+)?}")


def _json_endpoints() -> list[tuple[str, str]]:
    """(method, path) of every operation that takes a JSON body, ids filled in with 1."""
    return [
        (op.method, _PARAM.sub("1", op.path))
        for router in openapi.routers()
        for op in router.operations
        if op.body is not None
    ]


async def test_deep_json_is_refused_on_every_endpoint(
    member_factory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """1,000 levels of arrays: 400 `too_deep` for an admin (whom nothing else stops first) and,
    on the endpoints open to all, anonymously; nothing is logged as an error."""
    admin = await member_factory("admin1", roles=("member", "admin"))
    headers = {"content-type": "application/json"}
    endpoints = _json_endpoints()
    assert len(endpoints) > 40
    wrong = []
    with caplog.at_level(logging.INFO):
        for method, path in endpoints:
            for who, http in (("admin", admin.client), ("anonymous", client)):
                response = await http.request(method, path, content=DEEP, headers=headers)
                refused = response.status_code == 400 and response.json()["error"]["code"] == "too_deep"
                if not refused and not (who == "anonymous" and response.status_code in (401, 403)):
                    wrong.append(f"{who} {method} {path}: {response.status_code} {response.text[:100]}")
    assert not wrong, "\n".join(wrong)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], "an error was logged"


def test_nesting_is_counted_outside_strings_only() -> None:
    """Brackets inside strings (escaped quotes included) do not count; the limit itself is allowed."""
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(at_limit.encode()) is not None
    text = '{"a": "' + "[" * 5000 + '\\" [[[", "b": [{"c": "}}}]]]"}]}'
    assert parse_json(text.encode())["b"] == [{"c": "}}}]]]"}]
    for body in (("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode(), DEEP, b'{"a":' * 5000):
        with pytest.raises(ApiError) as refused:
            parse_json(body)
        assert (refused.value.status, refused.value.code) == (400, "too_deep")


def test_bodies_that_are_not_json_are_400() -> None:
    """Not JSON, not UTF-8, or a UTF-8 byte order mark: 400 `bad_json` with a message."""
    for body in (b"{", b"\xff\xfe{}", b"nan!", "\ufeff{}".encode(), b'{"a": 1} x'):
        with pytest.raises(ApiError) as refused:
            parse_json(body)
        assert (refused.value.status, refused.value.code) == (400, "bad_json")
        assert refused.value.message
