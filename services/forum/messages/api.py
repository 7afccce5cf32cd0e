"""The JSON API of private messages: conversations, messages, who may message a member, blocks.

Rules and SQL: conversations.py and consent.py; who may see or do what: access.py ("private messages").
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.forum import access
from services.forum.messages import consent, conversations
from services.forum.messages.conversations import Conversation
from services.forum.moderation import screening
from services.forum.topics.api import SUPPORT
from services.forum.writings import flags, reactions, writings
from services.forum.writings.targets import FLAG_REASONS, MESSAGE
from shared.api import ApiRouter, Field, Maybe, Schema, Shape, page_of, path_int, writing
from shared.sessions import Session
from shared.web import ApiError, require_viewer, runtime

api = ApiRouter(tag="messages")

PERSON = Shape("ConversationPerson", {"id": "integer", "username": "string", "display_name": "string"})
AUTHOR = Shape(
    "MessageAuthor",
    {"id": "integer?", "username": "string?", "display_name": "string", "sent_by?": "string"},
)
LAST = Shape("ConversationLastMessage", {"author": AUTHOR, "excerpt": "string"})
SUMMARY = Shape(
    "ConversationSummary",
    {
        "id": "integer",
        "title": "string",
        "with_moderators": "boolean",
        "my_state": "string?",
        "unread": "boolean",
        "members": [PERSON],
        "invited": [PERSON],
        "message_count": "integer",
        "last_message_at": "datetime",
        "last_message": Maybe(LAST),
        "created_at": "datetime",
        "url": "string",
    },
)
INBOX = page_of(SUMMARY, "Inbox", next_type="string?").extend("Inbox", {"unread_count?": "integer"})
CONVERSATION = Shape(
    "Conversation",
    {
        "id": "integer",
        "title": "string",
        "with_moderators": "boolean",
        "my_state": "string?",
        "members": [PERSON],
        "invited": [PERSON],
        "message_count": "integer",
        "last_read_message_id": "integer",
        "created_at": "datetime",
        "last_message_at": "datetime",
        "review_id": "integer?",
        "may_write": "boolean",
        "may_invite": "boolean",
        "url": "string",
    },
)
MESSAGE_SHAPE = Shape(
    "Message",
    {
        "id": "integer",
        "conversation_id": "integer",
        "author": AUTHOR,
        "from_moderators": "boolean",
        "raw": "string?",
        "cooked": "string?",
        "status": "string",
        "moderation_reason": "string?",
        "reactions": "object",
        "my_reactions": ["string"],
        "mine": "boolean",
        "created_at": "datetime",
        "url": "string",
    },
)
MESSAGES = page_of(MESSAGE_SHAPE, "MessageList")
SENT = MESSAGE_SHAPE.extend("SentMessage", {"support?": SUPPORT})
STARTED = CONVERSATION.extend("StartedConversation", {"message": MESSAGE_SHAPE, "support?": SUPPORT})
READ_MARK = Shape("ReadMark", {"last_read_message_id": "integer"})
MESSAGING = Shape("Messaging", {"who_may_message": "string"})
BLOCK = Shape("Block", {"user": PERSON, "created_at": "datetime"})
BLOCKED = Shape("Blocked", {"status": "string"})
BLOCKS = Shape("BlockList", {"items": [BLOCK], "next": "integer?"})
REPORT = Shape("MessageReport", {"id": "integer", "message_id": "integer", "reason": "string", "message": "string"})
REACTIONS = Shape("MessageReactions", {"reactions": "object", "my_reactions": ["string"]})

START_IN = Schema(
    "ConversationIn",
    {
        "recipients": Field("array", items="string", max_length=100, description="usernames (not with to_moderators)"),
        "to_moderators": Field("boolean", description="write to the moderators' shared inbox"),
        "title": Field("string", required=True, max_length=conversations.TITLE_MAX),
        "text": Field("string", required=True, max_length=conversations.TEXT_MAX, strip=False),
    },
)
TEXT_IN = Schema("MessageIn", {"text": Field("string", required=True, max_length=conversations.TEXT_MAX, strip=False)})
READ_IN = Schema("ConversationReadIn", {"message_id": Field("integer", required=True, minimum=1)})
INVITE_IN = Schema("ConversationInvitationIn", {"username": Field("string", required=True, max_length=100)})
REPORT_IN = Schema(
    "MessageReportIn",
    {
        "reason": Field("string", required=True, enum=FLAG_REASONS),
        "note": Field("string", nullable=True, max_length=MESSAGE.note_max, description="needed when reason is other"),
    },
)
MESSAGING_IN = Schema("MessagingIn", {"who_may_message": Field("string", required=True, enum=access.WHO_MAY_MESSAGE)})
CURSOR = Field("string", max_length=100, description="the `next` of the page before")


def _support(sent: conversations.Sent) -> dict[str, Any]:
    if not sent.crisis:
        return {}
    panel = screening.support_panel()
    panel["post_note"] = (
        "Your message has been sent. A moderator may get in touch to see how you are; you choose whether to reply."
    )
    return {"support": panel}


async def _message_out(
    conn: asyncpg.Connection, who: Session, conversation: Conversation, row: asyncpg.Record
) -> dict[str, Any]:
    row = await conn.fetchrow(conversations.MESSAGE_SQL, row["id"])
    mine = await reactions.my_reactions(conn, who, MESSAGE, [row["id"]])
    return conversations.message_json(row, who, conversation, mine)


async def _conversation_out(conn: asyncpg.Connection, who: Session, conversation: Conversation) -> dict[str, Any]:
    people = await conversations.people(conn, conversation.id)
    return conversations.conversation_json(conversation, people, who)


def _inbox_out(
    rows: list[asyncpg.Record], people: dict[int, list[asyncpg.Record]], nxt: str | None, who: Session
) -> dict[str, Any]:
    return {"items": [conversations.summary_json(r, people[r["id"]], who) for r in rows], "next": nxt}


# --- conversations -------------------------------------------------------------------------------------


@api.get("/api/conversations", answers={200: INBOX}, auth=True, query={"cursor": CURSOR})
async def conversations_inbox_endpoint(request: Request) -> Response:
    """Your conversations, most recent first (invitations too), with how many have something new."""
    who = await require_viewer(request)
    cursor = request.query_params.get("cursor")
    async with runtime(request).pool.acquire() as conn:
        rows, people, nxt = await conversations.inbox(conn, who, cursor)
        body = _inbox_out(rows, people, nxt, who)
        body["unread_count"] = await conversations.unread_count(conn, who)
    return JSONResponse(body)


@api.get("/api/conversations/moderators", answers={200: INBOX, 404: "Not staff"}, auth=True, query={"cursor": CURSOR})
async def conversations_moderators_inbox_endpoint(request: Request) -> Response:
    """The moderators' shared inbox (staff): every conversation with the moderators, most recent first."""
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        rows, people, nxt = await conversations.moderators_inbox(conn, who, request.query_params.get("cursor"))
    return JSONResponse(_inbox_out(rows, people, nxt, who))


@api.post(
    "/api/conversations",
    body=START_IN,
    answers={201: STARTED, 403: "That member is not taking new messages", 429: "Too many new conversations"},
    auth=True,
)
async def start_conversation_endpoint(request: Request) -> Response:
    """Start a conversation with members (`recipients`) or with the moderators (`to_moderators`)."""
    rules = screening.PostingRules.of(runtime(request))
    async with writing(request, START_IN) as w:
        sent = await conversations.start(w.conn, w.who, w.data, rules)
        conversation = await conversations.readable(w.conn, w.who, sent.conversation_id)
        body = await _conversation_out(w.conn, w.who, conversation)
        body["message"] = await _message_out(w.conn, w.who, conversation, sent.message)
    return JSONResponse({**body, **_support(sent)}, status_code=201)


@api.get("/api/conversations/{id:int}", answers={200: CONVERSATION}, auth=True)
async def get_conversation_endpoint(request: Request) -> Response:
    """One conversation you are in (or were in, or are invited to); 404 for anyone else."""
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        conversation = await conversations.find(conn, who, path_int(request, "id"))
        return JSONResponse(await _conversation_out(conn, who, conversation))


def _message_id_query(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or not 0 < int(value) < access.MAX_ID:
        raise ApiError(400, "bad_query", f"?{name} must be a message id.", {name: "must be a message id"})
    return int(value)


@api.get(
    "/api/conversations/{id:int}/messages",
    answers={200: MESSAGES},
    auth=True,
    query={
        "after": Field("integer", minimum=1, description="messages after this one, oldest first"),
        "before": Field("integer", minimum=1, description="the newest messages before this one"),
    },
)
async def conversation_messages_endpoint(request: Request) -> Response:
    """Messages you may read, oldest first: the newest page, or ?before=id (older: `next` is the next
    ?before), or ?after=id (newer: `next` is the next ?after)."""
    who = await require_viewer(request)
    after, before = _message_id_query(request, "after"), _message_id_query(request, "before")
    if after is not None and before is not None:
        raise ApiError(400, "bad_query", "Use ?after or ?before, not both.")
    async with runtime(request).pool.acquire() as conn:
        conversation = await conversations.readable(conn, who, path_int(request, "id"))
        rows, more = await conversations.messages(conn, who, conversation, after=after, before=before)
        mine = await reactions.my_reactions(conn, who, MESSAGE, [r["id"] for r in rows])
    items = [conversations.message_json(r, who, conversation, mine) for r in rows]
    nxt = (rows[-1]["id"] if after is not None else rows[0]["id"]) if more and rows else None
    return JSONResponse({"items": items, "next": nxt})


@api.post("/api/conversations/{id:int}/messages", body=TEXT_IN, answers={201: SENT}, auth=True)
async def conversation_reply_endpoint(request: Request) -> Response:
    """Write in a conversation (staff answering the moderators' inbox write as "the moderators")."""
    rules = screening.PostingRules.of(runtime(request))
    async with writing(request, TEXT_IN) as w:
        sent = await conversations.reply(w.conn, w.who, path_int(request, "id"), w.data, rules)
        conversation = await conversations.readable(w.conn, w.who, sent.conversation_id)
        body = await _message_out(w.conn, w.who, conversation, sent.message)
    return JSONResponse({**body, **_support(sent)}, status_code=201)


@api.post("/api/conversations/{id:int}/read", body=READ_IN, answers={200: ("Read up to", READ_MARK)}, auth=True)
async def conversation_read_endpoint(request: Request) -> Response:
    """Mark a conversation read up to a message (the mark never goes back)."""
    async with writing(request, READ_IN) as w:
        marked = await conversations.mark_read(w.conn, w.who, path_int(request, "id"), w.data["message_id"])
    return JSONResponse({"last_read_message_id": marked})


@api.post("/api/conversations/{id:int}/invitations", body=INVITE_IN, answers={201: CONVERSATION}, auth=True)
async def conversation_invite_endpoint(request: Request) -> Response:
    """Invite a member into a conversation you are in; they accept or decline."""
    rules = screening.PostingRules.of(runtime(request))
    async with writing(request, INVITE_IN) as w:
        conversation_id = path_int(request, "id")
        await conversations.invite(w.conn, w.who, conversation_id, w.data["username"], rules)
        body = await _conversation_out(w.conn, w.who, await conversations.readable(w.conn, w.who, conversation_id))
    return JSONResponse(body, status_code=201)


@api.post("/api/conversations/{id:int}/accept", answers={200: CONVERSATION}, auth=True)
async def conversation_accept_endpoint(request: Request) -> Response:
    """Accept an invitation: you read what is said from now on."""
    async with writing(request) as w:
        conversation = await conversations.accept(w.conn, w.who, path_int(request, "id"))
        body = await _conversation_out(w.conn, w.who, conversation)
    return JSONResponse(body)


@api.post("/api/conversations/{id:int}/decline", answers={204: "Declined"}, auth=True)
async def conversation_decline_endpoint(request: Request) -> Response:
    """Decline an invitation."""
    async with writing(request) as w:
        await conversations.decline(w.conn, w.who, path_int(request, "id"))
    return Response(status_code=204)


@api.post("/api/conversations/{id:int}/leave", answers={204: "Left"}, auth=True)
async def conversation_leave_endpoint(request: Request) -> Response:
    """Leave a conversation: you keep what was said while you were in it, and hear nothing new."""
    async with writing(request) as w:
        await conversations.leave(w.conn, w.who, path_int(request, "id"))
    return Response(status_code=204)


# --- a message: reactions and reports --------------------------------------------------------------------


@api.put(
    "/api/messages/{id:int}/reactions/{kind}",
    answers={201: ("Reaction given", REACTIONS), 200: ("Already given: nothing changed", REACTIONS)},
    auth=True,
)
async def message_react_endpoint(request: Request) -> Response:
    """React to a message: like, heart (thank you), hug (sending strength), lightbulb, clap."""
    kind = str(request.path_params.get("kind", ""))
    async with writing(request) as w:
        added, state = await writings.react(w.conn, w.who, MESSAGE, path_int(request, "id"), kind)
    return JSONResponse(state, status_code=201 if added else 200)


@api.delete("/api/messages/{id:int}/reactions/{kind}", answers={204: "Reaction taken back"}, auth=True)
async def message_unreact_endpoint(request: Request) -> Response:
    """Take back your reaction of one kind (404 when you had not given it)."""
    kind = str(request.path_params.get("kind", ""))
    async with writing(request) as w:
        await writings.unreact(w.conn, w.who, MESSAGE, path_int(request, "id"), kind)
    return Response(status_code=204)


@api.post(
    "/api/messages/{id:int}/flags", body=REPORT_IN, answers={201: REPORT, 429: "Too many reports today"}, auth=True
)
async def message_report_endpoint(request: Request) -> Response:
    """Report a message to the moderators: they see it and the few messages before it, nothing else."""
    rules = screening.PostingRules.of(runtime(request))
    async with writing(request, REPORT_IN) as w:
        flag, _review = await flags.flag(w.conn, w.who, MESSAGE, path_int(request, "id"), w.data, rules)
    body = {
        "id": flag["id"],
        "message_id": flag["writing_id"],
        "reason": flag["reason"],
        "message": "Thank you. The moderators will look at this message and the few before it, nothing else.",
    }
    return JSONResponse(body, status_code=201)


# --- who may message me, and blocks ---------------------------------------------------------------------


@api.get("/api/me/messaging", answers={200: MESSAGING}, auth=True)
async def get_messaging_endpoint(request: Request) -> Response:
    """Who may start a conversation with you: anyone, talked (members you have talked with), nobody."""
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        return JSONResponse({"who_may_message": await consent.policy(conn, who)})


@api.put("/api/me/messaging", body=MESSAGING_IN, answers={200: MESSAGING}, auth=True)
async def set_messaging_choice_endpoint(request: Request) -> Response:
    """Choose who may start a conversation with you (the moderators' outreach always reaches you)."""
    async with writing(request, MESSAGING_IN) as w:
        chosen = await consent.set_policy(w.conn, w.who, w.data["who_may_message"])
    return JSONResponse({"who_may_message": chosen})


@api.get("/api/me/blocks", answers={200: BLOCKS}, auth=True)
async def my_blocks_endpoint(request: Request) -> Response:
    """The members you blocked."""
    who = await require_viewer(request)
    async with runtime(request).pool.acquire() as conn:
        return JSONResponse({"items": await consent.blocks(conn, who), "next": None})


@api.put("/api/me/blocks/{username}", answers={201: ("Blocked", BLOCKED), 200: ("Already blocked", BLOCKED)}, auth=True)
async def block_member_endpoint(request: Request) -> Response:
    """Block a member: no new conversations from them, and none of their new messages for you."""
    async with writing(request) as w:
        created, _ = await consent.block(w.conn, w.who, str(request.path_params["username"]))
    return JSONResponse({"status": "blocked"}, status_code=201 if created else 200)


@api.delete("/api/me/blocks/{username}", answers={204: "Unblocked"}, auth=True)
async def unblock_member_endpoint(request: Request) -> Response:
    """Unblock a member."""
    async with writing(request) as w:
        await consent.unblock(w.conn, w.who, str(request.path_params["username"]))
    return Response(status_code=204)
