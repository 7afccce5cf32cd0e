"""Posts: writing them (rendering, mentions, quotes), editing with kept revisions,
deleting, and supportive reactions; the `/api/posts/...` endpoints. Also the moves
moderation makes on a post (publish a waiting one, hide, restore, reject, remove), each
with its event, and what pseudonymous posting hides ("Anonymous member").

Topics (topics.py) build on this module: a topic's first post and every reply are
made by `create_post`. The rules live in `check_*` functions and the changes in
`do_*`-style functions that also write their event in the caller's transaction,
so the API and the pages (topic_pages.py) share one implementation.

A post's status: visible; pending (waiting for a moderator, seen only by its author and
staff, no events yet); rejected (not published; its author may appeal); hidden (by
moderators or flags; others see a placeholder); deleted (a placeholder keeps its number).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.moderation import audit, safety
from shared import markdown
from shared.api import ApiRouter, Field, Schema, path_int, read_json
from shared.events import (
    PostCreated,
    PostDeleted,
    PostEdited,
    PostHidden,
    PostRestored,
    ReactionAdded,
    ReactionRemoved,
    TopicCreated,
    TopicUpdated,
    write_event,
)
from shared.sessions import Session
from shared.web import ApiError, check_csrf, invalid, require_viewer, runtime, viewer

api = ApiRouter(tag="posts")

BODY_MAX = 50_000
CONTENT_NOTE_MAX = 100
POSTS_PER_PAGE = 20
MAX_ID = 2**62  # larger numbers cannot be ids (bigint); refused as input rather than overflowing
# Supportive reactions only: there is deliberately no negative one.
REACTION_KINDS = ("like", "heart", "hug", "lightbulb", "clap")
REACTION_LABELS = {
    "like": "Like",
    "heart": "Thank you",
    "hug": "Sending strength",
    "lightbulb": "Insightful",
    "clap": "Well said",
}
REACTION_EMOJI = {
    "like": "\U0001f44d",
    "heart": "\u2764\ufe0f",
    "hug": "\U0001f917",
    "lightbulb": "\U0001f4a1",
    "clap": "\U0001f44f",
}
# The same as HTML character references, for pages: a page whose text is all ASCII is a quarter of the
# memory of one holding a single emoji (Python stores a string at the width of its widest character),
# and every join, copy and encode of a 70 KB topic page costs accordingly.
REACTION_EMOJI_HTML = {
    kind: Markup("".join(f"&#x{ord(ch):x};" for ch in emoji))  # noqa: S704 - digits only
    for kind, emoji in REACTION_EMOJI.items()
}

BODY_FIELD = Field(
    "string",
    required=True,
    min_length=1,
    max_length=BODY_MAX,
    strip=False,
    description="Markdown, 1 to 50,000 characters",
)
CONTENT_NOTE_FIELD = Field(
    "string",
    max_length=CONTENT_NOTE_MAX,
    nullable=True,
    description='shown before the post, which starts collapsed; e.g. "self-harm"',
)

ANONYMOUS_NAME = "Anonymous member"
ANONYMOUS_USERNAME = "anonymous"  # reserved: no account can have it
ANONYMOUS_AUTHOR = {"id": None, "username": ANONYMOUS_USERNAME, "display_name": ANONYMOUS_NAME}
EDIT_REASON_MAX = 200
UNPUBLISHED = ("pending", "rejected")  # never published: no events were sent about them

POST_PATCH = Schema(
    "PostPatch",
    {
        "body": BODY_FIELD,
        "edit_reason": Field("string", max_length=EDIT_REASON_MAX, nullable=True),
        "content_note": CONTENT_NOTE_FIELD,
    },
)
REACTION_IN = Schema("ReactionIn", {"kind": Field("string", required=True, enum=REACTION_KINDS)})


# --- input cleaning ------------------------------------------------------------------------


def clean_body(body: str) -> str:
    """A post body as stored: newlines normalised, blank lines around it dropped; 422 when empty."""
    text = body.replace("\r\n", "\n").replace("\r", "\n").rstrip().lstrip("\n")
    if not text.strip():
        raise invalid("body", "is required")
    return text


def clean_note(note: str | None) -> str | None:
    """A content note as stored: one line of plain text, or None."""
    if note is None:
        return None
    return " ".join(note.split()) or None


# --- topics as posts see them ----------------------------------------------------------------


@dataclass(frozen=True)
class TopicContext:
    """What writing in a topic needs to know about it and its category."""

    id: int
    title: str
    slug: str
    category_id: int
    group_ids: list[int]
    author_id: int
    closed: bool
    deleted: bool
    status: str = "visible"  # pending, rejected or hidden while its first post is
    anonymous: bool = False
    allow_anonymous: bool = False  # its category allows pseudonymous posts

    @property
    def audience(self) -> list[str]:
        return access.groups_audience(self.group_ids)


TOPIC_CONTEXT_SQL = """
SELECT t.id, t.title, t.slug, t.category_id, c.group_ids, t.author_id, t.closed, t.deleted_at IS NOT NULL AS deleted,
       t.status, t.anonymous, c.allow_anonymous
FROM forum.topics t JOIN forum.categories c ON c.id = t.category_id
WHERE t.id = $1
"""


def _topic_context(row: asyncpg.Record) -> TopicContext:
    return TopicContext(
        row["id"],
        row["title"],
        row["slug"],
        row["category_id"],
        list(row["group_ids"]),
        row["author_id"],
        row["closed"],
        row["deleted"],
        row["status"],
        row["anonymous"],
        row["allow_anonymous"],
    )


def topic_shown(who: Session | None, status: str, author_id: int) -> bool:
    """A topic that is not visible (its first post waits, was rejected or hidden) is for its author and staff."""
    return status == "visible" or (who is not None and (who.is_staff or who.user_id == author_id))


async def readable_topic(conn: asyncpg.Connection, who: Session | None, topic_id: int) -> TopicContext:
    """The topic if it exists and the viewer may read it; 404 otherwise."""
    row = await conn.fetchrow(TOPIC_CONTEXT_SQL, topic_id)
    if (
        row is None
        or row["deleted"]
        or not access.groups_readable(who, row["group_ids"])
        or not topic_shown(who, row["status"], row["author_id"])
    ):
        raise ApiError(404, "not_found", "We could not find that topic. It may have been removed.")
    return _topic_context(row)


# --- reading posts ----------------------------------------------------------------------------

_POST_COLUMNS = """
    p.id, p.topic_id, p.post_number, p.author_id, u.username, u.display_name, p.raw, p.cooked,
    p.reply_to_post_id, rp.post_number AS reply_to_post_number, ru.username AS reply_to_username,
    rp.anonymous AS reply_to_anonymous, rp.author_id AS reply_to_author_id,
    p.content_note, p.status, p.reactions, p.revision, p.created_at, p.updated_at, p.anonymous, p.moderation_reason,
    p.plain
"""
_POST_FROM = """
FROM forum.posts p
JOIN forum.users u ON u.id = p.author_id
LEFT JOIN forum.posts rp ON rp.id = p.reply_to_post_id
LEFT JOIN forum.users ru ON ru.id = rp.author_id
"""
# Posts never published (waiting for review, or rejected) are shown only to their author and staff
# ($2 user id, $3 staff).
_SHOWN_SQL = "(p.status NOT IN ('pending', 'rejected') OR $3::boolean OR p.author_id = $2::bigint)"

POST_SQL = f"SELECT {_POST_COLUMNS} {_POST_FROM} WHERE p.id = $1"
# The viewer's part in each post of a topic page ($2 the viewer, NULL for a visitor): the kinds of
# reaction they gave, whether they flagged it, whether they appealed about it (their own post).
# Most members have never flagged or appealed: checked once for the statement (an uncorrelated
# subquery runs once), their posts skip those two lookups.
VIEWER_POST_COLUMNS = """,
    ARRAY(SELECT x.kind FROM forum.reactions x WHERE x.post_id = p.id AND x.user_id = $2::bigint ORDER BY x.kind)
        AS given,
    CASE WHEN (SELECT EXISTS (SELECT 1 FROM forum.flags WHERE user_id = $2::bigint))
         THEN EXISTS (SELECT 1 FROM forum.flags f WHERE f.post_id = p.id AND f.user_id = $2::bigint)
         ELSE false END AS flagged,
    CASE WHEN (SELECT EXISTS (SELECT 1 FROM forum.reviewables WHERE author_id = $2::bigint AND kind = 'appeal'))
         THEN EXISTS (SELECT 1 FROM forum.reviewables v
                      WHERE v.kind = 'appeal' AND v.post_id = p.id AND v.author_id = $2::bigint)
         ELSE false END AS appealed
"""

# One page of a topic's posts. The offset is written into the text, not passed as a parameter: with
# OFFSET $n PostgreSQL's generic plan looks dearer than a custom one, so it planned the statement
# afresh on every execution (half its time). Each page number is then its own prepared statement.
_TOPIC_POSTS_SQL = f"""
SELECT {_POST_COLUMNS} {VIEWER_POST_COLUMNS} {_POST_FROM}
WHERE p.topic_id = $1 AND {_SHOWN_SQL}
ORDER BY p.post_number
LIMIT $4 OFFSET """


def topic_posts_sql(offset: int) -> str:
    return _TOPIC_POSTS_SQL + str(int(offset))


COUNT_TOPIC_POSTS_SQL = f"SELECT count(*) FROM forum.posts p WHERE p.topic_id = $1 AND {_SHOWN_SQL}"
POSITION_SQL = f"SELECT count(*) FROM forum.posts p WHERE p.topic_id = $1 AND p.post_number <= $4 AND {_SHOWN_SQL}"


def _shown_params(who: Session | None) -> tuple[int | None, bool]:
    return (who.user_id if who else None), bool(who and who.is_staff)


async def fetch_post(conn: asyncpg.Connection, post_id: int) -> asyncpg.Record | None:
    """One post with its author, readable or not."""
    return await conn.fetchrow(POST_SQL, post_id)


async def readable_post(
    conn: asyncpg.Connection, who: Session | None, post_id: int
) -> tuple[asyncpg.Record, TopicContext]:
    """The post and its topic if the viewer may read them; 404 otherwise."""
    post = await fetch_post(conn, post_id)
    if post is None:
        raise ApiError(404, "not_found", "We could not find that post.")
    topic = await readable_topic(conn, who, post["topic_id"])
    uid, staff = _shown_params(who)
    if post["status"] in UNPUBLISHED and not staff and post["author_id"] != uid:
        raise ApiError(404, "not_found", "We could not find that post.")
    return post, topic


async def topic_posts(
    conn: asyncpg.Connection, who: Session | None, topic_id: int, page: int
) -> tuple[list[asyncpg.Record], bool]:
    """One page of a topic's posts (by post number) and whether another page follows."""
    uid, staff = _shown_params(who)
    rows = await conn.fetch(topic_posts_sql((page - 1) * POSTS_PER_PAGE), topic_id, uid, staff, POSTS_PER_PAGE + 1)
    return list(rows[:POSTS_PER_PAGE]), len(rows) > POSTS_PER_PAGE


async def count_topic_posts(conn: asyncpg.Connection, who: Session | None, topic_id: int) -> int:
    """How many of a topic's posts the viewer sees (deleted ones stay as placeholders)."""
    uid, staff = _shown_params(who)
    count: int = await conn.fetchval(COUNT_TOPIC_POSTS_SQL, topic_id, uid, staff)
    return count


async def page_of_post(conn: asyncpg.Connection, who: Session | None, post: asyncpg.Record) -> int:
    """The page of its topic on which the viewer finds a post."""
    uid, staff = _shown_params(who)
    position: int = await conn.fetchval(POSITION_SQL, post["topic_id"], uid, staff, post["post_number"])
    return max(1, (position - 1) // POSTS_PER_PAGE + 1)


async def my_reactions(conn: asyncpg.Connection, who: Session | None, post_ids: Sequence[int]) -> dict[int, set[str]]:
    """The kinds of reaction the viewer gave to each of these posts."""
    if who is None or not post_ids:
        return {}
    rows = await conn.fetch(
        "SELECT post_id, kind FROM forum.reactions WHERE user_id = $1 AND post_id = ANY($2::bigint[])",
        who.user_id,
        list(post_ids),
    )
    given: dict[int, set[str]] = {}
    for row in rows:
        given.setdefault(row["post_id"], set()).add(row["kind"])
    return given


def own_or_staff(row: asyncpg.Record, who: Session | None) -> bool:
    """The viewer wrote the post, or is staff."""
    return who is not None and (who.is_staff or who.user_id == row["author_id"])


def text_hidden(row: asyncpg.Record, who: Session | None) -> bool:
    """Whether a post's text is withheld from this viewer (deleted, or hidden by a moderator)."""
    if row["status"] == "deleted":
        return True
    if row["status"] in ("hidden", *UNPUBLISHED):
        return not own_or_staff(row, who)
    return False


def author_json(row: asyncpg.Record) -> dict[str, Any]:
    """Who wrote a post, as everyone sees it: "Anonymous member" for a pseudonymous post.

    Staff too see the pseudonym; they reveal the author with an explicit, audited action.
    """
    if row["anonymous"]:
        return dict(ANONYMOUS_AUTHOR)
    return {"id": row["author_id"], "username": row["username"], "display_name": row["display_name"]}


def moderation_note(row: asyncpg.Record, who: Session | None) -> str | None:
    """Why a post waits, was hidden or was rejected: for its author and staff only."""
    if row["status"] in ("hidden", *UNPUBLISHED) and own_or_staff(row, who):
        return row["moderation_reason"]
    return None


def can_edit(row: asyncpg.Record, who: Session | None) -> bool:
    """The author and staff may edit a post that is not deleted."""
    return who is not None and row["status"] != "deleted" and (who.is_staff or who.user_id == row["author_id"])


def post_json(row: asyncpg.Record, who: Session | None, given: Iterable[str] = ()) -> dict[str, Any]:
    """The public shape of a post, as the viewer may see it."""
    hidden = text_hidden(row, who)
    out: dict[str, Any] = {
        "id": row["id"],
        "topic_id": row["topic_id"],
        "post_number": row["post_number"],
        "author": author_json(row),
        "anonymous": row["anonymous"],
        "raw": "" if hidden else row["raw"],
        "cooked": "" if hidden else row["cooked"],
        "reply_to": row["reply_to_post_id"],
        "content_note": None if hidden else row["content_note"],
        "status": row["status"],
        "reactions": dict(row["reactions"]) if row["status"] != "deleted" else {},
        "revision": row["revision"],
        "can_edit": can_edit(row, who),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
    note = moderation_note(row, who)
    if note is not None:
        out["moderation_reason"] = note
    if who is not None:
        out["my_reactions"] = sorted(given)
    return out


# --- writing posts ------------------------------------------------------------------------------

AUTHOR_SQL = """
SELECT id, username, display_name, email_verified_at IS NOT NULL AS verified, created_at,
       coalesce(silenced_until > now(), false) AS silenced, silenced_until, silenced_reason
FROM forum.users WHERE id = $1
"""


def silenced_message(until: Any, reason: str | None) -> str:
    """What a silenced member is told: until when, and the moderators' reason."""
    message = "Your account cannot post at the moment"
    if until is not None:
        message += f", until {until.day} {until:%B %Y, %H:%M} UTC"
    message += ". You can still read everything."
    if reason:
        message += f" The moderators gave this reason: {reason}"
    return message


async def check_can_post(conn: asyncpg.Connection, who: Session) -> asyncpg.Record:
    """The author's row, if they may write: a confirmed email and not silenced."""
    author = await conn.fetchrow(AUTHOR_SQL, who.user_id)
    refusal = posting_refusal(
        exists=author is not None,
        verified=author is not None and author["verified"],
        silenced=author is not None and author["silenced"],
        silenced_until=author["silenced_until"] if author else None,
        silenced_reason=author["silenced_reason"] if author else None,
    )
    if refusal is not None:
        raise refusal
    assert author is not None
    return author


def posting_refusal(
    *, exists: bool, verified: bool, silenced: bool, silenced_until: Any, silenced_reason: str | None
) -> ApiError | None:
    """Why a member may not write now (None when they may): gone, email not confirmed, or silenced."""
    if not exists:
        return ApiError(401, "unauthorized", "Please log in again.")
    if not verified:
        return ApiError(
            403,
            "email_not_verified",
            "Please confirm your email address before posting: the link is in the email we sent when "
            "you joined. You can ask for a new one from your account page.",
        )
    if silenced:
        return ApiError(403, "silenced", silenced_message(silenced_until, silenced_reason))
    return None


async def render_body(conn: asyncpg.Connection, raw: str) -> markdown.Rendered:
    """Render a post, linking (and reporting) only mentions of people who exist."""
    candidates: list[str] = []

    def collect(names: Iterable[str]) -> set[str]:
        candidates.extend(names)
        return set()

    first = markdown.render(raw, known_users=collect)
    if not candidates:
        return first
    rows = await conn.fetch(
        "SELECT lower(username) FROM forum.users WHERE lower(username) = ANY($1::text[])", candidates
    )
    known = {row[0] for row in rows}
    if not known:
        return first
    return markdown.render(raw, known_users=lambda names: known)


async def _user_ids(conn: asyncpg.Connection, usernames: Sequence[str], *, besides: int) -> list[int]:
    if not usernames:
        return []
    rows = await conn.fetch(
        "SELECT id, lower(username) AS name FROM forum.users WHERE lower(username) = ANY($1)", list(usernames)
    )
    by_name = {row["name"]: row["id"] for row in rows}
    return [by_name[name] for name in usernames if name in by_name and by_name[name] != besides]


async def _quoted_authors(conn: asyncpg.Connection, post_ids: Sequence[int], *, besides: int) -> list[int]:
    if not post_ids:
        return []
    rows = await conn.fetch(
        "SELECT DISTINCT author_id FROM forum.posts WHERE id = ANY($1::bigint[]) AND status <> 'deleted'",
        list(post_ids),
    )
    return sorted(row["author_id"] for row in rows if row["author_id"] != besides)


async def check_reply_to(conn: asyncpg.Connection, topic: TopicContext, reply_to: int | None) -> asyncpg.Record | None:
    """The post replied to, which must be a live post of the same topic (422 otherwise)."""
    if reply_to is None:
        return None
    row = await conn.fetchrow(
        "SELECT id, topic_id, author_id, post_number, status FROM forum.posts WHERE id = $1", reply_to
    )
    if row is None or row["topic_id"] != topic.id or row["status"] in ("deleted", *UNPUBLISHED):
        raise invalid("reply_to", "must be a post in this topic")
    return row


ALLOCATE_POST_NUMBER_SQL = """
UPDATE forum.topics
SET highest_post_number = highest_post_number + 1, posts_count = posts_count + 1,
    last_posted_at = now(), updated_at = now()
WHERE id = $1
RETURNING highest_post_number
"""
# A post waiting for review takes its number now, and counts (and bumps the topic) when published.
ALLOCATE_PENDING_NUMBER_SQL = """
UPDATE forum.topics SET highest_post_number = highest_post_number + 1 WHERE id = $1 RETURNING highest_post_number
"""
INSERT_POST_SQL = """
INSERT INTO forum.posts (topic_id, post_number, author_id, raw, cooked, plain, reply_to_post_id, content_note,
                         status, anonymous)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id
"""

# Writing a post in one round trip: take the next number (the UPDATE locks the topic row until
# commit, so the statement comes as late as possible and little follows it), insert the post,
# move the author's read state ($10, when given) and return the post as fetch_post would.
_WRITE_POST_SQL = """
WITH number AS ({allocate}),
written AS (
    INSERT INTO forum.posts (topic_id, post_number, author_id, raw, cooked, plain, reply_to_post_id, content_note,
                             status, anonymous)
    SELECT $1, number.highest_post_number, $2, $3, $4, $5, $6, $7, $8, $9 FROM number
    RETURNING *
),
read AS (
    INSERT INTO forum.topic_reads (user_id, topic_id, last_read_post_number)
    SELECT $10::bigint, $1, written.post_number FROM written WHERE $10::bigint IS NOT NULL
    ON CONFLICT (user_id, topic_id) DO UPDATE
    SET last_read_post_number = EXCLUDED.last_read_post_number, updated_at = now()
    WHERE forum.topic_reads.last_read_post_number < EXCLUDED.last_read_post_number
)
SELECT {columns}
FROM written p
JOIN forum.users u ON u.id = p.author_id
LEFT JOIN forum.posts rp ON rp.id = p.reply_to_post_id
LEFT JOIN forum.users ru ON ru.id = rp.author_id
"""
WRITE_POST_SQL = _WRITE_POST_SQL.format(
    allocate=ALLOCATE_POST_NUMBER_SQL.strip().replace("$1", "$1::bigint"), columns=_POST_COLUMNS
)
WRITE_PENDING_POST_SQL = _WRITE_POST_SQL.format(
    allocate=ALLOCATE_PENDING_NUMBER_SQL.strip().replace("$1", "$1::bigint"), columns=_POST_COLUMNS
)


def censored(rendered: markdown.Rendered, matcher: safety.Matcher | None) -> markdown.Rendered:
    """The rendered post with censored watched words blotted out (the raw text keeps them)."""
    if matcher is None or not matcher.phrases:
        return rendered
    return dataclasses.replace(
        rendered, cooked=safety.censor_html(rendered.cooked, matcher), text=matcher.censor(rendered.text)
    )


async def create_post(
    conn: asyncpg.Connection,
    *,
    topic: TopicContext,
    author: asyncpg.Record,
    raw: str,
    content_note: str | None,
    reply_to: asyncpg.Record | None = None,
    status: str = "visible",
    anonymous: bool = False,
    censor: safety.Matcher | None = None,
    rendered: markdown.Rendered | None = None,
    read_by: int | None = None,
) -> asyncpg.Record:
    """Write a checked post and bump its topic; returns the post row.

    A visible post records PostCreated now; a pending one (waiting for review) when published.
    With `read_by` (a user id), that member's read state moves to the new post in the same statement.
    """
    assert status in ("visible", "pending")
    rendered = censored(rendered or await render_body(conn, raw), censor)
    # The UPDATE in it locks the topic row, so concurrent replies get consecutive numbers.
    post = await conn.fetchrow(
        WRITE_POST_SQL if status == "visible" else WRITE_PENDING_POST_SQL,
        topic.id,
        author["id"],
        raw,
        rendered.cooked,
        rendered.text,
        reply_to["id"] if reply_to else None,
        content_note,
        status,
        anonymous,
        read_by,
    )
    assert post is not None
    if status == "visible":
        await _post_created(conn, post, topic, rendered)
    return post


async def _post_created(
    conn: asyncpg.Connection, post: asyncpg.Record, topic: TopicContext, rendered: markdown.Rendered
) -> None:
    """Record PostCreated for a post being published (at once, or when a moderator approves it)."""
    author_id = post["author_id"]
    reply_to_user = post["reply_to_author_id"] if post["reply_to_post_id"] else None
    event = PostCreated(
        post_id=post["id"],
        topic_id=topic.id,
        post_number=post["post_number"],
        category_id=topic.category_id,
        topic_title=topic.title,
        author_id=author_id,
        author_username=ANONYMOUS_USERNAME if post["anonymous"] else post["username"],
        text=rendered.text,
        content_note=post["content_note"],
        audience=topic.audience,
        reply_to_post_id=post["reply_to_post_id"],
        reply_to_user_id=reply_to_user,
        mentioned_user_ids=await _user_ids(conn, rendered.mentions, besides=author_id),
        quoted_user_ids=await _quoted_authors(conn, rendered.quotes, besides=author_id),
        created_at=post["created_at"].isoformat(),
        anonymous=post["anonymous"],
    )
    # A pseudonymous post's envelope names no actor: the stream must not tie it to its author.
    await write_event(conn, event, actor_id=None if post["anonymous"] else author_id)


# --- topics as events tell them ------------------------------------------------------------------

TOPIC_EVENT_SQL = """
SELECT t.id, t.category_id, t.title, t.slug, t.kind, t.author_id, u.username, c.group_ids, t.pinned, t.closed,
       t.content_note, t.anonymous, t.status, t.created_at, t.deleted_at IS NOT NULL AS deleted
FROM forum.topics t JOIN forum.categories c ON c.id = t.category_id JOIN forum.users u ON u.id = t.author_id
WHERE t.id = $1
"""


async def write_topic_updated(conn: asyncpg.Connection, topic_id: int, *, actor_id: int | None) -> None:
    """Record TopicUpdated with the topic as it now is; nothing for a topic never published."""
    row = await conn.fetchrow(TOPIC_EVENT_SQL, topic_id)
    if row["status"] in UNPUBLISHED:
        return
    if row["anonymous"] and actor_id == row["author_id"]:
        actor_id = None  # the stream must not tie a pseudonymous topic to its author
    await write_event(
        conn,
        TopicUpdated(
            topic_id=row["id"],
            category_id=row["category_id"],
            title=row["title"],
            slug=row["slug"],
            kind=row["kind"],
            author_id=row["author_id"],
            audience=access.groups_audience(row["group_ids"]),
            content_note=row["content_note"],
            pinned=row["pinned"],
            closed=row["closed"],
            anonymous=row["anonymous"],
            status="deleted" if row["deleted"] else row["status"],
        ),
        actor_id=actor_id,
    )


async def write_topic_created(conn: asyncpg.Connection, topic_id: int) -> None:
    """Record TopicCreated for a topic being published (at once, or when its first post is approved)."""
    row = await conn.fetchrow(TOPIC_EVENT_SQL, topic_id)
    await write_event(
        conn,
        TopicCreated(
            topic_id=row["id"],
            category_id=row["category_id"],
            title=row["title"],
            slug=row["slug"],
            kind=row["kind"],
            author_id=row["author_id"],
            author_username=ANONYMOUS_USERNAME if row["anonymous"] else row["username"],
            audience=access.groups_audience(row["group_ids"]),
            content_note=row["content_note"],
            created_at=row["created_at"].isoformat(),
            anonymous=row["anonymous"],
        ),
        actor_id=None if row["anonymous"] else row["author_id"],
    )


# --- moderation moves ------------------------------------------------------------------------------
# Each checks the post's status itself, so a move that no longer fits (another moderator acted
# first) fails with 409 rather than doing something twice. Callers lock the post row first.

SET_STATUS_SQL = """
UPDATE forum.posts SET status = $2, moderation_reason = $3, updated_at = now() WHERE id = $1
"""
LOCK_POST_SQL = "SELECT id, status FROM forum.posts WHERE id = $1 FOR UPDATE"


async def lock_post(conn: asyncpg.Connection, post_id: int) -> asyncpg.Record:
    """The post, locked for the rest of the transaction (moderation moves lock it first, then its reviewable)."""
    await conn.execute(LOCK_POST_SQL, post_id)
    post = await fetch_post(conn, post_id)
    if post is None:
        raise ApiError(404, "not_found", "We could not find that post.")
    return post


def _conflict(post: asyncpg.Record, wanted: str) -> ApiError:
    return ApiError(
        409, "conflict", f"This post is {post['status']} now, so it cannot be {wanted}. Reload to see what changed."
    )


async def _set_topic_status(conn: asyncpg.Connection, post: asyncpg.Record, status: str, actor_id: int | None) -> None:
    """A topic follows its first post: pending, rejected, hidden, or visible again."""
    if post["post_number"] != 1:
        return
    await conn.execute(
        "UPDATE forum.topics SET status = $2, updated_at = now() WHERE id = $1", post["topic_id"], status
    )
    if status in ("hidden", "visible"):
        await write_topic_updated(conn, post["topic_id"], actor_id=actor_id)


async def publish_post(
    conn: asyncpg.Connection, post: asyncpg.Record, topic: TopicContext, *, actor_id: int
) -> asyncpg.Record:
    """Publish a post that waited for review (or was rejected, then appealed): its events are sent now."""
    if post["status"] not in UNPUBLISHED:
        raise _conflict(post, "published")
    await conn.execute(SET_STATUS_SQL, post["id"], "visible", None)
    await conn.execute(
        "UPDATE forum.topics SET posts_count = posts_count + 1, last_posted_at = now(), updated_at = now(), "
        "status = CASE WHEN $2 THEN 'visible' ELSE status END WHERE id = $1",
        topic.id,
        post["post_number"] == 1,
    )
    if post["post_number"] == 1:
        await write_topic_created(conn, topic.id)
    published = await fetch_post(conn, post["id"])
    assert published is not None
    mentions = await render_body(conn, published["raw"])
    rendered = markdown.Rendered(published["cooked"], published["plain"], mentions.mentions, mentions.quotes)
    await _post_created(conn, published, topic, rendered)
    return published


async def hide_post(
    conn: asyncpg.Connection, post: asyncpg.Record, topic: TopicContext, *, reason: str, actor_id: int | None
) -> None:
    """Hide a visible post: others see a placeholder, its author sees why (PostHidden tells them too)."""
    if post["status"] != "visible":
        raise _conflict(post, "hidden")
    await conn.execute(SET_STATUS_SQL, post["id"], "hidden", reason)
    await conn.execute("UPDATE forum.topics SET posts_count = posts_count - 1 WHERE id = $1", topic.id)
    await _set_topic_status(conn, post, "hidden", actor_id)
    await write_event(
        conn,
        PostHidden(
            post_id=post["id"],
            topic_id=topic.id,
            category_id=topic.category_id,
            author_id=post["author_id"],
            reason=reason,
        ),
        actor_id=actor_id,
    )


async def restore_post(conn: asyncpg.Connection, post: asyncpg.Record, topic: TopicContext, *, actor_id: int) -> None:
    """Show a hidden post again (PostRestored)."""
    if post["status"] != "hidden":
        raise _conflict(post, "restored")
    await conn.execute(SET_STATUS_SQL, post["id"], "visible", None)
    await conn.execute("UPDATE forum.topics SET posts_count = posts_count + 1 WHERE id = $1", topic.id)
    await _set_topic_status(conn, post, "visible", actor_id)
    await write_event(
        conn,
        PostRestored(post_id=post["id"], topic_id=topic.id, category_id=topic.category_id, author_id=post["author_id"]),
        actor_id=actor_id,
    )


async def reject_post(conn: asyncpg.Connection, post: asyncpg.Record, *, reason: str, actor_id: int) -> None:
    """Turn down a post that waited for review: it is never published; its author sees why and may appeal."""
    if post["status"] != "pending":
        raise _conflict(post, "rejected")
    await conn.execute(SET_STATUS_SQL, post["id"], "rejected", reason)
    await _set_topic_status(conn, post, "rejected", actor_id)


async def remove_post(conn: asyncpg.Connection, post: asyncpg.Record, topic: TopicContext, *, actor_id: int) -> None:
    """Delete a post (moderators may delete a first post: its topic goes with it); it leaves the queue."""
    if post["status"] == "deleted":
        raise _conflict(post, "deleted")
    await _remove(conn, post, topic, actor_id=actor_id)
    if post["post_number"] == 1:
        await conn.execute("UPDATE forum.topics SET deleted_at = now(), updated_at = now() WHERE id = $1", topic.id)
        if post["status"] not in UNPUBLISHED:
            await write_topic_updated(conn, topic.id, actor_id=actor_id)


CLOSE_REVIEWS_SQL = """
UPDATE forum.reviewables
SET status = 'deleted', resolution = 'delete', resolved_by = $2, resolved_at = now(), updated_at = now()
WHERE post_id = $1 AND status = 'pending'
"""


async def _remove(conn: asyncpg.Connection, post: asyncpg.Record, topic: TopicContext, *, actor_id: int) -> None:
    reactions_total = sum(int(n) for n in post["reactions"].values())
    await conn.execute(DELETE_POST_SQL, post["id"])
    await conn.execute("DELETE FROM forum.reactions WHERE post_id = $1", post["id"])
    await conn.execute(
        "UPDATE forum.topics SET posts_count = posts_count - $2, reactions_count = greatest(0, reactions_count - $3), "
        "updated_at = now() WHERE id = $1",
        topic.id,
        1 if post["status"] == "visible" else 0,
        reactions_total,
    )
    await conn.execute(CLOSE_REVIEWS_SQL, post["id"], actor_id)
    if post["status"] in UNPUBLISHED:
        return  # never published: nobody was told of it, so nobody is told it went
    await write_event(
        conn,
        PostDeleted(
            post_id=post["id"],
            topic_id=topic.id,
            post_number=post["post_number"],
            category_id=topic.category_id,
            author_id=post["author_id"],
        ),
        actor_id=actor_id,
    )


# --- editing ---------------------------------------------------------------------------------------


async def check_edit(conn: asyncpg.Connection, who: Session, post_id: int) -> tuple[asyncpg.Record, TopicContext]:
    """The post and topic, if the viewer may edit it: its author (who may still post) or staff."""
    post, topic = await readable_post(conn, who, post_id)
    if post["status"] == "deleted":
        raise ApiError(404, "not_found", "That post was deleted.")
    if not can_edit(post, who):
        raise ApiError(403, "forbidden", "You can only edit your own posts.")
    if not who.is_staff:
        await check_can_post(conn, who)
    return post, topic


INSERT_REVISION_SQL = """
INSERT INTO forum.post_revisions (post_id, revision, raw, content_note, editor_id, reason)
VALUES ($1, $2, $3, $4, $5, $6)
"""
UPDATE_POST_SQL = """
UPDATE forum.posts SET raw = $2, cooked = $3, plain = $4, content_note = $5, revision = revision + 1, updated_at = now()
WHERE id = $1
RETURNING revision
"""


async def edit_post(conn: asyncpg.Connection, who: Session, post_id: int, data: dict[str, Any]) -> asyncpg.Record:
    """Check and apply an edit (POST_PATCH data), keeping the previous version; returns the post row.

    A revision row keeps a version's text together with who replaced it, when and why;
    an edit that changes nothing makes no revision. An author's edit is screened like a new
    post; editing a hidden or rejected post asks moderators for another look. Staff editing
    someone else's post give a reason (the author sees it with the revisions) and are audited.
    """
    post, topic = await check_edit(conn, who, post_id)
    post = await lock_post(conn, post_id)
    raw = clean_body(data["body"])
    note = clean_note(data["content_note"]) if "content_note" in data else post["content_note"]
    if raw == post["raw"] and note == post["content_note"]:
        return post
    reason = clean_note(data.get("edit_reason"))
    by_author = who.user_id == post["author_id"]
    if not by_author and not reason:
        raise invalid("edit_reason", "is needed when you edit someone else\u2019s post: its author will see it")
    rendered = await render_body(conn, raw)
    review = await safety.review_edit(conn, old_text=post["plain"], new_text=rendered.text) if by_author else None
    rendered = censored(rendered, review.censored if review else None)
    await conn.execute(
        INSERT_REVISION_SQL, post_id, post["revision"], post["raw"], post["content_note"], who.user_id, reason
    )
    revision = await conn.fetchval(UPDATE_POST_SQL, post_id, raw, rendered.cooked, rendered.text, note)
    if post["status"] not in UNPUBLISHED:
        await _post_edited(conn, post, topic, rendered, note, revision, editor_id=who.user_id)
    if post["post_number"] == 1 and note != post["content_note"]:
        await _sync_topic_note(conn, who, topic.id, note)
    if not by_author:
        await audit.record(
            conn,
            actor_id=who.user_id,
            action="post.edit",
            target_type="post",
            target_id=post_id,
            reason=reason,
            before={"raw": post["raw"], "content_note": post["content_note"], "revision": post["revision"]},
            after={"raw": raw, "content_note": note, "revision": revision},
        )
    updated = await fetch_post(conn, post_id)
    assert updated is not None
    if review is not None:
        await safety.open_reviews_for_new_post(conn, updated, review, category_id=topic.category_id)
        if updated["status"] in ("hidden", "rejected"):
            await _ask_again(conn, updated)
            updated = await fetch_post(conn, post_id)
            assert updated is not None
    return updated


async def _post_edited(
    conn: asyncpg.Connection,
    post: asyncpg.Record,
    topic: TopicContext,
    rendered: markdown.Rendered,
    note: str | None,
    revision: int,
    *,
    editor_id: int,
) -> None:
    hide_actor = post["anonymous"] and editor_id == post["author_id"]
    await write_event(
        conn,
        PostEdited(
            post_id=post["id"],
            topic_id=topic.id,
            post_number=post["post_number"],
            category_id=topic.category_id,
            author_id=post["author_id"],
            author_username=ANONYMOUS_USERNAME if post["anonymous"] else post["username"],
            text=rendered.text,
            content_note=note,
            audience=topic.audience,
            revision=revision,
            anonymous=post["anonymous"],
        ),
        actor_id=None if hide_actor else editor_id,
    )


ASKED_AGAIN = "The author edited the post and asks for another review"


async def _ask_again(conn: asyncpg.Connection, post: asyncpg.Record) -> None:
    """An author who edits a hidden or rejected post asks moderators to look again."""
    if post["status"] == "hidden":
        await safety.open_review(
            conn, kind="flagged_post", post=post, reasons=[ASKED_AGAIN], priority=safety.PRIORITY_HIDDEN
        )
    elif post["status"] == "rejected":
        await conn.execute(SET_STATUS_SQL, post["id"], "pending", None)
        if post["post_number"] == 1:
            await conn.execute("UPDATE forum.topics SET status = 'pending' WHERE id = $1", post["topic_id"])
        await safety.open_review(conn, kind="queued_post", post=post, reasons=[ASKED_AGAIN])


async def _sync_topic_note(conn: asyncpg.Connection, who: Session, topic_id: int, note: str | None) -> None:
    """A topic's content note follows its first post's, so lists warn as the post does."""
    await conn.execute("UPDATE forum.topics SET content_note = $2, updated_at = now() WHERE id = $1", topic_id, note)
    await write_topic_updated(conn, topic_id, actor_id=who.user_id)


REVISIONS_SQL = """
SELECT r.revision, r.raw, r.content_note, r.reason, r.created_at, r.editor_id, u.username, u.display_name
FROM forum.post_revisions r JOIN forum.users u ON u.id = r.editor_id
WHERE r.post_id = $1
ORDER BY r.revision
"""


async def post_revisions(
    conn: asyncpg.Connection, who: Session | None, post_id: int
) -> tuple[asyncpg.Record, TopicContext, list[dict[str, Any]]]:
    """Every version of a post, oldest first, the current one last; 404 for a deleted post to non-staff.

    Each item says who made that version, when, and the reason they gave.
    """
    post, topic = await readable_post(conn, who, post_id)
    staff = who is not None and who.is_staff
    if not staff and text_hidden(post, who):
        raise ApiError(404, "not_found", "We could not find that post.")
    rows = await conn.fetch(REVISIONS_SQL, post_id)

    def editor(user_id: int, username: str, display_name: str) -> dict[str, Any]:
        if post["anonymous"] and user_id == post["author_id"]:
            return dict(ANONYMOUS_AUTHOR)  # the author's own edits keep the pseudonym
        return {"id": user_id, "username": username, "display_name": display_name}

    # A revision row holds version N's text and who replaced it (making N + 1), when and why.
    made_by: dict[str, Any] = {
        "editor": editor(post["author_id"], post["username"], post["display_name"]),
        "reason": None,
        "created_at": post["created_at"].isoformat(),
    }
    items = []
    for row in rows:
        items.append({"revision": row["revision"], "raw": row["raw"], "content_note": row["content_note"], **made_by})
        made_by = {
            "editor": editor(row["editor_id"], row["username"], row["display_name"]),
            "reason": row["reason"],
            "created_at": row["created_at"].isoformat(),
        }
    items.append({"revision": post["revision"], "raw": post["raw"], "content_note": post["content_note"], **made_by})
    return post, topic, items


# --- deleting --------------------------------------------------------------------------------------

DELETE_POST_SQL = """
UPDATE forum.posts
SET status = 'deleted', raw = '', cooked = '', plain = '', content_note = NULL, reactions = '{}',
    deleted_at = now(), updated_at = now()
WHERE id = $1
"""


async def check_delete(conn: asyncpg.Connection, who: Session, post_id: int) -> tuple[asyncpg.Record, TopicContext]:
    """The post and topic, if the viewer may delete the post (its author or staff; never the first post)."""
    post, topic = await readable_post(conn, who, post_id)
    if post["status"] == "deleted":
        raise ApiError(404, "not_found", "That post was already deleted.")
    if not (who.is_staff or who.user_id == post["author_id"]):
        raise ApiError(403, "forbidden", "You can only delete your own posts.")
    if post["post_number"] == 1:
        raise ApiError(
            409,
            "first_post",
            "This post opens the topic, so it cannot be deleted on its own: delete the topic instead, "
            "or edit the post.",
        )
    return post, topic


async def delete_post(conn: asyncpg.Connection, who: Session, post_id: int) -> None:
    """Check and delete a post: its text and reactions go, a placeholder keeps its number."""
    post, topic = await check_delete(conn, who, post_id)
    await _remove(conn, post, topic, actor_id=who.user_id)
    if who.user_id != post["author_id"]:
        await audit.record(
            conn,
            actor_id=who.user_id,
            action="post.delete",
            target_type="post",
            target_id=post_id,
            before={"status": post["status"]},
            after={"status": "deleted"},
        )


# --- reactions --------------------------------------------------------------------------------------

ADD_REACTION_COUNT_SQL = """
UPDATE forum.posts
SET reactions = jsonb_set(reactions, ARRAY[$2::text], to_jsonb(coalesce((reactions->>$2)::int, 0) + 1))
WHERE id = $1
"""
REMOVE_REACTION_COUNT_SQL = """
UPDATE forum.posts SET reactions = CASE WHEN coalesce((reactions->>$2)::int, 0) > 1
    THEN jsonb_set(reactions, ARRAY[$2::text], to_jsonb((reactions->>$2)::int - 1)) ELSE reactions - $2::text END
WHERE id = $1
"""


async def _reactable(conn: asyncpg.Connection, who: Session, post_id: int) -> tuple[asyncpg.Record, TopicContext]:
    post, topic = await readable_post(conn, who, post_id)
    if post["status"] != "visible":
        raise ApiError(404, "not_found", "That post cannot take reactions: it was deleted or is not shown.")
    return post, topic


async def _reaction_state(conn: asyncpg.Connection, who: Session, post_id: int) -> dict[str, Any]:
    counts = await conn.fetchval("SELECT reactions FROM forum.posts WHERE id = $1", post_id)
    given = await my_reactions(conn, who, [post_id])
    return {"reactions": dict(counts), "my_reactions": sorted(given.get(post_id, set()))}


async def add_reaction(conn: asyncpg.Connection, who: Session, post_id: int, kind: str) -> tuple[bool, dict[str, Any]]:
    """Give a reaction; (False, state) when it was already given, so repeating it changes nothing."""
    if kind not in REACTION_KINDS:
        raise invalid("kind", f"must be one of: {', '.join(REACTION_KINDS)}")
    post, topic = await _reactable(conn, who, post_id)
    added = await conn.fetchval(
        "INSERT INTO forum.reactions (post_id, user_id, kind) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING kind",
        post_id,
        who.user_id,
        kind,
    )
    if added is not None:
        await conn.execute(ADD_REACTION_COUNT_SQL, post_id, kind)
        await conn.execute("UPDATE forum.topics SET reactions_count = reactions_count + 1 WHERE id = $1", topic.id)
        await write_event(
            conn,
            ReactionAdded(
                post_id=post_id,
                topic_id=topic.id,
                post_author_id=post["author_id"],
                user_id=who.user_id,
                kind=kind,
                audience=topic.audience,
            ),
            actor_id=who.user_id,
        )
    return added is not None, await _reaction_state(conn, who, post_id)


async def remove_reaction(conn: asyncpg.Connection, who: Session, post_id: int, kind: str) -> dict[str, Any]:
    """Take back a reaction; 404 when it was not given."""
    if kind not in REACTION_KINDS:
        raise ApiError(404, "not_found", "You have not given that reaction to this post.")
    post, topic = await _reactable(conn, who, post_id)
    removed = await conn.fetchval(
        "DELETE FROM forum.reactions WHERE post_id = $1 AND user_id = $2 AND kind = $3 RETURNING kind",
        post_id,
        who.user_id,
        kind,
    )
    if removed is None:
        raise ApiError(404, "not_found", "You have not given that reaction to this post.")
    await conn.execute(REMOVE_REACTION_COUNT_SQL, post_id, kind)
    await conn.execute(
        "UPDATE forum.topics SET reactions_count = greatest(0, reactions_count - 1) WHERE id = $1", topic.id
    )
    await write_event(
        conn,
        ReactionRemoved(
            post_id=post_id,
            topic_id=topic.id,
            post_author_id=post["author_id"],
            user_id=who.user_id,
            kind=kind,
            audience=topic.audience,
        ),
        actor_id=who.user_id,
    )
    return await _reaction_state(conn, who, post_id)


# --- endpoints ----------------------------------------------------------------------------------


async def _writer(request: Request) -> Session:
    who = await require_viewer(request)
    check_csrf(request, who)
    return who


@api.get("/api/posts/{id}", answers={200: "Post"})
async def get_post_endpoint(request: Request) -> Response:
    """One post."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        post, _ = await readable_post(conn, who, post_id)
        given = await my_reactions(conn, who, [post_id])
    return JSONResponse(post_json(post, who, given.get(post_id, ())))


@api.patch("/api/posts/{id}", body=POST_PATCH, answers={200: "Post (the previous version is kept)"}, auth=True)
async def edit_post_endpoint(request: Request) -> Response:
    """Edit a post (its author or staff); the previous version is kept as a revision."""
    post_id = path_int(request, "id")
    who = await _writer(request)
    data = await read_json(request, POST_PATCH)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        post = await edit_post(conn, who, post_id, data)
        given = await my_reactions(conn, who, [post_id])
    return JSONResponse(post_json(post, who, given.get(post_id, ())))


@api.get("/api/posts/{id}/revisions", answers={200: "Every version of the post, the current one last"})
async def revisions_endpoint(request: Request) -> Response:
    """A post's versions: {revision, raw, content_note, editor, reason, created_at}, oldest first."""
    post_id = path_int(request, "id")
    who = await viewer(request)
    async with runtime(request).pool.acquire() as conn:
        _, _, items = await post_revisions(conn, who, post_id)
    return JSONResponse({"items": items, "next": None})


@api.delete("/api/posts/{id}", answers={204: "Deleted"}, auth=True)
async def delete_post_endpoint(request: Request) -> Response:
    """Delete a post (its author or staff). The first post of a topic answers 409: delete the topic instead."""
    post_id = path_int(request, "id")
    who = await _writer(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await delete_post(conn, who, post_id)
    return Response(status_code=204)


@api.post(
    "/api/posts/{id}/reactions",
    body=REACTION_IN,
    answers={201: "Reaction given", 200: "Already given: nothing changed"},
    auth=True,
)
async def add_reaction_endpoint(request: Request) -> Response:
    """React to a post: like, heart (thank you), hug (sending strength), lightbulb (insightful), clap (well said)."""
    post_id = path_int(request, "id")
    who = await _writer(request)
    data = await read_json(request, REACTION_IN)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        added, state = await add_reaction(conn, who, post_id, data["kind"])
    return JSONResponse(state, status_code=201 if added else 200)


@api.delete("/api/posts/{id}/reactions/{kind}", answers={204: "Reaction taken back"}, auth=True)
async def remove_reaction_endpoint(request: Request) -> Response:
    """Take back your reaction of one kind (404 when you had not given it)."""
    post_id = path_int(request, "id")
    kind = str(request.path_params.get("kind", ""))
    who = await _writer(request)
    async with runtime(request).pool.acquire() as conn, conn.transaction():
        await remove_reaction(conn, who, post_id, kind)
    return Response(status_code=204)
