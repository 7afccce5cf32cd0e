"""The storage interface: files on disk by default; S3-compatible storage signed with AWS
Signature Version 4.

There is no S3 service here, so S3Storage is tested two ways: its signing against AWS's
published test vectors, and its requests against an httpx mock transport standing in
for the bucket (the edge of the system).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.requests import ClientDisconnect

from services.forum.library.documents import FileStreamResponse
from services.forum.library.storage import (
    EMPTY_SHA256,
    Credentials,
    LocalStorage,
    S3Storage,
    StorageError,
    StorageMissing,
    authorization,
    canonical_request,
    check_key,
    s3_from_url,
    storage_for,
)
from shared.settings import Settings, SettingsError

# --- AWS Signature Version 4 test vectors -----------------------------------------------------------------------


def test_sigv4_matches_the_aws_test_suite_get_vanilla():
    """The "get-vanilla" case of AWS's SigV4 test suite (aws-sig-v4-test-suite/get-vanilla)."""
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service")
    headers = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}
    value = authorization(
        "GET",
        "https://example.amazonaws.com/",
        headers,
        payload_sha256=EMPTY_SHA256,
        credentials=credentials,
        amz_date="20150830T123600Z",
    )
    assert value == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_sigv4_matches_the_s3_documentation_get_object_example():
    """The GET Object example of the S3 SigV4 documentation (examplebucket/test.txt, Range: bytes=0-9)."""
    credentials = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1")
    storage = S3Storage("https://examplebucket.s3.amazonaws.com", "", credentials)
    headers = storage.signed_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        payload_sha256=EMPTY_SHA256,
        extra={"range": "bytes=0-9"},
        amz_date="20130524T000000Z",
    )
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_canonical_request_sorts_query_and_headers_and_encodes_the_path():
    request, signed = canonical_request(
        "get",
        "https://h.example/a b/%E1%88%B4?b=2&a=1&a=0",
        {"X-B": "  two   words ", "Host": "h.example"},
        EMPTY_SHA256,
    )
    assert request.split("\n") == [
        "GET",
        "/a%20b/%E1%88%B4",
        "a=0&a=1&b=2",
        "host:h.example",
        "x-b:two words",
        "",
        "host;x-b",
        EMPTY_SHA256,
    ]
    assert signed == "host;x-b"


# --- keys and local storage -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "documents/../../x",
        "/abs/path",
        "documents",
        "documents/a b",
        "documents/x/../y",
        "DOCUMENTS/x",
        "",
    ],
)
def test_keys_cannot_climb_out_of_the_storage(key):
    with pytest.raises(ValueError, match="not a storage key"):
        check_key(key)


async def test_local_storage_keeps_reads_and_deletes_files(tmp_path):
    """A file put under a key reads back the same, in chunks; deleting it makes it missing."""
    storage = LocalStorage(tmp_path / "uploads")
    source = tmp_path / "source"
    content = bytes(range(256)) * 1000
    source.write_bytes(content)
    await storage.put(
        "documents/abc_123-x",
        source,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content_type="application/pdf",
    )
    assert not list((tmp_path / "uploads").rglob("*.partial"))
    opened = await storage.open("documents/abc_123-x")
    assert opened.size == len(content)
    assert b"".join([chunk async for chunk in opened.chunks()]) == content
    await storage.delete("documents/abc_123-x")
    await storage.delete("documents/abc_123-x")  # deleting twice is fine
    with pytest.raises(StorageMissing):
        await storage.open("documents/abc_123-x")


async def _stored(tmp_path) -> tuple[LocalStorage, str]:
    storage = LocalStorage(tmp_path / "uploads")
    source = tmp_path / "source"
    source.write_bytes(b"x" * 200_000)
    await storage.put("documents/gone", source, size=200_000, sha256="-", content_type="text/plain")
    return storage, "documents/gone"


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_a_file_response_closes_its_file_when_the_client_leaves_before_the_first_chunk(tmp_path, spec_version):
    """The client goes away before the body starts: the chunk generator never runs, yet the file is closed."""
    storage, key = await _stored(tmp_path)
    opened = await storage.open(key)
    response = FileStreamResponse(opened, media_type="text/plain", headers={})
    scope = {"type": "http", "asgi": {"spec_version": spec_version}}

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        raise OSError("connection reset by peer")

    with pytest.raises((OSError, ClientDisconnect)):
        await response(scope, receive, send)
    assert opened.handle.closed


async def test_a_file_response_closes_its_file_after_a_whole_stream(tmp_path):
    storage, key = await _stored(tmp_path)
    opened = await storage.open(key)
    response = FileStreamResponse(opened, media_type="text/plain", headers={})
    sent: list[dict] = []

    async def receive():
        await anyio.sleep_forever()

    async def send(message):
        sent.append(message)

    await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
    assert sum(len(m.get("body", b"")) for m in sent) == 200_000
    assert opened.handle.closed


# --- S3-compatible storage, against a stand-in bucket -----------------------------------------------------------------


class Bucket:
    """An in-memory stand-in for an S3 bucket: the httpx mock transport's handler."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.requests: list[httpx.Request] = []
        self.fail = False

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            return httpx.Response(500, text="<Error><Code>InternalError</Code></Error>")
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=KEY/")
        path = request.url.path
        if request.method == "PUT":
            body = await request.aread()
            assert hashlib.sha256(body).hexdigest() == request.headers["x-amz-content-sha256"]
            self.objects[path] = body
            return httpx.Response(200)
        if request.method == "GET":
            if path not in self.objects:
                return httpx.Response(404, text="<Error><Code>NoSuchKey</Code></Error>")
            return httpx.Response(200, content=self.objects[path])
        self.objects.pop(path, None)
        return httpx.Response(204)


def s3(bucket: Bucket) -> S3Storage:
    return S3Storage(
        "http://minio.local:9000",
        "tica",
        Credentials("KEY", "SECRET", "eu-west-2"),
        transport=httpx.MockTransport(bucket),
    )


async def test_s3_storage_puts_reads_and_deletes_signed_objects(tmp_path):
    """PUT, GET and DELETE path-style objects, each request signed, the body's SHA-256 declared."""
    bucket = Bucket()
    storage = s3(bucket)
    source = tmp_path / "source"
    source.write_bytes(b"%PDF-1.4 a small file")
    await storage.put(
        "documents/k1",
        source,
        size=21,
        sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
        content_type="application/pdf",
    )
    put = bucket.requests[-1]
    assert put.method == "PUT" and str(put.url) == "http://minio.local:9000/tica/documents/k1"
    assert put.headers["content-type"] == "application/pdf" and put.headers["content-length"] == "21"
    assert "/eu-west-2/s3/aws4_request" in put.headers["authorization"]
    opened = await storage.open("documents/k1")
    assert opened.size == 21 and b"".join([c async for c in opened.chunks()]) == b"%PDF-1.4 a small file"
    await storage.delete("documents/k1")
    with pytest.raises(StorageMissing):
        await storage.open("documents/k1")


async def test_s3_storage_reports_a_failing_service(tmp_path):
    bucket = Bucket()
    bucket.fail = True
    source = tmp_path / "source"
    source.write_bytes(b"x")
    with pytest.raises(StorageError, match="HTTP 500"):
        await s3(bucket).put(
            "documents/k", source, size=1, sha256=hashlib.sha256(b"x").hexdigest(), content_type="text/plain"
        )
    with pytest.raises(StorageError) as raised:
        await s3(bucket).open("documents/k")
    assert not isinstance(raised.value, StorageMissing)


# --- choosing a storage -----------------------------------------------------------------------------------------------


def test_storage_is_a_folder_under_data_dir_by_default(tmp_path):
    storage = storage_for(Settings(data_dir=tmp_path))
    assert isinstance(storage, LocalStorage) and storage.root == tmp_path / "uploads"
    elsewhere = storage_for(Settings(data_dir=tmp_path, storage_url="file:///srv/tica%20files"))
    assert isinstance(elsewhere, LocalStorage) and elsewhere.root == Path("/srv/tica files")


def test_storage_url_names_an_s3_bucket():
    storage = s3_from_url("s3://AKIA%2FX:se%2Bcret@s3.eu-west-2.amazonaws.com/tica-uploads?region=eu-west-2")
    assert storage.endpoint == "https://s3.eu-west-2.amazonaws.com" and storage.bucket == "tica-uploads"
    assert storage.credentials == Credentials("AKIA/X", "se+cret", "eu-west-2")
    local = s3_from_url("s3+http://minio:minio123@127.0.0.1:9000/tica")
    assert local.endpoint == "http://127.0.0.1:9000" and local.credentials.region == "us-east-1"


@pytest.mark.parametrize("value", ["ftp://host/bucket", "s3://host/bucket", "s3://key:secret@host", "file:"])
def test_a_bad_storage_url_stops_start_up(value):
    with pytest.raises(SettingsError, match="TICA_STORAGE_URL"):
        Settings.from_env({"TICA_STORAGE_URL": value})


def test_the_upload_limit_is_a_setting():
    assert Settings.from_env({}).max_upload_bytes == 25 * 1024 * 1024
    assert Settings.from_env({"TICA_MAX_UPLOAD_BYTES": "1000"}).max_upload_bytes == 1000
    with pytest.raises(SettingsError, match="TICA_MAX_UPLOAD_BYTES"):
        Settings.from_env({"TICA_MAX_UPLOAD_BYTES": "0"})
