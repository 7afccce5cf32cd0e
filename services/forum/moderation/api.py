"""The moderation API: the review queue and actions on it, moving on a post directly, appeals,
sanctions, a member's record for moderators, watched words, safeguarding phrases and support.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.moderation import moderation, safeguarding, screening
from services.forum.topics import posts
from services.forum.topics.api import AUTHOR, POST, SUPPORT, author_badges, post_json
from services.forum.writings.reviews import REVIEW_KINDS
from shared.api import ApiRouter, Field, Maybe, Schema, Shape, page_of, path_int, writing
from shared.sessions import Session
from shared.web import ApiError, require_viewer, runtime

api = ApiRouter(tag="moderation")

REASON_MAX = 500
APPEAL_MAX = 2000
REVIEW_ACTION_IN = Schema(
    "ReviewAction",
    {
        "action": Field("string", required=True, enum=moderation.ACTIONS),
        "reason": Field(
            "string", max_length=REASON_MAX, nullable=True, description="required for reject, hide, delete"
        ),
        "outcome": Field(
            "string",
            enum=tuple(safeguarding.OUTCOMES),
            nullable=True,
            description="what was done: required for safeguarding items",
        ),
        "note": Field(
            "string",
            max_length=safeguarding.NOTE_MAX,
            nullable=True,
            description="a few words on what was done, for staff: required for safeguarding items",
        ),
    },
)
PICKUP_IN = Schema(
    "PickUpIn",
    {"take_over": Field("boolean", description="take the item over from the moderator looking at it")},
)
POST_ACTION_IN = Schema("PostModeration", {"reason": Field("string", max_length=REASON_MAX, nullable=True)})
APPEAL_IN = Schema("AppealIn", {"text": Field("string", required=True, min_length=1, max_length=APPEAL_MAX)})
SANCTION_IN = Schema(
    "SanctionIn",
    {
        "until": Field("string", required=True, max_length=40, description="ISO 8601 time (or date), in the future"),
        "reason": Field("string", required=True, min_length=1, max_length=REASON_MAX, description="the member sees it"),
    },
)


PICKED_UP = Shape("PickedUp", {"by": AUTHOR, "at": "datetime"})
SAFEGUARDING_PART = Shape(
    "SafeguardingPart",
    {
        "alert_round": "integer",
        "alerted_at": "datetime?",
        "picked_up": Maybe(PICKED_UP),
        "outcome": "string?",
        "outcome_label": "string?",
        "outcome_note": "string?",
    },
)
REVIEW_COUNTS = Shape("ReviewCounts", {"waiting": "integer", "safeguarding": "integer"})
REVIEWABLE = Shape(
    "Reviewable",
    {
        "id": "integer",
        "kind": "string",
        "kind_label": "string",
        "status": "string",
        "score": "integer",
        "priority": "integer",
        "reasons": ["string"],
        "appeal_text": "string?",
        "created_at": "datetime",
        "updated_at": "datetime",
        "post": "object",
        "topic": "object?",
        "author": "object",
        "flags": ["object"],
        "context": ["object"],
        "resolution": "object?",
        "actions": ["string"],
        "comment?": "object",
        "document?": "object",
        "safeguarding": Maybe(SAFEGUARDING_PART),
    },
)
APPEAL = Shape(
    "Appeal",
    {
        "id": "integer",
        "status": "string",
        "text": "string",
        "decision": "string?",
        "reason": "string?",
        "created_at": "datetime",
        "decided_at": "datetime?",
    },
)
STANDING = Shape(
    "Standing",
    {
        "user_id": "integer",
        "username": "string",
        "suspended_until": "datetime?",
        "suspended_reason": "string?",
        "silenced_until": "datetime?",
        "silenced_reason": "string?",
    },
)
MEMBER_RECORD = Shape(
    "MemberRecord",
    {
        "user": {
            "id": "integer",
            "username": "string",
            "display_name": "string",
            "roles": ["string"],
            "created_at": "datetime",
        },
        "standing": STANDING,
        "counts": "object",
        "reviews": [REVIEWABLE],
        "audit": ["object"],
    },
)
REVEALED = Shape("RevealedAuthor", {"post_id": "integer", "author": AUTHOR, "message": "string"})
WATCHED_WORD = Shape("WatchedWord", {"id": "integer", "word": "string", "action": "string", "created_at": "datetime"})
PHRASE = Shape("SafeguardingPhrase", {"phrase": "string", "builtin": "boolean", "active": "boolean"})


# --- the queue, posts, appeals, sanctions ---------------------------------------------------------


async def _staff_reader(request: Request) -> Session:
    who = await require_viewer(request)
    access.require_staff(who)
    return who


@api.get(
    "/api/review",
    answers={200: ("Pending first, safeguarding first", page_of(REVIEWABLE))},
    auth=True,
    query={
        "status": Field(
            "string",
            enum=(*moderation.REVIEW_STATUSES, "all"),
            description="pending (default), approved, rejected, ignored, deleted or all",
        ),
        "kind": Field("string", enum=REVIEW_KINDS),
        "page": Field(
            "integer", minimum=1, maximum=10_000, description=f"1-based page of {moderation.REVIEWS_PER_PAGE}"
        ),
    },
)
async def review_queue_endpoint(request: Request) -> Response:
    """The review queue (moderators): pending items by priority (safeguarding first), score, then age."""
    who = await _staff_reader(request)
    query = moderation.parse_review_query(request)
    async with runtime(request).pool.acquire() as conn:
        items, has_next = await moderation.list_reviews(conn, who, query)
    return JSONResponse({"items": items, "next": query.page + 1 if has_next else None})


@api.get(
    "/api/review/counts", answers={200: ("Items waiting, and how many about safeguarding", REVIEW_COUNTS)}, auth=True
)
async def review_counts_endpoint(request: Request) -> Response:
    """How many items wait in the review queue, and how many of them are about safeguarding (moderators):
    the header's count."""
    who = await _staff_reader(request)
    async with runtime(request).pool.acquire() as conn:
        found = await safeguarding.counts(conn, who)
    return JSONResponse(found)


@api.get("/api/review/{id:int}", answers={200: REVIEWABLE}, auth=True)
async def review_item_endpoint(request: Request) -> Response:
    """One item of the review queue (moderators)."""
    review_id = path_int(request, "id")
    who = await _staff_reader(request)
    async with runtime(request).pool.acquire() as conn:
        item = await moderation.get_review(conn, who, review_id)
    return JSONResponse(item)


@api.post(
    "/api/review/{id:int}",
    body=REVIEW_ACTION_IN,
    answers={200: REVIEWABLE, 409: "Another moderator acted first", 422: "Action not possible, or reason missing"},
    auth=True,
)
async def review_action_endpoint(request: Request) -> Response:
    """Act on an item (moderators): approve, reject, hide, restore, delete or ignore; reason for reject/hide/delete."""
    review_id = path_int(request, "id")
    async with writing(request, REVIEW_ACTION_IN, allowed=access.require_staff) as w:
        await moderation.act(
            w.conn,
            w.who,
            review_id,
            w.data["action"],
            w.data.get("reason"),
            outcome=w.data.get("outcome"),
            note=w.data.get("note"),
        )
        item = await moderation.get_review(w.conn, w.who, review_id)
    return JSONResponse(item)


@api.post(
    "/api/review/{id:int}/pickup",
    body=PICKUP_IN,
    answers={
        200: ("The item, with who is looking at it", REVIEWABLE),
        409: "Someone else is looking at it (take_over to take it over), it was dealt with, or not safeguarding",
    },
    auth=True,
)
async def pick_up_endpoint(request: Request) -> Response:
    """Say "I'm looking at this" on a safeguarding item, or take it over from another moderator (moderators)."""
    review_id = path_int(request, "id")
    async with writing(request, PICKUP_IN, allowed=access.require_staff) as w:
        await safeguarding.pick_up(w.conn, w.who, review_id, take_over=bool(w.data.get("take_over")))
        item = await moderation.get_review(w.conn, w.who, review_id)
    return JSONResponse(item)


@api.delete(
    "/api/review/{id:int}/pickup",
    answers={200: REVIEWABLE, 409: "You are not the one looking at it, or it was dealt with"},
    auth=True,
)
async def put_down_endpoint(request: Request) -> Response:
    """Stop looking at a safeguarding item you picked up; it alerts again if nobody picks it up (moderators)."""
    review_id = path_int(request, "id")
    async with writing(request, allowed=access.require_staff) as w:
        await safeguarding.put_down(w.conn, w.who, review_id)
        item = await moderation.get_review(w.conn, w.who, review_id)
    return JSONResponse(item)


@api.post("/api/posts/{id}/hide", body=POST_ACTION_IN, answers={200: POST}, auth=True)
async def hide_endpoint(request: Request) -> Response:
    """Hide a post (moderators), with a reason its author sees."""
    return await _moderate_post(request, "hide")


@api.post("/api/posts/{id}/restore", body=POST_ACTION_IN, answers={200: POST}, auth=True)
async def restore_endpoint(request: Request) -> Response:
    """Show a hidden post again (moderators)."""
    return await _moderate_post(request, "restore")


async def _moderate_post(request: Request, action: str) -> Response:
    post_id = path_int(request, "id")
    async with writing(request, POST_ACTION_IN, allowed=access.require_staff) as w:
        await moderation.moderate_post(w.conn, w.who, post_id, action, w.data.get("reason"))
        post, _ = await posts.readable_post(w.conn, w.who, post_id)
        badges = await author_badges(w.conn, [post])
    return JSONResponse(post_json(post, w.who, (), badges))


@api.post("/api/posts/{id}/reveal-author", answers={200: REVEALED}, auth=True)
async def reveal_endpoint(request: Request) -> Response:
    """Who wrote a pseudonymous post (moderators); every reveal is recorded in the audit log."""
    post_id = path_int(request, "id")
    async with writing(request, allowed=access.require_staff) as w:
        revealed = await moderation.reveal_author(w.conn, w.who, post_id)
    return JSONResponse(revealed)


@api.post("/api/posts/{id}/appeal", body=APPEAL_IN, answers={201: APPEAL}, auth=True)
async def appeal_endpoint(request: Request) -> Response:
    """Appeal about your hidden or rejected post, once, in your own words."""
    post_id = path_int(request, "id")
    async with writing(request, APPEAL_IN) as w:
        row = await moderation.appeal(w.conn, w.who, post_id, w.data["text"])
    return JSONResponse(moderation.appeal_json(row), status_code=201)


@api.get("/api/posts/{id}/appeal", answers={200: APPEAL}, auth=True)
async def get_appeal_endpoint(request: Request) -> Response:
    """The appeal about a post: for its author and moderators only."""
    post_id = path_int(request, "id")
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        row = await moderation.my_appeal(conn, who, post_id)
    return JSONResponse(moderation.appeal_json(row))


async def _sanction(request: Request, kind: str) -> Response:
    user_id = path_int(request, "id")
    lifting = request.method == "DELETE"
    rt = runtime(request)
    async with writing(request, None if lifting else SANCTION_IN, allowed=access.require_staff) as w:
        if lifting:
            row = await moderation.lift(w.conn, w.who, user_id, kind)
        else:
            row = await moderation.sanction(rt, w.conn, w.who, user_id, kind, w.data)
    if kind == "suspended" and not lifting:
        await rt.sessions.delete_all(user_id)  # again after commit: a login that raced the change ends too
    return JSONResponse(moderation.standing_json(row))


@api.post("/api/users/{id}/suspend", body=SANCTION_IN, answers={200: STANDING}, auth=True)
async def suspend_endpoint(request: Request) -> Response:
    """Suspend a member until a time, with a reason they see; their sessions and API tokens end now (moderators)."""
    return await _sanction(request, "suspended")


@api.delete("/api/users/{id}/suspend", answers={200: STANDING}, auth=True)
async def unsuspend_endpoint(request: Request) -> Response:
    """End a suspension early (moderators)."""
    return await _sanction(request, "suspended")


@api.post("/api/users/{id}/silence", body=SANCTION_IN, answers={200: STANDING}, auth=True)
async def silence_endpoint(request: Request) -> Response:
    """Silence a member until a time: they can read but not post (moderators)."""
    return await _sanction(request, "silenced")


@api.delete("/api/users/{id}/silence", answers={200: STANDING}, auth=True)
async def unsilence_endpoint(request: Request) -> Response:
    """End a silence early (moderators)."""
    return await _sanction(request, "silenced")


@api.get("/api/users/{id}/moderation", answers={200: MEMBER_RECORD}, auth=True)
async def member_record_endpoint(request: Request) -> Response:
    """A member as moderators see them: standing, counts, review items and audit entries (moderators)."""
    user_id = path_int(request, "id")
    who = await _staff_reader(request)
    async with runtime(request).pool.acquire() as conn:
        record = await moderation.member_record(conn, who, user_id)
    return JSONResponse(record)


# --- screening: watched words, safeguarding phrases, support --------------------------------------

WORD_IN = Schema(
    "WatchedWordIn",
    {
        "word": Field(
            "string", required=True, max_length=screening.WORD_MAX, description="a word or phrase; * matches any ending"
        ),
        "action": Field("string", required=True, enum=screening.WORD_ACTIONS),
    },
)
PHRASE_IN = Schema("SafeguardingPhraseIn", {"phrase": Field("string", required=True, max_length=screening.WORD_MAX)})


def word_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id"], "word": row["word"], "action": row["action"], "created_at": row["created_at"].isoformat()}


def phrase_json(phrase: screening.Phrase) -> dict[str, Any]:
    return {"phrase": phrase.phrase, "builtin": phrase.builtin, "active": phrase.active}


@api.get("/api/support", answers={200: ("Where to find support now", SUPPORT)})
async def support_endpoint(request: Request) -> Response:
    """Where to find support now (Samaritans, Shout, NHS 111 option 2, 999): the "Get support" content."""
    return JSONResponse(screening.SUPPORT)


@api.get("/api/admin/watched-words", answers={200: page_of(WATCHED_WORD)}, auth=True)
async def list_words_endpoint(request: Request) -> Response:
    """Watched words and their actions (admins)."""
    access.require_admin(await require_viewer(request))
    async with runtime(request).pool.acquire() as conn:
        rows = await screening.watched_words(conn)
    return JSONResponse({"items": [word_json(r) for r in rows], "next": None})


@api.post("/api/admin/watched-words", body=WORD_IN, answers={201: WATCHED_WORD}, auth=True)
async def add_word_endpoint(request: Request) -> Response:
    """Watch for a word or phrase: block, require_approval, censor or flag (admins)."""
    async with writing(request, WORD_IN, allowed=access.require_admin) as w:
        row = await screening.add_watched_word(w.conn, w.who, w.data["word"], w.data["action"])
    return JSONResponse(word_json(row), status_code=201)


@api.delete("/api/admin/watched-words/{id}", answers={204: "No longer watched"}, auth=True)
async def remove_word_endpoint(request: Request) -> Response:
    """Stop watching a word (admins)."""
    word_id = path_int(request, "id")
    async with writing(request, allowed=access.require_admin) as w:
        await screening.remove_watched_word(w.conn, w.who, word_id)
    return Response(status_code=204)


@api.get("/api/admin/safeguarding-phrases", answers={200: page_of(PHRASE)}, auth=True)
async def list_phrases_endpoint(request: Request) -> Response:
    """Safeguarding phrases: the built-in ones (and whether they are on) and admins' own (admins)."""
    access.require_admin(await require_viewer(request))
    async with runtime(request).pool.acquire() as conn:
        phrases = await screening.safeguarding_phrases(conn)
    return JSONResponse({"items": [phrase_json(p) for p in phrases], "next": None})


@api.post("/api/admin/safeguarding-phrases", body=PHRASE_IN, answers={201: PHRASE}, auth=True)
async def add_phrase_endpoint(request: Request) -> Response:
    """Add a safeguarding phrase, or switch a built-in one back on (admins)."""
    async with writing(request, PHRASE_IN, allowed=access.require_admin) as w:
        phrase = await screening.set_safeguarding_phrase(w.conn, w.who, w.data["phrase"], active=True)
    return JSONResponse(phrase_json(phrase), status_code=201)


@api.delete("/api/admin/safeguarding-phrases/{phrase}", answers={204: "Removed"}, auth=True)
async def remove_phrase_endpoint(request: Request) -> Response:
    """Remove a safeguarding phrase, or switch a built-in one off (admins); the phrase URL-encoded."""
    phrase = unquote(str(request.path_params.get("phrase", "")))
    async with writing(request, allowed=access.require_admin) as w:
        try:
            await screening.set_safeguarding_phrase(w.conn, w.who, phrase, active=False)
        except ApiError as exc:
            if exc.status == 422:  # a path that cannot name a phrase names none
                raise ApiError(404, "not_found", "That phrase is not on the list.") from None
            raise
    return Response(status_code=204)
