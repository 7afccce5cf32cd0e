"""`tica serve --workers N`: one port, a listening socket per worker, connections spread across
the workers by the kernel, SIGTERM stops them all, and a taken port is a one-line error."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from redis.exceptions import ResponseError

from services.notify.writer import GROUP
from shared.events import stream_name
from shared.settings import Settings

TICA = str(Path(sys.executable).parent / "tica")
pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="SO_REUSEPORT is Linux/BSD only")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_environment(settings: Settings) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in {"DATA_DIR", "PORT"}}
    environ.update(
        DATABASE_URL=settings.database_url or "",
        REDIS_URL=settings.redis_url or "",
        TICA_REDIS_PREFIX=settings.redis_prefix,
        TICA_SECRET_KEY=settings.secret_key or "",
        TICA_LOG_LEVEL="WARNING",
    )
    return environ


def connection_owners(port: int) -> dict[int, int]:
    """Established server-side connections on the port, counted by the pid holding them."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    counts: dict[int, int] = {}
    for line in out.splitlines():
        for pid in set(re.findall(r"pid=(\d+)", line)):
            counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def listeners(port: int) -> list[set[int]]:
    """The listening sockets on the port, each as the set of pids holding it."""
    out = subprocess.run(["ss", "-tlnpH", f"( sport = :{port} )"], capture_output=True, text=True, check=True).stdout
    return [{int(pid) for pid in re.findall(r"pid=(\d+)", line)} for line in out.splitlines()]


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def test_workers_each_take_a_share_of_the_connections_and_stop_together(migrated: Settings):
    port = free_port()
    serve = subprocess.Popen(
        [TICA, "serve", "forum", "--workers", "2", "--port", str(port)],
        env=serve_environment(migrated),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, serve.communicate()[1][-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tica serve was not ready in 60 s"
            time.sleep(0.1)
        time.sleep(2)  # both workers listening (healthz answered from one of them)
        sockets = listeners(port)
        workers = {pid for holders in sockets for pid in holders} - {serve.pid}
        # A socket of its own for each worker (the parent keeps them all open): with one shared socket,
        # whichever worker is idle when a burst of connections comes takes most of it.
        assert len(sockets) == 2 and len(workers) == 2, sockets
        assert all(len(holders - {serve.pid}) == 1 for holders in sockets), sockets

        for _ in range(64):  # as a load generator opens its connections: all at once
            clients.append(socket.create_connection(("127.0.0.1", port)))
        deadline = time.monotonic() + 10
        while sum(connection_owners(port).values()) < 64 and time.monotonic() < deadline:
            time.sleep(0.1)
        owners = {pid: n for pid, n in connection_owners(port).items() if pid in workers}
        # Spread by the kernel's hash of each connection: two workers with a fair share each (a worker
        # with fewer than 12 of 64 happens about once in ten million runs).
        assert len(owners) == 2 and min(owners.values()) >= 12, owners

        serve.send_signal(signal.SIGTERM)
        _, stderr = serve.communicate(timeout=30)
        assert "Traceback" not in stderr, stderr[-3000:]
    finally:
        for client in clients:
            client.close()
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    deadline = time.monotonic() + 10
    while (alive := [pid for pid in workers if Path(f"/proc/{pid}").exists()]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive == []


def test_a_taken_port_is_a_one_line_error(migrated: Settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [TICA, "serve", "forum", "--workers", "2", "--port", str(port)],
            env=serve_environment(migrated),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(rf"^tica: cannot listen on [0-9.]+:{port}: Address already in use$", result.stderr, re.M)


@pytest.mark.asyncio(loop_scope="session")
async def test_each_worker_keeps_its_consumer_name_across_a_restart(migrated: Settings, redis) -> None:
    """Worker N of `tica serve notify --workers 2` is `<host>-N` in its consumer group, and so is the
    worker that replaces it: a replacement takes back the events its predecessor had not acknowledged
    at once, instead of after TICA_RECLAIM_IDLE_S."""
    port = free_port()
    serve = subprocess.Popen(
        [TICA, "serve", "notify", "--workers", "2", "--port", str(port)],
        env=serve_environment(migrated),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stream, host = stream_name(migrated.redis_prefix), socket.gethostname()
    expected = {f"{host}-0", f"{host}-1"}

    async def consumers_once_both_read() -> set[str]:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, serve.communicate()[1][-3000:]
            with contextlib.suppress(ResponseError):  # no group yet
                seen = {c["name"].decode() for c in await redis.xinfo_consumers(stream, GROUP)}
                if expected <= seen:
                    return seen
            assert time.monotonic() < deadline, f"consumers {expected} not seen in 60 s"
            await asyncio.sleep(0.2)

    try:
        assert await consumers_once_both_read() == expected
        workers = children_of(serve.pid)
        os.kill(max(workers), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not children_of(serve.pid) - workers:  # the supervisor starts a replacement
            assert time.monotonic() < deadline, "no replacement worker in 30 s"
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # the replacement's consumer is reading by now
        assert await consumers_once_both_read() == expected  # no third name for the replacement
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
        serve.communicate()  # reaps it and closes its pipes
