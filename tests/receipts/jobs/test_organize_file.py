"""organize_file: the canonical path through the local storage adapter, no duplicate on a
re-run, a corrected vendor moves the file, and sync_freee follows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from conftest import make_receipt

from python_worker.receipts.settings import get_settings


def stored_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and ".kyu" not in p.parts)


def test_file_is_filed_under_year_month_vendor_and_freee_follows(run, q):
    rid = make_receipt(q, "filed-1", "株式会社髙島ストア", date(2026, 4, 3), 3820)
    result = run("organize_file", {"receipt_id": rid})
    expected = f"2026/04/株式会社髙島ストア/2026-04-03_株式会社髙島ストア_3820_{rid}.pdf"
    assert result["path"] == expected and result["created"] is True
    root = get_settings().files_dir
    assert (root / expected).read_bytes().startswith(b"%PDF")
    row = q("select f.storage_path, f.storage_backend, f.filed_at is not null as filed"
            " from receipts.files as f join receipts.receipts as r on r.file_id = f.id"
            " where r.id = %s", (rid,))[0]
    assert row == {"storage_path": expected, "storage_backend": "local", "filed": True}
    next_job = q("select job_type, unique_key from queue.jobs where id = %s",
                 (result["next_job"],))
    assert next_job == [{"job_type": "sync_freee", "unique_key": f"freee:{rid}"}]


def test_refiling_never_duplicates_the_file(run, q):
    rid = make_receipt(q, "filed-2", "山田文具店", date(2026, 4, 15), 770)
    root = get_settings().files_dir
    first = run("organize_file", {"receipt_id": rid})
    before = stored_files(root)
    second = run("organize_file", {"receipt_id": rid})
    assert second["path"] == first["path"] and second["created"] is False
    assert stored_files(root) == before


def test_a_corrected_vendor_moves_the_file(run, q):
    rid = make_receipt(q, "filed-3", "山田文具", date(2026, 4, 15), 770)
    root = get_settings().files_dir
    old = run("organize_file", {"receipt_id": rid})["path"]
    q("update receipts.receipts set vendor = '山田文具店' where id = %s", (rid,))
    new = run("organize_file", {"receipt_id": rid})["path"]
    assert new != old and (root / new).is_file() and not (root / old).exists()


def test_unsafe_vendor_names_become_safe_path_segments(run, q):
    rid = make_receipt(q, "filed-4", "../../etc/passwd", date(2026, 4, 1), 100)
    path = run("organize_file", {"receipt_id": rid})["path"]
    assert path.startswith("2026/04/") and ".." not in path.split("/")
    assert (get_settings().files_dir / path).resolve().is_relative_to(
        get_settings().files_dir.resolve())


def drive_storage(responses: list[tuple[dict[str, str], str]]):
    """The real Google Drive adapter over googleapiclient, answered by responses shaped as the
    Drive v3 reference documents them (files.list, files.create, an error body)."""
    from googleapiclient.discovery import build
    from googleapiclient.http import HttpMockSequence

    from python_worker.receipts.adapters.storage import DriveStorage

    service = build("drive", "v3", http=HttpMockSequence(responses), static_discovery=True)
    return DriveStorage(service, "root-folder", num_retries=0)


def ok(body: object) -> tuple[dict[str, str], str]:
    return {"status": "200"}, json.dumps(body)


def drive_error(status: int, reason: str) -> tuple[dict[str, str], str]:
    return {"status": str(status)}, json.dumps({"error": {
        "errors": [{"domain": "usageLimits", "reason": reason, "message": reason}],
        "code": status, "message": reason}})


# a first upload into empty folders: key lookup, then find-or-create year, month and vendor
# folders, the same-name check, and the upload
UPLOAD_INTO_NEW_FOLDERS = [
    ok({"files": []}),
    ok({"files": []}), ok({"id": "f-year"}),
    ok({"files": []}), ok({"id": "f-month"}),
    ok({"files": []}), ok({"id": "f-vendor"}),
    ok({"files": []}),
    ok({"id": "drive-file-123", "name": "receipt.pdf", "parents": ["f-vendor"]}),
]


def breaker(q) -> dict:
    rows = q("select state, failures from queue.circuit_breakers where service = 'storage'")
    return rows[0] if rows else {}


def test_remote_storage_records_the_file_id_and_closes_the_breaker(run, q, monkeypatch):
    from python_worker.receipts import services

    drive = drive_storage(UPLOAD_INTO_NEW_FOLDERS)
    monkeypatch.setattr(services, "build_storage", lambda settings=None: drive)
    rid = make_receipt(q, "drive-ok", "Example Cloud Inc.", date(2026, 4, 12), 9900)
    run("organize_file", {"receipt_id": rid})
    row = q("select f.storage_backend, f.external_id from receipts.files as f"
            " join receipts.receipts as r on r.file_id = f.id where r.id = %s", (rid,))[0]
    assert row == {"storage_backend": "drive", "external_id": "drive-file-123"}
    assert breaker(q) == {"state": "closed", "failures": 0}


def test_remote_storage_outage_retries_and_a_refusal_is_dead_both_counted(run, q, monkeypatch):
    import pytest

    from python_worker.context import PermanentError
    from python_worker.receipts import services
    from python_worker.receipts.adapters.errors import RetryableServiceError

    throttled = drive_storage([drive_error(429, "rateLimitExceeded")])
    monkeypatch.setattr(services, "build_storage", lambda settings=None: throttled)
    rid = make_receipt(q, "drive-429", "Example Cloud Inc.", date(2026, 4, 13), 9900)
    with pytest.raises(RetryableServiceError, match="rateLimitExceeded"):  # the queue's backoff
        run("organize_file", {"receipt_id": rid})
    assert breaker(q)["failures"] == 1
    assert q("select count(*) as n from queue.jobs where unique_key = %s",
             (f"freee:{rid}",))[0]["n"] == 0  # rolled back with the job

    forbidden = drive_storage([drive_error(403, "insufficientFilePermissions")])
    monkeypatch.setattr(services, "build_storage", lambda settings=None: forbidden)
    with pytest.raises(PermanentError, match="insufficientFilePermissions"):
        run("organize_file", {"receipt_id": rid})
    assert breaker(q)["failures"] == 2
