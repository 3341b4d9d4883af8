-- The queue's tables: policy (queues, job_types, tiers, circuit_breakers, settings), the hot
-- table of live jobs, the history of finished ones, and worker sessions.

create table queue.settings (
    singleton boolean primary key default true,
    max_payload_bytes int not null default 1048576,
    -- end users (queue_public.enqueue_job) get a cap of their own: 20 payloads of 1 MB from one
    -- signed-in user went through before it existed
    max_user_payload_bytes int not null default 65536,
    constraint settings_single_row check (singleton),
    constraint settings_max_payload_positive check (max_payload_bytes > 0),
    constraint settings_max_user_payload_positive check (max_user_payload_bytes > 0)
);

comment on table queue.settings is
'Global settings (one row): the payload size cap for enqueue (max_payload_bytes) and the lower one for end users (max_user_payload_bytes).';

insert into queue.settings (singleton) values (true) on conflict do nothing;

create table queue.queues (
    queue_name text primary key,
    max_attempts int not null default 5,
    backoff_strategy queue.backoff_strategy not null default 'exponential',
    backoff_base interval not null default '5 seconds',
    backoff_max interval not null default '1 hour',
    backoff_jitter numeric not null default 0.1,
    lease_seconds int not null default 300,
    retention interval not null default '7 days',
    concurrency int,
    rate_limit int,
    rate_interval interval,
    -- token bucket state, touched only by claim_jobs on rate-limited queues
    rate_tokens double precision,
    rate_refilled_at timestamptz,
    aging_interval interval,
    paused boolean not null default false,
    -- tenants (sql/queue/27_owner_limits.sql, 37_fair_claim.sql): per-owner quotas at enqueue,
    -- per-owner concurrency and fair claiming
    owner_max_live_jobs int,
    owner_enqueue_rate int,
    owner_enqueue_interval interval,
    owner_limits_all boolean not null default false,
    owner_concurrency int,
    fair boolean not null default false,
    -- round-robin position of a fair queue: the owner served last; claim_jobs moves it
    fair_cursor uuid,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint queues_name_format check (queue_name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    constraint queues_max_attempts_positive check (max_attempts >= 1),
    constraint queues_backoff_in_order check (backoff_base >= interval '0' and backoff_max >= backoff_base),
    constraint queues_backoff_jitter_fraction check (backoff_jitter between 0 and 1),
    constraint queues_lease_positive check (lease_seconds >= 1),
    constraint queues_retention_positive check (retention > interval '0'),
    constraint queues_concurrency_positive check (concurrency is null or concurrency >= 1),
    constraint queues_rate_limit_complete check (
        (rate_limit is null and rate_interval is null)
        or (rate_limit >= 1 and rate_interval > interval '0')
    ),
    constraint queues_aging_positive check (aging_interval is null or aging_interval > interval '0'),
    constraint queues_owner_max_live_positive check (owner_max_live_jobs is null or owner_max_live_jobs >= 1),
    constraint queues_owner_rate_complete check (
        (owner_enqueue_rate is null and owner_enqueue_interval is null)
        or (owner_enqueue_rate >= 1 and owner_enqueue_interval > interval '0')
    ),
    constraint queues_owner_concurrency_positive check (owner_concurrency is null or owner_concurrency >= 1)
);

comment on table queue.queues is
'Named queues and their policy: attempts, backoff, lease, retention, concurrency and rate limits, priority aging, paused.';
comment on column queue.queues.concurrency is 'At most this many running jobs across all workers; null = no limit.';
comment on column queue.queues.rate_limit is 'At most rate_limit starts per rate_interval (token bucket); null = no limit.';
comment on column queue.queues.aging_interval is 'A waiting job gains one priority step per aging_interval waited; null = off.';
comment on column queue.queues.owner_max_live_jobs is
'At most this many live (waiting or running) jobs per owner in this queue, for end users (and for every caller with owner_limits_all), times the owner''s tier quota_factor; null = no limit.';
comment on column queue.queues.owner_enqueue_rate is
'At most owner_enqueue_rate enqueues per owner_enqueue_interval per owner in this queue (a token bucket per owner), times the tier''s quota_factor; null = no limit.';
comment on column queue.queues.owner_limits_all is
'false (default): the owner quotas apply to end users only (queue_public.enqueue_job); true: also to service_role and every caller of enqueue_job(s) that passes an owner_id.';
comment on column queue.queues.owner_concurrency is 'At most this many running jobs per owner across all workers; null = no limit.';
comment on column queue.queues.fair is
'Within a priority, claim_jobs hands out jobs round-robin across owners (weighted by the tier''s fair_weight) instead of first in, first out.';

insert into queue.queues (queue_name, max_attempts, lease_seconds)
values ('critical', 10, 60), ('default', 5, 300), ('bulk', 3, 900)
on conflict do nothing;

create table queue.job_types (
    job_type text primary key,
    queue_name text not null references queue.queues (queue_name) on update cascade,
    priority int not null default 50,
    max_attempts int,
    timeout_seconds int,
    user_enqueue boolean not null default false,
    services text[] not null default '{}',
    chains_to text[] not null default '{}',
    description text,
    -- per-owner quotas for this type's jobs, on top of its queue's (27_owner_limits.sql)
    owner_max_live_jobs int,
    owner_enqueue_rate int,
    owner_enqueue_interval interval,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint job_types_name_format check (job_type ~ '^[A-Za-z][A-Za-z0-9_.:-]{0,99}$'),
    constraint job_types_priority_in_range check (priority between 1 and 100),
    constraint job_types_max_attempts_positive check (max_attempts is null or max_attempts >= 1),
    constraint job_types_timeout_positive check (timeout_seconds is null or timeout_seconds >= 1),
    constraint job_types_owner_max_live_positive check (owner_max_live_jobs is null or owner_max_live_jobs >= 1),
    constraint job_types_owner_rate_complete check (
        (owner_enqueue_rate is null and owner_enqueue_interval is null)
        or (owner_enqueue_rate >= 1 and owner_enqueue_interval > interval '0')
    )
);

comment on table queue.job_types is
'Registry of job types: default queue and priority, per-type overrides of attempts and timeout, whether end users may enqueue it, the external services it depends on (circuit breakers) and the job types its handler may chain (chains_to, see queue.enqueue_child_jobs).';

create table queue.tiers (
    tier text primary key,
    priority_offset int not null,
    quota_factor numeric not null default 1,
    fair_weight int not null default 1,
    constraint tiers_offset_in_range check (priority_offset between -99 and 99),
    constraint tiers_quota_factor_in_range check (quota_factor > 0 and quota_factor <= 1000),
    constraint tiers_fair_weight_in_range check (fair_weight between 1 and 100)
);

comment on table queue.tiers is
'Customer tiers: a job owned by a user of this tier gets priority + priority_offset (lower runs sooner); the per-owner quotas and enqueue rates are multiplied by quota_factor; on a fair queue the owner gets fair_weight turns for every one of a weight-1 owner.';

insert into queue.tiers (tier, priority_offset, quota_factor, fair_weight)
values ('free', 0, 1, 1), ('pro', -10, 10, 2), ('enterprise', -20, 100, 4)
on conflict do nothing;

create table queue.owner_tiers (
    owner_id uuid primary key,
    tier text not null references queue.tiers (tier) on update cascade
);

comment on table queue.owner_tiers is 'Which tier each job owner (auth.uid()) is on; owners not listed get no offset.';

-- token buckets of the per-owner enqueue rates, one row per owner and scope (queue:<name> or
-- type:<name>); the row is also the lock that serializes one owner's enqueues in that scope, so
-- concurrent enqueuers cannot overshoot the live-job quota
create table queue.owner_buckets (
    owner_id uuid not null,
    scope text not null,
    tokens double precision,
    refilled_at timestamptz not null default now(),
    constraint owner_buckets_pkey primary key (owner_id, scope)
);

comment on table queue.owner_buckets is
'Per-owner enqueue state: one row per owner and scope (queue:<name>, type:<name>) with the owner''s token bucket (tokens, refilled_at; null tokens = full). Its row lock serializes an owner''s enqueues in the scope, which keeps the live-job quota exact under concurrent enqueuers.';

create table queue.circuit_breakers (
    service text primary key,
    state text not null default 'closed',
    failures int not null default 0,
    failure_threshold int not null default 5,
    cooldown interval not null default '1 minute',
    opened_at timestamptz,
    last_error text,
    updated_at timestamptz not null default now(),
    constraint circuit_breakers_state_known check (state in ('closed', 'open')),
    constraint circuit_breakers_threshold_positive check (failure_threshold >= 1),
    constraint circuit_breakers_cooldown_positive check (cooldown > interval '0')
);

comment on table queue.circuit_breakers is
'Shared circuit breakers for external services: while one is open (and its cool-down has not passed) jobs of types that list the service are not claimed.';

-- The hot table: only waiting and running jobs. Finished jobs move to queue.job_history, so
-- claiming costs the same whatever the history holds. fillfactor leaves room for HOT updates
-- (progress, retries).
create table queue.jobs (
    id bigint generated by default as identity primary key,
    job_type text not null,
    queue_name text not null,
    status queue.job_status not null default 'pending',
    priority int not null,
    run_at timestamptz not null default now(),
    payload jsonb not null,
    attempt int not null default 0,
    max_attempts int not null,
    unique_key text,
    owner_id uuid,
    worker_id text,
    lease_seconds int,
    lease_expires_at timestamptz,
    backoff_strategy queue.backoff_strategy,
    backoff_base interval,
    backoff_max interval,
    errors jsonb not null default '[]',
    progress jsonb,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    attempted_at timestamptz,
    aged_at timestamptz,
    -- the claim's secret: finishing calls must present it (a worker_id is only a name)
    lease_token uuid,
    -- what the owner may read about the last failure (chosen by the handler); errors stay internal
    public_error text,
    parent_id bigint,
    releases int not null default 0,
    released_at timestamptz,
    released_by text,
    constraint jobs_live_status check (status in ('pending', 'running', 'retrying')),
    constraint jobs_priority_in_range check (priority between 1 and 100),
    constraint jobs_max_attempts_positive check (max_attempts >= 1),
    constraint jobs_running_has_lease check (
        (status = 'running') = (worker_id is not null and lease_expires_at is not null)
    )
) with (
    fillfactor = 80,
    -- every job is updated and deleted within seconds: vacuum early so the claim indexes stay tight
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05
);

comment on table queue.jobs is 'Live jobs only (pending, running, retrying); finished jobs are in queue.job_history.';
comment on column queue.jobs.lease_token is
'Random secret handed out by claim_jobs with each claim; complete, fail, heartbeat, release and report_progress require it. Null while not running.';
comment on column queue.jobs.public_error is
'What the owner sees of the last failure (set by the handler through fail_job(public_error => ...)); the raw errors are for operators.';
comment on column queue.jobs.parent_id is 'The job whose handler chained this one (queue.enqueue_child_jobs); null for a root job.';
comment on column queue.jobs.releases is 'How many times a worker gave the job back uncounted (release_jobs); released_at/released_by: the last one.';

-- claim_jobs reads waiting jobs of one queue in priority, run_at, id order.
create index jobs_queue_claim_idx on queue.jobs (queue_name, priority, run_at, id)
where status in ('pending', 'retrying');

-- claim_jobs over several unlimited queues reads one ordered stream.
create index jobs_claim_idx on queue.jobs (priority, run_at, id)
where status in ('pending', 'retrying');

-- claim_jobs with a job_types filter (the worker's usual call) reads each type's waiting jobs
-- here, so a backlog of other types ahead of them costs nothing (see queue._pick_by_type).
create index jobs_type_claim_idx on queue.jobs (job_type, priority, run_at, id)
where status in ('pending', 'retrying');

-- concurrency counts and the lease reaper.
create index jobs_running_idx on queue.jobs (queue_name, lease_expires_at)
where status = 'running';

create unique index jobs_unique_key_idx on queue.jobs (unique_key)
where unique_key is not null;

create index jobs_owner_idx on queue.jobs (owner_id)
where owner_id is not null;

-- fair claiming: a skip scan over the owners with waiting jobs in a queue, then each owner's
-- first jobs. Jobs without an owner are not in it, so the unfair path (the service's own
-- jobs, the bench's) pays no upkeep for it.
create index jobs_owner_claim_idx on queue.jobs (queue_name, owner_id, priority, run_at, id)
where status in ('pending', 'retrying') and owner_id is not null;

-- get_job lists a job's children
create index jobs_parent_idx on queue.jobs (parent_id)
where parent_id is not null;

-- History is partitioned by day of finished_at (UTC): retention drops whole partitions
-- (queue.maintain_history_partitions, pg_cron queue-partitions) instead of deleting row by
-- row, and reads of the last hour touch one or two partitions. The primary key must hold the
-- partition key, hence (id, finished_at); a lookup by id probes each partition's index.
create table queue.job_history (
    id bigint not null,
    job_type text not null,
    queue_name text not null,
    status queue.job_status not null,
    priority int not null,
    payload jsonb not null,
    attempt int not null,
    max_attempts int not null,
    unique_key text,
    owner_id uuid,
    worker_id text,
    errors jsonb not null default '[]',
    result jsonb,
    progress jsonb,
    run_at timestamptz not null,
    created_at timestamptz not null,
    started_at timestamptz,
    finished_at timestamptz not null default now(),
    public_error text,
    parent_id bigint,
    releases int not null default 0,
    released_at timestamptz,
    released_by text,
    constraint job_history_pkey primary key (id, finished_at),
    constraint job_history_finished_status check (status in ('completed', 'cancelled', 'dead'))
) partition by range (finished_at);

comment on table queue.job_history is
'Finished jobs (completed, cancelled, dead) with result, every attempt''s error and timings; partitioned by day of finished_at (UTC), whole days dropped after the longest queue retention, shorter retentions purged by row.';
comment on column queue.job_history.public_error is 'What the owner sees of the last failure (see queue.jobs.public_error).';
comment on column queue.job_history.parent_id is 'The job whose handler chained this one; null for a root job.';

-- Rows whose day has no partition yet (housekeeping did not run): finishing never fails for
-- want of a partition. Kept empty by queue.maintain_history_partitions, which creates days ahead.
create table queue.job_history_default partition of queue.job_history default;

comment on table queue.job_history_default is
'Finished jobs whose day has no partition of queue.job_history (housekeeping behind); normally empty.';

-- retention purge per queue, oldest first
create index job_history_queue_finished_idx on queue.job_history (queue_name, finished_at);

create index job_history_dead_idx on queue.job_history (finished_at)
where status = 'dead';

-- queue_stats counts the dead letter per queue (index-only; dead jobs only, so writes barely pay)
create index job_history_dead_queue_idx on queue.job_history (queue_name)
where status = 'dead';

create index job_history_owner_idx on queue.job_history (owner_id)
where owner_id is not null;

create index job_history_parent_idx on queue.job_history (parent_id)
where parent_id is not null;

-- recurring jobs check that a run's key was not already done
create index job_history_unique_key_idx on queue.job_history (unique_key)
where unique_key is not null;

create table queue.worker_sessions (
    worker_id text primary key,
    host text,
    pid int,
    started_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    metadata jsonb not null default '{}'
);

comment on table queue.worker_sessions is 'One row per worker process, refreshed by heartbeat; see the view queue.workers.';

create table queue.recurring_jobs (
    name text primary key,
    schedule text not null,
    job_type text not null references queue.job_types (job_type) on update cascade,
    payload jsonb not null default '{}',
    queue_name text references queue.queues (queue_name) on update cascade,
    priority int,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint recurring_jobs_name_format check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    constraint recurring_jobs_payload_object check (jsonb_typeof(payload) = 'object'),
    constraint recurring_jobs_priority_in_range check (priority is null or priority between 1 and 100)
);

comment on table queue.recurring_jobs is
'Recurring jobs: what each pg_cron entry queue-job:<name> enqueues (set by queue.schedule_job; see the view queue.schedules).';

-- One row per queue per minute (queue-stats housekeeping), trimmed by queue.snapshot_stats.
create table queue.stats_history (
    captured_at timestamptz not null,
    queue_name text not null,
    waiting int not null,
    scheduled int not null,
    running int not null,
    retrying int not null,
    dead int not null,
    completed_last_hour int not null,
    failed_last_hour int not null,
    oldest_waiting_age interval,
    wait_p50_seconds double precision,
    wait_p95_seconds double precision,
    run_p50_seconds double precision,
    run_p95_seconds double precision,
    jobs_per_minute numeric,
    failure_rate numeric,
    constraint stats_history_pkey primary key (captured_at, queue_name)
);

comment on table queue.stats_history is
'Snapshots of queue.queue_stats, one row per queue per minute (pg_cron job queue-stats), trimmed to 7 days by default.';
