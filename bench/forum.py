"""Forum benchmark: the topic page (HTML) and topic JSON under wrk, beside a bare
Starlette + asyncpg endpoint that fetches the same rows, and durable post creation.

    .venv/bin/python bench/forum.py [--duration 15] [--connections 64] [--against REV]

With --against REV, two fresh forum servers start side by side on the same database, one running
this code and one the code of git revision REV (a worktree of it), and the topic page and post
creation are measured on both, in the order this, REV, REV, this, so both see the same machine,
data and noise.

Needs wrk (Debian package `wrk`) and a PostgreSQL and Redis (TICA_BENCH_DATABASE_URL,
TICA_BENCH_REDIS_URL; default the machine's local servers). Creates and drops its own
database and Redis key prefix. Loopback only; every load is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.cli import apply_migrations  # noqa: E402
from shared.sessions import SessionStore, token_digest  # noqa: E402
from shared.settings import Settings  # noqa: E402

DATABASE = os.environ.get("TICA_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TICA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent

BASELINE_APP = textwrap.dedent('''
    """A bare Starlette + asyncpg endpoint fetching the rows of a topic page."""
    import os
    import asyncpg
    from contextlib import asynccontextmanager
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    SQL = """
    SELECT p.id, p.post_number, p.cooked, p.raw, p.created_at::text, u.username, u.display_name
    FROM forum.posts p JOIN forum.users u ON u.id = p.author_id
    WHERE p.topic_id = $1 ORDER BY p.post_number LIMIT 20
    """

    @asynccontextmanager
    async def lifespan(app):
        app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=10)
        yield
        await app.state.pool.close()

    async def topic(request):
        async with request.app.state.pool.acquire() as conn:
            head = await conn.fetchrow("SELECT id, title, slug FROM forum.topics WHERE id = $1",
                                       int(request.path_params["id"]))
            rows = await conn.fetch(SQL, head["id"])
        return JSONResponse({"id": head["id"], "title": head["title"], "posts": [dict(r) for r in rows]})

    app = Starlette(routes=[Route("/baseline/topics/{id}", topic)], lifespan=lifespan)
''')

POST_SCRIPT = textwrap.dedent("""
    counter = 0
    request = function()
      counter = counter + 1
      local body = '{"body": "Benchmark reply number ' .. counter .. ' from thread ' .. tostring(id) .. '."}'
      return wrk.format("POST", nil, nil, body)
    end
    setup = function(thread) thread:set("id", math.random(1, 1000000)) end
""")
# The same replies spread over several topics (their ids filled in), as a community's posting is.
SPREAD_SCRIPT = textwrap.dedent("""
    local topics = {%s}
    counter = 0
    request = function()
      counter = counter + 1
      local body = '{"body": "Benchmark reply number ' .. counter .. ' from thread ' .. tostring(id) .. '."}'
      return wrk.format("POST", "/api/topics/" .. topics[math.random(#topics)] .. "/posts", nil, body)
    end
    setup = function(thread) thread:set("id", math.random(1, 1000000)) end
""")
SPREAD_TOPICS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(DATABASE)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def wait_ready(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} never answered 200")


def run_wrk(
    url: str,
    *,
    duration_s: int,
    connections: int,
    headers: dict[str, str],
    script: str | None = None,
    warmup_s: int = 0,
) -> dict[str, float]:
    """wrk's figures for one URL; a warm-up run first, not measured (the workers' pools fill, their
    templates compile and their statements are prepared), so the figures are the steady state."""
    options = ["--timeout", "5s"]
    for name, value in headers.items():
        options += ["-H", f"{name}: {value}"]
    if script:
        options += ["-s", script]
    threads = f"-t{min(2, connections)}"
    if warmup_s:
        subprocess.run(
            ["wrk", threads, f"-c{connections}", f"-d{warmup_s}s", *options, url],
            capture_output=True,
            timeout=warmup_s + 30,
            check=True,
        )
    out = subprocess.run(
        ["wrk", threads, f"-c{connections}", f"-d{duration_s}s", "--latency", *options, url],
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
        check=True,
    ).stdout
    return parse_wrk(out)


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out: str) -> dict[str, float]:
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        match = re.search(rf"\s{pct}%\s+([\d.]+\w+)", out)
        result[f"p{pct}"] = _ms(match.group(1)) if match else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(non2xx.group(1)) if non2xx else 0.0
    total = re.search(r"(\d+) requests in", out)
    result["requests"] = float(total.group(1)) if total else 0.0
    return result


async def seed(settings: Settings) -> tuple[int, str, str, str]:
    """A member, an API token, a category and a topic of 20 posts; returns ids and credentials."""
    assert settings.database_url and settings.redis_url
    conn = await asyncpg.connect(settings.database_url)
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at) "
            "VALUES ('bencher', 'bench@example.org', 'x', 'Bench Marker', '{member,admin}', now()) RETURNING id"
        )
        await conn.execute("INSERT INTO forum.categories (name, slug) VALUES ('Practice', 'practice')")
        store = SessionStore(redis, settings.redis_prefix)
        session = await store.create(user_id=user_id, username="bencher", roles=["member", "admin"], group_ids=[])
        token = "tica_" + secrets.token_urlsafe(32)
        await store.store_token(
            token_digest(token), user_id=user_id, username="bencher", roles=["member", "admin"], group_ids=[]
        )
        return user_id, session.id, session.csrf, token
    finally:
        await redis.aclose()
        await conn.close()


async def make_topic(base: str, token: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"}
    body = (
        "Trauma-informed practice starts with **safety**: people know what will happen next, "
        "and they have a say in it. See https://example.org/guide for the framework.\n\n- choice\n- trust"
    )
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        category = (await http.get("/api/categories")).json()["items"][0]["id"]
        topic = (
            await http.post(
                "/api/topics", json={"category_id": category, "title": "What does safety mean here?", "body": body}
            )
        ).json()
        for n in range(19):
            response = await http.post(f"/api/topics/{topic['id']}/posts", json={"body": f"Reply {n}: {body}"})
            response.raise_for_status()
        return topic["id"], topic["url"]


async def make_topics(base: str, token: str, count: int) -> list[int]:
    """More topics, one post each, for the spread post-creation run."""
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        category = (await http.get("/api/categories")).json()["items"][0]["id"]
        ids = []
        for n in range(count):
            body = {"category_id": category, "title": f"Spread topic number {n + 1}", "body": "An opening post."}
            response = await http.post("/api/topics", json=body)
            response.raise_for_status()
            ids.append(response.json()["id"])
        return ids


def start(
    cmd: list[str], env: dict[str, str], log: Path | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    output = log.open("wb") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdout=output, stderr=output, start_new_session=True, cwd=cwd)


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached checkout of `rev` beside this one (with this one's node_modules), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="tica-bench-rev-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), rev], check=True)
    try:
        (folder / "node_modules").symlink_to(ROOT / "node_modules")
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def serve_forum(port: int, env: dict[str, str], run_id: str, checkout: Path = ROOT) -> subprocess.Popen[bytes]:
    """`tica serve forum` with two workers, running the code of `checkout`."""
    env = {**env, "PORT": str(port), "PYTHONPATH": str(checkout)}
    cmd = [str(BIN / "python"), "-m", "services.cli", "serve", "forum", "--workers", "2", "--port", str(port)]
    log = Path(tempfile.gettempdir(), f"tica-bench-forum-{run_id}-{port}.log")
    return start(cmd, env, log=log, cwd=checkout)


def side_by_side(
    label: str, this: Callable[[], dict[str, float]], other: Callable[[], dict[str, float]], rounds: int
) -> tuple[str, dict[str, float], dict[str, float], list[float]]:
    """Measure this, other, other, this, `rounds` times; the mean of each side and each round's change
    (a round's own ratio cancels the drift of a shared, noisy machine better than the overall means)."""
    mine: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    changes: list[float] = []
    for _ in range(rounds):
        first, second, third, fourth = this(), other(), other(), this()
        runs = ", ".join(f"{r['rps']:.0f}" for r in (first, second, third, fourth))
        print(f"  {label}: this, REV, REV, this req/s: {runs}", flush=True)
        mine += [first, fourth]
        theirs += [second, third]
        changes.append(((first["rps"] + fourth["rps"]) / (second["rps"] + third["rps"]) - 1) * 100)

    def mean(results: list[dict[str, float]]) -> dict[str, float]:
        return {key: sum(r[key] for r in results) / len(results) for key in results[0]}

    return label, mean(mine), mean(theirs), changes


def stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def compare(
    args: argparse.Namespace, base: str, other: str, topic_url: str, topic_id: int, cookie: dict[str, str], token: str
) -> None:
    """The topic page and post creation on this code and on --against REV, side by side."""
    page = {"duration_s": args.duration, "connections": args.connections, "warmup_s": args.warmup}
    writer = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "post.lua").write_text(POST_SCRIPT)
        post = {
            "duration_s": args.duration,
            "connections": 16,
            "headers": writer,
            "script": str(Path(folder, "post.lua")),
        }
        rows = [
            side_by_side(
                "topic page HTML, logged in",
                lambda: run_wrk(base + topic_url, headers=cookie, **page),
                lambda: run_wrk(other + topic_url, headers=cookie, **page),
                args.rounds,
            ),
            side_by_side(
                "post creation, one topic (durable 201s)",
                lambda: run_wrk(f"{base}/api/topics/{topic_id}/posts", **post),
                lambda: run_wrk(f"{other}/api/topics/{topic_id}/posts", **post),
                args.rounds,
            ),
        ]
    print(f"\nside by side with {args.against} ({args.rounds} rounds of this, REV, REV, this)")
    print(f"{'what':<44}{'this req/s':>12}{'REV req/s':>12}{'change':>9}{'rounds':>22}{'this p99':>10}{'REV p99':>10}")
    for label, mine, theirs, changes in rows:
        change = sum(changes) / len(changes)
        spread = f"{min(changes):+.1f}% .. {max(changes):+.1f}%"
        print(
            f"{label:<44}{mine['rps']:>12.0f}{theirs['rps']:>12.0f}{change:>8.1f}%{spread:>22}"
            f"{mine['p99']:>10.1f}{theirs['p99']:>10.1f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured seconds of load before each page run")
    parser.add_argument("--against", metavar="REV", help="also measure git revision REV, side by side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of this, REV, REV, this with --against")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/forum.py needs wrk: apt-get install wrk")

    run_id = secrets.token_hex(4)
    name = f"tica_bench_forum_{run_id}"
    await admin(f"CREATE DATABASE {name}")
    settings = Settings.from_env({}).replace(
        database_url=with_database(DATABASE, name),
        redis_url=REDIS,
        redis_prefix=f"tica-bench-{run_id}:",
        secret_key=secrets.token_urlsafe(48),
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await apply_migrations(settings)
        _, session_id, csrf, token = await seed(settings)
        port, baseline_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": REDIS,
            "TICA_REDIS_PREFIX": settings.redis_prefix,
            "TICA_SECRET_KEY": settings.secret_key or "",
            "TICA_LOG_LEVEL": "WARNING",
            "PORT": str(port),
        }
        processes.append(serve_forum(port, env, run_id))  # this checkout's code, also run from a worktree
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "baseline_app.py").write_text(BASELINE_APP)
            Path(folder, "post.lua").write_text(POST_SCRIPT)
            processes.append(
                start(
                    [
                        str(BIN / "uvicorn"),
                        "baseline_app:app",
                        "--workers",
                        "2",
                        "--port",
                        str(baseline_port),
                        "--no-access-log",
                        "--log-level",
                        "warning",
                        "--app-dir",
                        folder,
                    ],
                    env,
                )
            )
            base, baseline = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{baseline_port}"
            await wait_ready(base + "/readyz")
            topic_id, topic_url = await make_topic(base, token)
            spread = await make_topics(base, token, SPREAD_TOPICS)
            Path(folder, "spread.lua").write_text(SPREAD_SCRIPT % ", ".join(map(str, spread)))
            await wait_ready(f"{baseline}/baseline/topics/{topic_id}")
            # The cookies a signed-in browser sends: its session, and the CSRF cookie the first page set.
            cookie = {"Cookie": f"tica_session={session_id}; tica_csrf={csrf}"}
            page = {"duration_s": args.duration, "connections": args.connections, "warmup_s": args.warmup}
            runs = {
                "topic page HTML, logged in": run_wrk(base + topic_url, headers=cookie, **page),
                "topic JSON, logged in": run_wrk(f"{base}/api/topics/{topic_id}", headers=cookie, **page),
                "baseline: Starlette + asyncpg, same rows": run_wrk(
                    f"{baseline}/baseline/topics/{topic_id}", headers={}, **page
                ),
                "post creation, one topic (durable 201s)": run_wrk(
                    f"{base}/api/topics/{topic_id}/posts",
                    duration_s=args.duration,
                    connections=16,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    script=str(Path(folder, "post.lua")),
                ),
                f"post creation, {SPREAD_TOPICS} topics (durable 201s)": run_wrk(
                    base,
                    duration_s=args.duration,
                    connections=16,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    script=str(Path(folder, "spread.lua")),
                ),
            }
        print(f"\nforum benchmark, {os.cpu_count()} cores, {args.duration} s per run, wrk -c{args.connections}")
        print(f"{'what':<44}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
        for label, r in runs.items():
            print(f"{label:<44}{r['rps']:>10.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['errors']:>9.0f}")
        conn = await asyncpg.connect(settings.database_url)
        stored = await conn.fetchval("SELECT count(*) FROM forum.posts WHERE topic_id = $1", topic_id)
        await conn.close()
        print(f"posts stored in the topic after the run: {stored}")
        if args.against:
            # From a settled database: autovacuum of the rows written above must not run inside the first measurement.
            conn = await asyncpg.connect(settings.database_url)
            await conn.execute("VACUUM (ANALYZE)")
            await conn.close()
            # Both sides fresh servers, started together: neither carries the runs above in its heap.
            with worktree(args.against) as checkout:
                this_port, other_port = free_port(), free_port()
                processes.append(serve_forum(this_port, env, run_id))
                processes.append(serve_forum(other_port, env, run_id, checkout))
                this, other = f"http://127.0.0.1:{this_port}", f"http://127.0.0.1:{other_port}"
                await wait_ready(this + "/readyz")
                await wait_ready(other + "/readyz")
                compare(args, this, other, topic_url, topic_id, cookie, token)
    finally:
        for process in processes:
            stop(process)
        await admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        redis = aioredis.Redis.from_url(REDIS)
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
