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
