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
