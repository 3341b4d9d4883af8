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

comment on function queue.create_queue(
    text, int, queue.backoff_strategy, interval, interval, numeric, int, interval, int, int, interval, interval
) is
'Creates a queue, or sets every policy field of an existing one to the given values (defaults for those left out; paused is kept). concurrency: max running jobs across all workers; rate_limit per rate_interval: a token bucket of starts; aging_interval: waiting jobs gain one priority step per interval.';

-- register_job_type: creates or updates a job type.
create or replace function queue.register_job_type(
    job_type text,
    queue_name text default 'default',
    priority int default 50,
    max_attempts int default null,
    timeout_seconds int default null,
    user_enqueue boolean default false,
    services text[] default '{}',
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

comment on function queue.register_job_type(text, text, int, int, int, boolean, text[], text) is
'Creates or updates a job type: default queue and priority, overrides of the queue''s max_attempts and lease (timeout_seconds), whether authenticated end users may enqueue it, and the external services it depends on (circuit breakers).';

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
    j.lease_expires_at
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
    null::timestamptz as lease_expires_at
from queue.job_history as h;

comment on view queue.all_jobs is 'Live and finished jobs in one shape (live ones from queue.jobs, finished from queue.job_history).';

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
) is 'One job wherever it lives now (waiting, running or finished): status, attempts, every attempt''s error, result, progress and timings.';

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

comment on function queue.set_owner_tier(
    uuid, text
) is 'Puts a job owner on a customer tier: their jobs are enqueued with priority + the tier''s priority_offset.';

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

comment on function queue.purge_history(
    int
) is 'Deletes up to max_rows finished jobs older than their queue''s retention (oldest first). Returns how many; call again until 0.';
