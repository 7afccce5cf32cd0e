"""`tica search reindex` and the forum's export API: rebuilt beside the live index and
swapped in, while people keep posting, with nothing lost or doubled; the export is for
tica's services only."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
from search_helpers import Forum, api_ok, comment, found, new_folder, new_group, pipeline, share, unique

from services import cli
from services.forum import access
from services.search import reindex
from shared import db
from shared.service_auth import service_headers, service_token


@pytest_asyncio.fixture(loop_scope="session")
async def forum_client(app, settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to the forum's export API, authenticated as a service."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=service_headers(settings)
    ) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="session")
async def rebuild_conn(settings, pool) -> AsyncIterator[asyncpg.Connection]:
    """The rebuild's own connection (it holds a session lock for the whole run)."""
    assert settings.database_url
    conn = await db.connect(settings.database_url)
    yield conn
    await conn.close()


EXPORTS = ("/api/export/categories", "/api/export/topics", "/api/export/posts", "/api/export/document-comments")


async def truth(pool: asyncpg.Pool) -> dict[tuple[str, int], tuple[str, str, list[str]]]:
    """What the index should hold, from the forum's tables: (kind, id) -> (status, text, audience)."""
    rows = await pool.fetch(
        "SELECT 'post' AS kind, p.id, p.status, CASE WHEN p.status = 'deleted' THEN '' ELSE p.plain END AS body, "
        "c.group_ids FROM forum.posts p JOIN forum.topics t ON t.id = p.topic_id "
        "JOIN forum.categories c ON c.id = t.category_id WHERE p.status <> 'pending' "
        "UNION ALL SELECT 'topic', t.id, 'visible', '', c.group_ids FROM forum.topics t "
        "JOIN forum.categories c ON c.id = t.category_id"
    )
    return {(r["kind"], r["id"]): (r["status"], r["body"], access.groups_audience(r["group_ids"])) for r in rows}


async def indexed(pool: asyncpg.Pool) -> dict[tuple[str, int], tuple[str, str, list[str]]]:
    rows = await pool.fetch("SELECT kind, id, status, body, audience FROM search.documents")
    return {(r["kind"], r["id"]): (r["status"], r["body"], list(r["audience"])) for r in rows}


async def assert_clean_finish(pool: asyncpg.Pool) -> None:
    assert await pool.fetchval("SELECT count(*) FROM search.rebuild WHERE state <> 'idle'") == 0
    assert await pool.fetchval("SELECT count(*) FROM search.rebuild_journal") == 0
    leftovers = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'search' "
        "AND (tablename LIKE '%\\_rebuild' OR tablename LIKE '%\\_old')"
    )
    assert leftovers == []


# --- the export API ---------------------------------------------------------------------------


async def test_export_is_for_services_only(client, forum_client, member_factory, settings):
    """Without the service token (or with a member's session or a wrong token): 401 in the error shape."""
    member = await member_factory("curious", roles=("member", "admin"))
    for path in EXPORTS:
        for who, headers in (
            (client, {}),
            (member.client, {}),
            (client, {"Authorization": "Service nope"}),
            (client, {"Authorization": f"Bearer {service_token(settings)}"}),
        ):
            response = await who.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"]["code"] == "service_auth_required"
            assert response.headers["www-authenticate"] == "Service"
        assert (await forum_client.get(path)).status_code == 200
    response = await forum_client.get("/api/export/posts", params={"after": "-1"})
    assert response.status_code == 400 and "after" in response.json()["error"]["fields"]
    response = await forum_client.get("/api/export/posts", params={"limit": "5000"})
    assert response.status_code == 400 and "limit" in response.json()["error"]["fields"]


async def test_export_openapi_lists_it_as_internal(client):
    """The export endpoints are in the OpenAPI document, under the tag "internal"."""
    document = (await client.get("/api/openapi.json")).json()
    for path in EXPORTS:
        assert document["paths"][path]["get"]["tags"] == ["internal"]
    assert document["paths"]["/api/search"]["get"]["tags"] == ["search"]


async def test_export_pages_through_everything_with_audience_and_status(forum, forum_client, pool):
    """Pages by id cursor; each row has its audience; deleted posts come without text, pending ones not at all."""
    author = await forum.user("exporter", display_name="Ex Porter")
    private = await forum.category("Private export", group_ids=(5, 6))
    topic, first = await forum.topic(private, author, "Exported", "first words")
    posts = [first] + [await forum.reply(topic, author, f"reply {n}") for n in range(4)]
    await forum.set_status(posts[1], "hidden")
    await forum.set_status(posts[2], "deleted")
    await pool.execute("UPDATE forum.posts SET status = 'pending' WHERE id = $1", posts[3])
    rows, after = [], 0
    while after is not None:
        page = (await forum_client.get("/api/export/posts", params={"after": after, "limit": 2})).json()
        assert len(page["items"]) <= 2
        rows += page["items"]
        after = page["next"]
    assert [r["id"] for r in rows] == [posts[0], posts[1], posts[2], posts[4]]
    by_id = {r["id"]: r for r in rows}
    assert by_id[posts[0]]["audience"] == ["group:5", "group:6"]
    assert by_id[posts[0]]["author"] == {"id": author, "username": "exporter", "display_name": "Ex Porter"}
    assert (by_id[posts[1]]["status"], by_id[posts[1]]["text"]) == ("hidden", "reply 0")
    assert (by_id[posts[2]]["status"], by_id[posts[2]]["text"]) == ("deleted", "")
    assert by_id[posts[0]]["topic_slug"] == "exported" and by_id[posts[0]]["topic_title"] == "Exported"
    topics = (await forum_client.get("/api/export/topics")).json()
    assert [t["id"] for t in topics["items"]] == [topic] and topics["next"] is None
    categories = (await forum_client.get("/api/export/categories")).json()["items"]
    assert categories == [
        {"id": private, "slug": "private-export", "name": "Private export", "audience": ["group:5", "group:6"]}
    ]


# --- the rebuild ---------------------------------------------------------------------------------


async def test_reindex_rebuilds_a_lost_index(forum, index, pool, search, forum_client, rebuild_conn):
    """With the index emptied, a rebuild from the export restores every document and search works again."""
    word = unique()
    author = await forum.user("rebuilder")
    open_cat = await forum.category("Open rebuild")
    private = await forum.category("Closed rebuild", group_ids=(3,))
    topic, post = await forum.topic(open_cat, author, f"Rebuilt {word}", f"body {word}")
    await forum.topic(private, author, f"Private {word}", f"secret {word}")
    hidden = await forum.reply(topic, author, f"hidden {word}")
    await forum.set_status(hidden, "hidden")
    await index.sync()
    expected = await indexed(pool)
    await pool.execute("TRUNCATE search.documents, search.categories, search.users")
    assert (await search(word))["items"] == []
    report = await reindex.rebuild(rebuild_conn, forum_client, page_size=2)
    assert (report.categories, report.topics, report.posts) == (2, 2, 3)
    assert await indexed(pool) == expected == await truth(pool)
    assert set(found(await search(word))) == {("topic", topic), ("post", post)}
    assert found(await search("@rebuilder kind:topic")) == [("topic", topic)]
    assert found(await search(f"#open-rebuild {word} kind:post")) == [("post", post)]
    await assert_clean_finish(pool)


async def test_reindex_while_posts_are_written_loses_and_doubles_nothing(
    forum, pool, redis, settings, search, forum_client, rebuild_conn
):
    """Writers post, edit, hide and delete while the rebuild pages through the export, replays
    its journal and swaps; afterwards the index equals the forum exactly, and searching went on."""
    rng = random.Random(5)
    authors = [await forum.user(f"writer{n}") for n in range(3)]
    categories = [await forum.category("Busy open"), await forum.category("Busy closed", group_ids=(3,))]
    topics = [(await forum.topic(categories[n % 2], authors[n % 3], f"Busy {n}", f"start {n}"))[0] for n in range(6)]
    posts = [await forum.reply(rng.choice(topics), rng.choice(authors), f"seed {n} {unique()}") for n in range(60)]
    path = pipeline(pool, redis, settings, name="busy")
    await path.consumer.ensure_group()
    await path.sync()

    stop = asyncio.Event()
    written = {"posts": 0}

    deleted: set[int] = set()

    async def write() -> None:
        # As the forum allows: deleted posts are neither edited nor brought back.
        writer = Forum(pool, groups=forum.groups)
        n = 0
        while not stop.is_set():
            n += 1
            posts.append(await writer.reply(rng.choice(topics), rng.choice(authors), f"live {n} {unique()}"))
            written["posts"] += 1
            alive = [p for p in posts if p not in deleted]
            if n % 4 == 0:
                await writer.edit(rng.choice(alive), f"edited {n} {unique()}")
            if n % 7 == 0:
                post, status = rng.choice(alive), rng.choice(["hidden", "visible", "deleted"])
                await writer.set_status(post, status)
                if status == "deleted":
                    deleted.add(post)
            await asyncio.sleep(0.002)

    async def deliver() -> None:
        while not stop.is_set():
            await path.relay.publish_all()
            await path.consumer.read_once()
            await asyncio.sleep(0.005)

    async def during_swap() -> None:
        # Events keep arriving between the last replay and the swap; searches still answer.
        await asyncio.sleep(0.3)
        assert (await search("live"))["items"]

    tasks = [asyncio.create_task(write()), asyncio.create_task(deliver())]
    try:
        report = await reindex.rebuild(rebuild_conn, forum_client, page_size=7, before_swap=during_swap)
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    await path.sync()
    assert written["posts"] > 20 and report.replayed > 0
    expected = await truth(pool)
    actual = await indexed(pool)
    assert actual.keys() == expected.keys()
    wrong = {key: (actual[key], expected[key]) for key in expected if actual[key] != expected[key]}
    assert not wrong
    assert await pool.fetchval("SELECT count(*) FROM search.documents") == len(expected)
    await assert_clean_finish(pool)


async def test_only_one_reindex_at_a_time(pool, forum_client, rebuild_conn, settings):
    """A second rebuild while one runs is refused, and changes nothing."""
    assert settings.database_url
    other = await db.connect(settings.database_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1)", reindex.RUN_LOCK_KEY)
        with pytest.raises(reindex.ReindexError, match="another reindex is running"):
            await reindex.rebuild(rebuild_conn, forum_client)
    finally:
        await other.close()
    await assert_clean_finish(pool)


async def test_a_failed_reindex_leaves_the_live_index_alone(forum, index, pool, search, app, rebuild_conn):
    """A forum that refuses the token: a clear error, the live index untouched, nothing left behind."""
    word = unique()
    author = await forum.user("survivor")
    cat = await forum.category("Survive")
    _, post = await forum.topic(cat, author, "Survive", f"still here {word}")
    await index.sync()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers={"Authorization": "Service wrong"}
    ) as refused:
        with pytest.raises(reindex.ReindexError, match="refused the service token"):
            await reindex.rebuild(rebuild_conn, refused)
    assert found(await search(word)) == [("post", post)]
    await assert_clean_finish(pool)


def test_cli_reindex_reports_an_unreachable_forum(settings, monkeypatch, capsys, pool):
    """`tica search reindex --forum-url` with nothing listening: exit 2 and a one-line reason."""
    monkeypatch.setattr(reindex, "RETRIES", 1)
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("TICA_SECRET_KEY", settings.secret_key or "")
    assert cli.main(["search", "reindex", "--forum-url", "http://127.0.0.1:9"]) == 2
    assert "search reindex: cannot reach the forum at http://127.0.0.1:9" in capsys.readouterr().err


# --- comments on library documents, and what moderation changes ------------------------------------


async def test_export_and_reindex_include_document_comments(
    index, pool, search, forum_client, rebuild_conn, member_factory, client
):
    """The comments export (deleted ones and deleted documents' left out), and a rebuild that restores the
    comments with their audiences; a folder made private while the rebuild runs is private after the swap."""
    word = unique()
    admin = await member_factory("keeper", roles=("member", "admin"))
    group_id = await new_group(admin.client, "Readers")
    insider = await member_factory("reader", group_ids=(group_id,))
    open_folder = await new_folder(admin.client, "Open papers")
    private = await new_folder(admin.client, "Readers' papers", group_ids=[group_id])
    paper = await share(admin.client, open_folder, "Open paper")
    closed_paper = await share(admin.client, private, "Closed paper")
    gone_paper = await share(admin.client, open_folder, "Withdrawn paper")
    public_comment = await comment(admin.client, paper, f"open words {word}")
    private_comment = await comment(insider.client, closed_paper, f"closed words {word}")
    deleted = await comment(admin.client, paper, f"deleted words {word}")
    await comment(admin.client, gone_paper, f"withdrawn words {word}")
    api_ok(await admin.client.delete(f"/api/document-comments/{deleted}"), 204)
    api_ok(await admin.client.delete(f"/api/documents/{gone_paper}"), 204)
    await index.sync()

    exported = (await forum_client.get("/api/export/document-comments")).json()
    assert [row["id"] for row in exported["items"]] == [public_comment, private_comment]
    assert exported["next"] is None
    row = exported["items"][1]
    assert (row["document_id"], row["document_title"], row["folder_id"]) == (closed_paper, "Closed paper", private)
    assert row["audience"] == [f"group:{group_id}"] and row["text"] == f"closed words {word}"
    assert row["author"]["username"] == "reader" and row["status"] == "visible"

    await pool.execute("DELETE FROM search.documents WHERE kind = 'document_comment'")
    await pool.execute("TRUNCATE search.library_documents, search.folders")

    async def close_the_open_folder() -> None:
        api_ok(await admin.client.patch(f"/api/folders/{open_folder}", json={"group_ids": [group_id]}), 200)
        await index.sync()  # applied to the live index and journaled for the new one

    report = await reindex.rebuild(rebuild_conn, forum_client, page_size=1, before_swap=close_the_open_folder)
    assert report.comments == 2 and "2 document comments" in report.summary()
    assert (await search(word, who=client))["items"] == []
    assert set(found(await search(f"kind:comment {word}", who=insider.client))) == {
        ("document_comment", public_comment),
        ("document_comment", private_comment),
    }
    await assert_clean_finish(pool)


async def test_export_keeps_pseudonymous_authors_and_unpublished_topics_out(forum, forum_client, pool):
    """An anonymous post is exported as "Anonymous member" (no id); a topic waiting for review is not exported,
    nor its posts."""
    author = await forum.user("hidden_hand")
    cat = await forum.category("Stories")
    topic, first = await forum.topic(cat, author, "Mine", "told without my name")
    waiting, _ = await forum.topic(cat, author, "Waiting", "not yet published")
    await pool.execute("UPDATE forum.posts SET anonymous = true WHERE id = $1", first)
    await pool.execute("UPDATE forum.topics SET anonymous = true WHERE id = $1", topic)
    await pool.execute("UPDATE forum.topics SET status = 'pending' WHERE id = $1", waiting)
    await pool.execute("UPDATE forum.posts SET status = 'pending' WHERE topic_id = $1", waiting)
    posts = (await forum_client.get("/api/export/posts")).json()["items"]
    topics = (await forum_client.get("/api/export/topics")).json()["items"]
    assert [p["id"] for p in posts] == [first] and [t["id"] for t in topics] == [topic]
    anonymous = {"id": None, "username": "anonymous", "display_name": "Anonymous member"}
    assert posts[0]["author"] == anonymous and posts[0]["anonymous"] is True
    assert topics[0]["author"] == anonymous and topics[0]["status"] == "visible"
    assert "hidden_hand" not in str(posts) + str(topics)
