"""A receipt job type's policy is registered in SQL (sql/receipts/80_job_types.sql, applied by
the migration so triggers, pg_cron and RPC can enqueue before any worker starts) and named in
its ``@handler`` (the worker enforces the timeout itself, and ``ensure_job_type`` would create a
missing type from it). This test keeps the two the same."""

from __future__ import annotations

import python_worker.receipts.jobs  # noqa: F401 - registers the six handlers
from python_worker.registry import registry

RECEIPT_JOBS = {"process_email_receipt", "process_ocr", "match_transaction", "organize_file",
                "sync_freee", "generate_report"}


def test_every_receipt_handler_states_the_policy_its_sql_registration_states(q) -> None:
    rows = {r["job_type"]: r for r in q(
        "select job_type, queue_name, priority, max_attempts, timeout_seconds"
        " from queue.job_types where job_type = any(%s)", (sorted(RECEIPT_JOBS),))}
    assert set(rows) == RECEIPT_JOBS, "every receipt job type is registered by the migration"
    handlers = {h.job_type: h for h in registry.all() if h.job_type in RECEIPT_JOBS}
    assert set(handlers) == RECEIPT_JOBS
    for job_type, h in handlers.items():
        sql = rows[job_type]
        in_python = (h.queue, h.priority, h.max_attempts, h.timeout)
        in_sql = (sql["queue_name"], sql["priority"], sql["max_attempts"], sql["timeout_seconds"])
        assert in_python == in_sql, (job_type, "decorator", in_python, "sql", in_sql)
