"""Helpers for the groups, directory and library tests: sample files of every accepted
kind (and some refused ones), built in code, and small API helpers."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

from services.forum.demo import tiny_pdf

# --- sample files ---------------------------------------------------------------------------------------------


def pdf_bytes(title: str = "A report") -> bytes:
    return tiny_pdf(title, ["A line of text."])


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x00\x5e\xb8" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def jpeg_bytes() -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 32 + b"\xff\xd9"


def _zip(entries: list[tuple[str, bytes]], *, stored_first: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, data) in enumerate(entries):
            method = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return out.getvalue()


OOXML_MAIN = {"docx": "word/document.xml", "pptx": "ppt/presentation.xml", "xlsx": "xl/workbook.xml"}


def ooxml_bytes(kind: str = "docx", *, macros: bool = False) -> bytes:
    """A zip shaped like a Word, PowerPoint or Excel file (the parts detection looks at)."""
    main = OOXML_MAIN[kind]
    entries = [
        ("[Content_Types].xml", b'<?xml version="1.0"?><Types/>'),
        ("_rels/.rels", b"<Relationships/>"),
        (main, b"<document/>"),
    ]
    if macros:
        entries.append((main.split("/")[0] + "/vbaProject.bin", b"\x00" * 16))
    return _zip(entries)


def odf_bytes(kind: str = "odt") -> bytes:
    mimetype = {"odt": "text", "ods": "spreadsheet", "odp": "presentation", "odg": "graphics"}[kind]
    return _zip(
        [
            ("mimetype", f"application/vnd.oasis.opendocument.{mimetype}".encode()),
            ("content.xml", b"<office:document-content/>"),
        ],
        stored_first=True,
    )


def plain_zip() -> bytes:
    return _zip([("notes.txt", b"hello")])


def cfb_bytes(streams: list[str]) -> bytes:
    """A minimal OLE2 compound file (version 3, 512-byte sectors) whose directory lists the given streams."""
    free, end, fat_sector = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", header, 40, 0, 1, 1, 0, 4096, end, 0, end, 0)
    struct.pack_into("<109I", header, 76, 0, *([free] * 108))
    fat = struct.pack("<128I", fat_sector, end, *([free] * 126))
    directory = bytearray(512)
    for index, (name, kind) in enumerate([("Root Entry", 5)] + [(s, 2) for s in streams[:3]]):
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        offset = index * 128
        directory[offset : offset + len(encoded)] = encoded
        struct.pack_into("<HB", directory, offset + 64, len(encoded), kind)
    return bytes(header) + fat + bytes(directory)


def elf_bytes() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56 + b"\x90" * 64


def pe_bytes() -> bytes:
    stub = bytearray(b"MZ\x90\x00" + b"\x00" * 124)
    struct.pack_into("<I", stub, 0x3C, 0x80)
    return bytes(stub) + b"PE\x00\x00" + b"\x00" * 64


# --- API helpers ---------------------------------------------------------------------------------------------------


async def make_folder(admin, name: str = "Reports", **fields) -> dict:
    response = await admin.client.post("/api/folders", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def make_group(admin, name: str = "Peer supporters", access: str = "open") -> dict:
    response = await admin.client.post("/api/groups", json={"name": name, "access": access})
    assert response.status_code == 201, response.text
    return response.json()


async def upload(client, folder_id, filename: str = "report.pdf", content: bytes | None = None, **fields):
    """POST /api/documents as multipart; the answer."""
    data = {"folder_id": str(folder_id), **{k: str(v) for k, v in fields.items()}}
    body = pdf_bytes() if content is None else content
    return await client.post("/api/documents", data=data, files={"file": (filename, body, "application/octet-stream")})


async def shared_document(
    member, folder_id, filename: str = "report.pdf", content: bytes | None = None, **fields
) -> dict:
    response = await upload(member.client, folder_id, filename, content, **fields)
    assert response.status_code == 201, response.text
    return response.json()


async def outbox(pool, kind: str) -> list[dict]:
    """The data of every outbox event of one type, oldest first."""
    rows = await pool.fetch("SELECT payload::text AS payload FROM forum.outbox WHERE type = $1 ORDER BY id", kind)
    return [json.loads(row["payload"])["data"] for row in rows]


async def deliver_mail(settings, redis) -> list[dict]:
    """Run the queued mail jobs; every mail in the development mailbox, oldest first."""
    from services.notify.mail import dev_mailbox_key
    from services.notify.worker import create_worker

    worker = create_worker(settings, burst=True)
    await worker.main()
    await worker.close()
    return [json.loads(raw) for raw in reversed(await redis.lrange(dev_mailbox_key(settings), 0, -1))]
