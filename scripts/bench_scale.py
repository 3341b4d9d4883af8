"""Kyu scale-out benchmark (`make bench-scale`): 1, 2, 4 and 8 worker processes, one database.

Builds a scratch database `kyu_bench_scale` from supabase/migrations (dropped first). For each
worker count P it bulk-enqueues --jobs no-op jobs, starts P `python -m python_worker process`
workers (each drains what it can, then exits) and reports:

  jobs/s        jobs / (last finished_at - first started_at), so start-up is excluded
  pg CPU        CPU seconds of this cluster's Postgres processes per 1,000 jobs (backends that
                exit are counted through the postmaster's reaped-children time), and cores busy
                on average over the whole run, worker start-up included
  worker CPU    CPU seconds of the worker processes per 1,000 jobs (start-up included)
  WAL           bytes and records per job (pg_stat_wal), and commits per 1,000 jobs
  waits         what the cluster's active sessions were waiting on, sampled every 20 ms:
                share of samples on CPU (no wait), on a lock (heavyweight), on an LWLock, on
                I/O (WAL flush included), and idle in the client (waiting for the worker)

Nothing here is part of `make test`. Figures are for the machine it runs on; see docs/scaling.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: database build and connection helpers)

bench.BENCH_DB = "kyu_bench_scale"
TICK = os.sysconf("SC_CLK_TCK")


def postmaster_pid(conn) -> int:
    data_dir = conn.execute("show data_directory").fetchone()[0]
    try:
        return int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    except OSError:  # another user's data directory: ask for a backend's parent instead
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def postgres_cpu(pm: int) -> float:
    """CPU seconds of the postmaster, its reaped children and its live children."""
    fields = Path(f"/proc/{pm}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(f[1]) == pm:
            total += int(f[11]) + int(f[12])
    return total / TICK


def wal(conn) -> tuple[int, int, int]:
    return conn.execute(
        "select wal_bytes::bigint, wal_records, (select xact_commit from pg_stat_database"
        " where datname = current_database()) from pg_stat_wal").fetchone()


class WaitSampler(threading.Thread):
    """Samples pg_stat_activity of the benchmark database every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.counts: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        with bench.connect() as conn:
            sql = ("select state, coalesce(wait_event_type, 'CPU'), wait_event"
                   " from pg_stat_activity where datname = current_database()"
                   " and backend_type = 'client backend' and pid <> pg_backend_pid()")
            while not self.stop.is_set():
                for state, kind, event in conn.execute(sql).fetchall():
                    if state == "idle" or (state or "").startswith("idle in"):
                        self.counts["client"] += 1
                    elif kind == "CPU":
                        self.counts["cpu"] += 1
                    elif kind == "Lock":
                        self.counts["lock"] += 1
                    elif kind == "LWLock":
                        self.counts["lwlock:" + event] += 1
                    elif kind == "IO":
                        self.counts["io:" + event] += 1
                    else:
                        self.counts[kind.lower()] += 1
                time.sleep(0.02)

    def shares(self) -> str:
        total = sum(self.counts.values()) or 1
        groups: Counter[str] = Counter()
        for k, v in self.counts.items():
            groups[k.split(":")[0]] += v
        top = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in groups.most_common())
        detail = [k for k, _ in self.counts.most_common() if ":" in k][:2]
        return top + (f" (most: {', '.join(detail)})" if detail else "")


def run(workers: int, n: int, concurrency: str, batch: int) -> dict[str, float | str]:
    bench.enqueue_bulk(bench.NOOP, n)
    bench.vacuum()
    with bench.connect() as conn:
        pm = postmaster_pid(conn)
        conn.execute("select pg_stat_reset_shared('wal')")
        w0 = wal(conn)
    cpu0 = postgres_cpu(pm)
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = WaitSampler()
    sampler.start()
    t0 = time.perf_counter()
    procs = [subprocess.Popen(bench.worker_cmd("process", "--job-types", bench.NOOP,
                                               "--queues", "default",
                                               "--concurrency", concurrency,
                                               "--batch-size", str(batch)),
                              env=bench.worker_env()) for _ in range(workers)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a worker exited with {p.returncode}")
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    cpu1 = postgres_cpu(pm)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with bench.connect() as conn:
        w1 = wal(conn)
        count, secs = conn.execute(
            "select count(*), extract(epoch from max(finished_at) - min(started_at))::float8"
            " from queue.job_history where job_type = %s"
            " and finished_at > now() - make_interval(secs => %s)", (bench.NOOP, wall + 5)
        ).fetchone()
        conn.execute("delete from queue.job_history where job_type = %s", (bench.NOOP,))
    if count != n:
        raise SystemExit(f"{workers} workers: {count} of {n} jobs completed")
    worker_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    return {
        "jobs/s": n / secs,
        "pg_cpu_per_1k": (cpu1 - cpu0) / n * 1000,
        "pg_cores": (cpu1 - cpu0) / wall,
        "worker_cpu_per_1k": worker_cpu / n * 1000,
        "wal_bytes_per_job": (w1[0] - w0[0]) / n,
        "wal_records_per_job": (w1[1] - w0[1]) / n,
        "commits_per_1k": (w1[2] - w0[2]) / n * 1000,
        "waits": sampler.shares(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=60_000, help="jobs per worker count")
    ap.add_argument("--workers", default="1,2,4,8")
    ap.add_argument("--concurrency", default="100-500", help="worker --concurrency")
    ap.add_argument("--batch-size", type=int, default=500, help="worker --batch-size")
    ap.add_argument("--migrations", type=Path, default=bench.MIGRATIONS)
    args = ap.parse_args()
    bench.MIGRATIONS = args.migrations

    bench.build_database()
    print(f"machine: {bench.machine()}", flush=True)
    print(f"{args.jobs:,} no-op jobs per step, worker --concurrency {args.concurrency}"
          f" --batch-size {args.batch_size}\n", flush=True)
    print("| workers | jobs/s | Postgres CPU s / 1k jobs | Postgres cores busy |"
          " worker CPU s / 1k jobs | WAL bytes / job | WAL records / job | commits / 1k jobs |"
          " where the active sessions were |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for p in (int(x) for x in args.workers.split(",")):
        r = run(p, args.jobs, args.concurrency, args.batch_size)
        print(f"| {p} | {r['jobs/s']:,.0f} | {r['pg_cpu_per_1k']:.3f} | {r['pg_cores']:.2f} |"
              f" {r['worker_cpu_per_1k']:.3f} | {r['wal_bytes_per_job']:,.0f} |"
              f" {r['wal_records_per_job']:.1f} | {r['commits_per_1k']:.1f} | {r['waits']} |",
              flush=True)


if __name__ == "__main__":
    main()
