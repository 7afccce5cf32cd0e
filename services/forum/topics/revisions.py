"""Editing posts with every version kept: who may edit (access.may_edit), screening an
author's edit like a new post, the revision rows, and the list of a post's versions.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.forum import access
from services.forum.moderation import audit, screening
from services.forum.outbox import write_event
from services.forum.topics.moves import SET_STATUS_SQL, lock_post, post_about
from services.forum.topics.posts import (
    censored,
    check_can_post,
    clean_body,
    enforce_edit_limit,
    fetch_post,
    has_safeguarding_item,
    readable_post,
    render_body,
)
from services.forum.topics.topics import (
    ANONYMOUS_AUTHOR,
    ANONYMOUS_USERNAME,
    TopicContext,
    clean_note,
    write_topic_updated,
)
from services.forum.writings import reviews
from shared import markdown
from shared.events import PostEdited
from shared.sessions import Session
from shared.web import ApiError, invalid

EDIT_REASON_MAX = 200

# --- editing ---------------------------------------------------------------------------------------


async def check_edit(conn: asyncpg.Connection, who: Session, post_id: int) -> tuple[asyncpg.Record, TopicContext]:
    """The post and topic, if the viewer may edit it: its author (who may still post) or staff."""
    post, topic = await readable_post(conn, who, post_id)
    if post["status"] == "deleted":
        raise ApiError(404, "not_found", "That post was deleted.")
    if not access.may_edit(who, post["status"], post["author_id"]):
        raise ApiError(403, "forbidden", "You can only edit your own posts.")
    if not access.is_staff(who):
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


async def edit_post(
    conn: asyncpg.Connection,
    who: Session,
    post_id: int,
    data: dict[str, Any],
    rules: screening.PostingRules | None = None,
) -> asyncpg.Record:
    """Check and apply an edit (POST_PATCH data), keeping the previous version; returns the post row.

    A revision row keeps a version's text together with who replaced it, when and why;
    an edit that changes nothing makes no revision. An author's edit is screened like a new
    post; editing a hidden or rejected post asks moderators for another look. Staff editing
    someone else's post give a reason (the author sees it with the revisions) and are audited.
    With `rules` (every request should pass them) edits are rate limited (429) and rendered within
    the configured budget (422 when too complex).
    """
    post, topic = await check_edit(conn, who, post_id)
    raw = clean_body(data["body"])
    note = clean_note(data["content_note"]) if "content_note" in data else post["content_note"]
    if raw == post["raw"] and note == post["content_note"]:
        return post
    reason = clean_note(data.get("edit_reason"))
    by_author = who.user_id == post["author_id"]
    if not by_author and not reason:
        raise invalid("edit_reason", "is needed when you edit someone else\u2019s post: its author will see it")
    await enforce_edit_limit(conn, who, rules)
    # Rendered before the post is locked: the row stays free while a worker renders.
    rendered = await render_body(conn, raw, rules)
    post = await lock_post(conn, post_id)
    if "content_note" not in data:
        note = post["content_note"]
    if raw == post["raw"] and note == post["content_note"]:
        return post
    review = await screening.review_edit(conn, old_text=post["plain"], new_text=rendered.text) if by_author else None
    rendered = censored(rendered, review.censored if review else None)
    await conn.execute(
        INSERT_REVISION_SQL, post_id, post["revision"], post["raw"], post["content_note"], who.user_id, reason
    )
    revision = await conn.fetchval(UPDATE_POST_SQL, post_id, raw, rendered.cooked, rendered.text, note)
    if post["status"] not in access.UNPUBLISHED:
        # Sensitive (mail never quotes it): the edit brought a safeguarding phrase, or the post has an item.
        sensitive = bool(review and review.crisis) or await has_safeguarding_item(conn, post_id)
        await _post_edited(conn, post, topic, rendered, note, revision, editor_id=who.user_id, sensitive=sensitive)
    if post["post_number"] == 1 and note != post["content_note"]:
        await _sync_topic_note(conn, who, topic.id, note)
    if not by_author:
        before = {"raw": post["raw"], "content_note": post["content_note"], "revision": post["revision"]}
        after = {"raw": raw, "content_note": note, "revision": revision}
        await audit.record_by(conn, who, "post.edit", post_id, reason=reason, before=before, after=after)
    updated = await fetch_post(conn, post_id)
    assert updated is not None
    if review is not None:
        await screening.open_reviews_for_new_post(conn, updated, review, category_id=topic.category_id)
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
    sensitive: bool = False,
) -> None:
    hide_actor = post["anonymous"] and editor_id == post["author_id"]
    await write_event(
        conn,
        PostEdited(
            **post_about(post, topic),
            post_number=post["post_number"],
            author_username=ANONYMOUS_USERNAME if post["anonymous"] else post["username"],
            text=rendered.text,
            content_note=note,
            audience=topic.audience,
            revision=revision,
            anonymous=post["anonymous"],
            sensitive=sensitive,
        ),
        actor_id=None if hide_actor else editor_id,
    )


ASKED_AGAIN = "The author edited the post and asks for another review"


async def _ask_again(conn: asyncpg.Connection, post: asyncpg.Record) -> None:
    """An author who edits a hidden or rejected post asks moderators to look again."""
    if post["status"] == "hidden":
        await reviews.open_review(
            conn, kind="flagged_post", writing=post, reasons=[ASKED_AGAIN], priority=reviews.PRIORITY_HIDDEN
        )
    elif post["status"] == "rejected":
        await conn.execute(SET_STATUS_SQL, post["id"], "pending", None)
        if post["post_number"] == 1:
            await conn.execute("UPDATE forum.topics SET status = 'pending' WHERE id = $1", post["topic_id"])
        await reviews.open_review(conn, kind="queued_post", writing=post, reasons=[ASKED_AGAIN])


async def _sync_topic_note(conn: asyncpg.Connection, who: Session, topic_id: int, note: str | None) -> None:
    """A topic's content note follows its first post's, so lists warn as the post does."""
    await conn.execute("UPDATE forum.topics SET content_note = $2, updated_at = now() WHERE id = $1", topic_id, note)
    await write_topic_updated(conn, topic_id, actor_id=who.user_id)


# --- the versions of a post, and redacting one -----------------------------------------------------

REVISIONS_SQL = """
SELECT r.revision, r.raw, r.content_note, r.reason, r.created_at, r.editor_id, u.username, u.display_name,
       r.redacted_at, r.redacted_by
FROM forum.post_revisions r JOIN forum.users u ON u.id = r.editor_id
WHERE r.post_id = $1
ORDER BY r.revision
"""
LOCK_REVISION_SQL = """
SELECT revision, redacted_at, redacted_by FROM forum.post_revisions WHERE post_id = $1 AND revision = $2 FOR UPDATE
"""
REDACT_REVISION_SQL = """
UPDATE forum.post_revisions SET redacted_at = now(), redacted_by = $3
WHERE post_id = $1 AND revision = $2 AND redacted_at IS NULL
"""

# Who took a version back, as everyone who may read the post is told (never who they are).
REDACTED_BY_AUTHOR = "author"
REDACTED_BY_MODERATOR = "moderator"


async def readable_revisions(
    conn: asyncpg.Connection, who: Session | None, post_id: int
) -> tuple[asyncpg.Record, TopicContext]:
    """The post and topic, if the viewer may read the post's versions: 404 for a deleted post, or a
    hidden or unpublished one, to those who may not read its text (staff read them all)."""
    post, topic = await readable_post(conn, who, post_id)
    if not access.is_staff(who) and access.text_withheld(who, post["status"], post["author_id"]):
        raise ApiError(404, "not_found", "We could not find that post.")
    return post, topic


def _redaction(post: asyncpg.Record, row: asyncpg.Record) -> dict[str, Any] | None:
    """How a redacted version is described: by its author or by a moderator, and when."""
    if row["redacted_at"] is None:
        return None
    by = REDACTED_BY_AUTHOR if row["redacted_by"] == post["author_id"] else REDACTED_BY_MODERATOR
    return {"by": by, "at": row["redacted_at"].isoformat()}


async def post_revisions(
    conn: asyncpg.Connection, who: Session | None, post_id: int
) -> tuple[asyncpg.Record, TopicContext, list[dict[str, Any]]]:
    """Every version of a post, oldest first, the current one last; 404 for a deleted post to non-staff.

    Each item says who made that version, when, and the reason they gave; an anonymous author's own
    versions keep the pseudonym, for staff too (they reveal an author with the audited reveal). A
    redacted version says by whom (its author or a moderator) and when; its text and content note
    are empty for everyone but admins (access.redacted_text_shown), who see them marked as redacted.
    `can_redact` says whether the viewer may redact that version (never the current one).
    """
    post, topic = await readable_revisions(conn, who, post_id)
    rows = await conn.fetch(REVISIONS_SQL, post_id)
    may_redact = access.may_redact_revision(who, post["author_id"])
    text_shown = access.redacted_text_shown(who)

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
        redacted = _redaction(post, row)
        withheld = redacted is not None and not text_shown
        items.append(
            {
                "revision": row["revision"],
                "raw": "" if withheld else row["raw"],
                "content_note": None if withheld else row["content_note"],
                **made_by,
                "redacted": redacted,
                "can_redact": may_redact and redacted is None,
            }
        )
        made_by = {
            "editor": editor(row["editor_id"], row["username"], row["display_name"]),
            "reason": row["reason"],
            "created_at": row["created_at"].isoformat(),
        }
    items.append(
        {
            "revision": post["revision"],
            "raw": post["raw"],
            "content_note": post["content_note"],
            **made_by,
            "redacted": None,
            "can_redact": False,
        }
    )
    return post, topic, items


async def check_redact(
    conn: asyncpg.Connection, who: Session, post_id: int, revision: int
) -> tuple[asyncpg.Record, TopicContext]:
    """The post and topic, if the viewer may redact this earlier version of it: 404 for a post they
    may not read or a version it does not have, 403 for someone else's post, 409 for the current
    version (its author edits that instead)."""
    post, topic = await readable_revisions(conn, who, post_id)
    if not access.may_redact_revision(who, post["author_id"]):
        raise ApiError(403, "forbidden", "You can only remove earlier versions of your own posts.")
    if revision == post["revision"]:
        raise ApiError(
            409,
            "current_revision",
            "This is what the post says now, so it cannot be removed as an earlier version: edit the post "
            "to change it, then remove this version.",
        )
    if not 1 <= revision < post["revision"]:
        raise ApiError(404, "not_found", f"This post has no version {revision}.")
    return post, topic


async def redact_revision(
    conn: asyncpg.Connection, who: Session, post_id: int, revision: int
) -> tuple[dict[str, Any], bool]:
    """Redact an earlier version of a post (its author or staff); returns the version as the viewer now
    sees it, and whether this call redacted it (False: it already was, and nothing changes).

    The text is kept, shown to admins alone. A redaction by anyone but an anonymous post's own author
    is in the audit log (naming that author there would undo the pseudonym); the version itself
    always records who redacted it and when. Call in a transaction.
    """
    post, _ = await check_redact(conn, who, post_id, revision)
    row = await conn.fetchrow(LOCK_REVISION_SQL, post_id, revision)
    if row is None:  # not expected: every version before the current one has its row
        raise ApiError(404, "not_found", f"This post has no version {revision}.")
    done = row["redacted_at"] is None
    if done:
        await conn.execute(REDACT_REVISION_SQL, post_id, revision, who.user_id)
        if not (post["anonymous"] and who.user_id == post["author_id"]):
            before = {"revision": revision, "redacted": False}
            after = {"revision": revision, "redacted": True}
            await audit.record_by(conn, who, "post.revision_redact", post_id, before=before, after=after)
    _, _, items = await post_revisions(conn, who, post_id)
    return next(item for item in items if item["revision"] == revision), done
