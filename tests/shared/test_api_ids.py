"""Every route of every service, asked with ids that cannot exist (huge, zero, negative, not a
number): a 404 (or the login, permission or method refusal that comes first), never a 500.

The routes are read from the apps, so a route added later is walked too.
"""

from __future__ import annotations

import re

import httpx
from starlette.routing import Route

from services.allinone import AllInOne
from shared.api import IdConvertor, path_int

BAD_IDS = ("99999999999999999999", str(2**63), str(2**62 + 1), "0", "-1", "007x", "abc")
_PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
# What may come before the 404: no session (401, or a redirect to the login page), no CSRF token
# or permission (403), a method the path does not take (405).
ANONYMOUS_OK = {302, 303, 401, 403, 404, 405}


def _is_id(name: str, convertor: object) -> bool:
    return isinstance(convertor, IdConvertor) or name == "id" or name.endswith("_id")


def _targets(app: AllInOne) -> list[tuple[str, str]]:
    """(method, path) for every method of every route with an id in its path, once per bad id
    (other parameters, such as a username or a token, get a harmless word)."""
    found = []
    for service in app.apps.values():
        for route in service.routes:
            if not isinstance(route, Route) or not route.methods:
                continue
            ids = {name for name, convertor in route.param_convertors.items() if _is_id(name, convertor)}
            if not ids:
                continue
            for bad in BAD_IDS:
                path = _PARAM.sub(lambda m: bad if m[1] in ids else "someone", route.path)
                found += [(method, path) for method in sorted(route.methods)]
    return found


async def _status(client: httpx.AsyncClient, method: str, path: str) -> int | str:
    """The answer's status, or the error the app raised instead of answering."""
    try:
        return (await client.request(method, path)).status_code
    except Exception as exc:
        return f"raised {type(exc).__name__}"


async def test_bad_ids_are_404_for_anonymous_visitors(app: AllInOne, client: httpx.AsyncClient) -> None:
    """Anonymously, every method of every route with a bad id: 404 or an earlier refusal, never 5xx."""
    targets = _targets(app)
    assert len(targets) > 300  # every service's routes were found
    wrong = []
    for method, path in targets:
        status = await _status(client, method, path)
        if status not in ANONYMOUS_OK:
            wrong.append(f"{method} {path}: {status}")
    assert not wrong, "\n".join(wrong)


async def test_bad_ids_are_404_for_an_admin(app: AllInOne, member_factory) -> None:
    """As an admin (whom no permission stops), reading with a bad id is a 404 and writing a 4xx, never 5xx."""
    admin = await member_factory("admin1", roles=("member", "admin"))
    wrong = []
    for method, path in _targets(app):
        status = await _status(admin.client, method, path)
        expected = {404, 405} if method in ("GET", "HEAD") else set(range(400, 500))
        if status not in expected:
            wrong.append(f"{method} {path}: {status}")
    assert not wrong, "\n".join(wrong)


async def test_the_api_answers_404_as_json(client: httpx.AsyncClient) -> None:
    """The examples of issue 12 (ids of 2^63 and above): the API's usual error shape."""
    for path in ("/api/webinars/99999999999999999999", "/api/groups/9223372036854775808", "/api/topics/0"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/webinars/99999999999999999999.ics")).status_code == 404


def test_the_id_convertor_takes_only_ids() -> None:
    """Matching and converting agree with path_int: 1 to 10^18 - 1, written plainly."""
    pattern = re.compile(IdConvertor.regex)
    for text in ("1", "42", "9" * 18):
        assert pattern.fullmatch(text) and IdConvertor().convert(text) == int(text)
    for text in ("0", "01", "-1", "+1", "1.0", "9" * 19, "\uff11"):
        assert not pattern.fullmatch(text), text


def test_path_int_refuses_what_cannot_be_an_id() -> None:
    """path_int (routes whose parameter is a string) refuses the same numbers the convertor does."""
    from starlette.requests import Request

    from shared.web import ApiError

    def ask(value: object) -> int | str:
        request = Request({"type": "http", "path_params": {"id": value}})
        try:
            return path_int(request, "id")
        except ApiError as exc:
            return exc.status

    assert ask("12") == 12
    assert ask(12) == 12
    assert [ask(v) for v in ("0", "-3", "x", 10**18, 2**63, "99999999999999999999")] == [404] * 6
