"""Soak benchmark: many members at once, for minutes, against `tica serve` processes.

    .venv/bin/python bench/soak.py [--members 500] [--minutes 10] [--reply-every 10] [--page-every 5]
                                   [--per-topic 10] [--forum-workers 2] [--client-processes 2]

The servers are what production runs: `tica serve forum --workers N`, `tica serve notify`,
`tica serve search` and `tica worker`, each its own process. Every member, signed in (a session
cookie, as a browser has), keeps the live websocket open and subscribed to its topic (as a topic
page does), reads topic pages (the first page or the latest one) about every --page-every
seconds and replies in its topic about every --reply-every seconds. Members share topics,
--per-topic to a topic, so each reply is a live event for the others. The members run in
--client-processes processes of asyncio, beside the servers on the same machine.

It prints the errors (client side: non-2xx answers, failed requests, refused or dropped
websockets; server side: every 5xx in the services' access logs), whether every live client
received every post event of its topic (exactly once, resumes included), and the topic page's
p50/p99 measured at the server (each request's `duration_ms` in the JSON access log, which
shared/web.py RequestContext writes, queueing included), per minute, beside a baseline measured
in the same run before the load: the same pages on the idle servers.

Servers: TICA_BENCH_DATABASE_URL and TICA_BENCH_REDIS_URL (default the local ones). It creates
and drops its own database `tica_bench_<random>` and writes Redis keys only under its own prefix,
deleted at the end. Loopback only; every load is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.events import REDIS_URL, bench_database  # noqa: E402
from shared import db  # noqa: E402
from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SessionStore  # noqa: E402

SECRET = "bench-soak-" + "x" * 40
POSTS_PER_PAGE = 20
SEED_POSTS = 20  # each topic starts with one full page
BASELINE_PAGES = 300
DRAIN_S = 15.0  # after the load, for the last events to reach every socket
OPENING_S = 60.0  # for every member's socket to open and subscribe
TOPIC_PAGE = re.compile(r"^/t/[^/]+/\d+$")
REPLY = re.compile(r"^/api/topics/\d+/posts$")
RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0  # shared/static/js/live.js
CLOSE_TOO_SLOW = 4008


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the servers ------------------------------------------------------------------------------------


@dataclass
class Servers:
    """`tica serve forum|notify|search` and `tica worker`, logging JSON lines into one folder."""

    folder: Path
    env: dict[str, str]
    forum_workers: int
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> None:
        for name in ("forum", "notify", "search"):
            self.ports[name] = port = free_port()
            args = ["serve", name, "--host", "127.0.0.1", "--port", str(port)]
            if name == "forum":
                args += ["--workers", str(self.forum_workers)]
            self._spawn(name, args)
        self._spawn("worker", ["worker"])

    def _spawn(self, name: str, args: list[str]) -> None:
        with (self.folder / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *args],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            for name in ("forum", "notify", "search"):
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(self.url(name) + "/readyz")).status_code == 200:
                            break
                    if self.processes[name].poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not start; see {self.folder / (name + '.log')}")
                    await asyncio.sleep(0.2)

    def dead(self) -> dict[str, int]:
        """Processes that exited, with their exit codes."""
        return {name: code for name, p in self.processes.items() if (code := p.poll()) is not None}

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def access_log(self, name: str) -> list[dict[str, Any]]:
        """The access log lines of one service: time (epoch s), method, path, status, duration_ms."""
        lines = []
        for line in (self.folder / f"{name}.log").read_text(errors="replace").splitlines():
            if not line.startswith("{") or '"tica.access"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                entry = json.loads(line)
                entry["at"] = _epoch(entry["time"])
                lines.append(entry)
        return lines


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


# --- the community ------------------------------------------------------------------------------------


@dataclass
class Member:
    user_id: int
    username: str
    session: str
    csrf: str
    topic_id: int = 0
    topic_url: str = ""


async def make_members(database_url: str, prefix: str, count: int) -> list[Member]:
    """Verified accounts (each with its user.registered event, as registration writes it) and a session
    each, as a login makes it. Nobody logs in with a password here, so the hash is a placeholder."""
    from services.forum.accounts.accounts import create_account

    conn = await db.connect(database_url)
    redis = aioredis.Redis.from_url(REDIS_URL)
    store = SessionStore(redis, prefix)
    members = []
    try:
        for n in range(count + 1):
            username = "soakadmin" if n == 0 else f"soak{n}"
            roles = ["member", "admin"] if n == 0 else ["member"]
            async with conn.transaction():
                user = await create_account(
                    conn,
                    username=username,
                    email=f"{username}@example.org",
                    password_hash="no-login",
                    display_name=None,
                    roles=roles,
                    verified=True,
                )
            session = await store.create(user_id=user.id, username=username, roles=roles, group_ids=[])
            members.append(Member(user.id, username, session.id, session.csrf))
    finally:
        await redis.aclose()
        await conn.close()
    return members


def cookie_headers(member: Member) -> dict[str, str]:
    """What a signed-in browser sends: both cookies, and the CSRF header on writes."""
    return {"Cookie": f"{SESSION_COOKIE}={member.session}; {CSRF_COOKIE}={member.csrf}", CSRF_HEADER: member.csrf}


async def make_topics(forum_url: str, admin: Member, count: int) -> list[tuple[int, str]]:
    """A category and `count` topics of one full page each, written by the admin through the API."""
    async with httpx.AsyncClient(base_url=forum_url, headers=cookie_headers(admin), timeout=30) as http:
        category = (await http.post("/api/categories", json={"name": "Soak"})).raise_for_status().json()["id"]
        topics = []
        for n in range(count):
            body = {
                "category_id": category,
                "title": f"Supervision in practice, thread {n + 1}",
                "body": "How does **reflective supervision** work in your team? What helps, what gets in the way?",
            }
            topic = (await http.post("/api/topics", json=body)).raise_for_status().json()
            topics.append((int(topic["id"]), str(topic["url"])))

        async def seed(topic_id: int) -> None:
            for k in range(SEED_POSTS - 1):
                reply = {"body": f"Seed reply {k + 1}: we keep a fortnightly slot and protect it from rotas."}
                (await http.post(f"/api/topics/{topic_id}/posts", json=reply)).raise_for_status()

        await asyncio.gather(*(seed(topic_id) for topic_id, _ in topics))
        return topics


async def until_notify_knows(notify_url: str, admin: Member, topic_id: int, timeout_s: float = 60) -> None:
    """Until notify has handled the last topic's events (and so every earlier one's)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=notify_url, headers=cookie_headers(admin), timeout=5) as http:
        while time.monotonic() < deadline:
            answer = await http.get("/api/watch", params={"target": f"topic:{topic_id}"})
            if answer.status_code == 200:
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"notify never learned of topic {topic_id}")


async def baseline(forum_url: str, members: list[Member], topics: list[tuple[int, str]]) -> tuple[float, float]:
    """The topic pages read one at a time on the idle servers; the time window, for the access log."""
    started = time.time()
    async with httpx.AsyncClient(base_url=forum_url, timeout=30) as http:
        for n in range(BASELINE_PAGES):
            member = members[n % len(members)]
            _, url = topics[n % len(topics)]
            (await http.get(url, headers={**cookie_headers(member), "Accept": "text/html"})).raise_for_status()
    return started, time.time()


# --- the members (in client processes) ------------------------------------------------------------------


@dataclass
class Plan:
    """What each client process needs, picklable; the times come when every socket is subscribed."""

    forum_url: str
    live_url: str
    minutes: float
    reply_every_s: float
    page_every_s: float
    go_at: float = 0.0

    @property
    def stop_at(self) -> float:
        return self.go_at + self.minutes * 60


@dataclass
class Reader:
    """One member's live socket: what it received, and how often it had to come back."""

    member: Member
    received: Counter[int] = field(default_factory=Counter)
    last_id: str | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    connects: int = 0
    closed_slow: int = 0
    resets: int = 0
    failures: list[str] = field(default_factory=list)

    async def run(self, live_url: str) -> None:
        """Follow the member's topic as live.js does: resume from the last id after any drop, with back-off;
        until cancelled."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        retry_s = RETRY_MIN_S
        channel = f"topic:{self.member.topic_id}"
        while True:
            self.connects += 1
            close_code = None
            try:
                async with connect(
                    live_url,
                    additional_headers={"Cookie": cookie_headers(self.member)["Cookie"]},
                    open_timeout=30,
                    ping_interval=None,
                    max_queue=None,
                ) as ws:
                    retry_s = RETRY_MIN_S
                    await ws.send(
                        json.dumps({"type": "subscribe", "channels": [channel], "last_event_id": self.last_id})
                    )
                    async for raw in ws:
                        self._handle(json.loads(raw), channel)
                    close_code = ws.close_code
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.failures.append(f"{exc.__class__.__name__}: {exc}"[:200])
            self.failures.append(f"socket closed ({close_code})")
            self.closed_slow += close_code == CLOSE_TOO_SLOW
            wait_s = RETRY_MIN_S if close_code == CLOSE_TOO_SLOW else retry_s
            retry_s = min(retry_s * 2, RETRY_MAX_S)
            await asyncio.sleep(wait_s + random.uniform(0, 0.5))

    def _handle(self, message: dict[str, Any], channel: str) -> None:
        kind = message.get("type")
        if kind == "event" and message.get("channel") == channel:
            self.last_id = message["id"]
            if message.get("event") == "post.created":
                self.received[int(message["data"]["post_id"])] += 1
        elif kind == "subscribed":
            self.subscribed.set()
        elif kind == "reset":
            self.resets += 1
        elif kind == "error":
            self.failures.append(f"error message: {message}"[:200])


@dataclass
class Tally:
    """What one client process saw, sent back to the parent."""

    replies: list[tuple[int, int, int | None]] = field(default_factory=list)  # topic, status, post id
    pages: Counter[int] = field(default_factory=Counter)  # status (0: no answer)
    errors: list[str] = field(default_factory=list)
    readers: list[dict[str, Any]] = field(default_factory=list)


async def act(http: httpx.AsyncClient, member: Member, reader: Reader, plan: Plan, tally: Tally) -> None:
    """One member until stop_at: a page every ~page_every_s, a reply every ~reply_every_s (jittered)."""
    headers = cookie_headers(member)
    next_reply = plan.go_at + random.uniform(0, plan.reply_every_s)
    next_page = plan.go_at + random.uniform(0, plan.page_every_s)
    written = 0
    while True:
        moment = min(next_reply, next_page)
        if moment >= plan.stop_at:
            return
        await asyncio.sleep(max(0.0, moment - time.time()))
        if next_reply <= next_page:
            written += 1
            # From now, not from when it was due: a member held up (a busy client process) does not then
            # post the replies they "missed" in a burst, which the posting limit would rightly refuse.
            next_reply = max(next_reply, time.time()) + plan.reply_every_s * random.uniform(0.8, 1.2)
            body = {"body": f"Reply {written} from {member.username}: our team tried this and it helped."}
            try:
                answer = await http.post(f"/api/topics/{member.topic_id}/posts", json=body, headers=headers)
            except httpx.HTTPError as exc:
                tally.replies.append((member.topic_id, 0, None))
                tally.errors.append(f"reply: {exc.__class__.__name__}")
                continue
            post_id = int(answer.json()["id"]) if answer.status_code == 201 else None
            tally.replies.append((member.topic_id, answer.status_code, post_id))
            if answer.status_code != 201:
                tally.errors.append(f"reply {answer.status_code}: {answer.text[:120]}")
        else:
            next_page = max(next_page, time.time()) + plan.page_every_s * random.uniform(0.8, 1.2)
            # The first page, or the latest one (its number from the posts this member has seen).
            last = max(1, math.ceil((SEED_POSTS + len(reader.received)) / POSTS_PER_PAGE))
            page = random.choice((1, last))
            url = member.topic_url + (f"?page={page}" if page > 1 else "")
            try:
                answer = await http.get(url, headers={**headers, "Accept": "text/html"})
            except httpx.HTTPError as exc:
                tally.pages[0] += 1
                tally.errors.append(f"page: {exc.__class__.__name__}")
                continue
            tally.pages[answer.status_code] += 1
            if answer.status_code != 200:
                tally.errors.append(f"page {answer.status_code} {url}")


async def run_members(members: list[Member], plan: Plan, ready: Any, go: Any) -> Tally:
    """Open every socket, say so, wait for the start time, act until the end, then let the last events in."""
    tally = Tally()
    readers = [Reader(m) for m in members]
    tasks = [asyncio.create_task(r.run(plan.live_url)) for r in readers]
    try:
        async with asyncio.timeout(OPENING_S):
            await asyncio.gather(*(r.subscribed.wait() for r in readers))
    except TimeoutError:
        tally.errors.append(f"{sum(not r.subscribed.is_set() for r in readers)} sockets never subscribed")
    ready.put(sum(r.subscribed.is_set() for r in readers))
    plan.go_at = await asyncio.to_thread(go.get, True, 2 * OPENING_S)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=plan.forum_url, timeout=30, limits=limits) as http:
        await asyncio.sleep(max(0.0, plan.go_at - time.time()))
        await asyncio.gather(*(act(http, r.member, r, plan, tally) for r in readers))
    await asyncio.sleep(max(0.0, plan.stop_at + DRAIN_S - time.time()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for r in readers:
        tally.readers.append(
            {
                "topic_id": r.member.topic_id,
                "received": dict(r.received),
                "connects": r.connects,
                "closed_slow": r.closed_slow,
                "resets": r.resets,
                "failures": r.failures[:5],
            }
        )
    return tally


def client_process(members: list[Member], plan: Plan, ready: Any, go: Any, results: Any) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results.put(asyncio.run(run_members(members, plan, ready, go)))


# --- figures ----------------------------------------------------------------------------------------------


def quantiles(values: list[float]) -> tuple[float, float, float, float]:
    """p50, p95, p99, max."""
    if len(values) < 2:
        return (values[0],) * 4 if values else (math.nan,) * 4
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[94], q[98], max(values)


def timing_row(label: str, values: list[float]) -> str:
    p50, p95, p99, top = quantiles(values)
    return f"{label:<36}{len(values):>9}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}{top:>9.1f}"


def accepted_by_topic(tallies: list[Tally]) -> dict[int, set[int]]:
    """The replies answered 201, by topic."""
    accepted: dict[int, set[int]] = {}
    for tally in tallies:
        for topic_id, status, post_id in tally.replies:
            if status == 201 and post_id is not None:
                accepted.setdefault(topic_id, set()).add(post_id)
    return accepted


def live_summary(tallies: list[Tally], accepted: dict[int, set[int]]) -> str:
    """Whether every socket got every post of its topic once: the post events a reader should have had
    are the replies accepted in its topic (every socket subscribed before the first one)."""
    readers = [r for t in tallies for r in t.readers]
    expected = missing = doubled = incomplete = 0
    for reader in readers:
        wanted = accepted.get(reader["topic_id"], set())
        lost = wanted - {int(post_id) for post_id in reader["received"]}
        expected, missing = expected + len(wanted), missing + len(lost)
        doubled += sum(1 for n in reader["received"].values() if n > 1)
        incomplete += bool(lost)
    verdict = "yes" if not missing and not doubled else "no"
    return (
        f"live: every live client received every post event of its topic: {verdict} "
        f"({expected - missing} of {expected} deliveries; {missing} missing, in {incomplete} clients; "
        f"{doubled} doubled; {sum(r['connects'] - 1 for r in readers)} reconnects, "
        f"{sum(r['closed_slow'] for r in readers)} closed 4008, {sum(r['resets'] for r in readers)} resets)"
    )


def error_lines(servers: Servers, tallies: list[Tally]) -> list[str]:
    """Client-side errors and every 5xx the services logged, the commonest first."""
    client = Counter(e for t in tallies for e in t.errors)
    client.update(f"live: {f}" for t in tallies for r in t.readers for f in r["failures"])
    server = Counter(
        f"{name} answered {e['status']} to {e['method']} {e['path']}"
        for name in ("forum", "notify", "search")
        for e in servers.access_log(name)
        if int(e["status"]) >= 500
    )
    lines = [
        f"errors: {client.total() + server.total()} (client side: {client.total()}; 5xx in the access logs: "
        f"{server.total()}); processes that died: {servers.dead() or 'none'}"
    ]
    lines += [f"  {count} x {what}" for what, count in [*client.most_common(5), *server.most_common(5)]]
    return lines


def report(
    args: argparse.Namespace, servers: Servers, tallies: list[Tally], windows: dict[str, tuple[float, float]]
) -> None:
    accepted = accepted_by_topic(tallies)
    sent = sum(len(t.replies) for t in tallies)
    written = sum(len(posts) for posts in accepted.values())
    pages = sum((t.pages for t in tallies), Counter())
    load_from, load_to = windows["load"]
    load_s = load_to - load_from
    forum = servers.access_log("forum")

    def durations(pattern: re.Pattern[str], method: str, window: tuple[float, float]) -> list[float]:
        return [
            float(e["duration_ms"])
            for e in forum
            if e["method"] == method and pattern.match(e["path"]) and window[0] <= e["at"] <= window[1]
        ]

    print(
        f"\nsoak: {args.members} members for {args.minutes:g} min, {args.per_topic} to a topic; each replies every "
        f"~{args.reply_every:g} s and reads a topic page every ~{args.page_every:g} s; forum --workers "
        f"{args.forum_workers}, notify, search, worker; {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print("\n".join(error_lines(servers, tallies)))
    print(
        f"replies: {written} accepted of {sent} sent ({written / load_s:.1f}/s); topic pages: "
        f"{pages.total()} read ({pages.total() / load_s:.1f}/s), answers {dict(pages)}"
    )
    print(live_summary(tallies, accepted))
    print(
        f"\n{'measured at the server (duration_ms)':<36}{'requests':>9}"
        + "".join(f"{h:>9}" for h in ("p50 ms", "p95 ms", "p99 ms", "max ms"))
    )
    print(timing_row("topic page, idle (baseline)", durations(TOPIC_PAGE, "GET", windows["baseline"])))
    print(timing_row("topic page, under the soak", durations(TOPIC_PAGE, "GET", windows["load"])))
    print(timing_row("reply (POST), under the soak", durations(REPLY, "POST", windows["load"])))
    minutes = []
    for k in range(math.ceil(load_s / 60)):
        window = (load_from + 60 * k, min(load_to, load_from + 60 * (k + 1)))
        minutes.append(f"{quantiles(durations(TOPIC_PAGE, 'GET', window))[2]:.1f}")
    print(f"topic page p99 by minute (ms): {', '.join(minutes)}")


# --- the run ------------------------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> None:
    run_id = secrets.token_hex(4)
    prefix = f"tica-bench-{run_id}:"
    async with bench_database() as database_url:
        with tempfile.TemporaryDirectory(prefix="tica-soak-") as folder:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("TICA_")},
                "DATABASE_URL": database_url,
                "REDIS_URL": REDIS_URL,
                "TICA_REDIS_PREFIX": prefix,
                "TICA_SECRET_KEY": SECRET,
                "TICA_LOG_LEVEL": "INFO",  # the access log
                "TICA_NEW_MEMBER_DAYS": "0",  # the members joined a moment ago; the ordinary limits apply
                "DATA_DIR": str(Path(folder, "data")),
                "PYTHONPATH": str(ROOT),
            }
            servers = Servers(Path(folder), env, args.forum_workers)
            try:
                await run_with(args, servers, database_url, prefix)
            finally:
                servers.stop()
                await delete_keys(prefix)


async def run_with(args: argparse.Namespace, servers: Servers, database_url: str, prefix: str) -> None:
    members = await make_members(database_url, prefix, args.members)
    admin, members = members[0], members[1:]
    servers.start()
    await servers.wait_ready()
    print(f"servers ready; {len(members)} members; seeding topics", flush=True)
    topics = await make_topics(servers.url("forum"), admin, math.ceil(len(members) / args.per_topic))
    for n, member in enumerate(members):
        member.topic_id, member.topic_url = topics[n // args.per_topic]
    await until_notify_knows(servers.url("notify"), admin, topics[-1][0])
    windows = {"baseline": await baseline(servers.url("forum"), members, topics)}
    print("baseline measured; opening the members' sockets", flush=True)
    tallies, go_at, stop_at = await run_load(args, servers, members)
    windows["load"] = (go_at, stop_at)
    report(args, servers, tallies, windows)


async def run_load(
    args: argparse.Namespace, servers: Servers, members: list[Member]
) -> tuple[list[Tally], float, float]:
    """The members in client processes; the load starts once every socket is subscribed, and ends
    --minutes later; each process then waits DRAIN_S for the last events and reports."""
    context = mp.get_context("spawn")
    ready, go, results = context.Queue(), context.Queue(), context.Queue()
    live_url = servers.url("notify").replace("http://", "ws://") + "/live"
    plan = Plan(servers.url("forum"), live_url, args.minutes, args.reply_every, args.page_every)
    slices = [s for s in (members[k :: args.client_processes] for k in range(args.client_processes)) if s]
    processes = [context.Process(target=client_process, args=(s, plan, ready, go, results)) for s in slices]
    for process in processes:
        process.start()
    tallies: list[Tally] = []
    try:
        subscribed = 0
        for _ in processes:
            subscribed += await asyncio.to_thread(ready.get, True, OPENING_S + 60)
        go_at = time.time() + 1
        for _ in processes:
            go.put(go_at)
        print(f"{subscribed} of {len(members)} sockets subscribed; soaking for {args.minutes:g} min", flush=True)
        bound_s = args.minutes * 60 + DRAIN_S + 60
        for _ in processes:
            tallies.append(await asyncio.to_thread(results.get, True, bound_s))
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    return tallies, go_at, go_at + args.minutes * 60


async def delete_keys(prefix: str) -> None:
    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        for pattern in (f"{prefix}*", f"arq:*:{prefix}*"):
            keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(keys), 500):
                await redis.delete(*keys[start : start + 500])
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--reply-every", type=float, default=10, help="seconds between a member's replies (~)")
    parser.add_argument("--page-every", type=float, default=5, help="seconds between a member's page reads (~)")
    parser.add_argument("--per-topic", type=int, default=10, help="members sharing a topic")
    parser.add_argument("--forum-workers", type=int, default=2)
    parser.add_argument("--client-processes", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(soak(args))


if __name__ == "__main__":
    main()
