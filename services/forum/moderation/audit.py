"""The audit log: every moderator and admin action (who, what, on what, why, and the state
before and after), kept append-only by a trigger that refuses UPDATE and DELETE; its staff API.

Moderators read the entries of moderation actions, admins every entry: the rule is
access.audit_action_visible, applied in SQL by every query here (access.AUDIT_VISIBLE_SQL).

Actions record themselves with `record_by(conn, who, ...)` in the transaction of the change, so an
action that rolls back leaves no entry, and an entry never describes something that did not happen.
Every audited action starts with access.require_staff or access.require_admin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from shared.api import ApiRouter, Field, Shape, page_of, query_choice, query_int
from shared.sessions import Session
from shared.web import ApiError, require_viewer, runtime

api = ApiRouter(tag="moderation")

ENTRIES_PER_PAGE = 50
TARGET_TYPES = (
    "post",
    "topic",
    "user",
    "reviewable",
    "watched_word",
    "safeguarding_phrase",
    "category",
    "setting",
    "invitation",
)
# Every action the forum records, for the filter on the admin page (kept in sync by a test).
ACTIONS = (
    "review.approve",
    "review.reject",
    "review.hide",
    "review.restore",
    "review.delete",
    "review.ignore",
    "review.outreach",
    "review.pick_up",
    "review.take_over",
    "review.put_down",
    "review.safeguarding_outcome",
    "post.hide",
    "post.restore",
    "post.edit",
    "post.delete",
    "post.reveal_author",
    "post.revision_redact",
    "topic.close",
    "topic.open",
    "topic.pin",
    "topic.unpin",
    "topic.move",
    "user.silence",
    "user.unsilence",
    "user.suspend",
    "user.unsuspend",
    "watched_word.add",
    "watched_word.remove",
    "safeguarding_phrase.add",
    "safeguarding_phrase.remove",
    "user.role_change",
    "user.safeguarding_lead",
    "signup.approve",
    "signup.decline",
    "invitation.send",
    "invitation.revoke",
    "category.create",
    "category.update",
    "category.archive",
    "category.unarchive",
    "category.delete",
    "category.reorder",
    "setting.change",
)

# What each action did, in words (after the name of who did it; "{thing}" is what it was done to,
# "{detail}" what the entry adds, such as a date). Every action in ACTIONS has words (a test checks).
WORDS = {
    "review.approve": "approved {thing}",
    "review.reject": "turned down {thing}, so it was not published",
    "review.hide": "hid {thing}",
    "review.restore": "restored {thing}",
    "review.delete": "deleted {thing}",
    "review.ignore": "looked at the flags on {thing} and left it as it was",
    "review.outreach": "reached out privately to the author of {thing}",
    "review.pick_up": "said they are looking at {thing}",
    "review.take_over": "took over {thing} from another moderator",
    "review.put_down": "stopped looking at {thing}",
    "review.safeguarding_outcome": "recorded what was done about {thing}{detail}",
    "post.hide": "hid {thing}",
    "post.restore": "restored {thing}",
    "post.edit": "edited {thing}",
    "post.delete": "deleted {thing}",
    "post.reveal_author": "looked up who wrote {thing}",
    "post.revision_redact": "removed an earlier version of {thing}{detail}",
    "topic.close": "closed {thing} to new replies",
    "topic.open": "opened {thing} to replies again",
    "topic.pin": "pinned {thing}",
    "topic.unpin": "unpinned {thing}",
    "topic.move": "moved {thing}{detail}",
    "user.silence": "silenced {thing}{detail}",
    "user.unsilence": "ended the silence of {thing}",
    "user.suspend": "suspended {thing}{detail}",
    "user.unsuspend": "ended the suspension of {thing}",
    "watched_word.add": "added {thing} to the watched words{detail}",
    "watched_word.remove": "took {thing} off the watched words",
    "safeguarding_phrase.add": "added {thing} to the safeguarding phrases",
    "safeguarding_phrase.remove": "took {thing} off the safeguarding phrases",
    "user.role_change": "changed the role of {thing}{detail}",
    "user.safeguarding_lead": "changed whether {thing} is a safeguarding lead{detail}",
    "signup.approve": "approved the sign-up of {thing}",
    "signup.decline": "turned down the sign-up of {thing}",
    "invitation.send": "sent {thing}",
    "invitation.revoke": "withdrew {thing}",
    "category.create": "created the category {thing}",
    "category.update": "changed the category {thing}",
    "category.archive": "archived the category {thing}",
    "category.unarchive": "brought back the category {thing}",
    "category.delete": "deleted the category {thing}",
    "category.reorder": "put {thing} in a new order",
    "setting.change": "changed the setting {thing}{detail}",
}
# A review's words depend on what the writing was before: "approve" keeps a visible post visible.
REVIEW_WORDS = {
    ("approve", "visible"): "kept {thing} visible",
    ("approve", "pending"): "approved {thing} and published it",
    ("approve", "rejected"): "approved {thing} and published it",
    ("approve", "hidden"): "restored {thing}",
    ("restore", "pending"): "approved {thing} and published it",
    ("restore", "rejected"): "approved {thing} and published it",
    ("reject", "visible"): "hid {thing}",
    ("reject", "hidden"): "kept {thing} hidden",
    ("hide", "hidden"): "kept {thing} hidden",
    ("reject", "rejected"): "kept {thing} unpublished",
    ("hide", "rejected"): "kept {thing} unpublished",
    ("hide", "pending"): "turned down {thing}, so it was not published",
}
# The filter's names for actions and targets (admin page).
ACTION_NAMES = {
    "review.approve": "Review: approved or kept visible",
    "review.reject": "Review: turned down",
    "review.hide": "Review: hidden or kept hidden",
    "review.restore": "Review: restored",
    "review.delete": "Review: deleted",
    "review.ignore": "Review: flags set aside",
    "review.outreach": "Review: reached out privately",
    "review.pick_up": "Review: picked up",
    "review.take_over": "Review: taken over",
    "review.put_down": "Review: put down",
    "review.safeguarding_outcome": "Review: what was done (safeguarding)",
    "post.hide": "Post hidden",
    "post.restore": "Post restored",
    "post.edit": "Post edited",
    "post.delete": "Post deleted",
    "post.reveal_author": "Anonymous author looked up",
    "post.revision_redact": "Earlier version of a post removed",
    "topic.close": "Topic closed",
    "topic.open": "Topic opened",
    "topic.pin": "Topic pinned",
    "topic.unpin": "Topic unpinned",
    "topic.move": "Topic moved",
    "user.silence": "Member silenced",
    "user.unsilence": "Silence ended",
    "user.suspend": "Member suspended",
    "user.unsuspend": "Suspension ended",
    "watched_word.add": "Watched word added",
    "watched_word.remove": "Watched word removed",
    "safeguarding_phrase.add": "Safeguarding phrase added",
    "safeguarding_phrase.remove": "Safeguarding phrase removed",
    "user.role_change": "Role changed",
    "user.safeguarding_lead": "Safeguarding lead duty changed",
    "signup.approve": "Sign-up approved",
    "signup.decline": "Sign-up turned down",
    "invitation.send": "Invitation sent",
    "invitation.revoke": "Invitation withdrawn",
    "category.create": "Category created",
    "category.update": "Category changed",
    "category.archive": "Category archived",
    "category.unarchive": "Category brought back",
    "category.delete": "Category deleted",
    "category.reorder": "Categories reordered",
    "setting.change": "Setting changed",
}
TARGET_NAMES = {
    "post": "A post",
    "topic": "A topic",
    "user": "A member",
    "reviewable": "A review item",
    "watched_word": "A watched word",
    "safeguarding_phrase": "A safeguarding phrase",
    "category": "A category",
    "setting": "A setting",
    "invitation": "An invitation",
}


# --- writing ---------------------------------------------------------------------------------

INSERT_SQL = """
INSERT INTO forum.audit_log (actor_id, action, target_type, target_id, reason, before, after)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""


async def record(
    conn: asyncpg.Connection,
    *,
    actor_id: int,
    action: str,
    target_type: str,
    target_id: int | None,
    reason: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> int:
    """Append one entry, in the caller's transaction; returns its id."""
    assert action in ACTIONS, action
    assert target_type in TARGET_TYPES, target_type
    entry_id: int = await conn.fetchval(
        INSERT_SQL, actor_id, action, target_type, target_id, reason, _plain(before), _plain(after)
    )
    return entry_id


# An action's target type is its noun ("post.hide": a post), except where this names another.
_TARGET_TYPE_OF = {"review": "reviewable", "signup": "user"}


async def record_by(
    conn: asyncpg.Connection,
    who: Session,
    action: str,
    target_id: int | None,
    *,
    reason: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> int:
    """Append the entry for an action `who` took, in the caller's transaction; returns its id."""
    noun = action.split(".", 1)[0]
    return await record(
        conn,
        actor_id=who.user_id,
        action=action,
        target_type=_TARGET_TYPE_OF.get(noun, noun),
        target_id=target_id,
        reason=reason,
        before=before,
        after=after,
    )


async def changed(
    conn: asyncpg.Connection,
    who: Session,
    action: str,
    target_id: int,
    name: str,
    old: Any,
    new: Any,
    *,
    reason: str | None = None,
) -> int:
    """Append the entry for an action `who` took that changed one field of its target from `old` to `new`."""
    return await record_by(conn, who, action, target_id, reason=reason, before={name: old}, after={name: new})


def _plain(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A state as JSON can keep it: times as ISO 8601 text."""
    if state is None:
        return None
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in state.items()}


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    """Which entries a list shows: ?actor=&action=&target_type=&target_id=&since=&until=&page=."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: int | None = None
    since: date | None = None
    until: date | None = None
    page: int = 1


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def query_date(request: Request, name: str) -> date | None:
    """A date query parameter (YYYY-MM-DD), None when absent; 400 when it is not a date."""
    raw = request.query_params.get(name) or None
    if raw is None:
        return None
    try:
        if not _DATE.fullmatch(raw):  # only the form the API documents (fromisoformat takes others too)
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400, "bad_request", f"?{name} must be a date like 2025-03-04.", {name: "must be a date (YYYY-MM-DD)"}
        ) from None


def parse_audit_query(request: Request) -> AuditQuery:
    """The filters of a request; 400 for a value that cannot be one."""
    params = request.query_params
    action = query_choice(request, "action", ACTIONS, message="?action is not an action the log records.")
    target_type = query_choice(request, "target_type", TARGET_TYPES)
    actor = (params.get("actor") or "").strip().lstrip("@") or None
    if actor is not None and len(actor) > 100:
        raise ApiError(400, "bad_request", "?actor is too long.", {"actor": "is too long"})
    target_id = (
        query_int(request, "target_id", 0, minimum=1, maximum=access.MAX_ID) if params.get("target_id") else None
    )
    since, until = query_date(request, "since"), query_date(request, "until")
    if since and until and since > until:
        raise ApiError(400, "bad_request", "?since must not be after ?until.", {"since": "is after until"})
    return AuditQuery(actor, action, target_type, target_id, since, until, query_int(request, "page", 1))


_VISIBLE = access.AUDIT_VISIBLE_SQL.format(admin="$1", staff="$2")


def _unredacted_sql(side: str) -> str:
    """An entry's `before` or `after`, without the post's text when it is a post.edit whose version
    that was has since been redacted (topics/revisions.py): that text is for admins ($1) alone."""
    return f"""CASE WHEN NOT $1::boolean AND a.action = 'post.edit' AND EXISTS (
        SELECT 1 FROM forum.post_revisions r WHERE r.post_id = a.target_id AND r.redacted_at IS NOT NULL
          AND r.revision::text = a.{side}->>'revision')
    THEN a.{side} - 'raw' - 'content_note' ELSE a.{side} END AS {side}"""


_STATES = f"{_unredacted_sql('before')}, {_unredacted_sql('after')}"

LIST_SQL = f"""
SELECT a.id, a.at, a.action, a.target_type, a.target_id, a.reason, {_STATES},
       a.actor_id, u.username, u.display_name
FROM forum.audit_log a JOIN forum.users u ON u.id = a.actor_id
WHERE {_VISIBLE}
  AND ($3::text IS NULL OR lower(u.username) = lower($3))
  AND ($4::text IS NULL OR a.action = $4)
  AND ($5::text IS NULL OR a.target_type = $5)
  AND ($6::bigint IS NULL OR a.target_id = $6)
  AND ($7::timestamptz IS NULL OR a.at >= $7)
  AND ($8::timestamptz IS NULL OR a.at < $8)
ORDER BY a.id DESC
LIMIT $9 OFFSET $10
"""


def _start_of(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=UTC) if day else None


def visible_actions(who: Session | None) -> list[str]:
    """The actions whose entries the viewer may see (the filter offers only these)."""
    return [action for action in ACTIONS if access.audit_action_visible(who, action)]


def visible_target_types(who: Session | None) -> list[str]:
    """What the entries the viewer may see can be about."""
    found = {_TARGET_TYPE_OF.get(noun, noun) for noun in (a.split(".", 1)[0] for a in visible_actions(who))}
    return [kind for kind in TARGET_TYPES if kind in found]


async def list_entries(conn: asyncpg.Connection, who: Session, query: AuditQuery) -> tuple[list[asyncpg.Record], bool]:
    """One page of the entries the viewer may see, newest first, and whether another page follows.

    A filter for an action the viewer may not see finds nothing (not an error: the log does not
    say what it holds for others)."""
    rows = await conn.fetch(
        LIST_SQL,
        *access.audit_sql_params(who),
        query.actor,
        query.action,
        query.target_type,
        query.target_id,
        _start_of(query.since),
        _start_of(query.until + timedelta(days=1)) if query.until else None,  # `until` includes its day
        ENTRIES_PER_PAGE + 1,
        (query.page - 1) * ENTRIES_PER_PAGE,
    )
    return list(rows[:ENTRIES_PER_PAGE]), len(rows) > ENTRIES_PER_PAGE


TARGET_SQL = f"""
SELECT a.id, a.at, a.action, a.target_type, a.target_id, a.reason, {_STATES},
       a.actor_id, u.username, u.display_name
FROM forum.audit_log a JOIN forum.users u ON u.id = a.actor_id
WHERE {_VISIBLE}
  AND ((a.target_type = 'user' AND a.target_id = $3)
   OR (a.target_type = 'post' AND a.target_id IN (SELECT id FROM forum.posts WHERE author_id = $3))
   OR (a.target_type = 'reviewable' AND a.target_id IN (SELECT id FROM forum.reviewables WHERE author_id = $3)))
ORDER BY a.id DESC
LIMIT $4
"""


async def entries_about_member(
    conn: asyncpg.Connection, who: Session, user_id: int, limit: int = 50
) -> list[asyncpg.Record]:
    """The latest entries about a member that `who` may see: their account, their posts and their
    reviewables."""
    params = access.audit_sql_params(who)
    return list(await conn.fetch(TARGET_SQL, *params, user_id, limit))


ACCOUNT_SQL = f"""
SELECT a.id, a.at, a.action, a.target_type, a.target_id, a.reason, a.before, a.after,
       a.actor_id, u.username, u.display_name
FROM forum.audit_log a JOIN forum.users u ON u.id = a.actor_id
WHERE {_VISIBLE} AND a.target_type = 'user' AND a.target_id = $3 AND a.action = ANY($4::text[])
ORDER BY a.id DESC
LIMIT $5
"""


async def account_entries(
    conn: asyncpg.Connection, who: Session, user_id: int, actions: list[str], limit: int = 100
) -> list[asyncpg.Record]:
    """The latest entries of these actions about a member's account that the viewer may see
    (their sanctions, their role changes), newest first."""
    return list(await conn.fetch(ACCOUNT_SQL, *access.audit_sql_params(who), user_id, actions, limit))


LATEST_BY_SQL = """
SELECT a.id, a.at, a.action, a.target_type, a.target_id, a.reason, a.before, a.after,
       a.actor_id, u.username, u.display_name
FROM forum.audit_log a JOIN forum.users u ON u.id = a.actor_id
WHERE a.actor_id = $1 AND a.action = $2
ORDER BY a.id DESC
LIMIT 1
"""


async def latest_by(conn: asyncpg.Connection, actor_id: int, action: str) -> asyncpg.Record | None:
    """The newest entry of this action by this person (what a confirmation describes)."""
    row: asyncpg.Record | None = await conn.fetchrow(LATEST_BY_SQL, actor_id, action)
    return row


def entry_json(row: asyncpg.Record) -> dict[str, Any]:
    """The public shape of an entry (staff only, each entry as access.audit_action_visible allows)."""
    return {
        "id": row["id"],
        "at": row["at"].isoformat(),
        "actor": {"id": row["actor_id"], "username": row["username"], "display_name": row["display_name"]},
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "reason": row["reason"],
        "before": row["before"],
        "after": row["after"],
    }


# --- endpoints ---------------------------------------------------------------------------------


ENTRY = Shape(
    "AuditEntry",
    {
        "id": "integer",
        "at": "datetime",
        "actor": {"id": "integer", "username": "string", "display_name": "string"},
        "action": "string",
        "target_type": "string",
        "target_id": "integer?",
        "reason": "string?",
        "before": "any",
        "after": "any",
    },
)


@api.get(
    "/api/admin/audit-log",
    answers={200: ("Entries, newest first", page_of(ENTRY))},
    auth=True,
    query={
        "actor": Field("string", max_length=100, description="username of who acted"),
        "action": Field(
            "string",
            enum=tuple(ACTIONS),
            description="e.g. review.approve, user.suspend (an action the viewer may not see finds nothing)",
        ),
        "target_type": Field("string", enum=tuple(TARGET_TYPES)),
        "target_id": Field("integer", minimum=1, maximum=access.MAX_ID, description="id of the target"),
        "since": Field(
            "string", pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD (from the start of that day, UTC)"
        ),
        "until": Field(
            "string", pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD (to the end of that day, UTC)"
        ),
        "page": Field("integer", minimum=1, maximum=10_000, description=f"1-based page of {ENTRIES_PER_PAGE}"),
    },
)
async def audit_log_endpoint(request: Request) -> Response:
    """The audit log (moderators: moderation actions; admins: every action), newest first, with filters."""
    who = await require_viewer(request)
    access.require_staff(who, "Only moderators and admins can read the audit log.")
    query = parse_audit_query(request)
    async with runtime(request).pool.acquire() as conn:
        rows, has_next = await list_entries(conn, who, query)
    return JSONResponse({"items": [entry_json(r) for r in rows], "next": query.page + 1 if has_next else None})
