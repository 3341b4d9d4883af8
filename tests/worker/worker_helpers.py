"""Worker test helpers: run a worker in-process (drain) or as a subprocess, query jobs.

A module of its own (not conftest) so that test modules import it by a unique name."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kyu_test_handlers  # noqa: F401 - registers the test handlers
import psycopg
from psycopg.rows import dict_row

from python_worker.config import Settings
from python_worker.registry import registry
from python_worker.worker import Worker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def sql(url: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def enqueue(url: str, job_type: str, payload: Any = None, **kw: Any) -> int:
    cols = "".join(f", {k} => %({k})s" for k in kw)
    q = f"select queue.enqueue_job(job_type => %(t)s, payload => %(p)s::jsonb{cols}) as id"
    return sql(url, q, {"t": job_type, "p": json.dumps(payload or {}), **kw})[0]["id"]


def job(url: str, job_id: int) -> dict[str, Any]:
    return sql(url, "select * from queue.get_job(%s)", (job_id,))[0]


def drain(url: str, job_types: list[str], **kw: Any) -> Worker:
    """Runs `process` in-process until nothing of ``job_types`` is due."""
    s = Settings(database_url=url, job_types=job_types, poll_interval=0.2, **kw)
    w = Worker(s, registry, drain=True)
    asyncio.run(asyncio.wait_for(w.run(), 60))
    return w


def wait_for(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    until = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > until:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class WorkerProcess:
    """``python -m python_worker run`` as a subprocess with the test handlers."""

    def __init__(self, url: str, *args: str, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ, DATABASE_URL=url,
                        PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]), **(env or {}))
        self.log_path = Path(f"/tmp/kyu-worker-{os.getpid()}-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "python_worker", "run", "--handlers", "kyu_test_handlers",
             *args],
            env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()
