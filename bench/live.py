"""Live updates benchmark: many websocket clients on one notify process.

    .venv/bin/python bench/live.py [--clients 1000 5000 10000] [--events 30] [--interval 0.5]
                                   [--client-processes 4] [--compression]

For each number of clients, two servers in turn, each in a process of its own:
  notify  services/notify's app under uvicorn (its writer and live fan-out running),
          every client subscribed to `topic:1`;
  bare    a bare `websockets` server that XREADs the same stream and broadcasts each
          entry to every connection (websockets.broadcast): the floor for notify.
Clients run in separate processes (asyncio in each), each bound to its own loopback
address. Events are committed one at a time to forum.outbox and published by a real
Relay (LISTEN/NOTIFY), exactly as the forum does. Measured: commit -> receive per
(client, event) as p50/p99/max, and memory per connection: the server's RSS after
every client subscribed minus before any connected, divided by the clients.

Real servers: TICA_BENCH_DATABASE_URL / TICA_BENCH_REDIS_URL (default the local ones);
a database `tica_bench_<random>` and a key prefix of its own, removed at the end.
TICA_BENCH_PROFILE=/tmp/notify.prof runs the notify server under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import multiprocessing as mp
import os
import resource
import secrets
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis

from bench.events import REDIS_URL, bench_database, delete_prefix
from services.forum.outbox import OUTBOX as FORUM_OUTBOX
from shared import db
from shared.events import STREAM_FIELD, CategoryCreated, PostCreated, Relay, TopicCreated, stream_name, write_event
from shared.settings import Settings

SECRET = "bench-secret-" + "x" * 40


def raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the servers (each in its own process) ---------------------------------------------------


def notify_server(database_url: str, redis_url: str, prefix: str, port: int, compression: bool) -> None:
    import uvicorn

    from services.notify.app import create_app

    raise_file_limit()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env({}).replace(
        database_url=database_url, redis_url=redis_url, redis_prefix=prefix, secret_key=SECRET, port=port
    )
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
        ws="websockets-sansio",
        ws_per_message_deflate=compression,
        backlog=4096,
    )
    profile_to = os.environ.get("TICA_BENCH_PROFILE")
    if not profile_to:
        uvicorn.Server(config).run()
        return
    import cProfile
    import signal

    def stop(*_: Any) -> None:  # uvicorn re-raises SIGTERM after its shutdown: end normally, with the profile
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    profiler = cProfile.Profile()
    try:
        profiler.runcall(uvicorn.Server(config).run)
    finally:
        profiler.dump_stats(profile_to)


def bare_server(redis_url: str, prefix: str, port: int, compression: bool) -> None:
    raise_file_limit()
    asyncio.run(_bare(redis_url, prefix, port, compression))


async def _bare(redis_url: str, prefix: str, port: int, compression: bool) -> None:
    import websockets
    from websockets.asyncio.server import serve

    connections: set[Any] = set()

    async def handler(ws: Any) -> None:
        connections.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connections.discard(ws)

    redis = aioredis.Redis.from_url(redis_url)
    stream = stream_name(prefix)
    async with serve(handler, "127.0.0.1", port, compression="deflate" if compression else None, backlog=4096):
        last = "$"
        while True:
            reply = await redis.xread({stream: last}, count=100, block=1000)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    envelope = json.loads(fields[STREAM_FIELD.encode()])
                    data = envelope["data"]
                    text = json.dumps(
                        {
                            "type": "event",
                            "id": entry_id.decode(),
                            "channel": "topic:1",
                            "event": envelope["type"],
                            "data": {"post_id": data.get("post_id")},
                        }
                    )
                    websockets.broadcast(connections, text)


# --- the clients (in several processes) --------------------------------------------------------


def client_process(
    url: str, count: int, local_ip: str, subscribe: bool, compression: bool, ready: Any, stop: Any, results: Any
) -> None:
    raise_file_limit()
    asyncio.run(_clients(url, count, local_ip, subscribe, compression, ready, stop, results))


async def _clients(
    url: str, count: int, local_ip: str, subscribe: bool, compression: bool, ready: Any, stop: Any, results: Any
) -> None:
    from websockets.asyncio.client import connect

    received: list[tuple[int, float]] = []
    opened: list[Any] = []
    gate = asyncio.Semaphore(50)
    failures = 0

    async def open_one() -> None:
        nonlocal failures
        async with gate:
            for attempt in range(5):
                try:
                    ws = await connect(
                        url,
                        local_addr=(local_ip, 0),
                        open_timeout=60,
                        max_queue=None,
                        compression="deflate" if compression else None,
                        ping_interval=None,
                    )
                    break
                except (OSError, TimeoutError, Exception):
                    await asyncio.sleep(0.2 * (attempt + 1))
            else:
                failures += 1
                return
            if subscribe:
                await ws.send(json.dumps({"type": "subscribe", "channels": ["topic:1"], "last_event_id": None}))
                while json.loads(await ws.recv())["type"] != "subscribed":
                    pass
            opened.append(ws)

    await asyncio.gather(*(open_one() for _ in range(count)))
    ready.put((len(opened), failures))

    async def listen(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                at = time.time()
                message = json.loads(raw)
                if message.get("type") == "event":
                    received.append((int(message["data"]["post_id"]), at))

    listeners = [asyncio.create_task(listen(ws)) for ws in opened]
    while not stop.is_set():
        await asyncio.sleep(0.1)
    results.put(received)
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    clients: int
    connected: int
    events: int
    expected: int
    latencies_ms: list[float]
    rss_before: int
    rss_after: int
    setup_s: float

    def row(self) -> list[str]:
        q = (
            statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
            if len(self.latencies_ms) > 1
            else [0] * 99
        )
        per_conn = (self.rss_after - self.rss_before) / max(self.connected, 1) / 1024
        return [
            self.server,
            f"{self.clients:,}",
            f"{self.connected:,}",
            f"{len(self.latencies_ms):,}/{self.expected:,}",
            f"{q[49]:.0f}",
            f"{q[98]:.0f}",
            f"{max(self.latencies_ms or [0]):.0f}",
            f"{per_conn:.1f}",
            f"{self.rss_after / 2**20:.0f}",
            f"{self.setup_s:.0f}",
        ]


async def wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


async def run_one(
    kind: str,
    clients: int,
    *,
    database_url: str,
    prefix: str,
    pool: Any,
    redis: aioredis.Redis,
    events: int,
    interval_s: float,
    processes: int,
    compression: bool,
    run_index: int,
) -> Result:
    ctx = mp.get_context("spawn")
    port = free_port()
    if kind == "notify":
        server = ctx.Process(target=notify_server, args=(database_url, REDIS_URL, prefix, port, compression))
    else:
        server = ctx.Process(target=bare_server, args=(REDIS_URL, prefix, port, compression))
    server.start()
    try:
        await wait_port(port)
        await asyncio.sleep(2)  # start-up settles
        assert server.pid is not None
        rss_before = rss_bytes(server.pid)
        ready, stop, results = ctx.Queue(), ctx.Event(), ctx.Queue()
        per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        started = time.monotonic()
        workers = [
            ctx.Process(
                target=client_process,
                args=(
                    f"ws://127.0.0.1:{port}/live" if kind == "notify" else f"ws://127.0.0.1:{port}/",
                    n,
                    f"127.{run_index % 250 + 1}.{i + 1}.1",
                    kind == "notify",
                    compression,
                    ready,
                    stop,
                    results,
                ),
            )
            for i, n in enumerate(per)
        ]
        for worker in workers:
            worker.start()
        counts = [await asyncio.to_thread(ready.get, True, 600) for _ in workers]
        connected = sum(c for c, _ in counts)
        setup_s = time.monotonic() - started
        await asyncio.sleep(3)
        gc.collect()
        rss_after = rss_bytes(server.pid)
        sent: dict[int, float] = {}
        for n in range(events):
            post_id = 1_000_000 * (run_index + 1) + n
            async with pool.acquire() as conn, conn.transaction():
                await write_event(conn, post_event(post_id), actor_id=2, outbox=FORUM_OUTBOX)
                sent[post_id] = time.time()  # just before COMMIT
            await asyncio.sleep(interval_s)
        await asyncio.sleep(max(3.0, clients / 2000))
        stop.set()
        received = []
        for _ in workers:
            received += await asyncio.to_thread(results.get, True, 120)
        for worker in workers:
            await asyncio.to_thread(worker.join, 60)
        latencies = [(at - sent[pid]) * 1000 for pid, at in received if pid in sent]
        return Result(kind, clients, connected, events, connected * events, latencies, rss_before, rss_after, setup_s)
    finally:
        server.terminate()
        await asyncio.to_thread(server.join, 20)
        if server.is_alive():
            server.kill()


def post_event(post_id: int) -> PostCreated:
    return PostCreated(
        post_id=post_id,
        topic_id=1,
        post_number=post_id % 100_000 + 2,
        category_id=1,
        topic_title="Grounding techniques that helped our team",
        author_id=2,
        author_username="jordan",
        text="We started each handover with two minutes of grounding. " * 6,
        content_note=None,
        audience=["public"],
        reply_to_post_id=None,
        reply_to_user_id=None,
        mentioned_user_ids=[],
        quoted_user_ids=[],
        created_at="2026-01-01T12:00:00+00:00",
    )


def table(results: list[Result]) -> str:
    head = [
        "server",
        "clients",
        "connected",
        "received",
        "p50 ms",
        "p99 ms",
        "max ms",
        "KiB/conn",
        "RSS MiB",
        "setup s",
    ]
    rows = [head, *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    )


async def main(sizes: list[int], events: int, interval_s: float, processes: int, compression: bool) -> None:
    raise_file_limit()
    prefix = f"tica-bench-{secrets.token_hex(4)}:"
    redis = aioredis.Redis.from_url(REDIS_URL)
    load_before = os.getloadavg()[0]
    results: list[Result] = []
    try:
        async with bench_database() as url:
            pool = await db.create_pool(url, min_size=2, max_size=4)
            relay = Relay(pool, redis, stream_name(prefix), FORUM_OUTBOX)
            stop = asyncio.Event()
            relaying = asyncio.create_task(relay.run(stop, url))
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await write_event(
                        conn,
                        CategoryCreated(category_id=1, slug="practice", name="Practice", audience=["public"]),
                        actor_id=1,
                        outbox=FORUM_OUTBOX,
                    )
                    await write_event(
                        conn,
                        TopicCreated(
                            topic_id=1,
                            category_id=1,
                            title="Grounding",
                            slug="grounding",
                            kind="discussion",
                            author_id=1,
                            author_username="sam",
                            audience=["public"],
                            content_note=None,
                            created_at="2026-01-01T12:00:00+00:00",
                        ),
                        actor_id=1,
                        outbox=FORUM_OUTBOX,
                    )
                run_index = 0
                for clients in sizes:
                    for kind in ("bare", "notify"):
                        run_index += 1
                        result = await run_one(
                            kind,
                            clients,
                            database_url=url,
                            prefix=prefix,
                            pool=pool,
                            redis=redis,
                            events=events,
                            interval_s=interval_s,
                            processes=processes,
                            compression=compression,
                            run_index=run_index,
                        )
                        results.append(result)
                        print(table([result]).splitlines()[-1], flush=True)
                        await asyncio.sleep(2)
            finally:
                stop.set()
                await relaying
                await pool.close()
    finally:
        await delete_prefix(redis, prefix)
        await redis.aclose()
    print()
    print(table(results))
    print(
        f"compression: {'permessage-deflate' if compression else 'off'}; {events} events, one every "
        f"{interval_s}s; {processes} client processes; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 5000, 10_000])
    parser.add_argument("--events", type=int, default=30, help="events published per run")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between events")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument(
        "--compression",
        action="store_true",
        help="permessage-deflate on both sides (off by default, as `tica serve` runs notify)",
    )
    options = parser.parse_args()
    asyncio.run(main(options.clients, options.events, options.interval, options.client_processes, options.compression))
