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
