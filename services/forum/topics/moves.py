"""What moves a post between states once it is written: its author or staff delete it;
moderators publish a waiting one, hide, restore, reject or remove it. Each move writes its
event in the caller's transaction; moderation.py calls the moderators' moves.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.forum import access
from services.forum.moderation import audit
from services.forum.outbox import write_event
from services.forum.topics.posts import fetch_post, readable_post, record_post_created, render_body
from services.forum.topics.topics import TopicContext, write_topic_created, write_topic_updated
from shared import markdown
from shared.events import PostDeleted, PostHidden, PostRestored
from shared.sessions import Session
from shared.web import ApiError

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
    if post["status"] not in access.UNPUBLISHED:
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
    await record_post_created(conn, published, topic, rendered)
    return published


async def hide_post(
    conn: asyncpg.Connection, post: asyncpg.Record, topic: TopicContext, *, reason: str, actor_id: int | None
) -> None:
    """Hide a visible post: others see a placeholder, its author sees why (PostHidden tells them too)."""
    await _switch_visibility(conn, post, topic, "hidden", reason, actor_id)
    await write_event(conn, PostHidden(**post_about(post, topic), reason=reason), actor_id=actor_id)


async def restore_post(conn: asyncpg.Connection, post: asyncpg.Record, topic: TopicContext, *, actor_id: int) -> None:
    """Show a hidden post again (PostRestored)."""
    await _switch_visibility(conn, post, topic, "visible", None, actor_id)
    await write_event(conn, PostRestored(**post_about(post, topic)), actor_id=actor_id)


# The other status a visibility switch starts from, the word a refusal uses, and the change to the count of
# the topic's visible posts.
_SWITCHES = {"hidden": ("visible", "hidden", -1), "visible": ("hidden", "restored", +1)}


async def _switch_visibility(
    conn: asyncpg.Connection,
    post: asyncpg.Record,
    topic: TopicContext,
    status: str,
    reason: str | None,
    actor_id: int | None,
) -> None:
    """Hide a visible post or show a hidden one: 409 from any other status; its topic's count and status follow."""
    was, wanted, count_change = _SWITCHES[status]
    if post["status"] != was:
        raise _conflict(post, wanted)
    await conn.execute(SET_STATUS_SQL, post["id"], status, reason)
    await conn.execute("UPDATE forum.topics SET posts_count = posts_count + $2 WHERE id = $1", topic.id, count_change)
    await _set_topic_status(conn, post, status, actor_id)


def post_about(post: asyncpg.Record, topic: TopicContext) -> dict[str, Any]:
    """What every event about a post says: which post, in which topic and category, and whose it is."""
    return {
        "post_id": post["id"],
        "topic_id": topic.id,
        "category_id": topic.category_id,
        "author_id": post["author_id"],
    }


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
        if post["status"] not in access.UNPUBLISHED:
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
    if post["status"] in access.UNPUBLISHED:
        return  # never published: nobody was told of it, so nobody is told it went
    await write_event(
        conn,
        PostDeleted(**post_about(post, topic), post_number=post["post_number"]),
        actor_id=actor_id,
    )


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
    if not access.own_or_staff(who, post["author_id"]):
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
        await audit.changed(conn, who, "post.delete", post_id, "status", post["status"], "deleted")
