"""Faults under load: tica's services as separate processes, a writer replying steadily, search and
notify killed with SIGKILL and started again, Redis restarted; afterwards nothing was lost or
doubled (issue 12, "The suite that would have found them").

One run (the `run` fixture, 30 to 50 s) drives the faults; each test below checks one promise
against what the run saw, and a failure lists what was lost or doubled and when, on a timeline
of the faults (t = seconds since the writer started).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
import redis.asyncio as aioredis
from notify_helpers import MailSink

from faults.clients import Connection, LiveClient, Writer, reply_words
from faults.cluster import Answer, Cluster, Process, answers
from faults.community import Community
from shared import events as ev

WRITE_RATE_PER_S = 20.0
# The away reader comes back once it missed more events than a client's queue holds (256) and
# fewer than notify replays (1,000): the resume that looped in issue 12 (defect 3).
AWAY_POSTS = 300
CONVERGE_S = 20.0  # after the writer stops, for every check to hold
OUTAGE_GRACE_S = 2.0  # after Redis answers again, 503s may still come from connections being remade
SEARCH_BATCH = 20  # words in one search (`a or b or ...`; a query takes up to 24 terms)
PROBED_PATHS = ("/readyz", "/healthz")  # the run polls these; their 503s are reasons, not failures


@dataclass
class Run:
    """What one fault run did and saw."""

    cluster: Cluster
    community: Community
    mail: MailSink
    writer: Writer
    live: list[LiveClient]
    started_at: float
    marks: list[tuple[float, str]] = field(default_factory=list)
    redis_down: tuple[float, float] = (0.0, 0.0)
    away_missed: int = 0
    stored: dict[int, str] = field(default_factory=dict)  # reply post id -> its word
    searched: Counter[int] = field(default_factory=Counter)
    notified: Counter[int] = field(default_factory=Counter)
    unread: int | None = None
    mailed: Counter[int] = field(default_factory=Counter)
    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ready: dict[str, int | str] = field(default_factory=dict)  # service -> /readyz status, or how it failed
    worker_exit: int | None = None
    answers: list[Answer] = field(default_factory=list)
    mail_jobs: dict[int, str] = field(default_factory=dict)  # post id -> where its unsent mail stands

    def mark(self, what: str) -> None:
        self.marks.append((time.time(), what))

    def when(self, at: float) -> str:
        """A moment on the run's timeline, with the last fault before it."""
        before = [what for moment, what in self.marks if moment <= at]
        return f"t={at - self.started_at:.1f}s" + (f" (after: {before[-1]})" if before else "")

    def timeline(self) -> str:
        return "; ".join(f"t={moment - self.started_at:.1f}s {what}" for moment, what in self.marks)

    def post_times(self) -> dict[int, float]:
        return {post_id: attempt.sent_at for post_id, attempt in self.writer.accepted().items()}

    def describe(self, post_ids: set[int], limit: int = 12) -> str:
        """Some of these posts with the moment each was sent."""
        sent = self.post_times()
        shown = sorted(post_ids)[:limit]
        text = ", ".join(f"{p} ({self.when(sent[p])})" if p in sent else str(p) for p in shown)
        return text + (f" and {len(post_ids) - limit} more" if len(post_ids) > limit else "")


# --- the run ----------------------------------------------------------------------------------------------


async def _faults(run: Run, away: LiveClient) -> None:
    """Kill search, kill notify, restart Redis, while the writer writes and the away reader is away."""
    cluster = run.cluster
    await asyncio.sleep(1.5)
    away.leave()
    run.mark("away reader left")
    left_at = time.time()
    await asyncio.sleep(1.5)
    cluster.search.kill()
    run.mark("search SIGKILLed")
    await asyncio.sleep(1.5)
    cluster.search.start()
    run.mark("search started again")
    await asyncio.sleep(2.0)
    cluster.notify.kill()
    run.mark("notify SIGKILLed")
    cluster.notify.start()
    run.mark("notify started again")
    await asyncio.gather(cluster.notify.wait_ready(), cluster.search.wait_ready())
    run.mark("search and notify ready")
    await asyncio.sleep(1.0)
    down_at = time.time()
    run.mark("Redis shut down")
    await cluster.redis.shut_down()
    await asyncio.sleep(2.0)
    cluster.redis.spawn()
    await cluster.redis.wait_answering()
    run.redis_down = (down_at, time.time())
    run.mark("Redis answering again")
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and _written_since(run.writer, left_at) < AWAY_POSTS:
        await asyncio.sleep(0.1)
    run.away_missed = _written_since(run.writer, left_at)
    away.come_back()
    run.mark(f"away reader back, resuming {run.away_missed} posts later")
    await asyncio.sleep(4.0)


def _written_since(writer: Writer, moment: float) -> int:
    return sum(1 for attempt in writer.accepted().values() if attempt.sent_at >= moment)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def run(cluster: Cluster, community: Community, smtp: tuple[MailSink, int], fault_database: str) -> Run:
    """The fault run: faults under steady writing, then up to CONVERGE_S for everything to catch up."""
    live_url = cluster.notify.url.replace("http://", "ws://") + "/live"
    readers = [LiveClient(name, live_url, cluster.forum.url, community.topic_id) for name in ("steady", "away")]
    run_id = f"{int(time.time()) % 100000}"
    writer = Writer(cluster.forum.url, community.writer_token, community.topic_id, run_id, WRITE_RATE_PER_S)
    stop_reading, stop_writing = asyncio.Event(), asyncio.Event()
    reading = [asyncio.create_task(reader.run_until(stop_reading)) for reader in readers]
    try:
        await asyncio.wait_for(asyncio.gather(*(reader.subscribed.wait() for reader in readers)), 15)
        run = Run(cluster, community, smtp[0], writer, readers, time.time())
        writing = asyncio.create_task(writer.run_until(stop_writing))
        try:
            await asyncio.wait_for(_faults(run, readers[1]), 90)
        finally:
            stop_writing.set()
            await writing
        run.mark("writer stopped")
        async with asyncio.timeout(CONVERGE_S + 30):
            await _converge(run, fault_database)
            run.mail_jobs = await _mail_jobs(run, fault_database, set(run.stored) - set(run.mailed))
    finally:
        stop_reading.set()
        await asyncio.gather(*reading, return_exceptions=True)
    run.answers = [answer for process in cluster.services for answer in answers(process)]
    return run


async def _converge(run: Run, database_url: str) -> None:
    """Look again until every check holds or CONVERGE_S is up; what is seen last is what the tests judge."""
    stopped_at = time.monotonic()
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            await _look(run, conn)
            if _settled(run):
                run.mark("everything caught up")
                return
            if time.monotonic() - stopped_at > CONVERGE_S:
                run.mark(f"still not caught up {CONVERGE_S:.0f} s later")
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def _settled(run: Run) -> bool:
    stored = set(run.stored)
    return (
        set(run.searched) >= stored
        and set(run.notified) >= stored
        and set(run.mailed) >= stored
        and all(reader.seen() >= stored and not reader.reloads and not reader.reload_wanted for reader in run.live)
        and all(len(consumers) == 1 and consumers[0]["pending"] == 0 for consumers in run.groups.values())
        and all(status == 200 for status in run.ready.values())
        and run.worker_exit is None
    )


REPLIES_SQL = "SELECT id, raw FROM forum.posts WHERE topic_id = $1 AND post_number > 1"
NOTIFIED_SQL = "SELECT post_id FROM notify.notifications WHERE user_id = $1 AND topic_id = $2 AND post_id IS NOT NULL"
MAIL_LINK = re.compile(r"/p/(\d+)")


async def _look(run: Run, conn: asyncpg.Connection) -> None:
    """What the forum stored, and what search, notify, the worker's mail and the readers have of it."""
    cluster, community = run.cluster, run.community
    word = reply_words(run.writer.run)
    run.stored = {}
    for row in await conn.fetch(REPLIES_SQL, community.topic_id):
        found = word.search(row["raw"])
        run.stored[row["id"]] = found.group(0) if found else ""
    run.searched = await _searched(run)
    run.notified = Counter(
        row["post_id"] for row in await conn.fetch(NOTIFIED_SQL, community.watcher_id, community.topic_id)
    )
    run.mailed = Counter(int(m) for text in _mail_texts(run) for m in MAIL_LINK.findall(text))
    for reader in run.live:
        done = {task for task in reader.reloads if task.done()}
        reader.reloads -= done
    run.groups = await _groups(cluster)
    run.ready, run.unread = await _readiness(run)
    run.worker_exit = cluster.worker.exit_code()


def _mail_texts(run: Run) -> list[str]:
    texts = []
    for message in run.mail.to(run.community.watcher_email):
        body = message.get_body(preferencelist=("plain",))
        texts.append(body.get_content() if body is not None else "")
    return texts


MAIL_STATE_SQL = """
SELECT n.post_id, n.id,
       EXISTS (SELECT 1 FROM notify.sent_mail s WHERE s.idempotency_key = 'notification:' || n.id) AS sent
FROM notify.notifications n WHERE n.user_id = $1 AND n.post_id = ANY($2::bigint[])
"""


async def _mail_jobs(run: Run, database_url: str, post_ids: set[int]) -> dict[int, str]:
    """Where the mail about each of these posts stands: recorded as sent, or its arq job's keys."""
    if not post_ids:
        return {}
    conn = await asyncpg.connect(database_url)
    client = aioredis.Redis.from_url(run.cluster.redis.url)
    states = {}
    try:
        for row in await conn.fetch(MAIL_STATE_SQL, run.community.watcher_id, sorted(post_ids)):
            job = f"tica:notification-mail:{row['id']}"
            in_progress_ms = await client.pttl(f"arq:in-progress:{job}")
            state = [
                "recorded as sent" if row["sent"] else "not recorded as sent",
                "job kept" if await client.exists(f"arq:job:{job}") else "no job",
                "queued" if await client.zscore("tica:arq:queue", job) is not None else "not queued",
                f"marked in progress for {in_progress_ms / 1000:.0f} s more"
                if in_progress_ms > 0
                else "not in progress",
                "with a result" if await client.exists(f"arq:result:{job}") else "no result",
            ]
            states[row["post_id"]] = ", ".join(state)
    finally:
        await client.aclose()
        await conn.close()
    return states


async def _searched(run: Run) -> Counter[int]:
    """How often each stored reply comes up when its word is searched for (in batches of words)."""
    found: Counter[int] = Counter()
    words = sorted(word for word in run.stored.values() if word)
    async with httpx.AsyncClient(base_url=run.cluster.search.url, timeout=10) as http:
        for start in range(0, len(words), SEARCH_BATCH):
            query = " or ".join(words[start : start + SEARCH_BATCH]) + " kind:post"
            page: int | None = 1
            while page is not None:
                try:
                    answer = await http.get("/api/search", params={"q": query, "page": page})
                except httpx.HTTPError:
                    break
                if answer.status_code != 200:
                    break
                body = answer.json()
                found.update(
                    item["id"] for item in body["items"] if item["kind"] == "post" and item["id"] in run.stored
                )
                page = body["next"]
    return found


async def _groups(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    """The consumer groups of the event stream and, in each, its consumers (name, pending, idle)."""
    client = aioredis.Redis.from_url(cluster.redis.url, decode_responses=True)
    stream = ev.stream_name("tica:")
    try:
        groups = await client.xinfo_groups(stream)
        return {
            group["name"]: [
                {"name": c["name"], "pending": c["pending"], "idle_ms": c["idle"]}
                for c in await client.xinfo_consumers(stream, group["name"])
            ]
            for group in groups
        }
    except Exception as exc:  # Redis itself unreachable is a finding too
        return {"(unreadable)": [{"name": repr(exc), "pending": -1, "idle_ms": 0}]}
    finally:
        await client.aclose()


async def _readiness(run: Run) -> tuple[dict[str, int | str], int | None]:
    """Each service's /readyz status (or how it failed), and the watcher's unread count from notify's API."""
    ready: dict[str, int | str] = {}
    unread = None
    async with httpx.AsyncClient(timeout=5) as http:
        for process in run.cluster.services:
            try:
                ready[process.name] = (await http.get(process.url + "/readyz")).status_code
            except httpx.HTTPError as exc:
                ready[process.name] = exc.__class__.__name__
        with_token = {"Authorization": f"Bearer {run.community.watcher_token}"}
        try:
            answer = await http.get(run.cluster.notify.url + "/api/notifications", headers=with_token)
            unread = int(answer.json()["unread"]) if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            unread = None
    return ready, unread


# --- the promises ---------------------------------------------------------------------------------------------


def _doubled(counts: Counter[int]) -> dict[int, int]:
    return {post_id: n for post_id, n in sorted(counts.items()) if n > 1}


def test_every_accepted_reply_is_stored_and_searchable_exactly_once(run: Run) -> None:
    """Every 201 is a post the forum kept, and search finds each stored reply by its word, once."""
    accepted, stored = set(run.writer.accepted()), set(run.stored)
    assert len(accepted) > 100, f"the writer got only {len(accepted)} replies in: {_writer_summary(run)}"
    lost = accepted - stored
    assert not lost, f"{len(lost)} replies answered 201 are not in the forum: {run.describe(lost)}"
    missing = stored - set(run.searched)
    doubled = _doubled(run.searched)
    assert not missing and not doubled, (
        f"search, {len(stored)} replies stored: {len(missing)} not found: {run.describe(missing)}; "
        f"found more than once: {doubled}. Faults: {run.timeline()}. Consumer groups: {run.groups}"
    )


def test_the_watcher_gets_one_notification_per_reply(run: Run) -> None:
    """The topic's author watches it: one notification per reply, none lost, none doubled."""
    stored = set(run.stored)
    missing = stored - set(run.notified)
    doubled = _doubled(run.notified)
    strays = set(run.notified) - stored
    assert not missing and not doubled and not strays, (
        f"notifications of the watcher, {len(stored)} replies: {len(missing)} missing: {run.describe(missing)}; "
        f"doubled: {doubled}; about posts not in the topic: {sorted(strays)[:10]}. "
        f"notify's API counts {run.unread} unread. Faults: {run.timeline()}"
    )
    assert run.unread == len(stored), f"notify's API says {run.unread} unread, for {len(stored)} replies"


def test_the_worker_mails_each_notification_once(run: Run) -> None:
    """The watcher asked for mail about every post: `tica worker` sends one per reply, through the restart."""
    stored = set(run.stored)
    missing = stored - set(run.mailed)
    doubled = _doubled(run.mailed)
    assert not missing and not doubled, (
        f"mail to the watcher, {len(stored)} replies: {len(missing)} never mailed: {run.describe(missing)}; "
        f"mailed more than once: {doubled}. Where their mail stands, at the end: {_mail_states(run)}. "
        f"Worker exit code: {run.worker_exit}; {_warnings(run, run.cluster.worker)}. Faults: {run.timeline()}"
    )


def test_live_readers_see_every_reply_once_and_every_resume_is_answered(run: Run) -> None:
    """Both readers (one through the notify restart, one away for 300 posts) have every reply once,
    live or by the reload a `reset` asks for; no resume is closed before the server answers it."""
    stored = set(run.stored)
    problems = []
    for reader in run.live:
        missing = stored - reader.seen()
        doubled = _doubled(reader.delivered)
        refused = reader.unanswered_resumes()
        if missing or doubled or refused:
            problems.append(
                f"{reader.name} reader: {len(missing)} of {len(stored)} replies never seen: {run.describe(missing)}; "
                f"delivered more than once: {doubled}; {len(refused)} resumes closed 4008 before any answer "
                f"({_refusals(run, refused)}); connections: {_connections(run, reader)}; messages: {reader.errors[:3]}"
            )
    assert not problems, "\n".join(problems) + f"\nFaults: {run.timeline()}"


def test_no_server_error_but_503_while_redis_is_down(run: Run) -> None:
    """No 5xx anywhere (writer, access logs, websocket upgrades), except 503 while Redis is down."""
    problems = []
    bad_replies = [
        a
        for a in run.writer.attempts
        if a.status is not None and a.status >= 500 and not _excused(run, a.status, a.answered_at)
    ]
    if bad_replies:
        problems.append(
            f"the writer got {_statuses(run, [(a.status or 0, a.answered_at) for a in bad_replies])}; "
            f"e.g. {bad_replies[0].error}"
        )
    logged = [
        a for a in run.answers if a.status >= 500 and a.path not in PROBED_PATHS and not _excused(run, a.status, a.at)
    ]
    for service in sorted({a.service for a in logged}):
        mine = [a for a in logged if a.service == service]
        paths = Counter(f"{a.method} {a.path}" for a in mine).most_common(3)
        problems.append(f"{service} logged {_statuses(run, [(a.status, a.at) for a in mine])}, on {paths}")
    for reader in run.live:
        refused = [
            c
            for c in reader.connections
            if c.refused_status and c.refused_status >= 500 and not _excused(run, c.refused_status, c.opened_at)
        ]
        if refused:
            problems.append(
                f"/live refused the {reader.name} reader: "
                + _statuses(run, [(c.refused_status or 0, c.opened_at) for c in refused])
            )
    assert not problems, (
        "\n".join(problems)
        + f"\nRedis down {run.when(run.redis_down[0])} to {run.when(run.redis_down[1])}. Faults: {run.timeline()}"
    )


def test_every_process_survives_and_is_ready_at_the_end(run: Run) -> None:
    """forum, notify, search answer /readyz 200 and `tica worker` still runs after all of it."""
    not_ready = {name: status for name, status in run.ready.items() if status != 200}
    logs = {name: _warnings(run, getattr(run.cluster, name)) for name in not_ready}
    assert not not_ready, f"not ready at the end: {not_ready}; {logs}. Faults: {run.timeline()}"
    assert run.worker_exit is None, (
        f"tica worker exited with {run.worker_exit}: {_warnings(run, run.cluster.worker)}. Faults: {run.timeline()}"
    )


def test_restarted_consumers_leave_no_dead_consumer_behind(run: Run) -> None:
    """A consumer killed and started again comes back under its own name: one consumer per group (one replica
    each), nothing pending, no dead predecessor holding entries."""
    crowded = {
        group: consumers for group, consumers in run.groups.items() if len(consumers) != 1 or consumers[0]["pending"]
    }
    assert run.groups, "the event stream has consumer groups"
    assert not crowded, f"consumer groups with other than one live consumer, or entries pending: {crowded}"


# --- telling what happened -----------------------------------------------------------------------------------


def _excused(run: Run, status: int, at: float) -> bool:
    """A 503 while Redis was down (and shortly after) is the kind answer; nothing else is."""
    down, up = run.redis_down
    return status == 503 and down - 0.5 <= at <= up + OUTAGE_GRACE_S


def _statuses(run: Run, seen: list[tuple[int, float]]) -> str:
    counts = Counter(status for status, _ in seen)
    first, last = min(at for _, at in seen), max(at for _, at in seen)
    return f"{dict(counts)} from {run.when(first)} to {run.when(last)}"


def _mail_states(run: Run) -> str:
    """The missing mails grouped by where their job stands, with a few of their posts."""
    by_state: dict[str, list[int]] = {}
    for post_id, state in sorted(run.mail_jobs.items()):
        by_state.setdefault(state, []).append(post_id)
    return "; ".join(f"{len(posts)} {state} (posts {posts[:5]})" for state, posts in by_state.items())


def _warnings(run: Run, process: Process) -> str:
    """A process's warnings and errors on the run's timeline: how many, the first and the last."""
    seen = [
        (datetime.fromisoformat(str(e["time"])).timestamp(), str(e["message"])[:160])
        for e in process.log_entries()
        if e.get("level") in ("warning", "error")
    ]
    if not seen:
        return f"no warnings in the {process.name}'s log"
    (first_at, first), (last_at, last) = seen[0], seen[-1]
    return (
        f"{len(seen)} warnings in the {process.name}'s log, the first at {run.when(first_at)}: {first!r}, "
        f"the last at {run.when(last_at)}: {last!r}"
    )


def _writer_summary(run: Run) -> str:
    statuses = Counter(a.status for a in run.writer.attempts)
    return f"{len(run.writer.attempts)} sent, answers {dict(statuses)}"


def _refusals(run: Run, refused: list[Connection]) -> str:
    if not refused:
        return "none"
    ids = sorted({c.resumed_from or "" for c in refused})
    return f"from {run.when(refused[0].opened_at)} to {run.when(refused[-1].opened_at)}, resuming from {ids[:3]}"


def _connections(run: Run, reader: LiveClient) -> str:
    shown = []
    for c in reader.connections[:12]:
        end = c.close_code or c.refused_status or c.failed
        shown.append(f"{run.when(c.opened_at)} from {c.resumed_from}: {c.events} events, {c.resets} resets, end {end}")
    more = len(reader.connections) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
