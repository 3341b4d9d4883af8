"""Shared fixtures: one template database built by the migrations, cloned per test module.

``kyu_test_template`` is (re)built at session start whenever supabase/migrations (or the
Supabase compatibility script) changed since it was built; the files' hash is kept as the
database's comment. A module asks for ``module_db_url`` and gets its own clone, dropped after.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1:54322/postgres")
TEMPLATE = "kyu_test_template"
_LOCK = 4_242_4242  # advisory lock key: one session builds the template at a time


def db_url(dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=dbname)


def _template_files() -> list[Path]:
    return [ROOT / "scripts" / "supabase_compat.sql",
            *sorted((ROOT / "supabase" / "migrations").glob("*.sql"))]


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def template_db() -> str:
    """The name of the template database, current with the migrations."""
    files = _template_files()
    digest = _digest(files)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK,))
        try:
            row = conn.execute(
                "select shobj_description(d.oid, 'pg_database') from pg_database as d"
                " where d.datname = %s",
                (TEMPLATE,),
            ).fetchone()
            if row is None or row[0] != digest:
                conn.execute(f'drop database if exists "{TEMPLATE}" with (force)')
                conn.execute(f'create database "{TEMPLATE}"')
                for f in files:
                    subprocess.run(
                        ["psql", db_url(TEMPLATE), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                         "-f", str(f)],
                        check=True, capture_output=True,
                    )
                conn.execute(f"comment on database \"{TEMPLATE}\" is '{digest}'")
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK,))
    return TEMPLATE


def clone_template(template: str, label: str) -> str:
    name = f"kyu_test_{re.sub(r'[^a-z0-9_]', '_', label.lower())[:40]}_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}" template "{template}"')
    return name


def drop_db(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="module")
def module_db_url(template_db: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database cloned from the template for this test module."""
    name = clone_template(template_db, request.module.__name__.rsplit(".", 1)[-1])
    yield db_url(name)
    drop_db(name)
