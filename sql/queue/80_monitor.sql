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
