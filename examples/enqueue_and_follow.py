"""Enqueue a job as a signed-in Supabase user and follow it to the end, with supabase-py.

    SUPABASE_URL=https://<ref>.supabase.co SUPABASE_ANON_KEY=... \
    KYU_EMAIL=me@example.com KYU_PASSWORD=... \
    python examples/enqueue_and_follow.py generate_report '{"period": "2026-04"}'

The user reaches only the exposed schema `queue_public` (never `queue`): `enqueue_job` (RPC,
`POST /rest/v1/rpc/enqueue_job`) for a job type an operator opened to end users
(`select queue.register_job_type(job_type => 'generate_report', queue_name => 'receipts',
user_enqueue => true);`), then `my_jobs` (the user's own jobs: status, progress, last error;
no payloads). A refused enqueue comes back as a PostgREST error with the SQLSTATE: 42501 for a
job type not open to end users, 22023 for bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from supabase import Client, create_client

FINISHED = ("completed", "dead", "cancelled")


def sign_in(client: Client, email: str, password: str) -> str:
    """Sign in with a password; later requests carry the user's JWT. Returns the user id."""
    session = client.auth.sign_in_with_password({"email": email, "password": password})
    if session.user is None:
        raise SystemExit(f"sign-in failed for {email}")
    return session.user.id


def enqueue(client: Client, job_type: str, payload: dict[str, Any],
            unique_key: str | None = None) -> int:
    """queue_public.enqueue_job: the job's id (an existing live job's id for a unique_key)."""
    params: dict[str, Any] = {"job_type": job_type, "payload": payload}
    if unique_key:
        params["unique_key"] = unique_key
    return int(client.schema("queue_public").rpc("enqueue_job", params).execute().data)


def job_state(client: Client, job_id: int) -> dict[str, Any] | None:
    rows = (client.schema("queue_public").table("my_jobs")
            .select("id, job_type, status, attempt, max_attempts, progress, last_error")
            .eq("id", job_id).execute().data)
    return rows[0] if rows else None


def follow(client: Client, job_id: int, *, poll: float = 1.0, timeout: float = 300.0,
           sleep: Any = time.sleep) -> dict[str, Any]:
    """Poll my_jobs until the job finishes (completed, dead or cancelled); print each change."""
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    while True:
        state = job_state(client, job_id)
        if state is None:
            raise SystemExit(f"job {job_id} is not yours or was purged")
        seen = (state["status"], state["attempt"], json.dumps(state["progress"]))
        if seen != last:
            print(f"job {job_id} {state['status']} (attempt {state['attempt']}/"
                  f"{state['max_attempts']}) progress={state['progress']}"
                  + (f" last_error={state['last_error']}" if state["last_error"] else ""))
            last = seen
        if state["status"] in FINISHED:
            return state
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} still {state['status']} after {timeout:.0f}s")
        sleep(poll)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("job_type")
    p.add_argument("payload", type=json.loads, help="a JSON object")
    p.add_argument("--unique-key")
    args = p.parse_args(argv)
    env = {k: os.environ.get(k) for k in ("SUPABASE_URL", "SUPABASE_ANON_KEY", "KYU_EMAIL",
                                          "KYU_PASSWORD")}
    missing = [k for k, v in env.items() if not v]
    if missing:
        raise SystemExit(f"set {', '.join(missing)}")
    client = create_client(env["SUPABASE_URL"] or "", env["SUPABASE_ANON_KEY"] or "")
    sign_in(client, env["KYU_EMAIL"] or "", env["KYU_PASSWORD"] or "")
    job_id = enqueue(client, args.job_type, args.payload, args.unique_key)
    print(f"enqueued job {job_id}")
    return 0 if follow(client, job_id)["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
