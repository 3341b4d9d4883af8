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
