"""The mutation check (`make test-mutations`): plant each small bug of tests/mutations.toml in a
scratch copy of the checkout, one at a time, and run the tests that promise to catch it. The
check fails when a mutation survives (its tests all pass), when a mutation's `find` text is not
in the code exactly once (the list has drifted from the code), or when the tests do not pass on
the unmutated copy to begin with.

    DATABASE_URL=... .venv/bin/python scripts/mutations.py [--only ID ...] [--list]

A test target is `pgtap:<file>` (pg_prove against a database built from the mutated migrations)
or `pytest:<node id>` (pytest in the scratch copy, whose conftest builds its template database
from the mutated migrations). SQL mutations are rendered into the migrations first, exactly as
`make render` does.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "tests" / "mutations.toml"
ADMIN_URL = os.environ.get("DATABASE_URL",
                           "postgresql://postgres:postgres@127.0.0.1:54322/postgres")
MUTANT_DB = "kyu_mutant"


@dataclass
class Mutation:
    id: str
    promise: str
    files: str
    find: str
    replace: str
    tests: list[str]
    occurrence: int | None = None
    caught_by: str | None = field(default=None)


def load(path: Path) -> list[Mutation]:
    entries = tomllib.loads(path.read_text(encoding="utf-8"))["mutation"]
    seen: set[str] = set()
    out = []
    for e in entries:
        m = Mutation(id=e["id"], promise=e["promise"], files=e.get("files", "sql/queue/*.sql"),
                     find=e["find"], replace=e["replace"], tests=list(e["tests"]),
                     occurrence=e.get("occurrence"))
        if m.id in seen:
            raise SystemExit(f"mutations: duplicate id {m.id}")
        if not m.tests or not all(t.startswith(("pgtap:", "pytest:")) for t in m.tests):
            raise SystemExit(f"mutations: {m.id}: tests must be pgtap:<file> or pytest:<node>")
        seen.add(m.id)
        out.append(m)
    return out


def copy_checkout(dest: Path) -> None:
    """The files git knows (tracked and untracked-not-ignored), as they are in the work tree."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def locate(m: Mutation, scratch: Path) -> tuple[Path, int]:
    """The one file and offset where the mutation applies; refuses an ambiguous or stale find."""
    hits = []
    for name in sorted(glob.glob(str(scratch / m.files), recursive=True)):
        text = Path(name).read_text(encoding="utf-8")
        start = 0
        while (i := text.find(m.find, start)) >= 0:
            hits.append((Path(name), i))
            start = i + 1
    if m.occurrence is None and len(hits) != 1:
        raise LookupError(f"find text occurs {len(hits)} times in {m.files} (need exactly 1, or"
                          " set occurrence)")
    if m.occurrence is not None and not 1 <= m.occurrence <= len(hits):
        raise LookupError(f"occurrence {m.occurrence} of {len(hits)} matches in {m.files}")
    return hits[(m.occurrence or 1) - 1]


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def db_url(name: str) -> str:
    """ADMIN_URL with another database, as a URL (pg_prove passes -d on to psql only as a name
    or URL, not as a key=value string)."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def build_mutant_db(scratch: Path) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{MUTANT_DB}" with (force)')
        conn.execute(f'create database "{MUTANT_DB}"')
    files = [scratch / "scripts" / "supabase_compat.sql",
             *sorted((scratch / "supabase" / "migrations").glob("*.sql"))]
    for f in files:
        out = run(["psql", db_url(MUTANT_DB), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(f)],
                  scratch)
        if out.returncode != 0:
            raise RuntimeError(f"{f.name} does not apply: {out.stderr.strip()[-500:]}")
    run(["psql", db_url(MUTANT_DB), "-Xqc", "create extension if not exists pgtap"], scratch)


def run_target(target: str, scratch: Path) -> tuple[bool, str]:
    """(passed, last lines of output) of one test target on the scratch copy."""
    kind, _, what = target.partition(":")
    if kind == "pgtap":
        out = run(["pg_prove", "--ext", ".sql", "-d", db_url(MUTANT_DB), what], scratch)
    else:
        env = dict(os.environ, DATABASE_URL=ADMIN_URL, PYTHONPATH=str(scratch))
        out = run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", what],
                  scratch, env)
    tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-6:])
    return out.returncode == 0, tail


def check_targets(targets: list[str], scratch: Path) -> list[tuple[str, str]]:
    """Targets that fail on the current state of the scratch copy."""
    if any(t.startswith("pgtap:") for t in targets):
        build_mutant_db(scratch)
    failures = []
    for t in targets:
        ok, tail = run_target(t, scratch)
        if not ok:
            failures.append((t, tail))
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="mutation ids to run (default: all)")
    ap.add_argument("--list", action="store_true", help="print the list and exit")
    args = ap.parse_args(argv)
    mutations = load(LIST)
    if args.list:
        for m in mutations:
            print(f"{m.id:40} {m.promise}")
        return 0
    if args.only:
        unknown = set(args.only) - {m.id for m in mutations}
        if unknown:
            raise SystemExit(f"mutations: unknown id(s): {', '.join(sorted(unknown))}")
        mutations = [m for m in mutations if m.id in args.only]

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kyu-mutants-") as tmp:
        scratch = Path(tmp)
        copy_checkout(scratch)
        problems = 0
        for m in mutations:  # every find must apply to the unmutated code
            try:
                locate(m, scratch)
            except LookupError as exc:
                print(f"STALE    {m.id}: {exc}")
                problems += 1
        if problems:
            return 1
        targets = sorted({t for m in mutations for t in m.tests})
        print(f"baseline: {len(targets)} test targets on the unmutated copy", flush=True)
        failing = check_targets(targets, scratch)
        for t, tail in failing:
            print(f"BASELINE FAILS {t}\n{tail}")
        if failing:
            return 1

        survivors = []
        for m in mutations:
            path, offset = locate(m, scratch)
            original = path.read_text(encoding="utf-8")
            path.write_text(original[:offset] + m.replace + original[offset + len(m.find):],
                            encoding="utf-8")
            try:
                if path.suffix == ".sql":
                    run(["bash", "scripts/render_migrations.sh"], scratch).check_returncode()
                failures = check_targets(m.tests, scratch)
            except RuntimeError as exc:  # the mutant does not even build: caught by the build
                failures = [("migration", str(exc))]
            finally:
                path.write_text(original, encoding="utf-8")
            if failures:
                m.caught_by = failures[0][0]
                print(f"caught   {m.id:40} by {m.caught_by}", flush=True)
            else:
                survivors.append(m)
                print(f"SURVIVED {m.id:40} {m.promise}", flush=True)
        run(["bash", "scripts/render_migrations.sh"], scratch)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{MUTANT_DB}" with (force)')
    took = time.monotonic() - started
    print(f"\n{len(mutations) - len(survivors)} caught, {len(survivors)} survived"
          f" of {len(mutations)} mutations in {took:.0f} s")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
