-- Rendered by scripts/render_migrations.sh from sql/queue/upgrades/20261203000200_complete_pairing.sql and the
-- sql/queue files named below; edit those files, not this one.

-- ---- sql/queue/upgrades/20261203000200_complete_pairing.sql ----
-- Upgrade: complete_jobs pairs each id with its lease token through a join with the batch's
-- unnest instead of a jsonb map (2 of its 8 us per job), and the console's queue_policies view
-- shows the per-owner settings of the tenants upgrade. Nothing to change in the tables: the
-- sql/queue files named below run again (functions and the view replaced in place, grants
-- kept; the view's new columns come last, which create or replace view allows).
-- Locks: none beyond replacing the function and the view (brief, on their catalog rows).
-- Workers may keep running.

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
    -- 8 us per job (batch 100, a procedure loop; make bench-bounds)
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
