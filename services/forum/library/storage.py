"""Where uploaded files live: a storage interface with two implementations.

`LocalStorage` keeps files in a folder (DATA_DIR/uploads unless TICA_STORAGE_URL says
`file:///another/folder`); every forum replica must see the same folder (a shared
volume: deploy/k8s/data-pvc.yaml). `S3Storage` keeps them in an S3-compatible bucket
(AWS S3, MinIO, Ceph, ...): TICA_STORAGE_URL=`s3://KEY:SECRET@host/bucket?region=R`
(`s3+http://` for a server without TLS, such as a local MinIO). It speaks plain HTTP
through httpx with AWS Signature Version 4, path-style URLs, so it needs no SDK.

Keys are made by the library (`documents/<random>`), never from a file's name.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

from shared.settings import Settings
from shared.web import Runtime

CHUNK_BYTES = 64 * 1024
_KEY_RE = re.compile(r"[a-z0-9]+(?:/[A-Za-z0-9_-]+)+")


class StorageError(Exception):
    """The storage could not do what was asked (unreachable, refused)."""


class StorageMissing(StorageError):
    """There is no file under that key."""


def check_key(key: str) -> str:
    """Keys are ours ("documents/<token>"): never a path that could climb out of the storage."""
    if not _KEY_RE.fullmatch(key) or len(key) > 200:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class StoredFile(Protocol):
    """An opened file: its size and its bytes, read in chunks."""

    size: int

    def chunks(self) -> AsyncGenerator[bytes, None]: ...

    async def aclose(self) -> None: ...


class Storage(Protocol):
    """What the library needs from a place to keep files."""

    async def put(self, key: str, source: Path, *, size: int, sha256: str, content_type: str) -> None:
        """Store the file at `source` (a temporary file the caller deletes) under key."""

    async def open(self, key: str) -> StoredFile:
        """The file under key; StorageMissing when there is none."""

    async def delete(self, key: str) -> None:
        """Remove the file under key (nothing when there is none)."""


# --- on disk -----------------------------------------------------------------------------------------


class LocalFile:
    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            while chunk := await asyncio.to_thread(self.handle.read, CHUNK_BYTES):
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        self.handle.close()  # a read-only file closes at once; no await, so a cancelled request still closes it


@dataclass
class LocalStorage:
    """Files in a folder, one per key; written to a temporary name, then renamed into place."""

    root: Path

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, source: Path, *, size: int, sha256: str, content_type: str) -> None:
        await asyncio.to_thread(self._put, self.path(key), source)

    @staticmethod
    def _put(target: Path, source: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)  # readers never see half a file

    async def open(self, key: str) -> StoredFile:
        path = self.path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise StorageMissing(key) from None
        size = (await asyncio.to_thread(os.fstat, handle.fileno())).st_size
        return LocalFile(handle, size)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)


# --- AWS Signature Version 4 ----------------------------------------------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    region: str
    service: str = "s3"


def _uri_encode(value: str, *, keep_slash: bool) -> str:
    return quote(value, safe="/-_.~" if keep_slash else "-_.~")


def canonical_request(method: str, url: str, headers: Mapping[str, str], payload_sha256: str) -> tuple[str, str]:
    """The canonical request of SigV4 and its signed-header list; every given header is signed."""
    parts = urlsplit(url)
    path = _uri_encode(unquote(parts.path) or "/", keep_slash=True)
    pairs = sorted(
        (_uri_encode(unquote(k), keep_slash=False), _uri_encode(unquote(v), keep_slash=False))
        for k, _, v in (item.partition("=") for item in parts.query.split("&") if item)
    )
    query = "&".join(f"{k}={v}" for k, v in pairs)
    normal = sorted((name.lower().strip(), " ".join(value.split())) for name, value in headers.items())
    signed = ";".join(name for name, _ in normal)
    lines = [method.upper(), path, query, *(f"{name}:{value}" for name, value in normal), "", signed, payload_sha256]
    return "\n".join(lines), signed


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def authorization(
    method: str, url: str, headers: Mapping[str, str], *, payload_sha256: str, credentials: Credentials, amz_date: str
) -> str:
    """The Authorization header value for a request whose headers (host and x-amz-date among them) are given."""
    request, signed = canonical_request(method, url, headers, payload_sha256)
    day = amz_date[:8]
    scope = f"{day}/{credentials.region}/{credentials.service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = _hmac(f"AWS4{credentials.secret_key}".encode(), day)
    for part in (credentials.region, credentials.service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )


def amz_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


# --- S3-compatible storage -------------------------------------------------------------------------------


class S3File:
    def __init__(self, client: httpx.AsyncClient, response: httpx.Response) -> None:
        self.client, self.response = client, response
        self.size = int(response.headers.get("content-length", "0"))

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in self.response.aiter_bytes(CHUNK_BYTES):
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self.response.aclose()
        await self.client.aclose()


@dataclass
class S3Storage:
    """Objects in one bucket of an S3-compatible service, addressed path-style: {endpoint}/{bucket}/{key}."""

    endpoint: str  # "https://s3.eu-west-2.amazonaws.com" or "http://127.0.0.1:9000"
    bucket: str
    credentials: Credentials
    timeout_s: float = 60.0
    transport: httpx.AsyncBaseTransport | None = None  # tests

    def url(self, key: str) -> str:
        return f"{self.endpoint.rstrip('/')}/{self.bucket}/{check_key(key)}"

    def signed_headers(
        self,
        method: str,
        url: str,
        *,
        payload_sha256: str,
        extra: Mapping[str, str] | None = None,
        amz_date: str | None = None,
    ) -> dict[str, str]:
        """Headers of a signed request: host, x-amz-date, x-amz-content-sha256, extra, Authorization."""
        amz_date = amz_date or amz_now()
        headers = {
            "host": urlsplit(url).netloc,
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_sha256,
            **(extra or {}),
        }
        headers["authorization"] = authorization(
            method, url, headers, payload_sha256=payload_sha256, credentials=self.credentials, amz_date=amz_date
        )
        return headers

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout_s, transport=self.transport)

    async def put(self, key: str, source: Path, *, size: int, sha256: str, content_type: str) -> None:
        url = self.url(key)
        headers = self.signed_headers(
            "PUT", url, payload_sha256=sha256, extra={"content-length": str(size), "content-type": content_type}
        )
        async with self._client() as client:
            try:
                response = await client.put(url, headers=headers, content=_file_chunks(source))
            except httpx.HTTPError as exc:
                raise StorageError(f"storage unreachable: {exc.__class__.__name__}") from None
        if response.status_code >= 300:
            raise StorageError(f"storage refused the file: HTTP {response.status_code}")

    async def open(self, key: str) -> StoredFile:
        url = self.url(key)
        client = self._client()
        try:
            request = client.build_request(
                "GET", url, headers=self.signed_headers("GET", url, payload_sha256=EMPTY_SHA256)
            )
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await client.aclose()
            raise StorageError(f"storage unreachable: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            await response.aclose()
            await client.aclose()
            if response.status_code == 404:
                raise StorageMissing(key)
            raise StorageError(f"storage refused to read: HTTP {response.status_code}")
        return S3File(client, response)

    async def delete(self, key: str) -> None:
        url = self.url(key)
        async with self._client() as client:
            try:
                response = await client.delete(
                    url, headers=self.signed_headers("DELETE", url, payload_sha256=EMPTY_SHA256)
                )
            except httpx.HTTPError as exc:
                raise StorageError(f"storage unreachable: {exc.__class__.__name__}") from None
        if response.status_code >= 300 and response.status_code != 404:
            raise StorageError(f"storage refused to delete: HTTP {response.status_code}")


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


# --- choosing one ---------------------------------------------------------------------------------------------


def s3_from_url(url: str) -> S3Storage:
    """S3Storage for `s3://KEY:SECRET@host[:port]/bucket?region=R` (`s3+http://` without TLS)."""
    parts = urlsplit(url)
    scheme = "http" if parts.scheme == "s3+http" else "https"
    bucket = parts.path.strip("/")
    region = (parse_qs(parts.query).get("region") or ["us-east-1"])[0]
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    credentials = Credentials(unquote(parts.username or ""), unquote(parts.password or ""), region)
    return S3Storage(f"{scheme}://{netloc}", bucket, credentials)


def storage_for(settings: Settings) -> Storage:
    """The storage TICA_STORAGE_URL names; DATA_DIR/uploads when it is unset."""
    url = settings.storage_url
    if not url:
        return LocalStorage(settings.data_dir / "uploads")
    if url.startswith("file:"):
        return LocalStorage(Path(unquote(urlsplit(url).path)))
    return s3_from_url(url)


def storage(rt: Runtime) -> Storage:
    """The storage of a running service (made once per process, kept in rt.extras)."""
    found: Storage | None = rt.extras.get("storage")
    if found is None:
        found = rt.extras["storage"] = storage_for(rt.settings)
    return found
