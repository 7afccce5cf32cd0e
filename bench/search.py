"""Search benchmark: query latency at 1,000,000 posts, and index lag under a steady stream of posts.

    .venv/bin/python bench/search.py [--posts 1000000] [--runs 10] [--rate 200] [--seconds 20] [--keep]

Uses a real PostgreSQL and Redis (TICA_BENCH_DATABASE_URL / TICA_BENCH_REDIS_URL, by default
the local ones), in a database `tica_bench_search_<random>` (dropped at the end unless --keep)
and under a Redis key prefix of its own (deleted at the end).

1. Load: every migration, then N posts (and one topic per 20 posts) written with COPY straight
   into search.documents; the tsvector is the table's generated column, so each row is indexed
   exactly as the indexer would index it. Going through events would take hours for a million
   rows; the event path is measured in step 3 instead. The text is drawn from a Zipf-distributed
   vocabulary (English function words and the community's words first, then 50,000 made-up
   words), about 60 words a post, spread over three years up to now; 8% of it is in a private
   category. The GIN index is built after loading.
2. Latency: for rare (10-300 posts), medium (2,000-20,000) and very common (over 100,000) words,
   and for two common words and a phrase of them, the time of `query.search()` (what
   GET /api/search calls: parsing done, tsquery, candidates, ranking, snippets of page 1) as an
   anonymous viewer, after one untimed warm-up pass.
3. Lag: a writer commits post.created events into the forum's outbox at a steady rate; the relay
   (LISTEN/NOTIFY) publishes them to the stream and the search-indexer consumer applies them to
   the million-row index. Lag = from just before the writer's COMMIT to the end of the indexer's
   transaction, when the post is searchable. A searcher runs alongside (common and rare words).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.cli import migration_plan
from services.forum.outbox import OUTBOX as FORUM_OUTBOX
from services.search import indexer, query
from shared import db
from shared.events import Envelope, PostCreated, Relay, stream_name, write_event

DATABASE_URL = os.environ.get("TICA_BENCH_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("TICA_BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0"


def _words(text: str) -> list[str]:
    return text.split()


FUNCTION_WORDS = _words(
    "the and to of a i in that it is was for you with my on be have this but not as at are they we had so "
    "what can all about there if from or would just me do one been their when more our like them your who "
    "very could some out people time how also which were than then really because feel know think only get "
    "even well back way things still those should through help where need good make much first after over"
)
COMMUNITY_WORDS = _words(
    "trauma care support staff team service practice patient nurse family child children mental health "
    "safety trust choice collaboration empowerment experience lived recovery therapy group session training "
    "leadership research evidence community organisation hospital ward clinic manager colleague wellbeing "
    "stress anxiety grief loss abuse neglect violence resilience listening compassion kindness boundaries "
    "supervision reflection practitioner social worker school teacher police prison housing refugee asylum "
    "veteran older race racism historic harm shame safe unsafe trigger flashback panic breathing grounding calm "
    "sleep nightmare memory body voice control power respect dignity consent language culture policy "
    "commissioning funding workforce burnout moral injury vicarious secondary peer mentor volunteer shift "
    "night morning meeting handover referral assessment plan goal progress setback relapse medication "
    "counselling counsellor psychologist psychiatrist doctor gp appointment waiting list crisis emergency "
    "helpline samaritans carer parent mother father sister brother partner friend neighbour church faith "
    "identity belonging isolation loneliness connection relationship attachment development adolescent youth "
    "student university course workshop webinar conference presentation slides document statement consensus "
    "survey questionnaire interview story narrative blog case study reading book article journal paper"
)
SYLLABLES_C, SYLLABLES_V = "bcdfghjklmnprstvwz", "aeiou"
VOCABULARY_SIZE = 50_000
CATEGORIES = 12  # the last one is private to group 1
AUTHORS = 5_000
SPAN = timedelta(days=3 * 365)
COPY_BATCH = 20_000
COPY_COLUMNS = (
    "kind",
    "id",
    "topic_id",
    "post_number",
    "category_id",
    "author_id",
    "title",
    "slug",
    "body",
    "audience",
    "status",
    "created_at",
)


def vocabulary() -> list[str]:
    """Real words first (function and community words interleaved), then made-up ones; rank = position."""
    words: list[str] = []
    community = iter(COMMUNITY_WORDS)
    for word in FUNCTION_WORDS:
        words += [word, next(community, "")]
    words = [w for w in words if w] + list(community)
    seen = set(words)
    rng = random.Random(7)
    while len(words) < VOCABULARY_SIZE:
        made_up = "".join(rng.choice(SYLLABLES_C) + rng.choice(SYLLABLES_V) for _ in range(rng.randint(2, 4)))
        made_up += rng.choice(("", "s", "ing", "ed", "ly", "ness", "tion"))
        if made_up not in seen:
            seen.add(made_up)
            words.append(made_up)
    return words


class Text:
    """Zipf-distributed text: rank k is drawn with probability about 1/k (k = floor(V^u))."""

    def __init__(self, words: list[str], seed: int) -> None:
        self.words = words
        self.rng = random.Random(seed)

    def words_(self, count: int) -> str:
        size, rng, words = len(self.words), self.rng, self.words
        return " ".join(words[int(size ** rng.random()) - 1] for _ in range(count))

    def post(self) -> str:
        return self.words_(max(5, min(400, int(self.rng.lognormvariate(3.9, 0.6)))))

    def title(self) -> str:
        return self.words_(self.rng.randint(4, 9)).capitalize()


def rows(text: Text, first: int, last: int, total: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """Posts first..last-1 (and the topic each 20th post starts), oldest first."""
    for n in range(first, last):
        created = now - SPAN * (1 - n / total) + timedelta(seconds=text.rng.random() * 60)
        created = min(created, now)
        topic_id = n // 20 + 1
        category = topic_id % CATEGORIES + 1
        audience = ["group:1"] if category == CATEGORIES else ["public"]
        author = text.rng.randint(1, AUTHORS)
        if n % 20 == 0:
            title = text.title()
            yield (
                "topic",
                topic_id,
                topic_id,
                None,
                category,
                author,
                title,
                f"topic-{topic_id}",
                "",
                audience,
                "visible",
                created,
            )
        yield (
            "post",
            n + 1,
            topic_id,
            n % 20 + 1,
            category,
            author,
            "",
            f"topic-{topic_id}",
            text.post(),
            audience,
            "visible",
            created,
        )


# --- database ------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def load(dsn: str, posts: int, words: list[str], now: datetime) -> float:
    """COPY the documents with two connections (the vector is computed by PostgreSQL), then the GIN index."""
    started = time.perf_counter()
    conn = await db.connect(dsn)
    await conn.execute("DROP INDEX search.documents_tsv")
    await conn.execute(
        "INSERT INTO search.users (user_id, username, display_name) "
        "SELECT n, 'member' || n, 'Member ' || n FROM generate_series(1, $1) n",
        AUTHORS,
    )
    await conn.execute(
        "INSERT INTO search.categories (category_id, slug, name, audience) "
        "SELECT n, 'category-' || n, 'Category ' || n, "
        "CASE WHEN n = $1 THEN '{group:1}'::text[] ELSE '{public}' END FROM generate_series(1, $1) n",
        CATEGORIES,
    )
    queue: asyncio.Queue[list[tuple[Any, ...]] | None] = asyncio.Queue(maxsize=2)

    async def copier() -> None:
        target = await db.connect(dsn)
        try:
            while (batch := await queue.get()) is not None:
                await target.copy_records_to_table(
                    "documents", schema_name="search", records=batch, columns=COPY_COLUMNS
                )
        finally:
            await target.close()

    copiers = [asyncio.create_task(copier()) for _ in range(2)]
    text = Text(words, seed=1)
    for first in range(0, posts, COPY_BATCH):
        await queue.put(list(rows(text, first, min(posts, first + COPY_BATCH), posts, now)))
        if first and first % 200_000 == 0:
            print(f"  {first:,} posts loaded ({time.perf_counter() - started:.0f} s)", flush=True)
    for _ in copiers:
        await queue.put(None)
    await asyncio.gather(*copiers)
    print(f"  {posts:,} posts loaded ({time.perf_counter() - started:.0f} s); building the GIN index", flush=True)
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute("CREATE INDEX documents_tsv ON search.documents USING gin (tsv) WHERE status = 'visible'")
    await conn.execute("VACUUM ANALYZE search.documents")
    await conn.close()
    return time.perf_counter() - started


CLASSES = (("rare", 10, 300), ("medium", 2_000, 20_000), ("very common", 100_000, 10**9))


async def pick_terms(pool: asyncpg.Pool, words: list[str], per_class: int) -> dict[str, list[tuple[str, int]]]:
    """Words of each class by document frequency, estimated from a 5% sample of the documents."""
    rows_ = await pool.fetch(
        "SELECT word, ndoc * 20 AS docs FROM ts_stat("
        "'SELECT tsv FROM search.documents TABLESAMPLE SYSTEM (5) REPEATABLE (1)') "
        "WHERE position(' ' in word) = 0"
    )
    docs = {r["word"]: r["docs"] for r in rows_}
    stems = await pool.fetch(
        "SELECT w, strip(to_tsvector('english', w))::text AS lexeme FROM unnest($1::text[]) w", words
    )
    by_class: dict[str, list[tuple[str, int]]] = {name: [] for name, _, _ in CLASSES}
    seen: set[str] = set()
    for row in stems:
        lexeme = row["lexeme"].strip("'")
        if not lexeme or " " in lexeme or lexeme in seen or lexeme not in docs:
            continue
        seen.add(lexeme)
        for name, low, high in CLASSES:
            if low <= docs[lexeme] <= high and len(by_class[name]) < per_class:
                by_class[name].append((row["w"], docs[lexeme]))
    return by_class


def quantiles(values: list[float]) -> tuple[float, float, float, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[94], q[98], max(values)


async def latency(pool: asyncpg.Pool, queries: list[str], runs: int) -> list[float]:
    """Milliseconds of query.search() for each query, `runs` times, after one warm-up pass."""
    parsed = [query.parse(q) for q in queries]
    for p in parsed:
        await query.search(pool, p, ["public"])
    times = []
    for _ in range(runs):
        for p in parsed:
            started = time.perf_counter()
            await query.search(pool, p, ["public"])
            times.append((time.perf_counter() - started) * 1000)
    return times


# --- lag under a steady stream of posts -------------------------------------------------------------


async def lag(
    dsn: str, pool: asyncpg.Pool, words: list[str], *, rate: int, seconds: float, searches: list[str]
) -> dict[str, Any]:
    """Commit post.created events at `rate`/s through outbox -> relay -> stream -> indexer; lag of each."""
    prefix = f"tica-bench-{secrets.token_hex(4)}:"
    redis = aioredis.Redis.from_url(REDIS_URL)
    stream = stream_name(prefix)
    committing: dict[str, float] = {}
    lags: list[float] = []

    class TimedIndexer(indexer.Indexer):
        async def handle_many(self, envelopes: list[Envelope]) -> None:
            await super().handle_many(envelopes)
            done = time.perf_counter()
            lags.extend((done - committing.pop(e.id)) * 1000 for e in envelopes if e.id in committing)

    relay = Relay(pool, redis, stream, FORUM_OUTBOX)
    # The search service's own consumer (indexer.make_consumer), timed.
    consumer = indexer.indexer_consumer(pool, redis, prefix, "bench")
    consumer.indexer = TimedIndexer(pool)
    consumer.handler = consumer.indexer.handle
    await consumer.ensure_group()
    stop = asyncio.Event()
    loops = [asyncio.create_task(relay.run(stop, dsn)), asyncio.create_task(consumer.run(stop))]
    text = Text(words, seed=2)
    search_ms: list[float] = []
    lag_samples: list[int] = []

    async def searcher() -> None:
        parsed = [query.parse(q) for q in searches]
        while not stop.is_set():
            for p in parsed:
                started = time.perf_counter()
                await query.search(pool, p, ["public"])
                search_ms.append((time.perf_counter() - started) * 1000)
            lag_samples.append((await indexer.stream_lag(redis, stream, indexer.GROUP))["lag"] or 0)
            await asyncio.sleep(0.1)

    search_task = asyncio.create_task(searcher())
    next_id = 10**8
    total = int(rate * seconds)
    started = time.perf_counter()
    async with pool.acquire() as conn:
        for n in range(total):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            async with conn.transaction():
                event = PostCreated(
                    post_id=next_id + n,
                    topic_id=next_id + n // 20,
                    post_number=n % 20 + 1,
                    category_id=1,
                    topic_title="Live topic",
                    author_id=1,
                    author_username="member1",
                    text=text.post(),
                    content_note=None,
                    audience=["public"],
                    reply_to_post_id=None,
                    reply_to_user_id=None,
                    mentioned_user_ids=[],
                    quoted_user_ids=[],
                    created_at=datetime.now(UTC).isoformat(),
                )
                envelope = await write_event(conn, event, actor_id=1, outbox=FORUM_OUTBOX)
                committing[envelope.id] = time.perf_counter()
    elapsed = time.perf_counter() - started
    deadline = time.perf_counter() + 30
    while committing and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*loops, search_task)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    return {
        "events": total,
        "rate": total / elapsed,
        "lags": lags,
        "missing": len(committing),
        "search_ms": search_ms,
        "max_group_lag": max(lag_samples or [0]),
    }


# --- the run ---------------------------------------------------------------------------------------


def table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


async def main(args: argparse.Namespace) -> None:
    name = args.reuse or f"tica_bench_search_{secrets.token_hex(4)}"
    dsn = with_database(DATABASE_URL, name)
    words = vocabulary()
    if not args.reuse:
        await admin(f"CREATE DATABASE {name}")
    print(f"database {name}")
    try:
        if not args.reuse:
            conn = await db.connect(dsn)
            await db.migrate(conn, migration_plan())
            await conn.close()
            load_s = await load(dsn, args.posts, words, datetime.now(UTC))
            print(f"loaded and indexed in {load_s:.0f} s")
        pool = await db.create_pool(dsn, max_size=4)
        size = await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('search.documents'))")
        gin = await pool.fetchval("SELECT pg_size_pretty(pg_relation_size('search.documents_tsv'))")
        print(f"search.documents with its indexes: {size} (GIN {gin})")
        terms = await pick_terms(pool, words, args.terms)
        common = [w for w, _ in terms["very common"]]
        classes = [(label, [w for w, _ in found], found) for label, found in terms.items()]
        pairs = list(itertools.pairwise(common))
        classes += [
            ("two common words", [f"{a} {b}" for a, b in pairs], []),
            ("phrase of two common words", [f'"{a} {b}"' for a, b in pairs], []),
        ]
        body = []
        for label, queries, found in classes:
            if not queries:
                continue
            times = await latency(pool, queries, args.runs)
            p50, p95, p99, worst = quantiles(times)
            freq = f"{min(d for _, d in found):,}-{max(d for _, d in found):,}" if found else "-"
            body.append(
                [
                    label,
                    str(len(queries)),
                    freq,
                    str(len(times)),
                    f"{p50:.1f}",
                    f"{p95:.1f}",
                    f"{p99:.1f}",
                    f"{worst:.1f}",
                ]
            )
            print(f"  {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms", flush=True)
        exact = (
            await pool.fetchval(
                "SELECT count(*) FROM search.documents WHERE tsv @@ plainto_tsquery('english', $1)", common[0]
            )
            if common
            else 0
        )
        print()
        print(
            table(["query", "terms", "posts matching (est.)", "queries", "p50 ms", "p95 ms", "p99 ms", "max ms"], body)
        )
        if common:
            print(f"\n(the most common term, {common[0]!r}, matches exactly {exact:,} documents)")
        result = await lag(
            dsn,
            pool,
            words,
            rate=args.rate,
            seconds=args.seconds,
            searches=[common[0] if common else "care", terms["rare"][0][0] if terms["rare"] else "x"],
        )
        p50, p95, p99, worst = quantiles(result["lags"])
        s50, s95, s99, _ = quantiles(result["search_ms"])
        print()
        print(
            table(
                [
                    "events",
                    "rate/s",
                    "lag p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "max ms",
                    "not indexed",
                    "max group lag (entries)",
                    "searches meanwhile p50 / p95 / p99 ms",
                ],
                [
                    [
                        f"{result['events']:,}",
                        f"{result['rate']:.0f}",
                        f"{p50:.1f}",
                        f"{p95:.1f}",
                        f"{p99:.1f}",
                        f"{worst:.1f}",
                        str(result["missing"]),
                        str(result["max_group_lag"]),
                        f"{s50:.1f} / {s95:.1f} / {s99:.1f}",
                    ]
                ],
            )
        )
        await pool.close()
    finally:
        if args.keep or args.reuse:
            print(f"kept database {name}")
        else:
            await admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--terms", type=int, default=20, help="words per frequency class")
    parser.add_argument("--runs", type=int, default=10, help="timed passes over each class's queries")
    parser.add_argument("--rate", type=int, default=200, help="posts per second in the lag test")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the lag test")
    parser.add_argument("--keep", action="store_true", help="keep the database (to run EXPLAIN by hand)")
    parser.add_argument("--reuse", metavar="DATABASE", help="measure a database kept by an earlier --keep run")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
