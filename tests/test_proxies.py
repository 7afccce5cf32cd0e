"""Behind a proxy: whose forwarded headers tica believes (TICA_TRUSTED_PROXIES), so rate limits count
clients rather than the proxy and cookies stay Secure; and /dev/mail only where no one else can reach it.

The server is real uvicorn with the options `tica serve` and `tica run` use (runner.server_options).
Clients connect from other loopback addresses (127.0.0.5, 127.0.0.6) to play a proxy and a stranger.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import uvicorn

from services.allinone import AllInOne
from services.forum.accounts.passwords import hash_password
from services.runner import banner, dev_mail_allowed, server_options
from shared.settings import Settings, SettingsError

PROXY = "127.0.0.5"
STRANGER = "127.0.0.6"
PASSWORD = "a long and careful passphrase"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The whole product under uvicorn with tica's server options; its base URL."""
    port = _free_port()
    config = uvicorn.Config(
        AllInOne(settings.replace(port=port), background=False), host="127.0.0.1", port=port, **server_options(settings)
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def client_from(address: str, base: str) -> httpx.AsyncClient:
    """A client whose connections come from this loopback address."""
    return httpx.AsyncClient(base_url=base, transport=httpx.AsyncHTTPTransport(local_address=address), timeout=30)


@pytest_asyncio.fixture(loop_scope="session")
async def member(migrated: Settings, pool, empty_state) -> str:
    """A member who can log in with PASSWORD; their username."""
    await pool.execute(
        "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at) "
        "VALUES ('rowan', 'rowan@example.org', $1, 'Rowan', '{member}', now())",
        await hash_password(PASSWORD),
    )
    return "rowan"


async def _fail_logins(http: httpx.AsyncClient, count: int) -> None:
    """`count` wrong logins, each for another login name and from another client behind the proxy."""
    for n in range(count):
        response = await http.post(
            "/api/session",
            json={"login": f"nobody{n}", "password": "wrong password here"},
            headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
        )
        assert response.status_code == 401, response.text


@pytest.mark.asyncio(loop_scope="session")
async def test_clients_behind_a_trusted_proxy_are_counted_apart(migrated: Settings, member: str) -> None:
    """20 failed logins from 20 clients behind the proxy do not lock out a 21st client's correct login."""
    settings = migrated.replace(trusted_proxies=(PROXY,))
    async with serving(settings) as base, client_from(PROXY, base) as http:
        await _fail_logins(http, 20)
        response = await http.post(
            "/api/session",
            json={"login": member, "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.77"},
        )
        assert response.status_code == 200, response.text


@pytest.mark.asyncio(loop_scope="session")
async def test_forwarded_headers_from_anyone_else_are_ignored(migrated: Settings, member: str) -> None:
    """A client not in TICA_TRUSTED_PROXIES cannot dodge the address limit by inventing X-Forwarded-For."""
    settings = migrated.replace(trusted_proxies=(PROXY,))
    async with serving(settings) as base, client_from(STRANGER, base) as http:
        await _fail_logins(http, 20)
        response = await http.post(
            "/api/session",
            json={"login": member, "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.77"},
        )
        assert response.status_code == 429, response.text
        assert int(response.headers["retry-after"]) > 0


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(
    ("base_url", "forwarded_proto", "secure"),
    [
        ("https://tica.example.org", None, True),  # public over https: Secure even if the proxy says nothing
        ("http://127.0.0.1:8000", "https", True),  # the trusted proxy says the client used https
        ("http://127.0.0.1:8000", None, False),  # plain http in development: cookies must still work
    ],
)
async def test_session_cookies_are_secure_when_the_site_is_https(
    migrated: Settings, member: str, base_url: str, forwarded_proto: str | None, secure: bool
) -> None:
    settings = migrated.replace(trusted_proxies=(PROXY,), base_url=base_url)
    headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
    async with serving(settings) as base, client_from(PROXY, base) as http:
        response = await http.post("/api/session", json={"login": member, "password": PASSWORD}, headers=headers)
        assert response.status_code == 200, response.text
        cookies = response.headers.get_list("set-cookie")
        assert {c.split("=", 1)[0] for c in cookies} == {"tica_session", "tica_csrf"}
        for cookie in cookies:
            assert ("; secure" in cookie.lower()) is secure, cookie


def test_trusted_proxies_setting() -> None:
    """Addresses and networks, IPv4 and IPv6, comma-separated; anything else stops start-up naming it."""
    env = {"TICA_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,fd00::/8"}
    assert Settings.from_env(env).trusted_proxies == ("10.0.0.0/8", "192.0.2.7", "fd00::/8")
    assert Settings.from_env({}).trusted_proxies == ("127.0.0.1",)
    for bad in ("*", "proxy.local", "10.0.0.0/33", " , "):
        with pytest.raises(SettingsError, match="TICA_TRUSTED_PROXIES is invalid"):
            Settings.from_env({"TICA_TRUSTED_PROXIES": bad})


def test_dev_mail_only_in_the_embedded_run_on_loopback() -> None:
    """/dev/mail shows reset links: only the embedded one-command run, listening on loopback, shows it."""
    embedded = Settings(embedded=True)
    assert dev_mail_allowed(embedded, "127.0.0.1")
    assert dev_mail_allowed(embedded, "localhost")
    assert dev_mail_allowed(embedded, "::1")
    assert not dev_mail_allowed(embedded, "0.0.0.0")
    assert not dev_mail_allowed(embedded, "192.0.2.10")
    assert not dev_mail_allowed(Settings(embedded=False), "127.0.0.1")  # real servers: DATABASE_URL set
    assert not dev_mail_allowed(embedded.replace(smtp_url="smtp://mail:25"), "127.0.0.1")


def test_start_up_says_where_mail_goes() -> None:
    shown = banner(Settings(embedded=True, dev_mail=True), "127.0.0.1")
    assert "read it at http://127.0.0.1:8000/dev/mail" in shown
    hidden = banner(Settings(embedded=True, dev_mail=False), "0.0.0.0")
    assert "/dev/mail" in hidden and "set SMTP_URL" in hidden and "read it at" not in hidden
