-- finished_at is when a job finished: a job completed late in a long transaction (a handler's
-- ctx.connection) records the time of its completion, not the time its transaction began.
begin;
select plan(2);
\ir ../../helpers/core_setup.psql

select queue.enqueue_job('t_job', '{"k": "late"}') as job \gset
select c.attempt from queue.claim_jobs('w-a', 1, array['t_core']) as c \gset
select pg_sleep(0.2);
select ok(queue.complete_job(:job, 'w-a', null, :attempt, pg_temp.token(:job)), 'completed in the same transaction');
select
    ok(
        (
            select finished_at >= now() + interval '0.2 seconds' from queue.job_history
            where id = :job
        ),
        'finished_at is the completion''s time, 0.2 s after the transaction began'
    );

select * from finish();
rollback;
