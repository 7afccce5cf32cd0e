"""The world the read-visibility matrix (tests/test_read_matrix.py) looks at, built once.

Everything is made through the real apps' HTTP API (groups, categories, topics, posts, hiding,
deleting, suspending, folders, documents, webinars), as the people in it would; only the
accounts themselves are written straight into the forum's tables with their events, as the
shared test fixtures do. The three services run together under real uvicorn with their
background loops (outbox relay, search indexer, notification writer, live fan-out), so what
search, notify and the live channels hold comes the way it comes in production.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from notify_helpers import registered, serving, updated
from websockets.asyncio.client import ClientConnection, connect

from services.allinone import AllInOne
from services.forum.demo import tiny_pdf
from services.forum.outbox import OUTBOX as FORUM_OUTBOX
from shared import events as ev
from shared.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, Session, SessionStore
from shared.settings import Settings

# --- the words that mark each thing: a page or answer shows a thing when it holds its word ------------------------

WORDS = {
    "PUB": "publicquokka",
    "PRIV": "privateokapi",
    "PRIVREPLY": "privreplymarmot",
    "HID": "hiddenaxolotl",
    "DEL": "deletedtapir",
    "PEND": "pendingnarwhal",
    "ANON": "anonymouspangolin",
    "MELTOPIC": "melstopicbison",
    "AUTHOR": "aurorawrites",  # the author's username: never beside an anonymous post for non-staff
    "PUBDOC": "publicdocyak",
    "PRIVDOC": "privatedocibis",
    "COMM": "commentgecko",
    "WEBINAR": "webinarwombat",
    "JOIN": "joinsecretlemur",  # in the webinar's join link: registered members and organisers only
    "CONVO": "convoheron",  # a private conversation between the author and the group member
    "MODBOX": "modboxcrane",  # a member's conversation with the moderators' inbox
    "EARLY": "earlyvole",  # the first message of a conversation one of whose later messages is reported
    "REPORTED": "reportedmoose",  # the reported message: moderators see it and the three before it
}
HOLD_WORD = "holdmeword"  # a watched word that holds a post for review

VIEWERS = (
    "anonymous",
    "member",
    "group_member",
    "outsider",
    "author",
    "moderator",
    "admin",
    "suspended",
    "silenced",
    "removed",
)
# Who is in the private group at the end: the author, a group member, the silenced member (who may
# still read) and the suspended member (whose sessions ended); the removed member was in it once.
USERNAMES = {
    "member": "mel",
    "group_member": "gina",
    "outsider": "otto",
    "author": WORDS["AUTHOR"],
    "moderator": "mo",
    "admin": "ada",
    "suspended": "sus",
    "silenced": "sil",
    "removed": "rem",
}
ROLES = {"moderator": ("member", "moderator"), "admin": ("member", "admin")}
IN_GROUP = ("author", "group_member", "suspended", "silenced", "removed")

TABLES_SQL = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
WHERE schemaname IN ('forum', 'notify', 'search') AND tablename <> 'schema_migrations'
"""


def ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    body: dict[str, Any] = response.json() if response.content else {}
    return body


@dataclass
class World:
    """Ids of everything made, the viewers' clients, and how to reach the live socket."""

    app: AllInOne
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    port: int
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)
    start_event_id: str = "0-0"

    def url(self, template: str) -> str:
        return template.format(**self.ids, **{f"user_{k}": v for k, v in self.users.items()})

    def client(self, viewer: str) -> httpx.AsyncClient:
        return self.clients[viewer]

    def live(self, viewer: str) -> Any:
        session = self.sessions.get(viewer)
        headers = {"Cookie": f"{SESSION_COOKIE}={session.id}"} if session else {}
        return connect(f"ws://127.0.0.1:{self.port}/live", additional_headers=headers, open_timeout=5)


def _client(app: AllInOne, session: Session | None = None) -> httpx.AsyncClient:
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", follow_redirects=False, timeout=30
    )
    if session is not None:
        http.cookies.set(SESSION_COOKIE, session.id)
        http.cookies.set(CSRF_COOKIE, session.csrf)
        http.headers[CSRF_HEADER] = session.csrf
    return http


async def _empty(pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str) -> None:
    tables = [row[0] for row in await pool.fetch(TABLES_SQL)]
    if tables:
        await pool.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    for start in range(0, len(keys), 500):
        await redis.delete(*keys[start : start + 500])


async def _account(pool: asyncpg.Pool, store: SessionStore, username: str, roles: tuple[str, ...]) -> Session:
    """An account with a verified email, its events (as registration writes them), and a session."""
    async with pool.acquire() as conn, conn.transaction():
        user_id = await conn.fetchval(
            "INSERT INTO forum.users (username, email, password_hash, display_name, roles, email_verified_at, "
            "created_at) VALUES ($1, $2, 'no-login', $3, $4, now(), now() - interval '30 days') RETURNING id",
            username,
            f"{username}@example.org",
            username.title(),
            list(roles),
        )
        await ev.write_event(conn, registered(user_id, username), actor_id=user_id, outbox=FORUM_OUTBOX)
        await ev.write_event(
            conn, updated(user_id, username, roles=list(roles), group_ids=[]), actor_id=user_id, outbox=FORUM_OUTBOX
        )
    return await store.create(user_id=user_id, username=username, roles=list(roles), group_ids=[])


async def wait_for(check: Callable[[], Awaitable[Any]], *, timeout_s: float = 20.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


async def settled(world: World) -> bool:
    """Every outbox row is published and every consumer group has handled the whole stream."""
    if await world.pool.fetchval("SELECT count(*) FROM forum.outbox WHERE published_at IS NULL"):
        return False
    stream = ev.stream_name(world.settings.redis_prefix)
    last = await world.redis.xrevrange(stream, count=1)
    if not last:
        return False
    last_id = last[0][0].decode()
    groups = await world.redis.xinfo_groups(stream)
    if len(groups) < 2:  # search's indexer and notify's writer
        return False
    return all(
        (g["last-delivered-id"].decode() if isinstance(g["last-delivered-id"], bytes) else g["last-delivered-id"])
        == last_id
        and g["pending"] == 0
        for g in groups
    )


async def _topic(who: httpx.AsyncClient, category_id: int, title: str, body: str, **extra: Any) -> dict[str, Any]:
    return ok(await who.post("/api/topics", json={"category_id": category_id, "title": title, "body": body, **extra}))


async def _reply(who: httpx.AsyncClient, topic_id: int, body: str, status: int = 201, **extra: Any) -> dict[str, Any]:
    return ok(await who.post(f"/api/topics/{topic_id}/posts", json={"body": body, **extra}), status)


async def _upload(who: httpx.AsyncClient, folder_id: int, title: str) -> dict[str, Any]:
    response = await who.post(
        "/api/documents",
        data={"folder_id": str(folder_id), "title": title},
        files={"file": (f"{title}.pdf", tiny_pdf(title, [title]), "application/pdf")},
    )
    return ok(response)


async def build(world: World, store: SessionStore) -> None:
    """The people, places and things of the matrix (see the module docstring of the test)."""
    w, ids, c = WORDS, world.ids, world.clients
    for viewer in VIEWERS:
        if viewer == "anonymous":
            c[viewer] = _client(world.app)
            continue
        session = await _account(world.pool, store, USERNAMES[viewer], ROLES.get(viewer, ("member",)))
        world.sessions[viewer] = session
        world.users[viewer] = session.user_id
        c[viewer] = _client(world.app, session)
    admin, mod, author = c["admin"], c["moderator"], c["author"]

    # The group, its members, and the places: public, private (the group's), anonymous-friendly.
    group = ok(await admin.post("/api/groups", json={"name": "Circle", "access": "private"}))
    ids["group"], ids["group_slug"] = group["id"], group["slug"]
    for viewer in IN_GROUP:
        ok(await admin.post(f"/api/groups/{group['id']}/members", json={"username": USERNAMES[viewer]}))
    public = ok(await admin.post("/api/categories", json={"name": "General"}))
    private = ok(await admin.post("/api/categories", json={"name": "Circle room", "group_ids": [group["id"]]}))
    anonymous = ok(await admin.post("/api/categories", json={"name": "Open hearts", "allow_anonymous": True}))
    ids.update(
        pub_cat=public["id"],
        pub_cat_slug=public["slug"],
        priv_cat=private["id"],
        priv_cat_slug=private["slug"],
        anon_cat=anonymous["id"],
        anon_cat_slug=anonymous["slug"],
    )
    ok(await admin.post("/api/admin/watched-words", json={"word": HOLD_WORD, "action": "require_approval"}))
    stream = ev.stream_name(world.settings.redis_prefix)
    newest = await world.redis.xrevrange(stream, count=1)
    world.start_event_id = newest[0][0].decode() if newest else "0-0"

    # A public topic with a hidden, a deleted and a pending reply by the author.
    pub = await _topic(author, public["id"], f"Public {w['PUB']} topic", f"Opening words {w['PUB']}.")
    ids.update(pub_topic=pub["id"], pub_slug=pub["slug"], pub_post=pub["first_post"]["id"])
    hid = await _reply(author, pub["id"], f"Soon hidden {w['HID']}.")
    ok(await mod.post(f"/api/posts/{hid['id']}/hide", json={"reason": "Off topic"}), 200)
    dele = await _reply(author, pub["id"], f"Soon deleted {w['DEL']}.")
    ok(await author.delete(f"/api/posts/{dele['id']}"), 204)
    await _reply(author, pub["id"], f"Waiting {w['PEND']} {HOLD_WORD}.", status=202)
    ids.update(hid_post=hid["id"], del_post=dele["id"])
    ids["pend_post"] = await world.pool.fetchval("SELECT id FROM forum.posts WHERE status = 'pending'")

    # A private topic; a group member's reply mentions the author, an outsider and the removed member.
    priv = await _topic(author, private["id"], f"Private {w['PRIV']} topic", f"Between us {w['PRIV']}.")
    ids.update(priv_topic=priv["id"], priv_slug=priv["slug"], priv_post=priv["first_post"]["id"])
    ok(await admin.delete(f"/api/groups/{group['id']}/members/{world.users['removed']}"), 204)
    priv_reply = await _reply(
        c["group_member"],
        priv["id"],
        f"Thank you @{USERNAMES['author']} {w['PRIVREPLY']}; cc @otto @rem",
        reply_to=priv["first_post"]["id"],
    )
    ids["priv_reply"] = priv_reply["id"]

    # An anonymous reply by the author to a member's topic.
    mel = await _topic(c["member"], anonymous["id"], f"Topic {w['MELTOPIC']} here", f"Hello {w['MELTOPIC']}.")
    ids.update(anon_topic=mel["id"], anon_slug=mel["slug"], mel_post=mel["first_post"]["id"])
    anon = await _reply(author, mel["id"], f"Unsigned {w['ANON']}.", anonymous=True, reply_to=mel["first_post"]["id"])
    ids["anon_post"] = anon["id"]

    # The library: a public folder and the group's folder, a document in each, a comment on the private one.
    pub_folder = ok(await admin.post("/api/folders", json={"name": "Resources"}))
    priv_folder = ok(await admin.post("/api/folders", json={"name": "Circle papers", "group_ids": [group["id"]]}))
    ids.update(pub_folder=pub_folder["id"], priv_folder=priv_folder["id"])
    ids["pub_doc"] = (await _upload(admin, pub_folder["id"], f"Guide {w['PUBDOC']}"))["id"]
    ids["priv_doc"] = (await _upload(author, priv_folder["id"], f"Notes {w['PRIVDOC']}"))["id"]
    comment = ok(await c["group_member"].post(f"/api/documents/{ids['priv_doc']}/comments", json={"body": w["COMM"]}))
    ids["priv_comment"] = comment["id"]

    # A webinar with a join link; the group member registers.
    start = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    webinar = ok(
        await admin.post(
            "/api/webinars",
            json={
                "title": f"Webinar {w['WEBINAR']}",
                "description": "On supervision.",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=1)).isoformat(),
                "capacity": 20,
                "join_url": f"https://meet.example.org/{w['JOIN']}",
            },
        )
    )
    ids["webinar"] = webinar["id"]
    ok(await c["group_member"].post(f"/api/webinars/{webinar['id']}/registration", json={}))

    # Private messages: the author and the group member talk; a member writes to the moderators; the member
    # reports the outsider's fifth message, so moderators see it and the three before, never the first.
    convo = ok(
        await author.post(
            "/api/conversations",
            json={
                "recipients": [USERNAMES["group_member"]],
                "title": f"Talk {w['CONVO']}",
                "text": f"Hi {w['CONVO']}.",
            },
        )
    )
    ids.update(convo=convo["id"], convo_message=convo["message"]["id"])
    ok(await c["group_member"].post(f"/api/conversations/{convo['id']}/messages", json={"text": f"Yes {w['CONVO']}"}))
    modbox = ok(
        await c["member"].post(
            "/api/conversations",
            json={"to_moderators": True, "title": f"Help {w['MODBOX']}", "text": f"Please {w['MODBOX']}."},
        )
    )
    ids.update(modbox=modbox["id"], modbox_message=modbox["message"]["id"])
    talk = ok(
        await c["outsider"].post(
            "/api/conversations",
            json={"recipients": [USERNAMES["member"]], "title": "A chat", "text": f"First {w['EARLY']}."},
        )
    )
    for n in range(3):
        ok(await c["outsider"].post(f"/api/conversations/{talk['id']}/messages", json={"text": f"Then {n}."}))
    reported = ok(
        await c["outsider"].post(f"/api/conversations/{talk['id']}/messages", json={"text": f"Rude {w['REPORTED']}."})
    )
    ok(await c["member"].post(f"/api/messages/{reported['id']}/flags", json={"reason": "inappropriate"}))
    ids.update(talk=talk["id"], reported_message=reported["id"])

    # Sanctions last (their sessions end or stay as they are).
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    ok(await mod.post(f"/api/users/{world.users['suspended']}/suspend", json={"until": until, "reason": "x"}), 200)
    ok(await mod.post(f"/api/users/{world.users['silenced']}/silence", json={"until": until, "reason": "y"}), 200)

    await wait_for(lambda: settled(world), what="the relay, the indexer and the notification writer")
    ids["review"] = await world.pool.fetchval("SELECT id FROM forum.reviewables WHERE post_id = $1", ids["pend_post"])
    ids["author_note"] = await world.pool.fetchval(
        "SELECT min(id) FROM notify.notifications WHERE user_id = $1", world.users["author"]
    )
    ids["message_review"] = await world.pool.fetchval(
        "SELECT id FROM forum.reviewables WHERE message_id = $1", ids["reported_message"]
    )
    assert ids["review"] and ids["author_note"] and ids["message_review"], ids


@asynccontextmanager
async def open_world(settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis) -> AsyncIterator[World]:
    """Empty tables and keys, serve the three services (background loops on), build the world."""
    await _empty(pool, redis, settings.redis_prefix)
    app = AllInOne(settings, background=True)
    async with serving(app) as port:
        world = World(app, settings, pool, redis, port)
        try:
            await build(world, SessionStore(redis, settings.redis_prefix))
            yield world
        finally:
            for http in world.clients.values():
                await http.aclose()


# --- the live socket -------------------------------------------------------------------------------------------


async def receive(ws: ClientConnection, timeout_s: float = 5.0) -> dict[str, Any]:
    """The next message that is not a ping."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if message["type"] != "ping":
            return message


async def subscribe(ws: ClientConnection, channel: str, last_event_id: str | None) -> list[dict[str, Any]]:
    """Subscribe to one channel; everything the server sends up to its acknowledgement (or refusal)."""
    await ws.send(json.dumps({"type": "subscribe", "channels": [channel], "last_event_id": last_event_id}))
    got = []
    while True:
        message = await receive(ws)
        if message["type"] == "subscribed":
            return got
        got.append(message)
        if message["type"] == "error":
            return got


async def live_answer(world: World, viewer: str, channel: str, replay: bool) -> list[dict[str, Any]]:
    async with world.live(viewer) as ws:
        return await subscribe(ws, channel, world.start_event_id if replay else None)
