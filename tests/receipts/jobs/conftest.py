"""Handler tests: each module gets its own database cloned from the migrated template, its own
file directories, and the generated sample mail. Handlers run through ``run_handler``: the
payload is validated by the handler's model and ``ctx.connection`` is a real transaction that
commits when the handler returns (as the worker's completing transaction does)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from python_worker.context import JobContext
from python_worker.receipts.settings import get_settings
from python_worker.registry import registry

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated sample set (mail/, transactions.csv, truth.json)."""
    out = tmp_path_factory.mktemp("samples")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), str(out)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def truth(samples: Path) -> dict[str, Any]:
    return json.loads((samples / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def db(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The module's database, with the handlers' settings pointed at it and at fresh dirs."""
    files = tmp_path_factory.mktemp("files")
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", module_db_url)
    mp.setenv("KYU_FILES_DIR", str(files / "filed"))
    mp.setenv("KYU_BLOBS_DIR", str(files / "blobs"))
    for var in ("KYU_FREEE_CLIENT_ID", "KYU_FREEE_CLIENT_SECRET", "KYU_FREEE_COMPANY_ID",
                "KYU_STORAGE", "KYU_OWNER_ID"):
        mp.delenv(var, raising=False)
    get_settings.cache_clear()
    yield module_db_url
    mp.undo()
    get_settings.cache_clear()


def sql(url: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def held_job(conn: psycopg.Connection[Any], job_type: str, owner: Any) -> tuple[int, str]:
    """A running job of ``job_type`` held by worker "test" (id, lease token), inserted in
    ``conn``'s transaction: the parent a handler's next step is chained from."""
    row = conn.execute(
        "insert into queue.jobs (job_type, queue_name, priority, payload, max_attempts, status,"
        " attempt, worker_id, lease_seconds, lease_expires_at, lease_token, owner_id)"
        " select t.job_type, t.queue_name, t.priority, '{}', 5, 'running', 1, 'test', 60,"
        " now() + interval '1 minute', gen_random_uuid(), %s from queue.job_types as t"
        " where t.job_type = %s returning id, lease_token::text",
        (owner, job_type),
    ).fetchone()
    assert row is not None, job_type
    return row[0], row[1]


class Runner:
    """Runs one handler attempt in a committed transaction, like the worker does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.progress: list[Any] = []
        self.next_id = 1

    def __call__(self, job_type: str, payload: dict[str, Any], *, attempt: int = 1) -> Any:
        import python_worker.receipts.jobs  # noqa: F401 - registers the six handlers

        h = registry.get(job_type)
        assert h is not None, job_type
        conn = psycopg.connect(self.url)
        job_id, token = held_job(conn, job_type, payload.get("owner_id") or get_settings().owner_id)
        ctx = JobContext(
            id=job_id, job_type=job_type, queue_name=h.queue, attempt=attempt,
            max_attempts=h.max_attempts or 5, worker_id="test", lease_seconds=60,
            _progress=lambda _id, _t, p: self.progress.append(p), _conn=conn, lease_token=token,
        )
        self.next_id += 1
        try:
            result = h.func(h.payload(payload), ctx)
            conn.commit()
            return result
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()


@pytest.fixture(scope="module")
def run(db: str) -> Runner:
    return Runner(db)


@pytest.fixture(scope="module")
def q(db: str) -> Callable[..., list[dict[str, Any]]]:
    """Query the module's database: q("select ...", params)."""
    return lambda query, params=None: sql(db, query, params)


def eml_payload(samples: Path, name: str) -> dict[str, Any]:
    return {"source": "eml", "folder": str(samples / "mail"), "path": name}


def make_receipt(q: Callable[..., list[dict[str, Any]]], key: str, vendor: str | None,
                 day: Any, total: int | None, tax: dict[str, Any] | None = None,
                 status: str = "extracted") -> int:
    """An extracted receipt inserted directly, with a real blob (handlers after OCR do not
    care how the fields were read)."""
    import hashlib

    from psycopg.types.json import Jsonb

    from python_worker.receipts import blobs

    data = f"%PDF-1.4 sample {key}".encode()
    owner = get_settings().owner_id
    f = q("insert into receipts.files (owner_id, sha256, filename, content_type, size_bytes,"
          " blob_key) values (%s, %s, %s, 'application/pdf', %s, %s) returning id",
          (owner, hashlib.sha256(data).hexdigest(), f"{key}.pdf", len(data),
           blobs.put(data, "pdf")))[0]["id"]
    return q("insert into receipts.receipts (owner_id, file_id, status, vendor, issue_date,"
             " total_yen, tax, review_reasons) values (%s, %s, %s, %s, %s, %s, %s, %s)"
             " returning id",
             (owner, f, status, vendor, day, total, Jsonb(tax or {}),
              ["x"] if status == "needs_review" else []))[0]["id"]
