"""Fixtures for the schema tests: throwaway databases built from the migrations or from sql/."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1:54322/postgres"
)


def url_for(dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(DATABASE_URL, dbname=dbname)


def psql_files(dbname: str, files: list[Path]) -> None:
    for f in files:
        subprocess.run(
            ["psql", url_for(dbname), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(f)],
            check=True,
            capture_output=True,
        )


def make_database(prefix: str, files: list[Path]) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    psql_files(name, [ROOT / "scripts" / "supabase_compat.sql", *files])
    return name


def make_old_database(prefix: str, commit: str, migrations: list[str], tmp: Path) -> str:
    """A database built from the migrations as they were at ``commit`` (for upgrade tests)."""
    files = []
    for rel in migrations:
        f = tmp / Path(rel).name
        f.write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{rel}"],
                                     check=True, capture_output=True).stdout)
        files.append(f)
    return make_database(prefix, files)


def psql_file(url: str, path: Path) -> None:
    subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(path)],
                   check=True, capture_output=True)


def drop_database(name: str) -> None:
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def migration_files() -> list[Path]:
    return sorted((ROOT / "supabase" / "migrations").glob("*.sql"))


def source_files() -> list[Path]:
    return sorted((ROOT / "sql" / "queue").glob("*.sql")) + sorted(
        (ROOT / "sql" / "receipts").glob("*.sql")
    )


@pytest.fixture(scope="module")
def migrated_db() -> Iterator[str]:
    """A database built from supabase/migrations, as a Supabase project would have it."""
    name = make_database("kyu_schema", migration_files())
    yield url_for(name)
    drop_database(name)
