"""Reading a multipart/form-data upload as a stream: its small text fields, and its one file
saved to a temporary file, stopping with 413 as soon as the body is too large, never after
reading all of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from shared.web import ApiError

FORM_OVERHEAD_BYTES = 64 * 1024  # room for the boundaries and the small fields beside the file
FIELD_MAX_BYTES = 16 * 1024
MAX_FIELDS = 20


def size_text(size: int) -> str:
    """A size as people read it: "812 bytes", "34 KB", "2.5 MB"."""
    if size < 1024:
        return f"{size} byte{'s' if size != 1 else ''}"
    if size < 1024 * 1024:
        return f"{size // 1024} KB"
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


@dataclass
class Upload:
    """A multipart upload: its small fields and its one file, saved to a temporary file."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str = ""
    size: int = 0
    sha256: str = ""

    def discard(self) -> None:
        """Delete the temporary file (always call when done with the upload)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The file is too large. Files can be up to {size_text(max_bytes)}.",
        {"file": f"The file must be smaller than {size_text(max_bytes)}"},
    )


class _Multipart:
    """python-multipart callbacks that keep the fields and stream the file part to disk.

    The callbacks run inside parser.write(); they only collect. The caller writes the
    collected file bytes to disk and checks the limits between chunks.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self.upload = Upload()
        self.handle = handle
        self.hash = hashlib.sha256()
        self.pending = bytearray()
        self.error: ApiError | None = None
        self.ended = False  # the closing boundary was seen: the body is complete
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._seen_file = False
        self._data = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_end": self.end,
        }

    def fail(self, status: int, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        if self.error is None:
            self.error = ApiError(status, code, message, fields)

    def end(self) -> None:
        self.ended = True

    def part_begin(self) -> None:
        self._disposition, self._name, self._is_file = b"", "", False
        self._data = bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name, self._header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.upload.fields) >= MAX_FIELDS:
                self.fail(400, "bad_request", "The form has too many fields.")
            return
        filename = options[b"filename"].decode("utf-8", "replace")
        if not filename and self._name == "file":
            return  # a form sent without choosing a file: an empty part, no file
        if self._name != "file" or self._seen_file:
            self.fail(400, "bad_request", "Send one file, in the form field named \u201cfile\u201d.")
            return
        self._is_file = self._seen_file = True
        self.upload.filename = filename

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        chunk = data[start:end]
        if self._is_file:
            self.pending += chunk
            self.hash.update(chunk)
            self.upload.size += len(chunk)
        elif len(self._data) + len(chunk) > FIELD_MAX_BYTES:
            self.fail(413, "payload_too_large", f"The form field \u201c{self._name[:40]}\u201d is too long.")
        else:
            self._data += chunk

    def part_end(self) -> None:
        if not self._is_file and self._name and self.error is None:
            self.upload.fields.setdefault(self._name, self._data.decode("utf-8", "replace"))


def multipart_boundary(request: Request) -> bytes:
    """The boundary of a multipart/form-data body; 415 for anything else."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the file as multipart/form-data, in a form field named \u201cfile\u201d.",
        )
    return boundary


def check_content_length(request: Request, max_bytes: int) -> None:
    """413 at once when the declared body cannot hold a file within the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD_BYTES:
        raise too_large(max_bytes)


def _temporary_file(folder: Path) -> IO[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False)


async def read_upload(request: Request, *, max_bytes: int, tmp_dir: Path) -> Upload:
    """Stream a multipart upload to a temporary file, stopping with 413 as soon as it is too large.

    The file must be in the field "file"; other fields are small text (16 KB each). The
    caller owns the result and must `discard()` it.
    """
    boundary = multipart_boundary(request)
    check_content_length(request, max_bytes)
    handle = await asyncio.to_thread(_temporary_file, tmp_dir)
    reader = _Multipart(handle)
    reader.upload.path = Path(handle.name)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + FORM_OVERHEAD_BYTES:
                raise too_large(max_bytes)
            parser.write(chunk)
            if reader.error is not None:
                raise reader.error
            if reader.upload.size > max_bytes:
                raise too_large(max_bytes)
            if reader.pending:
                data, reader.pending = bytes(reader.pending), bytearray()
                await asyncio.to_thread(handle.write, data)
        parser.finalize()
        await asyncio.to_thread(handle.close)
        if not reader.ended:
            raise ApiError(400, "bad_request", "The upload was cut off before its end. Please try again.")
    except BaseException as exc:
        handle.close()
        reader.upload.discard()
        if isinstance(exc, FormParserError):
            raise ApiError(400, "bad_request", "The upload could not be read: the form data is malformed.") from None
        raise
    reader.upload.sha256 = reader.hash.hexdigest()
    if not reader.upload.filename:
        reader.upload.discard()
    return reader.upload
