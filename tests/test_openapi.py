"""/api/openapi.json is a valid OpenAPI 3.1 document listing every API route."""

from openapi_spec_validator import validate
from starlette.routing import Route

from services.allinone import AllInOne


def _api_routes(app: AllInOne) -> set[tuple[str, str]]:
    found = set()
    for service in app.apps.values():
        for route in service.routes:
            if isinstance(route, Route) and route.path.startswith("/api/") and route.methods:
                for method in route.methods - {"HEAD"}:
                    path = route.path.replace(":int", "").replace(":str", "").replace(":path", "")
                    found.add((method.lower(), path))
    return found


async def test_openapi_document_is_valid_and_complete(client, app):
    """The served document validates as OpenAPI 3.1 and has an operation for every API route."""
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    validate(document)
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    missing = _api_routes(app) - documented - {("get", "/api/openapi.json")}
    assert not missing, f"API routes missing from the OpenAPI document: {sorted(missing)}"


def test_validator_rejects_a_broken_document():
    """The validator used above does fail on a broken document."""
    import pytest

    with pytest.raises(Exception):
        validate({"openapi": "3.1.0", "info": {"title": "x"}, "paths": {"/x": {"get": {"responses": 5}}}})
