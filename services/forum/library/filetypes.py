"""What kind of file an upload is, decided from its content, never from its name; and
clean file names.

The library accepts PDF, Word, PowerPoint, Excel (the current zip-based formats and the
legacy OLE2 ones), OpenDocument text, spreadsheets and presentations, plain UTF-8 text,
PNG and JPEG. Anything else, a name whose extension says another kind, or a program
renamed to look like a document, is refused (UnsupportedFile: the API answers 415).
"""

from __future__ import annotations

import codecs
import re
import struct
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class FileType:
    """One accepted kind of file."""

    kind: str
    label: str  # for people: "PDF", "Word document"
    content_type: str
    extensions: tuple[str, ...]  # the first is the one added to a name without any
    preview: str  # "inline" (the browser shows it), "text" (we show it in a page) or "none"


_TYPES = (
    FileType("pdf", "PDF", "application/pdf", ("pdf",), "inline"),
    FileType("png", "PNG image", "image/png", ("png",), "inline"),
    FileType("jpeg", "JPEG image", "image/jpeg", ("jpg", "jpeg"), "inline"),
    FileType("docx", "Word document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             ("docx",), "none"),
    FileType("pptx", "PowerPoint presentation",
             "application/vnd.openxmlformats-officedocument.presentationml.presentation", ("pptx",), "none"),
    FileType("xlsx", "Excel spreadsheet", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             ("xlsx",), "none"),
    FileType("doc", "Word document (Word 97-2003)", "application/msword", ("doc",), "none"),
    FileType("ppt", "PowerPoint presentation (PowerPoint 97-2003)", "application/vnd.ms-powerpoint", ("ppt",), "none"),
    FileType("xls", "Excel spreadsheet (Excel 97-2003)", "application/vnd.ms-excel", ("xls",), "none"),
    FileType("odt", "OpenDocument text", "application/vnd.oasis.opendocument.text", ("odt",), "none"),
    FileType("ods", "OpenDocument spreadsheet", "application/vnd.oasis.opendocument.spreadsheet", ("ods",), "none"),
    FileType("odp", "OpenDocument presentation", "application/vnd.oasis.opendocument.presentation", ("odp",), "none"),
    FileType("text", "Plain text", "text/plain; charset=utf-8", ("txt", "text", "md", "csv"), "text"),
)  # fmt: skip
TYPES: dict[str, FileType] = {t.kind: t for t in _TYPES}

ACCEPTED_TEXT = "PDF, Word, PowerPoint, Excel, OpenDocument, plain text (.txt), PNG and JPEG"
ACCEPT_ATTRIBUTE = ",".join(f".{ext}" for t in _TYPES for ext in t.extensions)  # for <input type=file accept>
FILENAME_MAX = 150


class UnsupportedFile(ValueError):
    """The file is not one the library accepts; the message says why, for people."""


# --- magic numbers -------------------------------------------------------------------------------

_PDF = b"%PDF-"
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_ZIP = b"PK\x03\x04"
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PROGRAMS = (
    b"\x7fELF",  # Linux and most Unix programs
    b"MZ",  # Windows programs and libraries (.exe, .dll, .scr)
    b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",  # Mach-O (macOS)
    b"\xca\xfe\xba\xbe",  # macOS universal programs (and Java classes)
    b"\x00asm",  # WebAssembly
)  # fmt: skip

_OPENDOCUMENT = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
}
_OOXML_PARTS = {"word/": "docx", "ppt/": "pptx", "xl/": "xlsx"}
_OLE2_STREAMS = (("WordDocument", "doc"), ("PowerPoint Document", "ppt"), ("Workbook", "xls"), ("Book", "xls"))


def _unsupported() -> UnsupportedFile:
    return UnsupportedFile(f"This kind of file cannot be shared in the library. We accept {ACCEPTED_TEXT} files.")


def detect(path: Path) -> FileType:
    """The kind of the file at path, from its content; UnsupportedFile when it is none we accept."""
    with path.open("rb") as file:
        head = file.read(16)
        if head.startswith(_PDF):
            return TYPES["pdf"]
        if head.startswith(_PNG):
            return TYPES["png"]
        if head.startswith(_JPEG):
            return TYPES["jpeg"]
        if head.startswith(_ZIP):
            return TYPES[_zip_kind(file)]
        if head.startswith(_OLE2):
            return TYPES[_ole2_kind(file)]
        file.seek(0)
        if _is_text(file):
            return TYPES["text"]
    if head.startswith(_PROGRAMS):
        raise UnsupportedFile(
            "This file is a program, and programs cannot be shared here. "
            "If you meant to share a document, check that you picked the right file."
        )
    raise _unsupported()


# --- zip-based formats: Office Open XML and OpenDocument ---------------------------------------------


def _zip_kind(file: BinaryIO) -> str:
    """docx, pptx, xlsx, odt, ods or odp; only the zip's directory and its small `mimetype` entry are read."""
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
            if "mimetype" in names:
                with archive.open("mimetype") as entry:
                    mimetype = entry.read(100).decode("ascii", "replace").strip()
                if mimetype in _OPENDOCUMENT:
                    return _OPENDOCUMENT[mimetype]
                raise _unsupported()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, RuntimeError):
        raise UnsupportedFile("This file looks damaged: it could not be opened. Try saving it again.") from None
    if "[Content_Types].xml" not in names:
        raise _unsupported()  # a plain zip archive
    if any(name.lower().endswith("vbaproject.bin") for name in names):
        raise UnsupportedFile(
            "This document contains macros, which cannot be shared here. Save it as a document without macros "
            "(for example .docx, .pptx or .xlsx) and try again."
        )
    kinds = {kind for prefix, kind in _OOXML_PARTS.items() if any(n.startswith(prefix) for n in names)}
    if len(kinds) != 1:
        raise _unsupported()
    return kinds.pop()


# --- legacy Office: the OLE2 compound file ------------------------------------------------------------

_FREE, _END_OF_CHAIN = 0xFFFFFFFF, 0xFFFFFFFE
_MAX_SECTORS = 1 << 20  # far more than a 25 MB file can have; stops a crafted loop


def _ole2_kind(file: BinaryIO) -> str:
    """doc, ppt or xls, from the names of the streams in the compound file's directory."""
    try:
        names = _ole2_stream_names(file)
    except (struct.error, ValueError, OSError):
        raise UnsupportedFile("This file looks damaged: it could not be opened. Try saving it again.") from None
    for stream, kind in _OLE2_STREAMS:
        if stream in names:
            return kind
    raise _unsupported()  # another compound file: an Outlook message, an installer (.msi), ...


def _read_sector(file: BinaryIO, sector: int, size: int) -> bytes:
    file.seek((sector + 1) * size)
    data = file.read(size)
    if len(data) != size:
        raise ValueError("truncated compound file")
    return data


def _ole2_stream_names(file: BinaryIO) -> set[str]:
    """The stream names in a compound file (MS-CFB): header, DIFAT, FAT, then the directory chain."""
    file.seek(0)
    header = file.read(512)
    if len(header) != 512:
        raise ValueError("truncated compound file")
    sector_shift = struct.unpack_from("<H", header, 30)[0]
    if sector_shift not in (9, 12):
        raise ValueError("bad sector size")
    size = 1 << sector_shift
    first_directory = struct.unpack_from("<I", header, 48)[0]
    first_difat, difat_count = struct.unpack_from("<II", header, 68)
    fat_sectors = [s for s in struct.unpack_from("<109I", header, 76) if s not in (_FREE, _END_OF_CHAIN)]
    difat, seen = first_difat, 0
    while difat not in (_FREE, _END_OF_CHAIN) and seen < min(difat_count, _MAX_SECTORS):
        values = struct.unpack(f"<{size // 4}I", _read_sector(file, difat, size))
        fat_sectors += [s for s in values[:-1] if s not in (_FREE, _END_OF_CHAIN)]
        difat, seen = values[-1], seen + 1
    fat: list[int] = []
    for sector in fat_sectors[:_MAX_SECTORS]:
        fat += struct.unpack(f"<{size // 4}I", _read_sector(file, sector, size))
    names: set[str] = set()
    sector, steps = first_directory, 0
    while sector not in (_FREE, _END_OF_CHAIN):
        steps += 1
        if steps > _MAX_SECTORS or sector >= len(fat):
            raise ValueError("bad directory chain")
        data = _read_sector(file, sector, size)
        for offset in range(0, size, 128):
            length, object_type = struct.unpack_from("<HB", data, offset + 64)
            if object_type == 2 and 2 <= length <= 64:  # a stream
                names.add(data[offset : offset + length - 2].decode("utf-16-le", "replace"))
        sector = fat[sector]
    return names


# --- plain text -----------------------------------------------------------------------------------------

# Control characters text files do not have (tab, newlines and form feed are fine).
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _is_text(file: BinaryIO, chunk_bytes: int = 1 << 16) -> bool:
    """Valid UTF-8 throughout (a BOM allowed), with no NUL or other binary control characters."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        while chunk := file.read(chunk_bytes):
            if _BINARY_CONTROLS.search(decoder.decode(chunk)):
                return False
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


# --- file names ------------------------------------------------------------------------------------------

_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')
_WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                               *(f"lpt{i}" for i in range(10))})  # fmt: skip


def clean_filename(name: str) -> str:
    """A file name safe to store and offer for download: no folders, no control or
    text-direction characters, nothing Windows refuses, at most FILENAME_MAX characters
    (the extension kept). "file" when nothing is left.
    """
    name = unicodedata.normalize("NFC", name.replace("\\", "/")).rsplit("/", 1)[-1]
    # Cc: control characters; Cf: format characters, among them the right-to-left override that
    # makes "report\u202efdp.exe" look like "reportexe.pdf"; Zl, Zp: line and paragraph separators.
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp", "Cs"))
    name = _WINDOWS_FORBIDDEN.sub("_", " ".join(name.split()))
    name = name.strip(" .")
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    if stem.lower() in _WINDOWS_RESERVED:
        stem = "_" + stem
    extension = extension[:16]
    stem = stem[: FILENAME_MAX - len(extension) - 1].rstrip(" .") if extension else stem[:FILENAME_MAX]
    if not stem:
        return f"file.{extension}" if extension else "file"
    return f"{stem}.{extension}" if extension else stem


def extension(name: str) -> str:
    """The lowercased extension of a file name ("" when it has none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def name_for(filename: str, filetype: FileType) -> str:
    """The cleaned name for a file of this type; a name without an extension gets the type's.

    UnsupportedFile when the name's extension says another kind of file than the content is.
    """
    cleaned = clean_filename(filename)
    ext = extension(cleaned)
    if not ext:
        return f"{cleaned[: FILENAME_MAX - 6]}.{filetype.extensions[0]}"
    if ext not in filetype.extensions:
        raise UnsupportedFile(
            f"The file's name ends in .{ext}, but the file is a {filetype.label}. Rename it to end in "
            f".{filetype.extensions[0]}, or check that you picked the right file."
        )
    return cleaned


def identify(path: Path, filename: str) -> tuple[FileType, str]:
    """The file's type (from its content) and its cleaned name; UnsupportedFile when refused."""
    filetype = detect(path)
    return filetype, name_for(filename, filetype)
