-- Rendered by scripts/render_migrations.sh from sql/queue/upgrades/20261203000000_history_partitions.sql and the
-- sql/queue files named below; edit those files, not this one.

-- ---- sql/queue/upgrades/20261203000000_history_partitions.sql ----
-- Upgrade: queue.job_history from one plain table (Kyu before issue 15) to a table partitioned
-- by day of finished_at, keeping every row. Nothing is copied: the old table becomes the
-- partition job_history_legacy, covering everything up to the end of today (UTC); new days get
-- their own partitions, and the legacy partition is dropped whole once the longest queue
-- retention has passed its end. Grants, row-level security policies and views that read the
-- old table are carried over to the new one as they were.
-- Locks: ACCESS EXCLUSIVE on queue.job_history for the whole transaction, which includes one
-- scan of the old table (attach checks its rows) and building the (id, finished_at) index on
-- it: about a second per million rows here. Workers may keep running: their completes wait.
-- Does nothing where queue.job_history is already partitioned (a fresh install).
do $$
declare
    v_cutoff timestamptz := ((now() at time zone 'UTC')::date + 1)::timestamp at time zone 'UTC';
    v_row record;
begin
    if (select c.relkind from pg_catalog.pg_class as c where c.oid = 'queue.job_history'::regclass) <> 'r' then
        return;
    end if;
    lock table queue.job_history in access exclusive mode;
    alter table queue.job_history rename to job_history_legacy;
    -- the partitioned table's indexes take the old names
    for v_row in
        select i.relname
        from pg_catalog.pg_index as x
        join pg_catalog.pg_class as i on i.oid = x.indexrelid
        where x.indrelid = 'queue.job_history_legacy'::regclass
    loop
        execute format(
            'alter index queue.%I rename to %I',
            v_row.relname, replace(v_row.relname, 'job_history_', 'job_history_legacy_')
        );
    end loop;

    -- as in sql/queue/20_tables.sql
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
    create table queue.job_history_default partition of queue.job_history default;
    comment on column queue.job_history.public_error is 'What the owner sees of the last failure (see queue.jobs.public_error).';
    comment on column queue.job_history.parent_id is 'The job whose handler chained this one; null for a root job.';
    comment on table queue.job_history_default is
    'Finished jobs whose day has no partition of queue.job_history (housekeeping behind); normally empty.';
    alter table queue.job_history_default enable row level security;  -- as in 90_security.sql
    create index job_history_queue_finished_idx on queue.job_history (queue_name, finished_at);
    create index job_history_dead_idx on queue.job_history (finished_at) where status = 'dead';
    create index job_history_dead_queue_idx on queue.job_history (queue_name) where status = 'dead';
    create index job_history_owner_idx on queue.job_history (owner_id) where owner_id is not null;
    create index job_history_parent_idx on queue.job_history (parent_id) where parent_id is not null;
    create index job_history_unique_key_idx on queue.job_history (unique_key) where unique_key is not null;

    -- a partition's primary key is the parent's (id, finished_at), which attach builds
    execute format(
        'alter table queue.job_history_legacy drop constraint %I',
        (select k.conname from pg_catalog.pg_constraint as k
         where k.conrelid = 'queue.job_history_legacy'::regclass and k.contype = 'p')
    );
    execute format(
        'alter table queue.job_history attach partition queue.job_history_legacy for values from (minvalue) to (%L)',
        v_cutoff
    );
    comment on table queue.job_history_legacy is
    'Jobs finished before queue.job_history was partitioned; a partition of it, dropped whole once every queue''s retention has passed.';

    -- grants (table and column), row-level security and policies, as the old table had them
    for v_row in
        select a.privilege_type, coalesce(r.rolname, 'public') as grantee
        from pg_catalog.pg_class as c
        cross join lateral aclexplode(c.relacl) as a
        left join pg_catalog.pg_roles as r on r.oid = a.grantee
        where c.oid = 'queue.job_history_legacy'::regclass
            and a.grantee <> c.relowner
    loop
        execute format(
            'grant %s on queue.job_history to %s',
            v_row.privilege_type,
            case when v_row.grantee = 'public' then 'public' else quote_ident(v_row.grantee) end
        );
    end loop;
    for v_row in
        select a.privilege_type, coalesce(r.rolname, 'public') as grantee, string_agg(quote_ident(t.attname), ', ') as cols
        from pg_catalog.pg_attribute as t
        cross join lateral aclexplode(t.attacl) as a
        left join pg_catalog.pg_roles as r on r.oid = a.grantee
        where t.attrelid = 'queue.job_history_legacy'::regclass and t.attnum > 0 and not t.attisdropped
        group by 1, 2
    loop
        execute format(
            'grant %s (%s) on queue.job_history to %s',
            v_row.privilege_type,
            v_row.cols,
            case when v_row.grantee = 'public' then 'public' else quote_ident(v_row.grantee) end
        );
    end loop;
    if (select c.relrowsecurity from pg_catalog.pg_class as c where c.oid = 'queue.job_history_legacy'::regclass) then
        alter table queue.job_history enable row level security;
    end if;
    for v_row in
        select
            p.polname,
            p.polpermissive,
            case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
                when 'd' then 'delete' else 'all' end as cmd,
            case when p.polroles = '{0}' then 'public'
                else (select string_agg(quote_ident(r.rolname), ', ') from pg_catalog.pg_roles as r
                      where r.oid = any(p.polroles)) end as roles,
            pg_catalog.pg_get_expr(p.polqual, p.polrelid) as qual,
            pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) as with_check
        from pg_catalog.pg_policy as p
        where p.polrelid = 'queue.job_history_legacy'::regclass
    loop
        execute format(
            'create policy %I on queue.job_history as %s for %s to %s%s%s',
            v_row.polname,
            case when v_row.polpermissive then 'permissive' else 'restrictive' end,
            v_row.cmd,
            v_row.roles,
            case when v_row.qual is not null then format(' using (%s)', v_row.qual) else '' end,
            case when v_row.with_check is not null then format(' with check (%s)', v_row.with_check) else '' end
        );
    end loop;

    -- views still point at the old table (by oid): re-create each on the partitioned one
    for v_row in
        select distinct v.oid::regclass::text as view_name, v.reloptions,
            pg_catalog.pg_get_viewdef(v.oid) as definition
        from pg_catalog.pg_depend as d
        join pg_catalog.pg_rewrite as w on w.oid = d.objid
        join pg_catalog.pg_class as v on v.oid = w.ev_class
        where d.classid = 'pg_catalog.pg_rewrite'::regclass
            and d.refobjid = 'queue.job_history_legacy'::regclass
            and v.relkind = 'v'
    loop
        execute format(
            'create or replace view %s%s as %s',
            v_row.view_name,
            case when v_row.reloptions is not null
                then format(' with (%s)', array_to_string(v_row.reloptions, ', ')) else '' end,
            replace(v_row.definition, 'queue.job_history_legacy', 'queue.job_history')
        );
    end loop;
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
