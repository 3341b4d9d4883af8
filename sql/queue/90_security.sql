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
