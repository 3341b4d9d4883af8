"""Queue policies under real parallelism: several workers, each on its own connection, claim at
once. The limits live in claim_jobs (queue row lock + count, token bucket), so they must hold
however many workers there are."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

WORKERS = 4


@pytest.fixture
def conn(module_db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(module_db_url, autocommit=True) as c:
        yield c


def _enqueue(conn: psycopg.Connection, job_type: str, n: int) -> None:
    conn.execute(
        "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', %s::text, 'payload',"
        " jsonb_build_object('n', i)))) from generate_series(1, %s) as i",
        (job_type, n),
    )


def test_concurrency_limit_of_two_holds_with_four_parallel_workers(
    module_db_url: str, conn: psycopg.Connection
) -> None:
    conn.execute(
        "select queue.create_queue(queue_name => 'ops_conc', concurrency => 2, lease_seconds => 60)"
    )
    conn.execute(
        "select queue.register_job_type(job_type => 'ops_conc_job', queue_name => 'ops_conc')"
    )
    total = 40
    _enqueue(conn, "ops_conc_job", total)

    stop = threading.Event()
    start = threading.Barrier(WORKERS + 1)
    completed: list[int] = []
    largest_batch = [0]
    samples: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            with psycopg.connect(module_db_url, autocommit=True) as c:
                start.wait()
                while not stop.is_set():
                    ids = [
                        (r[0], r[1])
                        for r in c.execute(
                            "select id, lease_token from queue.claim_jobs(worker_id => %s,"
                            " batch_size => 3,"
                            " queue_names => array['ops_conc'])",
                            (f"w{n}",),
                        ).fetchall()
                    ]
                    with lock:
                        largest_batch[0] = max(largest_batch[0], len(ids))
                    if not ids:
                        time.sleep(0.002)
                        continue
                    time.sleep(random.uniform(0.01, 0.04))  # the handler
                    for job_id, token in ids:
                        done = c.execute(
                            "select queue.complete_job(%s, %s, lease_token => %s)",
                            (job_id, f"w{n}", token),
                        ).fetchone()[0]
                        assert done, f"w{n} lost job {job_id}"
                        with lock:
                            completed.append(job_id)
        except BaseException as e:  # surfaced by the main thread
            errors.append(e)

    def monitor() -> None:
        with psycopg.connect(module_db_url, autocommit=True) as c:
            start.wait()
            while not stop.is_set():
                samples.append(
                    c.execute(
                        "select count(*) from queue.jobs"
                        " where queue_name = 'ops_conc' and status = 'running'"
                    ).fetchone()[0]
                )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
    threads.append(threading.Thread(target=monitor))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(completed) < total and time.monotonic() < deadline and not errors:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(timeout=10)

    assert not errors, errors
    assert sorted(completed) == sorted(set(completed)), "a job completed twice"
    assert len(completed) == total
    assert largest_batch[0] <= 2, "one claim started more jobs than the limit"
    print(f"conc test: {len(samples)} samples, max {max(samples)}")
    assert len(samples) > 100
    assert max(samples) <= 2, f"{max(samples)} jobs ran at once in a queue with concurrency 2"
    assert max(samples) == 2, "the workers never ran two jobs at once: the test proves nothing"


def test_rate_limit_of_five_per_second_holds_over_three_seconds(
    module_db_url: str, conn: psycopg.Connection
) -> None:
    rate, seconds = 5, 3.0
    conn.execute(
        "select queue.create_queue(queue_name => 'ops_rate', rate_limit => %s,"
        " rate_interval => '1 second')",
        (rate,),
    )
    conn.execute(
        "select queue.register_job_type(job_type => 'ops_rate_job', queue_name => 'ops_rate')"
    )
    _enqueue(conn, "ops_rate_job", 200)

    start = threading.Barrier(WORKERS)
    starts: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    t0 = [0.0]

    def worker(n: int) -> None:
        try:
            with psycopg.connect(module_db_url, autocommit=True) as c:
                if start.wait() == 0:
                    t0[0] = time.monotonic()
                begin = time.monotonic()
                while time.monotonic() - begin < seconds:
                    rows = c.execute(
                        "select id, lease_token from queue.claim_jobs(worker_id => %s,"
                        " batch_size => 10,"
                        " queue_names => array['ops_rate'])",
                        (f"w{n}",),
                    ).fetchall()
                    now = time.monotonic()
                    with lock:
                        starts.extend([now] * len(rows))
                    for job_id, token in rows:
                        c.execute("select queue.complete_job(%s, %s, lease_token => %s)",
                                  (job_id, f"w{n}", token))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert not errors, errors
    print(f"rate test: {len(starts)} starts")
    bound = rate + rate * seconds  # a full bucket, then the refill
    assert len(starts) <= bound, (
        f"{len(starts)} starts in {seconds} s exceed the token bucket's {bound}"
    )
    # with four workers polling nonstop the bucket is drained as it fills: at least the refill
    assert len(starts) >= rate * seconds, f"only {len(starts)} starts in {seconds} s at {rate}/s"
    # and no burst beyond the bucket: in any first t seconds, at most rate + rate * t starts
    # (one token of slack for the client-side clock)
    for k, t in enumerate(sorted(starts), start=1):
        assert k <= rate + rate * (t - t0[0]) + 1, (
            f"start {k} at {t - t0[0]:.2f} s is ahead of the bucket"
        )
    remaining = conn.execute(
        "select count(*) from queue.jobs where queue_name = 'ops_rate'"
    ).fetchone()[0]
    assert remaining == 200 - len(starts)
