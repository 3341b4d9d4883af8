"""Kyu benchmark (`make bench`): throughput and latency on the local database, in one run.

Builds a scratch database `kyu_bench` from supabase/migrations (dropped first), then measures:
  floor        a bare `delete ... for update skip locked` loop on a plain table (batch 100, 1)
  insert floor a bare one-row `insert` per transaction, and a bare 1,000-row `insert` per
               statement (from the same JSON array enqueue_jobs gets), on that plain table
  enqueue      queue.enqueue_job, one transaction each; queue.enqueue_jobs, 1,000 per call,
               each with its ratio to its insert floor
  sql          queue.claim_jobs + queue.complete_jobs from one client, batch 1 and 100
  end-to-end   100,000 no-op jobs through one worker process (`python -m python_worker process`),
               with no flags (the defaults) and tuned, alternating back to back; and with the
               defaults behind PgBouncer in transaction mode when KYU_POOLER_URL is set
  latency      enqueue -> handler start with an idle `run` worker woken by LISTEN
and prints every figure with its ratio to the floor. Imported as a module (`--handlers bench`)
it only registers the benchmark's handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from python_worker import handler

NOOP = "kyu.bench.noop"
LATENCY = "kyu.bench.latency"


@handler(NOOP)
async def bench_noop(job: dict) -> None:
    return None


@handler(LATENCY)
async def bench_latency(job: dict) -> dict[str, float]:
    return {"t": time.time()}


# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1:54322/postgres")
BENCH_DB = "kyu_bench"


def _psycopg():  # imported late so `--handlers bench` in a worker stays cheap
    import psycopg

    return psycopg


def bench_url() -> str:
    return _psycopg().conninfo.make_conninfo(ADMIN_URL, dbname=BENCH_DB)


MIGRATIONS = ROOT / "supabase" / "migrations"


def build_database() -> None:
    psycopg = _psycopg()
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{BENCH_DB}" with (force)')
        conn.execute(f'create database "{BENCH_DB}"')
    files = [ROOT / "scripts" / "supabase_compat.sql",
             *sorted(MIGRATIONS.glob("*.sql"))]
    for f in files:
        subprocess.run(["psql", bench_url(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(f)],
                       check=True, capture_output=True)
    with psycopg.connect(bench_url(), autocommit=True) as conn:
        for t in (NOOP, LATENCY, "kyu.bench.sql"):
            conn.execute("select queue.register_job_type(%s, 'default')", (t,))
        conn.execute("create table public.floor_jobs"
                     " (id bigserial primary key, payload jsonb not null)")


def connect():
    return _psycopg().connect(bench_url(), autocommit=True, prepare_threshold=0)


def vacuum() -> None:
    with connect() as conn:
        conn.execute("vacuum analyze queue.jobs")
        conn.execute("vacuum analyze queue.job_history")
        conn.execute("vacuum analyze public.floor_jobs")


def bulk_jobs(job_type: str, n: int, start: int = 0) -> str:
    jobs = [{"job_type": job_type, "payload": {"n": i}} for i in range(start, start + n)]
    return json.dumps(jobs)


def floor(batch: int, n: int) -> float:
    with connect() as conn:
        conn.execute(
            "insert into public.floor_jobs (payload) select jsonb_build_object('n', i)"
            " from generate_series(1, %s) as i", (n,))
        conn.execute("vacuum analyze public.floor_jobs")
        sql = ("delete from public.floor_jobs where id in (select id from public.floor_jobs"
               " order by id limit %s for update skip locked) returning id, payload")
        done = 0
        t0 = time.perf_counter()
        while done < n:
            rows = conn.execute(sql, (batch,)).fetchall()
            if not rows:
                break
            done += len(rows)
        return done / (time.perf_counter() - t0)


def insert_single(n: int) -> float:
    """The floor for enqueue_job: a bare one-row insert per transaction."""
    with connect() as conn:
        sql = "insert into public.floor_jobs (payload) values (%s::jsonb) returning id"
        t0 = time.perf_counter()
        for i in range(n):
            conn.execute(sql, (json.dumps({"n": i}),)).fetchone()
        return n / (time.perf_counter() - t0)


def insert_bulk(n: int, per_call: int = 1000) -> float:
    """The floor for enqueue_jobs: a bare insert of 1,000 rows from one JSON array."""
    bodies = [bulk_jobs("kyu.bench.sql", per_call, i) for i in range(0, n, per_call)]
    with connect() as conn:
        sql = ("insert into public.floor_jobs (payload)"
               " select e -> 'payload' from jsonb_array_elements(%s::jsonb) as e returning id")
        t0 = time.perf_counter()
        for body in bodies:
            conn.execute(sql, (body,)).fetchall()
        return n / (time.perf_counter() - t0)


def enqueue_single(n: int, durable: bool = True) -> float:
    with connect() as conn:
        if not durable:
            conn.execute("set synchronous_commit = off")
        sql = "select queue.enqueue_job(%s, %s::jsonb)"
        t0 = time.perf_counter()
        for i in range(n):
            conn.execute(sql, ("kyu.bench.sql", json.dumps({"n": i}))).fetchone()
        return n / (time.perf_counter() - t0)


def enqueue_bulk(job_type: str, n: int, per_call: int = 1000) -> float:
    bodies = [bulk_jobs(job_type, per_call, i) for i in range(0, n, per_call)]
    with connect() as conn:
        t0 = time.perf_counter()
        for body in bodies:
            conn.execute("select count(*) from queue.enqueue_jobs(%s::jsonb)", (body,)).fetchone()
        return n / (time.perf_counter() - t0)


def claim_complete(batch: int, n: int, queues: list[str] | None = None) -> float:
    """Claims and completes ``n`` waiting kyu.bench.sql jobs (enqueued by the steps before)."""
    vacuum()
    with connect() as conn:
        # tokens as text, sent back as one array literal: what the worker does (psycopg's UUID
        # objects would cost the client ~10 us a job)
        claim = ("select id, attempt, lease_token::text from queue.claim_jobs('bench', %s, "
                 + ("null" if queues is None else f"array{queues!r}") + ", %s::text[])")
        complete = "select queue.complete_jobs(%s::bigint[], 'bench', null, %s::int[], %s::uuid[])"
        done = 0
        t0 = time.perf_counter()
        while done < n:
            rows = conn.execute(claim, (batch, ["kyu.bench.sql"])).fetchall()
            if not rows:
                break
            tokens = "{" + ",".join([r[2] for r in rows]) + "}"
            conn.execute(complete, ([r[0] for r in rows], [r[1] for r in rows], tokens)).fetchone()
            done += len(rows)
        return done / (time.perf_counter() - t0)


def claim_complete_async(n: int) -> float:
    """claim_complete(1, n) with commits that do not wait for the WAL flush: the CPU cost."""
    with connect() as conn:
        conn.execute("alter database kyu_bench set synchronous_commit = off")
    try:
        return claim_complete(1, n, ["default"])
    finally:
        with connect() as conn:
            conn.execute("alter database kyu_bench reset synchronous_commit")


def worker_cmd(mode: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "python_worker", "--log-level", "WARNING", mode,
            "--handlers", "bench", *extra]


def worker_env() -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=bench_url())
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "scripts"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def end_to_end(n: int, flags: list[str], url: str | None = None) -> tuple[float, float]:
    """``n`` no-op jobs drained by ``process`` with ``flags`` (none: the defaults), reaching
    the database at ``url`` (default: directly); returns (jobs/s in SQL time, jobs/s in wall
    time including the worker's start and exit)."""
    with connect() as conn:
        first = conn.execute("select coalesce(max(id), 0) from queue.all_jobs").fetchone()[0]
    enqueue_bulk(NOOP, n)
    vacuum()
    env = worker_env()
    if url is not None:
        env["DATABASE_URL"] = url
    t0 = time.perf_counter()
    subprocess.run(worker_cmd("process", "--job-types", NOOP, "--queues", "default", *flags),
                   env=env, check=True)
    wall = time.perf_counter() - t0
    with connect() as conn:
        count, once, secs = conn.execute(
            "select count(*), count(*) filter (where attempt = 1),"
            " extract(epoch from max(finished_at) - min(started_at))::float8"
            " from queue.all_jobs where job_type = %s and status = 'completed' and id > %s",
            (NOOP, first),
        ).fetchone()
    if count != n or once != n:
        raise SystemExit(f"end-to-end: {count} of {n} jobs completed, {once} on attempt 1")
    return n / secs, n / wall


def pooler_bench_url() -> str | None:
    pooler = os.environ.get("KYU_POOLER_URL")
    if not pooler:
        return None
    port = _psycopg().conninfo.conninfo_to_dict(pooler)["port"]
    return _psycopg().conninfo.make_conninfo(bench_url(), port=port)


def latency(n: int) -> tuple[list[float], list[float]]:
    proc = subprocess.Popen(worker_cmd("run", "--job-types", LATENCY, "--queues", "default",
                                       "--poll-interval", "5"), env=worker_env())
    try:
        with connect() as conn:
            # warm-up: the worker is ready once it has run a first job
            enq = "select queue.enqueue_job(%s, '{}'::jsonb)"
            probe = conn.execute(enq, (LATENCY,)).fetchone()[0]
            deadline = time.time() + 30
            status = "select status::text from queue.get_job(%s)"
            while conn.execute(status, (probe,)).fetchone()[0] != "completed":
                if time.time() > deadline:
                    raise SystemExit("latency: worker did not start")
                time.sleep(0.05)
            time.sleep(0.2)
            sent: dict[int, tuple[float, float]] = {}
            sql = "select queue.enqueue_job(%s, '{}'::jsonb)"
            for _ in range(n):
                t0 = time.time()
                job_id = conn.execute(sql, (LATENCY,)).fetchone()[0]
                sent[job_id] = (t0, time.time())
                time.sleep(0.01)
            time.sleep(0.5)
            rows = conn.execute(
                "select id, (result ->> 't')::float8 from queue.all_jobs"
                " where job_type = %s and status = 'completed' and id <> %s",
                (LATENCY, probe)).fetchall()
    finally:
        proc.terminate()
        proc.wait(30)
    started = {i: t for i, t in rows if i in sent}
    if len(started) != n:
        raise SystemExit(f"latency: {len(started)} of {n} jobs ran")
    from_call = [(started[i] - s[0]) * 1000 for i, s in sent.items()]
    from_commit = [(started[i] - s[1]) * 1000 for i, s in sent.items()]
    return from_call, from_commit


def paired(floor_fn, fn, n: int, rounds: int = 5) -> tuple[float, float]:
    """Rates of floor_fn and fn over n jobs each, in `rounds` alternating chunks."""
    k = n // rounds
    t_floor = t_fn = 0.0
    for _ in range(rounds):
        t_floor += k / floor_fn(k)
        t_fn += k / fn(k)
    return rounds * k / t_floor, rounds * k / t_fn


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with connect() as conn:
        pg = conn.execute("show server_version").fetchone()[0]
        sc = conn.execute("show synchronous_commit").fetchone()[0]
        fs = conn.execute("show fsync").fetchone()[0]
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; {platform.system()} "
            f"{platform.release()}; PostgreSQL {pg} (fsync={fs}, synchronous_commit={sc}) on the "
            f"same machine; Python {platform.python_version()}")


def main() -> None:
    global MIGRATIONS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=50_000, help="end-to-end and SQL batch-100 jobs")
    ap.add_argument("--e2e-jobs", type=int, default=100_000, help="jobs per end-to-end run")
    ap.add_argument("--rounds", type=int, default=4,
                    help="end-to-end runs of the defaults and of the tuned flags, alternating")
    ap.add_argument("--concurrency", default="500-2000",
                    help="worker --concurrency of the tuned end-to-end run")
    ap.add_argument("--batch-size", type=int, default=1000,
                    help="worker --batch-size of the tuned end-to-end run")
    ap.add_argument("--latency-jobs", type=int, default=300)
    ap.add_argument("--migrations", type=Path, default=MIGRATIONS,
                    help="build kyu_bench from these migrations (A/B against another version)")
    args = ap.parse_args()
    n = args.jobs
    MIGRATIONS = args.migrations

    build_database()
    rows: list[tuple[str, float, str, str]] = []

    def add(name: str, value: float, unit: str = "jobs/s", own: str = "") -> None:
        rows.append((name, value, unit, own))
        print(f"  {name:<48} {value:>10,.0f} {unit}  {own}", flush=True)

    print(f"machine: {machine()}\n", flush=True)
    # latency first, on a clean database after a checkpoint: the throughput runs leave
    # checkpoints and autovacuum behind them, whose I/O would show up in the percentiles
    with connect() as conn:
        conn.execute("checkpoint")
    from_call, from_commit = latency(args.latency_jobs)
    # each figure that has a floor is measured in rounds alternating with that floor, so the
    # box's drift (other sessions, checkpoints, a commit's flush taking 0.1 or 8 ms) hits both
    one_floor, one = paired(insert_single, enqueue_single, 3000)
    bulk_floor, bulk = paired(insert_bulk, lambda k: enqueue_bulk("kyu.bench.sql", k), n)
    f100, cc100 = paired(lambda k: floor(100, k),
                         lambda k: claim_complete(100, k, ["default"]), n)
    add("floor: delete..skip locked, batch 100", f100)
    add("floor: delete..skip locked, batch 1", floor(1, 5000))
    add("floor: insert, 1 row per transaction", one_floor)
    add("floor: insert, 1,000 rows per statement", bulk_floor)
    add("enqueue_job, 1 per transaction", one, own=f"{one / one_floor:.2f} of its insert floor")
    add("enqueue_jobs, 1,000 per call", bulk, own=f"{bulk / bulk_floor:.2f} of its insert floor")
    add("SQL claim_jobs+complete_jobs, batch 100", cc100)
    # the 3,000 jobs of enqueue_job are what is left waiting
    add("SQL claim_jobs+complete_jobs, batch 1", claim_complete(1, 3000, ["default"]))
    add("  enqueue_job, synchronous_commit=off (diagnostic)", enqueue_single(3000, False))
    add("  claim+complete batch 1, synchronous_commit=off (diagnostic)", claim_complete_async(3000))
    enqueue_bulk("kyu.bench.sql", 10_000)
    add("  same, queue_names null (all queues)", claim_complete(100, 10_000))
    # defaults and tuned alternate back to back, so the box's noise falls on both; best of each
    tuned_flags = ["--concurrency", args.concurrency, "--batch-size", str(args.batch_size)]
    e2e = args.e2e_jobs
    runs: dict[str, list[tuple[float, float]]] = {"defaults": [], "tuned": []}
    for i in range(args.rounds):  # the order alternates too: the first run of a pair pays
        for name in (("defaults", "tuned") if i % 2 == 0 else ("tuned", "defaults")):
            runs[name].append(end_to_end(e2e, [] if name == "defaults" else tuned_flags))
    default_best = max(runs["defaults"])
    tuned_best = max(runs["tuned"])
    add(f"end-to-end no-op, {e2e:,} jobs, 1 worker, no flags (defaults)", default_best[0])
    add(f"end-to-end no-op, same, tuned ({' '.join(tuned_flags)})", tuned_best[0])
    add("  defaults incl. worker start/exit", default_best[1])
    add("  tuned incl. worker start/exit", tuned_best[1])
    pooled = pooler_bench_url()
    if pooled:
        add("end-to-end no-op, defaults, behind PgBouncer (transaction)",
            end_to_end(e2e, [], pooled)[0])
    print(f"  defaults / tuned: {default_best[0] / tuned_best[0]:.0%} (runs: "
          + ", ".join(f"{k} " + " ".join(f"{r[0]:,.0f}" for r in v) for k, v in runs.items())
          + ")", flush=True)
    lat = {p: pct(from_call, p) for p in (50, 95, 99)}
    latc = {p: pct(from_commit, p) for p in (50, 95, 99)}

    print("\n| figure | value | ratio to floor (batch 100) | ratio to its own floor |"
          "\n|---|---:|---:|---:|")
    for name, value, unit, own in rows:
        print(f"| {name} | {value:,.0f} {unit} | {value / f100:.2f} | {own.split(' ')[0]} |")
    print("| enqueue-to-start latency from enqueue call, p50 / p95 / p99 | "
          f"{lat[50]:.2f} / {lat[95]:.2f} / {lat[99]:.2f} ms | |")
    print("| enqueue-to-start latency from commit, p50 / p95 / p99 | "
          f"{latc[50]:.2f} / {latc[95]:.2f} / {latc[99]:.2f} ms | |")


if __name__ == "__main__":
    main()
