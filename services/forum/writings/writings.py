"""A writing the viewer may read, whatever its target, and the reactions members give it by id:
the one place that asks posts and the library where a writing is and who may see it.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.forum.library import documents
from services.forum.messages import conversations
from services.forum.topics import posts
from services.forum.writings import reactions
from services.forum.writings.targets import COMMENT, MESSAGE, POST, Target, Writing
from shared.sessions import Session
from shared.web import ApiError

NO_REACTIONS = {
    "post": "That post cannot take reactions: it was deleted or is not shown.",
    "comment": "That comment cannot take reactions.",
    "message": "That message cannot take reactions: it is not shown.",
}


async def readable_post(conn: asyncpg.Connection, who: Session | None, post_id: int) -> Writing:
    """A post the viewer may read (404 otherwise), with its topic."""
    post, topic = await posts.readable_post(conn, who, post_id)
    return Writing(POST, post_id, post["author_id"], post["status"], topic.id, topic.audience, topic.category_id)


async def readable_comment(conn: asyncpg.Connection, who: Session | None, comment_id: int) -> Writing:
    """A document comment the viewer may read (404 otherwise), with its document."""
    comment, document = await documents.readable_comment(conn, who, comment_id)
    audience = documents.document_audience(document)
    return Writing(COMMENT, comment_id, comment["author_id"], comment["status"], document["id"], audience)


READABLE = {POST.name: readable_post, COMMENT.name: readable_comment, MESSAGE.name: conversations.readable_writing}


async def readable(conn: asyncpg.Connection, who: Session | None, target: Target, writing_id: int) -> Writing:
    """The writing of this target, if the viewer may read it; 404 otherwise."""
    return await READABLE[target.name](conn, who, writing_id)


async def react(
    conn: asyncpg.Connection, who: Session, target: Target, writing_id: int, kind: str
) -> tuple[bool, dict[str, Any]]:
    """Give a reaction to a visible writing; (False, state) when it was already given."""
    reactions.check_kind(kind)
    writing = await _reactable(conn, who, target, writing_id)
    return await reactions.add(conn, who, writing, kind)


async def unreact(conn: asyncpg.Connection, who: Session, target: Target, writing_id: int, kind: str) -> dict[str, Any]:
    """Take back a reaction; 404 when it was not given."""
    if kind not in reactions.REACTION_KINDS:
        raise reactions.not_given(target)
    writing = await _reactable(conn, who, target, writing_id)
    return await reactions.remove(conn, who, writing, kind)


async def _reactable(conn: asyncpg.Connection, who: Session, target: Target, writing_id: int) -> Writing:
    writing = await readable(conn, who, target, writing_id)
    if writing.status != "visible":
        raise ApiError(404, "not_found", NO_REACTIONS[target.name])
    return writing
