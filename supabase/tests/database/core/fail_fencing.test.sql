-- A stale attempt's late failure is harmless: fail_job checks the attempt, not only the worker,
-- so a worker that got its own job back after the reaper cannot fail the new attempt with the
-- old one's answer.
begin;
select plan(5);
\ir ../../helpers/core_setup.psql

select queue.enqueue_job('t_job', '{"k": "again"}') as job \gset
select queue.claim_jobs('w-a', 1, array['t_core']);
update queue.jobs set lease_expires_at = now() - interval '1 second'
where id = :job;
select queue.reap_expired_leases();
update queue.jobs set run_at = now()
where id = :job;
select c.attempt as second_attempt from queue.claim_jobs('w-a', 1, array['t_core']) as c \gset
select is(:second_attempt, 2, 'the same worker holds the job again, on attempt 2');

select
    is(
        queue.fail_job(:job, 'w-a', 'late answer of attempt 1', attempt => 1, lease_token => pg_temp.token(:job)),
        null,
        'the old attempt''s failure is refused'
    );
select
    is(
        (
            select row(status::text, attempt, worker_id) from queue.jobs
            where id = :job
        ),
        row('running'::text, 2, 'w-a'::text),
        'the job still runs attempt 2'
    );
select
    is(
        (
            select count(*) from queue.jobs as j, jsonb_array_elements(j.errors) as e
            where j.id = :job and e.value ->> 'error' like 'late answer%'
        ),
        0::bigint,
        'and the late error was not recorded'
    );
select
    is(
        queue.fail_job(:job, 'w-a', 'attempt 2 failed', attempt => 2, lease_token => pg_temp.token(:job)),
        'retrying'::queue.job_status,
        'the current attempt fails normally'
    );

select * from finish();
rollback;
