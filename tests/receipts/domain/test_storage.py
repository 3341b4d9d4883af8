"""Storage adapters: local idempotency on disk, Drive against recorded-shape responses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from googleapiclient.discovery import build
from googleapiclient.http import HttpMockSequence

from python_worker.receipts.adapters.errors import PermanentServiceError, RetryableServiceError
from python_worker.receipts.adapters.storage import (
    DriveStorage,
    LocalStorage,
    SupabaseStorage,
    drive_q_literal,
    suffixed_path,
    supabase_object_key,
)

PATH = "2026/04/株式会社髙島ストア/2026-04-03_株式会社髙島ストア_3820_42.pdf"
DATA = b"%PDF-1.4 receipt 42"


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and ".kyu" not in p.parts)


# --- local ------------------------------------------------------------------------------

def test_local_put_is_idempotent(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    first = store.put(PATH, DATA, "application/pdf", "receipt:42")
    again = store.put(PATH, DATA, "application/pdf", "receipt:42")
    assert first.created and not again.created
    assert first.path == again.path == PATH
    assert first.sha256 == hashlib.sha256(DATA).hexdigest()
    assert (tmp_path / PATH).read_bytes() == DATA
    assert _files(tmp_path) == [PATH]  # no duplicate, no temp file left behind
    assert store.exists(PATH) and not store.exists("2026/04/other.pdf")


def test_local_refiling_moves_instead_of_copying(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("unknown/unknown/unknown/unknown_unknown_unknown_42.pdf", DATA, "application/pdf",
              "receipt:42")
    moved = store.put(PATH, DATA, "application/pdf", "receipt:42")
    assert not moved.created and moved.path == PATH
    assert _files(tmp_path) == [PATH]


def test_local_same_path_other_content_gets_content_suffix(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put(PATH, DATA, "application/pdf", "receipt:42")
    other = b"%PDF-1.4 a different receipt"
    clash = store.put(PATH, other, "application/pdf", "receipt:43")
    expected = suffixed_path(PATH, hashlib.sha256(other).hexdigest())
    assert clash.path == expected and expected.endswith(
        f"~{hashlib.sha256(other).hexdigest()[:8]}.pdf")
    assert (tmp_path / PATH).read_bytes() == DATA  # never overwritten
    assert store.put(PATH, other, "application/pdf", "receipt:43").path == expected
    assert len(_files(tmp_path)) == 2


def test_local_same_key_new_content_replaces(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("reports/2026-04.pdf", b"v1", "application/pdf", "report:2026-04:pdf")
    second = store.put("reports/2026-04.pdf", b"v2", "application/pdf", "report:2026-04:pdf")
    assert second.created and second.path == "reports/2026-04.pdf"
    assert (tmp_path / "reports/2026-04.pdf").read_bytes() == b"v2"


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs.pdf", "a//b.pdf", "a/./b.pdf", ""])
def test_local_rejects_unsafe_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PermanentServiceError):
        LocalStorage(tmp_path).put(bad, DATA, "application/pdf", "k")


# --- Google Drive -----------------------------------------------------------------------

def _drive(responses: list[tuple[dict[str, str], str]]) -> tuple[DriveStorage, HttpMockSequence]:
    http = HttpMockSequence(responses)
    service = build("drive", "v3", http=http, static_discovery=True)
    return DriveStorage(service, "root-folder", num_retries=0), http


def ok(body: object) -> tuple[dict[str, str], str]:
    return {"status": "200"}, json.dumps(body)


def _q(uri: str) -> str:
    return parse_qs(urlparse(uri).query)["q"][0]


MD5 = hashlib.md5(DATA).hexdigest()  # noqa: S324 - Drive's md5Checksum
NAME = PATH.rsplit("/", 1)[1]


def test_drive_creates_missing_folders_then_uploads_and_reuses_cache() -> None:
    store, http = _drive([
        ok({"files": []}),                                   # by kyu_key: nothing
        ok({"files": []}), ok({"id": "f-2026"}),             # "2026": not found → create
        ok({"files": [{"id": "f-04", "name": "04"}]}),       # "04": found
        ok({"files": []}), ok({"id": "f-vendor"}),           # vendor: create
        ok({"files": []}),                                   # no same-name file
        ok({"id": "file-1", "name": NAME, "parents": ["f-vendor"]}),
        # second put of the same key: one lookup, folders come from the cache
        ok({"files": [{"id": "file-1", "name": NAME, "parents": ["f-vendor"],
                       "md5Checksum": MD5, "appProperties": {"kyu_key": "receipt:42"}}]}),
    ])
    first = store.put(PATH, DATA, "application/pdf", "receipt:42")
    assert first.created and first.location == "file-1" and first.path == PATH
    reqs = http.request_sequence
    assert _q(reqs[0][0]) == ("appProperties has { key='kyu_key' and value='receipt:42' } "
                              "and trashed = false")
    assert "name = '2026' and 'root-folder' in parents" in _q(reqs[1][0])
    assert reqs[2][1] == "POST" and json.loads(reqs[2][2])["mimeType"] == \
        "application/vnd.google-apps.folder"
    assert "'f-04' in parents" in _q(reqs[4][0])
    assert parse_qs(urlparse(reqs[1][0]).query)["supportsAllDrives"] == ["true"]
    upload_uri, method, body, _ = reqs[7]
    assert method == "POST" and "/upload/drive/v3/files" in upload_uri
    assert b'"kyu_key": "receipt:42"' in body and DATA in body
    again = store.put(PATH, DATA, "application/pdf", "receipt:42")
    assert not again.created and again.location == "file-1"
    assert len(http.request_sequence) == 9


def test_drive_existing_file_by_key_is_not_uploaded_again() -> None:
    store, http = _drive([
        ok({"files": [{"id": "file-1", "name": NAME, "parents": ["f-vendor"],
                       "md5Checksum": MD5}]}),
        ok({"files": [{"id": "f-2026"}]}), ok({"files": [{"id": "f-04"}]}),
        ok({"files": [{"id": "f-vendor"}]}),
    ])
    result = store.put(PATH, DATA, "application/pdf", "receipt:42")
    assert not result.created and result.location == "file-1"
    assert [m for _, m, _, _ in http.request_sequence] == ["GET"] * 4


def test_drive_moves_a_refiled_file() -> None:
    store, http = _drive([
        ok({"files": [{"id": "file-1", "name": "old.pdf", "parents": ["f-old"],
                       "md5Checksum": MD5}]}),
        ok({"files": [{"id": "f-2026"}]}), ok({"files": [{"id": "f-04"}]}),
        ok({"files": [{"id": "f-vendor"}]}),
        ok({"id": "file-1", "name": NAME, "parents": ["f-vendor"]}),
    ])
    result = store.put(PATH, DATA, "application/pdf", "receipt:42")
    assert not result.created
    uri, method, body, _ = http.request_sequence[-1]
    query = parse_qs(urlparse(uri).query)
    assert method == "PATCH" and query["addParents"] == ["f-vendor"]
    assert query["removeParents"] == ["f-old"] and json.loads(body)["name"] == NAME


def test_drive_adopts_an_untagged_upload_from_a_crashed_attempt() -> None:
    store, http = _drive([
        ok({"files": []}),
        ok({"files": [{"id": "f-2026"}]}), ok({"files": [{"id": "f-04"}]}),
        ok({"files": [{"id": "f-vendor"}]}),
        ok({"files": [{"id": "file-9", "name": NAME, "md5Checksum": MD5}]}),
        ok({"id": "file-9"}),
    ])
    result = store.put(PATH, DATA, "application/pdf", "receipt:42")
    assert not result.created and result.location == "file-9"
    uri, method, body, _ = http.request_sequence[-1]
    assert method == "PATCH" and json.loads(body)["appProperties"]["kyu_key"] == "receipt:42"


def test_drive_name_taken_by_other_content_uses_suffix_and_escapes_quotes() -> None:
    path = "2026/04/O'Brien's/receipt.pdf"
    store, http = _drive([
        ok({"files": []}),
        ok({"files": [{"id": "f-2026"}]}), ok({"files": [{"id": "f-04"}]}),
        ok({"files": [{"id": "f-ob"}]}),
        ok({"files": [{"id": "other", "name": "receipt.pdf", "md5Checksum": "0" * 32}]}),
        ok({"files": []}),
        ok({"id": "file-2", "name": "x"}),
    ])
    result = store.put(path, DATA, "application/pdf", "receipt:42")
    sha = hashlib.sha256(DATA).hexdigest()
    assert result.created and result.path == f"2026/04/O'Brien's/receipt~{sha[:8]}.pdf"
    assert "name = 'O\\'Brien\\'s'" in _q(http.request_sequence[3][0])
    assert drive_q_literal("a\\b'c") == "'a\\\\b\\'c'"


def _drive_error(status: int, reason: str) -> tuple[dict[str, str], str]:
    return {"status": str(status)}, json.dumps({"error": {
        "errors": [{"domain": "global", "reason": reason, "message": reason}],
        "code": status, "message": reason}})


@pytest.mark.parametrize(("status", "reason", "error"), [
    (403, "storageQuotaExceeded", PermanentServiceError),
    (403, "insufficientFilePermissions", PermanentServiceError),
    (404, "notFound", PermanentServiceError),
    (403, "userRateLimitExceeded", RetryableServiceError),
    (429, "rateLimitExceeded", RetryableServiceError),
    (503, "backendError", RetryableServiceError),
])
def test_drive_error_classification(status: int, reason: str, error: type) -> None:
    store, _ = _drive([_drive_error(status, reason)])
    with pytest.raises(error) as info:
        store.put(PATH, DATA, "application/pdf", "receipt:42")
    assert info.value.code == reason


# --- Supabase ---------------------------------------------------------------------------

def test_supabase_object_key_is_ascii_and_reversible() -> None:
    key = supabase_object_key(PATH)
    assert key.isascii() and key.startswith("2026/04/xn--")
    segment = key.split("/")[2]
    assert segment[4:].encode("ascii").decode("punycode") == "株式会社髙島ストア"
    assert supabase_object_key("2026/04/plain.pdf") == "2026/04/plain.pdf"


def _supabase(handler) -> SupabaseStorage:
    from storage3 import SyncStorageClient

    client = SyncStorageClient("https://proj.supabase.co/storage/v1/", {"apikey": "k"},
                               http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    return SupabaseStorage(client.from_("receipts"))


def test_supabase_uploads_with_upsert_when_missing() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET":
            return httpx.Response(404, json={"statusCode": "404", "error": "not_found",
                                             "message": "Object not found"})
        return httpx.Response(200, json={"Key": "receipts/x", "Id": "1"})

    result = _supabase(handler).put(PATH, DATA, "application/pdf", "receipt:42")
    assert result.created and result.location == supabase_object_key(PATH)
    upload = seen[-1]
    assert upload.method == "POST" and upload.headers["x-upsert"] == "true"
    assert upload.url.path.startswith("/storage/v1/object/receipts/2026/04/xn--")
    assert b"kyu_sha256" in upload.content


@pytest.mark.parametrize(("status", "code", "error"), [
    (413, "EntityTooLarge", PermanentServiceError),
    (401, "InvalidJWT", PermanentServiceError),
    (500, "InternalError", RetryableServiceError),
])
def test_supabase_error_classification(status: int, code: str, error: type) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404, json={"statusCode": "404", "error": "not_found",
                                             "message": "Object not found"})
        return httpx.Response(status, json={"statusCode": str(status), "error": code,
                                            "message": code})

    with pytest.raises(error):
        _supabase(handler).put(PATH, DATA, "application/pdf", "receipt:42")
