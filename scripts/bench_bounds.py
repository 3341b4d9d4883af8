"""Kyu storage ceiling (`make bench-bounds`): how close could any function get to the floors?

Issue 15 asks for ratios to two floors: SQL claim+complete (batch 100) at 0.6 of a bare
`delete ... for update skip locked` on a two-column table, and enqueue_jobs (1,000 per call) at
0.5 of a bare 1,000-row insert into that table. This measures, in one run and alternating with
the floor in rounds (the box's drift hits both), the same statements stripped of every check
and default, on Kyu's own tables in a scratch database `kyu_bench_bounds`:

  bare claim+complete      pick by the job type's claim index, skip locked; one update to
                           running with a lease and a token (returning id, attempt, token); then
                           delete by id and insert the deleted rows into queue.job_history
  same without history     the delete only (no history row per job)
  bare bulk insert         1,000 rows from the JSON array into queue.jobs, every value a constant
                           (no validation, no defaults looked up, no notify)
and Kyu's functions beside them (claim_jobs + complete_jobs; enqueue_jobs). The bare figures are
the ceiling of the storage shape: a function around it that checks anything lands below them.
The same bare statements also run on the slimmest shape a leased, prioritised queue can have
(`slim`: the jobs table with its primary key, one claim index and the running index; a history
table with its primary key only, not partitioned), to show what a storage decision could buy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: database build, floors, Kyu's own loops)

bench.BENCH_DB = "kyu_bench_bounds"
JOB_TYPE = "kyu.bench.sql"

# the slimmest shape: what a queue with priorities, leases and a history row per job cannot do
# without (one claim index: by type, the worker's call; the running index: leases and counts)
SLIM_TABLES = """
create table public.slim_jobs
    (like queue.jobs including defaults including constraints including identity);
alter table public.slim_jobs add primary key (id);
create index on public.slim_jobs (job_type, priority, run_at, id)
    where status in ('pending', 'retrying');
create index on public.slim_jobs (queue_name, lease_expires_at) where status = 'running';
create table public.slim_history (like queue.job_history including defaults);
alter table public.slim_history add primary key (id);
"""

# the pick and the claim of queue._pick_by_type / queue.claim_jobs, with nothing around them
BARE_CLAIM = """
update {jobs} as j
set status = 'running', attempt = j.attempt + 1, worker_id = 'bench', lease_seconds = 300,
    lease_expires_at = now() + interval '300 seconds', attempted_at = now(),
    started_at = coalesce(j.started_at, now()), lease_token = gen_random_uuid()
where j.id = any(array(
    select p.id from {jobs} as p
    where p.job_type = %s and p.status in ('pending', 'retrying') and p.run_at <= now()
    order by p.priority, p.run_at, p.id
    limit %s
    for update skip locked
))
returning j.id, j.attempt, j.lease_token::text
"""
BARE_COMPLETE = """
with done as (delete from {jobs} as j where j.id = any(%s::bigint[]) returning j.*)
insert into {history} (
    id, job_type, queue_name, status, priority, payload, attempt, max_attempts, unique_key,
    owner_id, worker_id, errors, result, progress, run_at, created_at, started_at, finished_at,
    public_error, parent_id, releases, released_at, released_by
)
select
    d.id, d.job_type, d.queue_name, 'completed', d.priority, d.payload, d.attempt, d.max_attempts,
    d.unique_key, d.owner_id, d.worker_id, d.errors, null, d.progress, d.run_at, d.created_at,
    d.started_at, clock_timestamp(), d.public_error, d.parent_id, d.releases, d.released_at,
    d.released_by
from done as d
"""
BARE_DELETE = "delete from {jobs} as j where j.id = any(%s::bigint[])"
BARE_INSERT = """
insert into {jobs} (job_type, queue_name, priority, run_at, payload, max_attempts)
select e ->> 'job_type', 'default', 50, now(), e -> 'payload', 5
from jsonb_array_elements(%s::jsonb) as e
returning id
"""


KYU = {"jobs": "queue.jobs", "history": "queue.job_history"}
SLIM = {"jobs": "public.slim_jobs", "history": "public.slim_history"}


def bare_claim_complete(batch: int, n: int, history: bool, shape: dict[str, str] = KYU) -> float:
    """Claims and finishes ``n`` waiting jobs with the bare statements; jobs/s."""
    bench.vacuum()
    claim = BARE_CLAIM.format(**shape)
    finish = (BARE_COMPLETE if history else BARE_DELETE).format(**shape)
    with bench.connect() as conn:
        conn.execute(f"vacuum analyze {shape['jobs']}")
        done = 0
        t0 = time.perf_counter()
        while done < n:
            rows = conn.execute(claim, (JOB_TYPE, batch)).fetchall()
            if not rows:
                break
            conn.execute(finish, ([r[0] for r in rows],))
            done += len(rows)
        return done / (time.perf_counter() - t0)


def bare_insert(n: int, shape: dict[str, str] = KYU, per_call: int = 1000) -> float:
    bodies = [bench.bulk_jobs(JOB_TYPE, per_call, i) for i in range(0, n, per_call)]
    sql = BARE_INSERT.format(**shape)
    with bench.connect() as conn:
        t0 = time.perf_counter()
        for body in bodies:
            conn.execute(sql, (body,)).fetchall()
        return n / (time.perf_counter() - t0)


def alternate(fns: dict[str, callable], k: int, rounds: int) -> dict[str, float]:
    """Each fn(k) once per round, in turn; overall jobs/s of each."""
    spent = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            spent[name] += k / fn(k)
    return {name: rounds * k / t for name, t in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs per figure per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    k, rounds = args.jobs, args.rounds

    bench.build_database()
    with bench.connect() as conn:
        for statement in SLIM_TABLES.split(";")[:-1]:
            conn.execute(statement)
    print(f"machine: {bench.machine()}\n", flush=True)

    def enqueued(fn, shape: dict[str, str] = KYU):  # each claim loop drains what it enqueued
        def run(n: int) -> float:
            if shape is KYU:
                bench.enqueue_bulk(JOB_TYPE, n)
            else:
                bare_insert(n, shape)
            return fn(n)
        return run

    ins = alternate({
        "floor: insert, 1,000 rows per statement": bench.insert_bulk,
        "bare insert into queue.jobs, 1,000 rows": bare_insert,
        "bare insert into the slim shape, 1,000 rows": lambda n: bare_insert(n, SLIM),
        "enqueue_jobs, 1,000 per call": lambda n: bench.enqueue_bulk(JOB_TYPE, n),
    }, k, rounds)
    # the inserts above are left waiting; drain them so every claim round starts from k jobs
    bare_claim_complete(1000, 10 * k * rounds, history=False)
    bare_claim_complete(1000, 10 * k * rounds, history=False, shape=SLIM)
    cc = alternate({
        "floor: delete..skip locked, batch 100": lambda n: bench.floor(100, n),
        "bare claim + delete + history row, batch 100":
            enqueued(lambda n: bare_claim_complete(100, n, history=True)),
        "bare claim + delete, no history, batch 100":
            enqueued(lambda n: bare_claim_complete(100, n, history=False)),
        "slim shape: bare claim + delete + history row, batch 100":
            enqueued(lambda n: bare_claim_complete(100, n, history=True, shape=SLIM), SLIM),
        "slim shape: bare claim + delete, no history, batch 100":
            enqueued(lambda n: bare_claim_complete(100, n, history=False, shape=SLIM), SLIM),
        "claim_jobs + complete_jobs, batch 100":
            enqueued(lambda n: bench.claim_complete(100, n, ["default"])),
    }, k, rounds)

    print("| figure | jobs/s | ratio to its floor |\n|---|---:|---:|")
    for figures in (ins, cc):
        floor = next(iter(figures.values()))
        for name, value in figures.items():
            print(f"| {name} | {value:,.0f} | {value / floor:.2f} |")


if __name__ == "__main__":
    main()
