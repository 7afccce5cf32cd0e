"""The API of what members do to a writing: reactions on posts and document comments, and flags
on both (each under its old path and tag, so the OpenAPI document is unchanged).
"""

from __future__ import annotations

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum.moderation import screening
from services.forum.writings import flags, writings
from services.forum.writings.reactions import REACTION_KINDS
from services.forum.writings.targets import COMMENT, FLAG_REASONS, POST, Target
from shared.api import STATUS, ApiRouter, Field, Schema, Shape, path_int, writing
from shared.web import runtime

posts_api = ApiRouter(tag="posts")
documents_api = ApiRouter(tag="documents")
moderation_api = ApiRouter(tag="moderation")

REACTION_IN = Schema("ReactionIn", {"kind": Field("string", required=True, enum=REACTION_KINDS)})
COMMENT_REACTION_IN = Schema("DocumentCommentReactionIn", {"kind": Field("string", required=True, enum=REACTION_KINDS)})
FLAG_IN = Schema(
    "FlagIn",
    {
        "reason": Field("string", required=True, enum=FLAG_REASONS),
        "note": Field(
            "string", max_length=POST.note_max, nullable=True, description="required when the reason is other"
        ),
    },
)
COMMENT_FLAG_IN = Schema(
    "DocumentCommentFlagIn",
    {
        "reason": Field("string", required=True, enum=FLAG_REASONS),
        "note": Field("string", nullable=True, max_length=COMMENT.note_max),
    },
)
REACTIONS = Shape("Reactions", {"reactions": "object", "my_reactions": ["string"]})
REACTED = {201: ("Reaction given", REACTIONS), 200: ("Already given: nothing changed", REACTIONS)}
FLAG = Shape(
    "Flag",
    {
        "id": "integer",
        "post_id": "integer",
        "reason": "string",
        "note": "string?",
        "created_at": "datetime",
        "review_id": "integer",
        "message": "string",
    },
)


async def _react(request: Request, target: Target, schema: Schema) -> Response:
    writing_id = path_int(request, "id")
    async with writing(request, schema) as w:
        added, state = await writings.react(w.conn, w.who, target, writing_id, w.data["kind"])
    return JSONResponse(state, status_code=201 if added else 200)


async def _unreact(request: Request, target: Target) -> Response:
    writing_id = path_int(request, "id")
    kind = str(request.path_params.get("kind", ""))
    async with writing(request) as w:
        await writings.unreact(w.conn, w.who, target, writing_id, kind)
    return Response(status_code=204)


async def _flag(request: Request, target: Target, schema: Schema) -> tuple[asyncpg.Record, asyncpg.Record]:
    writing_id = path_int(request, "id")
    rules = screening.PostingRules.of(runtime(request))
    async with writing(request, schema) as w:
        return await flags.flag(w.conn, w.who, target, writing_id, w.data, rules)


@posts_api.post("/api/posts/{id}/reactions", body=REACTION_IN, answers=REACTED, auth=True)
async def add_reaction_endpoint(request: Request) -> Response:
    """React to a post: like, heart (thank you), hug (sending strength), lightbulb (insightful), clap (well said)."""
    return await _react(request, POST, REACTION_IN)


@posts_api.delete("/api/posts/{id}/reactions/{kind}", answers={204: "Reaction taken back"}, auth=True)
async def remove_reaction_endpoint(request: Request) -> Response:
    """Take back your reaction of one kind (404 when you had not given it)."""
    return await _unreact(request, POST)


@documents_api.post("/api/document-comments/{id:int}/reactions", body=COMMENT_REACTION_IN, answers=REACTED, auth=True)
async def add_comment_reaction_endpoint(request: Request) -> Response:
    """React to a comment: like, heart, hug, lightbulb or clap, as on posts."""
    return await _react(request, COMMENT, COMMENT_REACTION_IN)


@documents_api.delete(
    "/api/document-comments/{id:int}/reactions/{kind}", answers={204: "Reaction taken back"}, auth=True
)
async def remove_comment_reaction_endpoint(request: Request) -> Response:
    """Take back your reaction of one kind (404 when you had not given it)."""
    return await _unreact(request, COMMENT)


@moderation_api.post(
    "/api/posts/{id}/flags",
    body=FLAG_IN,
    answers={201: FLAG, 429: "Too many flags today"},
    auth=True,
)
async def flag_endpoint(request: Request) -> Response:
    """Flag a post for moderators: off_topic, inappropriate, spam, safeguarding, or other (with a note)."""
    flag, review = await _flag(request, POST, FLAG_IN)
    return JSONResponse(flags.flag_json(flag, review), status_code=201)


@documents_api.post(
    "/api/document-comments/{id:int}/flags",
    body=COMMENT_FLAG_IN,
    answers={201: ("Flagged: {status: flagged}", STATUS)},
    auth=True,
)
async def flag_comment_endpoint(request: Request) -> Response:
    """Flag a comment for the moderators (off_topic, inappropriate, spam, safeguarding, other)."""
    await _flag(request, COMMENT, COMMENT_FLAG_IN)
    return JSONResponse({"status": "flagged"}, status_code=201)
