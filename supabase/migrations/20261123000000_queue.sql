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
    created_at timestamptz
);

comment on type queue.claimed_job is
'What claim_jobs hands a worker: the job, the attempt it now runs (1-based) and its lease deadline.';

-- ---- sql/queue/20_tables.sql ----
-- The queue's tables: policy (queues, job_types, tiers, circuit_breakers, settings), the hot
-- table of live jobs, the history of finished ones, and worker sessions.

create table queue.settings (
    singleton boolean primary key default true,
    max_payload_bytes int not null default 1048576,
    constraint settings_single_row check (singleton),
    constraint settings_max_payload_positive check (max_payload_bytes > 0)
);

comment on table queue.settings is 'Global settings (one row): the payload size cap for enqueue.';

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
    constraint queues_aging_positive check (aging_interval is null or aging_interval > interval '0')
);

comment on table queue.queues is
'Named queues and their policy: attempts, backoff, lease, retention, concurrency and rate limits, priority aging, paused.';
comment on column queue.queues.concurrency is 'At most this many running jobs across all workers; null = no limit.';
comment on column queue.queues.rate_limit is 'At most rate_limit starts per rate_interval (token bucket); null = no limit.';
comment on column queue.queues.aging_interval is 'A waiting job gains one priority step per aging_interval waited; null = off.';

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
    services text [] not null default '{}',
    description text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint job_types_name_format check (job_type ~ '^[A-Za-z][A-Za-z0-9_.:-]{0,99}$'),
    constraint job_types_priority_in_range check (priority between 1 and 100),
    constraint job_types_max_attempts_positive check (max_attempts is null or max_attempts >= 1),
    constraint job_types_timeout_positive check (timeout_seconds is null or timeout_seconds >= 1)
);

comment on table queue.job_types is
'Registry of job types: default queue and priority, per-type overrides of attempts and timeout, whether end users may enqueue it, and the external services it depends on (circuit breakers).';

create table queue.tiers (
    tier text primary key,
    priority_offset int not null,
    constraint tiers_offset_in_range check (priority_offset between -99 and 99)
);

comment on table queue.tiers is 'Customer tiers: a job owned by a user of this tier gets priority + priority_offset (lower runs sooner).';

insert into queue.tiers (tier, priority_offset)
values ('free', 0), ('pro', -10), ('enterprise', -20)
on conflict do nothing;

create table queue.owner_tiers (
    owner_id uuid primary key,
    tier text not null references queue.tiers (tier) on update cascade
);

comment on table queue.owner_tiers is 'Which tier each job owner (auth.uid()) is on; owners not listed get no offset.';

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
-- (heartbeats, progress).
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
    constraint jobs_live_status check (status in ('pending', 'running', 'retrying')),
    constraint jobs_priority_in_range check (priority between 1 and 100),
    constraint jobs_max_attempts_positive check (max_attempts >= 1),
    constraint jobs_running_has_lease check (
        (status = 'running') = (worker_id is not null and lease_expires_at is not null)
    )
) with (fillfactor = 80);

comment on table queue.jobs is 'Live jobs only (pending, running, retrying); finished jobs are in queue.job_history.';

-- claim_jobs reads waiting jobs of one queue in priority, run_at, id order.
create index jobs_queue_claim_idx on queue.jobs (queue_name, priority, run_at, id)
where status in ('pending', 'retrying');

-- claim_jobs over several unlimited queues reads one ordered stream.
create index jobs_claim_idx on queue.jobs (priority, run_at, id)
where status in ('pending', 'retrying');

-- concurrency counts and the lease reaper.
create index jobs_running_idx on queue.jobs (queue_name, lease_expires_at)
where status = 'running';

create unique index jobs_unique_key_idx on queue.jobs (unique_key)
where unique_key is not null;

create index jobs_owner_idx on queue.jobs (owner_id)
where owner_id is not null;

create table queue.job_history (
    id bigint primary key,
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
    constraint job_history_finished_status check (status in ('completed', 'cancelled', 'dead'))
);

comment on table queue.job_history is
'Finished jobs (completed, cancelled, dead) with result, every attempt''s error and timings; purged after the queue''s retention.';

-- retention purge per queue, oldest first
create index job_history_queue_finished_idx on queue.job_history (queue_name, finished_at);

create index job_history_dead_idx on queue.job_history (finished_at)
where status = 'dead';

create index job_history_owner_idx on queue.job_history (owner_id)
where owner_id is not null;

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

-- ---- sql/queue/30_enqueue.sql ----
-- Enqueueing: enqueue_job (one) and enqueue_jobs (many, one statement). Both go through
-- _resolve_jobs, which applies defaults (job type, then queue, then tier offset) and names
-- the first problem of each job, so single and bulk enqueue validate exactly alike.

-- _resolve_jobs: the jobs of a JSON array with every default applied, and what is wrong with each.
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
    problem text
)
language sql
stable
security definer
set search_path = ''
as $$
    select
        i.ord,
        i.j ->> 'job_type',
        q.queue_name,
        least(100, greatest(1, coalesce(i.priority, jt.priority) + coalesce(t.priority_offset, 0))),
        coalesce((i.j ->> 'run_at')::timestamptz, now()),
        coalesce(i.j -> 'payload', '{}'),
        coalesce(i.max_attempts, jt.max_attempts, q.max_attempts),
        i.j ->> 'unique_key',
        i.owner_id,
        (i.j ->> 'backoff_strategy')::queue.backoff_strategy,
        (i.j ->> 'backoff_base')::interval,
        (i.j ->> 'backoff_max')::interval,
        case
            when jsonb_typeof(i.j) <> 'object'
                then format('each job must be a JSON object, got %s', jsonb_typeof(i.j))
            when i.bad_key is not null
                then format('unknown key %s (expected job_type, payload, queue_name, priority, run_at, max_attempts, unique_key, owner_id, backoff_strategy, backoff_base, backoff_max)', i.bad_key)
            when i.j ->> 'job_type' is null
                then 'job_type is required'
            when jt.job_type is null
                then format('unknown job type: %s', i.j ->> 'job_type')
            when q.queue_name is null
                then format('unknown queue: %s', i.j ->> 'queue_name')
            when i.j ? 'priority' and jsonb_typeof(i.j -> 'priority') <> 'null' and i.priority is null
                then format('priority must be an integer from 1 to 100, got %s', i.j -> 'priority')
            when i.priority not between 1 and 100
                then format('priority must be between 1 and 100, got %s', i.priority)
            when i.j ? 'payload' and jsonb_typeof(i.j -> 'payload') is distinct from 'object'
                then format('payload must be a JSON object, got %s', coalesce(jsonb_typeof(i.j -> 'payload'), 'null'))
            when octet_length((i.j -> 'payload')::text) > s.max_payload_bytes
                then format('payload is %s bytes, over the cap of %s bytes (queue.settings.max_payload_bytes)', octet_length((i.j -> 'payload')::text), s.max_payload_bytes)
            when i.j ? 'max_attempts' and jsonb_typeof(i.j -> 'max_attempts') <> 'null' and i.max_attempts is null
                then format('max_attempts must be an integer, got %s', i.j -> 'max_attempts')
            when i.max_attempts < 1
                then format('max_attempts must be at least 1, got %s', i.max_attempts)
            when i.j ? 'unique_key' and jsonb_typeof(i.j -> 'unique_key') not in ('string', 'null')
                then format('unique_key must be a string, got %s', i.j -> 'unique_key')
            when (i.j ->> 'backoff_base')::interval < interval '0'
                then format('backoff_base must not be negative, got %s', i.j ->> 'backoff_base')
        end
    from (
        select
            e.ord,
            e.j,
            case when jsonb_typeof(e.j -> 'priority') = 'number' and (e.j ->> 'priority')::numeric % 1 = 0
                then (e.j ->> 'priority')::numeric::int end as priority,
            case when jsonb_typeof(e.j -> 'max_attempts') = 'number' and (e.j ->> 'max_attempts')::numeric % 1 = 0
                then (e.j ->> 'max_attempts')::numeric::int end as max_attempts,
            (e.j ->> 'owner_id')::uuid as owner_id,
            (
                select k.key
                from jsonb_object_keys(case when jsonb_typeof(e.j) = 'object' then e.j else '{}' end) as k (key)
                where k.key not in (
                    'job_type', 'payload', 'queue_name', 'priority', 'run_at', 'max_attempts',
                    'unique_key', 'owner_id', 'backoff_strategy', 'backoff_base', 'backoff_max'
                )
                limit 1
            ) as bad_key
        from jsonb_array_elements(_resolve_jobs.jobs) with ordinality as e (j, ord)
    ) as i
    cross join queue.settings as s
    left join queue.job_types as jt on jt.job_type = i.j ->> 'job_type'
    left join queue.queues as q on q.queue_name = coalesce(i.j ->> 'queue_name', jt.queue_name)
    left join queue.owner_tiers as ot on ot.owner_id = i.owner_id
    left join queue.tiers as t on t.tier = ot.tier
$$;

comment on function queue._resolve_jobs(jsonb) is 'Private: applies enqueue defaults to a JSON array of jobs and names each one''s first problem.';

-- _reject_job: raises the problem of one job; called from a query only for a bad row.
create or replace function queue._reject_job(ord bigint, job_count int, problem text)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if job_count > 1 then
        raise exception 'jobs[%]: %', ord - 1, problem
            using errcode = '22023', hint = 'Nothing was enqueued: the batch is all or nothing.';
    end if;
    if problem like 'unknown job type%' then
        raise exception '%', problem
            using errcode = '22023',
            hint = 'Register it first: select queue.register_job_type(job_type => ..., queue_name => ...);';
    end if;
    raise exception '%', problem using errcode = '22023';
end
$$;

comment on function queue._reject_job(bigint, int, text) is 'Private: raises an enqueue validation error (22023).';

-- enqueue_jobs: many jobs in one statement; returns their ids in input order.
create or replace function queue.enqueue_jobs(jobs jsonb)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
    v_ids bigint [];
    v_keys text [];
    v_inserted boolean [];
    v_queues text [];
    v_existing bigint;
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

    -- ids are drawn before the insert so each input row keeps its id whatever the insert order
    with resolved as materialized (
        select r.*, nextval('queue.jobs_id_seq') as new_id
        from queue._resolve_jobs(enqueue_jobs.jobs) as r
    ),
    ins as (
        insert into queue.jobs (
            id, job_type, queue_name, priority, run_at, payload, max_attempts, unique_key,
            owner_id, backoff_strategy, backoff_base, backoff_max
        )
        select
            case when r.problem is null then r.new_id else queue._reject_job(r.ord, v_count, r.problem) end,
            r.job_type, r.queue_name, r.priority, r.run_at, r.payload, r.max_attempts, r.unique_key,
            r.owner_id, r.backoff_strategy, r.backoff_base, r.backoff_max
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

    -- a job skipped for its unique_key takes the id of the job that holds the key
    for i in 1 .. v_count loop
        if not v_inserted[i] then
            select j.id into v_existing from queue.jobs as j where j.unique_key = v_keys[i];
            if v_existing is null then
                -- the holder finished in between: it was live when we enqueued, so it answers
                select h.id into v_existing
                from queue.job_history as h
                where h.unique_key = v_keys[i]
                order by h.finished_at desc
                limit 1;
            end if;
            v_ids[i] := v_existing;
        end if;
    end loop;

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
language sql
volatile
security definer
set search_path = ''
as $$
    select queue.enqueue_jobs(jsonb_build_array(jsonb_build_object(
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
    )))
$$;

comment on function queue.enqueue_job(text, jsonb, text, int, timestamptz, int, text, uuid, queue.backoff_strategy, interval, interval) is
'Enqueues one job and returns its id. Defaults come from the job type, then its queue; an owner''s tier shifts the priority. With a unique_key that a waiting or running job holds, returns that job''s id instead. Wakes workers with pg_notify(''kyu_jobs'', queue_name).';

-- ---- sql/queue/40_claim.sql ----
-- Claiming: claim_jobs hands a worker up to batch_size due jobs, most urgent first, leased to it.
-- Two plans, both one statement with FOR UPDATE SKIP LOCKED:
--   * every queue, none paused or limited: one ordered scan of jobs_claim_idx;
--   * otherwise: one scan per queue of jobs_queue_claim_idx, each capped by what the queue's
--     concurrency and rate limit allow (queue rows locked in name order, so limits hold across
--     any number of workers), merged by priority. With several queues this may lock up to
--     batch_size rows per queue for an instant; the cost is bounded and the plan stays simple.

create or replace function queue.claim_jobs(
    worker_id text,
    batch_size int default 1,
    queue_names text [] default null,
    job_types text [] default null,
    lease_seconds int default null
)
returns setof queue.claimed_job
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_blocked text [];
    v_queues text [];
    v_allowances int [];
    v_simple boolean;
    v_claimed queue.claimed_job [];
    v_queue record;
    v_tokens double precision;
    v_allow int;
begin
    if claim_jobs.worker_id is null or btrim(claim_jobs.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
    end if;
    if claim_jobs.batch_size is null or claim_jobs.batch_size not between 1 and 1000 then
        raise exception 'batch_size must be between 1 and 1000, got %', coalesce(claim_jobs.batch_size::text, 'null')
            using errcode = '22023';
    end if;
    if claim_jobs.lease_seconds is not null and claim_jobs.lease_seconds < 1 then
        raise exception 'lease_seconds must be at least 1, got %', claim_jobs.lease_seconds using errcode = '22023';
    end if;

    -- job types whose external service has an open breaker still cooling down
    if exists (select from queue.circuit_breakers as cb where cb.state = 'open') then
        select array_agg(jt.job_type) into v_blocked
        from queue.job_types as jt
        where jt.services && array(
            select cb.service
            from queue.circuit_breakers as cb
            where cb.state = 'open' and cb.opened_at + cb.cooldown > now()
        );
    end if;

    select
        claim_jobs.queue_names is null
        and not bool_or(q.paused or q.concurrency is not null or q.rate_limit is not null)
    into v_simple
    from queue.queues as q;

    if v_simple then
        return query
        with picked as (
            select j.id
            from queue.jobs as j
            where j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (claim_jobs.job_types is null or j.job_type = any(claim_jobs.job_types))
                and (v_blocked is null or j.job_type <> all(v_blocked))
            order by j.priority, j.run_at, j.id
            limit claim_jobs.batch_size
            for update skip locked
        )
        update queue.jobs as j
        set status = 'running',
            attempt = j.attempt + 1,
            worker_id = claim_jobs.worker_id,
            lease_seconds = coalesce(claim_jobs.lease_seconds, jt.timeout_seconds, q.lease_seconds),
            lease_expires_at = now() + make_interval(
                secs => coalesce(claim_jobs.lease_seconds, jt.timeout_seconds, q.lease_seconds)
            ),
            attempted_at = now(),
            started_at = coalesce(j.started_at, now())
        from picked as p, queue.job_types as jt, queue.queues as q
        where j.id = p.id and jt.job_type = j.job_type and q.queue_name = j.queue_name
        returning j.id, j.job_type, j.queue_name, j.payload, j.attempt, j.max_attempts, j.priority,
            j.lease_expires_at, j.lease_seconds, j.owner_id, j.created_at;
        return;
    end if;

    -- the queues to serve and how many jobs each may start now; limited queues are locked
    -- (in name order, so claimers never deadlock) until this transaction ends
    for v_queue in
        select q.queue_name, q.concurrency, q.rate_limit, q.rate_interval, q.rate_tokens, q.rate_refilled_at
        from queue.queues as q
        where not q.paused
            and (claim_jobs.queue_names is null or q.queue_name = any(claim_jobs.queue_names))
        order by q.queue_name
    loop
        v_allow := claim_jobs.batch_size;
        if v_queue.concurrency is not null or v_queue.rate_limit is not null then
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
            v_queues := v_queues || v_queue.queue_name;
            v_allowances := v_allowances || v_allow;
        end if;
    end loop;

    if v_queues is null then
        return;
    end if;

    with candidates as (
        select c.id, c.priority, c.run_at
        from unnest(v_queues, v_allowances) as a (queue_name, allowance)
        cross join lateral (
            select j.id, j.priority, j.run_at
            from queue.jobs as j
            where j.queue_name = a.queue_name
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (claim_jobs.job_types is null or j.job_type = any(claim_jobs.job_types))
                and (v_blocked is null or j.job_type <> all(v_blocked))
            order by j.priority, j.run_at, j.id
            limit a.allowance
            for update skip locked
        ) as c
    ),
    picked as (
        select c.id
        from candidates as c
        order by c.priority, c.run_at, c.id
        limit claim_jobs.batch_size
    ),
    claimed as (
        update queue.jobs as j
        set status = 'running',
            attempt = j.attempt + 1,
            worker_id = claim_jobs.worker_id,
            lease_seconds = coalesce(claim_jobs.lease_seconds, jt.timeout_seconds, q.lease_seconds),
            lease_expires_at = now() + make_interval(
                secs => coalesce(claim_jobs.lease_seconds, jt.timeout_seconds, q.lease_seconds)
            ),
            attempted_at = now(),
            started_at = coalesce(j.started_at, now())
        from picked as p, queue.job_types as jt, queue.queues as q
        where j.id = p.id and jt.job_type = j.job_type and q.queue_name = j.queue_name
        returning j.id, j.job_type, j.queue_name, j.payload, j.attempt, j.max_attempts, j.priority,
            j.lease_expires_at, j.lease_seconds, j.owner_id, j.created_at
    )
    select array_agg(row(c.*)::queue.claimed_job order by c.priority, c.id) into v_claimed
    from claimed as c;

    -- spend one token per start on rate-limited queues
    update queue.queues as q
    set rate_tokens = q.rate_tokens - n.started
    from (
        select c.queue_name, count(*) as started
        from unnest(v_claimed) as c
        group by c.queue_name
    ) as n
    where q.queue_name = n.queue_name and q.rate_limit is not null;

    return query select * from unnest(v_claimed);
end
$$;

comment on function queue.claim_jobs(text, int, text [], text [], int) is
'Claims up to batch_size due jobs for worker_id (priority 1 first, then run_at, then id) with FOR UPDATE SKIP LOCKED, skipping paused queues, honouring each queue''s concurrency and rate limit and open circuit breakers. Claimed jobs are running with a lease of lease_seconds (default: the job type''s timeout, else the queue''s lease). Null queue_names / job_types mean all.';

-- ---- sql/queue/50_finish.sql ----
-- Finishing attempts: complete, fail (retry with backoff or dead-letter), heartbeat, release,
-- and the reaper for leases whose worker vanished. Every call is fenced by worker_id (and,
-- where given, the attempt number): a stale worker's late answer changes nothing.

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

-- _archive_job: moves one live job to history with its final status.
create or replace function queue._archive_job(
    job_id bigint,
    status queue.job_status,
    errors jsonb,
    result jsonb default null
)
returns void
language sql
volatile
security definer
set search_path = ''
as $$
    with gone as (
        delete from queue.jobs as j
        where j.id = _archive_job.job_id
        returning j.*
    )
    insert into queue.job_history (
        id, job_type, queue_name, status, priority, payload, attempt, max_attempts, unique_key,
        owner_id, worker_id, errors, result, progress, run_at, created_at, started_at, finished_at
    )
    select
        g.id, g.job_type, g.queue_name, _archive_job.status, g.priority, g.payload, g.attempt,
        g.max_attempts, g.unique_key, g.owner_id, g.worker_id, _archive_job.errors,
        _archive_job.result, g.progress, g.run_at, g.created_at, g.started_at, now()
    from gone as g
$$;

comment on function queue._archive_job(bigint, queue.job_status, jsonb, jsonb) is 'Private: moves a live job to queue.job_history.';

-- complete_jobs: finishes the jobs the worker still holds; returns how many it finished.
create or replace function queue.complete_jobs(
    job_ids bigint [],
    worker_id text,
    results jsonb [] default null,
    attempts int [] default null
)
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    with done as (
        delete from queue.jobs as j
        using unnest(complete_jobs.job_ids, complete_jobs.results, complete_jobs.attempts)
            as c (id, result, attempt)
        where j.id = c.id
            and j.status = 'running'
            and j.worker_id = complete_jobs.worker_id
            and (c.attempt is null or j.attempt = c.attempt)
        returning j.*, c.result
    )
    insert into queue.job_history (
        id, job_type, queue_name, status, priority, payload, attempt, max_attempts, unique_key,
        owner_id, worker_id, errors, result, progress, run_at, created_at, started_at, finished_at
    )
    select
        d.id, d.job_type, d.queue_name, 'completed', d.priority, d.payload, d.attempt,
        d.max_attempts, d.unique_key, d.owner_id, d.worker_id, d.errors, d.result, d.progress,
        d.run_at, d.created_at, d.started_at, now()
    from done as d;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

comment on function queue.complete_jobs(bigint [], text, jsonb [], int []) is
'Completes the listed jobs that worker_id still holds (optionally with per-job results and attempt numbers, aligned with job_ids). Returns how many it completed; a job reclaimed by another worker, or already finished, is left alone.';

-- complete_job: finishes one job; false when the caller no longer holds it.
create or replace function queue.complete_job(
    job_id bigint,
    worker_id text,
    result jsonb default null,
    attempt int default null
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
        array[complete_job.attempt]
    ) = 1
$$;

comment on function queue.complete_job(bigint, text, jsonb, int) is
'Completes one job with its result. Returns false (and changes nothing) when worker_id no longer holds the job''s lease, so nothing completes twice.';

-- _fail_locked: records a failed attempt of a locked running job; retries or dead-letters it.
create or replace function queue._fail_locked(
    job queue.jobs,
    error text,
    retryable boolean,
    retry_at timestamptz
)
returns queue.job_status
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_errors jsonb;
    v_queue queue.queues;
begin
    v_errors := job.errors || jsonb_build_object(
        'attempt', job.attempt,
        'error', coalesce(error, '(no error message)'),
        'worker_id', job.worker_id,
        'at', now()
    );
    if not coalesce(retryable, true) or job.attempt >= job.max_attempts then
        perform queue._archive_job(job.id, 'dead', v_errors);
        return 'dead'::queue.job_status;
    end if;
    select q.* into v_queue from queue.queues as q where q.queue_name = job.queue_name;
    update queue.jobs as j
    set status = 'retrying',
        worker_id = null,
        lease_seconds = null,
        lease_expires_at = null,
        errors = v_errors,
        run_at = coalesce(
            _fail_locked.retry_at,
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

comment on function queue._fail_locked(queue.jobs, text, boolean, timestamptz) is 'Private: the failure rules shared by fail_job and reap_expired_leases.';

-- fail_job: records an attempt's error; returns retrying or dead, or null if not held.
create or replace function queue.fail_job(
    job_id bigint,
    worker_id text,
    error text,
    retryable boolean default true,
    retry_at timestamptz default null,
    attempt int default null
)
returns queue.job_status
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
begin
    select j.* into v_job
    from queue.jobs as j
    where j.id = fail_job.job_id
        and j.status = 'running'
        and j.worker_id = fail_job.worker_id
        and (fail_job.attempt is null or j.attempt = fail_job.attempt)
    for update;
    if not found then
        return null;
    end if;
    return queue._fail_locked(v_job, fail_job.error, fail_job.retryable, fail_job.retry_at);
end
$$;

comment on function queue.fail_job(bigint, text, text, boolean, timestamptz, int) is
'Records a failed attempt (every attempt''s error is kept). Retryable with attempts left: status retrying, run_at after the backoff (or at retry_at when given). Otherwise: dead (queue.dead_letter). Returns null and changes nothing when worker_id no longer holds the job.';

-- heartbeat: extends the leases the worker still holds and records that it is alive.
create or replace function queue.heartbeat(
    worker_id text,
    job_ids bigint [] default '{}',
    host text default null,
    pid int default null,
    metadata jsonb default null
)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if heartbeat.worker_id is null or btrim(heartbeat.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
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
    where j.id = any(heartbeat.job_ids)
        and j.status = 'running'
        and j.worker_id = heartbeat.worker_id
    returning j.id;
end
$$;

comment on function queue.heartbeat(text, bigint [], text, int, jsonb) is
'Extends the lease of each listed job worker_id still holds by its lease length, and records the worker as alive (queue.workers). Returns the ids still held: a missing id was reclaimed or finished.';

-- report_progress: stores a running job's progress (any JSON) for status readers.
create or replace function queue.report_progress(job_id bigint, worker_id text, progress jsonb)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $$
    with touched as (
        update queue.jobs as j
        set progress = report_progress.progress
        where j.id = report_progress.job_id
            and j.status = 'running'
            and j.worker_id = report_progress.worker_id
        returning 1
    )
    select exists (select from touched)
$$;

comment on function queue.report_progress(bigint, text, jsonb) is 'Stores progress for a job the worker holds (shown by get_job and my_jobs). False if not held.';

-- release_jobs: gives held jobs back without counting the attempt (graceful shutdown).
create or replace function queue.release_jobs(worker_id text, job_ids bigint [])
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    update queue.jobs as j
    set status = case when j.attempt > 1 then 'retrying'::queue.job_status else 'pending' end,
        attempt = j.attempt - 1,
        worker_id = null,
        lease_seconds = null,
        lease_expires_at = null
    where j.id = any(release_jobs.job_ids)
        and j.status = 'running'
        and j.worker_id = release_jobs.worker_id;
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform pg_notify('kyu_jobs', q.queue_name)
        from (select distinct j.queue_name from queue.jobs as j where j.id = any(release_jobs.job_ids)) as q;
    end if;
    return v_count;
end
$$;

comment on function queue.release_jobs(text, bigint []) is
'Returns jobs the worker holds to the queue at once, without counting the attempt (a worker shutting down). Returns how many.';

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

-- ---- sql/queue/60_control.sql ----
-- Control: queues and job types (declarative upserts), cancel, retry, pause, resume, inspecting
-- one job, circuit breakers, customer tiers, priority aging and the history purge.

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
    aging_interval interval default null
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
    elsif create_queue.max_attempts is null or create_queue.max_attempts < 1 then
        raise exception 'max_attempts must be at least 1, got %', create_queue.max_attempts using errcode = '22023';
    elsif create_queue.backoff_base < interval '0' or create_queue.backoff_max < create_queue.backoff_base then
        raise exception 'backoff_base (%) must be >= 0 and <= backoff_max (%)', create_queue.backoff_base, create_queue.backoff_max
            using errcode = '22023';
    elsif create_queue.backoff_jitter not between 0 and 1 then
        raise exception 'backoff_jitter must be between 0 and 1, got %', create_queue.backoff_jitter using errcode = '22023';
    elsif create_queue.lease_seconds < 1 then
        raise exception 'lease_seconds must be at least 1, got %', create_queue.lease_seconds using errcode = '22023';
    elsif create_queue.retention <= interval '0' then
        raise exception 'retention must be positive, got %', create_queue.retention using errcode = '22023';
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

    insert into queue.queues as q (
        queue_name, max_attempts, backoff_strategy, backoff_base, backoff_max, backoff_jitter,
        lease_seconds, retention, concurrency, rate_limit, rate_interval, aging_interval
    )
    values (
        create_queue.queue_name, create_queue.max_attempts, create_queue.backoff_strategy,
        create_queue.backoff_base, create_queue.backoff_max, create_queue.backoff_jitter,
        create_queue.lease_seconds, create_queue.retention, create_queue.concurrency,
        create_queue.rate_limit, create_queue.rate_interval, create_queue.aging_interval
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
        updated_at = now()
    returning q.* into v_row;
    return v_row;
end
$$;

comment on function queue.create_queue(text, int, queue.backoff_strategy, interval, interval, numeric, int, interval, int, int, interval, interval) is
'Creates a queue, or sets every policy field of an existing one to the given values (defaults for those left out; paused is kept). concurrency: max running jobs across all workers; rate_limit per rate_interval: a token bucket of starts; aging_interval: waiting jobs gain one priority step per interval.';

-- register_job_type: creates or updates a job type.
create or replace function queue.register_job_type(
    job_type text,
    queue_name text default 'default',
    priority int default 50,
    max_attempts int default null,
    timeout_seconds int default null,
    user_enqueue boolean default false,
    services text [] default '{}',
    description text default null
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
    elsif register_job_type.max_attempts < 1 then
        raise exception 'max_attempts must be at least 1, got %', register_job_type.max_attempts using errcode = '22023';
    elsif register_job_type.timeout_seconds < 1 then
        raise exception 'timeout_seconds must be at least 1, got %', register_job_type.timeout_seconds using errcode = '22023';
    end if;

    insert into queue.job_types as t (
        job_type, queue_name, priority, max_attempts, timeout_seconds, user_enqueue, services, description
    )
    values (
        register_job_type.job_type, register_job_type.queue_name, register_job_type.priority,
        register_job_type.max_attempts, register_job_type.timeout_seconds,
        coalesce(register_job_type.user_enqueue, false), coalesce(register_job_type.services, '{}'),
        register_job_type.description
    )
    on conflict on constraint job_types_pkey do update
    set queue_name = excluded.queue_name,
        priority = excluded.priority,
        max_attempts = excluded.max_attempts,
        timeout_seconds = excluded.timeout_seconds,
        user_enqueue = excluded.user_enqueue,
        services = excluded.services,
        description = excluded.description,
        updated_at = now()
    returning t.* into v_row;
    return v_row;
end
$$;

comment on function queue.register_job_type(text, text, int, int, int, boolean, text [], text) is
'Creates or updates a job type: default queue and priority, overrides of the queue''s max_attempts and lease (timeout_seconds), whether authenticated end users may enqueue it, and the external services it depends on (circuit breakers).';

-- all_jobs: every job wherever it lives now.
create or replace view queue.all_jobs as
select
    j.id, j.job_type, j.queue_name, j.status, j.priority, j.payload, j.attempt, j.max_attempts,
    j.unique_key, j.owner_id, j.worker_id, j.errors, j.errors -> -1 ->> 'error' as last_error,
    null::jsonb as result, j.progress, j.run_at, j.created_at, j.started_at,
    null::timestamptz as finished_at, j.lease_expires_at
from queue.jobs as j
union all
select
    h.id, h.job_type, h.queue_name, h.status, h.priority, h.payload, h.attempt, h.max_attempts,
    h.unique_key, h.owner_id, h.worker_id, h.errors, h.errors -> -1 ->> 'error' as last_error,
    h.result, h.progress, h.run_at, h.created_at, h.started_at, h.finished_at,
    null::timestamptz as lease_expires_at
from queue.job_history as h;

comment on view queue.all_jobs is 'Live and finished jobs in one shape (live ones from queue.jobs, finished from queue.job_history).';

create or replace view queue.dead_letter as
select
    h.id, h.job_type, h.queue_name, h.priority, h.payload, h.attempt, h.max_attempts,
    h.errors -> -1 ->> 'error' as last_error, h.errors, h.owner_id, h.created_at,
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
    select a.* into v_row from queue.all_jobs as a where a.id = get_job.job_id;
    if not found then
        raise exception 'job % not found (never enqueued, or purged after its queue''s retention)', get_job.job_id
            using errcode = 'P0002';
    end if;
    return v_row;
end
$$;

comment on function queue.get_job(bigint) is 'One job wherever it lives now (waiting, running or finished): status, attempts, every attempt''s error, result, progress and timings.';

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
        unique_key, owner_id, errors, created_at
    )
    values (
        v_job.id, v_job.job_type, v_job.queue_name, 'pending', v_job.priority, now(), v_job.payload, 0,
        v_job.max_attempts, v_job.unique_key, v_job.owner_id, v_job.errors, v_job.created_at
    );
    perform pg_notify('kyu_jobs', v_job.queue_name);
    return v_job.id;
end
$$;

comment on function queue.retry_job(bigint) is 'Replays a dead or cancelled job: back to pending now with its attempts reset (earlier errors kept). Returns its id.';

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
        raise exception 'unknown queue: %', pause_queue.queue_name using errcode = '22023';
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
        raise exception 'unknown queue: %', resume_queue.queue_name using errcode = '22023';
    end if;
    perform pg_notify('kyu_jobs', resume_queue.queue_name);
end
$$;

comment on function queue.resume_queue(text) is 'Resumes claiming from a paused queue and wakes workers.';

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
            last_error = report_service.error,
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

-- set_owner_tier: puts a job owner on a customer tier (or off any tier with null).
create or replace function queue.set_owner_tier(owner_id uuid, tier text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if set_owner_tier.tier is null then
        delete from queue.owner_tiers as o where o.owner_id = set_owner_tier.owner_id;
        return;
    end if;
    if not exists (select from queue.tiers as t where t.tier = set_owner_tier.tier) then
        raise exception 'unknown tier: %', set_owner_tier.tier using errcode = '22023',
            hint = 'Tiers live in queue.tiers (tier, priority_offset).';
    end if;
    insert into queue.owner_tiers as o (owner_id, tier)
    values (set_owner_tier.owner_id, set_owner_tier.tier)
    on conflict on constraint owner_tiers_pkey do update set tier = excluded.tier;
end
$$;

comment on function queue.set_owner_tier(uuid, text) is 'Puts a job owner on a customer tier: their jobs are enqueued with priority + the tier''s priority_offset.';

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
        raise exception 'max_rows must be at least 1, got %', purge_history.max_rows using errcode = '22023';
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

comment on function queue.purge_history(int) is 'Deletes up to max_rows finished jobs older than their queue''s retention (oldest first). Returns how many; call again until 0.';

-- ---- sql/queue/90_security.sql ----
-- Security, in one place: roles, grants, RLS policies and the end-user API schema.
-- Model (Supabase's): the engine schema `queue` is not exposed through the Data API; every
-- function in it is security definer with search_path = '' and is executable only by the roles
-- granted below. anon gets nothing. authenticated reaches Kyu through `queue_public`
-- (invoker wrappers and a security_invoker view) and sees only its own jobs through RLS.
-- service_role does everything; queue_worker may claim, finish and heartbeat, nothing else.

do $$
begin
    if not exists (select from pg_roles where rolname = 'queue_worker') then
        create role queue_worker nologin;
    end if;
end
$$;

revoke all on schema queue from public;
revoke all on all tables in schema queue from public;
revoke all on all sequences in schema queue from public;
revoke execute on all functions in schema queue from public;
alter default privileges in schema queue revoke execute on functions from public;

-- RLS on every table: only the policies below let anyone but the owner and service_role in.
alter table queue.settings enable row level security;
alter table queue.queues enable row level security;
alter table queue.job_types enable row level security;
alter table queue.tiers enable row level security;
alter table queue.owner_tiers enable row level security;
alter table queue.circuit_breakers enable row level security;
alter table queue.jobs enable row level security;
alter table queue.job_history enable row level security;
alter table queue.worker_sessions enable row level security;

-- service_role: the whole engine.
grant usage on schema queue to service_role;
grant all on all tables in schema queue to service_role;
grant all on all sequences in schema queue to service_role;
grant execute on all functions in schema queue to service_role;

-- queue_worker: the worker's calls only; it reads payloads through claim_jobs, never tables.
grant usage on schema queue to queue_worker;
grant execute on function
    queue.claim_jobs(text, int, text [], text [], int),
    queue.complete_job(bigint, text, jsonb, int),
    queue.complete_jobs(bigint [], text, jsonb [], int []),
    queue.fail_job(bigint, text, text, boolean, timestamptz, int),
    queue.heartbeat(text, bigint [], text, int, jsonb),
    queue.release_jobs(text, bigint []),
    queue.report_progress(bigint, text, jsonb),
    queue.report_service(text, boolean, text, int, interval)
to queue_worker;

-- authenticated: its own jobs, the columns an end user needs (no payload of others' jobs ever).
grant usage on schema queue to authenticated;
grant select (id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, errors, progress, run_at, created_at, started_at)
on queue.jobs to authenticated;
grant select (id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, errors, result, progress, run_at, created_at, started_at, finished_at)
on queue.job_history to authenticated;

create policy jobs_owner_reads on queue.jobs
for select to authenticated
using (owner_id = (select auth.uid()));

create policy job_history_owner_reads on queue.job_history
for select to authenticated
using (owner_id = (select auth.uid()));
