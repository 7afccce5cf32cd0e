"""`tica run`: the whole product from one command on embedded servers, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TICA = str(Path(sys.executable).parent / "tica")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A DATA_DIR outside pytest's own temporary folder.

    The embedded PostgreSQL runs as another user (tests run as root) and must reach its
    folder; pytest resets its base folder to mode 700 whenever another run starts.
    """
    folder = Path(tempfile.mkdtemp(prefix="tica-cli-"))
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        pid, ppid, *args = line.split(None, 2)
        table[int(pid)] = (int(ppid), args[0] if args else "")
    return table


def descendants(root: int) -> set[int]:
    table = processes()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def mentioning(text: str) -> list[str]:
    return [f"{pid} {args}" for pid, (_, args) in processes().items() if text in args and "pytest" not in args]


def wait_ready(url: str, process: subprocess.Popen[str], timeout_s: float) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready after {timeout_s}s"
        time.sleep(0.1)


def test_tica_run_serves_shares_its_servers_and_stops_on_ctrl_c(data_dir):
    """`tica run` with no server URLs is ready within 60 s, shares its embedded servers with `tica migrate`,
    and on SIGINT stops within 20 s leaving no process behind."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "TICA_SECRET_KEY"}}
    environ.update(DATA_DIR=str(data_dir), PORT=str(port), TICA_LOG_LEVEL="INFO")  # a newcomer's default
    base = f"http://127.0.0.1:{port}"
    run = subprocess.Popen(
        [TICA, "run"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        ready = wait_ready(f"{base}/readyz", run, 60)
        assert ready.json()["status"] == "ok"
        # The home page is not built yet: for now `/` only has to answer without a server error.
        assert httpx.get(f"{base}/", timeout=5).status_code < 500
        children = descendants(run.pid)

        migrate = subprocess.run([TICA, "migrate"], env=environ, capture_output=True, text=True, timeout=60)
        assert migrate.returncode == 0, migrate.stderr
        assert migrate.stdout.strip() == "applied 0 migration(s)"
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200  # migrate left the shared servers running

        # Ctrl-C in a terminal: SIGINT to the whole foreground process group, embedded servers included
        # unless they keep out of it.
        os.killpg(run.pid, signal.SIGINT)
        stdout, stderr = run.communicate(timeout=20)
        assert run.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr and "Shutting down" not in stderr, stderr[-3000:]  # no lifecycle chatter
        assert stdout.rstrip().endswith("tica stopped.")
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()

    deadline = time.monotonic() + 5
    while (left := mentioning(str(data_dir))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []
    # A child that ended after tica did (the multiprocessing resource tracker) is a zombie until the
    # machine's init reaps it, which this sandbox's init does late: it holds nothing, so it is gone.
    running = {pid for pid, (_, args) in processes().items() if not args.endswith("<defunct>")}
    assert children and not children & running


def test_two_commands_started_together_on_a_fresh_data_dir_both_succeed(data_dir):
    """Two `tica migrate` at once on a fresh DATA_DIR both succeed, print no error, and leave nothing running."""
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "TICA_SECRET_KEY"}}
    environ.update(DATA_DIR=str(data_dir), TICA_LOG_LEVEL="WARNING")
    runs = [
        subprocess.Popen([TICA, "migrate"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all(stderr == "" for _, stderr in outputs), outputs  # e.g. no "database tica already exists"
    assert sorted(stdout.startswith("applied 0 ") for stdout, _ in outputs) == [False, True]
    assert mentioning(str(data_dir)) == []
