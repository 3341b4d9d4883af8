"""Fixtures of the worker tests (helpers live in worker_helpers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from worker_helpers import WorkerProcess, drain, sql

from python_worker.registry import registry


@pytest.fixture
def spawn() -> Iterator[Callable[..., WorkerProcess]]:
    procs: list[WorkerProcess] = []

    def start(url: str, *args: str, **kw: Any) -> WorkerProcess:
        p = WorkerProcess(url, *args, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


@pytest.fixture(scope="module")
def url(module_db_url: str) -> str:
    """The module's database with the test job types registered (by a first, empty drain)."""
    drain(module_db_url, registry.job_types())
    sql(module_db_url, "create table public.effects (job_id bigint, attempt int,"
                       " at timestamptz default clock_timestamp())")
    return module_db_url
