"""Posts: reading them (who sees which: access.writing_shown), writing them (who may write,
rendering, mentions and quotes, the PostCreated event), and the two ways to write one: starting
a topic with its first post, and replying. Reactions and flags: writings/.

A post's status: visible; pending (waiting for a moderator, seen only by its author and
staff, no events yet); rejected (not published; its author may appeal); hidden (by
moderators or flags; others see a placeholder); deleted (a placeholder keeps its number).
Editing is in revisions.py, deleting and the moderators' moves in moves.py, the JSON
endpoints and shapes in api.py; the pages call the same functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg

from services.forum import access
from services.forum.moderation import screening
from services.forum.outbox import write_event
from services.forum.topics.categories import archived_refusal, check_takes_topics, readable_category, slugify
from services.forum.topics.topics import (
    ANONYMOUS_USERNAME,
    TopicContext,
    check_anonymous,
    clean_note,
    clean_title,
    insert_topic,
    mark_read_past,
    readable_topic,
    topic_row,
    write_topic_created,
)
from services.forum.writings import reactions, reviews
from services.forum.writings.targets import POST
from shared import markdown
from shared.events import PostCreated
from shared.sessions import Session
from shared.settings import Settings
from shared.web import ApiError, invalid

BODY_MAX = 50_000
CONTENT_NOTE_MAX = 100
POSTS_PER_PAGE = 20


# --- input cleaning ------------------------------------------------------------------------


def clean_body(body: str) -> str:
    """A post body as stored: newlines normalised, blank lines around it dropped; 422 when empty."""
    text = body.replace("\r\n", "\n").replace("\r", "\n").rstrip().lstrip("\n")
    if not text.strip():
        raise invalid("body", "is required")
    return text


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
# Posts never published are shown only to their author and staff ($2 user id, $3 staff).
_SHOWN_SQL = access.POST_SHOWN_SQL.format(staff="$3", user="$2")

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
    """The statement for the page of posts starting at this offset."""
    return _TOPIC_POSTS_SQL + str(int(offset))


COUNT_TOPIC_POSTS_SQL = f"SELECT count(*) FROM forum.posts p WHERE p.topic_id = $1 AND {_SHOWN_SQL}"
POSITION_SQL = f"SELECT count(*) FROM forum.posts p WHERE p.topic_id = $1 AND p.post_number <= $4 AND {_SHOWN_SQL}"


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
    if not access.writing_shown(who, post["status"], post["author_id"]):
        raise ApiError(404, "not_found", "We could not find that post.")
    return post, topic


async def topic_posts(
    conn: asyncpg.Connection, who: Session | None, topic_id: int, page: int
) -> tuple[list[asyncpg.Record], bool]:
    """One page of a topic's posts (by post number) and whether another page follows."""
    uid, staff = access.shown_params(who)
    rows = await conn.fetch(topic_posts_sql((page - 1) * POSTS_PER_PAGE), topic_id, uid, staff, POSTS_PER_PAGE + 1)
    return list(rows[:POSTS_PER_PAGE]), len(rows) > POSTS_PER_PAGE


async def count_topic_posts(conn: asyncpg.Connection, who: Session | None, topic_id: int) -> int:
    """How many of a topic's posts the viewer sees (deleted ones stay as placeholders)."""
    uid, staff = access.shown_params(who)
    count: int = await conn.fetchval(COUNT_TOPIC_POSTS_SQL, topic_id, uid, staff)
    return count


async def page_of_post(conn: asyncpg.Connection, who: Session | None, post: asyncpg.Record) -> int:
    """The page of its topic on which the viewer finds a post."""
    uid, staff = access.shown_params(who)
    position: int = await conn.fetchval(POSITION_SQL, post["topic_id"], uid, staff, post["post_number"])
    return max(1, (position - 1) // POSTS_PER_PAGE + 1)


async def my_reactions(conn: asyncpg.Connection, who: Session | None, post_ids: Sequence[int]) -> dict[int, set[str]]:
    """The kinds of reaction the viewer gave to each of these posts."""
    return await reactions.my_reactions(conn, who, POST, post_ids)


def shows_moderation_reason(who: Session | None, status: str, author_id: int) -> bool:
    """Why a post waits, was hidden or was rejected is for its author and staff only."""
    return status in ("hidden", *access.UNPUBLISHED) and access.own_or_staff(who, author_id)


def moderation_note(row: asyncpg.Record, who: Session | None) -> str | None:
    """Why a post waits, was hidden or was rejected, for those who may read it."""
    if shows_moderation_reason(who, row["status"], row["author_id"]):
        return row["moderation_reason"]
    return None


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


# What a text may cost to render when no settings come with it (demo data, moderators publishing a
# post that was rendered once already): the setting's default.
DEFAULT_RENDER_BUDGET_MS = Settings.render_budget_ms


async def render_body(
    conn: asyncpg.Connection, raw: str, rules: screening.PostingRules | None = None
) -> markdown.Rendered:
    """Render a post or comment in a worker process (never on the event loop), linking (and reporting)
    only mentions of people who exist; 422 when it takes longer than the render budget."""

    async def known(names: list[str]) -> set[str]:
        rows = await conn.fetch(
            "SELECT lower(username) FROM forum.users WHERE lower(username) = ANY($1::text[])", names
        )
        return {row[0] for row in rows}

    budget_ms = rules.settings.render_budget_ms if rules is not None else DEFAULT_RENDER_BUDGET_MS
    try:
        return await markdown.render_async(raw, budget_ms=budget_ms, known_users=known)
    except markdown.TooComplex:
        raise too_complex("body") from None


def too_complex(field: str) -> ApiError:
    """The 422 for a text that takes too long to turn into HTML."""
    return ApiError(
        422,
        "too_complex",
        "This is too complex to show: please split it up (a very long table, for example, into several "
        "smaller ones or several posts). Your text is still here.",
        {field: "is too complex to show; split it up"},
    )


def edit_limit(settings: Settings, *, new_member: bool) -> screening.Limit:
    """Edits a member may make per minute: of posts and document comments, one allowance for both."""
    per_minute = settings.new_member_edits_per_minute if new_member else settings.edits_per_minute
    return screening.Limit(
        "edits-minute",
        per_minute,
        screening.MINUTE_S,
        "You are editing quickly. To keep things calm for everyone, please wait {wait} before saving "
        "another change. Your text is still here.",
    )


async def enforce_edit_limit(conn: asyncpg.Connection, who: Session, rules: screening.PostingRules | None) -> None:
    """Count one edit (of a post or a document comment) against the editor's allowance, stricter for
    new members; staff, and code writing on nobody's behalf (no rules), are not limited. 429 over it."""
    if rules is None or who.is_staff:
        return
    joined = await conn.fetchval("SELECT created_at FROM forum.users WHERE id = $1", who.user_id)
    new_member = joined is not None and screening.is_new_member(rules.settings, joined)
    await screening.enforce_limits(rules, who.user_id, [edit_limit(rules.settings, new_member=new_member)])


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
    if row is None or row["topic_id"] != topic.id or row["status"] in ("deleted", *access.UNPUBLISHED):
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


def censored(rendered: markdown.Rendered, matcher: screening.Matcher | None) -> markdown.Rendered:
    """The rendered post with censored watched words blotted out (the raw text keeps them)."""
    if matcher is None or not matcher.phrases:
        return rendered
    return dataclasses.replace(
        rendered, cooked=screening.censor_html(rendered.cooked, matcher), text=matcher.censor(rendered.text)
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
    censor: screening.Matcher | None = None,
    rendered: markdown.Rendered | None = None,
    read_by: int | None = None,
    sensitive: bool = False,
) -> asyncpg.Record:
    """Write a checked post and bump its topic; returns the post row.

    A visible post records PostCreated now; a pending one (waiting for review) when published.
    With `read_by` (a user id), that member's read state moves to the new post in the same statement.
    `sensitive`: it matched a safeguarding phrase (mail never quotes it).
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
        await record_post_created(conn, post, topic, rendered, sensitive=sensitive)
    return post


# Whether a post has (or had) a safeguarding item: it matched a safeguarding phrase, or was flagged so.
SAFEGUARDING_ITEM_SQL = "SELECT EXISTS (SELECT 1 FROM forum.reviewables WHERE post_id = $1 AND kind = ANY($2::text[]))"


async def has_safeguarding_item(conn: asyncpg.Connection, post_id: int) -> bool:
    """Whether a post is sensitive: mail and digests never quote one that has a safeguarding item."""
    return bool(await conn.fetchval(SAFEGUARDING_ITEM_SQL, post_id, list(reviews.SAFEGUARDING_KINDS)))


async def record_post_created(
    conn: asyncpg.Connection,
    post: asyncpg.Record,
    topic: TopicContext,
    rendered: markdown.Rendered,
    *,
    sensitive: bool | None = None,
) -> None:
    """Record PostCreated for a post being published (at once, or when a moderator approves it).

    `sensitive` when known (a new post's screening); else whether it has a safeguarding item.
    """
    if sensitive is None:
        sensitive = await has_safeguarding_item(conn, post["id"])
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
        sensitive=sensitive,
    )
    # A pseudonymous post's envelope names no actor: the stream must not tie it to its author.
    await write_event(conn, event, actor_id=None if post["anonymous"] else author_id)


# --- starting topics and replying ------------------------------------------------------------------


class Written(NamedTuple):
    """A new post as written: its row, and whether it matched a safeguarding phrase (its author is
    then shown the support panel)."""

    post: asyncpg.Record
    support: bool


async def start_topic(
    conn: asyncpg.Connection, who: Session, data: dict[str, Any], rules: screening.PostingRules | None = None
) -> tuple[asyncpg.Record, Written]:
    """Check and start a topic (TOPIC_IN data) with its first post; returns the topic row and the post.

    The kind is the category's default unless `data` names one; an archived category takes no topic
    (409). With `rules` (every request does) the safety checks run: a blocked word is 422, too many
    posts 429, and a post held for review leaves both topic and post pending, with no events
    until a moderator approves it. Without rules (demo data) nothing is screened.
    """
    category = await readable_category(conn, who, data["category_id"])
    await check_takes_topics(conn, category["id"])
    author = await check_can_post(conn, who)
    title = clean_title(data["title"])
    raw = clean_body(data["body"])
    note = clean_note(data.get("content_note"))
    anonymous = check_anonymous(category["allow_anonymous"], data.get("anonymous"))
    kind = data.get("kind") or category["default_kind"]
    rendered = await render_body(conn, raw, rules)
    review = await screening.review_new_post(
        conn, who, author, text=f"{title}\n{rendered.text}", rules=rules, topic=True
    )
    status = "pending" if review.pending else "visible"
    topic = await insert_topic(
        conn,
        category,
        title=title,
        slug=slugify(title),
        kind=kind,
        author_id=author["id"],
        note=note,
        status=status,
        anonymous=anonymous,
    )
    if status == "visible":
        await write_topic_created(conn, topic.id)
    written = await _write_post(conn, topic, author, raw, note, review, rendered, anonymous=anonymous)
    return await topic_row(conn, who, topic.id), written


async def _write_post(
    conn: asyncpg.Connection,
    topic: TopicContext,
    author: asyncpg.Record,
    raw: str,
    note: str | None,
    review: screening.PostReview,
    rendered: markdown.Rendered,
    *,
    anonymous: bool,
    reply_to: asyncpg.Record | None = None,
) -> Written:
    post = await create_post(
        conn,
        topic=topic,
        author=author,
        raw=raw,
        content_note=note,
        reply_to=reply_to,
        status="pending" if review.pending else "visible",
        anonymous=anonymous,
        censor=review.censored,
        rendered=rendered,
        read_by=author["id"],  # the author has read their own post: in the same statement
        sensitive=bool(review.crisis),
    )
    await screening.open_reviews_for_new_post(conn, post, review, category_id=topic.category_id)
    return Written(post, bool(review.crisis))


async def reply(
    conn: asyncpg.Connection,
    who: Session,
    topic_id: int,
    data: dict[str, Any],
    rules: screening.PostingRules | None = None,
) -> Written:
    """Check and write a reply (REPLY_IN data) in a topic; returns the post (pending when held for review)."""
    topic = await readable_topic(conn, who, topic_id)
    refusal = access.may_reply(who, closed=topic.closed, status=topic.status, archived=topic.archived)
    if refusal == "archived":
        raise archived_refusal()
    if refusal == "closed":
        raise ApiError(403, "topic_closed", "This topic is closed, so it no longer takes replies.")
    if refusal == "not_open":
        raise ApiError(
            409, "topic_not_open", "This topic is not open for replies yet: a moderator needs to look at it first."
        )
    author = await check_can_post(conn, who)
    raw = clean_body(data["body"])
    note = clean_note(data.get("content_note"))
    wanted = data.get("anonymous")
    if wanted is None and topic.anonymous and topic.allow_anonymous and topic.author_id == who.user_id:
        wanted = True  # an anonymous topic's author stays anonymous in it unless they say otherwise
    anonymous = check_anonymous(topic.allow_anonymous, wanted)
    reply_to = await check_reply_to(conn, topic, data.get("reply_to"))
    rendered = await render_body(conn, raw, rules)
    review = await screening.review_new_post(conn, who, author, text=rendered.text, rules=rules, topic=False)
    return await _write_post(conn, topic, author, raw, note, review, rendered, anonymous=anonymous, reply_to=reply_to)


async def topic_page(
    conn: asyncpg.Connection,
    who: Session | None,
    topic_id: int,
    page: int,
    row: asyncpg.Record | None = None,
) -> tuple[asyncpg.Record, list[asyncpg.Record], bool]:
    """A topic (`row` when already fetched by topic_row), one page of its posts (with the viewer's
    part in each, their reactions among it: VIEWER_POST_COLUMNS) and whether more follow;
    marks them read."""
    row = row if row is not None else await topic_row(conn, who, topic_id)
    posts, has_next = await topic_posts(conn, who, topic_id, page)
    if who is not None and posts:
        await mark_read_past(conn, who.user_id, row, posts[-1]["post_number"])
    return row, posts, has_next
