-- maintain_jobs_storage rebuilds queue.jobs' indexes only when they are large and the table
-- nearly empty; otherwise it says why not. (How much it gives back is measured by
-- make bench-backlog: a rebuild inside this transaction still indexes the rows it deleted.)
begin;
select plan(5);
\ir ../../helpers/ops_setup.psql

select
    matches(
        queue.maintain_jobs_storage(min_index_bytes => 1099511627776),
        '^indexes at .*: nothing to do$',
        'small indexes are left alone'
    );

-- a burst of 30,000 jobs, then all but one gone: the indexes keep the burst's pages
insert into queue.jobs (job_type, queue_name, priority, max_attempts, payload)
select
    't_ops_job' as job_type,
    't_ops' as queue_name,
    50 as priority,
    3 as max_attempts,
    '{}'::jsonb as payload
from generate_series(1, 30000);
select
    matches(
        queue.maintain_jobs_storage(max_live_rows => 10),
        '^over 10 live jobs: not now$',
        'a table holding more than max_live_rows jobs is not rebuilt'
    );
delete from queue.jobs
where queue_name = 't_ops' and id > (
    select min(j.id) from queue.jobs as j
    where j.queue_name = 't_ops'
);

select
    matches(
        queue.maintain_jobs_storage(max_live_rows => 100000),
        '^rebuilt the indexes of [0-9]+ live jobs: ',
        'large indexes over a small table are rebuilt'
    );
select
    is(
        (
            select count(*)::int from pg_index as x
            where x.indrelid = 'queue.jobs'::regclass and not (x.indisvalid and x.indisready)
        ),
        0,
        'every index of queue.jobs is valid after the rebuild'
    );
select
    throws_ok(
        'select queue.maintain_jobs_storage(max_live_rows => -1)',
        '22023',
        'max_live_rows must be 0 or more, got -1',
        'max_live_rows is checked'
    );

select * from finish();
rollback;
