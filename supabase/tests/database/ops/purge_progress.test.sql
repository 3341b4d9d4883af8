-- purge_history deletes at most max_rows, oldest first, only past the queue's retention and
-- only in history; report_progress is refused for a job the caller does not hold.
begin;
select plan(8);
\ir ../../helpers/ops_setup.psql

select queue.create_queue(queue_name => 't_keep', retention => '1 day');
select queue.register_job_type(job_type => 't_keep_job', queue_name => 't_keep');
-- five finished jobs: three past retention (10, 5 and 2 days old), two inside it
select queue.enqueue_jobs(
    (select jsonb_agg(jsonb_build_object('job_type', 't_keep_job', 'payload', jsonb_build_object('n', g))) from generate_series(1, 5) as g)
);
select queue.complete_jobs(array_agg(c.id), 'w', lease_tokens => array_agg(c.lease_token))
from queue.claim_jobs('w', 5, array['t_keep']) as c;
create temp table finished as
select
    (h.payload ->> 'n')::int as n,
    h.id
from queue.job_history as h
where h.queue_name = 't_keep';
-- whatever else this database holds past retention goes first (rolled back with the test)
select queue.purge_history(max_rows => 1000000);
update queue.job_history as h
set finished_at = now() - (array[interval '10 days', '5 days', '2 days', '2 hours', '1 minute'])[f.n]
from finished as f
where h.id = f.id;
select queue.enqueue_job('t_keep_job', '{"n": "live"}') as live_job \gset
update queue.jobs set created_at = now() - interval '30 days'
where id = :live_job;

select is(queue.purge_history(max_rows => 2), 2, 'purge deletes at most max_rows');
select
    is(
        (select array_agg(f.n order by f.n) from finished as f inner join queue.job_history as h on f.id = h.id),
        array[3, 4, 5],
        'the oldest go first'
    );
select is(queue.purge_history(max_rows => 10), 1, 'the next call takes the rest past retention');
select
    is(
        (select array_agg(f.n order by f.n) from finished as f inner join queue.job_history as h on f.id = h.id),
        array[4, 5],
        'jobs inside the retention stay'
    );
select is((
    select count(*) from queue.jobs
    where id = :live_job
), 1::bigint, 'live jobs are never purged');
select
    throws_ok(
        $$ select queue.purge_history(max_rows => 0) $$, '22023', 'max_rows must be at least 1, got 0', 'max_rows below 1 is refused'
    );

-- progress only from the holder of a running job
select queue.enqueue_job('t_ops_job', '{}') as job \gset
select is(queue.report_progress(:job, 'w-x', '{"pct": 10}', gen_random_uuid()), false, 'progress for a job nobody holds is refused');
select queue.claim_jobs('w-holder', 1, array['t_ops']);
select
    is(
        array[
            queue.report_progress(:job, 'w-x', '{"pct": 20}', pg_temp.token(:job))::text,
            (
                select progress::text from queue.jobs
                where id = :job
            )
        ],
        array['false', null],
        'another worker''s progress is refused and not stored'
    );

select * from finish();
rollback;
