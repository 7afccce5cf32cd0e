"""A client that leaves while its request body is being read (a phone losing signal mid-post) is
logged once, at info level, as a client that left: no traceback, no error."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
import uvicorn

from services.allinone import AllInOne
from services.runner import SERVER_OPTIONS
from shared.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_client_leaving_mid_body_is_logged_once_at_info(
    migrated: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """POST /api/session with half its body, then the connection closes: one info line, nothing at error."""
    caplog.set_level(logging.INFO)
    port = _free_port()
    app = AllInOne(migrated.replace(port=port), background=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **SERVER_OPTIONS))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.02)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"login": "ada", "pass'
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.5)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)

    left = [r for r in caplog.records if "client left" in r.getMessage()]
    assert [r.levelname for r in left] == ["INFO"], [r.getMessage() for r in caplog.records]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, errors
