"""Two sessions claiming at once never get the same job."""

from __future__ import annotations

import threading

import psycopg
import pytest


@pytest.fixture()
def queue_with_jobs(migrated_db: str) -> str:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("select queue.create_queue('t_race')")
        conn.execute("select queue.register_job_type('t_race_job', queue_name => 't_race')")
        conn.execute("delete from queue.jobs where queue_name = 't_race'")
        conn.execute(
            "select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 't_race_job',"
            " 'payload', jsonb_build_object('n', g)))) from generate_series(1, 3000) as g"
        )
    return migrated_db


# null is the one-scan path over every queue (what a worker uses by default); a queue list is the
# per-queue path: both must skip rows another claimer holds, never wait on them
@pytest.mark.parametrize(
    "queues",
    [
        "array['t_race']",
        "null",
        "null, array['t_race_job']",
        "array['t_race'], array['t_race_job']",
        "null, array['t_race_job', 't_none']",
    ],
    ids=["per-queue", "all-queues", "by-type", "per-queue-by-type", "by-types"],
)
def test_open_claim_transaction_does_not_block_or_share_with_another_session(
    queue_with_jobs: str, queues: str
) -> None:
    with (
        psycopg.connect(queue_with_jobs) as a,
        psycopg.connect(queue_with_jobs, autocommit=True) as b,
    ):
        # a claims inside an open transaction: its rows stay locked until it commits
        a_ids = {r[0] for r in a.execute(
            f"select id from queue.claim_jobs('w-a', 5, {queues})").fetchall()}
        b.execute("set lock_timeout = '2s'")  # b must skip a's rows, never wait on them
        b_ids = {r[0] for r in b.execute(
            f"select id from queue.claim_jobs('w-b', 5, {queues})").fetchall()}
        a.rollback()
        assert len(a_ids) == 5 and len(b_ids) == 5
        assert not a_ids & b_ids


@pytest.mark.parametrize(
    "job_types",
    ["null", "array['t_race_job']", "array['t_race_job', 't_none']"],
    ids=["any-type", "by-type", "by-types"],
)
def test_two_sessions_claiming_in_a_loop_never_share_a_job(
    queue_with_jobs: str, job_types: str
) -> None:
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    start = threading.Barrier(2)

    def claim_all(worker: str) -> None:
        with psycopg.connect(queue_with_jobs, autocommit=True) as conn:
            start.wait()
            while True:
                rows = conn.execute(
                    "select id, lease_token"
                    f" from queue.claim_jobs(%s, 7, array['t_race'], {job_types})",
                    (worker,),
                ).fetchall()
                if not rows:
                    return
                ids = [r[0] for r in rows]
                claimed[worker].extend(ids)
                conn.execute("select queue.complete_jobs(%s, %s, lease_tokens => %s)",
                             (ids, worker, [r[1] for r in rows]))

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    w1, w2 = claimed["w1"], claimed["w2"]
    assert len(w1) + len(w2) == 3000, "every job was claimed"
    assert len(set(w1)) == len(w1) and len(set(w2)) == len(w2), "no worker got a job twice"
    assert not set(w1) & set(w2), "no job went to both workers"
    assert w1 and w2, "both sessions claimed work"
    with psycopg.connect(queue_with_jobs) as conn:
        done = conn.execute(
            "select count(*) from queue.job_history"
            " where queue_name = 't_race' and status = 'completed' and id = any(%s)",
            (w1 + w2,),
        ).fetchone()
        assert done == (3000,)
