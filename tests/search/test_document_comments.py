"""Comments on library documents in search: found (kind:comment), linked to their place on
the document's page, only for those who may read the folder, gone when deleted (alone or
with their document), following their document and folder when those change; late and
repeated events change nothing they should not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from search_helpers import api_ok, comment, found, new_folder, new_group, share, unique

from services.search import indexer
from shared.events import (
    DocumentCommentCreated,
    DocumentCommentDeleted,
    DocumentCommentEdited,
    DocumentDeleted,
    DocumentUpdated,
    Envelope,
    FolderUpdated,
)


@dataclass
class People:
    admin: httpx.AsyncClient
    writer: httpx.AsyncClient
    insider: httpx.AsyncClient
    outsider: httpx.AsyncClient
    moderator: httpx.AsyncClient
    group_id: int


@pytest.fixture
async def people(member_factory) -> People:
    admin = await member_factory("librarian", roles=("member", "admin"))
    group_id = await new_group(admin.client, "Survivors circle")
    return People(
        admin=admin.client,
        writer=(await member_factory("commenter")).client,
        insider=(await member_factory("insider", group_ids=(group_id,))).client,
        outsider=(await member_factory("outsider")).client,
        moderator=(await member_factory("mod", roles=("member", "moderator"))).client,
        group_id=group_id,
    )


async def index_state(pool) -> list[dict]:
    """Every row of the index tables a comment depends on (without the time each row was last written)."""
    rows = []
    for table in ("documents", "library_documents", "folders", "users"):
        for row in await pool.fetch(f"SELECT * FROM search.{table}"):
            rows.append({"table": table, **{k: v for k, v in dict(row).items() if k != "indexed_at"}})
    return sorted(rows, key=repr)


async def indexed_comment(pool, comment_id: int):
    return await pool.fetchrow("SELECT * FROM search.documents WHERE kind = 'document_comment' AND id = $1", comment_id)


# --- through the forum -------------------------------------------------------------------------------


async def test_comments_are_found_and_kind_comment_finds_only_them(forum, index, search, people, client):
    """A comment and a post with the same word: both found; kind:comment (or kind:document_comment) only the
    comment, with its document's title, its author and a link to it on the document's page."""
    word = unique()
    folder = await new_folder(people.admin, "Reports")
    document = await share(people.writer, folder, "Evaluation report")
    comment_id = await comment(people.writer, document, f"Page four matters {word}")
    author = await forum.user("poster")
    _, post = await forum.topic(await forum.category("Talk"), author, "Talk", f"also {word}")
    await index.sync()
    assert set(found(await search(word))) == {("document_comment", comment_id), ("post", post)}
    for q in (f"kind:comment {word}", f"kind:document_comment {word}", f"@commenter {word}"):
        assert found(await search(q)) == [("document_comment", comment_id)], q
    assert found(await search(f"kind:post {word}")) == [("post", post)]
    [item] = (await search(f"kind:comment {word}"))["items"]
    assert item["title"] == "Evaluation report" and item["topic_id"] is None
    assert item["document_id"] == document and item["category"] is None
    assert item["url"] == f"/library/documents/{document}#comment-{comment_id}"
    assert item["author"]["username"] == "commenter" and item["author"]["id"] is not None
    assert "<mark>" in item["snippet"]
    page = await client.get(item["url"].split("#")[0])
    assert page.status_code == 200 and f'id="comment-{comment_id}"' in page.text


async def test_the_results_page_shows_comments(index, search, people, client):
    """/search?kind=document_comment lists the comment, labelled, linking to it."""
    word = unique()
    document = await share(people.writer, await new_folder(people.admin, "Tools"), "Grounding toolkit")
    comment_id = await comment(people.writer, document, f"Useful for groups {word}")
    await index.sync()
    page = await client.get("/search", params={"q": word, "kind": "document_comment"})
    assert page.status_code == 200
    assert "Comment on a document" in page.text and "Grounding toolkit" in page.text
    assert f'href="/library/documents/{document}#comment-{comment_id}"' in page.text


async def test_a_private_folders_comments_are_for_its_group_and_staff(index, search, people, client):
    """Outsiders and anonymous people never find them; the group's members and staff do."""
    word = unique()
    private = await new_folder(people.admin, "Circle papers", group_ids=[people.group_id])
    sub = await new_folder(people.admin, "Circle notes", parent_id=private)
    document = await share(people.insider, private, "Circle paper")
    sub_document = await share(people.insider, sub, "Circle notes")
    first = await comment(people.insider, document, f"only for us {word}")
    second = await comment(people.insider, sub_document, f"also only for us {word}")
    await index.sync()
    for who in (client, people.outsider, people.writer):
        assert (await search(word, who=who))["items"] == []
        assert (await search(f"kind:comment @insider {word}", who=who))["items"] == []
    expected = {("document_comment", first), ("document_comment", second)}
    for who in (people.insider, people.moderator):
        assert set(found(await search(word, who=who))) == expected


async def test_an_edited_comment_is_found_by_its_new_words(index, search, people):
    """The old words no longer find it; the new ones do."""
    old, new = unique(), unique()
    document = await share(people.writer, await new_folder(people.admin, "Drafts"), "Draft")
    comment_id = await comment(people.writer, document, f"first thoughts {old}")
    await index.sync()
    api_ok(await people.writer.patch(f"/api/document-comments/{comment_id}", json={"body": f"second {new}"}), 200)
    await index.sync()
    assert (await search(old))["items"] == []
    assert found(await search(new)) == [("document_comment", comment_id)]


async def test_deleted_comments_and_documents_leave_the_index_text_and_all(index, search, people, pool):
    """A deleted comment, and every comment of a deleted document: nobody finds them, not even staff,
    and the index keeps none of their words."""
    word = unique()
    folder = await new_folder(people.admin, "Shared")
    document = await share(people.writer, folder, "Kept")
    doomed_document = await share(people.writer, folder, "Withdrawn")
    kept = await comment(people.writer, document, f"stays {word}")
    regretted = await comment(people.writer, document, f"regretted {word}")
    on_doomed = [await comment(people.writer, doomed_document, f"on withdrawn {n} {word}") for n in range(2)]
    await index.sync()
    assert len((await search(word))["items"]) == 4
    api_ok(await people.writer.delete(f"/api/document-comments/{regretted}"), 204)
    api_ok(await people.writer.delete(f"/api/documents/{doomed_document}"), 204)
    await index.sync()
    assert found(await search(word, who=people.moderator)) == [("document_comment", kept)]
    for comment_id in (regretted, *on_doomed):
        row = await indexed_comment(pool, comment_id)
        assert (row["status"], row["body"]) == ("deleted", ""), comment_id


async def test_a_folder_given_to_a_group_takes_its_comments_with_it(index, search, people, client):
    """An open folder (and its subfolder) limited to a group: outsiders lose the comments, the group keeps
    them; opened again, everyone finds them again."""
    word = unique()
    folder = await new_folder(people.admin, "Was open")
    sub = await new_folder(people.admin, "Open below", parent_id=folder)
    comments = {
        ("document_comment", await comment(people.writer, await share(people.writer, folder, "Top"), f"a {word}")),
        ("document_comment", await comment(people.writer, await share(people.writer, sub, "Below"), f"b {word}")),
    }
    await index.sync()
    assert set(found(await search(word))) == comments
    api_ok(await people.admin.patch(f"/api/folders/{folder}", json={"group_ids": [people.group_id]}), 200)
    await index.sync()
    assert (await search(word))["items"] == []
    assert (await search(word, who=people.outsider))["items"] == []
    assert set(found(await search(word, who=people.insider))) == comments
    api_ok(await people.admin.patch(f"/api/folders/{folder}", json={"group_ids": []}), 200)
    await index.sync()
    assert set(found(await search(word, who=client))) == comments


async def test_a_document_moved_or_renamed_takes_its_comments_with_it(index, search, people):
    """Moved into a group's folder: private; renamed: the results show the new title."""
    word = unique()
    open_folder = await new_folder(people.admin, "Open shelf")
    private = await new_folder(people.admin, "Group shelf", group_ids=[people.group_id])
    document = await share(people.admin, open_folder, "Old title")
    comment_id = await comment(people.writer, document, f"on the shelf {word}")
    await index.sync()
    body = {"folder_id": private, "title": "New title"}
    api_ok(await people.admin.patch(f"/api/documents/{document}", json=body), 200)
    await index.sync()
    assert (await search(word))["items"] == []
    [item] = (await search(word, who=people.insider))["items"]
    assert (item["id"], item["title"]) == (comment_id, "New title")


# --- events late, early or twice ------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat()


def created(comment_id: int, text: str, *, document_id: int = 70, folder_id: int = 7, audience=("public",)):
    event = DocumentCommentCreated(
        comment_id=comment_id,
        document_id=document_id,
        document_title="A paper",
        folder_id=folder_id,
        document_uploader_id=1,
        author_id=1,
        author_username="someone",
        text=text,
        audience=list(audience),
        mentioned_user_ids=[],
        created_at=_now(),
    )
    return Envelope.wrap(event, actor_id=1)


def edited(comment_id: int, text: str, *, document_id: int = 70, folder_id: int = 7, audience=("public",)):
    event = DocumentCommentEdited(
        comment_id=comment_id,
        document_id=document_id,
        document_title="A paper",
        folder_id=folder_id,
        author_id=1,
        author_username="someone",
        text=text,
        audience=list(audience),
        revision=2,
    )
    return Envelope.wrap(event, actor_id=1)


def document_updated(document_id: int, folder_id: int, audience: list[str], title: str = "A paper") -> Envelope:
    event = DocumentUpdated(
        document_id=document_id, folder_id=folder_id, title=title, description="", audience=audience
    )
    return Envelope.wrap(event, actor_id=1)


def folder_updated(folder_id: int, audience: list[str]) -> Envelope:
    return Envelope.wrap(FolderUpdated(folder_id=folder_id, parent_id=None, name="F", audience=audience), actor_id=1)


async def test_a_comment_event_handled_twice_changes_nothing(pool, search):
    """The same envelope twice: one application, the row the same to the byte."""
    handler = indexer.Indexer(pool)
    word = unique()
    envelope = created(801, f"once {word}")
    await handler.handle(envelope)
    first = await indexed_comment(pool, 801)
    await handler.handle(envelope)
    assert await indexed_comment(pool, 801) == first
    assert await pool.fetchval("SELECT count(*) FROM search.applied_events") == 1
    assert found(await search(word)) == [("document_comment", 801)]


async def test_every_library_event_replayed_changes_nothing(pool):
    """A whole history applied, then applied again with its ids forgotten (versions alone guard it): same index."""
    handler = indexer.Indexer(pool)
    history = [
        folder_updated(7, ["public"]),
        created(811, "first words"),
        created(812, "other words"),
        edited(811, "first words, edited"),
        document_updated(70, 8, ["group:3"], "Moved paper"),
        folder_updated(8, ["group:3", "group:4"]),
        Envelope.wrap(DocumentCommentDeleted(comment_id=812, document_id=70, folder_id=8, author_id=1), actor_id=1),
    ]
    for envelope in history:
        await handler.handle(envelope)
    before = await index_state(pool)
    await pool.execute("DELETE FROM search.applied_events")
    for envelope in history:
        await handler.handle(envelope)
    assert await index_state(pool) == before
    row = await indexed_comment(pool, 811)
    assert (row["body"], row["title"], row["folder_id"]) == ("first words, edited", "Moved paper", 8)
    assert list(row["audience"]) == ["group:3", "group:4"]


async def test_a_late_comment_lands_where_its_document_now_is(pool, search):
    """Created in an open folder, but handled after its document moved into a group's folder: private."""
    handler = indexer.Indexer(pool)
    word = unique()
    late = created(821, f"late {word}", document_id=72)
    await handler.handle(document_updated(72, 9, ["group:3"], "Moved"))
    await handler.handle(late)
    row = await indexed_comment(pool, 821)
    assert (list(row["audience"]), row["folder_id"], row["title"]) == (["group:3"], 9, "Moved")
    assert (await search(word))["items"] == []


async def test_a_late_comment_on_a_deleted_document_stays_out(pool, search):
    """The document's deletion handled first: the comment arrives deleted, without its text."""
    handler = indexer.Indexer(pool)
    word = unique()
    late = created(831, f"orphan {word}", document_id=73)
    edit = edited(831, f"orphan edited {word}", document_id=73)
    await handler.handle(Envelope.wrap(DocumentDeleted(document_id=73, folder_id=7), actor_id=1))
    await handler.handle(late)
    await handler.handle(edit)
    row = await indexed_comment(pool, 831)
    assert (row["status"], row["body"]) == ("deleted", "")
    assert (await search(word))["items"] == []


async def test_folder_and_document_events_out_of_order_keep_the_newer_audience(pool):
    """A folder's older event handled after its document's newer one leaves the newer audience; a folder's
    newer event handled before an older comment event still applies to that comment."""
    handler = indexer.Indexer(pool)
    old_folder_word = folder_updated(10, ["public"])  # drawn first: older
    comment = created(841, "words", document_id=74, folder_id=10, audience=("public",))
    newer_document = document_updated(74, 10, ["group:5"])
    await handler.handle(comment)
    await handler.handle(newer_document)
    await handler.handle(old_folder_word)
    assert list((await indexed_comment(pool, 841))["audience"]) == ["group:5"]

    older_comment = created(842, "words", document_id=75, folder_id=11, audience=("public",))
    newer_folder = folder_updated(11, ["group:6"])
    await handler.handle(newer_folder)
    await handler.handle(older_comment)
    assert list((await indexed_comment(pool, 842))["audience"]) == ["group:6"]
