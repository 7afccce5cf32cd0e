"""The demo library: folders for the subjects this community works in, and a few small
documents in them (PDFs and text files made in code), uploaded through the library's own
checks and spread over the past months."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.forum.library import documents, folders
from services.forum.library.multipart import Upload
from services.forum.library.storage import storage_for
from shared.sessions import Session
from shared.settings import Settings

FOLDERS_DAYS_AGO = 380
PRIMARY_CARE_SLIDES = "Slides: trauma-informed approaches in primary care"
BACKDATE_FOLDERS_SQL = """
UPDATE forum.folders
SET created_at = now() - make_interval(days => $2), updated_at = now() - make_interval(days => $2)
WHERE id = ANY($1::bigint[])
"""
# A document shared some days ago: the document and its (first) version.
BACKDATE_DOCUMENT_SQL = """
UPDATE forum.documents
SET created_at = now() - make_interval(days => $2), updated_at = now() - make_interval(days => $2)
WHERE id = $1
"""
BACKDATE_VERSIONS_SQL = """
UPDATE forum.document_versions SET created_at = now() - make_interval(days => $2) WHERE document_id = $1
"""


def tiny_pdf(title: str, lines: Sequence[str]) -> bytes:
    """A small valid PDF (one page of Helvetica text), made without any library."""

    def esc(text: str) -> str:
        return (
            text.encode("latin-1", "replace")
            .decode("latin-1")
            .replace("\\", "\\\\")
            .replace("(", "\\(")
            .replace(")", "\\)")
        )

    text_ops = ["BT", "/F1 18 Tf", "72 740 Td", f"({esc(title)}) Tj", "/F1 11 Tf"]
    for line in lines:
        text_ops += ["0 -20 Td", f"({esc(line)}) Tj"]
    stream = "\n".join([*text_ops, "ET"]).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass(frozen=True)
class DemoDocument:
    folder: str
    title: str
    filename: str
    description: str
    content: bytes
    days_ago: int


# (name, description, parent): the subjects the community's documents are about.
DEMO_FOLDERS = (
    (
        "Policies and guidance",
        "Frameworks, principles, policies and practice guidance for trauma-informed care.",
        None,
    ),
    (
        "Training materials",
        "Practical tools for teams: checklists, conversation guides, templates and session plans.",
        None,
    ),
    ("Reflective practice", "Prompts and exercises for reflective practice sessions.", "Training materials"),
    (
        "Research and evaluation",
        "Evidence and evaluation: what we learned from the community of action and its projects.",
        None,
    ),
    (
        "Lived experience resources",
        "Written with and by people with lived experience of trauma: guides, stories and advice.",
        None,
    ),
    ("Webinar slides", "Slides and handouts from community webinars, to go with the recordings.", None),
)


def demo_documents() -> list[DemoDocument]:
    """The demo library's documents: small PDFs and text files made in code."""
    return [
        DemoDocument(
            "Policies and guidance",
            "The five principles of trauma-informed care",
            "five-principles.pdf",
            "A one-page summary: safety, trustworthiness, choice, collaboration and empowerment.",
            tiny_pdf(
                "The five principles of trauma-informed care",
                [
                    "Safety: physical and emotional safety for everyone.",
                    "Trustworthiness: clear expectations, consistent boundaries.",
                    "Choice: people have a say in what happens to them.",
                    "Collaboration: doing with, not doing to.",
                    "Empowerment: building on strengths.",
                ],
            ),
            days_ago=360,
        ),
        DemoDocument(
            "Research and evaluation",
            "Year one evaluation: summary",
            "year-one-evaluation.pdf",
            "The headline findings of our first year, in plain language.",
            tiny_pdf(
                "Year one evaluation: summary",
                [
                    "Members from 42 organisations took part.",
                    "Most said the community helped them change one thing in their practice.",
                ],
            ),
            days_ago=45,
        ),
        DemoDocument(
            "Training materials",
            "Checklist for a trauma-informed first appointment",
            "first-appointment.txt",
            "A short checklist to adapt for your service.",
            b"Checklist for a trauma-informed first appointment\n\n"
            b"- Explain who you are and what will happen.\n- Offer choices: where to sit, breaks, who is there.\n"
            b"- Ask what helps the person feel safe.\n- Agree how you will end and what happens next.\n",
            days_ago=150,
        ),
        DemoDocument(
            "Reflective practice",
            "Reflective practice prompts",
            "reflective-prompts.txt",
            "Questions to start a reflective practice session.",
            b"Reflective practice prompts\n\n1. What went well this week, and why?\n"
            b"2. When did you notice your own stress response?\n3. What would you like to try next time?\n",
            days_ago=90,
        ),
        DemoDocument(
            "Lived experience resources",
            "Sharing your story safely: a short guide",
            "sharing-your-story-safely.txt",
            "Written by experts by experience, for anyone thinking about telling their story at work or online.",
            b"Sharing your story safely: a short guide\n\n"
            b"- You never owe anyone your story. Sharing part of it, or none, is a real choice.\n"
            b"- Decide beforehand what you will and will not talk about, and who is with you afterwards.\n"
            b"- Ask how your words will be used, who will read them and for how long they will be kept.\n"
            b"- It is fine to stop, to change your mind and to ask for something to be taken down.\n"
            b"- Be paid for your time when you share your expertise with a service.\n",
            days_ago=120,
        ),
        DemoDocument(
            "Webinar slides",
            PRIMARY_CARE_SLIDES,
            "primary-care-webinar-slides.pdf",
            "The slides from our webinar with two GP practices, to go with the recording.",
            tiny_pdf(
                PRIMARY_CARE_SLIDES,
                [
                    "Reception teams are often the first contact, and the most overlooked in training.",
                    "Ask what matters to you? before what is wrong?",
                    "Offer choices: a quieter place to wait, a named clinician, someone with you.",
                    "Look after the team: debriefs after difficult conversations.",
                ],
            ),
            days_ago=9,
        ),
    ]


async def seed_library(conn: asyncpg.Connection, settings: Settings, *, uploader: Session) -> dict[str, int]:
    """Demo folders and a few small documents, uploaded by `uploader` (an admin's session), in the caller's
    transaction, through the library's own checks. Files go to the configured storage. The documents' ids
    by title.
    """
    folder_ids: dict[str, int] = {}
    for position, (name, description, parent) in enumerate(DEMO_FOLDERS):
        data = {
            "name": name,
            "description": description,
            "position": position,
            "parent_id": folder_ids.get(parent or ""),
        }
        folder_ids[name] = (await folders.create_folder(conn, uploader, data))["id"]
    await conn.execute(BACKDATE_FOLDERS_SQL, list(folder_ids.values()), FOLDERS_DAYS_AGO)
    scratch = documents.tmp_dir(settings)
    scratch.mkdir(parents=True, exist_ok=True)
    document_ids: dict[str, int] = {}
    for demo in demo_documents():
        fields = {"folder_id": str(folder_ids[demo.folder]), "title": demo.title, "description": demo.description}
        path = scratch / f"demo-{secrets.token_hex(8)}"
        path.write_bytes(demo.content)
        try:
            sha256 = hashlib.sha256(demo.content).hexdigest()
            upload = Upload(fields, path, demo.filename, len(demo.content), sha256)
            folder_id, checked = await documents.check_new_document(conn, uploader, upload)
            key = await documents.store(storage_for(settings), upload, checked.filetype)
            row = await documents.insert_document(conn, uploader, folder_id, documents.Stored(checked, upload, key))
        finally:
            path.unlink(missing_ok=True)
        document_ids[demo.title] = row["id"]
        await conn.execute(BACKDATE_DOCUMENT_SQL, row["id"], demo.days_ago)
        await conn.execute(BACKDATE_VERSIONS_SQL, row["id"], demo.days_ago)
    return document_ids
