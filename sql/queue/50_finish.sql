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
begin
    insert into queue.job_history (
        id, job_type, queue_name, status, priority, payload, attempt, max_attempts, unique_key,
        owner_id, worker_id, errors, result, progress, run_at, created_at, started_at, finished_at
    )
    select
        j.id, j.job_type, j.queue_name, _write_history.status, j.priority, j.payload, j.attempt,
        j.max_attempts, j.unique_key, j.owner_id, j.worker_id, j.errors, _write_history.results[j.ordinality],
        j.progress, j.run_at, j.created_at, j.started_at, now()
    from unnest(_write_history.jobs) with ordinality as j;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

comment on function queue._write_history(queue.jobs[], queue.job_status, jsonb[]) is
'Private: inserts the given job rows (already deleted from queue.jobs) into queue.job_history with the final status, the result aligned with each row (results may be null), and finished_at = now(). Returns how many.';

-- _archive_job: moves one live job to history with its final status.
create or replace function queue._archive_job(
    job_id bigint,
    status queue.job_status,
    errors jsonb,
    result jsonb default null
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
        perform queue._write_history(array[v_job], _archive_job.status, array[_archive_job.result]);
    end if;
end
$$;

comment on function queue._archive_job(bigint, queue.job_status, jsonb, jsonb) is 'Private: moves a live job to queue.job_history.';

-- complete_jobs: finishes the jobs the worker still holds; returns how many it finished.
create or replace function queue.complete_jobs(
    job_ids bigint[],
    worker_id text,
    results jsonb[] default null,
    attempts int[] default null
)
returns int
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- plans that cannot go bad: queue.jobs is read only through jobs_pkey (id = any(job_ids)),
-- whatever the statistics say. The delete used to join unnest(job_ids, ...) with queue.jobs;
-- on statistics that saw the table empty, a generic plan hashed every running job (170 ms for
-- 2,000 ids at 200k running), rescanned the table per id (115 s for 5,000 ids, issue 15), or
-- walked jobs_pkey whole per id (a 20 s stall in make bench-backlog). Now there is no join
-- with queue.jobs left to plan: per-id results and attempts are looked up in a jsonb map
set enable_seqscan = off
set enable_bitmapscan = off
as $$
declare
    v_count int;
    v_by_id jsonb;
begin
    -- {"<id>": [result, attempt]}, only when per-job results or attempts are given
    if complete_jobs.results is not null or complete_jobs.attempts is not null then
        select jsonb_object_agg(c.id::text, jsonb_build_array(c.result, c.attempt)) into v_by_id
        from unnest(complete_jobs.job_ids, complete_jobs.results, complete_jobs.attempts)
            as c (id, result, attempt);
    end if;

    -- one delete and one insert for the whole batch: the writer takes the deleted rows as a set
    with done as (
        delete from queue.jobs as j
        where j.id = any(complete_jobs.job_ids)
            -- running, said without naming status: worker_id and lease_expires_at are set
            -- exactly while running (jobs_running_has_lease), and a status clause would offer
            -- the planner a full scan of the partial jobs_running_idx instead of the ids
            and j.lease_expires_at is not null
            and j.worker_id = complete_jobs.worker_id
            and coalesce((v_by_id -> j.id::text ->> 1)::int, j.attempt) = j.attempt
        returning j, nullif(v_by_id -> j.id::text -> 0, 'null') as result
    )
    select queue._write_history(array_agg(d.j), 'completed', array_agg(d.result)) into v_count
    from done as d;
    return v_count;
end
$$;

comment on function queue.complete_jobs(bigint[], text, jsonb[], int[]) is
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
set jit = off
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

comment on function queue._fail_locked(
    queue.jobs, text, boolean, timestamptz
) is 'Private: the failure rules shared by fail_job and reap_expired_leases.';

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
set jit = off
-- by primary key whatever the statistics say (a plan cached while queue.jobs was one page
-- scanned it whole once it had grown; see complete_jobs)
set enable_seqscan = off
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
    job_ids bigint[] default '{}',
    host text default null,
    pid int default null,
    metadata jsonb default null
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

comment on function queue.heartbeat(text, bigint[], text, int, jsonb) is
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

comment on function queue.report_progress(
    bigint, text, jsonb
) is 'Stores progress for a job the worker holds (shown by get_job and my_jobs). False if not held.';

-- release_jobs: gives held jobs back without counting the attempt (graceful shutdown).
create or replace function queue.release_jobs(worker_id text, job_ids bigint[])
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

comment on function queue.release_jobs(text, bigint[]) is
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
