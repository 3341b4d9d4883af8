-- Kyu queue engine: schema queue, its tables, functions, grants and policies.
-- Rendered by scripts/render_migrations.sh from sql/queue/*.sql; edit those files, not this one.
-- Creates new objects only: no locks on existing tables; safe while nothing runs Kyu yet.

-- ---- sql/queue/00_schema.sql ----
-- Kyu's engine schema. Everything the queue is lives in `queue`; it is not exposed through
-- the Data API (end users go through `queue_public`, see 90_security.sql).
create schema if not exists queue;

comment on schema queue is 'Kyu: a background job queue inside Postgres (engine; not exposed to the Data API).';

-- ---- sql/queue/10_types.sql ----
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

-- ---- sql/queue/15_limits.sql ----
-- Input limits and the helpers that name a bad value. Every text, JSON, time, interval and number
-- the API takes has a bound (the README's "Limits" table lists them all), so a bad input gets
-- Kyu's own error (SQLSTATE 22023, the field, the value, for bulk calls jobs[i]:) before
-- PostgreSQL can answer with a raw one (a btree row too big, an integer out of range, a bad cast).
--   unique_key 300 characters (end users 255, then scoped user:<uid>:) - the btree holds 2704 bytes
--   run_at finite, at most a year ahead (end users: a past run_at means now); retry_at finite,
--   at most a year ahead (a past one means now); backoff_base 0..1 hour (2^30 x 1 hour still fits an interval),
--   backoff_max > 0..7 days; priority 1..100; max_attempts 1..100; 10,000 jobs per enqueue_jobs;
--   error 4,000 characters and public_error 200 (longer ones are cut with a marker, so a failing
--   job can always fail); progress 64 kB of JSON; result the payload cap; worker_id 200 characters.

-- _shown: a value as an error message shows it: at most 100 characters, then how long it was.
create or replace function queue._shown(value text)
returns text
language sql
immutable
security definer
set search_path = ''
as $$
    select case
        when value is null then 'null'
        when length(value) <= 100 then value
        else left(value, 100) || format('... (%s characters)', length(value))
    end
$$;

comment on function queue._shown(text) is
'Private: a value for an error message, cut to 100 characters with its length, so a 5 MB input never becomes a 5 MB error.';

-- _clip: text cut to max_chars with a marker that says how much was cut.
create or replace function queue._clip(value text, max_chars int)
returns text
language sql
immutable
security definer
set search_path = ''
as $$
    select case
        when length(value) <= max_chars then value
        else left(value, max_chars) || format(' [... truncated: %s of %s characters kept]', max_chars, length(value))
    end
$$;

comment on function queue._clip(text, int) is
'Private: value cut to max_chars with a marker [... truncated: n of m characters kept]; null stays null. Errors are cut rather than refused, so a failing job can always fail.';

-- _to_timestamptz / _to_interval / _to_uuid: a JSON string parsed, or null when it does not parse.
-- Called only for keys that are present, so a batch without them never enters the handler block.
create or replace function queue._to_timestamptz(value text)
returns timestamptz
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return value::timestamptz;
exception
    when data_exception then
        return null;
end
$$;

comment on function queue._to_timestamptz(text) is 'Private: value as a timestamptz, or null when it is not one.';

create or replace function queue._to_interval(value text)
returns interval
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return value::interval;
exception
    when data_exception then
        return null;
end
$$;

comment on function queue._to_interval(text) is 'Private: value as an interval, or null when it is not one.';

create or replace function queue._to_uuid(value text)
returns uuid
language plpgsql
immutable
security definer
set search_path = ''
as $$
begin
    return value::uuid;
exception
    when data_exception then
        return null;
end
$$;

comment on function queue._to_uuid(text) is 'Private: value as a uuid, or null when it is not one.';

-- _time_problem: what is wrong with a due time (run_at, retry_at), or null.
-- An infinite time would never run (infinity) or jump every queue and break every age figure
-- (-infinity); a year ahead is far beyond any delay a queue is for (use a schedule). max_past
-- null: any finite past time.
create or replace function queue._time_problem(field text, value timestamptz, max_past interval)
returns text
language sql
stable
security definer
set search_path = ''
as $$
    select case
        when value is null then null
        when not isfinite(value)
            then format('%s must be a finite time, got %s', field, value)
        when value > now() + interval '1 year'
            then format('%s must be at most a year from now, got %s', field, value)
        when value < now() - max_past
            then format('%s must be at most %s in the past, got %s', field, max_past, value)
    end
$$;

comment on function queue._time_problem(text, timestamptz, interval) is
'Private: null when value (a due time) is null or finite, at most a year ahead and at most max_past ago (null: any past time); else the problem, naming field and value.';

-- ---- sql/queue/20_tables.sql ----
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

-- ---- sql/queue/25_registry.sql ----
-- Policy and registry: queues and job types (declarative upserts: a call states the whole policy,
-- so running it twice is harmless) and customer tiers (a priority offset applied at enqueue).

-- create_queue: creates the queue, or sets every policy field of an existing one to what is given.
create or replace function queue.create_queue(
    queue_name text,
    max_attempts int default 5,
    backoff_strategy queue.backoff_strategy default 'exponential',
    backoff_base interval default '5 seconds',
    backoff_max interval default '1 hour',
    backoff_jitter numeric default 0.1,
    lease_seconds int default 300,
    retention interval default '7 days',
    concurrency int default null,
    rate_limit int default null,
    rate_interval interval default null,
    aging_interval interval default null,
    owner_max_live_jobs int default null,
    owner_enqueue_rate int default null,
    owner_enqueue_interval interval default null,
    owner_limits_all boolean default false,
    owner_concurrency int default null,
    fair boolean default false
)
returns queue.queues
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_row queue.queues;
begin
    if create_queue.queue_name is null or create_queue.queue_name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' then
        raise exception 'queue_name must be 1-63 characters of a-z, 0-9, _ . - (starting with a letter or digit), got %',
            coalesce(quote_literal(create_queue.queue_name), 'null') using errcode = '22023';
    elsif create_queue.max_attempts is null or create_queue.max_attempts not between 1 and 100 then
        raise exception 'max_attempts must be from 1 to 100, got %', coalesce(create_queue.max_attempts::text, 'null')
            using errcode = '22023';
    elsif create_queue.backoff_strategy is null then
        raise exception 'backoff_strategy must be fixed, linear or exponential, got null' using errcode = '22023';
    elsif create_queue.backoff_base is null or create_queue.backoff_base < interval '0'
        or create_queue.backoff_base > interval '1 hour' then
        raise exception 'backoff_base must be from 0 to 1 hour, got %', coalesce(create_queue.backoff_base::text, 'null')
            using errcode = '22023', hint = 'Delays grow from the base; backoff_max caps them (up to 7 days).';
    elsif create_queue.backoff_max is null or create_queue.backoff_max < create_queue.backoff_base
        or create_queue.backoff_max <= interval '0' or create_queue.backoff_max > interval '7 days' then
        raise exception 'backoff_max must be over 0, at most 7 days and not below backoff_base (%), got %',
            create_queue.backoff_base, coalesce(create_queue.backoff_max::text, 'null')
            using errcode = '22023';
    elsif create_queue.backoff_jitter is null or create_queue.backoff_jitter not between 0 and 1 then
        raise exception 'backoff_jitter must be between 0 and 1, got %', coalesce(create_queue.backoff_jitter::text, 'null')
            using errcode = '22023';
    elsif create_queue.lease_seconds is null or create_queue.lease_seconds not between 1 and 86400 then
        raise exception 'lease_seconds must be from 1 to 86400 (a day), got %', coalesce(create_queue.lease_seconds::text, 'null')
            using errcode = '22023';
    elsif create_queue.retention is null or create_queue.retention <= interval '0' then
        raise exception 'retention must be positive, got %', coalesce(create_queue.retention::text, 'null')
            using errcode = '22023';
    elsif create_queue.concurrency < 1 then
        raise exception 'concurrency must be at least 1 (or null for no limit), got %', create_queue.concurrency
            using errcode = '22023';
    elsif (create_queue.rate_limit is null) <> (create_queue.rate_interval is null)
        or create_queue.rate_limit < 1 or create_queue.rate_interval <= interval '0' then
        raise exception 'rate_limit (>= 1) and rate_interval (> 0) go together, got % per %',
            create_queue.rate_limit, create_queue.rate_interval using errcode = '22023';
    elsif create_queue.aging_interval <= interval '0' then
        raise exception 'aging_interval must be positive (or null for off), got %', create_queue.aging_interval
            using errcode = '22023';
    end if;
    perform queue._check_owner_policy(
        create_queue.owner_max_live_jobs, create_queue.owner_enqueue_rate, create_queue.owner_enqueue_interval
    );
    if create_queue.owner_concurrency < 1 then
        raise exception 'owner_concurrency must be at least 1 (or null for no limit), got %', create_queue.owner_concurrency
            using errcode = '22023';
    end if;

    insert into queue.queues as q (
        queue_name, max_attempts, backoff_strategy, backoff_base, backoff_max, backoff_jitter,
        lease_seconds, retention, concurrency, rate_limit, rate_interval, aging_interval,
        owner_max_live_jobs, owner_enqueue_rate, owner_enqueue_interval, owner_limits_all, owner_concurrency, fair
    )
    values (
        create_queue.queue_name, create_queue.max_attempts, create_queue.backoff_strategy,
        create_queue.backoff_base, create_queue.backoff_max, create_queue.backoff_jitter,
        create_queue.lease_seconds, create_queue.retention, create_queue.concurrency,
        create_queue.rate_limit, create_queue.rate_interval, create_queue.aging_interval,
        create_queue.owner_max_live_jobs, create_queue.owner_enqueue_rate, create_queue.owner_enqueue_interval,
        coalesce(create_queue.owner_limits_all, false), create_queue.owner_concurrency,
        coalesce(create_queue.fair, false)
    )
    on conflict on constraint queues_pkey do update
    set max_attempts = excluded.max_attempts,
        backoff_strategy = excluded.backoff_strategy,
        backoff_base = excluded.backoff_base,
        backoff_max = excluded.backoff_max,
        backoff_jitter = excluded.backoff_jitter,
        lease_seconds = excluded.lease_seconds,
        retention = excluded.retention,
        concurrency = excluded.concurrency,
        rate_limit = excluded.rate_limit,
        rate_interval = excluded.rate_interval,
        -- a changed rate starts from a full bucket
        rate_tokens = case when q.rate_limit is distinct from excluded.rate_limit
            or q.rate_interval is distinct from excluded.rate_interval then null else q.rate_tokens end,
        aging_interval = excluded.aging_interval,
        owner_max_live_jobs = excluded.owner_max_live_jobs,
        owner_enqueue_rate = excluded.owner_enqueue_rate,
        owner_enqueue_interval = excluded.owner_enqueue_interval,
        owner_limits_all = excluded.owner_limits_all,
        owner_concurrency = excluded.owner_concurrency,
        fair = excluded.fair,
        updated_at = now()
    returning q.* into v_row;
    return v_row;
end
$$;

comment on function queue.create_queue(
    text, int, queue.backoff_strategy, interval, interval, numeric, int, interval, int, int, interval, interval,
    int, int, interval, boolean, int, boolean
) is
'Creates a queue, or sets every policy field of an existing one to the given values (defaults for those left out; paused is kept). concurrency: max running jobs across all workers; rate_limit per rate_interval: a token bucket of starts; aging_interval: waiting jobs gain one priority step per interval. Tenants: owner_max_live_jobs (live jobs per owner) and owner_enqueue_rate per owner_enqueue_interval (a token bucket per owner) limit end users at enqueue (every caller passing an owner_id with owner_limits_all); owner_concurrency: max running jobs per owner; fair: round-robin across owners within a priority.';

-- register_job_type: creates or updates a job type.
create or replace function queue.register_job_type(
    job_type text,
    queue_name text default 'default',
    priority int default 50,
    max_attempts int default null,
    timeout_seconds int default null,
    user_enqueue boolean default false,
    services text[] default '{}',
    description text default null,
    chains_to text[] default '{}',
    owner_max_live_jobs int default null,
    owner_enqueue_rate int default null,
    owner_enqueue_interval interval default null
)
returns queue.job_types
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_row queue.job_types;
begin
    if register_job_type.job_type is null or register_job_type.job_type !~ '^[A-Za-z][A-Za-z0-9_.:-]{0,99}$' then
        raise exception 'job_type must be 1-100 characters of letters, digits, _ . : - (starting with a letter), got %',
            coalesce(quote_literal(register_job_type.job_type), 'null') using errcode = '22023';
    elsif not exists (select from queue.queues as q where q.queue_name = register_job_type.queue_name) then
        raise exception 'unknown queue: %', register_job_type.queue_name
            using errcode = '22023', hint = 'Create it first: select queue.create_queue(queue_name => ...);';
    elsif register_job_type.priority is null or register_job_type.priority not between 1 and 100 then
        raise exception 'priority must be between 1 and 100, got %', register_job_type.priority using errcode = '22023';
    elsif register_job_type.max_attempts not between 1 and 100 then
        raise exception 'max_attempts must be from 1 to 100, got %', register_job_type.max_attempts using errcode = '22023';
    elsif register_job_type.timeout_seconds < 1 then
        raise exception 'timeout_seconds must be at least 1, got %', register_job_type.timeout_seconds using errcode = '22023';
    elsif array_position(register_job_type.chains_to, null) is not null then
        raise exception 'chains_to must list job types, got %', register_job_type.chains_to using errcode = '22023';
    end if;
    perform queue._check_owner_policy(
        register_job_type.owner_max_live_jobs, register_job_type.owner_enqueue_rate,
        register_job_type.owner_enqueue_interval
    );

    insert into queue.job_types as t (
        job_type, queue_name, priority, max_attempts, timeout_seconds, user_enqueue, services, description,
        chains_to, owner_max_live_jobs, owner_enqueue_rate, owner_enqueue_interval
    )
    values (
        register_job_type.job_type, register_job_type.queue_name, register_job_type.priority,
        register_job_type.max_attempts, register_job_type.timeout_seconds,
        coalesce(register_job_type.user_enqueue, false), coalesce(register_job_type.services, '{}'),
        register_job_type.description, coalesce(register_job_type.chains_to, '{}'),
        register_job_type.owner_max_live_jobs, register_job_type.owner_enqueue_rate,
        register_job_type.owner_enqueue_interval
    )
    on conflict on constraint job_types_pkey do update
    set queue_name = excluded.queue_name,
        priority = excluded.priority,
        max_attempts = excluded.max_attempts,
        timeout_seconds = excluded.timeout_seconds,
        user_enqueue = excluded.user_enqueue,
        services = excluded.services,
        description = excluded.description,
        chains_to = excluded.chains_to,
        owner_max_live_jobs = excluded.owner_max_live_jobs,
        owner_enqueue_rate = excluded.owner_enqueue_rate,
        owner_enqueue_interval = excluded.owner_enqueue_interval,
        updated_at = now()
    returning t.* into v_row;
    return v_row;
end
$$;

comment on function queue.register_job_type(text, text, int, int, int, boolean, text[], text, text[], int, int, interval) is
'Creates or updates a job type: default queue and priority, overrides of the queue''s max_attempts (1-100) and lease (timeout_seconds), whether authenticated end users may enqueue it, the external services it depends on (circuit breakers), the job types its handler may enqueue as children (chains_to; queue.enqueue_child_jobs), and per-owner quotas for its jobs on top of the queue''s (owner_max_live_jobs, owner_enqueue_rate per owner_enqueue_interval).';

-- ensure_job_type: registers a job type only if it is missing (a worker starting with its
-- handlers); an existing type keeps the settings an operator gave it. Returns true if it added it.
create or replace function queue.ensure_job_type(
    job_type text,
    queue_name text default 'default',
    priority int default 50,
    max_attempts int default null,
    timeout_seconds int default null,
    description text default null
)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if exists (select from queue.job_types as t where t.job_type = ensure_job_type.job_type) then
        return false;
    end if;
    perform queue.register_job_type(
        job_type => ensure_job_type.job_type,
        queue_name => ensure_job_type.queue_name,
        priority => ensure_job_type.priority,
        max_attempts => ensure_job_type.max_attempts,
        timeout_seconds => ensure_job_type.timeout_seconds,
        description => ensure_job_type.description
    );
    return true;
end
$$;

comment on function queue.ensure_job_type(text, text, int, int, int, text) is
'Registers a job type only if it is missing (workers call it for their handlers); an existing type keeps its settings. Returns true when it added the type.';

-- set_owner_tier: puts a job owner on a customer tier (or off any tier with null).
create or replace function queue.set_owner_tier(owner_id uuid, tier text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if set_owner_tier.owner_id is null then
        raise exception 'owner_id is required' using errcode = '22023';
    end if;
    if set_owner_tier.tier is null then
        delete from queue.owner_tiers as o where o.owner_id = set_owner_tier.owner_id;
        return;
    end if;
    if not exists (select from queue.tiers as t where t.tier = set_owner_tier.tier) then
        raise exception 'unknown tier: %', queue._shown(set_owner_tier.tier) using errcode = '22023',
            hint = 'Tiers live in queue.tiers (tier, priority_offset).';
    end if;
    insert into queue.owner_tiers as o (owner_id, tier)
    values (set_owner_tier.owner_id, set_owner_tier.tier)
    on conflict on constraint owner_tiers_pkey do update set tier = excluded.tier;
end
$$;

comment on function queue.set_owner_tier(
    uuid, text
) is 'Puts a job owner on a customer tier: their jobs are enqueued with priority + the tier''s priority_offset.';

-- ---- sql/queue/27_owner_limits.sql ----
-- Tenants at enqueue: per-owner quotas. A queue or a job type may cap an owner's live (waiting or
-- running) jobs and the owner's enqueue rate (a token bucket per owner); a tier multiplies both
-- (queue.tiers.quota_factor). They bind end users (queue_public.enqueue_job) always, and every
-- caller passing an owner_id only on queues with owner_limits_all: service_role is trusted
-- unless an operator asks.
-- Over a limit: SQLSTATE 53400 (configuration_limit_exceeded: a configured limit, not bad input;
-- PostgREST answers it with 503, which clients retry later), the owner, the scope and the limit
-- in the message, when to retry in the hint. Nothing is written: the check runs after the insert
-- in the same transaction, under the owner's lock, and its error undoes the insert.

-- _check_owner_policy: what is wrong with a quota setting (create_queue, register_job_type).
create or replace function queue._check_owner_policy(
    owner_max_live_jobs int,
    owner_enqueue_rate int,
    owner_enqueue_interval interval
)
returns void
language plpgsql
immutable
security definer
set search_path = ''
as $$
begin
    if _check_owner_policy.owner_max_live_jobs < 1 then
        raise exception 'owner_max_live_jobs must be at least 1 (or null for no limit), got %',
            _check_owner_policy.owner_max_live_jobs
            using errcode = '22023';
    end if;
    if (_check_owner_policy.owner_enqueue_rate is null) <> (_check_owner_policy.owner_enqueue_interval is null)
        or _check_owner_policy.owner_enqueue_rate < 1
        or _check_owner_policy.owner_enqueue_interval <= interval '0'
        or _check_owner_policy.owner_enqueue_interval > interval '1 day' then
        raise exception 'owner_enqueue_rate (>= 1) and owner_enqueue_interval (over 0, at most a day) go together, got % per %',
            coalesce(_check_owner_policy.owner_enqueue_rate::text, 'null'),
            coalesce(_check_owner_policy.owner_enqueue_interval::text, 'null')
            using errcode = '22023',
            hint = 'For example owner_enqueue_rate => 10, owner_enqueue_interval => ''1 second''.';
    end if;
end
$$;

comment on function queue._check_owner_policy(int, int, interval) is
'Private: raises 22023 naming the value when a per-owner quota setting is out of range (owner_max_live_jobs >= 1; owner_enqueue_rate >= 1 together with an owner_enqueue_interval over 0 and at most a day).';

-- _enforce_owner_limits: the quotas of one owner for new jobs of one job type in one queue.
-- Called after the jobs are inserted (counted = true: the live count includes them) or before
-- (counted = false). Scopes are locked in name order (queue:... before type:...), and always as
-- the transaction's last lock, so concurrent enqueuers wait in line and never deadlock.
create or replace function queue._enforce_owner_limits(
    owner_id uuid,
    job_type text,
    queue_name text,
    new_jobs int default 1,
    counted boolean default true
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_factor numeric;
    v_scope record;
    v_max int;
    v_live int;
    v_tokens double precision;
    v_refilled_at timestamptz;
    v_cap double precision;
begin
    if _enforce_owner_limits.owner_id is null then
        return;
    end if;
    for v_scope in
        select
            'queue:' || q.queue_name as scope,
            'queue ' || q.queue_name as label,
            'queue.queues' as source,
            q.owner_max_live_jobs as max_live,
            q.owner_enqueue_rate as rate,
            q.owner_enqueue_interval as per
        from queue.queues as q
        where q.queue_name = _enforce_owner_limits.queue_name
            and (q.owner_max_live_jobs is not null or q.owner_enqueue_rate is not null)
        union all
        select
            'type:' || jt.job_type,
            'job type ' || jt.job_type,
            'queue.job_types',
            jt.owner_max_live_jobs,
            jt.owner_enqueue_rate,
            jt.owner_enqueue_interval
        from queue.job_types as jt
        where jt.job_type = _enforce_owner_limits.job_type
            and (jt.owner_max_live_jobs is not null or jt.owner_enqueue_rate is not null)
        order by 1
    loop
        if v_factor is null then
            select t.quota_factor into v_factor
            from queue.owner_tiers as ot
            join queue.tiers as t on t.tier = ot.tier
            where ot.owner_id = _enforce_owner_limits.owner_id;
            v_factor := coalesce(v_factor, 1);
        end if;
        -- the owner's row in this scope is the lock: a second enqueuer of the same owner waits
        -- here until the first commits, then counts again in a new statement (a new snapshot in
        -- read committed; under repeatable read the update fails with 40001 instead of overshooting)
        insert into queue.owner_buckets as b (owner_id, scope)
        values (_enforce_owner_limits.owner_id, v_scope.scope)
        on conflict on constraint owner_buckets_pkey do update
        set refilled_at = b.refilled_at
        returning b.tokens, b.refilled_at into v_tokens, v_refilled_at;

        if v_scope.max_live is not null then
            v_max := greatest(1, floor(v_scope.max_live * v_factor))::int;
            -- stops past the quota plus the new jobs, so the cost is bounded by the quota itself
            if v_scope.scope like 'queue:%' then
                select count(*) into v_live
                from (
                    select
                    from queue.jobs as j
                    where j.owner_id = _enforce_owner_limits.owner_id
                        and j.queue_name = _enforce_owner_limits.queue_name
                    limit v_max + _enforce_owner_limits.new_jobs
                ) as l;
            else
                select count(*) into v_live
                from (
                    select
                    from queue.jobs as j
                    where j.owner_id = _enforce_owner_limits.owner_id
                        and j.job_type = _enforce_owner_limits.job_type
                    limit v_max + _enforce_owner_limits.new_jobs
                ) as l;
            end if;
            if not _enforce_owner_limits.counted then
                v_live := v_live + _enforce_owner_limits.new_jobs;
            end if;
            if v_live > v_max then
                raise exception 'owner % may have at most % live jobs in %, and this enqueue would make %',
                    _enforce_owner_limits.owner_id, v_max, v_scope.label, v_live
                    using errcode = '53400',
                    hint = format(
                        'Wait until some of the owner''s jobs finish (live = waiting or running). An operator raises the quota with %s.owner_max_live_jobs or the owner''s tier (queue.tiers.quota_factor).',
                        v_scope.source
                    );
            end if;
        end if;

        if v_scope.rate is not null then
            -- a token bucket: capacity rate x factor, refilled continuously over per; a waiting
            -- enqueuer's now() may be older than the last refill, so time never runs backwards
            v_cap := v_scope.rate * v_factor;
            v_tokens := least(
                v_cap,
                coalesce(v_tokens, v_cap)
                + greatest(0, extract(epoch from now() - v_refilled_at)) * v_cap / extract(epoch from v_scope.per)
            );
            if v_tokens < _enforce_owner_limits.new_jobs then
                raise exception 'owner % is over the enqueue rate of %: % per %',
                    _enforce_owner_limits.owner_id, v_scope.label, trim_scale(round(v_cap::numeric, 2)), v_scope.per
                    using errcode = '53400',
                    hint = format(
                        'Retry in %s seconds. An operator raises the rate with %s.owner_enqueue_rate or the owner''s tier (queue.tiers.quota_factor).',
                        trim_scale(round(((_enforce_owner_limits.new_jobs - v_tokens) * extract(epoch from v_scope.per) / v_cap)::numeric, 3)),
                        v_scope.source
                    );
            end if;
            update queue.owner_buckets as b
            set tokens = v_tokens - _enforce_owner_limits.new_jobs,
                refilled_at = greatest(b.refilled_at, now())
            where b.owner_id = _enforce_owner_limits.owner_id and b.scope = v_scope.scope;
        end if;
    end loop;
end
$$;

comment on function queue._enforce_owner_limits(uuid, text, text, int, boolean) is
'Private: applies the per-owner quotas of queue_name and job_type (live jobs, enqueue rate; times the owner''s tier quota_factor) to new_jobs new jobs of owner_id, locking the owner''s queue.owner_buckets rows in name order. counted: the new jobs are already inserted and in the live count. Raises 53400 naming the owner, the scope and the limit, with when to retry; spends one token per job.';

-- _enforce_owner_limits_of: enqueue_jobs' hook: the quotas of queues that bind every caller
-- (owner_limits_all) for the jobs just inserted. One probe of the queue table when none does.
create or replace function queue._enforce_owner_limits_of(job_ids bigint[])
returns void
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_group record;
begin
    if not exists (select from queue.queues as q where q.owner_limits_all) then
        return;
    end if;
    for v_group in
        select j.owner_id, j.queue_name, j.job_type, count(*)::int as n
        from queue.jobs as j
        join queue.queues as q on q.queue_name = j.queue_name
        where j.id = any(_enforce_owner_limits_of.job_ids)
            and j.owner_id is not null
            and q.owner_limits_all
        group by j.owner_id, j.queue_name, j.job_type
        order by j.owner_id, j.queue_name, j.job_type
    loop
        perform queue._enforce_owner_limits(v_group.owner_id, v_group.job_type, v_group.queue_name, v_group.n, true);
    end loop;
end
$$;

comment on function queue._enforce_owner_limits_of(bigint[]) is
'Private: called by enqueue_jobs after its insert: applies the per-owner quotas to the listed jobs that are owned and sit in a queue with owner_limits_all (one probe of queue.queues when no queue has it).';

-- owner_stats: per queue and owner now: waiting, scheduled, running, retrying, the oldest wait.
-- One pass over the hot table (like queue_stats); read the top owners with an order by and a limit.
create or replace view queue.owner_stats as
select
    s.queue_name,
    s.owner_id,
    ot.tier,
    s.waiting::int as waiting,
    s.scheduled::int as scheduled,
    s.running::int as running,
    s.retrying::int as retrying,
    s.live::int as live,
    s.oldest_waiting_age
from (
    select
        j.queue_name,
        j.owner_id,
        count(*) filter (where j.status = 'pending' and j.run_at <= now()) as waiting,
        count(*) filter (where j.status = 'pending' and j.run_at > now()) as scheduled,
        count(*) filter (where j.status = 'running') as running,
        count(*) filter (where j.status = 'retrying') as retrying,
        count(*) as live,
        -- clamped like queue_stats: a row with an infinite run_at cannot break the reader
        now() - min(greatest(j.run_at, now() - interval '100 years'))
        filter (where j.status in ('pending', 'retrying') and j.run_at <= now()) as oldest_waiting_age
    from queue.jobs as j
    group by j.queue_name, j.owner_id
) as s
left join queue.owner_tiers as ot on s.owner_id = ot.owner_id;

comment on view queue.owner_stats is
'Per queue and owner (null owner = jobs enqueued without one) now: the owner''s tier, waiting (due), scheduled (run_at ahead), running, retrying, live (all of them) and the oldest due job''s wait. The top owners: order by live desc limit 20.';

-- ---- sql/queue/30_enqueue.sql ----
-- Enqueueing: enqueue_job (one) and enqueue_jobs (many, one statement). Both go through
-- _resolve_jobs, which applies defaults (job type, then queue, then tier offset) and names
-- the first problem of each job, so single and bulk enqueue validate exactly alike.

-- _resolve_jobs: the jobs of a JSON array with every default applied, and what is wrong with each.
-- plpgsql rather than sql: a definer sql function is never inlined and re-plans on every call,
-- while plpgsql caches its plan per session (measured: 1 ms -> 0.3 ms per enqueue).
create or replace function queue._resolve_jobs(jobs jsonb)
returns table (
    ord bigint,
    job_type text,
    queue_name text,
    priority int,
    run_at timestamptz,
    payload jsonb,
    max_attempts int,
    unique_key text,
    owner_id uuid,
    backoff_strategy queue.backoff_strategy,
    backoff_base interval,
    backoff_max interval,
    parent_id bigint,
    problem text
)
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
#variable_conflict use_column
begin
    return query
    select
        i.ord,
        i.j ->> 'job_type',
        q.queue_name,
        least(100, greatest(1, coalesce(i.priority, jt.priority) + coalesce(t.priority_offset, 0))),
        coalesce(i.run_at, now()),
        coalesce(i.j -> 'payload', '{}'),
        coalesce(i.max_attempts, jt.max_attempts, q.max_attempts),
        i.j ->> 'unique_key',
        i.owner_id,
        i.backoff_strategy,
        i.backoff_base,
        i.backoff_max,
        i.parent_id,
        case
            when jsonb_typeof(i.j) <> 'object'
                then format('each job must be a JSON object, got %s', jsonb_typeof(i.j))
            when i.bad_key is not null
                then format('unknown key %s (expected job_type, payload, queue_name, priority, run_at, max_attempts, unique_key, owner_id, backoff_strategy, backoff_base, backoff_max, parent_id)', queue._shown(i.bad_key))
            when i.j ->> 'job_type' is null
                then 'job_type is required'
            when jt.job_type is null
                then format('unknown job type: %s', queue._shown(i.j ->> 'job_type'))
            when q.queue_name is null
                then format('unknown queue: %s', queue._shown(i.j ->> 'queue_name'))
            when jsonb_typeof(i.j -> 'priority') = 'number' and i.priority is null and (i.j ->> 'priority')::numeric % 1 = 0
                then format('priority must be between 1 and 100, got %s', queue._shown(i.j ->> 'priority'))
            when i.j ? 'priority' and jsonb_typeof(i.j -> 'priority') <> 'null' and i.priority is null
                then format('priority must be an integer from 1 to 100, got %s', queue._shown((i.j -> 'priority')::text))
            when i.j ? 'payload' and jsonb_typeof(i.j -> 'payload') is distinct from 'object'
                then format('payload must be a JSON object, got %s', coalesce(jsonb_typeof(i.j -> 'payload'), 'null'))
            -- its text is at most 6x its binary size (a control character becomes \u0001), so
            -- only payloads that could be over the cap are serialised to count their bytes
            when pg_column_size(i.j -> 'payload') * 6 > i.max_payload_bytes
                and octet_length((i.j -> 'payload')::text) > i.max_payload_bytes
                then format(
                    'payload is %s bytes, over the cap of %s bytes (queue.settings.max_payload_bytes)',
                    octet_length((i.j -> 'payload')::text), i.max_payload_bytes
                )
            when jsonb_typeof(i.j -> 'max_attempts') = 'number' and (i.j ->> 'max_attempts')::numeric < 1
                then format('max_attempts must be at least 1, got %s', queue._shown(i.j ->> 'max_attempts'))
            when jsonb_typeof(i.j -> 'max_attempts') = 'number' and (i.j ->> 'max_attempts')::numeric > 100
                then format('max_attempts must be at most 100, got %s', queue._shown(i.j ->> 'max_attempts'))
            when i.j ? 'max_attempts' and jsonb_typeof(i.j -> 'max_attempts') <> 'null' and i.max_attempts is null
                then format('max_attempts must be an integer from 1 to 100, got %s', queue._shown((i.j -> 'max_attempts')::text))
            when i.j ? 'unique_key' and jsonb_typeof(i.j -> 'unique_key') not in ('string', 'null')
                then format('unique_key must be a string, got %s', queue._shown((i.j -> 'unique_key')::text))
            when length(i.j ->> 'unique_key') > 300
                then format('unique_key is %s characters, over the limit of 300', length(i.j ->> 'unique_key'))
            when i.j ->> 'owner_id' is not null and i.owner_id is null
                then format('owner_id must be a uuid, got %s', queue._shown(i.j ->> 'owner_id'))
            when i.j ->> 'run_at' is not null and i.run_at is null
                then format('run_at must be a time, got %s', queue._shown(i.j ->> 'run_at'))
            -- finite and at most a year ahead; a past time is an operator's back-dating (end users'
            -- past times become now in enqueue_user_job)
            when i.run_at is not null and queue._time_problem('run_at', i.run_at, null) is not null
                then queue._time_problem('run_at', i.run_at, null)
            when i.j ->> 'backoff_strategy' is not null and i.backoff_strategy is null
                then format('backoff_strategy must be fixed, linear or exponential, got %s', queue._shown(i.j ->> 'backoff_strategy'))
            when i.j ->> 'backoff_base' is not null
                and (i.backoff_base is null or i.backoff_base < interval '0' or i.backoff_base > interval '1 hour')
                then format('backoff_base must be an interval from 0 to 1 hour, got %s', queue._shown(i.j ->> 'backoff_base'))
            when i.j ->> 'backoff_max' is not null
                and (i.backoff_max is null or i.backoff_max <= interval '0' or i.backoff_max > interval '7 days')
                then format('backoff_max must be an interval over 0 and at most 7 days, got %s', queue._shown(i.j ->> 'backoff_max'))
            when i.backoff_max < coalesce(i.backoff_base, q.backoff_base)
                then format('backoff_max (%s) must not be less than backoff_base (%s)', i.backoff_max, coalesce(i.backoff_base, q.backoff_base))
            when i.j ->> 'parent_id' is not null and i.parent_id is null
                then format('parent_id must be a job id, got %s', queue._shown(i.j ->> 'parent_id'))
        end
    from (
        select
            e.ord,
            e.j,
            -- numbers are range-checked before the cast, so 1e10 is our error, not "integer out of range"
            case when jsonb_typeof(e.j -> 'priority') = 'number' and (e.j ->> 'priority')::numeric between 1 and 100
                and (e.j ->> 'priority')::numeric % 1 = 0
                then (e.j ->> 'priority')::numeric::int end as priority,
            case when jsonb_typeof(e.j -> 'max_attempts') = 'number' and (e.j ->> 'max_attempts')::numeric between 1 and 100
                and (e.j ->> 'max_attempts')::numeric % 1 = 0
                then (e.j ->> 'max_attempts')::numeric::int end as max_attempts,
            case when jsonb_typeof(e.j -> 'parent_id') = 'number' and (e.j ->> 'parent_id')::numeric between 1 and 9223372036854775807
                and (e.j ->> 'parent_id')::numeric % 1 = 0
                then (e.j ->> 'parent_id')::numeric::bigint end as parent_id,
            -- texts are parsed only when present: a batch without them pays nothing
            case when e.j ->> 'owner_id' is not null then queue._to_uuid(e.j ->> 'owner_id') end as owner_id,
            case when e.j ->> 'run_at' is not null then queue._to_timestamptz(e.j ->> 'run_at') end as run_at,
            case when e.j ->> 'backoff_strategy' is not null then (
                select s.s from unnest(enum_range(null::queue.backoff_strategy)) as s (s)
                where s.s::text = e.j ->> 'backoff_strategy'
            ) end as backoff_strategy,
            case when e.j ->> 'backoff_base' is not null then queue._to_interval(e.j ->> 'backoff_base') end as backoff_base,
            case when e.j ->> 'backoff_max' is not null then queue._to_interval(e.j ->> 'backoff_max') end as backoff_max,
            (select s.max_payload_bytes from queue.settings as s) as max_payload_bytes,
            -- the known keys taken away in one call; the first one left is looked up only when
            -- there is one (a subquery per job cost 1.5 of 6.5 ms per 1,000 jobs)
            case when jsonb_typeof(e.j) = 'object' and e.j - i_known.keys <> '{}' then (
                select k.key
                from jsonb_object_keys(e.j - i_known.keys) as k (key)
                limit 1
            ) end as bad_key
        from jsonb_array_elements(_resolve_jobs.jobs) with ordinality as e (j, ord)
        cross join (
            select array[
                'job_type', 'payload', 'queue_name', 'priority', 'run_at', 'max_attempts',
                'unique_key', 'owner_id', 'backoff_strategy', 'backoff_base', 'backoff_max', 'parent_id'
            ] as keys
        ) as i_known
    ) as i
    left join queue.job_types as jt on jt.job_type = i.j ->> 'job_type'
    left join queue.queues as q on q.queue_name = coalesce(i.j ->> 'queue_name', jt.queue_name)
    left join queue.owner_tiers as ot on ot.owner_id = i.owner_id
    left join queue.tiers as t on t.tier = ot.tier
    -- in input order: enqueue_jobs draws the ids in the order these rows come, and a hash
    -- join above returned them shuffled once the policy tables had statistics
    order by i.ord;
end
$$;

comment on function queue._resolve_jobs(
    jsonb
) is 'Private: applies enqueue defaults to a JSON array of jobs and names each one''s first problem.';

-- _reject_job: raises the problem of one job; called from a query only for a bad row.
create or replace function queue._reject_job(ord bigint, job_count int, problem text)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_hint text;
begin
    v_hint := case
        when problem like 'unknown job type%'
            then 'Register it first: select queue.register_job_type(job_type => ..., queue_name => ...);'
        when problem like 'unknown queue%'
            then 'Create it first (select queue.create_queue(queue_name => ...);) or leave queue_name out for the job type''s queue.'
        when problem like 'unknown key%' or problem like 'each job%'
            then 'Each job is an object with the keys of queue.enqueue_job.'
        when problem like 'run_at%'
            then 'Pass a finite time at most a year ahead (an ISO 8601 string in JSON); for later work use queue.schedule_job.'
        when problem like 'payload is%'
            then 'Store large data elsewhere (a table, Storage) and pass its id in the payload.'
        when problem like 'unique_key is%'
            then 'Use a short key, e.g. a hash of what makes the job unique.'
    end;
    if job_count > 1 then
        raise exception 'jobs[%]: %', ord - 1, problem
            using errcode = '22023',
            hint = concat_ws(' ', v_hint, 'Nothing was enqueued: the batch is all or nothing.');
    end if;
    raise exception '%', problem using errcode = '22023', hint = coalesce(v_hint, '');
end
$$;

comment on function queue._reject_job(bigint, int, text) is 'Private: raises an enqueue validation error (22023).';

-- _unique_key_holder: the job holding a unique_key that enqueue skipped.
create or replace function queue._unique_key_holder(unique_key text)
returns bigint
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_id bigint;
begin
    select j.id into v_id from queue.jobs as j where j.unique_key = _unique_key_holder.unique_key;
    if v_id is null then
        -- the holder finished in between: it was live when we enqueued, so it answers
        select h.id into v_id
        from queue.job_history as h
        where h.unique_key = _unique_key_holder.unique_key
        order by h.finished_at desc
        limit 1;
    end if;
    return v_id;
end
$$;

comment on function queue._unique_key_holder(text) is
'Private: the id of the job holding unique_key, the live one or else the one that finished last; what enqueue returns for a job skipped for its unique_key.';

-- _enqueue_plain: enqueue_jobs' path for a batch of plain jobs (each a job type and a payload,
-- every option left to its default: what bulk producers send). The general path validates 25
-- options per job whatever the job holds; this one checks what a plain job can get wrong in one
-- pass and inserts with the type's and queue's defaults. Server time per job of a 1,000-job
-- batch: 17-22 -> 13-14 us against a bare insert's 8-10 (a DO loop, rolled back, three rounds).
-- Returns null, having written nothing, for a batch it does not take whole: anything else, an
-- unknown type, a payload that is not an object or could be over the cap goes the general way
-- and gets its error there, so errors are the same on both paths.
create or replace function queue._enqueue_plain(jobs jsonb)
returns bigint[]
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_plain boolean;
    v_ids bigint [];
    v_queues text [];
begin
    -- the first job that is not plain ends the check (a batch with options pays one job's look)
    select not exists (
        select
        from jsonb_array_elements(_enqueue_plain.jobs) as e (j)
        cross join queue.settings as s
        left join queue.job_types as jt on jt.job_type = e.j ->> 'job_type'
        where not coalesce(
            case when jsonb_typeof(e.j) = 'object' then
                e.j - array['job_type', 'payload'] = '{}'
                and jt.job_type is not null
                and coalesce(jsonb_typeof(e.j -> 'payload'), 'object') = 'object'
                -- surely under the cap (its text is at most 6x its binary size); a compressed
                -- value says nothing of its text, so it takes the exact check
                and (
                    e.j -> 'payload' is null
                    or (pg_column_size(e.j -> 'payload') * 6 <= s.max_payload_bytes
                        and pg_column_compression(e.j -> 'payload') is null)
                )
            end,
            false
        )
    ) into v_plain;
    if not v_plain then
        return null;
    end if;

    -- ids drawn in input order (a subquery with an order by is never flattened), so sorting them
    -- gives the input order back
    with ins as (
        insert into queue.jobs as j (id, job_type, queue_name, priority, run_at, payload, max_attempts)
        select nextval('queue.jobs_id_seq'), x.job_type, x.queue_name, x.priority, now(), x.payload, x.max_attempts
        from (
            select
                jt.job_type,
                jt.queue_name,
                jt.priority,
                coalesce(e.j -> 'payload', '{}') as payload,
                coalesce(jt.max_attempts, q.max_attempts) as max_attempts
            from jsonb_array_elements(_enqueue_plain.jobs) with ordinality as e (j, ord)
            join queue.job_types as jt on jt.job_type = e.j ->> 'job_type'
            join queue.queues as q on q.queue_name = jt.queue_name
            order by e.ord
        ) as x
        returning j.id, j.queue_name
    )
    select array_agg(ins.id order by ins.id), array_agg(distinct ins.queue_name) into v_ids, v_queues
    from ins;
    if cardinality(v_ids) is distinct from jsonb_array_length(_enqueue_plain.jobs) then
        raise exception 'a job type was removed while these jobs were enqueued; nothing was enqueued'
            using errcode = '40001', hint = 'Retry the call.';
    end if;
    -- one notification per queue wakes idle workers
    perform pg_notify('kyu_jobs', q) from unnest(v_queues) as q;
    return v_ids;
end
$$;

comment on function queue._enqueue_plain(jsonb) is
'Private: enqueue_jobs for a batch whose every job is a known job type and an object payload (or none) surely under the cap, nothing else; inserts them with the defaults and returns their ids in input order. Null (nothing written) for any other batch.';

-- enqueue_jobs: many jobs in one statement; returns their ids in input order.
create or replace function queue.enqueue_jobs(jobs jsonb)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_count int;
    v_ids bigint [];
    v_keys text [];
    v_inserted boolean [];
    v_queues text [];
    v_one record;
    v_id bigint;
begin
    if jsonb_typeof(enqueue_jobs.jobs) is distinct from 'array' then
        raise exception 'jobs must be a JSON array of job objects, got %',
            coalesce(jsonb_typeof(enqueue_jobs.jobs), 'null')
            using errcode = '22023';
    end if;
    v_count := jsonb_array_length(enqueue_jobs.jobs);
    if v_count = 0 then
        return;
    end if;
    if v_count > 10000 then
        raise exception 'jobs has % jobs, over the limit of 10000 per call', v_count
            using errcode = '22023', hint = 'Split the batch: each call is one transaction.';
    end if;

    -- one job (every enqueue_job): the same resolver, then one plain insert. The set statement
    -- below spends ~100 us per call on executor start-up alone (its CTEs, join and aggregates):
    -- enqueue_job's CPU 200 -> 100 us (pg_stat_statements, one session, no commit)
    if v_count = 1 then
        select r.* into v_one from queue._resolve_jobs(enqueue_jobs.jobs) as r;
        if v_one.problem is not null then
            perform queue._reject_job(v_one.ord, v_count, v_one.problem);
        end if;
        insert into queue.jobs as j (
            job_type, queue_name, priority, run_at, payload, max_attempts, unique_key,
            owner_id, backoff_strategy, backoff_base, backoff_max, parent_id
        )
        values (
            v_one.job_type, v_one.queue_name, v_one.priority, v_one.run_at, v_one.payload,
            v_one.max_attempts, v_one.unique_key, v_one.owner_id, v_one.backoff_strategy,
            v_one.backoff_base, v_one.backoff_max, v_one.parent_id
        )
        on conflict (unique_key) where unique_key is not null do nothing
        returning j.id into v_id;
        if v_id is null then
            v_id := queue._unique_key_holder(v_one.unique_key);
        elsif v_one.run_at <= now() then
            perform pg_notify('kyu_jobs', v_one.queue_name);
        end if;
        -- per-owner quotas of a queue that binds every caller (27_owner_limits.sql)
        if v_one.owner_id is not null then
            perform queue._enforce_owner_limits_of(array[v_id]);
        end if;
        return next v_id;
        return;
    end if;

    -- plain jobs (a type and a payload each, the bulk producer's batch) skip the general checks
    v_ids := queue._enqueue_plain(enqueue_jobs.jobs);
    if v_ids is not null then
        return query select unnest(v_ids);
        return;
    end if;

    -- ids are drawn before the insert so each input row keeps its id whatever the insert order,
    -- and in input order: _resolve_jobs returns its rows in its join's order, which follows the
    -- plan (a hash join over job_types reversed two jobs once the tables had statistics), so
    -- they are sorted first; a subquery with an order by is never flattened
    with resolved as materialized (
        select r.*, nextval('queue.jobs_id_seq') as new_id
        from (
            select x.* from queue._resolve_jobs(enqueue_jobs.jobs) as x
            order by x.ord
        ) as r
    ),
    ins as (
        insert into queue.jobs (
            id, job_type, queue_name, priority, run_at, payload, max_attempts, unique_key,
            owner_id, backoff_strategy, backoff_base, backoff_max, parent_id
        )
        select
            case when r.problem is null then r.new_id else queue._reject_job(r.ord, v_count, r.problem) end,
            r.job_type, r.queue_name, r.priority, r.run_at, r.payload, r.max_attempts, r.unique_key,
            r.owner_id, r.backoff_strategy, r.backoff_base, r.backoff_max, r.parent_id
        from resolved as r
        order by r.ord
        on conflict (unique_key) where unique_key is not null do nothing
        returning id, queue_name, run_at
    )
    select
        array_agg(r.new_id order by r.ord),
        array_agg(r.unique_key order by r.ord),
        array_agg(ins.id is not null order by r.ord),
        (select array_agg(distinct ins2.queue_name) from ins as ins2 where ins2.run_at <= now())
    into v_ids, v_keys, v_inserted, v_queues
    from resolved as r
    left join ins on ins.id = r.new_id;

    -- a job skipped for its unique_key takes the id of the job that holds the key (the loop
    -- only when one was skipped: walking 1,000 flags in plpgsql cost ~1 us per job)
    if array_position(v_inserted, false) is not null then
        for i in 1 .. v_count loop
            if not v_inserted[i] then
                v_ids[i] := queue._unique_key_holder(v_keys[i]);
            end if;
        end loop;
    end if;

    -- per-owner quotas of queues that bind every caller (27_owner_limits.sql)
    perform queue._enforce_owner_limits_of(v_ids);

    -- one notification per queue per statement wakes idle workers; future jobs are found by polling
    if v_queues is not null then
        perform pg_notify('kyu_jobs', q) from unnest(v_queues) as q;
    end if;

    return query select unnest(v_ids);
end
$$;

comment on function queue.enqueue_jobs(jsonb) is
'Enqueues many jobs in one statement (all or nothing). jobs is a JSON array of objects with the keys of enqueue_job. Returns the ids in input order; a job whose unique_key is live returns that job''s id.';

-- enqueue_job: one job; returns its id (or the id of the live job holding unique_key).
create or replace function queue.enqueue_job(
    job_type text,
    payload jsonb default '{}',
    queue_name text default null,
    priority int default null,
    run_at timestamptz default null,
    max_attempts int default null,
    unique_key text default null,
    owner_id uuid default null,
    backoff_strategy queue.backoff_strategy default null,
    backoff_base interval default null,
    backoff_max interval default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_type record;
    v_id bigint;
begin
    -- the common call (a job type and an object payload, every option left to its default)
    -- takes its defaults with one lookup: _resolve_jobs' general query, built for batches and
    -- every option, cost ~100 of enqueue_job's ~200 us of CPU (DO loop, one session, no commit).
    -- Nothing is checked here that the general path would not accept: an unknown type, a
    -- payload that is not an object or could be over the cap falls through to it and its errors.
    if enqueue_job.queue_name is null and enqueue_job.priority is null and enqueue_job.run_at is null
        and enqueue_job.max_attempts is null and enqueue_job.unique_key is null
        and enqueue_job.owner_id is null and enqueue_job.backoff_strategy is null
        and enqueue_job.backoff_base is null and enqueue_job.backoff_max is null
        and jsonb_typeof(enqueue_job.payload) = 'object' then
        select jt.queue_name, jt.priority, coalesce(jt.max_attempts, q.max_attempts) as max_attempts
        into v_type
        from queue.job_types as jt
        join queue.queues as q on q.queue_name = jt.queue_name
        cross join queue.settings as s
        where jt.job_type = enqueue_job.job_type
            -- surely under the cap (its text is at most 6x its binary size); a compressed value
            -- (read from a table) says nothing of its text, so it takes the exact check
            and pg_column_size(enqueue_job.payload) * 6 <= s.max_payload_bytes
            and pg_column_compression(enqueue_job.payload) is null;
        if found then
            insert into queue.jobs as j (job_type, queue_name, priority, run_at, payload, max_attempts)
            values (
                enqueue_job.job_type, v_type.queue_name, v_type.priority, now(),
                enqueue_job.payload, v_type.max_attempts
            )
            returning j.id into v_id;
            perform pg_notify('kyu_jobs', v_type.queue_name);
            return v_id;
        end if;
    end if;

    -- plpgsql, not sql: a definer sql function is never inlined and planned this call afresh
    -- every time (CPU per enqueue_job 300 -> 180 us, one session, no commit)
    return queue.enqueue_jobs(jsonb_build_array(jsonb_build_object(
        'job_type', enqueue_job.job_type,
        'payload', coalesce(enqueue_job.payload, 'null'::jsonb),
        'queue_name', enqueue_job.queue_name,
        'priority', enqueue_job.priority,
        'run_at', enqueue_job.run_at,
        'max_attempts', enqueue_job.max_attempts,
        'unique_key', enqueue_job.unique_key,
        'owner_id', enqueue_job.owner_id,
        'backoff_strategy', enqueue_job.backoff_strategy,
        'backoff_base', enqueue_job.backoff_base,
        'backoff_max', enqueue_job.backoff_max
    )));
end
$$;

comment on function queue.enqueue_job(text, jsonb, text, int, timestamptz, int, text, uuid, queue.backoff_strategy, interval, interval) is
'Enqueues one job and returns its id. Defaults come from the job type, then its queue; an owner''s tier shifts the priority. With a unique_key that a waiting or running job holds, returns that job''s id instead. Wakes workers with pg_notify(''kyu_jobs'', queue_name).';

-- enqueue_child_jobs: a handler's follow-up work, as children of the job it holds. The parent's
-- lease token proves the caller holds it; the owner is the parent's, the job types are the ones
-- the parent's type may chain to (job_types.chains_to), the priority no more urgent than the
-- child type's. This is the worker role's only way to enqueue, so a worker cannot create jobs
-- for an arbitrary owner at an arbitrary priority.
create or replace function queue.enqueue_child_jobs(parent_id bigint, lease_token uuid, jobs jsonb)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_parent queue.jobs;
    v_chains text [];
    v_job jsonb;
    v_ord int := 0;
    v_key text;
    v_type_priority int;
    v_children jsonb := '[]'::jsonb;
begin
    if enqueue_child_jobs.parent_id is null or enqueue_child_jobs.lease_token is null then
        raise exception 'parent_id and lease_token are required (got parent_id %, lease_token %)',
            coalesce(enqueue_child_jobs.parent_id::text, 'null'),
            case when enqueue_child_jobs.lease_token is null then 'null' else 'given' end
            using errcode = '22023',
            hint = 'Pass the id and lease_token of the job your handler holds (claim_jobs returns both).';
    end if;
    select j.* into v_parent
    from queue.jobs as j
    where j.id = enqueue_child_jobs.parent_id
        and j.status = 'running'
        and j.lease_token = enqueue_child_jobs.lease_token;
    if not found then
        raise exception 'job % is not running under this lease_token: only the handler holding a job may chain from it',
            enqueue_child_jobs.parent_id
            using errcode = '42501', hint = 'The lease was lost (reclaimed or finished), or the token is not this job''s.';
    end if;
    if jsonb_typeof(enqueue_child_jobs.jobs) is distinct from 'array' then
        raise exception 'jobs must be a JSON array of job objects, got %',
            coalesce(jsonb_typeof(enqueue_child_jobs.jobs), 'null')
            using errcode = '22023';
    end if;
    select jt.chains_to into v_chains from queue.job_types as jt where jt.job_type = v_parent.job_type;
    for v_job in select e.j from jsonb_array_elements(enqueue_child_jobs.jobs) as e (j) loop
        v_ord := v_ord + 1;
        if jsonb_typeof(v_job) <> 'object' then
            raise exception 'jobs[%]: each job must be a JSON object, got %', v_ord - 1, jsonb_typeof(v_job)
                using errcode = '22023';
        end if;
        select k.key into v_key
        from jsonb_object_keys(v_job) as k (key)
        where k.key not in ('job_type', 'payload', 'priority', 'run_at', 'unique_key')
        limit 1;
        if v_key is not null then
            raise exception 'jobs[%]: a chained job cannot set %', v_ord - 1, queue._shown(v_key)
                using errcode = '42501',
                hint = 'A child takes job_type, payload, priority, run_at and unique_key; its owner is the parent''s, its queue, attempts and backoff its type''s.';
        end if;
        if not coalesce(v_job ->> 'job_type' = any(v_chains), false) then
            raise exception 'jobs[%]: job type % may not be chained from %', v_ord - 1,
                queue._shown(v_job ->> 'job_type'), v_parent.job_type
                using errcode = '42501',
                hint = format(
                    'An operator allows it: select queue.register_job_type(job_type => %L, queue_name => ..., chains_to => ...);',
                    v_parent.job_type
                );
        end if;
        select jt.priority into v_type_priority from queue.job_types as jt where jt.job_type = v_job ->> 'job_type';
        if jsonb_typeof(v_job -> 'priority') = 'number' and (v_job ->> 'priority')::numeric < v_type_priority then
            raise exception 'jobs[%]: priority % is more urgent than job type % allows chained jobs (% to 100)',
                v_ord - 1, v_job ->> 'priority', v_job ->> 'job_type', v_type_priority
                using errcode = '42501';
        end if;
        v_children := v_children || jsonb_build_array(
            v_job || jsonb_build_object('owner_id', v_parent.owner_id, 'parent_id', v_parent.id)
        );
    end loop;
    return query select queue.enqueue_jobs(v_children);
end
$$;

comment on function queue.enqueue_child_jobs(bigint, uuid, jsonb) is
'Enqueues follow-up jobs as children of a running job, proved by its lease_token (claim_jobs). Each job takes job_type (one the parent''s type may chain to: job_types.chains_to), payload, priority (no more urgent than the type''s), run_at and unique_key; the owner is the parent''s. All or nothing; returns the ids in input order. The worker role''s only way to enqueue.';

-- enqueue_child_job: one child job (see enqueue_child_jobs).
create or replace function queue.enqueue_child_job(
    parent_id bigint,
    lease_token uuid,
    job_type text,
    payload jsonb default '{}',
    priority int default null,
    run_at timestamptz default null,
    unique_key text default null
)
returns bigint
language sql
volatile
security definer
set search_path = ''
as $$
    select queue.enqueue_child_jobs(
        enqueue_child_job.parent_id,
        enqueue_child_job.lease_token,
        jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'job_type', enqueue_child_job.job_type,
            'priority', enqueue_child_job.priority,
            'run_at', enqueue_child_job.run_at,
            'unique_key', enqueue_child_job.unique_key
        )) || jsonb_build_object('payload', coalesce(enqueue_child_job.payload, 'null'::jsonb)))
    )
$$;

comment on function queue.enqueue_child_job(bigint, uuid, text, jsonb, int, timestamptz, text) is
'Enqueues one follow-up job as a child of the running job parent_id, proved by its lease_token; returns its id (see enqueue_child_jobs).';

-- ---- sql/queue/35_claim_policy.sql ----
-- Claim policy: what claim_jobs may take, apart from how it takes it. Open circuit breakers block
-- job types; paused and limited queues keep the one-scan plan away; a limited queue's concurrency
-- and token bucket say how many jobs it may start now, and each start spends a token.
-- All plpgsql (plans cached per session) and called once per claim_jobs call, never per row.

-- _blocked_job_types: job types whose external service has an open breaker still cooling down.
create or replace function queue._blocked_job_types()
returns text[]
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
begin
    -- the usual case, no open breaker, costs one probe of a tiny table
    if not exists (select from queue.circuit_breakers as cb where cb.state = 'open') then
        return null;
    end if;
    return (
        select array_agg(jt.job_type)
        from queue.job_types as jt
        where jt.services && array(
            select cb.service
            from queue.circuit_breakers as cb
            where cb.state = 'open' and cb.opened_at + cb.cooldown > now()
        )
    );
end
$$;

comment on function queue._blocked_job_types() is
'Private: the job types claim_jobs must skip because a service they list has an open circuit breaker still in its cool-down; null when none.';

-- _paused_or_limited_queues: the queues the one-scan claim plan must skip.
create or replace function queue._paused_or_limited_queues()
returns text[]
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
begin
    return (
        select coalesce(array_agg(q.queue_name), '{}')
        from queue.queues as q
        where q.paused or q.concurrency is not null or q.rate_limit is not null
            or q.fair or q.owner_concurrency is not null
    );
end
$$;

comment on function queue._paused_or_limited_queues() is
'Private: the queues that are paused or limited (concurrency, rate_limit, owner_concurrency or fair); the one-scan claim plan skips them.';

-- _limited_work_due: whether an unpaused limited queue has due jobs (of job_types, null = any).
create or replace function queue._limited_work_due(job_types text[])
returns boolean
language plpgsql
stable
security definer
set search_path = ''
set jit = off
-- one plan whatever the statistics say: the range on queue_name (not an equality) with the
-- order by queue_name first is a shape only jobs_queue_claim_idx serves without a sort, and
-- sorts and whole-table scans are off. Planned per call, an equality let the planner walk
-- jobs_claim_idx over every other queue's jobs once statistics said the table was empty
-- (tests/schema/test_plans.py: 40,200 rows read per claim of 100 at a 20k backlog)
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
begin
    return exists (
        select
        from queue.queues as q
        cross join lateral (
            select
            from queue.jobs as j
            where j.queue_name >= q.queue_name
                and j.queue_name <= q.queue_name
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (_limited_work_due.job_types is null or j.job_type = any(_limited_work_due.job_types))
            order by j.queue_name, j.priority, j.run_at, j.id
            limit 1
        ) as due
        where not q.paused
            and (q.concurrency is not null or q.rate_limit is not null or q.fair or q.owner_concurrency is not null)
    );
end
$$;

comment on function queue._limited_work_due(text[]) is
'Private: true when a queue that is not paused but has a concurrency or rate limit, owner_concurrency or fair claiming has due jobs (of job_types; null means any). claim_jobs then scans per queue so the limits apply.';

-- _claim_allowances: the queues a claim serves and how many jobs each may start now.
-- Limited queues are locked (in name order, so claimers never deadlock) until the transaction
-- ends, and their token buckets are refilled for the time since last use.
create or replace function queue._claim_allowances(
    queue_names text[],
    batch_size int,
    out queues text[],
    out allowances int[],
    out fair_queues text[]
)
returns record
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_queue record;
    v_tokens double precision;
    v_allow int;
begin
    for v_queue in
        select
            q.queue_name, q.concurrency, q.rate_limit, q.owner_concurrency,
            q.fair or q.owner_concurrency is not null as fair
        from queue.queues as q
        where not q.paused
            and (_claim_allowances.queue_names is null or q.queue_name = any(_claim_allowances.queue_names))
        order by q.queue_name
    loop
        v_allow := _claim_allowances.batch_size;
        -- a fair queue alone needs no lock: its picks lock as they read, skip locked, so two
        -- claimers take different jobs (measured: locking it cost the drain 15% and made B's
        -- job wait for the other claimer's whole claim); counts (owner_concurrency) need it
        if v_queue.concurrency is not null or v_queue.rate_limit is not null or v_queue.owner_concurrency is not null then
            perform from queue.queues as q where q.queue_name = v_queue.queue_name for update;
            if v_queue.concurrency is not null then
                select least(v_allow, v_queue.concurrency - count(*))::int into v_allow
                from queue.jobs as j
                where j.queue_name = v_queue.queue_name and j.status = 'running';
            end if;
            if v_queue.rate_limit is not null then
                -- re-read the bucket under the lock, then refill it for the time since last use
                select least(
                    q.rate_limit::double precision,
                    coalesce(q.rate_tokens, q.rate_limit)
                    + extract(epoch from now() - coalesce(q.rate_refilled_at, now()))
                    * q.rate_limit / extract(epoch from q.rate_interval)
                ) into v_tokens
                from queue.queues as q
                where q.queue_name = v_queue.queue_name;
                update queue.queues as q
                set rate_tokens = v_tokens, rate_refilled_at = now()
                where q.queue_name = v_queue.queue_name;
                v_allow := least(v_allow, floor(v_tokens)::int);
            end if;
        end if;
        if v_allow > 0 then
            queues := queues || v_queue.queue_name;
            allowances := allowances || v_allow;
            if v_queue.fair then
                fair_queues := fair_queues || v_queue.queue_name;
            end if;
        end if;
    end loop;
end
$$;

comment on function queue._claim_allowances(text[], int) is
'Private: for claim_jobs, the unpaused queues among queue_names (null = all) in name order with how many jobs each may start now: batch_size, capped by concurrency minus running jobs and by the whole tokens in the refilled rate bucket; fair_queues: those of them that are fair or have owner_concurrency (picked by _pick_fair; null when none). Locks the limited queues'' rows (owner_concurrency ones too; fair alone needs none) until the transaction ends. Queues that may start nothing are left out; null arrays when none may.';

-- _spend_tokens: one token per claimed job on rate-limited queues.
create or replace function queue._spend_tokens(job_ids bigint[], queues text[])
returns void
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- the jobs are found by primary key whatever the statistics say (see claim_jobs)
set enable_seqscan = off
as $$
begin
    -- no rate-limited queue among those claimed from (the usual case): nothing to spend, and no
    -- lookup of the jobs (one rate-limited queue anywhere, e.g. the receipts app's freee queue,
    -- used to cost every claim this update: ~0.2 ms per batch of 100)
    if not exists (
        select from queue.queues as q
        where q.queue_name = any(_spend_tokens.queues) and q.rate_limit is not null
    ) then
        return;
    end if;
    update queue.queues as q
    set rate_tokens = q.rate_tokens - n.started
    from (
        select j.queue_name, count(*) as started
        from queue.jobs as j
        where j.id = any(_spend_tokens.job_ids)
        group by j.queue_name
    ) as n
    where q.queue_name = n.queue_name and q.rate_limit is not null;
end
$$;

comment on function queue._spend_tokens(bigint[], text[]) is
'Private: takes one token per listed job from its queue''s rate bucket (rate-limited queues among queues only); claim_jobs calls it for the jobs it picked, under the queue locks _claim_allowances took.';

-- ---- sql/queue/37_fair_claim.sql ----
-- Fair claiming and per-owner concurrency: how claim_jobs picks from a queue marked fair (within
-- a priority, owners take turns, weighted by their tier's fair_weight) or with owner_concurrency
-- (at most N running per owner). claim_jobs calls _pick_fair only when such a queue is among the
-- ones it serves, so the plain path keeps its plan and its cost.
--
-- How a fair queue is picked, for an allowance of n jobs (rows are locked as they are read, skip
-- locked, so concurrent claimers take different jobs; with owner_concurrency the queue row is
-- locked too, by _claim_allowances, so the running counts hold across workers):
--   1. the next n owners with waiting jobs after the queue's fair_cursor, wrapping round: a
--      recursive skip scan of jobs_owner_claim_idx, one index descent per owner, stopped after
--      n owners (with owner_concurrency: owners with room);
--   2. each owner's share: ceil(n x weight / total weight) (fair_weight of the owner's tier), at
--      most owner_concurrency minus its running jobs; its first jobs (priority, run_at, id) from
--      the same index, in turns of `weight` jobs (turn 1: its first weight jobs, turn 2: the
--      next, ...);
--   3. the rest of the batch first in, first out from jobs_queue_claim_idx when the shares fall
--      short (owners with few jobs), else just the queue's oldest due job: a job without an
--      owner (they are not in the owners' index) takes a turn as one more owner once it is the
--      oldest, and a job more urgent than every share is seen; on owner_concurrency queues
--      only unowned jobs fill;
--   4. order by (priority, turn, owners after the cursor first, owner, run_at, id), take n, and
--      move fair_cursor to the owner served last, so a claim of one job goes round the owners.
-- A queue with owner_concurrency but not fair is picked the same way with every weight 1 (its
-- owners take turns too). Cost (measured, docs/design.md): with 1 owner about a plain claim's;
-- it grows with the owners visited, at most the batch size, not with the backlog.

-- _pick_fair: claim_jobs' pick when a queue among `queues` is fair or has owner_concurrency.
-- Picks the fair ones as above and the others as claim_jobs does, locked (skip locked), and
-- returns up to batch_size ids merged by priority. A fair queue's picks carry the run_at values
-- of the jobs picked, in fair order (the oldest to the first turn), so the merge with other
-- queues by (priority, run_at, id) keeps each queue's own order.
create or replace function queue._pick_fair(
    queues text[],
    allowances int[],
    fair_queues text[],
    job_types text[],
    blocked text[],
    batch_size int
)
returns bigint[]
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- one plan whatever the statistics say (see claim_jobs): ranges, not equalities, ordered by an
-- index's own columns with sorts off, so the skip scan and each owner's first jobs can only walk
-- jobs_owner_claim_idx, and the fill jobs_queue_claim_idx (tests/schema/test_plans.py: on
-- statistics that said the table was empty, an owner's share walked jobs_claim_idx through
-- 20,000 jobs of another queue). The few sorts left are of the picked rows, in memory.
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
declare
    v_queue record;
    v_ids bigint[];
    v_priorities int[];
    v_run_ats timestamptz[];
    v_share_ids bigint[];
    v_share_owners uuid[];
    v_share_weights int[];
    v_share_priorities int[];
    v_share_run_ats timestamptz[];
    v_fill_ids bigint[];
    v_fill_owners uuid[];
    v_fill_priorities int[];
    v_fill_run_ats timestamptz[];
    v_chosen bigint[];
    v_chosen_priorities int[];
    v_chosen_run_ats timestamptz[];
    v_turn_owners uuid[];
    v_last_owner uuid;
begin
    -- the other queues, exactly as claim_jobs picks them
    select array_agg(c.id), array_agg(c.priority), array_agg(c.run_at)
    into v_ids, v_priorities, v_run_ats
    from unnest(_pick_fair.queues, _pick_fair.allowances) as a (queue_name, allowance)
    cross join lateral (
        -- a range, not an equality, ordered by queue_name first: only jobs_queue_claim_idx
        -- serves it in order, whatever the statistics say (see _limited_work_due)
        select j.id, j.priority, j.run_at
        from queue.jobs as j
        where j.queue_name >= a.queue_name
            and j.queue_name <= a.queue_name
            and j.status in ('pending', 'retrying')
            and j.run_at <= now()
            and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
            and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
        order by j.queue_name, j.priority, j.run_at, j.id
        limit a.allowance
        for update skip locked
    ) as c
    where a.queue_name <> all(_pick_fair.fair_queues);

    for v_queue in
        select q.queue_name, q.fair, q.owner_concurrency, q.fair_cursor, a.allowance
        from unnest(_pick_fair.queues, _pick_fair.allowances) as a (queue_name, allowance)
        join queue.queues as q on q.queue_name = a.queue_name
        where a.queue_name = any(_pick_fair.fair_queues)
        order by q.queue_name
    loop
        -- 1: the next `allowance` owners with waiting jobs (and room under owner_concurrency)
        -- after the cursor, wrapping round: one descent each, and no more owners than jobs to
        -- hand out (the recursive scans run only as far as the limit pulls them)
        -- 2: each owner's share, locked as it is read (skip locked: a concurrent claimer takes
        -- the owner's next jobs; a share is at most its rounding above what is taken)
        with recursive after_cursor (owner_id) as (
            (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name >= v_queue.queue_name
                    and j.queue_name <= v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id > coalesce(v_queue.fair_cursor, '00000000-0000-0000-0000-000000000000')
                order by j.queue_name, j.owner_id
                limit 1
            )
            union all
            select (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name >= v_queue.queue_name
                    and j.queue_name <= v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id > o.owner_id
                order by j.queue_name, j.owner_id
                limit 1
            )
            from after_cursor as o
            where o.owner_id is not null
        ),
        from_start (owner_id) as (
            (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name >= v_queue.queue_name
                    and j.queue_name <= v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id is not null
                order by j.queue_name, j.owner_id
                limit 1
            )
            union all
            select (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name >= v_queue.queue_name
                    and j.queue_name <= v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id > o.owner_id
                order by j.queue_name, j.owner_id
                limit 1
            )
            from from_start as o
            where o.owner_id < v_queue.fair_cursor
        ),
        running as materialized (
            select j.owner_id, count(*)::int as n
            from queue.jobs as j
            where v_queue.owner_concurrency is not null
                and j.queue_name = v_queue.queue_name
                and j.status = 'running'
                and j.owner_id is not null
            group by j.owner_id
        ),
        owners as (
            select w.owner_id, w.room
            from (
                select
                    o.owner_id,
                    case
                        when v_queue.owner_concurrency is null then v_queue.allowance
                        else v_queue.owner_concurrency - coalesce((select r.n from running as r where r.owner_id = o.owner_id), 0)
                    end as room
                from (
                    select a.owner_id from after_cursor as a where a.owner_id is not null
                    union all
                    select f.owner_id from from_start as f where f.owner_id <= v_queue.fair_cursor
                ) as o
            ) as w
            where w.room > 0
            limit v_queue.allowance
        ),
        shares as materialized (
            select
                o.owner_id,
                -- weights are the fair share; owner_concurrency alone takes turns of one
                case when v_queue.fair then coalesce(t.fair_weight, 1) else 1 end as weight,
                o.room
            from owners as o
            left join queue.owner_tiers as ot on ot.owner_id = o.owner_id
            left join queue.tiers as t on t.tier = ot.tier
        ),
        total as (
            select sum(s.weight) as weight from shares as s where s.room > 0
        )
        select array_agg(c.id), array_agg(s.owner_id), array_agg(s.weight), array_agg(c.priority), array_agg(c.run_at)
        into v_share_ids, v_share_owners, v_share_weights, v_share_priorities, v_share_run_ats
        from shares as s
        cross join total as tw
        cross join lateral (
            select j.id, j.priority, j.run_at
            from queue.jobs as j
            where j.queue_name >= v_queue.queue_name
                and j.queue_name <= v_queue.queue_name
                and j.owner_id >= s.owner_id
                and j.owner_id <= s.owner_id
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
                and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
            order by j.queue_name, j.owner_id, j.priority, j.run_at, j.id
            limit least(
                s.room,
                case when v_queue.fair then ceil(v_queue.allowance * s.weight::numeric / tw.weight)::int else v_queue.allowance end
            )
            for update skip locked
        ) as c
        where s.room > 0;

        -- 3: the rest first in, first out: what the shares leave (owners with few jobs), and at
        -- least the oldest due job, so one without an owner (not in the owners' index) takes a
        -- turn once it is the oldest; on owner_concurrency queues only unowned jobs
        select array_agg(f.id), array_agg(f.owner_id), array_agg(f.priority), array_agg(f.run_at)
        into v_fill_ids, v_fill_owners, v_fill_priorities, v_fill_run_ats
        from (
            select j.id, j.owner_id, j.priority, j.run_at
            from queue.jobs as j
            where j.queue_name >= v_queue.queue_name
                and j.queue_name <= v_queue.queue_name
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
                and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
                and (v_queue.owner_concurrency is null or j.owner_id is null)
            order by j.queue_name, j.priority, j.run_at, j.id
            -- (it overlaps the shares, so a short fall reads a whole allowance)
            limit case when coalesce(cardinality(v_share_ids), 0) < v_queue.allowance then v_queue.allowance else 1 end
            for update skip locked
        ) as f;

        -- 4: in fair order, the first `allowance`. One owner and nothing new from the fill (a
        -- flood alone): its share is the pick, in its own order
        if v_share_owners[1] = all(v_share_owners) and (v_fill_ids is null or v_fill_ids <@ v_share_ids) then
            v_chosen := v_share_ids;
            v_chosen_priorities := v_share_priorities;
            v_chosen_run_ats := v_share_run_ats;
            v_last_owner := v_share_owners[1];
        else
            -- one sort (top-n) of the shares and the new part of the fill; array_agg keeps the
            -- subquery's order
            select
                array_agg(c.id),
                array_agg(c.priority),
                array_agg(c.run_at),
                array_agg(coalesce(c.owner_id, '00000000-0000-0000-0000-000000000000'))
                filter (where c.turn < 'infinity'::double precision)
            into v_chosen, v_chosen_priorities, v_chosen_run_ats, v_turn_owners
            from (
                select x.id, x.owner_id, x.priority, x.run_at, x.turn
                from (
                    -- turns of `weight` jobs: turn 1 is an owner's first weight jobs
                    select
                        sh.id, sh.owner_id, sh.priority, sh.run_at,
                        ceil(
                            (row_number() over (partition by sh.owner_id order by sh.priority, sh.run_at, sh.id))::numeric
                            / sh.weight
                        )::double precision as turn
                    from unnest(v_share_ids, v_share_owners, v_share_weights, v_share_priorities, v_share_run_ats)
                        as sh (id, owner_id, weight, priority, run_at)
                    union all
                    -- the fill's jobs not in a share: after every share of their priority; unowned
                    -- jobs take turns as one more owner
                    select
                        fi.id, fi.owner_id, fi.priority, fi.run_at,
                        case
                            when fi.owner_id is null
                                then (row_number() over (partition by fi.owner_id is null order by fi.priority, fi.run_at, fi.id))::double precision
                            else 'infinity'::double precision
                        end
                    from unnest(v_fill_ids, v_fill_owners, v_fill_priorities, v_fill_run_ats) as fi (id, owner_id, priority, run_at)
                    left join unnest(v_share_ids) as sh (id) on sh.id = fi.id
                    where sh.id is null
                ) as x
                order by
                    x.priority,
                    x.turn,
                    -- round-robin: owners after the one served last come first (unowned jobs
                    -- count as the nil uuid)
                    v_queue.fair_cursor is not null
                    and coalesce(x.owner_id, '00000000-0000-0000-0000-000000000000') <= v_queue.fair_cursor,
                    coalesce(x.owner_id, '00000000-0000-0000-0000-000000000000'),
                    x.run_at,
                    x.id
                limit v_queue.allowance
            ) as c;
            v_last_owner := v_turn_owners[cardinality(v_turn_owners)];
        end if;

        if v_chosen is null then
            continue;
        end if;
        -- the owner served last by a turn (not by the fill) is where the next claim starts. Skip
        -- locked: when another claimer holds the row it is moving the cursor itself, and waiting
        -- for its commit would make this claim wait for that whole claim (measured: B's job
        -- started 100 ms later in make bench)
        if v_last_owner is not null and v_last_owner is distinct from v_queue.fair_cursor then
            update queue.queues as q
            set fair_cursor = v_last_owner
            where q.queue_name = (
                select l.queue_name
                from queue.queues as l
                where l.queue_name = v_queue.queue_name
                for update skip locked
            );
        end if;
        -- alone in the claim: no merge, the picks are the claim
        if cardinality(_pick_fair.queues) = 1 then
            return v_chosen;
        end if;
        -- each pick takes the run_at of its place: within a priority the k-th pick in fair order
        -- gets the k-th oldest run_at of the picks, so the merge below keeps the fair order
        select
            coalesce(v_ids, '{}') || array_agg(p.id order by p.priority, p.place),
            coalesce(v_priorities, '{}') || array_agg(p.priority order by p.priority, p.place),
            coalesce(v_run_ats, '{}') || array_agg(s.run_at order by p.priority, p.place)
        into v_ids, v_priorities, v_run_ats
        from (
            select c.id, c.priority, row_number() over (partition by c.priority order by c.ord) as place
            from unnest(v_chosen, v_chosen_priorities) with ordinality as c (id, priority, ord)
        ) as p
        join (
            select c.priority, c.run_at, row_number() over (partition by c.priority order by c.run_at, c.id) as place
            from unnest(v_chosen, v_chosen_priorities, v_chosen_run_ats) as c (id, priority, run_at)
        ) as s on s.priority = p.priority and s.place = p.place;
    end loop;

    return array(
        select m.id
        from unnest(v_ids, v_priorities, v_run_ats) as m (id, priority, run_at)
        order by m.priority, m.run_at, m.id
        limit _pick_fair.batch_size
    );
end
$$;

comment on function queue._pick_fair(text[], int[], text[], text[], text[], int) is
'Private: claim_jobs'' pick when fair_queues (queues marked fair or with owner_concurrency) are among queues: locks (skip locked) and returns up to batch_size due jobs. In a fair queue owners take turns within a priority (a skip scan over its owners, each one''s share weighted by its tier''s fair_weight, the rest first in first out, starting after queues.fair_cursor, which it moves); with owner_concurrency no owner gets more than the limit minus its running jobs. The other queues are picked as claim_jobs picks them; all merged by priority.';

-- ---- sql/queue/40_claim.sql ----
-- Claiming: claim_jobs hands a worker up to batch_size due jobs, most urgent first, leased to it.
-- It reads check -> pick -> claim; the policy (breakers, limited queues, allowances, tokens) lives
-- in 35_claim_policy.sql. A claim filtered by job_types picks through _pick_by_type (each type's
-- own index); otherwise two ways to pick (both one statement with FOR UPDATE SKIP LOCKED), then
-- one update claims:
--   * every queue, and no limited queue has due work: one ordered scan of jobs_claim_idx that
--     skips paused and limited queues;
--   * otherwise: one scan per queue of jobs_queue_claim_idx, each capped by what the queue's
--     concurrency and rate limit allow (queue rows locked in name order, so limits hold across
--     any number of workers), merged by priority. With several queues this may lock up to
--     batch_size rows per queue for an instant; the cost is bounded and the plan stays simple.

-- _pick_by_type: for a claim filtered by job_types, the jobs to claim, locked, most urgent
-- first. Behind a backlog of other types the ordered scans of jobs_claim_idx and
-- jobs_queue_claim_idx read those jobs row by row (make bench-backlog: a claim of 100 of a type
-- behind 200,000 jobs of another took 34 ms, 11x one with nothing ahead); here each type's
-- first jobs come from jobs_type_claim_idx without locks, and only the chosen ones are locked,
-- by primary key (3.3 ms behind the same backlog).
-- Up to twice as many candidates as may be taken, so claimers racing for the same jobs still
-- fill their batch. queues null: every queue but `skip`; queues given: at most allowances[i]
-- locked in queues[i] (which may lock up to the allowance in each queue for an instant, as the
-- per-queue scan of claim_jobs does).
create or replace function queue._pick_by_type(
    job_types text[],
    queues text[],
    allowances int[],
    skip text[],
    blocked text[],
    batch_size int
)
returns bigint[]
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- one plan whatever the statistics say: a range on job_type ordered by job_type first is a
-- shape only jobs_type_claim_idx serves without a sort, and whole-table scans are off
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
declare
    v_candidates bigint[];
    v_candidate_queues text[];
begin
    -- one type (a worker with one handler, the usual batch worker): its index in order, locked
    -- as it is read, as cheap as an unfiltered claim (the two steps below cost 18% more at
    -- batch 1,000 with nothing ahead)
    if cardinality(_pick_by_type.job_types) = 1 then
        if _pick_by_type.queues is null then
            return array(
                select j.id
                from queue.jobs as j
                where j.job_type >= _pick_by_type.job_types[1]
                    and j.job_type <= _pick_by_type.job_types[1]
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (_pick_by_type.blocked is null or j.job_type <> all(_pick_by_type.blocked))
                    and j.queue_name <> all(_pick_by_type.skip)
                order by j.job_type, j.priority, j.run_at, j.id
                limit _pick_by_type.batch_size
                for update skip locked
            );
        end if;
        return array(
            select c.id
            from unnest(_pick_by_type.queues, _pick_by_type.allowances) as q (queue_name, allowance)
            cross join lateral (
                select j.id, j.priority, j.run_at
                from queue.jobs as j
                where j.job_type >= _pick_by_type.job_types[1]
                    and j.job_type <= _pick_by_type.job_types[1]
                    and j.queue_name = q.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (_pick_by_type.blocked is null or j.job_type <> all(_pick_by_type.blocked))
                order by j.job_type, j.priority, j.run_at, j.id
                limit q.allowance
                for update skip locked
            ) as c
            order by c.priority, c.run_at, c.id
            limit _pick_by_type.batch_size
        );
    end if;

    -- several types: candidates first, without locks, then lock only those taken
    if _pick_by_type.queues is null then
        v_candidates := array(
            select c.id
            from unnest(_pick_by_type.job_types) as t (job_type)
            cross join lateral (
                select j.id, j.priority, j.run_at
                from queue.jobs as j
                where j.job_type >= t.job_type
                    and j.job_type <= t.job_type
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (_pick_by_type.blocked is null or j.job_type <> all(_pick_by_type.blocked))
                    and j.queue_name <> all(_pick_by_type.skip)
                order by j.job_type, j.priority, j.run_at, j.id
                limit 2 * _pick_by_type.batch_size
            ) as c
            order by c.priority, c.run_at, c.id
            limit 2 * _pick_by_type.batch_size
        );
        -- lock in candidate order (the nested loop keeps unnest's order, so no sort locks them
        -- all), skipping rows another claimer holds, until batch_size are held. Each row is
        -- checked again once locked: still waiting (said without naming status, so the planner
        -- is offered no partial index to walk) and due
        return array(
            select l.id
            from unnest(v_candidates) as c (id)
            cross join lateral (
                select j.id
                from queue.jobs as j
                where j.id = c.id
                    and (j.worker_id is null or j.lease_expires_at is null)
                    and j.run_at <= now()
                for update skip locked
            ) as l
            limit _pick_by_type.batch_size
        );
    end if;

    -- per queue: up to 2 x allowance candidates, of which at most allowance are locked
    select array_agg(c.id order by c.priority, c.run_at, c.id), array_agg(c.queue_name order by c.priority, c.run_at, c.id)
    into v_candidates, v_candidate_queues
    from unnest(_pick_by_type.queues, _pick_by_type.allowances) as q (queue_name, allowance)
    cross join lateral (
        select x.id, x.priority, x.run_at, q.queue_name
        from unnest(_pick_by_type.job_types) as t (job_type)
        cross join lateral (
            select j.id, j.priority, j.run_at
            from queue.jobs as j
            where j.job_type >= t.job_type
                and j.job_type <= t.job_type
                and j.queue_name = q.queue_name
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (_pick_by_type.blocked is null or j.job_type <> all(_pick_by_type.blocked))
            order by j.job_type, j.priority, j.run_at, j.id
            limit 2 * q.allowance
        ) as x
        order by x.priority, x.run_at, x.id
        limit 2 * q.allowance
    ) as c;
    return array(
        select l.id
        from unnest(_pick_by_type.queues, _pick_by_type.allowances) as q (queue_name, allowance)
        cross join lateral (
            select k.id, k.priority, k.run_at
            from unnest(v_candidates, v_candidate_queues) as c (id, queue_name)
            cross join lateral (
                select j.id, j.priority, j.run_at
                from queue.jobs as j
                where j.id = c.id
                    and (j.worker_id is null or j.lease_expires_at is null)
                    and j.run_at <= now()
                for update skip locked
            ) as k
            where c.queue_name = q.queue_name
            limit q.allowance
        ) as l
        order by l.priority, l.run_at, l.id
        limit _pick_by_type.batch_size
    );
end
$$;

comment on function queue._pick_by_type(text[], text[], int[], text[], text[], int) is
'Private: for claim_jobs with a job_types filter, locks (skip locked) and returns up to batch_size due jobs of those types, most urgent first, reading each type''s jobs through jobs_type_claim_idx: from every queue but skip (queues null), or at most allowances[i] from queues[i]. blocked: job types to leave (open breakers).';

create or replace function queue.claim_jobs(
    worker_id text,
    batch_size int default 1,
    queue_names text[] default null,
    job_types text[] default null,
    lease_seconds int default null
)
returns setof queue.claimed_job
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- plans that cannot go bad: queue.jobs swings from empty to a million rows between two
-- analyzes, and plpgsql keeps a generic plan made when it was tiny. With seq and bitmap scans
-- off the pick walks a claim index in order and the update finds rows by primary key whatever
-- the statistics say (make bench-backlog: 2,470 ms -> 3 ms per claim of 100 at a 1M backlog
-- after vacuum saw the table empty)
set enable_seqscan = off
set enable_bitmapscan = off
as $$
declare
    v_blocked text [];
    v_skip text [];
    v_queues text [];
    v_allowances int [];
    v_fair text [];
    v_ids bigint [];
begin
    -- check
    if claim_jobs.worker_id is null or btrim(claim_jobs.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
    elsif length(claim_jobs.worker_id) > 200 then
        raise exception 'worker_id must be at most 200 characters, got %', queue._shown(claim_jobs.worker_id)
            using errcode = '22023';
    end if;
    if claim_jobs.batch_size is null or claim_jobs.batch_size not between 1 and 1000 then
        raise exception 'batch_size must be between 1 and 1000, got %', coalesce(claim_jobs.batch_size::text, 'null')
            using errcode = '22023';
    end if;
    if claim_jobs.lease_seconds not between 1 and 86400 then
        raise exception 'lease_seconds must be from 1 to 86400 (a day), got %', claim_jobs.lease_seconds
            using errcode = '22023', hint = 'Leave it null for the job type''s timeout or the queue''s lease.';
    end if;
    v_blocked := queue._blocked_job_types();

    -- pick: the rows are locked (skip locked) here and claimed by the one update below
    if claim_jobs.job_types is not null then
        -- filtered by type: each type's own index, whatever other types wait ahead of it
        if claim_jobs.queue_names is null and not queue._limited_work_due(claim_jobs.job_types) then
            v_ids := queue._pick_by_type(
                claim_jobs.job_types, null, null, queue._paused_or_limited_queues(), v_blocked,
                claim_jobs.batch_size
            );
        else
            select a.queues, a.allowances, a.fair_queues into v_queues, v_allowances, v_fair
            from queue._claim_allowances(claim_jobs.queue_names, claim_jobs.batch_size) as a;
            if v_queues is null then
                return;
            end if;
            if v_fair is not null then
                -- a fair queue or one with owner_concurrency among them (37_fair_claim.sql)
                v_ids := queue._pick_fair(
                    v_queues, v_allowances, v_fair, claim_jobs.job_types, v_blocked, claim_jobs.batch_size
                );
            else
                v_ids := queue._pick_by_type(
                    claim_jobs.job_types, v_queues, v_allowances, '{}', v_blocked, claim_jobs.batch_size
                );
            end if;
            perform queue._spend_tokens(v_ids, v_queues);
        end if;
    elsif claim_jobs.queue_names is null and not queue._limited_work_due(null) then
        -- one ordered scan for every queue that is neither paused nor limited
        v_skip := queue._paused_or_limited_queues();
        v_ids := array(
            select j.id
            from queue.jobs as j
            where j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (v_blocked is null or j.job_type <> all(v_blocked))
                and j.queue_name <> all(v_skip)
            order by j.priority, j.run_at, j.id
            limit claim_jobs.batch_size
            for update skip locked
        );
    else
        -- one scan per queue, each capped by what the queue may start now, merged by priority
        select a.queues, a.allowances, a.fair_queues into v_queues, v_allowances, v_fair
        from queue._claim_allowances(claim_jobs.queue_names, claim_jobs.batch_size) as a;
        if v_queues is null then
            return;
        end if;
        if v_fair is not null then
            -- a fair queue or one with owner_concurrency among them (37_fair_claim.sql)
            v_ids := queue._pick_fair(
                v_queues, v_allowances, v_fair, null, v_blocked, claim_jobs.batch_size
            );
        else
            v_ids := array(
                select c.id
                from unnest(v_queues, v_allowances) as a (queue_name, allowance)
                cross join lateral (
                    select j.id, j.priority, j.run_at
                    from queue.jobs as j
                    where j.queue_name = a.queue_name
                        and j.status in ('pending', 'retrying')
                        and j.run_at <= now()
                        and (v_blocked is null or j.job_type <> all(v_blocked))
                    order by j.priority, j.run_at, j.id
                    limit a.allowance
                    for update skip locked
                ) as c
                order by c.priority, c.run_at, c.id
                limit claim_jobs.batch_size
            );
        end if;
        perform queue._spend_tokens(v_ids, v_queues);
    end if;

    -- claim: running, leased for the job type's timeout or the queue's lease; most urgent first
    return query
    with claimed as (
        update queue.jobs as j
        set status = 'running',
            attempt = j.attempt + 1,
            worker_id = claim_jobs.worker_id,
            lease_seconds = coalesce(claim_jobs.lease_seconds, jt.timeout_seconds, q.lease_seconds),
            lease_expires_at = now() + make_interval(
                secs => coalesce(claim_jobs.lease_seconds, jt.timeout_seconds, q.lease_seconds)
            ),
            attempted_at = now(),
            started_at = coalesce(j.started_at, now()),
            lease_token = gen_random_uuid()
        from queue.job_types as jt, queue.queues as q
        where j.id = any(v_ids)
            and jt.job_type = j.job_type
            and q.queue_name = j.queue_name
        returning j.id, j.job_type, j.queue_name, j.payload, j.attempt, j.max_attempts, j.priority,
            j.lease_expires_at, j.lease_seconds, j.owner_id, j.created_at, j.lease_token, j.parent_id
    )
    -- a fair pick is handed out in its own order, so the first turns start first (measured: a
    -- newcomer's job last in a batch of 1,000 started 30 ms after the batch came)
    select c.*
    from claimed as c
    left join unnest(case when v_fair is not null then v_ids end) with ordinality as f (id, ord) on f.id = c.id
    order by c.priority, f.ord, c.id;
end
$$;

comment on function queue.claim_jobs(text, int, text[], text[], int) is
'Claims up to batch_size due jobs for worker_id (priority 1 first, then run_at, then id) with FOR UPDATE SKIP LOCKED, skipping paused queues, honouring each queue''s concurrency and rate limit and open circuit breakers. Claimed jobs are running with a lease of lease_seconds (default: the job type''s timeout, else the queue''s lease) and a fresh random lease_token per job, which every later call about the attempt must present. Null queue_names / job_types mean all.';

-- ---- sql/queue/50_finish.sql ----
-- Finishing attempts: complete, fail (retry with backoff or dead-letter), heartbeat, release,
-- and the reaper for leases whose worker vanished. Every call is fenced by the claim's lease
-- token and worker_id (and, where given, the attempt number): a worker_id is only a name anyone
-- can pass, the token is the claim's secret, so a stale worker's late answer changes nothing.

-- _backoff_delay: how long to wait before retry number `attempt` (1-based).
create or replace function queue._backoff_delay(
    strategy queue.backoff_strategy,
    base interval,
    max_delay interval,
    jitter numeric,
    attempt int
)
returns interval
language sql
volatile
security definer
set search_path = ''
as $$
    select least(
        max_delay,
        case strategy
            when 'fixed' then base
            when 'linear' then base * attempt
            else base * power(2, least(attempt - 1, 30))
        end * (1 + coalesce(jitter, 0) * (2 * random() - 1))
    )
$$;

comment on function queue._backoff_delay(queue.backoff_strategy, interval, interval, numeric, int) is
'Private: retry delay. fixed = base, linear = base * attempt, exponential = base * 2^(attempt-1); times (1 ± jitter), capped at max_delay.';

-- _write_history: writes finished jobs (already deleted from queue.jobs) into queue.job_history;
-- the one place that lists history's columns. It takes a set, so a batch is still one insert.
create or replace function queue._write_history(
    jobs queue.jobs[],
    status queue.job_status,
    results jsonb[] default null
)
returns int
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_count int;
    -- the time of this call, not now(): a job completed inside its handler's transaction
    -- (ctx.connection) finishes when that transaction ends, not when it began
    v_finished_at timestamptz := clock_timestamp();
begin
    insert into queue.job_history (
        id, job_type, queue_name, status, priority, payload, attempt, max_attempts, unique_key,
        owner_id, worker_id, errors, result, progress, run_at, created_at, started_at, finished_at,
        public_error, parent_id, releases, released_at, released_by
    )
    select
        j.id, j.job_type, j.queue_name, _write_history.status, j.priority, j.payload, j.attempt,
        j.max_attempts, j.unique_key, j.owner_id, j.worker_id, j.errors, _write_history.results[j.ordinality],
        j.progress, j.run_at, j.created_at, j.started_at, v_finished_at,
        j.public_error, j.parent_id, j.releases, j.released_at, j.released_by
    from unnest(_write_history.jobs) with ordinality as j;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

comment on function queue._write_history(queue.jobs[], queue.job_status, jsonb[]) is
'Private: inserts the given job rows (already deleted from queue.jobs) into queue.job_history with the final status, the result aligned with each row (results may be null), and finished_at = the time of the call (clock_timestamp(), not the transaction''s start). Returns how many.';

-- _archive_job: moves one live job to history with its final status.
create or replace function queue._archive_job(
    job_id bigint,
    status queue.job_status,
    errors jsonb,
    result jsonb default null,
    public_error text default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
begin
    delete from queue.jobs as j
    where j.id = _archive_job.job_id
    returning j.* into v_job;
    if found then
        v_job.errors := _archive_job.errors;
        v_job.public_error := coalesce(_archive_job.public_error, v_job.public_error);
        perform queue._write_history(array[v_job], _archive_job.status, array[_archive_job.result]);
    end if;
end
$$;

comment on function queue._archive_job(bigint, queue.job_status, jsonb, jsonb, text) is 'Private: moves a live job to queue.job_history.';

-- complete_jobs: finishes the jobs the worker still holds; returns how many it finished.
create or replace function queue.complete_jobs(
    job_ids bigint[],
    worker_id text,
    results jsonb[] default null,
    attempts int[] default null,
    lease_tokens uuid[] default null
)
returns int
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- plans that cannot go bad: queue.jobs is read only through jobs_pkey (id = any(job_ids)),
-- whatever the statistics say. The delete once joined unnest(job_ids, ...) with queue.jobs
-- alone; on statistics that saw the table empty, a generic plan hashed every running job (170
-- ms for 2,000 ids at 200k running), rescanned the table per id (115 s for 5,000 ids, issue 15),
-- or walked jobs_pkey whole per id (a 20 s stall in make bench-backlog). Now the ids restrict
-- the scan of queue.jobs itself, so any join method reads only the batch's rows, and nested
-- loops are off: one with the unnest inside would compare every row with every id
set enable_seqscan = off
set enable_bitmapscan = off
set enable_nestloop = off
as $$
declare
    v_count int;
    v_big record;
begin
    -- one test on the hot path (three separate checks looked ~0.1 ms slower per batch of 100 on
    -- the shared bench box; within its noise); the problem is named only when there is one
    if complete_jobs.lease_tokens is null
        or array_position(complete_jobs.lease_tokens, null) is not null
        or cardinality(complete_jobs.lease_tokens) <> cardinality(complete_jobs.job_ids)
        or complete_jobs.results is not null then
        if complete_jobs.lease_tokens is null or array_position(complete_jobs.lease_tokens, null) is not null then
            raise exception 'lease_token is required: job % was passed without one',
                complete_jobs.job_ids[coalesce(array_position(complete_jobs.lease_tokens, null), 1)]
                using errcode = '22023',
                hint = 'Pass the lease_token claim_jobs returned with the job: a worker_id alone does not prove the lease.';
        elsif cardinality(complete_jobs.lease_tokens) <> cardinality(complete_jobs.job_ids) then
            raise exception 'lease_tokens must hold one token per job id (% ids, % tokens)',
                cardinality(complete_jobs.job_ids), cardinality(complete_jobs.lease_tokens)
                using errcode = '22023', hint = 'Pass the lease_token claim_jobs returned with each job, in job_ids order.';
        end if;
        select r.ord, octet_length(r.result::text) as bytes into v_big
        from unnest(complete_jobs.results) with ordinality as r (result, ord)
        where octet_length(r.result::text) > (select s.max_payload_bytes from queue.settings as s)
        limit 1;
        if found then
            raise exception 'job_ids[%]: result is % bytes, over the cap of % bytes (queue.settings.max_payload_bytes)',
                v_big.ord - 1, v_big.bytes, (select s.max_payload_bytes from queue.settings as s)
                using errcode = '22023', hint = 'Store large results elsewhere and return their id. Nothing was completed.';
        end if;
    end if;
    -- one delete and one insert for the whole batch: the writer takes the deleted rows as a set.
    -- Each id is paired with the token, result and attempt at its position (the join), not with
    -- any token of the batch. The jsonb map of them this join replaced cost 2 of complete_jobs'
    -- 8 us per job (batch 100; pg_stat_statements over a procedure loop)
    with done as (
        delete from queue.jobs as j
        using unnest(complete_jobs.job_ids, complete_jobs.lease_tokens, complete_jobs.results, complete_jobs.attempts)
            as c (id, lease_token, result, attempt)
        where j.id = any(complete_jobs.job_ids)
            and j.id = c.id
            -- running, said without naming status: worker_id and lease_expires_at are set
            -- exactly while running (jobs_running_has_lease), and a status clause would offer
            -- the planner a full scan of the partial jobs_running_idx instead of the ids
            and j.lease_expires_at is not null
            and j.worker_id = complete_jobs.worker_id
            and j.lease_token = c.lease_token
            and coalesce(c.attempt, j.attempt) = j.attempt
        returning j, c.result
    )
    select queue._write_history(array_agg(d.j), 'completed', array_agg(d.result)) into v_count
    from done as d;
    return v_count;
end
$$;

comment on function queue.complete_jobs(bigint[], text, jsonb[], int[], uuid[]) is
'Completes the listed jobs that worker_id still holds under their lease_tokens (one per job id, as claim_jobs returned them; optionally with per-job results, each at most queue.settings.max_payload_bytes, and attempt numbers, aligned with job_ids). Returns how many it completed; a job reclaimed by another worker, finished, or presented with another token is left alone.';

-- complete_job: finishes one job; false when the caller no longer holds it.
create or replace function queue.complete_job(
    job_id bigint,
    worker_id text,
    result jsonb default null,
    attempt int default null,
    lease_token uuid default null
)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $$
    select queue.complete_jobs(
        array[complete_job.job_id],
        complete_job.worker_id,
        array[complete_job.result],
        array[complete_job.attempt],
        array[complete_job.lease_token]
    ) = 1
$$;

comment on function queue.complete_job(bigint, text, jsonb, int, uuid) is
'Completes one job with its result; lease_token (from claim_jobs) is required. Returns false (and changes nothing) when worker_id no longer holds the job''s lease under that token, so nothing completes twice.';

-- _fail_locked: records a failed attempt of a locked running job; retries or dead-letters it.
create or replace function queue._fail_locked(
    job queue.jobs,
    error text,
    retryable boolean,
    retry_at timestamptz,
    public_error text default null
)
returns queue.job_status
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_errors jsonb;
    v_queue queue.queues;
begin
    -- cut, never refused: a failure must always be recordable, whatever the handler produced
    v_errors := job.errors || jsonb_build_object(
        'attempt', job.attempt,
        'error', coalesce(queue._clip(error, 4000), '(no error message)'),
        'worker_id', job.worker_id,
        'at', now()
    );
    -- the owner's view: only what the handler chose to say (null: a generic message)
    job.public_error := queue._clip(public_error, 200);
    if not coalesce(retryable, true) or job.attempt >= job.max_attempts then
        perform queue._archive_job(job.id, 'dead', v_errors, null, job.public_error);
        return 'dead'::queue.job_status;
    end if;
    select q.* into v_queue from queue.queues as q where q.queue_name = job.queue_name;
    update queue.jobs as j
    set status = 'retrying',
        worker_id = null,
        lease_seconds = null,
        lease_expires_at = null,
        lease_token = null,
        errors = v_errors,
        public_error = job.public_error,
        run_at = coalesce(
            -- a past retry_at means now
            case when _fail_locked.retry_at is not null then greatest(_fail_locked.retry_at, now()) end,
            now() + queue._backoff_delay(
                coalesce(job.backoff_strategy, v_queue.backoff_strategy),
                coalesce(job.backoff_base, v_queue.backoff_base),
                coalesce(job.backoff_max, v_queue.backoff_max),
                v_queue.backoff_jitter,
                job.attempt
            )
        )
    where j.id = job.id;
    return 'retrying'::queue.job_status;
end
$$;

comment on function queue._fail_locked(
    queue.jobs, text, boolean, timestamptz, text
) is 'Private: the failure rules shared by fail_job and reap_expired_leases.';

-- fail_job: records an attempt's error; returns retrying or dead, or null if not held.
create or replace function queue.fail_job(
    job_id bigint,
    worker_id text,
    error text,
    retryable boolean default true,
    retry_at timestamptz default null,
    attempt int default null,
    lease_token uuid default null,
    public_error text default null
)
returns queue.job_status
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- by primary key whatever the statistics say (a plan cached while queue.jobs was one page
-- scanned it whole once it had grown; see complete_jobs)
set enable_seqscan = off
as $$
declare
    v_job queue.jobs;
    v_problem text;
begin
    if fail_job.lease_token is null then
        raise exception 'lease_token is required: job % was failed without one', fail_job.job_id
            using errcode = '22023',
            hint = 'Pass the lease_token claim_jobs returned with the job: a worker_id alone does not prove the lease.';
    end if;
    v_problem := queue._time_problem('retry_at', fail_job.retry_at, null);
    if v_problem is not null then
        raise exception '%', v_problem
            using errcode = '22023', hint = 'Pass a finite time at most a year ahead, or null for the backoff.';
    end if;
    select j.* into v_job
    from queue.jobs as j
    where j.id = fail_job.job_id
        and j.status = 'running'
        and j.lease_token = fail_job.lease_token
        and j.worker_id = fail_job.worker_id
        and (fail_job.attempt is null or j.attempt = fail_job.attempt)
    for update;
    if not found then
        return null;
    end if;
    return queue._fail_locked(v_job, fail_job.error, fail_job.retryable, fail_job.retry_at, fail_job.public_error);
end
$$;

comment on function queue.fail_job(bigint, text, text, boolean, timestamptz, int, uuid, text) is
'Records a failed attempt (every attempt''s error is kept, cut to 4,000 characters with a marker). Retryable with attempts left: status retrying, run_at after the backoff (or at retry_at when given: finite, at most a year ahead; a past one means now). Otherwise: dead (queue.dead_letter). public_error (cut to 200 characters) is what the job''s owner sees instead of the raw error. lease_token (from claim_jobs) is required. Returns null and changes nothing when worker_id no longer holds the job under that token.';

-- heartbeat: extends the leases the worker still holds and records that it is alive.
create or replace function queue.heartbeat(
    worker_id text,
    job_ids bigint[] default '{}',
    host text default null,
    pid int default null,
    metadata jsonb default null,
    lease_tokens uuid[] default null
)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
-- by primary key whatever the statistics say (see complete_jobs)
set enable_seqscan = off
as $$
begin
    if heartbeat.worker_id is null or btrim(heartbeat.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
    elsif length(heartbeat.worker_id) > 200 then
        raise exception 'worker_id must be at most 200 characters, got %', queue._shown(heartbeat.worker_id)
            using errcode = '22023';
    elsif length(heartbeat.host) > 255 then
        raise exception 'host must be at most 255 characters, got %', queue._shown(heartbeat.host) using errcode = '22023';
    elsif jsonb_typeof(heartbeat.metadata) <> 'object' then
        raise exception 'metadata must be a JSON object, got %', jsonb_typeof(heartbeat.metadata) using errcode = '22023';
    elsif octet_length(heartbeat.metadata::text) > 65536 then
        raise exception 'metadata is % bytes, over the limit of 65536', octet_length(heartbeat.metadata::text)
            using errcode = '22023';
    elsif coalesce(cardinality(heartbeat.job_ids), 0) > 0
        and (heartbeat.lease_tokens is null or array_position(heartbeat.lease_tokens, null) is not null
            or cardinality(heartbeat.lease_tokens) <> cardinality(heartbeat.job_ids)) then
        raise exception 'lease_tokens must hold one token per job id (% ids, % tokens)',
            cardinality(heartbeat.job_ids), coalesce(cardinality(heartbeat.lease_tokens)::text, 'null')
            using errcode = '22023',
            hint = 'Pass the lease_token claim_jobs returned with each job, in job_ids order: a worker_id alone does not prove the lease.';
    end if;
    insert into queue.worker_sessions as w (worker_id, host, pid, metadata)
    values (heartbeat.worker_id, heartbeat.host, heartbeat.pid, coalesce(heartbeat.metadata, '{}'))
    on conflict on constraint worker_sessions_pkey do update
    set last_seen_at = now(),
        host = coalesce(excluded.host, w.host),
        pid = coalesce(excluded.pid, w.pid),
        metadata = case when heartbeat.metadata is null then w.metadata else excluded.metadata end;

    return query
    update queue.jobs as j
    set lease_expires_at = now() + make_interval(secs => j.lease_seconds)
    from unnest(heartbeat.job_ids, heartbeat.lease_tokens) as h (id, lease_token)
    where j.id = h.id
        and j.status = 'running'
        and j.lease_token = h.lease_token
        and j.worker_id = heartbeat.worker_id
    returning j.id;
end
$$;

comment on function queue.heartbeat(text, bigint[], text, int, jsonb, uuid[]) is
'Extends the lease of each listed job worker_id still holds under its lease token (lease_tokens: one per job id, required with job_ids) by its lease length, and records the worker as alive (queue.workers). Returns the ids still held: a missing id was reclaimed or finished.';

-- report_progress: stores a running job's progress (any JSON) for status readers.
create or replace function queue.report_progress(
    job_id bigint,
    worker_id text,
    progress jsonb,
    lease_token uuid default null
)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if report_progress.lease_token is null then
        raise exception 'lease_token is required: progress for job % was reported without one', report_progress.job_id
            using errcode = '22023',
            hint = 'Pass the lease_token claim_jobs returned with the job: a worker_id alone does not prove the lease.';
    elsif octet_length(report_progress.progress::text) > 65536 then
        raise exception 'progress is % bytes, over the limit of 65536', octet_length(report_progress.progress::text)
            using errcode = '22023', hint = 'Progress is a small status for readers (a percentage, a step); keep data elsewhere.';
    end if;
    update queue.jobs as j
    set progress = report_progress.progress
    where j.id = report_progress.job_id
        and j.status = 'running'
        and j.lease_token = report_progress.lease_token
        and j.worker_id = report_progress.worker_id;
    return found;
end
$$;

comment on function queue.report_progress(bigint, text, jsonb, uuid) is
'Stores progress (JSON, at most 64 kB) for a job the worker holds under lease_token (required; from claim_jobs); shown by get_job and my_jobs. False if not held.';

-- release_jobs: gives held jobs back without counting the attempt (graceful shutdown).
create or replace function queue.release_jobs(worker_id text, job_ids bigint[], lease_tokens uuid[] default null)
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    if coalesce(cardinality(release_jobs.job_ids), 0) > 0
        and (release_jobs.lease_tokens is null or array_position(release_jobs.lease_tokens, null) is not null
            or cardinality(release_jobs.lease_tokens) <> cardinality(release_jobs.job_ids)) then
        raise exception 'lease_tokens must hold one token per job id (% ids, % tokens)',
            cardinality(release_jobs.job_ids), coalesce(cardinality(release_jobs.lease_tokens)::text, 'null')
            using errcode = '22023',
            hint = 'Pass the lease_token claim_jobs returned with each job, in job_ids order: a worker_id alone does not prove the lease.';
    end if;
    -- the release is recorded on the job: claiming then releasing is no way to read payloads unseen
    update queue.jobs as j
    set status = case when j.attempt > 1 then 'retrying'::queue.job_status else 'pending' end,
        attempt = j.attempt - 1,
        worker_id = null,
        lease_seconds = null,
        lease_expires_at = null,
        lease_token = null,
        releases = j.releases + 1,
        released_at = now(),
        released_by = release_jobs.worker_id
    from unnest(release_jobs.job_ids, release_jobs.lease_tokens) as r (id, lease_token)
    where j.id = r.id
        and j.status = 'running'
        and j.lease_token = r.lease_token
        and j.worker_id = release_jobs.worker_id;
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform pg_notify('kyu_jobs', q.queue_name)
        from (select distinct j.queue_name from queue.jobs as j where j.id = any(release_jobs.job_ids)) as q;
    end if;
    return v_count;
end
$$;

comment on function queue.release_jobs(text, bigint[], uuid[]) is
'Returns jobs the worker holds (under lease_tokens, one per job id, required) to the queue at once, without counting the attempt (a worker shutting down); each job records it (releases, released_at, released_by). Returns how many.';

-- reap_expired_leases: fails the attempts of jobs whose worker stopped heartbeating.
create or replace function queue.reap_expired_leases()
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
    v_count int := 0;
begin
    for v_job in
        select j.*
        from queue.jobs as j
        where j.status = 'running' and j.lease_expires_at < now()
        order by j.lease_expires_at
        limit 10000
        for update skip locked
    loop
        perform queue._fail_locked(
            v_job,
            format('lease expired at %s: worker %s stopped heartbeating', v_job.lease_expires_at, v_job.worker_id),
            true,
            null
        );
        v_count := v_count + 1;
    end loop;
    return v_count;
end
$$;

comment on function queue.reap_expired_leases() is
'Jobs whose lease expired (their worker vanished) count the attempt as failed: they wait for a retry, or go to the dead letter when attempts are spent. Returns how many were reaped. Run every minute by pg_cron.';

-- fail_worker_jobs: fails the attempts of every job a worker held, when whoever ran that worker
-- saw it die (the supervisor of run --processes): at once, instead of after the lease and the
-- reaper. Not granted to queue_worker: a worker may finish only what its lease tokens prove.
create or replace function queue.fail_worker_jobs(worker_id text, error text)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
begin
    if fail_worker_jobs.worker_id is null or btrim(fail_worker_jobs.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
    end if;
    for v_job in
        select j.*
        from queue.jobs as j
        where j.status = 'running' and j.worker_id = fail_worker_jobs.worker_id
        order by j.id
        for update
    loop
        perform queue._fail_locked(v_job, coalesce(fail_worker_jobs.error, 'worker died'), true, null);
        return next v_job.id;
    end loop;
end
$$;

comment on function queue.fail_worker_jobs(text, text) is
'Fails (retryably: retry or dead letter as usual) every running job of a worker that is known to be dead, with error as the cause; returns their ids. For a supervisor that saw the worker process exit; service_role only.';

-- ---- sql/queue/60_control.sql ----
-- Control: an operator's hands on jobs and queues: cancel a waiting job, retry a dead or
-- cancelled one, pause and resume a queue.

-- cancel_job: a waiting job goes to history as cancelled.
create or replace function queue.cancel_job(job_id bigint)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
    v_status queue.job_status;
begin
    if cancel_job.job_id is null then
        raise exception 'job_id is required' using errcode = '22023';
    end if;
    select j.* into v_job from queue.jobs as j where j.id = cancel_job.job_id for update;
    if not found then
        select h.status into v_status from queue.job_history as h where h.id = cancel_job.job_id;
        if found then
            raise exception 'job % is already % and cannot be cancelled', cancel_job.job_id, v_status
                using errcode = '55000';
        end if;
        raise exception 'job % not found', cancel_job.job_id using errcode = 'P0002';
    end if;
    if v_job.status = 'running' then
        raise exception 'job % is running (worker %) and cannot be cancelled', cancel_job.job_id, v_job.worker_id
            using errcode = '55000', hint = 'Wait for the attempt to finish, or let the handler fail permanently.';
    end if;
    perform queue._archive_job(v_job.id, 'cancelled', v_job.errors);
    return true;
end
$$;

comment on function queue.cancel_job(bigint) is 'Cancels a waiting (pending or retrying) job; a running or finished job is an error.';

-- retry_job: replays a dead or cancelled job with fresh attempts, keeping its id and errors.
create or replace function queue.retry_job(job_id bigint)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.job_history;
begin
    if retry_job.job_id is null then
        raise exception 'job_id is required' using errcode = '22023';
    end if;
    select h.* into v_job from queue.job_history as h where h.id = retry_job.job_id for update;
    if not found then
        if exists (select from queue.jobs as j where j.id = retry_job.job_id) then
            raise exception 'job % is still live and cannot be retried', retry_job.job_id using errcode = '55000';
        end if;
        raise exception 'job % not found', retry_job.job_id using errcode = 'P0002';
    end if;
    if v_job.status not in ('dead', 'cancelled') then
        raise exception 'job % is %; only dead or cancelled jobs can be retried', retry_job.job_id, v_job.status
            using errcode = '55000';
    end if;
    if v_job.unique_key is not null
        and exists (select from queue.jobs as j where j.unique_key = v_job.unique_key) then
        raise exception 'job % cannot be retried: another live job holds its unique_key %', retry_job.job_id, v_job.unique_key
            using errcode = '23505';
    end if;
    delete from queue.job_history as h where h.id = v_job.id;
    insert into queue.jobs (
        id, job_type, queue_name, status, priority, run_at, payload, attempt, max_attempts,
        unique_key, owner_id, errors, created_at, parent_id, public_error, releases, released_at, released_by
    )
    values (
        v_job.id, v_job.job_type, v_job.queue_name, 'pending', v_job.priority, now(), v_job.payload, 0,
        v_job.max_attempts, v_job.unique_key, v_job.owner_id, v_job.errors, v_job.created_at, v_job.parent_id,
        v_job.public_error, v_job.releases, v_job.released_at, v_job.released_by
    );
    perform pg_notify('kyu_jobs', v_job.queue_name);
    return v_job.id;
end
$$;

comment on function queue.retry_job(
    bigint
) is 'Replays a dead or cancelled job: back to pending now with its attempts reset (earlier errors kept). Returns its id.';

-- pause_queue / resume_queue: stop or restart claiming from a queue (running jobs finish).
create or replace function queue.pause_queue(queue_name text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    update queue.queues as q set paused = true, updated_at = now() where q.queue_name = pause_queue.queue_name;
    if not found then
        raise exception 'unknown queue: %', queue._shown(pause_queue.queue_name) using errcode = '22023';
    end if;
end
$$;

comment on function queue.pause_queue(text) is 'Stops claiming from the queue; running jobs finish; enqueueing still works.';

create or replace function queue.resume_queue(queue_name text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    update queue.queues as q set paused = false, updated_at = now() where q.queue_name = resume_queue.queue_name;
    if not found then
        raise exception 'unknown queue: %', queue._shown(resume_queue.queue_name) using errcode = '22023';
    end if;
    perform pg_notify('kyu_jobs', resume_queue.queue_name);
end
$$;

comment on function queue.resume_queue(text) is 'Resumes claiming from a paused queue and wakes workers.';

-- ---- sql/queue/65_breakers.sql ----
-- Circuit breakers: handlers report each call to an external service; failure_threshold
-- failures in a row open its breaker, and claim_jobs skips the job types that list the service
-- (queue._blocked_job_types) until the cool-down has passed.

-- report_service: a handler's outcome against an external service drives its circuit breaker.
create or replace function queue.report_service(
    service text,
    ok boolean,
    error text default null,
    failure_threshold int default null,
    cooldown interval default null
)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_state text;
begin
    if report_service.service is null or btrim(report_service.service) = '' then
        raise exception 'service is required' using errcode = '22023';
    elsif length(report_service.service) > 100 then
        raise exception 'service must be at most 100 characters, got %', queue._shown(report_service.service)
            using errcode = '22023';
    end if;
    insert into queue.circuit_breakers as cb (service, failure_threshold, cooldown)
    values (
        report_service.service,
        coalesce(report_service.failure_threshold, 5),
        coalesce(report_service.cooldown, interval '1 minute')
    )
    on conflict on constraint circuit_breakers_pkey do update
    set failure_threshold = coalesce(report_service.failure_threshold, cb.failure_threshold),
        cooldown = coalesce(report_service.cooldown, cb.cooldown);

    if report_service.ok then
        update queue.circuit_breakers as cb
        set state = 'closed', failures = 0, opened_at = null, updated_at = now()
        where cb.service = report_service.service
        returning cb.state into v_state;
    else
        -- a failure after the cool-down (the trial call) opens it again at once
        update queue.circuit_breakers as cb
        set failures = cb.failures + 1,
            -- cut, never refused: a failing call must always be recordable
            last_error = queue._clip(report_service.error, 4000),
            state = case when cb.failures + 1 >= cb.failure_threshold then 'open' else cb.state end,
            opened_at = case when cb.failures + 1 >= cb.failure_threshold then now() else cb.opened_at end,
            updated_at = now()
        where cb.service = report_service.service
        returning cb.state into v_state;
    end if;
    return v_state;
end
$$;

comment on function queue.report_service(text, boolean, text, int, interval) is
'Reports one call to an external service. failure_threshold failures in a row open its breaker: job types listing the service are not claimed until cooldown has passed; a success closes it. Returns the breaker state.';

-- ---- sql/queue/70_schedules.sql ----
-- pg_cron: housekeeping (reap, age, stats, purge, trim of cron's run log) and recurring jobs;
-- the housekeeping functions themselves (aging, purges, trim) live here beside their schedules.
-- Every pg_cron entry Kyu owns is named `queue-...`: housekeeping `queue-reap`, `queue-age`,
-- `queue-stats`, `queue-purge`, `queue-cron-trim`, `queue-partitions`, `queue-storage`; a
-- recurring job `queue-job:<name>`.
-- pg_cron is optional at install time: where it is absent (a test template database, a database
-- other than cron.database_name) everything here still installs, recurring jobs are refused
-- with a clear error, and queue.health() reports housekeeping as not scheduled.
-- Functions that touch the cron schema are PL/pgSQL, whose bodies resolve names only when run.

-- pg_cron can be created only in the database named by cron.database_name, and only where the
-- library is preloaded (then that setting exists). There, Kyu enables it; anywhere else it does
-- nothing. A refusal (no privilege) is a warning: the queue works, housekeeping waits.
do $$
begin
    if not exists (select from pg_catalog.pg_extension where extname = 'pg_cron')
        and current_database() = current_setting('cron.database_name', true)
        and exists (select from pg_catalog.pg_available_extensions where name = 'pg_cron') then
        create extension if not exists pg_cron;
    end if;
exception
    when others then
        raise warning 'Kyu: could not create extension pg_cron (%); housekeeping is not scheduled', sqlerrm
            using hint = 'Enable pg_cron, then run: select queue.sync_cron_jobs();';
end
$$;

-- _cron_version: pg_cron's version in this database as {major, minor[, patch]}; null when absent.
-- The setting kyu.test_pg_cron_version (e.g. '1.6') stands in for the installed version, so
-- tests on Debian's 1.4 can run the 1.5+ paths (30-second reaper, 'N seconds' schedules) that
-- hosted Supabase runs; nothing sets it outside tests.
create or replace function queue._cron_version()
returns int[]
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(
        string_to_array(nullif(current_setting('kyu.test_pg_cron_version', true), ''), '.')::int[],
        (
            select string_to_array(split_part(e.extversion, '-', 1), '.')::int[]
            from pg_catalog.pg_extension as e
            where e.extname = 'pg_cron'
        )
    )
$$;

comment on function queue._cron_version() is
'Private: the installed pg_cron version as an int array (1.4-1 gives {1,4}); null when pg_cron is not installed in this database. Tests may stand in a version with the setting kyu.test_pg_cron_version.';

-- _housekeeping_jobs: the pg_cron entries the queue needs, one row each.
create or replace function queue._housekeeping_jobs()
returns table (jobname text, schedule text, command text, description text)
language sql
stable
security definer
set search_path = ''
as $$
    select h.jobname, h.schedule, h.command, h.description
    from (
        values
        (
            1,
            'queue-reap',
            -- pg_cron 1.5 brought 'N seconds' schedules; 1.4 is minute-granular
            case when queue._cron_version() >= '{1,5}' then '30 seconds' else '* * * * *' end,
            'select queue.reap_expired_leases()',
            'fail the attempts of jobs whose worker stopped heartbeating'
        ),
        (
            2,
            'queue-age',
            '* * * * *',
            'select queue.age_waiting_jobs()',
            'priority aging of long-waiting jobs (queues with aging_interval)'
        ),
        (
            3,
            'queue-stats',
            '* * * * *',
            'select queue.snapshot_stats()',
            'snapshot queue.queue_stats into queue.stats_history and trim it'
        ),
        (
            4,
            'queue-purge',
            '*/5 * * * *',
            'call queue.purge_history_batches()',
            'delete finished jobs past their queue''s retention, one committed batch at a time'
        ),
        (
            5,
            'queue-cron-trim',
            '17 * * * *',
            'select queue.trim_cron_history()',
            'delete old cron.job_run_details rows of Kyu''s own pg_cron entries'
        ),
        (
            6,
            'queue-partitions',
            '7 * * * *',
            'select queue.maintain_history_partitions()',
            'create the coming days'' history partitions, drop the days past every retention'
        ),
        (
            7,
            'queue-storage',
            '*/5 * * * *',
            'select queue.maintain_jobs_storage()',
            'rebuild the hot table''s indexes once a burst has drained'
        )
    ) as h (ord, jobname, schedule, command, description)
    order by h.ord
$$;

comment on function queue._housekeeping_jobs() is
'Private: the housekeeping entries Kyu registers with pg_cron (name, schedule, command); queue-reap runs every 30 seconds where pg_cron >= 1.5, else every minute.';

-- _require_cron: raises unless pg_cron is installed in this database.
create or replace function queue._require_cron()
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if queue._cron_version() is null then
        raise exception 'pg_cron is not installed in database %', current_database()
            using errcode = '55000',
            hint = format(
                'pg_cron lives in the database named by cron.database_name (%s): install Kyu there, '
                'or create extension pg_cron where it is preloaded; then: select queue.sync_cron_jobs();',
                coalesce(current_setting('cron.database_name', true), 'pg_cron not preloaded')
            );
    end if;
end
$$;

comment on function queue._require_cron() is 'Private: raises 55000 (with how to fix it) when pg_cron is not installed in this database.';

-- _schedule_key: the unique_key of one run of a recurring job: its name and the run's slot,
-- the minute of a cron expression, or the N-second window of an 'N seconds' schedule.
create or replace function queue._schedule_key(name text, schedule text, at timestamptz)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_seconds int;
    v_slot timestamptz;
begin
    v_seconds := (regexp_match(_schedule_key.schedule, '^\s*(\d+)\s*seconds?\s*$', 'i'))[1]::int;
    if v_seconds > 0 then
        v_slot := to_timestamp(floor(extract(epoch from _schedule_key.at) / v_seconds) * v_seconds);
    else
        v_slot := date_trunc('minute', _schedule_key.at);
    end if;
    return format(
        'queue-job:%s@%s',
        _schedule_key.name,
        to_char(v_slot at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    );
end
$$;

comment on function queue._schedule_key(text, text, timestamptz) is
'Private: the unique_key of a recurring job''s run at a time: queue-job:<name>@<slot in UTC>, the slot being the minute (cron expressions) or the N-second window (''N seconds'').';

-- enqueue_scheduled_job: what a recurring job's pg_cron entry runs; one job per slot, ever.
create or replace function queue.enqueue_scheduled_job(name text, scheduled_at timestamptz default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_spec queue.recurring_jobs;
    v_key text;
    v_id bigint;
begin
    select r.* into v_spec from queue.recurring_jobs as r where r.name = enqueue_scheduled_job.name;
    if not found then
        raise exception 'unknown recurring job: %', enqueue_scheduled_job.name
            using errcode = '22023', hint = 'See queue.schedules; create one with queue.schedule_job(...).';
    end if;
    v_key := queue._schedule_key(v_spec.name, v_spec.schedule, coalesce(enqueue_scheduled_job.scheduled_at, now()));

    -- enqueue_job dedupes against live jobs only: a run of this slot that already finished
    -- must not be enqueued again
    select h.id into v_id
    from queue.job_history as h
    where h.unique_key = v_key
    order by h.id
    limit 1;
    if found then
        return v_id;
    end if;

    v_id := queue.enqueue_job(
        job_type => v_spec.job_type,
        payload => v_spec.payload,
        queue_name => v_spec.queue_name,
        priority => v_spec.priority,
        unique_key => v_key
    );

    -- the slot's job may have finished between the check above and the insert (this statement
    -- sees it): then the job just added is a second run of the slot, and goes
    if exists (select from queue.job_history as h where h.unique_key = v_key and h.id <> v_id) then
        delete from queue.jobs as j
        where j.id = v_id and j.status = 'pending' and j.attempt = 0;
        select h.id into v_id
        from queue.job_history as h
        where h.unique_key = v_key
        order by h.id
        limit 1;
    end if;
    return v_id;
end
$$;

comment on function queue.enqueue_scheduled_job(text, timestamptz) is
'Enqueues one run of a recurring job (what its pg_cron entry calls) with unique_key queue-job:<name>@<slot>, the slot being the run''s minute (or N-second window): overlapping or repeated runs of a slot, live or finished, give the same job id. scheduled_at (default now()) picks the slot, e.g. to backfill a missed run.';

-- schedule_job: creates or replaces a recurring job and its pg_cron entry queue-job:<name>.
create or replace function queue.schedule_job(
    name text,
    schedule text,
    job_type text,
    payload jsonb default '{}',
    queue_name text default null,
    priority int default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_jobid bigint;
    v_hint text;
begin
    perform queue._require_cron();
    if schedule_job.name is null or schedule_job.name !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$' then
        raise exception 'recurring job name must be 1-100 characters of letters, digits, _ . : - (starting with a letter or digit), got %',
            coalesce(quote_literal(queue._shown(schedule_job.name)), 'null') using errcode = '22023';
    elsif not exists (select from queue.job_types as jt where jt.job_type = schedule_job.job_type) then
        raise exception 'unknown job type: %', queue._shown(schedule_job.job_type)
            using errcode = '22023',
            hint = 'Register it first: select queue.register_job_type(job_type => ..., queue_name => ...);';
    elsif schedule_job.queue_name is not null
        and not exists (select from queue.queues as q where q.queue_name = schedule_job.queue_name) then
        raise exception 'unknown queue: %', queue._shown(schedule_job.queue_name) using errcode = '22023';
    elsif schedule_job.priority not between 1 and 100 then
        raise exception 'priority must be between 1 and 100, got %', schedule_job.priority using errcode = '22023';
    elsif jsonb_typeof(coalesce(schedule_job.payload, '{}')) <> 'object' then
        raise exception 'payload must be a JSON object, got %', jsonb_typeof(schedule_job.payload) using errcode = '22023';
    end if;

    v_hint := format(
        'Use 5-field cron in UTC (minute hour day-of-month month day-of-week, e.g. ''*/5 * * * *'' or ''0 3 * * *'') or @hourly, @daily, ...%s',
        case when queue._cron_version() >= '{1,5}' then ', or ''N seconds'' (1-59).'
            else format('; ''N seconds'' needs pg_cron 1.5 or later (installed: %s).', array_to_string(queue._cron_version(), '.')) end
    );
    -- pg_cron accepts a 6-field expression and silently ignores the sixth field
    if schedule_job.schedule is null
        or array_length(regexp_split_to_array(btrim(schedule_job.schedule), '\s+'), 1) > 5 then
        raise exception 'invalid cron schedule for recurring job %: %', schedule_job.name,
            coalesce(quote_literal(queue._shown(schedule_job.schedule)), 'null')
            using errcode = '22023', hint = v_hint;
    end if;

    insert into queue.recurring_jobs as r (name, schedule, job_type, payload, queue_name, priority)
    values (
        schedule_job.name, btrim(schedule_job.schedule), schedule_job.job_type,
        coalesce(schedule_job.payload, '{}'), schedule_job.queue_name, schedule_job.priority
    )
    on conflict on constraint recurring_jobs_pkey do update
    set schedule = excluded.schedule,
        job_type = excluded.job_type,
        payload = excluded.payload,
        queue_name = excluded.queue_name,
        priority = excluded.priority,
        updated_at = now();

    begin
        -- an entry of the same name and owner is updated in place
        v_jobid := cron.schedule(
            'queue-job:' || schedule_job.name,
            btrim(schedule_job.schedule),
            format('select queue.enqueue_scheduled_job(%L)', schedule_job.name)
        );
    exception
        when invalid_parameter_value then
            raise exception 'invalid cron schedule for recurring job %: %', schedule_job.name,
                quote_literal(queue._shown(schedule_job.schedule))
                using errcode = '22023', hint = v_hint;
    end;
    return v_jobid;
end
$$;

comment on function queue.schedule_job(text, text, text, jsonb, text, int) is
'Creates or replaces a recurring job: the pg_cron entry queue-job:<name> (run as the function owner, postgres) enqueues job_type with payload every schedule (5-field cron in UTC; ''N seconds'' on pg_cron >= 1.5), at most one job per run slot. queue_name and priority default to the job type''s. Returns the pg_cron job id. Needs pg_cron in this database.';

-- unschedule_job: removes a recurring job and its pg_cron entry; false when there was none.
create or replace function queue.unschedule_job(name text)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_found boolean;
    v_jobid bigint;
begin
    delete from queue.recurring_jobs as r where r.name = unschedule_job.name;
    v_found := found;
    if queue._cron_version() is not null then
        select j.jobid into v_jobid from cron.job as j where j.jobname = 'queue-job:' || unschedule_job.name;
        if found then
            perform cron.unschedule(v_jobid);
            v_found := true;
        end if;
    end if;
    return v_found;
end
$$;

comment on function queue.unschedule_job(text) is
'Removes a recurring job and its pg_cron entry queue-job:<name>. Returns false when no such job existed. Jobs it already enqueued stay.';

-- sync_cron_jobs: (re)registers housekeeping and every recurring job with pg_cron.
create or replace function queue.sync_cron_jobs()
returns setof text
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_row record;
begin
    if queue._cron_version() is null then
        raise notice 'Kyu: pg_cron is not installed in database %; housekeeping is not scheduled', current_database();
        return;
    end if;
    for v_row in select h.jobname, h.schedule, h.command from queue._housekeeping_jobs() as h loop
        perform cron.schedule(v_row.jobname, v_row.schedule, v_row.command);
        return next v_row.jobname;
    end loop;
    for v_row in select r.* from queue.recurring_jobs as r order by r.name loop
        perform queue.schedule_job(
            v_row.name, v_row.schedule, v_row.job_type, v_row.payload, v_row.queue_name, v_row.priority
        );
        return next 'queue-job:' || v_row.name;
    end loop;
    -- entries whose recurring job is gone would fail every run
    for v_row in
        select j.jobid, j.jobname::text as jobname
        from cron.job as j
        where j.jobname like 'queue-job:%'
            and not exists (select from queue.recurring_jobs as r where 'queue-job:' || r.name = j.jobname)
    loop
        perform cron.unschedule(v_row.jobid);
        raise notice 'Kyu: removed pg_cron entry % (no such recurring job)', v_row.jobname;
    end loop;
end
$$;

comment on function queue.sync_cron_jobs() is
'Registers (or updates) the housekeeping entries queue-reap, queue-age, queue-stats, queue-purge, queue-cron-trim, queue-partitions, queue-storage and every recurring job with pg_cron, and removes queue-job: entries without a recurring job. Returns the entry names. Safe to run again; the migration runs it. Does nothing (with a notice) without pg_cron.';

-- age_waiting_jobs: starvation guard; run by pg_cron.
create or replace function queue.age_waiting_jobs()
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    -- one step per aging_interval waited: aged_at remembers the last step
    update queue.jobs as j
    set priority = j.priority - 1,
        aged_at = now()
    from queue.queues as q
    where q.queue_name = j.queue_name
        and q.aging_interval is not null
        and j.status in ('pending', 'retrying')
        and j.priority > 1
        and coalesce(j.aged_at, j.run_at) <= now() - q.aging_interval;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

comment on function queue.age_waiting_jobs() is 'Moves jobs that waited longer than their queue''s aging_interval one priority step up. Returns how many moved.';

-- purge_history: deletes finished jobs past their queue's retention, at most max_rows per call.
create or replace function queue.purge_history(max_rows int default 10000)
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    if purge_history.max_rows is null or purge_history.max_rows < 1 then
        raise exception 'max_rows must be at least 1, got %', coalesce(purge_history.max_rows::text, 'null') using errcode = '22023';
    end if;
    delete from queue.job_history as h
    where h.id in (
        select h2.id
        from queue.queues as q
        cross join lateral (
            select x.id
            from queue.job_history as x
            where x.queue_name = q.queue_name and x.finished_at < now() - q.retention
            order by x.finished_at
            limit purge_history.max_rows
        ) as h2
        limit purge_history.max_rows
    );
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

comment on function queue.purge_history(
    int
) is 'Deletes up to max_rows finished jobs older than their queue''s retention (oldest first). Returns how many; call again until 0.';

-- purge_history_batches: the queue-purge housekeeping; commits after each batch.
-- A procedure that commits cannot be security definer nor carry `set search_path` (PostgreSQL
-- forbids transaction control there), so this one is an invoker procedure with fully
-- qualified names that only calls definer functions; execute is granted to no end-user role.
create or replace procedure queue.purge_history_batches(batch_size int default 5000, max_batches int default 1000)
language plpgsql
as $$
declare
    v_deleted int;
    v_batches int := 0;
begin
    loop
        v_deleted := queue.purge_history(purge_history_batches.batch_size);
        v_batches := v_batches + 1;
        commit;
        exit when v_deleted < purge_history_batches.batch_size or v_batches >= purge_history_batches.max_batches;
    end loop;
    perform queue.purge_worker_sessions();
    commit;
end
$$;

comment on procedure queue.purge_history_batches (int, int) is
'Purges finished jobs past their queue''s retention in batches of batch_size, committing after each (short locks, no long transaction), at most max_batches per call; then forgets worker sessions silent for a day. Run every 5 minutes by pg_cron (queue-purge). Call it outside a transaction block.';

-- purge_worker_sessions: forgets worker sessions that stopped heartbeating long ago.
create or replace function queue.purge_worker_sessions(max_age interval default '1 day')
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    delete from queue.worker_sessions as w
    where w.last_seen_at < now() - purge_worker_sessions.max_age
        and not exists (
            select from queue.jobs as j where j.status = 'running' and j.worker_id = w.worker_id
        );
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

comment on function queue.purge_worker_sessions(interval) is
'Deletes worker sessions (queue.workers) not seen for max_age that hold no running job. Returns how many.';

-- trim_cron_history: pg_cron never trims cron.job_run_details; this trims Kyu's own runs.
create or replace function queue.trim_cron_history(keep interval default '7 days', max_rows int default 100000)
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    if queue._cron_version() is null then
        return 0;
    end if;
    delete from cron.job_run_details as d
    where d.runid in (
        select d2.runid
        from cron.job_run_details as d2
        where d2.end_time < now() - trim_cron_history.keep
            and (
                d2.jobid in (select j.jobid from cron.job as j where j.jobname like 'queue-%')
                -- runs of Kyu entries since unscheduled
                or (
                    d2.command ~ '^(select|call) queue\.'
                    and not exists (select from cron.job as j where j.jobid = d2.jobid)
                )
            )
        order by d2.runid
        limit trim_cron_history.max_rows
    );
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

comment on function queue.trim_cron_history(interval, int) is
'Deletes up to max_rows cron.job_run_details rows older than keep that belong to Kyu''s pg_cron entries (queue-...); other entries'' runs are left to their owners. Returns how many. Run hourly by pg_cron (queue-cron-trim).';

-- Register housekeeping now where pg_cron is installed (a notice and nothing else where not).
do $$
begin
    perform queue.sync_cron_jobs();
end
$$;

-- ---- sql/queue/72_history_partitions.sql ----
-- History partitions: one partition of queue.job_history per UTC day of finished_at, created
-- a few days ahead and dropped whole once every queue's retention has passed (pg_cron
-- queue-partitions, hourly). Rows of queues with a shorter retention go by row (purge_history).
-- Dropping a day is a catalog change, not a delete: make bench-backlog drops a day of 1M rows.
-- Partition DDL takes a short ACCESS EXCLUSIVE lock on queue.job_history; these functions wait
-- at most lock_timeout for it and otherwise leave the work to the next run.

-- _history_partitions: the partitions of queue.job_history with the end of their range.
create or replace function queue._history_partitions()
returns table (partition_name text, upper_bound timestamptz, is_default boolean)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- the bound reads FOR VALUES FROM (...) TO ('<timestamptz>'), or DEFAULT
    return query
    select
        c.relname::text,
        (regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz,
        pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
    from pg_catalog.pg_inherits as i
    join pg_catalog.pg_class as c on c.oid = i.inhrelid
    where i.inhparent = 'queue.job_history'::regclass
    order by 2 nulls last;
end
$$;

comment on function queue._history_partitions() is
'Private: the partitions of queue.job_history, each with the end of its finished_at range (null for the default partition).';

-- _create_history_partition: the partition for one UTC day, unless a partition covers it.
create or replace function queue._create_history_partition(day date)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_name text := 'job_history_p' || to_char(_create_history_partition.day, 'YYYYMMDD');
    v_from timestamptz := _create_history_partition.day::timestamp at time zone 'UTC';
begin
    if to_regclass('queue.' || v_name) is not null then
        return null;
    end if;
    -- built beside the table, then attached: attach locks queue.job_history only against other
    -- DDL (share update exclusive), and jobs of that day that landed in the default partition
    -- while housekeeping was behind move into their day first
    execute format(
        'create table queue.%I (like queue.job_history including defaults including constraints)', v_name
    );
    execute format(
        'with moved as (delete from queue.job_history_default as d where d.finished_at >= %L and d.finished_at < %L returning d.*)
         insert into queue.%I select * from moved',
        v_from, v_from + interval '1 day', v_name
    );
    -- row level security on, like every table in queue (90_security.sql); no policy: a
    -- partition is read through queue.job_history, whose policies apply
    execute format('alter table queue.%I enable row level security', v_name);
    execute format(
        'alter table queue.job_history attach partition queue.%I for values from (%L) to (%L)',
        v_name, v_from, v_from + interval '1 day'
    );
    execute format(
        'comment on table queue.%I is %L',
        v_name, format('Jobs finished on %s (UTC); a partition of queue.job_history.', _create_history_partition.day)
    );
    return v_name;
exception
    when invalid_object_definition then
        -- 42P17: another partition (the pre-partitioning history) already covers the day
        return null;
end
$$;

comment on function queue._create_history_partition(date) is
'Private: creates queue.job_history_pYYYYMMDD for one UTC day of finished_at, moving that day''s rows out of the default partition; returns its name, or null when a partition already covers the day.';

-- maintain_history_partitions: creates days ahead, drops days past every queue's retention.
create or replace function queue.maintain_history_partitions(days_ahead int default 3)
returns setof text
language plpgsql
volatile
security definer
set search_path = ''
-- partition DDL queues behind long readers of history and every insert queues behind it:
-- give up after a moment and let the next hourly run try again
set lock_timeout = '2s'
as $$
declare
    v_keep interval;
    v_day date;
    v_made text;
    v_part record;
begin
    if maintain_history_partitions.days_ahead is null or maintain_history_partitions.days_ahead not between 0 and 60 then
        raise exception 'days_ahead must be between 0 and 60, got %', coalesce(maintain_history_partitions.days_ahead::text, 'null')
            using errcode = '22023';
    end if;

    -- ahead: today and the next days_ahead days (UTC), and any earlier day whose jobs
    -- landed in the default partition while housekeeping was behind
    for v_day in
        select distinct (d.finished_at at time zone 'UTC')::date
        from queue.job_history_default as d
        union
        select d::date
        from generate_series(
            (now() at time zone 'UTC')::date,
            (now() at time zone 'UTC')::date + maintain_history_partitions.days_ahead,
            interval '1 day'
        ) as d
        order by 1
    loop
        begin
            v_made := queue._create_history_partition(v_day);
            if v_made is not null then
                return next 'created ' || v_made;
            end if;
        exception
            when lock_not_available then
                return next format('skipped %s: queue.job_history is busy (lock_timeout)', v_day);
        end;
    end loop;

    -- behind: a partition goes once its newest possible row is past the longest retention
    select coalesce(max(q.retention), interval '7 days') into v_keep from queue.queues as q;
    for v_part in
        select p.partition_name
        from queue._history_partitions() as p
        where not p.is_default and p.upper_bound <= now() - v_keep
        order by p.upper_bound
    loop
        begin
            execute format('drop table queue.%I', v_part.partition_name);
            return next 'dropped ' || v_part.partition_name;
        exception
            when lock_not_available then
                return next format('skipped dropping %s: queue.job_history is busy (lock_timeout)', v_part.partition_name);
        end;
    end loop;
end
$$;

comment on function queue.maintain_history_partitions(int) is
'Creates the partitions of queue.job_history for today and the next days_ahead days (UTC), and drops every partition whose whole range is older than the longest queue retention. Returns what it did, one line each. Run hourly by pg_cron (queue-partitions); safe to run any time.';

-- Partitions for the coming days now, so the first jobs finished land in their day.
select queue.maintain_history_partitions();

-- ---- sql/queue/73_jobs_storage.sql ----
-- Hot-table storage: queue.jobs holds live jobs only, so after a burst it is nearly empty, but
-- its indexes keep the pages the burst needed (vacuum frees them for reuse, never returns
-- them): 137 MB of indexes for an empty table after three 200k drains (make bench-backlog).
-- maintain_jobs_storage (pg_cron queue-storage, every 5 minutes) rebuilds them once the table
-- is nearly empty, when a rebuild costs milliseconds.

-- maintain_jobs_storage: rebuilds queue.jobs' indexes when they are large and the table small.
create or replace function queue.maintain_jobs_storage(
    max_live_rows int default 10000,
    min_index_bytes bigint default 1048576
)
returns text
language plpgsql
volatile
security definer
set search_path = ''
-- reindex blocks writers (and planning of readers) while it runs: a few milliseconds for
-- 10,000 rows, but never queue behind a long transaction for longer than this
set lock_timeout = '200ms'
as $$
declare
    v_index_bytes bigint := pg_catalog.pg_indexes_size('queue.jobs');
    v_heap_bytes bigint := pg_catalog.pg_relation_size('queue.jobs');
    v_live int;
    v_started timestamptz := clock_timestamp();
begin
    if maintain_jobs_storage.max_live_rows is null or maintain_jobs_storage.max_live_rows < 0 then
        raise exception 'max_live_rows must be 0 or more, got %', coalesce(maintain_jobs_storage.max_live_rows::text, 'null')
            using errcode = '22023';
    end if;
    if v_index_bytes < coalesce(maintain_jobs_storage.min_index_bytes, 0) then
        return format('indexes at %s: nothing to do', pg_catalog.pg_size_pretty(v_index_bytes));
    end if;
    -- the rebuild reads the heap: only when vacuum has emptied it of the burst's dead rows
    if v_heap_bytes > 64 * 1048576 then
        return format('heap at %s: waiting for vacuum', pg_catalog.pg_size_pretty(v_heap_bytes));
    end if;
    select count(*)::int into v_live
    from (select from queue.jobs as j limit maintain_jobs_storage.max_live_rows + 1) as l;
    if v_live > maintain_jobs_storage.max_live_rows then
        return format('over %s live jobs: not now', maintain_jobs_storage.max_live_rows);
    end if;
    begin
        reindex table queue.jobs;
    exception
        when lock_not_available then
            return 'queue.jobs busy (lock_timeout): next time';
    end;
    return format(
        'rebuilt the indexes of %s live jobs: %s -> %s in %s ms',
        v_live,
        pg_catalog.pg_size_pretty(v_index_bytes),
        pg_catalog.pg_size_pretty(pg_catalog.pg_indexes_size('queue.jobs')),
        round(extract(epoch from clock_timestamp() - v_started) * 1000)
    );
end
$$;

comment on function queue.maintain_jobs_storage(int, bigint) is
'Rebuilds the indexes of queue.jobs (REINDEX TABLE) when they take at least min_index_bytes while the table holds at most max_live_rows jobs and vacuum has emptied its heap, giving back what a burst left. Waits at most 200 ms for its lock. Returns what it did. Run every 5 minutes by pg_cron (queue-storage).';

-- ---- sql/queue/75_job_views.sql ----
-- Reading jobs wherever they live (queue.jobs while waiting or running, queue.job_history once
-- finished): the views all_jobs and dead_letter, get_job (one job) and list_jobs (filtered).

-- all_jobs: every job wherever it lives now.
create or replace view queue.all_jobs as
select
    j.id,
    j.job_type,
    j.queue_name,
    j.status,
    j.priority,
    j.payload,
    j.attempt,
    j.max_attempts,
    j.unique_key,
    j.owner_id,
    j.worker_id,
    j.errors,
    j.errors -> -1 ->> 'error' as last_error,
    null::jsonb as result,
    j.progress,
    j.run_at,
    j.created_at,
    j.started_at,
    null::timestamptz as finished_at,
    j.lease_expires_at,
    j.public_error,
    j.parent_id,
    array(
        select k.id
        from (
            select c.id from queue.jobs as c
            where c.parent_id = j.id
            union all
            select c.id from queue.job_history as c
            where c.parent_id = j.id
        ) as k
        order by k.id
    ) as children,
    j.releases,
    j.released_at,
    j.released_by
from queue.jobs as j
union all
select
    h.id,
    h.job_type,
    h.queue_name,
    h.status,
    h.priority,
    h.payload,
    h.attempt,
    h.max_attempts,
    h.unique_key,
    h.owner_id,
    h.worker_id,
    h.errors,
    h.errors -> -1 ->> 'error' as last_error,
    h.result,
    h.progress,
    h.run_at,
    h.created_at,
    h.started_at,
    h.finished_at,
    null::timestamptz as lease_expires_at,
    h.public_error,
    h.parent_id,
    array(
        select k.id
        from (
            select c.id from queue.jobs as c
            where c.parent_id = h.id
            union all
            select c.id from queue.job_history as c
            where c.parent_id = h.id
        ) as k
        order by k.id
    ) as children,
    h.releases,
    h.released_at,
    h.released_by
from queue.job_history as h;

comment on view queue.all_jobs is
'Live and finished jobs in one shape (live ones from queue.jobs, finished from queue.job_history), with the chain (parent_id, children: the ids of the jobs it enqueued through enqueue_child_jobs) and releases (how many, when, by which worker).';

create or replace view queue.dead_letter as
select
    h.id,
    h.job_type,
    h.queue_name,
    h.priority,
    h.payload,
    h.attempt,
    h.max_attempts,
    h.errors -> -1 ->> 'error' as last_error,
    h.errors,
    h.owner_id,
    h.created_at,
    h.finished_at as died_at
from queue.job_history as h
where h.status = 'dead';

comment on view queue.dead_letter is 'Dead jobs (attempts spent or a permanent error), newest last; replay one with queue.retry_job(id).';

-- get_job: one job with its status, attempts, errors, result and timings.
create or replace function queue.get_job(job_id bigint)
returns queue.all_jobs
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_row queue.all_jobs;
begin
    if get_job.job_id is null then
        raise exception 'job_id is required' using errcode = '22023';
    end if;
    select a.* into v_row from queue.all_jobs as a where a.id = get_job.job_id;
    if not found then
        raise exception 'job % not found (never enqueued, or purged after its queue''s retention)', get_job.job_id
            using errcode = 'P0002';
    end if;
    return v_row;
end
$$;

comment on function queue.get_job(
    bigint
) is 'One job wherever it lives now (waiting, running or finished): status, attempts, every attempt''s error, result, progress, timings, its parent and children, and its releases.';

-- list_jobs: live and finished jobs with filters, newest first.
create or replace function queue.list_jobs(
    status queue.job_status default null,
    job_type text default null,
    queue_name text default null,
    priority int default null,
    created_after timestamptz default null,
    created_before timestamptz default null,
    payload_contains jsonb default null,
    lim int default 100,
    off int default 0
)
returns setof queue.all_jobs
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if list_jobs.lim is null or list_jobs.lim not between 1 and 10000 then
        raise exception 'lim must be between 1 and 10000, got %', coalesce(list_jobs.lim::text, 'null')
            using errcode = '22023';
    elsif list_jobs.off is null or list_jobs.off < 0 then
        raise exception 'off must be 0 or more, got %', coalesce(list_jobs.off::text, 'null') using errcode = '22023';
    elsif list_jobs.payload_contains is not null and jsonb_typeof(list_jobs.payload_contains) <> 'object' then
        raise exception 'payload_contains must be a JSON object, got %', jsonb_typeof(list_jobs.payload_contains)
            using errcode = '22023';
    end if;
    -- newest first by id (ids follow enqueue order): a merge of both primary keys, backwards
    return query
    select a.*
    from queue.all_jobs as a
    where (list_jobs.status is null or a.status = list_jobs.status)
        and (list_jobs.job_type is null or a.job_type = list_jobs.job_type)
        and (list_jobs.queue_name is null or a.queue_name = list_jobs.queue_name)
        and (list_jobs.priority is null or a.priority = list_jobs.priority)
        and (list_jobs.created_after is null or a.created_at >= list_jobs.created_after)
        and (list_jobs.created_before is null or a.created_at < list_jobs.created_before)
        and (list_jobs.payload_contains is null or a.payload @> list_jobs.payload_contains)
    order by a.id desc
    limit list_jobs.lim
    offset list_jobs.off;
end
$$;

comment on function queue.list_jobs(queue.job_status, text, text, int, timestamptz, timestamptz, jsonb, int, int) is
'Lists live and finished jobs (queue.all_jobs), newest first, filtered by status, job type, queue, priority, created_at in [created_after, created_before), and payload containment (payload @> payload_contains); lim (1-10000) rows from offset off.';

-- ---- sql/queue/80_monitor.sql ----
-- Monitoring in SQL: queue_stats (per queue now), workers, schedules (pg_cron entries and their
-- last runs), stats_history snapshots and health() (one jsonb verdict with its reasons).
-- Reading jobs themselves (all_jobs, dead_letter, get_job, list_jobs) is 75_job_views.sql.
-- Cost of queue_stats (measured with 1M finished jobs, 50k of them dead, 20k live: ~25 ms): one
-- pass over the hot table, the dead letter counted from its own partial index, and the last
-- hour of history per queue through job_history_queue_finished_idx.

-- queue_stats: one row per queue.
create or replace view queue.queue_stats as
with live as (
    -- one pass over the hot table
    select
        j.queue_name,
        count(*) filter (where j.status = 'pending' and j.run_at <= now()) as waiting,
        count(*) filter (where j.status = 'pending' and j.run_at > now()) as scheduled,
        count(*) filter (where j.status = 'running') as running,
        count(*) filter (where j.status = 'retrying') as retrying,
        -- clamped to 100 years: a row with run_at = -infinity (written before the API refused it,
        -- or by hand) must not make now() - run_at fail for every reader of this view
        now() - min(greatest(j.run_at, now() - interval '100 years'))
        filter (where j.status in ('pending', 'retrying') and j.run_at <= now()) as oldest_waiting_age
    from queue.jobs as j
    group by j.queue_name
),

dead as (
    -- an index-only scan of job_history_dead_queue_idx
    select
        x.queue_name,
        count(*) as dead
    from queue.job_history as x
    where x.status = 'dead'
    group by x.queue_name
)

select
    q.queue_name,
    coalesce(l.waiting, 0)::int as waiting,
    coalesce(l.scheduled, 0)::int as scheduled,
    coalesce(l.running, 0)::int as running,
    coalesce(l.retrying, 0)::int as retrying,
    coalesce(d.dead, 0)::int as dead,
    coalesce(h.completed, 0)::int as completed_last_hour,
    coalesce(h.failed, 0)::int as failed_last_hour,
    l.oldest_waiting_age,
    h.wait_p50_seconds,
    h.wait_p95_seconds,
    h.run_p50_seconds,
    h.run_p95_seconds,
    round(coalesce(h.completed + h.failed, 0) / 60.0, 2) as jobs_per_minute,
    round(h.failed::numeric / nullif(h.completed + h.failed, 0), 4) as failure_rate,
    q.paused
from queue.queues as q
left join live as l on q.queue_name = l.queue_name
left join dead as d on q.queue_name = d.queue_name
left join lateral (
    select
        count(*) filter (where x.status = 'completed') as completed,
        count(*) filter (where x.status = 'dead') as failed,
        percentile_cont(0.5) within group (order by t.wait_seconds) as wait_p50_seconds,
        percentile_cont(0.95) within group (order by t.wait_seconds) as wait_p95_seconds,
        percentile_cont(0.5) within group (order by t.run_seconds) as run_p50_seconds,
        percentile_cont(0.95) within group (order by t.run_seconds) as run_p95_seconds
    from queue.job_history as x
    cross join
        lateral (
            values (
                -- due to first start: run_at is the due time of a first attempt; a retried job's
                -- run_at was moved by its backoff, so its wait counts from creation
                -- (rows with an infinite time are left out rather than break the figure)
                case
                    when isfinite(x.run_at) and isfinite(x.started_at)
                        then
                            greatest(0, extract(epoch from x.started_at - case when x.attempt <= 1 then x.run_at else x.created_at end))
                end,
                -- handler run time, from jobs that finished on their first attempt (a retried
                -- job's started_at..finished_at includes its backoff)
                case
                    when x.status = 'completed' and x.attempt = 1 and isfinite(x.started_at)
                        then extract(epoch from x.finished_at - x.started_at)
                end
            )
        ) as t (wait_seconds, run_seconds)
    where
        x.queue_name = q.queue_name
        and x.finished_at > now() - interval '1 hour'
        and x.status in ('completed', 'dead')
) as h on true;

comment on view queue.queue_stats is
'Per queue now (robust to any row: an infinite run_at counts as waited 100 years and is left out of the percentiles): waiting (pending and due), scheduled (pending, run_at ahead), running, retrying, dead (in the dead letter); over the last hour: completed, failed (ended dead), p50/p95 wait (due to first start) and run (first-attempt completions) in seconds, jobs_per_minute (finished), failure_rate (dead / finished); oldest_waiting_age of due pending or retrying jobs.';

-- workers: worker processes from their heartbeats, with the jobs they hold.
create or replace view queue.workers as
with r as (
    select
        j.worker_id,
        count(*) as jobs_in_flight,
        min(j.lease_expires_at) as oldest_lease_expires_at
    from queue.jobs as j
    where j.status = 'running'
    group by j.worker_id
)

select
    coalesce(w.worker_id, r.worker_id) as worker_id,
    w.host,
    w.pid,
    w.started_at,
    w.last_seen_at as last_heartbeat,
    coalesce(r.jobs_in_flight, 0)::int as jobs_in_flight,
    coalesce(w.last_seen_at > now() - interval '1 minute', false) as alive,
    r.oldest_lease_expires_at,
    w.metadata,
    (w.metadata ->> 'connections')::int as connections,
    (w.metadata ->> 'max_connections')::int as max_connections,
    w.metadata ->> 'degraded' as degraded
from queue.worker_sessions as w
full join r on w.worker_id = r.worker_id;

comment on view queue.workers is
'Worker processes: id, host, pid, start, last heartbeat, running jobs held; alive = heartbeat in the last minute (the worker beats every 10 s); connections the worker holds and its budget (max_connections); degraded = why it cannot serve all its job types (e.g. every handler thread stuck past its timeout), null when it can. A worker holding jobs without ever heartbeating appears with null host and heartbeat.';

-- _cron_jobs: Kyu's pg_cron entries (named queue-...) with their last run; empty without pg_cron.
create or replace function queue._cron_jobs()
returns table (
    jobid bigint,
    jobname text,
    schedule text,
    command text,
    active boolean,
    last_run_started_at timestamptz,
    last_run_finished_at timestamptz,
    last_run_status text,
    last_run_message text
)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if queue._cron_version() is null then
        return;
    end if;
    return query
    with mine as (
        select j.jobid, j.jobname::text as jobname, j.schedule, j.command, j.active
        from cron.job as j
        where j.jobname like 'queue-%'
    ),
    last_run as (
        select distinct on (d.jobid) d.jobid, d.start_time, d.end_time, d.status, d.return_message
        from cron.job_run_details as d
        where d.jobid in (select m.jobid from mine as m)
        order by d.jobid, d.runid desc
    )
    select m.jobid, m.jobname, m.schedule, m.command, m.active,
        r.start_time, r.end_time, r.status, r.return_message
    from mine as m
    left join last_run as r on r.jobid = m.jobid;
end
$$;

comment on function queue._cron_jobs() is
'Private: Kyu''s pg_cron entries (jobname queue-...) with the start, end, status and message of their last run; no rows when pg_cron is not installed.';

-- schedules: Kyu's pg_cron entries, recurring and housekeeping, with their last run.
create or replace view queue.schedules as
select
    coalesce(r.name, c.jobname) as name,
    case when c.jobname like 'queue-job:%' or r.name is not null then 'recurring' else 'housekeeping' end as kind,
    coalesce(c.schedule, r.schedule) as schedule,
    r.job_type,
    r.queue_name,
    r.priority,
    r.payload,
    coalesce(c.active, false) as active,
    c.jobid,
    c.command,
    c.last_run_started_at,
    c.last_run_finished_at,
    c.last_run_status,
    c.last_run_message
from queue.recurring_jobs as r
full join queue._cron_jobs() as c on c.jobname = 'queue-job:' || r.name;

comment on view queue.schedules is
'Kyu''s pg_cron entries: recurring jobs (queue.schedule_job; kind recurring) and housekeeping (kind housekeeping), with schedule, job type, whether pg_cron runs it (active: false also when the entry is missing) and the start, end, status and message of the last run from cron.job_run_details.';

-- snapshot_stats: the queue-stats housekeeping: one stats_history row per queue, trimmed to keep.
create or replace function queue.snapshot_stats(keep interval default '7 days')
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    insert into queue.stats_history (
        captured_at, queue_name, waiting, scheduled, running, retrying, dead, completed_last_hour,
        failed_last_hour, oldest_waiting_age, wait_p50_seconds, wait_p95_seconds, run_p50_seconds,
        run_p95_seconds, jobs_per_minute, failure_rate
    )
    select
        now(), s.queue_name, s.waiting, s.scheduled, s.running, s.retrying, s.dead, s.completed_last_hour,
        s.failed_last_hour, s.oldest_waiting_age, s.wait_p50_seconds, s.wait_p95_seconds, s.run_p50_seconds,
        s.run_p95_seconds, s.jobs_per_minute, s.failure_rate
    from queue.queue_stats as s
    on conflict on constraint stats_history_pkey do nothing;
    get diagnostics v_count = row_count;
    delete from queue.stats_history as h where h.captured_at < now() - snapshot_stats.keep;
    return v_count;
end
$$;

comment on function queue.snapshot_stats(interval) is
'Appends queue.queue_stats to queue.stats_history (one row per queue, captured_at = now()) and deletes snapshots older than keep. Returns the rows added. Run every minute by pg_cron (queue-stats).';

-- The checks behind health(): one function each, returning its findings as (level, reason) rows,
-- level unhealthy or degraded, in the order the reasons are listed.

-- _health_queues: a backlog or a failure rate over the thresholds, per queue that is not paused.
create or replace function queue._health_queues(
    stats queue.queue_stats[],
    max_wait interval,
    max_failure_rate numeric
)
returns table (level text, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_row record;
begin
    for v_row in select s.* from unnest(_health_queues.stats) as s where not s.paused loop
        if v_row.oldest_waiting_age > _health_queues.max_wait * 6 then
            level := 'unhealthy';
            reason := format(
                'queue %s: oldest waiting job has waited %s (over 6 x %s)',
                v_row.queue_name, date_trunc('second', v_row.oldest_waiting_age), _health_queues.max_wait
            );
            return next;
        elsif v_row.oldest_waiting_age > _health_queues.max_wait then
            level := 'degraded';
            reason := format(
                'queue %s: oldest waiting job has waited %s (over %s)',
                v_row.queue_name, date_trunc('second', v_row.oldest_waiting_age), _health_queues.max_wait
            );
            return next;
        end if;
        if v_row.failure_rate > _health_queues.max_failure_rate
            and v_row.completed_last_hour + v_row.failed_last_hour >= 10 then
            level := 'degraded';
            reason := format(
                'queue %s: %s%% of the jobs finished in the last hour died (%s of %s; over %s%%)',
                v_row.queue_name, round(v_row.failure_rate * 100, 1), v_row.failed_last_hour,
                v_row.completed_last_hour + v_row.failed_last_hour, round(_health_queues.max_failure_rate * 100, 1)
            );
            return next;
        end if;
    end loop;
end
$$;

comment on function queue._health_queues(queue.queue_stats[], interval, numeric) is
'Private check of health(): per queue that is not paused (stats in queue order), unhealthy when the oldest waiting job waited over 6 x max_wait, degraded over max_wait, and degraded when over max_failure_rate of 10+ jobs finished in the last hour died.';

-- _health_workers: jobs due in an unpaused queue with nobody heartbeating; live workers that
-- report themselves degraded.
create or replace function queue._health_workers(worker_timeout interval)
returns table (level text, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_waiting bigint;
begin
    return query
    select 'degraded', format('worker %s is degraded: %s', w.worker_id, w.metadata ->> 'degraded')
    from queue.worker_sessions as w
    where w.last_seen_at > now() - _health_workers.worker_timeout
        and w.metadata ->> 'degraded' is not null
    order by w.worker_id;
    if exists (select from queue.worker_sessions as w where w.last_seen_at > now() - _health_workers.worker_timeout) then
        return;
    end if;
    select count(*) into v_waiting
    from queue.jobs as j
    join queue.queues as q on q.queue_name = j.queue_name
    where j.status in ('pending', 'retrying') and j.run_at <= now() and not q.paused;
    if v_waiting > 0 then
        level := 'unhealthy';
        reason := format(
            'no live workers (no heartbeat in the last %s) while %s jobs wait', _health_workers.worker_timeout, v_waiting
        );
        return next;
    end if;
end
$$;

comment on function queue._health_workers(interval) is
'Private check of health(): unhealthy when jobs are due in a queue that is not paused and no worker heartbeated within worker_timeout; degraded for each live worker whose heartbeat says it is degraded (metadata degraded).';

-- _health_leases: leases nobody reaps, so housekeeping is not running.
create or replace function queue._health_leases()
returns table (level text, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_expired bigint;
begin
    select count(*) into v_expired
    from queue.jobs as j
    where j.status = 'running' and j.lease_expires_at < now() - interval '3 minutes';
    if v_expired > 0 then
        level := 'degraded';
        reason := format(
            '%s running jobs have leases that expired over 3 minutes ago and were not reaped (is queue-reap running?)',
            v_expired
        );
        return next;
    end if;
end
$$;

comment on function queue._health_leases() is
'Private check of health(): degraded when running jobs hold leases that expired over 3 minutes ago (queue-reap is not running).';

-- _housekeeping_missing: the housekeeping entries pg_cron does not run (all of them without pg_cron).
create or replace function queue._housekeeping_missing()
returns text[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if queue._cron_version() is null then
        return array(select h.jobname from queue._housekeeping_jobs() as h);
    end if;
    return (
        select coalesce(array_agg(h.jobname order by h.jobname), '{}')
        from queue._housekeeping_jobs() as h
        where not exists (
            select from queue._cron_jobs() as c where c.jobname = h.jobname and c.active
        )
    );
end
$$;

comment on function queue._housekeeping_missing() is
'Private: the housekeeping pg_cron entries (queue-reap, ...) that are missing or inactive, by name; every one of them when pg_cron is not installed.';

-- _health_housekeeping: housekeeping not scheduled (no pg_cron, missing entries) or failing.
create or replace function queue._health_housekeeping()
returns table (level text, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_missing text[];
    v_failed text[];
begin
    level := 'degraded';
    if queue._cron_version() is null then
        reason := format('housekeeping is not scheduled: pg_cron is not installed in database %s', current_database());
        return next;
        return;
    end if;
    v_missing := queue._housekeeping_missing();
    if cardinality(v_missing) > 0 then
        reason := format(
            'housekeeping is not scheduled: %s missing or inactive in pg_cron (run select queue.sync_cron_jobs())',
            array_to_string(v_missing, ', ')
        );
        return next;
    end if;
    select array_agg(format('%s at %s: %s', c.jobname, c.last_run_started_at, c.last_run_message) order by c.jobname)
    into v_failed
    from queue._cron_jobs() as c
    where c.last_run_status = 'failed'
        and c.jobname in (select h.jobname from queue._housekeeping_jobs() as h);
    if v_failed is not null then
        reason := 'housekeeping failed: ' || array_to_string(v_failed, '; ');
        return next;
    end if;
end
$$;

comment on function queue._health_housekeeping() is
'Private check of health(): degraded when housekeeping is not scheduled (pg_cron not installed, or queue-* entries missing or inactive) or its last run failed.';

-- _health_recurring_jobs: recurring jobs whose last run could not enqueue.
create or replace function queue._health_recurring_jobs()
returns table (level text, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select
        'degraded',
        format('recurring job %s failed at %s: %s', substr(c.jobname, 11), c.last_run_started_at, c.last_run_message)
    from queue._cron_jobs() as c
    where c.last_run_status = 'failed' and c.jobname like 'queue-job:%'
    order by c.jobname;
end
$$;

comment on function queue._health_recurring_jobs() is
'Private check of health(): degraded for each recurring job (pg_cron entry queue-job:<name>) whose last run failed.';

-- _health_breakers: external services whose circuit breaker is open.
create or replace function queue._health_breakers()
returns table (level text, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return query
    select
        'degraded',
        format('circuit breaker %s is open since %s (cool-down %s): %s', cb.service, cb.opened_at, cb.cooldown,
            coalesce(cb.last_error, 'no error recorded'))
    from queue.circuit_breakers as cb
    where cb.state = 'open' and cb.opened_at + cb.cooldown > now()
    order by cb.service;
end
$$;

comment on function queue._health_breakers() is
'Private check of health(): degraded for each circuit breaker that is open and still in its cool-down.';

-- health: one verdict for alerting, with every reason behind it (the checks above, in order).
create or replace function queue.health(
    max_wait interval default '5 minutes',
    max_failure_rate numeric default 0.2,
    worker_timeout interval default '1 minute'
)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_stats queue.queue_stats[];
    v_unhealthy text[];
    v_degraded text[];
begin
    -- the stats once: the queue check and the per-queue figures share them
    select array_agg(s order by s.queue_name) into v_stats from queue.queue_stats as s;
    select
        coalesce(array_agg(c.reason order by c.n, c.ord) filter (where c.level = 'unhealthy'), '{}'),
        coalesce(array_agg(c.reason order by c.n, c.ord) filter (where c.level = 'degraded'), '{}')
    into v_unhealthy, v_degraded
    from (
        select 1, r.* from queue._health_queues(v_stats, health.max_wait, health.max_failure_rate) with ordinality as r
        union all
        select 2, r.* from queue._health_workers(health.worker_timeout) with ordinality as r
        union all
        select 3, r.* from queue._health_leases() with ordinality as r
        union all
        select 4, r.* from queue._health_housekeeping() with ordinality as r
        union all
        select 5, r.* from queue._health_recurring_jobs() with ordinality as r
        union all
        select 6, r.* from queue._health_breakers() with ordinality as r
    ) as c (n, level, reason, ord);

    return jsonb_build_object(
        'status', case
            when cardinality(v_unhealthy) > 0 then 'unhealthy'
            when cardinality(v_degraded) > 0 then 'degraded'
            else 'healthy'
        end,
        'reasons', to_jsonb(v_unhealthy || v_degraded),
        'checked_at', now(),
        'workers', (
            select jsonb_build_object(
                'live', count(*) filter (where w.last_seen_at > now() - health.worker_timeout),
                'known', count(*)
            )
            from queue.worker_sessions as w
        ),
        'housekeeping', jsonb_build_object(
            'pg_cron_version', array_to_string(queue._cron_version(), '.'),
            'missing', to_jsonb(queue._housekeeping_missing())
        ),
        'queues', (
            select coalesce(jsonb_object_agg(s.queue_name, jsonb_build_object(
                'waiting', s.waiting,
                'running', s.running,
                'retrying', s.retrying,
                'dead', s.dead,
                'oldest_waiting_seconds', round(extract(epoch from s.oldest_waiting_age), 3),
                'failure_rate', s.failure_rate,
                'jobs_per_minute', s.jobs_per_minute,
                'paused', s.paused
            )), '{}')
            from unnest(v_stats) as s
        )
    );
end
$$;

comment on function queue.health(interval, numeric, interval) is
'The queue''s health as jsonb {status, reasons, checked_at, workers, housekeeping, queues}. unhealthy: jobs wait with no live worker (no heartbeat within worker_timeout), or a backlog older than 6 x max_wait. degraded: a backlog older than max_wait, a failure rate over max_failure_rate (10+ finished in the last hour), unreaped expired leases, housekeeping not scheduled (no pg_cron, or queue-* entries missing) or failing, a recurring job whose last run failed, an open circuit breaker. Paused queues are not judged.';

-- ---- sql/queue/88_console.sql ----
-- The operator's console (python -m python_worker dashboard, and the CLI verbs beside it): what
-- the monitor views do not already give it. search_jobs (one page of jobs, keyset-paginated),
-- queue_policies, circuit_breaker_states, get_stats_history and discard_dead_jobs.

-- job_summary: a job as a listing shows it (everything but payload, errors and result). Created
-- once: the tenants upgrade runs this file again (for queue_policies)
do $$
begin
    create type queue.job_summary as (
        id bigint,
        job_type text,
        queue_name text,
        status queue.job_status,
        priority int,
        attempt int,
        max_attempts int,
        owner_id uuid,
        worker_id text,
        last_error text,
        progress jsonb,
        run_at timestamptz,
        created_at timestamptz,
        started_at timestamptz,
        finished_at timestamptz
    );
exception
    when duplicate_object then null;
end
$$;

comment on type queue.job_summary is
'A job as queue.search_jobs lists it: no payload, result or error history (queue.get_job has them), the last attempt''s error only.';

-- search_jobs: one page of live and finished jobs, newest first, continuing below before_id.
-- Keyset, not offset: a page is a backward walk of both primary keys (merged) from before_id,
-- so page 1,000 costs what page 1 costs. The filters sit on queue.all_jobs, outside its union,
-- so the planner pushes them into both legs and keeps the merge of the two index scans (a
-- WHERE inside a union leg stops that, and a page became a sort of the whole history: 390 ms
-- on a million rows). force_custom_plan plans each call with its values: a null filter drops
-- out, and a status excludes the table that cannot hold it (the status checks on jobs and
-- job_history), which a generic plan cannot do. Measured with 1,000,000 rows in history:
-- docs/benchmarks.md, "The console's jobs page". payload_contains and the created_at window
-- have no index: a filter that matches little walks far (the whole history for no match).
-- No payloads in the rows: a listing never shows them, and they are most of a row's bytes.
create or replace function queue.search_jobs(
    status queue.job_status default null,
    job_type text default null,
    queue_name text default null,
    owner_id uuid default null,
    created_after timestamptz default null,
    created_before timestamptz default null,
    payload_contains jsonb default null,
    before_id bigint default null,
    lim int default 50
)
returns setof queue.job_summary
language plpgsql
stable
security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
begin
    if search_jobs.lim is null or search_jobs.lim not between 1 and 1000 then
        raise exception 'lim must be between 1 and 1000, got %', coalesce(search_jobs.lim::text, 'null')
            using errcode = '22023', hint = 'Page through more with before_id => the last id of a page.';
    elsif search_jobs.payload_contains is not null and jsonb_typeof(search_jobs.payload_contains) <> 'object' then
        raise exception 'payload_contains must be a JSON object, got %', jsonb_typeof(search_jobs.payload_contains)
            using errcode = '22023', hint = 'Pass an object such as {"receipt_id": 42}; rows match when payload @> it.';
    elsif search_jobs.created_after >= search_jobs.created_before then
        raise exception 'created_after (%) must be before created_before (%)',
            search_jobs.created_after, search_jobs.created_before
            using errcode = '22023';
    end if;
    return query
    select
        a.id, a.job_type, a.queue_name, a.status, a.priority, a.attempt, a.max_attempts, a.owner_id,
        a.worker_id, a.last_error, a.progress, a.run_at, a.created_at, a.started_at, a.finished_at
    from queue.all_jobs as a
    where (search_jobs.before_id is null or a.id < search_jobs.before_id)
        and (search_jobs.status is null or a.status = search_jobs.status)
        and (search_jobs.job_type is null or a.job_type = search_jobs.job_type)
        and (search_jobs.queue_name is null or a.queue_name = search_jobs.queue_name)
        and (search_jobs.owner_id is null or a.owner_id = search_jobs.owner_id)
        and (search_jobs.created_after is null or a.created_at >= search_jobs.created_after)
        and (search_jobs.created_before is null or a.created_at < search_jobs.created_before)
        and (search_jobs.payload_contains is null or a.payload @> search_jobs.payload_contains)
    order by a.id desc
    limit search_jobs.lim;
end
$$;

comment on function queue.search_jobs(
    queue.job_status, text, text, uuid, timestamptz, timestamptz, jsonb, bigint, int
) is
'One page of live and finished jobs, newest first (ids follow enqueue order), without payloads: filtered by status, job type, queue, owner, created_at in [created_after, created_before) and payload containment (payload @> payload_contains); lim (1-1000) rows with ids below before_id. The next page is before_id => the last id returned. Cost is per page, not per offset.';

-- queue_policies: every queue's policy as create_queue set it, with its job types.
create or replace view queue.queue_policies as
select
    q.queue_name,
    q.paused,
    q.max_attempts,
    q.backoff_strategy,
    q.backoff_base,
    q.backoff_max,
    q.backoff_jitter,
    q.lease_seconds,
    q.retention,
    q.concurrency,
    q.rate_limit,
    q.rate_interval,
    q.aging_interval,
    coalesce(
        (
            select array_agg(jt.job_type order by jt.job_type) from queue.job_types as jt
            where jt.queue_name = q.queue_name
        ),
        '{}'
    ) as job_types,
    q.created_at,
    q.updated_at,
    -- tenants (27_owner_limits.sql, 37_fair_claim.sql); last, so an upgrade can replace the view
    q.owner_max_live_jobs,
    q.owner_enqueue_rate,
    q.owner_enqueue_interval,
    q.owner_limits_all,
    q.owner_concurrency,
    q.fair
from queue.queues as q;

comment on view queue.queue_policies is
'Each queue''s policy as queue.create_queue set it (attempts, backoff, lease, retention, concurrency, rate limit, priority aging, and per owner: live-job quota, enqueue rate, whether the quotas bind every caller, concurrency, fair claiming), whether it is paused, and the job types registered in it. Change a policy with queue.create_queue, pause with queue.pause_queue.';

-- circuit_breaker_states: each breaker with what claim_jobs makes of it now.
create or replace view queue.circuit_breaker_states as
select
    cb.service,
    case
        when cb.state = 'open' and cb.opened_at + cb.cooldown > now() then 'open'
        when cb.state = 'open' then 'half-open'
        else 'closed'
    end as state,
    cb.failures,
    cb.failure_threshold,
    cb.cooldown,
    cb.opened_at,
    case when cb.state = 'open' then cb.opened_at + cb.cooldown end as retry_at,
    cb.last_error,
    cb.updated_at,
    coalesce(
        (
            select array_agg(jt.job_type order by jt.job_type) from queue.job_types as jt
            where cb.service = any(jt.services)
        ),
        '{}'
    ) as job_types
from queue.circuit_breakers as cb;

comment on view queue.circuit_breaker_states is
'Shared circuit breakers as claim_jobs sees them now: open (jobs of the listed job_types are not claimed until retry_at), half-open (cool-down over: the next outcome reported through queue.report_service closes or reopens it) or closed; failures against failure_threshold and the last error.';

-- get_stats_history: the per-minute snapshots of queue_stats over a recent window, oldest first.
create or replace function queue.get_stats_history(
    since interval default '1 hour',
    queue_name text default null
)
returns setof queue.stats_history
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if get_stats_history.since is null or get_stats_history.since <= interval '0' then
        raise exception 'since must be a positive interval, got %', coalesce(get_stats_history.since::text, 'null')
            using errcode = '22023', hint = 'For example since => ''6 hours''; snapshots are kept 7 days.';
    end if;
    return query
    select s.*
    from queue.stats_history as s
    where s.captured_at > now() - get_stats_history.since
        and (get_stats_history.queue_name is null or s.queue_name = get_stats_history.queue_name)
    order by s.captured_at, s.queue_name;
end
$$;

comment on function queue.get_stats_history(interval, text) is
'Snapshots of queue.queue_stats taken in the last since (one row per queue per minute, written by pg_cron''s queue-stats), oldest first; one queue or all. Feeds the console''s throughput, failure-rate and wait charts.';

-- discard_dead_jobs: deletes dead jobs for good; returns the ids it deleted.
create or replace function queue.discard_dead_jobs(job_ids bigint[])
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if discard_dead_jobs.job_ids is null or cardinality(discard_dead_jobs.job_ids) = 0 then
        raise exception 'job_ids must hold at least one id, got %', coalesce(discard_dead_jobs.job_ids::text, 'null')
            using errcode = '22023';
    end if;
    -- only the dead letter: a job retried (or discarded) meanwhile is skipped and left out of the result
    return query
    delete from queue.job_history as h
    where h.id = any(discard_dead_jobs.job_ids) and h.status = 'dead'
    returning h.id;
end
$$;

comment on function queue.discard_dead_jobs(bigint[]) is
'Deletes the given jobs from the dead letter for good and returns the ids deleted. Ids that are not dead jobs (retried meanwhile, never dead, unknown) are skipped, not errors, so a bulk discard from a stale page cannot touch anything else.';

-- ---- sql/queue/90_security.sql ----
-- Security, in one place: roles, grants, RLS policies and the end-user API schema.
-- Model (Supabase's): the engine schema `queue` is not exposed through the Data API; every
-- function in it is security definer with search_path = '' and is executable only by the roles
-- granted below. anon gets nothing. authenticated reaches Kyu through `queue_public`
-- (invoker wrappers and a security_invoker view) and sees only its own jobs through RLS.
-- service_role does everything; queue_worker may claim, finish, heartbeat and enqueue follow-up
-- jobs as children of a job it holds, nothing else (no table: it sees a payload only by claiming
-- its job, and every later call about that job needs the claim's lease token).

do $$
begin
    if not exists (select from pg_roles where rolname = 'queue_worker') then
        create role queue_worker nologin;
    end if;
end
$$;

-- ---- the end-user API: queue.enqueue_user_job (definer) behind queue_public (invoker) ----

-- enqueue_user_job: an end user's enqueue: flagged job types only, owned by auth.uid().
create or replace function queue.enqueue_user_job(
    job_type text,
    payload jsonb default '{}',
    priority int default null,
    run_at timestamptz default null,
    unique_key text default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_owner uuid;
    v_type queue.job_types;
    v_max_payload int;
    v_id bigint;
begin
    v_owner := auth.uid();
    if v_owner is null then
        raise exception 'enqueueing a job needs a signed-in user (auth.uid() is null)' using errcode = '42501';
    end if;
    -- unknown and not-flagged types get the same answer: end users cannot probe the registry
    select jt.* into v_type
    from queue.job_types as jt
    where jt.job_type = enqueue_user_job.job_type and jt.user_enqueue;
    if not found then
        raise exception 'job type % is not available to end users', queue._shown(enqueue_user_job.job_type)
            using errcode = '42501',
            hint = 'An operator enables a type with queue.register_job_type(..., user_enqueue => true).';
    end if;
    if enqueue_user_job.priority < v_type.priority then
        raise exception 'priority % is more urgent than job type % allows end users (% to 100)',
            enqueue_user_job.priority, v_type.job_type, v_type.priority
            using errcode = '42501';
    end if;
    if length(enqueue_user_job.unique_key) > 255 then
        raise exception 'unique_key is % characters, over the limit of 255', length(enqueue_user_job.unique_key)
            using errcode = '22023', hint = 'Use a short key, e.g. a hash of what makes the job unique.';
    end if;
    -- end users have a payload cap of their own, below the engine's
    select s.max_user_payload_bytes into v_max_payload from queue.settings as s;
    if octet_length(enqueue_user_job.payload::text) > v_max_payload then
        raise exception 'payload is % bytes, over the cap of % bytes for end users (queue.settings.max_user_payload_bytes)',
            octet_length(enqueue_user_job.payload::text), v_max_payload
            using errcode = '22023', hint = 'Store large data elsewhere (a table, Storage) and pass its id in the payload.';
    end if;
    v_id := queue.enqueue_job(
        job_type => v_type.job_type,
        payload => coalesce(enqueue_user_job.payload, '{}'),
        priority => enqueue_user_job.priority,
        -- a past run_at means now: an end user cannot move ahead of jobs that waited longer
        run_at => case
            when enqueue_user_job.run_at < now() and isfinite(enqueue_user_job.run_at) then now()
            else enqueue_user_job.run_at
        end,
        -- keys are per user, so one user can neither learn nor block another's job
        unique_key => 'user:' || v_owner || ':' || enqueue_user_job.unique_key,
        owner_id => v_owner
    );
    -- the owner's quotas (live jobs, enqueue rate) after the insert, under the owner's lock: an
    -- error undoes the insert. A queue that binds every caller had them applied by enqueue_jobs.
    if not (select q.owner_limits_all from queue.queues as q where q.queue_name = v_type.queue_name) then
        perform queue._enforce_owner_limits(v_owner, v_type.job_type, v_type.queue_name, 1, true);
    end if;
    return v_id;
end
$$;

comment on function queue.enqueue_user_job(text, jsonb, int, timestamptz, text) is
'An end user''s enqueue (called through queue_public.enqueue_job): only job types registered with user_enqueue => true; the job is owned by auth.uid() whatever else is passed; priority may not be more urgent than the job type''s; unique_key (at most 255 characters) is scoped to the user; a past run_at means now, so a user cannot move ahead of jobs that waited longer (an infinite one is refused); the payload is capped by queue.settings.max_user_payload_bytes; the owner''s quotas of the queue and job type (live jobs, enqueue rate) apply, over them the error is 53400. The queue, attempts and backoff are the job type''s. Returns the job id.';

create schema if not exists queue_public;

comment on schema queue_public is
'Kyu''s end-user API (exposed through the Data API): enqueue_job and my_jobs. Everything else lives in the unexposed schema queue.';

-- enqueue_job: supabase.schema('queue_public').rpc('enqueue_job', {...}).
create or replace function queue_public.enqueue_job(
    job_type text,
    payload jsonb default '{}',
    priority int default null,
    run_at timestamptz default null,
    unique_key text default null
)
returns bigint
language sql
volatile
security invoker
set search_path = ''
as $$
    select queue.enqueue_user_job(
        job_type => enqueue_job.job_type,
        payload => enqueue_job.payload,
        priority => enqueue_job.priority,
        run_at => enqueue_job.run_at,
        unique_key => enqueue_job.unique_key
    )
$$;

comment on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) is
'Enqueues a job owned by the signed-in user and returns its id. Only job types an operator flagged for end users; priority 1 (urgent) to 100, no more urgent than the type''s default; run_at delays it; a unique_key the user already has waiting or running returns that job''s id.';

-- my_jobs: the signed-in user's jobs, live and finished; RLS decides which rows.
create or replace view queue_public.my_jobs
with (security_invoker = true)
as
select
    j.id,
    j.job_type,
    j.queue_name,
    j.status,
    j.priority,
    j.attempt,
    j.max_attempts,
    j.progress,
    null::jsonb as result,
    -- what the handler chose to tell the owner, or a generic line: never the raw error, a worker
    -- id or a host (those stay in errors, for operators). last_error is the same text, under the
    -- name clients written before public_error select
    case when j.status = 'retrying' then coalesce(j.public_error, 'The last attempt failed; the job will be retried.') end
        as last_error,
    case when j.status = 'retrying' then coalesce(j.public_error, 'The last attempt failed; the job will be retried.') end
        as public_error,
    j.parent_id,
    j.run_at,
    j.created_at,
    j.started_at,
    null::timestamptz as finished_at
from queue.jobs as j
where j.owner_id = (select auth.uid())
union all
select
    h.id,
    h.job_type,
    h.queue_name,
    h.status,
    h.priority,
    h.attempt,
    h.max_attempts,
    h.progress,
    h.result,
    case when h.status = 'dead' then coalesce(h.public_error, 'The job failed.') end as last_error,
    case when h.status = 'dead' then coalesce(h.public_error, 'The job failed.') end as public_error,
    h.parent_id,
    h.run_at,
    h.created_at,
    h.started_at,
    h.finished_at
from queue.job_history as h
where h.owner_id = (select auth.uid());

comment on view queue_public.my_jobs is
'The signed-in user''s jobs (waiting, running and finished until purged): status, attempts, progress, result, a public error (what the handler chose to say, e.g. PermanentError(public=...), or a generic line while retrying or dead; last_error is the same text, kept for older clients), the parent job and timings. No payloads, raw errors or worker ids.';

-- ---- privileges ----

revoke all on schema queue from public;
revoke all on all tables in schema queue from public, anon, authenticated, queue_worker;
revoke all on all sequences in schema queue from public, anon, authenticated, queue_worker;
revoke execute on all routines in schema queue from public, anon, authenticated, queue_worker;
alter default privileges in schema queue revoke execute on routines from public;

revoke all on schema queue_public from public;
revoke all on all tables in schema queue_public from public, anon;
revoke execute on all routines in schema queue_public from public, anon;
alter default privileges in schema queue_public revoke execute on routines from public;

-- RLS on every table: only the policies below let anyone but the owner and service_role in.
alter table queue.settings enable row level security;
alter table queue.queues enable row level security;
alter table queue.job_types enable row level security;
alter table queue.tiers enable row level security;
alter table queue.owner_tiers enable row level security;
alter table queue.owner_buckets enable row level security;
alter table queue.circuit_breakers enable row level security;
alter table queue.jobs enable row level security;
alter table queue.job_history enable row level security;
-- partitions are read through queue.job_history (its policies apply); the daily ones get row
-- level security from queue._create_history_partition as they are made
alter table queue.job_history_default enable row level security;
alter table queue.worker_sessions enable row level security;
alter table queue.recurring_jobs enable row level security;
alter table queue.stats_history enable row level security;

-- service_role: the whole engine, and the end-user API.
grant usage on schema queue to service_role;
grant all on all tables in schema queue to service_role;
grant all on all sequences in schema queue to service_role;
grant execute on all routines in schema queue to service_role;
grant usage on schema queue_public to service_role;
grant select on queue_public.my_jobs to service_role;
grant execute on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) to service_role;

-- queue_worker: the worker's calls only; it reads payloads through claim_jobs, never tables.
grant usage on schema queue to queue_worker;
grant execute on function
queue.claim_jobs(text, int, text[], text[], int),
queue.complete_job(bigint, text, jsonb, int, uuid),
queue.complete_jobs(bigint[], text, jsonb[], int[], uuid[]),
queue.fail_job(bigint, text, text, boolean, timestamptz, int, uuid, text),
queue.heartbeat(text, bigint[], text, int, jsonb, uuid[]),
queue.release_jobs(text, bigint[], uuid[]),
queue.report_progress(bigint, text, jsonb, uuid),
queue.report_service(text, boolean, text, int, interval)
to queue_worker;
-- handlers chain work (an email's receipts enqueue their OCR) only as children of the job they
-- hold: the owner is inherited and the types are the parent type's chains_to. Not enqueue_job,
-- which would let a worker create jobs for any owner at any priority.
grant execute on function
queue.enqueue_child_jobs(bigint, uuid, jsonb),
queue.enqueue_child_job(bigint, uuid, text, jsonb, int, timestamptz, text)
to queue_worker;

-- authenticated: the end-user API. queue_public.enqueue_job is invoker, so the user executes the
-- one definer function behind it; my_jobs is security_invoker, so the user needs the columns it
-- reads (never payload, unique_key, errors or worker_id) and RLS picks the user's own rows.
grant usage on schema queue_public to authenticated;
grant execute on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) to authenticated;
grant select on queue_public.my_jobs to authenticated;
grant usage on schema queue to authenticated;
grant execute on function queue.enqueue_user_job(text, jsonb, int, timestamptz, text) to authenticated;
grant select (
    id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, public_error, parent_id, progress,
    run_at, created_at, started_at
)
on queue.jobs to authenticated;
grant select (
    id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, public_error, parent_id, result,
    progress, run_at, created_at, started_at, finished_at
)
on queue.job_history to authenticated;

-- dropped first so this file runs again in an upgrade (supabase/migrations/*_tenants.sql)
drop policy if exists jobs_owner_reads on queue.jobs;
create policy jobs_owner_reads on queue.jobs
for select to authenticated
using (owner_id = (select auth.uid()));

drop policy if exists job_history_owner_reads on queue.job_history;
create policy job_history_owner_reads on queue.job_history
for select to authenticated
using (owner_id = (select auth.uid()));
