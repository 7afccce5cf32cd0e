"""The summary email (digest), built from notify's projections, never forum tables.

An arq cron job (`enqueue_due_digests`, every 15 minutes) finds the members who are
due: their interval (daily or weekly) has passed since both their last digest and
their last visit, their address is verified, and they are not suspended. It queues
one `send_digest` job each, with a deterministic job id (member and when they
became due), so two runs queue one job, and the mail's idempotency key makes a
retried job send once. A digest holds the most active topics the member can see
since the last one (not muted, not started by members they muted or ignored),
the replies to their own topics, and one line per topic they track with new replies
("8 new replies in" the topic, the unread notification of tracking.py). A post is quoted only
when it may be: one with a content note (its own or its topic's) shows the note, one that
matched a safeguarding phrase shows its title and a link, and a hidden or waiting one is never
in a digest (mail.quotable). It also holds the library's new documents the member may see, and upcoming
webinars (next 30 days, not cancelled). A webinar is told of twice at most, never in
every digest: once when it was scheduled or moved in the digest's window, and once
more when it came within a week of starting in the window ("coming up this week").
Nothing is sent when there is nothing new.

`tica digests run [--now]` and `tica digests send --user U` are the commands.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from arq.connections import ArqRedis

from services.notify import mail, preferences, projections, tracking, unsubscribe
from services.notify.projections import Member
from shared import audience
from shared.jobs import job_id, open_queue
from shared.settings import Settings
from shared.web import Runtime, open_runtime

log = logging.getLogger("tica.digests")

INTERVALS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
LONGEST_WINDOW = timedelta(days=30)
TOPICS_LIMIT = 5
REPLIES_LIMIT = 10
TRACKED_LIMIT = 10
DOCUMENTS_LIMIT = 10
WEBINARS_LIMIT = 10
WEBINARS_AHEAD = timedelta(days=30)
WEBINAR_REMINDER = timedelta(days=7)
DUE_BATCH = 1000


class DigestError(Exception):
    """A digest command cannot go on (for example: no such member)."""


# --- who is due ------------------------------------------------------------------------------

DUE_SQL = """
SELECT u.id, greatest(d.last_checked_at, d.last_sent_at, u.registered_at) AS basis
FROM notify.users u
LEFT JOIN notify.preferences p ON p.user_id = u.id
LEFT JOIN notify.digests d ON d.user_id = u.id
CROSS JOIN LATERAL (SELECT CASE coalesce(p.digest, 'weekly') WHEN 'daily' THEN interval '1 day'
                                                             ELSE interval '7 days' END AS every) i
WHERE u.id > $2 AND u.email IS NOT NULL AND u.email_verified
  AND (u.suspended_until IS NULL OR u.suspended_until <= $1)
  AND coalesce(p.digest, 'weekly') <> 'never'
  AND greatest(d.last_checked_at, d.last_sent_at, u.registered_at) <= $1 - i.every
  AND (u.last_seen_at IS NULL OR u.last_seen_at <= $1 - i.every)
ORDER BY u.id
LIMIT $3
"""


async def find_due(
    conn: asyncpg.Connection, now: datetime, *, after_id: int = 0, limit: int = DUE_BATCH
) -> list[tuple[int, str]]:
    """Members due a digest (after `after_id`, in id order), each with the key of this due digest."""
    rows = await conn.fetch(DUE_SQL, now, after_id, limit)
    return [(row["id"], str(int(row["basis"].timestamp()))) for row in rows]


async def all_due(rt: Runtime, now: datetime) -> list[tuple[int, str]]:
    due: list[tuple[int, str]] = []
    while True:
        async with rt.pool.acquire() as conn:
            batch = await find_due(conn, now, after_id=due[-1][0] if due else 0)
        if not batch:
            return due
        due += batch


async def enqueue_due_digests(ctx: dict[str, Any]) -> int:
    """Cron job: queue one `send_digest` job per member who is due; returns how many were queued."""
    rt: Runtime = ctx["runtime"]
    queue: ArqRedis = ctx["redis"]
    queued = 0
    for user_id, key in await all_due(rt, datetime.now(UTC)):
        job = await queue.enqueue_job("send_digest", user_id, key, _job_id=job_id(queue, f"digest:{user_id}:{key}"))
        queued += job is not None
    log.info("digests: %d queued", queued)
    return queued


# --- what a digest holds -----------------------------------------------------------------------

_VISIBLE_TO_MEMBER = f"""
  AND {audience.MAY_READ_SQL.format(viewer="$4", item=projections.TOPIC_AUDIENCE_SQL.format(t="t"))}
  AND notify.effective_level(tw.level, tw.reason, cw.level) <> 'muted'
"""
_WATCH_JOINS = """
LEFT JOIN notify.watches tw ON tw.user_id = $1 AND tw.target_kind = 'topic' AND tw.target_id = t.id
LEFT JOIN notify.watches cw ON cw.user_id = $1 AND cw.target_kind = 'category' AND cw.target_id = t.category_id
"""

REPLIES_SQL = f"""
SELECT p.id, p.topic_id, p.post_number, p.author_username, p.excerpt, p.content_note, p.sensitive, t.title,
       t.slug, t.content_note AS topic_note
FROM notify.topics t
JOIN notify.posts p ON p.topic_id = t.id
{_WATCH_JOINS}
WHERE t.author_id = $1 AND p.author_id <> $1 AND p.post_number > 1 AND p.status = 'visible'
  AND p.created_at > $2 AND p.created_at <= $3
  {_VISIBLE_TO_MEMBER}
  AND NOT EXISTS (SELECT 1 FROM notify.mutes m WHERE m.user_id = $1 AND m.level <> 'none'
                  AND m.muted_user_id = p.author_id)
  AND NOT EXISTS (SELECT 1 FROM notify.tracked_replies tr WHERE tr.user_id = $1 AND tr.post_id = p.id)
ORDER BY p.created_at DESC, p.id DESC
LIMIT $5
"""

# Topics the member tracks with new replies: their unread count of new replies, updated in the
# window (one line each; a count told in an earlier digest and not grown since is not told again).
TRACKED_SQL = f"""
SELECT n.id, n.post_id, n.data, t.title
FROM notify.notifications n
JOIN notify.topics t ON t.id = n.topic_id
{_WATCH_JOINS}
WHERE n.user_id = $1 AND n.kind = 'new_replies' AND n.read_at IS NULL
  AND n.updated_at > $2 AND n.updated_at <= $3
  {_VISIBLE_TO_MEMBER}
ORDER BY n.updated_at DESC, n.id DESC
LIMIT $5
"""

# New documents since the window started that the member may see ($2: their audiences).
DOCUMENTS_SQL = f"""
SELECT d.id, d.title, d.uploaded_at, f.name AS folder_name
FROM notify.documents d
LEFT JOIN notify.folders f ON f.id = d.folder_id
WHERE NOT d.deleted AND d.uploaded_at > $3 AND d.uploaded_at <= $4
  AND {audience.MAY_READ_SQL.format(viewer="$2", item=projections.DOCUMENT_AUDIENCE_SQL.format(d="d"))}
ORDER BY d.uploaded_at DESC, d.id DESC
LIMIT $1
"""

# Upcoming webinars (not cancelled, starting in the next 30 days) the member may see, that were
# scheduled or moved in the window, or came within a week of starting in it: so each webinar is
# in a digest when announced and once more as a reminder, not in every digest until it starts.
WEBINARS_SQL = f"""
SELECT w.id, w.title, w.starts_at, w.ends_at, w.announced_at > $3 AS announced
FROM notify.webinars w
WHERE w.status <> 'cancelled' AND w.starts_at > $4 AND w.starts_at <= $4 + $5::interval
  AND {audience.MAY_READ_SQL.format(viewer="$2", item="w.audience")}
  AND ((w.announced_at > $3 AND w.announced_at <= $4)
       OR (w.starts_at > $3 + $6::interval AND w.starts_at <= $4 + $6::interval))
ORDER BY w.starts_at, w.id
LIMIT $1
"""

# --- the activity index: which topics were most active, for many digests at once ------------------

INDEX_POSTS_SQL = """
SELECT topic_id, author_id, extract(epoch FROM created_at)::float8 AS at
FROM notify.posts
WHERE created_at > $1 AND created_at <= $2 AND status = 'visible'
ORDER BY created_at, id
"""

INDEX_TOPICS_SQL = f"""
SELECT t.id, t.title, t.slug, t.content_note, t.category_id, t.author_id,
       {projections.TOPIC_AUDIENCE_SQL.format(t="t")} AS audience,
       CASE WHEN NOT p.sensitive THEN p.excerpt END AS first_excerpt, p.content_note AS first_note
FROM notify.topics t
LEFT JOIN notify.posts p ON p.topic_id = t.id AND p.post_number = 1 AND p.status = 'visible'
WHERE t.id = ANY($1::bigint[])
"""

MEMBER_FILTERS_SQL = """
SELECT (SELECT coalesce(array_agg(muted_user_id), '{}') FROM notify.mutes
        WHERE user_id = $1 AND level <> 'none') AS muted_users,
       (SELECT coalesce(array_agg(target_kind || ':' || target_id || ':' || level || ':' || reason), '{}')
        FROM notify.watches WHERE user_id = $1) AS watches
"""
INDEX_MAX_AGE_S = 300.0


@dataclass
class TopicActivity:
    """One topic with visible posts in the index window: its facts and its posts' times, oldest first."""

    id: int
    title: str
    slug: str
    content_note: str | None
    category_id: int
    author_id: int | None
    audience: frozenset[str]
    first_excerpt: str | None
    first_note: str | None
    times: list[float] = field(default_factory=list)


@dataclass
class ActivityIndex:
    """The visible posts of the last 30 days by topic, read once and shared by many digests.

    Counting a topic's posts in one member's window is then a binary search, not a scan of the
    window's posts per member: 100,000 digests need one read of the posts, not 100,000. A digest
    built from an index covers the window up to `until`, the moment the index was read.
    """

    until: datetime
    topics: list[TopicActivity]  # most posts first
    by_author: dict[int, list[tuple[float, int]]]  # author -> (time, topic id) of their posts
    built_at: float = field(default_factory=time.monotonic)

    @classmethod
    async def load(cls, conn: asyncpg.Connection, until: datetime) -> ActivityIndex:
        posts = await conn.fetch(INDEX_POSTS_SQL, until - LONGEST_WINDOW, until)
        times: dict[int, list[float]] = {}
        by_author: dict[int, list[tuple[float, int]]] = {}
        for row in posts:
            times.setdefault(row["topic_id"], []).append(row["at"])
            by_author.setdefault(row["author_id"], []).append((row["at"], row["topic_id"]))
        topics = [
            TopicActivity(
                r["id"],
                r["title"],
                r["slug"],
                r["content_note"],
                r["category_id"],
                r["author_id"],
                frozenset(r["audience"]),
                r["first_excerpt"],
                r["first_note"],
                times[r["id"]],
            )
            for r in await conn.fetch(INDEX_TOPICS_SQL, list(times))
        ]
        topics.sort(key=lambda t: len(t.times), reverse=True)
        return cls(until, topics, by_author)

    def most_active(
        self,
        member: Member,
        since: datetime,
        *,
        muted_users: set[int],
        watches: dict[str, tuple[str, str]],
        limit: int = TOPICS_LIMIT,
    ) -> list[tuple[TopicActivity, int]]:
        """The member's most active topics in (since, until]: ones they can see and did not mute,
        not started by them or by members they muted, counting only others' posts."""
        start = since.timestamp()
        may_read = audience.reader(member.audiences)
        discount: Counter[int] = Counter()
        for author in (member.id, *muted_users):
            for at, topic_id in self.by_author.get(author, ()):
                if at > start:
                    discount[topic_id] += 1
        best: list[tuple[int, float, int]] = []  # a min-heap of the `limit` best (count, last post, id)
        chosen: dict[int, TopicActivity] = {}
        for topic in self.topics:
            if len(best) >= limit and len(topic.times) < best[0][0]:
                break  # sorted by all their posts: no topic after this one can have more in the window
            count = len(topic.times) - bisect.bisect_right(topic.times, start) - discount[topic.id]
            if count <= 0 or topic.author_id == member.id or topic.author_id in muted_users:
                continue
            if not may_read(topic.audience) or (watches and _muted(topic, watches)):
                continue
            item = (count, topic.times[-1], topic.id)
            if len(best) < limit:
                heapq.heappush(best, item)
            elif item > best[0]:
                heapq.heapreplace(best, item)
            else:
                continue
            chosen[topic.id] = topic
        return [(chosen[topic_id], count) for count, _, topic_id in sorted(best, reverse=True)]


def _muted(topic: TopicActivity, watches: dict[str, tuple[str, str]]) -> bool:
    """The rule of notify.effective_level(): a topic's own level, but posting never lowers a watched category."""
    own = watches.get(f"topic:{topic.id}")
    category = watches.get(f"category:{topic.category_id}")
    if own is None:
        return category is not None and category[0] == "muted"
    return own[0] == "muted"


async def member_filters(conn: asyncpg.Connection, user_id: int) -> tuple[set[int], dict[str, tuple[str, str]]]:
    """Whom a member muted or ignored, and their watch levels ("topic:N" -> (level, reason))."""
    row = await conn.fetchrow(MEMBER_FILTERS_SQL, user_id)
    watches = {}
    for value in row["watches"]:
        kind, target, level, reason = value.split(":")
        watches[f"{kind}:{target}"] = (level, reason)
    return set(row["muted_users"]), watches


async def shared_index(rt: Runtime) -> ActivityIndex:
    """This process's index, read again when older than a few minutes (digest jobs in the worker)."""
    index: ActivityIndex | None = rt.extras.get("digest_index")
    if index is None or time.monotonic() - index.built_at > INDEX_MAX_AGE_S:
        async with rt.pool.acquire() as conn:
            index = await ActivityIndex.load(conn, datetime.now(UTC))
        rt.extras["digest_index"] = index
    return index


@dataclass
class Digest:
    """One member's digest: the window it covers and what it holds."""

    member: Member
    frequency: str
    since: datetime
    until: datetime
    topics: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    tracked: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    webinars: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.count

    @property
    def count(self) -> int:
        return len(self.topics) + len(self.replies) + len(self.tracked) + len(self.documents) + len(self.webinars)


def window_start(
    now: datetime, frequency: str, last_sent_at: datetime | None, last_seen_at: datetime | None
) -> datetime:
    """Since the last digest or visit, whichever is later; one interval for a first digest; 30 days at most."""
    known = [t for t in (last_sent_at, last_seen_at) if t is not None]
    since = max(known) if known else now - INTERVALS[frequency]
    return max(since, now - LONGEST_WINDOW)


def _topic_item(topic: TopicActivity, new_posts: int, base_url: str) -> dict[str, Any]:
    # first_excerpt is there only for a visible first post that did not match a safeguarding phrase.
    note = topic.content_note or topic.first_note
    return {
        "title": topic.title,
        "url": f"{base_url}/t/{topic.slug}/{topic.id}",
        "new_posts": new_posts,
        "content_note": note,
        "excerpt": mail.quotable(topic.first_excerpt, note=note, sensitive=False, status="visible"),
    }


def _reply_item(row: asyncpg.Record, base_url: str) -> dict[str, Any]:
    # A note on the topic covers its replies too: a reply in a noted topic shows the note.
    note = row["content_note"] or row["topic_note"]
    return {
        "topic_title": row["title"],
        "author_username": row["author_username"],
        "url": f"{base_url}/p/{row['id']}",
        "content_note": note,
        "excerpt": mail.quotable(row["excerpt"], note=note, sensitive=row["sensitive"], status="visible"),
    }


def _tracked_item(row: asyncpg.Record, base_url: str) -> dict[str, Any]:
    text = tracking.describe(dict(row["data"] or {}), one_line(row["title"]))
    return {"text": text, "url": f"{base_url}/p/{row['post_id']}"}


def one_line(value: str | None) -> str:
    """A title for a text part: on one line, so a title can never pose as a link or a new paragraph."""
    return " ".join((value or "").split())


def when_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%A %-d %B %Y, %H:%M UTC")


def _document_item(row: asyncpg.Record, base_url: str) -> dict[str, Any]:
    return {
        "title": one_line(row["title"]) or "A document",
        "folder": one_line(row["folder_name"]) or None,
        "url": f"{base_url}/library/documents/{row['id']}",
    }


def _webinar_item(row: asyncpg.Record, base_url: str) -> dict[str, Any]:
    return {
        "title": one_line(row["title"]) or "A webinar",
        "when": when_text(row["starts_at"]),
        "new": bool(row["announced"]),
        "url": f"{base_url}/webinars/{row['id']}",
    }


async def library_and_webinars(
    conn: asyncpg.Connection, member: Member, *, since: datetime, until: datetime, base_url: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """New documents the member may see in (since, until], and the webinars to tell them of."""
    audiences = member.audiences
    documents = await conn.fetch(DOCUMENTS_SQL, DOCUMENTS_LIMIT, audiences, since, until)
    webinars = await conn.fetch(WEBINARS_SQL, WEBINARS_LIMIT, audiences, since, until, WEBINARS_AHEAD, WEBINAR_REMINDER)
    return [_document_item(r, base_url) for r in documents], [_webinar_item(r, base_url) for r in webinars]


async def build_digest(
    conn: asyncpg.Connection, member: Member, *, frequency: str, since: datetime, index: ActivityIndex, base_url: str
) -> Digest:
    """What one member's digest holds for the window (since, index.until]."""
    audiences = member.audiences
    muted_users, watches = await member_filters(conn, member.id)
    topics = index.most_active(member, since, muted_users=muted_users, watches=watches)
    replies = await conn.fetch(REPLIES_SQL, member.id, since, index.until, audiences, REPLIES_LIMIT)
    tracked = await conn.fetch(TRACKED_SQL, member.id, since, index.until, audiences, TRACKED_LIMIT)
    documents, webinars = await library_and_webinars(conn, member, since=since, until=index.until, base_url=base_url)
    return Digest(
        member,
        frequency,
        since,
        index.until,
        topics=[_topic_item(topic, count, base_url) for topic, count in topics],
        replies=[_reply_item(row, base_url) for row in replies],
        tracked=[_tracked_item(row, base_url) for row in tracked],
        documents=documents,
        webinars=webinars,
    )


def render_digest(settings: Settings, digest: Digest) -> tuple[str, str, str]:
    """Subject, text and HTML of a digest."""
    daily = digest.frequency == "daily"
    count = digest.count
    things = f"{count} thing{'s' if count != 1 else ''}"
    site_name = settings.site_name
    subject = f"Your {'daily' if daily else 'weekly'} {site_name} summary: {things} to catch up on"
    context = {
        "subject": subject,
        "heading": f"Your {site_name} summary",
        "site_name": site_name,
        "member": digest.member,
        "period_words": "since yesterday" if daily else "since your last summary",
        "frequency": "daily" if daily else "weekly",
        "topics": digest.topics,
        "replies": digest.replies,
        "tracked": digest.tracked,
        "documents": digest.documents,
        "webinars": digest.webinars,
        "base_url": settings.public_url,
        "list_words": unsubscribe.LISTS["digest"][1],
        "unsubscribe_url": unsubscribe.unsubscribe_url(settings, digest.member.id, "digest"),
    }
    text, html = mail.render_mail("digest", context)
    return subject, text, html


# --- sending ------------------------------------------------------------------------------------


async def mark_checked(conn: asyncpg.Connection, user_id: int, at: datetime, *, sent: bool) -> None:
    """Record that a digest was due at `at`: sent (starts the next window) or nothing new."""
    await conn.execute(
        "INSERT INTO notify.digests AS d (user_id, last_sent_at, last_checked_at, sent_count) "
        "VALUES ($1, CASE WHEN $3 THEN $2::timestamptz END, $2, $3::boolean::int) "
        "ON CONFLICT (user_id) DO UPDATE SET last_checked_at = greatest(d.last_checked_at, $2), "
        "last_sent_at = CASE WHEN $3 THEN greatest(d.last_sent_at, $2) ELSE d.last_sent_at END, "
        "sent_count = d.sent_count + $3::boolean::int",
        user_id,
        at,
        sent,
    )


def wants_digest(member: Member, prefs: dict[str, str], now: datetime) -> bool:
    return bool(member.email) and member.email_verified and not member.is_suspended(now) and prefs["digest"] != "never"


async def send_digest(
    ctx: dict[str, Any], user_id: int, key: str, force: bool = False, index: ActivityIndex | None = None
) -> str:
    """Job: build and send one member's digest. Returns "sent", "already sent", "nothing new" or "not wanted".

    `force` (tica digests send) sends whatever the schedule, still only when something is new.
    `index`: the batch's activity index; jobs share their worker's, read again every few minutes.
    """
    rt: Runtime = ctx["runtime"]
    async with rt.pool.acquire() as conn:
        member = await projections.fetch_member(conn, user_id)
        prefs = await preferences.get_preferences(conn, user_id)
        if member is None or not member.email or (not force and not wants_digest(member, prefs, datetime.now(UTC))):
            return "not wanted"
        if index is None:
            index = await ActivityIndex.load(conn, datetime.now(UTC)) if force else await shared_index(rt)
        frequency = prefs["digest"] if prefs["digest"] in INTERVALS else "weekly"
        last_sent = await conn.fetchval("SELECT last_sent_at FROM notify.digests WHERE user_id = $1", user_id)
        # A forced digest (previews, support) covers the interval even for a member here right now.
        since = window_start(index.until, frequency, last_sent, None if force else member.last_seen_at)
        digest = await build_digest(
            conn, member, frequency=frequency, since=since, index=index, base_url=rt.settings.public_url
        )
        if digest.empty:
            await mark_checked(conn, user_id, index.until, sent=False)
            return "nothing new"
    subject, text, html = render_digest(rt.settings, digest)
    sent = await mail.send_mail(
        ctx,
        to=member.email,
        subject=subject,
        text=text,
        html=html,
        key=f"digest:{user_id}:{key}",
        headers=unsubscribe.headers(rt.settings, user_id, "digest"),
    )
    async with rt.pool.acquire() as conn:
        await mark_checked(conn, user_id, index.until, sent=True)
    return "sent" if sent else "already sent"


# --- commands ------------------------------------------------------------------------------------


async def send_due_now(rt: Runtime, *, concurrency: int = 8) -> Counter[str]:
    """Send every digest that is due, in this process (`tica digests run --now`)."""
    now = datetime.now(UTC)
    due = await all_due(rt, now)
    if not due:
        return Counter()
    async with rt.pool.acquire() as conn:
        index = await ActivityIndex.load(conn, now)
    results: Counter[str] = Counter()
    todo: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in due:
        todo.put_nowait(item)

    async def work() -> None:
        while not todo.empty():
            user_id, key = todo.get_nowait()
            try:
                results[await send_digest({"runtime": rt}, user_id, key, index=index)] += 1
            except Exception as exc:  # one member's failure must not stop the others
                log.warning("digest for member %d failed: %r", user_id, exc)
                results["failed"] += 1

    await asyncio.gather(*(work() for _ in range(concurrency)))
    return results


async def command_run(settings: Settings, *, now: bool) -> str:
    """`tica digests run`: queue due digests for the worker, or (`--now`) send them here."""
    async with open_runtime(settings) as rt:
        if now:
            results = await send_due_now(rt)
            if not results:
                return "no digest is due"
            return ", ".join(f"{count} {what}" for what, count in sorted(results.items()))
        queue = await open_queue(settings)
        try:
            queued = await enqueue_due_digests({"runtime": rt, "redis": queue})
        finally:
            await queue.aclose()
        return f"{queued} digest(s) queued for the worker"


async def command_send(settings: Settings, login: str) -> str:
    """`tica digests send --user U`: build and send one member's digest now, whatever its schedule."""
    async with open_runtime(settings) as rt:
        async with rt.pool.acquire() as conn:
            member = await projections.find_member(conn, login)
        if member is None:
            raise DigestError(f"no member {login!r} is known to notify")
        if not member.email:
            raise DigestError(f"notify knows no email address for {member.username}")
        key = f"manual:{int(datetime.now(UTC).timestamp() * 1000)}"
        result = await send_digest({"runtime": rt}, member.id, key, force=True)
    return f"{member.username}: {result}"
