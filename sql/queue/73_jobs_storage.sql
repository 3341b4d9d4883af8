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
