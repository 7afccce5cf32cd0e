"""The audit log in words: "Mo kept a reply by Sam in 'Feeling safe in A&E' visible", with links to
what an entry is about where the viewer may see it (the rules of services/forum/access.py).

Words never quote what a member wrote (a hidden post's text stays hidden), never name the author
of an anonymous post, and say "a post" or "a topic" without a title or link for what the viewer may
not read. The words of each action are audit.WORDS and audit.REVIEW_WORDS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import asyncpg

from services.forum import access
from services.forum.moderation import audit, screening
from services.forum.topics import topics
from shared.pages import when
from shared.sessions import Session

# A piece of a sentence: its text, and where it links (None: plain text).
Piece = tuple[str, str | None]


@dataclass
class Targets:
    """What a page of entries is about, fetched once for the page (by id)."""

    posts: dict[int, asyncpg.Record] = field(default_factory=dict)
    comments: dict[int, asyncpg.Record] = field(default_factory=dict)
    topics: dict[int, asyncpg.Record] = field(default_factory=dict)
    users: dict[int, asyncpg.Record] = field(default_factory=dict)
    reviewables: dict[int, asyncpg.Record] = field(default_factory=dict)
    categories: dict[int, str] = field(default_factory=dict)


POSTS_SQL = """
SELECT p.id, p.post_number, p.status, p.anonymous, p.author_id, u.username, u.display_name,
       t.id AS topic_id, t.title, t.slug, t.status AS topic_status, t.author_id AS topic_author_id, c.group_ids
FROM forum.posts p
JOIN forum.users u ON u.id = p.author_id
JOIN forum.topics t ON t.id = p.topic_id
JOIN forum.categories c ON c.id = t.category_id
WHERE p.id = ANY($1::bigint[])
"""
COMMENTS_SQL = """
SELECT dc.id, dc.status, dc.author_id, u.username, u.display_name, d.id AS document_id, d.title,
       d.deleted_at, f.group_ids, coalesce(pf.group_ids, '{}') AS parent_group_ids
FROM forum.document_comments dc
JOIN forum.users u ON u.id = dc.author_id
JOIN forum.documents d ON d.id = dc.document_id
JOIN forum.folders f ON f.id = d.folder_id
LEFT JOIN forum.folders pf ON pf.id = f.parent_id
WHERE dc.id = ANY($1::bigint[])
"""
TOPICS_SQL = """
SELECT t.id, t.title, t.slug, t.status, t.author_id, c.group_ids
FROM forum.topics t JOIN forum.categories c ON c.id = t.category_id
WHERE t.id = ANY($1::bigint[])
"""
USERS_SQL = "SELECT id, username, display_name FROM forum.users WHERE id = ANY($1::bigint[])"
REVIEWABLES_SQL = "SELECT id, post_id, comment_id FROM forum.reviewables WHERE id = ANY($1::bigint[])"
CATEGORIES_SQL = "SELECT id, name, group_ids FROM forum.categories WHERE id = ANY($1::bigint[])"


def _ids(entries: list[dict[str, Any]], target_type: str) -> list[int]:
    return [e["target_id"] for e in entries if e["target_type"] == target_type and e["target_id"] is not None]


def _moved_categories(entries: list[dict[str, Any]]) -> list[int]:
    found = []
    for e in entries:
        if e["action"] == "topic.move":
            for state in (e["before"] or {}, e["after"] or {}):
                if isinstance(state.get("category_id"), int):
                    found.append(state["category_id"])
    return found


async def fetch_targets(conn: asyncpg.Connection, who: Session, entries: list[dict[str, Any]]) -> Targets:
    """Everything these entries (audit.entry_json shapes) are about, by id."""
    found = Targets()
    found.reviewables = {r["id"]: r for r in await conn.fetch(REVIEWABLES_SQL, _ids(entries, "reviewable"))}
    post_ids = _ids(entries, "post") + [r["post_id"] for r in found.reviewables.values() if r["post_id"]]
    comment_ids = [r["comment_id"] for r in found.reviewables.values() if r["comment_id"]]
    found.posts = {r["id"]: r for r in await conn.fetch(POSTS_SQL, post_ids)}
    found.comments = {r["id"]: r for r in await conn.fetch(COMMENTS_SQL, comment_ids)}
    found.topics = {r["id"]: r for r in await conn.fetch(TOPICS_SQL, _ids(entries, "topic"))}
    found.users = {r["id"]: r for r in await conn.fetch(USERS_SQL, _ids(entries, "user"))}
    found.categories = {
        r["id"]: r["name"]
        for r in await conn.fetch(CATEGORIES_SQL, _moved_categories(entries))
        if access.groups_readable(who, r["group_ids"])
    }
    return found


# --- what an entry was about, as a phrase ------------------------------------------------------------


def _quoted(text: str, href: str | None) -> list[Piece]:
    return [("\u2018", None), (text, href), ("\u2019", None)]


def post_phrase(who: Session, post: asyncpg.Record | None) -> list[Piece]:
    """ "a reply by Sam in 'Title'" (the reply and the topic linked), or "a post" when not readable."""
    if post is None or not _post_readable(who, post):
        return [("a post", None)]
    kind = "the opening post" if post["post_number"] == 1 else "a reply"
    author = "an anonymous member" if post["anonymous"] else post["display_name"]
    return [
        (f"{kind} by {author}", f"/p/{post['id']}"),
        (" in ", None),
        *_quoted(post["title"], topics.topic_url(post["topic_id"], post["slug"])),
    ]


def _post_readable(who: Session, post: asyncpg.Record) -> bool:
    return (
        access.groups_readable(who, post["group_ids"])
        and access.topic_shown(who, post["topic_status"], post["topic_author_id"])
        and access.writing_shown(who, post["status"], post["author_id"])
    )


def comment_phrase(who: Session, comment: asyncpg.Record | None) -> list[Piece]:
    """ "a comment by Sam on 'Document'" (both linked), or "a document comment" when not readable."""
    readable = (
        comment is not None
        and access.folder_readable(who, comment["group_ids"], comment["parent_group_ids"])
        and (comment["deleted_at"] is None or access.is_staff(who))
        and access.writing_shown(who, comment["status"], comment["author_id"])
    )
    if comment is None or not readable:
        return [("a document comment", None)]
    document_url = f"/library/documents/{comment['document_id']}"
    return [
        (f"a comment by {comment['display_name']}", f"{document_url}#comment-{comment['id']}"),
        (" on ", None),
        *_quoted(comment["title"], document_url),
    ]


def topic_phrase(who: Session, topic: asyncpg.Record | None) -> list[Piece]:
    """ "the topic 'Title'" (the title linked), or "a topic" when the viewer may not read it."""
    if topic is None or not (
        access.groups_readable(who, topic["group_ids"]) and access.topic_shown(who, topic["status"], topic["author_id"])
    ):
        return [("a topic", None)]
    return [("the topic ", None), *_quoted(topic["title"], topics.topic_url(topic["id"], topic["slug"]))]


def member_phrase(who: Session, user: asyncpg.Record | None) -> list[Piece]:
    """A member's name, linked to their moderation page for moderators."""
    if user is None:
        return [("a member", None)]
    href = f"/review/members/{quote(user['username'])}" if access.is_staff(who) else None
    return [(user["display_name"], href)]


def _thing(who: Session, entry: dict[str, Any], found: Targets) -> list[Piece]:
    kind, target_id = entry["target_type"], entry["target_id"]
    state = {**(entry["before"] or {}), **(entry["after"] or {})}
    if kind == "post":
        return post_phrase(who, found.posts.get(target_id))
    if kind == "reviewable":
        item = found.reviewables.get(target_id)
        if item is not None and item["comment_id"]:
            return comment_phrase(who, found.comments.get(item["comment_id"]))
        return post_phrase(who, found.posts.get(item["post_id"]) if item else None)
    if kind == "topic":
        return topic_phrase(who, found.topics.get(target_id))
    if kind == "user":
        user = found.users.get(target_id)
        if user is None and entry["action"].startswith("signup."):
            return [("someone who asked to join", None)]  # a declined request leaves no account
        return member_phrase(who, user)
    if kind == "watched_word":
        return _quoted(str(state.get("word", "a word")), None)
    if kind == "safeguarding_phrase":
        return _quoted(str(state.get("phrase", "a phrase")), None)
    if entry["action"] == "category.reorder":
        return [("the categories", None)]
    if kind == "category":
        return _quoted(str(state.get("name", "a category")), None)
    if kind == "setting":
        return _quoted(str(state.get("label") or state.get("key") or "a setting"), None)
    if kind == "invitation":
        return [("an invitation to join", None)]
    return [(audit.TARGET_NAMES.get(kind, "something").lower(), None)]


def _detail(entry: dict[str, Any], found: Targets) -> str:
    before, after = entry["before"] or {}, entry["after"] or {}
    if entry["action"] == "topic.move":
        names = found.categories
        old, new = names.get(before.get("category_id", 0)), names.get(after.get("category_id", 0))
        return f" from {old or 'a category'} to {new or 'another category'}"
    if entry["action"] in ("user.silence", "user.suspend") and after.get("until"):
        return f" until {when(datetime.fromisoformat(after['until']))['title']}"
    if entry["action"] == "user.role_change" and isinstance(after.get("role"), str):
        return f" to {after['role']}"
    if entry["action"] == "user.safeguarding_lead" and isinstance(after.get("safeguarding_lead"), bool):
        return ": now one" if after["safeguarding_lead"] else ": no longer one"
    if entry["action"] == "review.safeguarding_outcome" and isinstance(after.get("outcome"), str):
        return f" ({after['outcome'].replace('_', ' ')})"
    if entry["action"] == "setting.change" and "value" in after:
        return f" to {after['value']!r}" if after["value"] != "" else " to nothing"
    if entry["action"] == "post.revision_redact" and isinstance(after.get("revision"), int):
        return f" (version {after['revision']}, so only admins can read it)"
    if entry["action"] == "watched_word.add" and after.get("action") in screening.WORD_ACTION_LABELS:
        return f" ({screening.WORD_ACTION_LABELS[after['action']].lower()})"
    return ""


def verb(entry: dict[str, Any]) -> str:
    """The words of an entry's action, with "{thing}" and "{detail}" still to fill."""
    action = entry["action"]
    if action.startswith("review."):
        before = entry["before"] or {}
        status = str(before.get("post_status") or before.get("comment_status"))
        return audit.REVIEW_WORDS.get((action.split(".", 1)[1], status), audit.WORDS[action])
    return audit.WORDS.get(action, "did something the log has no words for ({thing})")


def sentence(who: Session, entry: dict[str, Any], found: Targets, *, actor: str | None = None) -> list[Piece]:
    """An entry as one sentence in pieces: who, what, to what (linked where the viewer may see it)."""
    words = verb(entry)
    before_thing, _, rest = words.partition("{thing}")
    pieces: list[Piece] = [(actor or entry["actor"]["display_name"], None), (" " + before_thing, None)]
    if "{thing}" in words:
        pieces += _thing(who, entry, found)
    pieces.append((rest.replace("{detail}", _detail(entry, found)) + ".", None))
    return [(text, href) for text, href in pieces if text]


async def described(
    conn: asyncpg.Connection, who: Session, entries: list[dict[str, Any]], *, you: bool = False
) -> list[dict[str, Any]]:
    """Entries (audit.entry_json shapes) with `words` (a sentence in pieces) and `when` (for <time>).

    With `you`, the viewer's own actions start with "You" (a confirmation after acting)."""
    found = await fetch_targets(conn, who, entries)
    return [
        {
            **entry,
            "words": sentence(who, entry, found, actor="You" if you and entry["actor"]["id"] == who.user_id else None),
            "when": when(datetime.fromisoformat(entry["at"])),
        }
        for entry in entries
    ]


def plain(pieces: list[Piece]) -> str:
    """A sentence's text without its links (for tests, mails and logs)."""
    return "".join(text for text, _ in pieces)
