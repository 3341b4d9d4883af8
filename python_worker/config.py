"""Worker settings: environment variables (``DATABASE_URL``, ``KYU_*``), overridden by CLI flags.

Lists (``KYU_HANDLERS``, ``KYU_QUEUES``, ``KYU_JOB_TYPES``) are comma-separated in the
environment; ``KYU_CONCURRENCY`` is a number (``8``) or a range (``2-16``).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"

CsvList = Annotated[list[str], NoDecode]


def _split_csv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    items: list[str] = []
    for v in value:
        items.extend(p.strip() for p in str(v).split(","))
    return [i for i in items if i]


def parse_concurrency(value: str | int) -> tuple[int, int]:
    """``8`` -> (8, 8); ``2-16`` -> (2, 16)."""
    text = str(value).strip()
    lo_text, sep, hi_text = text.partition("-")
    try:
        lo = int(lo_text)
        hi = int(hi_text) if sep else lo
    except ValueError:
        raise ValueError(f"concurrency must be N or MIN-MAX, got {text!r}") from None
    if lo < 1 or hi < lo:
        raise ValueError(f"concurrency needs 1 <= MIN <= MAX, got {text!r}")
    return lo, hi


class Settings(BaseSettings):
    """Everything a worker process needs; see ``python -m python_worker run --help``."""

    model_config = SettingsConfigDict(env_prefix="KYU_", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL", "KYU_DATABASE_URL")
    )
    handlers: CsvList = Field(default_factory=list)
    queues: CsvList = Field(default_factory=list)
    job_types: CsvList = Field(default_factory=list)
    # jobs running at once, async and sync together (MIN-MAX, grows with the backlog); async
    # handlers cost a task each, so the default serves no-op jobs at full speed
    concurrency: str = "500-2000"
    # sync handlers at once: one thread each, and claims never take more sync jobs than there
    # are free threads (a thread stuck past its timeout is not free)
    threads: int = Field(16, ge=1, le=1000)
    batch_size: int = Field(1000, ge=1, le=1000)
    # sync handlers in threads, or each in a handler process that can be killed and replaced
    isolation: Literal["thread", "process"] = "thread"
    child_max_rss_mb: float | None = Field(None, gt=0)  # replace a handler process above this
    exit_when_stuck: bool = False  # exit (status 3) once degraded: threads stuck, RSS over cap
    poll_interval: float = Field(2.0, gt=0)
    lease_seconds: int | None = Field(None, ge=1)
    heartbeat_interval: float = Field(10.0, gt=0)
    shutdown_grace: float = Field(30.0, ge=0)
    max_rss_mb: float | None = Field(None, gt=0)
    max_load: float | None = Field(None, gt=0)
    metrics_port: int | None = None
    log_json: bool = False
    log_level: str = "INFO"
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    claim_streams: int = Field(0, ge=0, le=4)  # 0: two when MAX >= 2 * batch_size, else one
    async_claim_commit: bool = True  # claims commit without waiting for the WAL flush
    # every connection this worker opens, handler transactions and LISTEN included
    max_connections: int = Field(10, ge=3, le=1000)
    # how the worker reaches Postgres: transaction (PgBouncer/Supavisor transaction mode: no
    # prepared statements, LISTEN only on listen_url), session or direct; auto detects a pooler
    pool_mode: Literal["auto", "transaction", "session", "direct"] = "auto"
    listen_url: str | None = None  # a session-capable URL for LISTEN (default: database_url)
    prepare_threshold: int | None = 0  # psycopg's; always None in transaction mode

    @field_validator("prepare_threshold", "lease_seconds", "max_rss_mb", "max_load",
                     "metrics_port", "listen_url", "child_max_rss_mb", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "null", "off"):
            return None
        return value

    @field_validator("handlers", "queues", "job_types", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> list[str]:
        return _split_csv(value)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        parse_concurrency(self.concurrency)
        return self

    @property
    def concurrency_range(self) -> tuple[int, int]:
        return parse_concurrency(self.concurrency)



def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with non-None ``overrides`` (CLI flags) on top."""
    given = {k: v for k, v in overrides.items() if v is not None and v != []}
    return Settings(**given)
