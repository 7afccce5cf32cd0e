"""The document library: folders, uploads checked by content and size, downloads and
previews with exact counts, versions, comments, and one visibility rule for private
groups, folders and categories across pages, the API and the audience on events."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
from library_helpers import (
    elf_bytes,
    make_folder,
    make_group,
    ooxml_bytes,
    outbox,
    pdf_bytes,
    pe_bytes,
    png_bytes,
    shared_document,
    upload,
)
from xss_corpus import PAYLOADS, assert_inert

from services.forum.library import documents

MiB = 1024 * 1024


@dataclass
class Library:
    admin: object
    member: object
    folder: dict


async def library(member_factory) -> Library:
    admin = await member_factory("ada", roles=("admin",))
    member = await member_factory("bea")
    return Library(admin, member, await make_folder(admin, "Reports", description="Evaluation reports"))


def stored_files(settings) -> set:
    """Files in storage (the data folder is shared by the run's tests: compare before and after)."""
    root = settings.data_dir / "uploads"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def temporary_files(settings) -> list:
    root = documents.tmp_dir(settings)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --- folders ----------------------------------------------------------------------------------------------------


async def test_admins_make_folders_with_one_level_of_subfolders(member_factory, client):
    lib = await library(member_factory)
    assert (await lib.member.client.post("/api/folders", json={"name": "Mine"})).status_code == 403
    sub = await make_folder(lib.admin, "Summaries", parent_id=lib.folder["id"])
    assert sub["parent_id"] == lib.folder["id"]
    deeper = await lib.admin.client.post("/api/folders", json={"name": "Too deep", "parent_id": sub["id"]})
    assert deeper.status_code == 422 and "parent_id" in deeper.json()["error"]["fields"]
    await make_folder(lib.admin, "Alpha", position=-0 or 0)
    await lib.admin.client.patch(f"/api/folders/{lib.folder['id']}", json={"position": 5})
    listed = (await client.get("/api/folders")).json()["items"]
    assert [f["name"] for f in listed] == ["Alpha", "Reports"]
    assert [s["name"] for s in listed[1]["subfolders"]] == ["Summaries"]
    assert (await lib.admin.client.delete(f"/api/folders/{lib.folder['id']}")).status_code == 409
    assert (await lib.admin.client.delete(f"/api/folders/{sub['id']}")).status_code == 204


async def test_admins_manage_folders_with_the_folder_form(member_factory):
    lib = await library(member_factory)
    group = await make_group(lib.admin, "Facilitators")
    csrf = lib.admin.session.csrf
    form = await lib.admin.client.get("/library/folders/new")
    assert f'value="{lib.folder["id"]}"' in form.text and f'value="{group["id"]}"' in form.text
    assert (await lib.member.client.get("/library/folders/new")).status_code == 403
    missing = await lib.admin.client.post("/library/folders/new", data={"csrf_token": csrf, "name": ""})
    assert missing.status_code == 422 and "Give the folder a name" in missing.text
    created = await lib.admin.client.post(
        "/library/folders/new",
        data={
            "csrf_token": csrf,
            "name": "Facilitation",
            "parent_id": str(lib.folder["id"]),
            "group_ids": [str(group["id"])],
            "position": "2",
        },
    )
    assert created.status_code == 303
    folder_id = int(created.headers["location"].rsplit("/", 1)[1])
    folder = (await lib.admin.client.get(f"/api/folders/{folder_id}")).json()
    assert folder["parent_id"] == lib.folder["id"] and folder["group_ids"] == [group["id"]] and folder["position"] == 2
    assert (await lib.member.client.get(f"/library/folders/{folder_id}")).status_code == 404
    edited = await lib.admin.client.post(
        f"/library/folders/{folder_id}/edit", data={"csrf_token": csrf, "name": "Facilitation notes"}
    )
    assert edited.status_code == 303
    assert (await lib.member.client.get(f"/library/folders/{folder_id}")).status_code == 200  # no groups ticked


async def test_a_subfolder_can_only_narrow_to_its_parents_groups(member_factory):
    lib = await library(member_factory)
    one = await make_group(lib.admin, "One")
    two = await make_group(lib.admin, "Two")
    parent = await make_folder(lib.admin, "Private", group_ids=[one["id"]])
    refused = await lib.admin.client.post(
        "/api/folders", json={"name": "Sub", "parent_id": parent["id"], "group_ids": [two["id"]]}
    )
    assert refused.status_code == 422 and "group_ids" in refused.json()["error"]["fields"]
    sub = await make_folder(lib.admin, "Sub", parent_id=parent["id"], group_ids=[one["id"]])
    narrowed = await lib.admin.client.patch(f"/api/folders/{parent['id']}", json={"group_ids": [two["id"]]})
    assert narrowed.status_code == 422  # the subfolder would be left with other groups
    unknown = await lib.admin.client.post("/api/folders", json={"name": "X", "group_ids": [999999]})
    assert unknown.status_code == 422
    assert sub["group_ids"] == [one["id"]]


# --- uploading, downloading, previewing ---------------------------------------------------------------------------


async def test_a_shared_pdf_downloads_as_an_attachment_with_its_detected_type(member_factory, pool, settings):
    lib = await library(member_factory)
    before = stored_files(settings)
    content = pdf_bytes("Year one")
    response = await upload(
        lib.member.client, lib.folder["id"], "Year one évaluation.pdf", content, description="The summary"
    )
    assert response.status_code == 201, response.text
    document = response.json()
    assert document["title"] == "Year one évaluation" and document["description"] == "The summary"
    assert document["file"] == {
        **document["file"],
        "filename": "Year one évaluation.pdf",
        "kind": "pdf",
        "content_type": "application/pdf",
        "size_bytes": len(content),
    }
    assert document["uploader"]["username"] == "bea" and document["preview"] == "inline"
    assert len(stored_files(settings) - before) == 1 and temporary_files(settings) == []

    download = await lib.member.client.get(f"/api/documents/{document['id']}/download")
    assert download.status_code == 200 and download.content == content
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["x-content-type-options"] == "nosniff"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Year one _valuation.pdf"; ')
    assert unquote(re.search(r"filename\*=UTF-8''(\S+)", disposition).group(1)) == "Year one évaluation.pdf"
    again = await lib.member.client.get(f"/library/documents/{document['id']}/download")
    assert again.content == content
    head = await lib.member.client.head(f"/api/documents/{document['id']}/download")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(content))  # not counted
    counts = (await lib.member.client.get(f"/api/documents/{document['id']}")).json()["counts"]
    assert counts == {"downloads": 2, "previews": 0, "unique_downloads": 1, "unique_previews": 0, "comments": 0}
    [event] = await outbox(pool, "document.uploaded")
    assert event["audience"] == ["public"] and event["document_version"] == 1 and event["uploader_username"] == "bea"
    sha = await pool.fetchval("SELECT sha256 FROM forum.document_versions")
    assert sha == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("name", "content", "kind", "csp"),
    [
        ("report.pdf", pdf_bytes(), "application/pdf", "sandbox allow-scripts"),
        ("chart.png", png_bytes(), "image/png", "sandbox"),
    ],
)
async def test_previews_are_inline_and_sandboxed(member_factory, client, name, content, kind, csp):
    lib = await library(member_factory)
    document = await shared_document(lib.member, lib.folder["id"], name, content)
    for path in (f"/api/documents/{document['id']}/preview", f"/library/documents/{document['id']}/preview"):
        preview = await client.get(path)
        assert preview.status_code == 200 and preview.content == content
        assert preview.headers["content-type"] == kind
        assert preview.headers["content-disposition"].startswith("inline; ")
        assert preview.headers["x-content-type-options"] == "nosniff"
        assert csp in preview.headers.get_list("content-security-policy")
    counts = (await client.get(f"/api/documents/{document['id']}")).json()["counts"]
    assert counts["previews"] == 2 and counts["unique_previews"] == 0  # anonymous views count, but not as members


async def test_text_previews_are_escaped_in_a_page(member_factory):
    lib = await library(member_factory)
    text = "Notes <script>alert(1)</script> & <img src=x onerror=alert(1)>\nline two\n"
    document = await shared_document(lib.member, lib.folder["id"], "notes.txt", text.encode())
    page = await lib.member.client.get(f"/library/documents/{document['id']}/preview")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img" in page.text
    assert_inert(page.text, page=True, allow_script_src=True)
    raw = await lib.member.client.get(f"/api/documents/{document['id']}/preview")
    assert raw.headers["content-type"] == "text/plain; charset=utf-8" and "sandbox" in raw.headers.get_list(
        "content-security-policy"
    )
    counts = (await lib.member.client.get(f"/api/documents/{document['id']}")).json()["counts"]
    assert counts["previews"] == 2 and counts["unique_previews"] == 1


async def test_other_kinds_have_no_preview_but_download(member_factory):
    lib = await library(member_factory)
    document = await shared_document(lib.member, lib.folder["id"], "plan.docx", ooxml_bytes("docx"))
    assert document["preview"] == "none"
    refused = await lib.member.client.get(f"/api/documents/{document['id']}/preview")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_preview"
    page = await lib.member.client.get(f"/library/documents/{document['id']}/preview")
    assert page.status_code == 200 and "A preview is not available" in page.text
    assert (await lib.member.client.get(f"/api/documents/{document['id']}")).json()["counts"]["previews"] == 0


# --- bad uploads ----------------------------------------------------------------------------------------------------


class CountingBody:
    """A request body streamed in chunks, counting how many the server asked for."""

    def __init__(self, head: bytes, chunk: bytes, chunks: int, tail: bytes) -> None:
        self.head, self.chunk, self.chunks, self.tail = head, chunk, chunks, tail
        self.sent = 0

    async def __aiter__(self):
        yield self.head
        for _ in range(self.chunks):
            self.sent += 1
            yield self.chunk
        yield self.tail


def multipart_parts(folder_id: int, filename: bytes) -> tuple[bytes, bytes, str]:
    boundary = "tica-test-boundary"
    head = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="folder_id"\r\n\r\n{folder_id}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'
        ).encode()
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    return head, f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def test_an_upload_declared_too_large_is_refused_before_any_of_it_is_read(member_factory, settings):
    lib = await library(member_factory)
    before = stored_files(settings)
    head, tail, content_type = multipart_parts(lib.folder["id"], b"big.pdf")
    body = CountingBody(head + b"%PDF-1.4\n", b"x" * MiB, 100, tail)
    response = await lib.member.client.post(
        "/api/documents",
        content=body,
        headers={"content-type": content_type, "content-length": str(len(head) + 9 + 100 * MiB + len(tail))},
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert "25 MB" in response.json()["error"]["message"]
    assert body.sent == 0
    assert stored_files(settings) == before and temporary_files(settings) == []


async def test_a_streamed_upload_stops_being_read_once_too_large(member_factory, settings, pool):
    """Without a declared length, reading stops at the limit: the rest of the body is never asked for."""
    lib = await library(member_factory)
    before = stored_files(settings)
    head, tail, content_type = multipart_parts(lib.folder["id"], b"big.pdf")
    body = CountingBody(head + b"%PDF-1.4\n", b"x" * MiB, 100, tail)
    response = await lib.member.client.post("/api/documents", content=body, headers={"content-type": content_type})
    assert response.status_code == 413
    limit_chunks = settings.max_upload_bytes // MiB
    assert limit_chunks <= body.sent <= limit_chunks + 2, body.sent
    assert stored_files(settings) == before and temporary_files(settings) == []
    assert await pool.fetchval("SELECT count(*) FROM forum.documents") == 0


async def test_an_upload_just_within_the_limit_is_accepted(member_factory, settings):
    lib = await library(member_factory)
    content = b"a line of text\n" * ((settings.max_upload_bytes - 16) // 15)
    response = await upload(lib.member.client, lib.folder["id"], "long.txt", content)
    assert response.status_code == 201 and response.json()["file"]["size_bytes"] == len(content)


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("report.pdf", elf_bytes(), "program"),
        ("report.pdf", pe_bytes(), "program"),
        ("setup.docx", pe_bytes(), "program"),
        ("photo.docx", png_bytes(), "ends in .docx, but the file is a PNG image"),
        ("report.pdf", ooxml_bytes("docx"), "ends in .pdf, but the file is a Word document"),
        ("macro.docx", ooxml_bytes("docx", macros=True), "macros"),
        ("page.html", b"<html><script>alert(1)</script></html>", "ends in .html"),
    ],
)
async def test_refused_kinds_and_mismatched_names_get_415(member_factory, settings, pool, name, content, says):
    """Renamed programs, names that say another kind, and macro documents: 415, and nothing is kept."""
    lib = await library(member_factory)
    before = stored_files(settings)
    response = await upload(lib.member.client, lib.folder["id"], name, content)
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type" and says in error["message"] and "file" in error["fields"]
    assert stored_files(settings) == before and temporary_files(settings) == []
    assert await pool.fetchval("SELECT count(*) FROM forum.documents") == 0


async def raw_upload(member, folder_id: int, filename: bytes, content: bytes):
    head, tail, content_type = multipart_parts(folder_id, filename)
    return await member.client.post(
        "/api/documents", content=head + content + tail, headers={"content-type": content_type}
    )


@pytest.mark.parametrize(
    ("sent", "content", "kept"),
    [
        (b"../../etc/passwd", b"root:x:0:0\n", "passwd.txt"),
        (b"C:\\x\\y.pdf", pdf_bytes(), "y.pdf"),
        (b"/var/www/../../secret.pdf", pdf_bytes(), "secret.pdf"),
        (b"notes\x07\x1b[31m.txt", b"hello\n", "notes[31m.txt"),
        ("report\u202etxt.pdf".encode(), pdf_bytes(), "reporttxt.pdf"),  # the override would show "reportfdp.txt"
        ("a\u200bb.txt".encode(), b"hello\n", "ab.txt"),
        (("x" * 400 + ".pdf").encode(), pdf_bytes(), "x" * 146 + ".pdf"),
    ],
)
async def test_path_tricks_and_control_characters_in_names_are_cleaned(member_factory, sent, content, kept):
    lib = await library(member_factory)
    response = await raw_upload(lib.member, lib.folder["id"], sent, content)
    assert response.status_code == 201, response.text
    assert response.json()["file"]["filename"] == kept
    download = await lib.member.client.get(response.json()["download_url"])
    assert "/" not in download.headers["content-disposition"].split("filename=")[1].split(";")[0]


async def test_malformed_or_cut_off_uploads_are_400(member_factory, settings, pool):
    lib = await library(member_factory)
    head, _tail, content_type = multipart_parts(lib.folder["id"], b"a.pdf")
    garbage = await lib.member.client.post(
        "/api/documents", content=b"not multipart at all", headers={"content-type": content_type}
    )
    assert garbage.status_code == 400 and "malformed" in garbage.json()["error"]["message"]
    cut = await lib.member.client.post(
        "/api/documents", content=head + pdf_bytes()[:50], headers={"content-type": content_type}
    )
    assert cut.status_code == 400 and "cut off" in cut.json()["error"]["message"]
    no_boundary = await lib.member.client.post(
        "/api/documents", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 415
    assert temporary_files(settings) == [] and await pool.fetchval("SELECT count(*) FROM forum.documents") == 0


async def test_an_empty_file_or_none_is_422(member_factory, settings):
    lib = await library(member_factory)
    empty = await upload(lib.member.client, lib.folder["id"], "empty.pdf", b"")
    assert empty.status_code == 422 and empty.json()["error"]["fields"] == {"file": "The selected file is empty"}
    none = await lib.member.client.post(
        "/api/documents", data={"folder_id": str(lib.folder["id"])}, files={"other": ("x.txt", b"x")}
    )
    assert none.status_code == 400  # a file in another field
    missing = await lib.member.client.post(
        "/api/documents", data={"folder_id": str(lib.folder["id"])}, files={"file": ("", b"")}
    )
    assert missing.status_code == 422 and "file" in missing.json()["error"]["fields"]
    assert temporary_files(settings) == []


async def test_other_bad_requests_get_clear_errors(member_factory, client):
    lib = await library(member_factory)
    assert (await upload(client, lib.folder["id"])).status_code == 401
    not_form = await lib.member.client.post("/api/documents", json={"folder_id": lib.folder["id"]})
    assert not_form.status_code == 415
    no_folder = await lib.member.client.post("/api/documents", files={"file": ("a.pdf", pdf_bytes())})
    assert no_folder.status_code == 422 and "folder_id" in no_folder.json()["error"]["fields"]
    assert (await upload(lib.member.client, 999999)).status_code == 404
    assert (await upload(lib.member.client, "x")).status_code == 422
    long_title = await upload(lib.member.client, lib.folder["id"], title="t" * 201)
    assert long_title.status_code == 422 and "title" in long_title.json()["error"]["fields"]
    big_json = await lib.member.client.post(
        "/api/documents/1/comments",
        content=b'{"body": "' + b"x" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert big_json.status_code == 413  # uploads' paths keep the usual limit for JSON


async def test_members_must_confirm_their_email_before_sharing(member_factory, pool):
    lib = await library(member_factory)
    await pool.execute("UPDATE forum.users SET email_verified_at = NULL WHERE id = $1", lib.member.id)
    response = await upload(lib.member.client, lib.folder["id"])
    assert response.status_code == 403 and response.json()["error"]["code"] == "email_not_verified"


# --- versions, changes ----------------------------------------------------------------------------------------------


async def test_new_versions_keep_the_old_ones(member_factory, pool):
    lib = await library(member_factory)
    other = await member_factory("cai")
    first = pdf_bytes("First")
    document = await shared_document(lib.member, lib.folder["id"], "plan.pdf", first)
    second = b"The plan, second version\n"
    refused = await other.client.post(f"/api/documents/{document['id']}/versions", files={"file": ("plan.txt", second)})
    assert refused.status_code == 403
    response = await lib.member.client.post(
        f"/api/documents/{document['id']}/versions", data={"note": "Updated"}, files={"file": ("plan.txt", second)}
    )
    assert response.status_code == 201, response.text
    updated = response.json()
    assert updated["current_version"] == 2 and updated["file"]["kind"] == "text"
    assert [(v["version"], v["filename"], v["note"]) for v in updated["versions"]] == [
        (2, "plan.txt", "Updated"),
        (1, "plan.pdf", ""),
    ]
    assert (await lib.member.client.get(f"/api/documents/{document['id']}/download")).content == second
    assert (await lib.member.client.get(f"/api/documents/{document['id']}/download?version=1")).content == first
    assert (await lib.member.client.get(f"/api/documents/{document['id']}/download?version=3")).status_code == 404
    versions = [e["document_version"] for e in await outbox(pool, "document.uploaded")]
    assert versions == [1, 2]


async def test_only_the_uploader_or_staff_change_or_delete_a_document(member_factory, client, pool):
    lib = await library(member_factory)
    other = await member_factory("cai")
    moderator = await member_factory("mod", roles=("moderator",))
    second = await make_folder(lib.admin, "Tools")
    document = await shared_document(lib.member, lib.folder["id"])
    url = f"/api/documents/{document['id']}"
    assert (await other.client.patch(url, json={"title": "Mine"})).status_code == 403
    moved = await lib.member.client.patch(url, json={"title": "Renamed", "folder_id": second["id"]})
    assert moved.status_code == 200 and moved.json()["folder"]["id"] == second["id"]
    assert (await lib.member.client.patch(url, json={"folder_id": 999999})).status_code == 422
    [event] = await outbox(pool, "document.updated")
    assert event["title"] == "Renamed" and event["folder_id"] == second["id"] and event["audience"] == ["public"]
    assert (await other.client.delete(url)).status_code == 403
    assert (await moderator.client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.get(url + "/download")).status_code == 404
    assert [e["document_id"] for e in await outbox(pool, "document.deleted")] == [document["id"]]


# --- counting ---------------------------------------------------------------------------------------------------------


async def test_concurrent_downloads_and_previews_are_counted_exactly(member_factory, pool):
    """50 downloads at once count 50; members are counted once each, however many times they look."""
    lib = await library(member_factory)
    others = [await member_factory(f"reader{i}") for i in range(4)]
    document = await shared_document(lib.member, lib.folder["id"], "notes.txt", b"some notes\n")
    url = f"/api/documents/{document['id']}"
    clients = [lib.member.client, *(m.client for m in others)]
    downloads = await asyncio.gather(*(clients[i % 5].get(url + "/download") for i in range(50)))
    previews = await asyncio.gather(*(clients[i % 5].get(url + "/preview") for i in range(20)))
    assert {r.status_code for r in downloads + previews} == {200}
    counts = (await lib.member.client.get(url)).json()["counts"]
    assert counts == {"downloads": 50, "previews": 20, "unique_downloads": 5, "unique_previews": 5, "comments": 0}
    assert await pool.fetchval("SELECT count(*) FROM forum.document_views") == 10


async def test_counts_show_in_the_folder_and_the_library(member_factory, client):
    lib = await library(member_factory)
    sub = await make_folder(lib.admin, "Summaries", parent_id=lib.folder["id"])
    top_doc = await shared_document(lib.member, lib.folder["id"], "a.pdf")
    sub_doc = await shared_document(lib.member, sub["id"], "b.txt", b"text\n")
    for _ in range(3):
        await client.get(f"/api/documents/{top_doc['id']}/download")
    await client.get(f"/api/documents/{sub_doc['id']}/download")
    await client.get(f"/api/documents/{sub_doc['id']}/preview")
    folder = (await client.get(f"/api/folders/{lib.folder['id']}")).json()
    assert (folder["documents_count"], folder["downloads_count"], folder["previews_count"]) == (2, 4, 1)
    assert [d["counts"]["downloads"] for d in folder["documents"]] == [3]
    assert folder["subfolders"][0]["downloads_count"] == 1
    page = await client.get(f"/library/folders/{lib.folder['id']}")
    assert page.status_code == 200 and "2 documents" in page.text and "4 downloads" in page.text
    home = await client.get("/library")
    assert "Reports" in home.text and "Summaries" in home.text and "1 preview" in home.text
    document_page = await client.get(f"/library/documents/{top_doc['id']}")
    assert "3 (by 0 members)" in document_page.text


# --- comments ---------------------------------------------------------------------------------------------------------


async def test_comments_use_the_markdown_pipeline_and_record_events(member_factory, pool):
    lib = await library(member_factory)
    other = await member_factory("cai")
    document = await shared_document(lib.member, lib.folder["id"])
    url = f"/api/documents/{document['id']}/comments"
    created = await other.client.post(url, json={"body": "**Useful**, thanks @bea <script>x</script>"})
    assert created.status_code == 201, created.text
    comment = created.json()
    assert "<strong>Useful</strong>" in comment["cooked"] and "<script>" not in comment["cooked"]
    assert 'href="/u/bea"' in comment["cooked"]
    [event] = await outbox(pool, "document.comment_created")
    assert event["audience"] == ["public"] and event["mentioned_user_ids"] == [lib.member.id]
    assert event["document_uploader_id"] == lib.member.id and event["text"].startswith("Useful, thanks @bea")
    assert (
        await lib.member.client.patch(f"/api/document-comments/{comment['id']}", json={"body": "Not mine"})
    ).status_code == 403
    edited = await other.client.patch(f"/api/document-comments/{comment['id']}", json={"body": "Very useful"})
    assert edited.status_code == 200 and edited.json()["revision"] == 2
    [edit_event] = await outbox(pool, "document.comment_edited")
    assert edit_event["text"] == "Very useful" and edit_event["revision"] == 2
    assert await pool.fetchval("SELECT raw FROM forum.document_comment_revisions") == comment["raw"]
    listed = (await lib.member.client.get(url)).json()["items"]
    assert [c["cooked"] for c in listed] == ["<p>Very useful</p>"]
    assert (await lib.member.client.get(f"/api/documents/{document['id']}")).json()["counts"]["comments"] == 1
    assert (await other.client.delete(f"/api/document-comments/{comment['id']}")).status_code == 204
    assert (await lib.member.client.get(url)).json()["items"] == []
    assert (await lib.member.client.get(f"/api/documents/{document['id']}")).json()["counts"]["comments"] == 0
    assert [e["comment_id"] for e in await outbox(pool, "document.comment_deleted")] == [comment["id"]]
    assert (await other.client.post(url, json={"body": "   "})).status_code == 422


async def test_comments_take_reactions_and_flags(member_factory):
    lib = await library(member_factory)
    document = await shared_document(lib.member, lib.folder["id"])
    comment = (await lib.member.client.post(f"/api/documents/{document['id']}/comments", json={"body": "Hello"})).json()
    url = f"/api/document-comments/{comment['id']}"
    given = await lib.admin.client.post(url + "/reactions", json={"kind": "heart"})
    assert given.status_code == 201 and given.json() == {"reactions": {"heart": 1}, "my_reactions": ["heart"]}
    assert (await lib.admin.client.post(url + "/reactions", json={"kind": "heart"})).status_code == 200
    assert (await lib.admin.client.post(url + "/reactions", json={"kind": "angry"})).status_code == 422
    assert (await lib.admin.client.delete(url + "/reactions/heart")).status_code == 204
    assert (await lib.admin.client.delete(url + "/reactions/heart")).status_code == 404
    flagged = await lib.admin.client.post(url + "/flags", json={"reason": "safeguarding", "note": "Please check"})
    assert flagged.status_code == 201
    assert (await lib.admin.client.post(url + "/flags", json={"reason": "spam"})).status_code == 409
    page_react = await lib.admin.client.post(
        f"/library/comments/{comment['id']}/react", data={"csrf_token": lib.admin.session.csrf, "kind": "hug"}
    )
    assert page_react.status_code == 303
    listed = (await lib.admin.client.get(f"/api/documents/{document['id']}/comments")).json()["items"]
    assert listed[0]["reactions"] == {"hug": 1} and listed[0]["my_reactions"] == ["hug"]


async def test_the_document_page_shows_comments_inert(member_factory):
    lib = await library(member_factory)
    document = await shared_document(
        lib.member, lib.folder["id"], title="<b>Title</b>", description="<script>alert(1)</script>"
    )
    for payload in PAYLOADS[:40]:
        response = await lib.member.client.post(f"/api/documents/{document['id']}/comments", json={"body": payload})
        assert response.status_code in (201, 422), response.text
    page = await lib.member.client.get(f"/library/documents/{document['id']}")
    assert page.status_code == 200 and page.text.count("<h1") == 1
    assert "&lt;b&gt;Title&lt;/b&gt;" in page.text
    assert_inert(page.text, page=True, allow_script_src=True)


async def test_commenting_and_editing_through_the_pages(member_factory):
    lib = await library(member_factory)
    document = await shared_document(lib.member, lib.folder["id"])
    csrf = lib.member.session.csrf
    url = f"/library/documents/{document['id']}"
    empty = await lib.member.client.post(url + "/comments", data={"csrf_token": csrf, "body": ""})
    assert empty.status_code == 422 and "Write a comment first" in empty.text
    posted = await lib.member.client.post(url + "/comments", data={"csrf_token": csrf, "body": "A *kind* word"})
    assert posted.status_code == 303 and "#comment-" in posted.headers["location"]
    comment_id = int(posted.headers["location"].rsplit("-", 1)[1])
    page = await lib.member.client.get(url)
    assert "<em>kind</em>" in page.text and "Your comment was posted." not in page.text
    edited = await lib.member.client.post(
        f"/library/comments/{comment_id}/edit", data={"csrf_token": csrf, "body": "A kinder word"}
    )
    assert edited.status_code == 303
    assert "A kinder word" in (await lib.member.client.get(url)).text
    deleted = await lib.member.client.post(f"/library/comments/{comment_id}/delete", data={"csrf_token": csrf})
    assert deleted.status_code == 303 and "A kinder word" not in (await lib.member.client.get(url)).text


# --- the upload pages -------------------------------------------------------------------------------------------------


async def test_the_upload_form_shares_a_document(member_factory, client):
    lib = await library(member_factory)
    assert (await client.get("/library/upload")).status_code == 303
    form = await lib.member.client.get(f"/library/upload?folder={lib.folder['id']}")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    assert f'<option value="{lib.folder["id"]}" selected>' in form.text
    data = {"csrf_token": lib.member.session.csrf, "folder_id": str(lib.folder["id"]), "title": "Shared by form"}
    no_token = await lib.member.client.post(
        "/library/upload", data={**data, "csrf_token": "wrong"}, files={"file": ("a.pdf", pdf_bytes())}
    )
    assert no_token.status_code == 403
    wrong = await lib.member.client.post("/library/upload", data=data, files={"file": ("a.pdf", png_bytes())})
    assert wrong.status_code == 415 and "There is a problem" in wrong.text and "PNG image" in wrong.text
    done = await lib.member.client.post("/library/upload", data=data, files={"file": ("a.pdf", pdf_bytes())})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=uploaded")
    page = await lib.member.client.get(done.headers["location"])
    assert "Shared by form" in page.text and "Thank you for sharing it" in page.text


async def test_the_version_form_uploads_a_new_version(member_factory):
    lib = await library(member_factory)
    document = await shared_document(lib.member, lib.folder["id"])
    data = {"csrf_token": lib.member.session.csrf, "note": "Fixed a typo"}
    done = await lib.member.client.post(
        f"/library/upload/{document['id']}", data=data, files={"file": ("report.pdf", pdf_bytes("Second"))}
    )
    assert done.status_code == 303
    page = await lib.member.client.get(done.headers["location"])
    assert "Version 2" in page.text and "Fixed a typo" in page.text


# --- one visibility rule ----------------------------------------------------------------------------------------------


@dataclass
class Private:
    group: dict
    folder: dict
    subfolder: dict
    document: dict
    sub_document: dict
    comment: dict
    category: dict
    topic: dict


async def private_things(admin, insider) -> Private:
    """A private group; its folder (and an inheriting subfolder), documents, a comment; its category and topic."""
    group = await make_group(admin, "Survivors circle", "private")
    await admin.client.post(f"/api/groups/{group['id']}/members", json={"username": insider.username})
    folder = await make_folder(admin, "Circle papers", group_ids=[group["id"]])
    subfolder = await make_folder(admin, "Circle notes", parent_id=folder["id"])
    document = await shared_document(insider, folder["id"], "circle.pdf")
    sub_document = await shared_document(insider, subfolder["id"], "notes.txt", b"private notes\n")
    comment = (
        await insider.client.post(f"/api/documents/{document['id']}/comments", json={"body": "Only for us"})
    ).json()
    category = (await admin.client.post("/api/categories", json={"name": "Circle", "group_ids": [group["id"]]})).json()
    topic = await insider.client.post(
        "/api/topics",
        json={"category_id": category["id"], "title": "Our circle", "body": "Welcome, everyone in the circle"},
    )
    assert topic.status_code == 201, topic.text
    return Private(group, folder, subfolder, document, sub_document, comment, category, topic.json())


def private_reads(p: Private) -> list[str]:
    """Every path that reads something private, on pages and in the API."""
    d, s, f, sf = p.document["id"], p.sub_document["id"], p.folder["id"], p.subfolder["id"]
    return [
        f"/api/folders/{f}",
        f"/api/folders/{sf}",
        f"/api/documents/{d}",
        f"/api/documents/{s}",
        f"/api/documents/{d}/download",
        f"/api/documents/{d}/preview",
        f"/api/documents/{s}/download",
        f"/api/documents/{d}/comments",
        f"/api/groups/{p.group['id']}",
        f"/api/groups/{p.group['id']}/members",
        f"/library/folders/{f}",
        f"/library/folders/{sf}",
        f"/library/documents/{d}",
        f"/library/documents/{s}",
        f"/library/documents/{d}/download",
        f"/library/documents/{d}/preview",
        f"/library/documents/{s}/preview",
        f"/groups/{p.group['slug']}",
        f"/c/{p.category['slug']}",
        f"/api/topics/{p.topic['id']}",
        f"/t/{p.topic['id']}",
    ]


async def private_writes(client, p: Private) -> list[int]:
    d, c = p.document["id"], p.comment["id"]
    return [
        (await client.post(f"/api/documents/{d}/comments", json={"body": "Hi"})).status_code,
        (await client.patch(f"/api/document-comments/{c}", json={"body": "Hi"})).status_code,
        (await client.post(f"/api/document-comments/{c}/reactions", json={"kind": "like"})).status_code,
        (await client.post(f"/api/document-comments/{c}/flags", json={"reason": "spam"})).status_code,
        (await client.post(f"/api/documents/{d}/versions", files={"file": ("x.pdf", pdf_bytes())})).status_code,
        (await upload(client, p.folder["id"])).status_code,
        (await upload(client, p.subfolder["id"])).status_code,
    ]


async def test_private_groups_folders_and_categories_are_404_to_outsiders(member_factory, client):
    """The authorization matrix: outsiders and anonymous viewers get 404 on every page and API path;
    members of the group and staff read everything; lists leave the private things out."""
    admin = await member_factory("ada", roles=("admin",))
    insider = await member_factory("ins")
    outsider = await member_factory("out")
    moderator = await member_factory("mod", roles=("moderator",))
    p = await private_things(admin, insider)
    for who, name in ((client, "anonymous"), (outsider.client, "outsider")):
        for path in private_reads(p):
            response = await who.get(path)
            expected = (401,) if name == "anonymous" and path.endswith("/members") else (404,)
            assert response.status_code in expected, (name, path, response.status_code)
            assert "Circle" not in response.text and "circle.pdf" not in response.text, (name, path)
        assert [f["name"] for f in (await who.get("/api/folders")).json()["items"]] == []
        assert "Circle" not in (await who.get("/library")).text
        assert "Circle" not in (await who.get("/groups")).text
        assert [c["name"] for c in (await who.get("/api/categories")).json()["items"]] == []
    assert set(await private_writes(outsider.client, p)) == {404}
    assert set(await private_writes(client, p)) == {401}
    for who in (insider.client, moderator.client):
        for path in private_reads(p):
            response = await who.get(path, follow_redirects=True)
            assert response.status_code == 200, (path, response.status_code, response.text[:200])
        assert [f["name"] for f in (await who.get("/api/folders")).json()["items"]] == ["Circle papers"]


async def test_joining_the_group_opens_everything_in_the_same_session(member_factory):
    """Membership changes reach the member's live session: no new login is needed, either way."""
    admin = await member_factory("ada", roles=("admin",))
    insider = await member_factory("ins")
    newcomer = await member_factory("new")
    p = await private_things(admin, insider)
    assert (await newcomer.client.get(f"/library/documents/{p.document['id']}")).status_code == 404
    added = await insider.client.get(f"/api/groups/{p.group['id']}")  # the insider sees the group
    assert added.status_code == 200
    await admin.client.post(f"/api/groups/{p.group['id']}/members", json={"username": "new"})
    for path in private_reads(p):
        assert (await newcomer.client.get(path, follow_redirects=True)).status_code == 200, path
    await admin.client.delete(f"/api/groups/{p.group['id']}/members/{newcomer.id}")
    for path in private_reads(p):
        assert (await newcomer.client.get(path)).status_code == 404, path


async def test_events_carry_the_audience_of_private_things(member_factory, pool):
    """Search and notify see the same rule: private documents and comments carry their groups."""
    admin = await member_factory("ada", roles=("admin",))
    insider = await member_factory("ins")
    p = await private_things(admin, insider)
    audience = [f"group:{p.group['id']}"]
    uploaded = await outbox(pool, "document.uploaded")
    assert [e["audience"] for e in uploaded] == [audience, audience]  # the subfolder inherits its parent's groups
    [comment] = await outbox(pool, "document.comment_created")
    assert comment["audience"] == audience and comment["text"] == "Only for us"
    folders = {e["folder_id"]: e["audience"] for e in await outbox(pool, "folder.updated")}
    assert folders == {p.folder["id"]: audience, p.subfolder["id"]: audience}
    [post] = await outbox(pool, "post.created")
    assert post["audience"] == audience
    await admin.client.patch(f"/api/folders/{p.folder['id']}", json={"group_ids": []})
    opened = {e["folder_id"]: e["audience"] for e in (await outbox(pool, "folder.updated"))[2:]}
    assert opened == {p.folder["id"]: ["public"], p.subfolder["id"]: ["public"]}


async def test_staff_see_private_folders_groups(member_factory):
    admin = await member_factory("ada", roles=("admin",))
    insider = await member_factory("ins")
    p = await private_things(admin, insider)
    staff_view = (await admin.client.get(f"/api/folders/{p.folder['id']}")).json()
    member_view = (await insider.client.get(f"/api/folders/{p.folder['id']}")).json()
    assert staff_view["group_ids"] == [p.group["id"]] and "group_ids" not in member_view
    assert member_view["private"] is True
