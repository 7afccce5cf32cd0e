"""Security headers: scripts connect only to the site's own origin (and its websocket), images come
only from the site, and HSTS is sent when the public URL is https."""

from __future__ import annotations

import httpx

from services.notify import app as notify_app
from shared.settings import Settings
from shared.web import build_app


def directives(policy: str) -> dict[str, list[str]]:
    parts = (directive.split() for directive in policy.split(";") if directive.strip())
    return {name: values for name, *values in parts}


async def headers_of(settings: Settings) -> httpx.Headers:
    app = build_app(settings=settings, schema=notify_app.SCHEMA, migrations_dir=notify_app.MIGRATIONS_DIR, routes=[])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.public_url) as http:
        return (await http.get("/healthz")).headers


async def test_an_https_site_sends_hsts_and_allows_only_its_own_websocket(settings: Settings) -> None:
    """connect-src is the site and wss:// to it; img-src has no remote images; HSTS for a year."""
    headers = await headers_of(settings.replace(base_url="https://tica.example.org"))
    policy = directives(headers["content-security-policy"])
    assert policy["connect-src"] == ["'self'", "wss://tica.example.org"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_an_http_site_sends_no_hsts(settings: Settings) -> None:
    """Over http (the one-command run) the websocket is ws:// to the same host and port, and no HSTS."""
    headers = await headers_of(settings.replace(base_url="http://127.0.0.1:8000"))
    assert directives(headers["content-security-policy"])["connect-src"] == ["'self'", "ws://127.0.0.1:8000"]
    assert "strict-transport-security" not in headers


async def test_pages_carry_the_policy(client: httpx.AsyncClient) -> None:
    """The product's own pages (here the latest discussions) carry the same policy."""
    response = await client.get("/")
    assert response.status_code == 200
    policy = directives(response.headers["content-security-policy"])
    assert policy["connect-src"] == ["'self'", "ws://testserver"]
    assert "https:" not in policy["img-src"]
