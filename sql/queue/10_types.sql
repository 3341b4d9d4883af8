-- Types shared by the queue's tables and functions.

create type queue.job_status as enum (
    'pending',
    'running',
    'retrying',
    'completed',
    'cancelled',
    'dead'
);

comment on type queue.job_status is
'pending: waiting (run_at may be in the future); running: leased by a worker; retrying: an attempt failed and the job waits for its backoff; completed, cancelled, dead: finished (in queue.job_history).';

create type queue.backoff_strategy as enum ('fixed', 'linear', 'exponential');

comment on type queue.backoff_strategy is
'Delay before a retry: fixed = base; linear = base * attempt; exponential = base * 2^(attempt - 1); always capped at the max delay.';

create type queue.claimed_job as (
    id bigint,
    job_type text,
    queue_name text,
    payload jsonb,
    attempt int,
    max_attempts int,
    priority int,
    lease_expires_at timestamptz,
    lease_seconds int,
    owner_id uuid,
    created_at timestamptz,
    lease_token uuid,
    parent_id bigint
);

comment on type queue.claimed_job is
'What claim_jobs hands a worker: the job, the attempt it now runs (1-based), its lease deadline, the lease_token that complete, fail, heartbeat, release and report_progress require, and the job it was chained from (parent_id).';
