"""Writing the demo's people, categories and topics through the forum's own functions, then
spreading them over the past months and weeks, as a community's would be (they are all
written in one transaction, at one instant)."""

from __future__ import annotations

import asyncio

import asyncpg

from services.forum.accounts import accounts, passwords
from services.forum.demo.content import CATEGORIES, DEMO_LOGINS, PEOPLE, TOPICS, DemoTopic
from services.forum.topics import categories, posts, revisions
from services.forum.writings import writings
from services.forum.writings.targets import POST
from shared.sessions import Session

CATEGORIES_DAYS_AGO = 400  # set up by Ada soon after she joined

BACKDATE_USER_SQL = """
WITH joined AS (SELECT now() - make_interval(days => $3) AS at)
UPDATE forum.users SET bio = $2, created_at = joined.at, updated_at = joined.at, email_verified_at = joined.at
FROM joined WHERE id = $1
"""
BACKDATE_CATEGORIES_SQL = (
    "UPDATE forum.categories SET created_at = now() - make_interval(days => $2) WHERE id = ANY($1::bigint[])"
)
# Replies follow at a few hours' interval; reactions come within the hour of their post.
BACKDATE_SQL = """
WITH spread AS (
    SELECT p.id, now() - make_interval(hours => $2) + (p.post_number - 1) * interval '3 hours 17 minutes' AS at
    FROM forum.posts p WHERE p.topic_id = $1
)
UPDATE forum.posts p SET created_at = s.at, updated_at = s.at FROM spread s WHERE p.id = s.id
"""
BACKDATE_REACTIONS_SQL = """
UPDATE forum.reactions r SET created_at = least(p.created_at + interval '47 minutes', now())
FROM forum.posts p WHERE r.post_id = p.id AND p.topic_id = $1
"""
BACKDATE_REVISIONS_SQL = """
UPDATE forum.post_revisions r SET created_at = p.created_at + interval '2 hours'
FROM forum.posts p WHERE r.post_id = p.id AND p.topic_id = $1
"""
BACKDATE_TOPIC_SQL = """
UPDATE forum.topics t
SET created_at = (SELECT min(created_at) FROM forum.posts WHERE topic_id = t.id),
    last_posted_at = (SELECT max(created_at) FROM forum.posts WHERE topic_id = t.id)
WHERE t.id = $1
"""


def _session(user_id: int, username: str, role: str) -> Session:
    roles = ["member"] if role == "member" else ["member", role]
    return Session(id=f"demo-{username}", user_id=user_id, username=username, roles=roles, group_ids=[], csrf="")


async def create_people(conn: asyncpg.Connection) -> dict[str, Session]:
    """The demo logins as verified, established members (joined months ago); a session for each."""
    hashes = await asyncio.gather(*(passwords.hash_password(password) for _, password, _ in DEMO_LOGINS))
    people: dict[str, Session] = {}
    for (username, _, role), password_hash in zip(DEMO_LOGINS, hashes, strict=True):
        display_name, bio, joined_days_ago = PEOPLE[username]
        user = await accounts.create_account(
            conn,
            username=username,
            email=f"{username}@demo.tica.invalid",
            password_hash=password_hash,
            display_name=display_name,
            roles=_session(0, username, role).roles,
            verified=True,
        )
        await conn.execute(BACKDATE_USER_SQL, user.id, bio, joined_days_ago)
        people[username] = _session(user.id, username, role)
    return people


async def create_categories(conn: asyncpg.Connection, admin: Session) -> dict[str, int]:
    """The demo's categories, by name."""
    category_ids: dict[str, int] = {}
    for position, spec in enumerate(CATEGORIES):
        row = await categories.create_category(conn, admin, {**spec, "position": position})
        category_ids[spec["name"]] = row["id"]
    await conn.execute(BACKDATE_CATEGORIES_SQL, list(category_ids.values()), CATEGORIES_DAYS_AGO)
    return category_ids


async def _react(
    conn: asyncpg.Connection, people: dict[str, Session], post_id: int, reactions: dict[str, list[str]]
) -> None:
    for kind, names in reactions.items():
        for name in names:
            await writings.react(conn, people[name], POST, post_id, kind)


async def _write_topic(
    conn: asyncpg.Connection, people: dict[str, Session], category_ids: dict[str, int], demo: DemoTopic
) -> int:
    author = people[demo.author]
    topic, (first, _) = await posts.start_topic(
        conn,
        author,
        {
            "category_id": category_ids[demo.category],
            "title": demo.title,
            "body": demo.body,
            "kind": demo.kind,
            "content_note": demo.content_note,
        },
    )
    await _react(conn, people, first["id"], demo.reactions)
    by_number = {1: first}
    for reply in demo.replies:
        body = reply.body
        target = reply.quote or reply.reply_to
        if reply.quote is not None:
            quoted = by_number[reply.quote]
            opener = f'[quote="{quoted["username"]}, post:{quoted["id"]}, topic:{topic["id"]}"]'
            body = f"{opener}\n{reply.quote_text}\n[/quote]\n\n{body}"
        post, _ = await posts.reply(
            conn,
            people[reply.author],
            topic["id"],
            {
                "body": body,
                "reply_to": by_number[target]["id"] if target else None,
                "content_note": reply.content_note,
            },
        )
        by_number[post["post_number"]] = post
        await _react(conn, people, post["id"], reply.reactions)
    if demo.pinned:
        await conn.execute("UPDATE forum.topics SET pinned = true WHERE id = $1", topic["id"])
    return int(topic["id"])


async def _edit_example(conn: asyncpg.Connection, people: dict[str, Session], topic_id: int) -> None:
    """One edited post, so the revisions page has something to show."""
    post_id = await conn.fetchval("SELECT id FROM forum.posts WHERE topic_id = $1 AND post_number = 1", topic_id)
    raw = await conn.fetchval("SELECT raw FROM forum.posts WHERE id = $1", post_id)
    await revisions.edit_post(
        conn,
        people["sam"],
        post_id,
        {
            "body": raw
            + "\n\nIf reading this brought things up for you, the *Get support* page lists people to talk to.",
            "edit_reason": "added a pointer to support",
        },
    )


async def backdate_topic(conn: asyncpg.Connection, topic_id: int, hours_ago: int) -> None:
    """Move a topic's posts (and their reactions and revisions) to `hours_ago`, replies a few hours apart."""
    await conn.execute(BACKDATE_SQL, topic_id, hours_ago)
    await conn.execute(BACKDATE_REACTIONS_SQL, topic_id)
    await conn.execute(BACKDATE_REVISIONS_SQL, topic_id)
    await conn.execute(BACKDATE_TOPIC_SQL, topic_id)


async def seed_discussions(conn: asyncpg.Connection, people: dict[str, Session]) -> None:
    """The categories and topics, with replies, quotes, mentions, reactions and one edit."""
    category_ids = await create_categories(conn, people["ada"])
    for demo in TOPICS:
        topic_id = await _write_topic(conn, people, category_ids, demo)
        if demo.title == "What helped me feel safe in A&E":
            await _edit_example(conn, people, topic_id)
        await backdate_topic(conn, topic_id, demo.hours_ago)
