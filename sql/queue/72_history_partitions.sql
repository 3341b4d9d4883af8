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
