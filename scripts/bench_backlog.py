"""Kyu storage benchmark (`make bench-backlog`): plans and disk size at large backlogs.

Builds a scratch database `kyu_bench_backlog` from supabase/migrations (dropped first) and
reproduces the traps of issue 15, printing one line per figure:

  claim latency   claim_jobs batch 100, shaped as the worker sends it (queue_names {default},
                  the worker's job_types), on a fresh analysed table, then at backlogs of 0, 200k
                  and 1M right after `vacuum analyze` saw the table empty (what autovacuum does
                  between bursts) with autovacuum then held off, so the statistics stay stale
  drains          three consecutive 200k drains on that stale table: claim everything in
                  batches of 1,000 (a worker with spare capacity), then complete_jobs in batches
                  of 5,000 from a session with plan_cache_mode = force_generic_plan (the plan a
                  pooled connection ends up with); every complete_jobs call is timed and
                  cancelled after --call-timeout seconds
  hot table size  heap and index size of queue.jobs on a fresh table, right after the drains,
                  and after the housekeeping that pg_cron runs (queue.maintain_jobs_storage)
  history drop    dropping one day of history (--history-rows rows) by partition

The pass/fail lines restate issue 15's targets. Nothing here is part of `make test`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: database build and connection helpers)

bench.BENCH_DB = "kyu_bench_backlog"
JOB_TYPE = "kyu.bench.sql"
WORKER_TYPES = [JOB_TYPE, bench.NOOP, bench.LATENCY]
CLAIM = ("select id, attempt, lease_token from queue.claim_jobs('bench', %s, array['default'],"
         " %s::text[])")
COMPLETE = "select queue.complete_jobs(%s::bigint[], 'bench', null, %s::int[], %s::uuid[])"


def complete_args(rows) -> tuple[list, list, list]:
    """complete_jobs' ids, attempts and lease tokens for claimed (id, attempt, token) rows."""
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def fill(conn, n: int) -> None:
    """n waiting jobs of JOB_TYPE, written directly (setup, not measured)."""
    conn.execute(
        "insert into queue.jobs (job_type, queue_name, priority, max_attempts, payload)"
        " select %s, 'default', 50, 5, jsonb_build_object('n', i)"
        " from generate_series(1, %s) as i", (JOB_TYPE, n))


def waiting(conn) -> int:
    return conn.execute("select count(*) from queue.jobs where status = 'pending'").fetchone()[0]


def sizes(conn) -> tuple[int, int]:
    return conn.execute(
        "select pg_relation_size('queue.jobs'), pg_indexes_size('queue.jobs')").fetchone()


def mb(b: int) -> str:
    return f"{b / 2**20:.1f} MB"


def claim_latency(conn, samples: int, backlog_refill: bool) -> list[float]:
    """Times `samples` claims of 100 (completing each); with backlog_refill each claim first
    gets exactly 100 fresh jobs (a backlog of 0 behind them)."""
    out = []
    for _ in range(samples):
        if backlog_refill:
            fill(conn, 100)
        t0 = time.perf_counter()
        rows = conn.execute(CLAIM, (100, WORKER_TYPES)).fetchall()
        out.append((time.perf_counter() - t0) * 1000)
        if len(rows) != 100:
            raise SystemExit(f"claim returned {len(rows)} jobs, expected 100")
        conn.execute(COMPLETE, complete_args(rows))
    return out


def typed_claims(conn, samples: int, backlog: int, queues: str) -> list[float]:
    """Claims of 100 jobs of one type (LATENCY) with `backlog` jobs of another type ahead."""
    conn.execute("delete from queue.jobs")
    fill(conn, backlog)
    conn.execute("vacuum analyze queue.jobs")
    claim = (f"select id, attempt, lease_token from queue.claim_jobs('bench', 100, {queues},"
             f" array['{bench.LATENCY}'])")
    out = []
    for _ in range(samples):
        conn.execute(
            "insert into queue.jobs (job_type, queue_name, priority, max_attempts, payload)"
            " select %s, 'default', 50, 5, '{}' from generate_series(1, 100)", (bench.LATENCY,))
        t0 = time.perf_counter()
        rows = conn.execute(claim).fetchall()
        out.append((time.perf_counter() - t0) * 1000)
        if len(rows) != 100:
            raise SystemExit(f"typed claim returned {len(rows)} jobs, expected 100")
        conn.execute(COMPLETE, complete_args(rows))
    conn.execute("delete from queue.jobs")
    return out


def stale_empty(conn) -> None:
    """Leaves queue.jobs empty, vacuumed and analysed as empty, with autovacuum held off."""
    conn.execute("delete from queue.jobs")
    conn.execute("vacuum analyze queue.jobs")
    conn.execute("alter table queue.jobs set (autovacuum_enabled = off)")


def drain(conn, n: int, timeout_s: float) -> tuple[float, float, int, float]:
    """Claims n jobs in batches of 1,000, then completes them in batches of 5,000 from a
    session forced to generic plans. Returns (seconds, max complete call s, stalled, jobs/s)."""
    ids: list[tuple[int, int, str]] = []
    t0 = time.perf_counter()
    while True:
        rows = conn.execute(CLAIM, (1000, WORKER_TYPES)).fetchall()
        if not rows:
            break
        ids.extend(rows)
    worst = 0.0
    stalled = 0
    with bench.connect() as done:
        done.execute("set plan_cache_mode = force_generic_plan")
        done.execute(f"set statement_timeout = '{int(timeout_s * 1000)}ms'")
        for i in range(0, len(ids), 5000):
            chunk = ids[i:i + 5000]
            c0 = time.perf_counter()
            try:
                done.execute(COMPLETE, complete_args(chunk))
            except bench._psycopg().errors.QueryCanceled:
                stalled += 1  # the rest of this drain would stall alike: stop here
                worst = max(worst, time.perf_counter() - c0)
                break
            worst = max(worst, time.perf_counter() - c0)
    secs = time.perf_counter() - t0
    conn.execute("delete from queue.jobs")  # what a cancelled call left running
    return secs, worst, stalled, len(ids) / secs


def history_drop(conn, rows: int) -> float | None:
    """Seconds for the housekeeping to drop one day (30 days old) of `rows` finished jobs;
    None where history is not partitioned."""
    if conn.execute("select to_regproc('queue.maintain_history_partitions') is null").fetchone()[0]:
        return None
    day = conn.execute("select (now() at time zone 'UTC')::date - 30").fetchone()[0]
    part = conn.execute("select queue._create_history_partition(%s)", (day,)).fetchone()[0]
    conn.execute(
        "insert into queue.job_history (id, job_type, queue_name, status, priority, payload,"
        " attempt, max_attempts, run_at, created_at, finished_at)"
        " select -i, %s, 'default', 'completed', 50, jsonb_build_object('n', i), 1, 5, d, d,"
        "  d + interval '1 ms' * (i %% 86000000)"
        " from generate_series(1, %s) as i, (select %s::timestamp at time zone 'UTC' as d) as x",
        (JOB_TYPE, rows, day))
    conn.execute("vacuum analyze queue.job_history")
    t0 = time.perf_counter()
    done = [r[0] for r in conn.execute("select queue.maintain_history_partitions()").fetchall()]
    secs = time.perf_counter() - t0
    if f"dropped {part}" not in done:
        raise SystemExit(f"history drop: {part} was not dropped: {done}")
    return secs


def storage_size(conn, add, fresh_idx: int) -> None:
    """Hot-table size after a 200k drain: right after, after a vacuum, after the housekeeping."""
    label = "right after the drains"
    if sizes(conn)[1] < 2**20:  # the drains did not run: make one
        fill(conn, 200_000)
        drain(conn, 200_000, 60)
        label = "right after a 200k drain"
    heap, idx = sizes(conn)
    add(f"queue.jobs {label}: heap / indexes", f"{mb(heap)} / {mb(idx)}")
    conn.execute("vacuum queue.jobs")
    heap, idx = sizes(conn)
    add("  after a vacuum (autovacuum's work): heap / indexes", f"{mb(heap)} / {mb(idx)}")
    if conn.execute("select to_regproc('queue.maintain_jobs_storage') is not null").fetchone()[0]:
        t0 = time.perf_counter()
        conn.execute("select queue.maintain_jobs_storage()")
        heap, idx = sizes(conn)
        add("  after queue.maintain_jobs_storage() (pg_cron queue-storage)",
            f"{mb(heap)} / {mb(idx)} in {(time.perf_counter() - t0) * 1000:.0f} ms")
    add("queue.jobs indexes on a fresh table (1,000 jobs, emptied)", mb(fresh_idx))
    add("target: indexes under 2x the fresh table's",
        f"{idx / max(fresh_idx, 1):.1f}x {'ok' if idx <= 2 * fresh_idx else 'MISSED'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backlog", type=int, default=200_000)
    ap.add_argument("--big-backlog", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--drains", type=int, default=3)
    ap.add_argument("--call-timeout", type=float, default=20.0,
                    help="cancel a complete_jobs call after this many seconds (a stall)")
    ap.add_argument("--history-rows", type=int, default=1_000_000)
    ap.add_argument("--parts", default="claims,types,drains,size,history",
                    help="comma-separated subset of claims,types,drains,size,history")
    ap.add_argument("--migrations", type=Path, default=bench.MIGRATIONS,
                    help="build the database from these migrations (A/B against another version)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    bench.MIGRATIONS = args.migrations

    bench.build_database()
    print(f"machine: {bench.machine()}\n", flush=True)
    results: list[tuple[str, str]] = []

    def add(name: str, value: str) -> None:
        results.append((name, value))
        print(f"  {name:<62} {value}", flush=True)

    def lat(name: str, xs: list[float]) -> float:
        med = statistics.median(xs)
        add(name, f"median {med:.2f} ms, first {xs[0]:.2f} ms, max {max(xs):.2f} ms")
        return med

    with bench.connect() as conn:
        # a fresh, analysed table: the reference figures
        fill(conn, 1000)
        conn.execute("vacuum analyze queue.jobs")
        conn.execute("delete from queue.jobs")
        fresh_idx = sizes(conn)[1]

        if "claims" in parts:
            base = lat("claim batch 100, fresh analysed table, backlog 0",
                       claim_latency(conn, args.samples, True))
            # the trap: statistics saw the table empty, then a burst arrives
            stale_empty(conn)
            worst = lat("claim batch 100, stale-empty stats, backlog 0",
                        claim_latency(conn, args.samples, True))
            fill(conn, args.backlog)
            worst = max(worst, lat(f"claim batch 100, stale-empty stats, backlog {args.backlog:,}",
                                   claim_latency(conn, args.samples, False)))
            fill(conn, args.big_backlog - waiting(conn))
            worst = max(worst, lat(
                f"claim batch 100, stale-empty stats, backlog {args.big_backlog:,}",
                claim_latency(conn, args.samples, False)))
            add("target: every median within 2x of the fresh figure",
                f"{worst / base:.1f}x {'ok' if worst <= 2 * base else 'MISSED'}")

        if "types" in parts:
            # a worker's job_types filter behind another type's backlog
            base = lat("claim batch 100 of type B, nothing ahead",
                       typed_claims(conn, args.samples, 0, "array['default']"))
            worst = base
            for queues in ("array['default']", "null"):
                worst = max(worst, lat(
                    f"claim batch 100 of type B behind {args.backlog:,} of type A, queues {queues}",
                    typed_claims(conn, args.samples, args.backlog, queues)))
            add("target: a job_types filter behind a backlog costs the same as none",
                f"{worst / base:.1f}x {'ok' if worst <= 2 * base else 'MISSED'}")

        if "drains" in parts:
            # drains after drains, statistics stale-empty before each
            stalls = 0
            worst_call = 0.0
            for k in range(1, args.drains + 1):
                stale_empty(conn)
                fill(conn, args.backlog)
                secs, worst_c, stalled, rate = drain(conn, args.backlog, args.call_timeout)
                stalls += stalled
                worst_call = max(worst_call, worst_c)
                add(f"drain {k}: {args.backlog:,} jobs, generic plans, stale stats",
                    f"{secs:.1f} s ({rate:,.0f} jobs/s), slowest complete_jobs {worst_c:.2f} s"
                    + (f", cancelled at {args.call_timeout:.0f} s" if stalled else ""))
            ok = worst_call <= 1 and not stalls
            add("target: no complete_jobs call over 1 s",
                f"slowest {worst_call:.2f} s {'ok' if ok else 'MISSED'}")

        conn.execute("alter table queue.jobs reset (autovacuum_enabled)")
        if "size" in parts:
            storage_size(conn, add, fresh_idx)

        if "history" in parts:
            secs = history_drop(conn, args.history_rows)
            if secs is None:
                add("history drop by partition", "n/a (queue.job_history is not partitioned)")
            else:
                add(f"maintain_history_partitions dropping a day of {args.history_rows:,} jobs",
                    f"{secs * 1000:.0f} ms {'ok' if secs < 1 else 'MISSED'}")

    print("\n| figure | value |\n|---|---|")
    for name, value in results:
        print(f"| {name.strip()} | {value} |")


if __name__ == "__main__":
    main()
