"""The kinds of writing members react to, flag and moderators review (a post, a document
comment, a private message): each described once, so reactions, flags and review items
have one implementation parameterised by the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Target:
    """Where one kind of writing lives, and how it is named to members and in the audit log."""

    name: str  # "post", "comment": the noun members read in messages
    table: str  # the writings themselves (id, author_id, status, reactions)
    id_column: str  # how reactions, flags and reviewables point at one
    reactions_table: str
    flags_table: str
    flag_kind: str  # the reviewable kind members' (not safeguarding) flags open
    note_max: int  # longest note a flag may carry
    # The container's count of reactions (a topic's), kept with each reaction; "" when none.
    container_reactions_sql: str = ""
    events: bool = False  # reactions and flags are events (posts: notify and search follow them)
    safeguarding_kind: str = ""  # the reviewable kind a safeguarding flag opens ("": its flag_kind)


POST = Target(
    name="post",
    table="forum.posts",
    id_column="post_id",
    reactions_table="forum.reactions",
    flags_table="forum.flags",
    flag_kind="flagged_post",
    note_max=1000,
    container_reactions_sql=(
        "UPDATE forum.topics SET reactions_count = greatest(0, reactions_count + $2) WHERE id = $1"
    ),
    events=True,
    safeguarding_kind="safeguarding",
)
COMMENT = Target(
    name="comment",
    table="forum.document_comments",
    id_column="comment_id",
    reactions_table="forum.document_comment_reactions",
    flags_table="forum.document_comment_flags",
    flag_kind="flagged_comment",
    note_max=500,
)
# A private message: reported by the people in its conversation; moderators see it and the few before it.
MESSAGE = Target(
    name="message",
    table="forum.messages",
    id_column="message_id",
    reactions_table="forum.message_reactions",
    flags_table="forum.message_flags",
    flag_kind="flagged_message",
    note_max=1000,
    safeguarding_kind="safeguarding_message",
)
TARGETS = (POST, COMMENT, MESSAGE)

# Which writing each kind of review item is about.
KIND_TARGETS = {
    "flagged_post": POST,
    "queued_post": POST,
    "safeguarding": POST,
    "appeal": POST,
    "flagged_comment": COMMENT,
    "flagged_message": MESSAGE,
    "safeguarding_message": MESSAGE,
}


# The kinds that are about someone's safety: alerted at once, first in the queue (a post or a private
# message that matched a safeguarding phrase).
SAFEGUARDING_KINDS = ("safeguarding", "safeguarding_message")


def of_review(row: asyncpg.Record) -> Target:
    """The target of a reviewable row."""
    return KIND_TARGETS[row["kind"]]


@dataclass(frozen=True)
class Writing:
    """One writing the viewer may read, with what acting on it needs to know."""

    target: Target
    id: int
    author_id: int
    status: str
    container_id: int  # its topic, its document, or its conversation
    audience: list[str]
    category_id: int | None = None  # a post's category (flag events carry it)


# --- what members may say about a writing when they flag it -----------------------------------------

FLAG_REASONS = ("off_topic", "inappropriate", "spam", "safeguarding", "other")
FLAG_REASON_LABELS = {
    "off_topic": "Off topic",
    "inappropriate": "Inappropriate",
    "spam": "Spam",
    "safeguarding": "Safeguarding concern",
    "other": "Something else",
}
FLAG_REASON_HINTS = {
    "off_topic": "It does not belong in this topic or category.",
    "inappropriate": "It is unkind, offensive, or goes against the community guidelines.",
    "spam": "It is an advert, or has nothing to do with the community.",
    "safeguarding": "You are worried that someone may be at risk of harm, including the person who wrote it.",
    "other": "Something else a moderator should know. Please say what.",
}
