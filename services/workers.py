"""`tica serve --workers N`: uvicorn's worker supervisor, with a listening socket for each worker.

uvicorn hands every worker one shared socket, and whichever worker wakes first accepts a burst of
new connections: under load one worker ended up with twice the connections of the other, and its
requests waited twice as long. Here each worker listens on a socket of its own, all bound to the
same port with SO_REUSEPORT, and the kernel spreads new connections evenly across them.

The parent keeps every socket open, so a worker that dies and is replaced keeps its place: the
connections that arrive meanwhile wait in its socket's queue for the replacement.
"""

from __future__ import annotations

import logging
import os
import socket

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from shared.events import WORKER_INDEX

log = logging.getLogger("tica.serve")


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port that other sockets may share (SO_REUSEPORT); each worker
    listens on its own (uvicorn calls listen())."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class ReusePortWorkers(Multiprocess):
    """uvicorn's Multiprocess (signals, health checks, restarts), each worker on its own socket."""

    def __init__(self, config: Config) -> None:
        super().__init__(config, sockets=[])
        self.worker_sockets: list[socket.socket] = []

    def _add_socket(self) -> None:
        sock = listening_socket(self.config.host, self.config.port)
        if self.config.port == 0:  # the first socket picked a free port: the others share it
            self.config.port = sock.getsockname()[1]
        self.worker_sockets.append(sock)

    def _process(self, index: int) -> Process:
        """Worker `index` (not started): spawned with its index in the environment, so its consumer
        name is the same as the worker it replaces (shared.events.consumer_name)."""
        os.environ[WORKER_INDEX] = str(index)
        return Process(self.config, [self.worker_sockets[index]])

    def init_processes(self) -> None:
        for index in range(self.processes_num):
            self._add_socket()
            process = self._process(index)
            process.start()
            self.processes.append(process)
        log.info("serving on http://%s:%d with %d workers", self.config.host, self.config.port, self.processes_num)

    def restart_all(self) -> None:
        """Replace each worker (SIGHUP), its replacement serving before the old one stops."""
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._process(index)
            new.start()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    log.error("worker %s was not ready in time; keeping %s", new.pid, old.pid)
                return
            old.terminate()
            old.join()
            self.processes[index] = new

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung or gone
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # it would fail the same way again
                log.error("worker %s failed to start; stopping", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.warning("worker %s died; starting another", process.pid)
            replacement = self._process(index)
            replacement.start()
            self.processes[index] = replacement

    def handle_ttin(self) -> None:
        self.processes_num += 1
        self._add_socket()
        process = self._process(len(self.processes))
        process.start()
        self.processes.append(process)

    def handle_ttou(self) -> None:
        if self.processes_num <= 1:
            return
        self.processes_num -= 1
        process = self.processes.pop()
        process.terminate()
        process.join()
        self.worker_sockets.pop().close()  # no one accepts on it any more: take it out of the group

    def run(self) -> None:
        try:
            super().run()
        finally:
            for sock in self.worker_sockets:
                sock.close()
