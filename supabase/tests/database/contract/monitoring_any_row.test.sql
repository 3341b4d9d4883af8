-- Monitoring never fails because of a row: queue_stats, health(), snapshot_stats/stats_history,
-- list_jobs, get_job, all_jobs, dead_letter, workers, schedules and my_jobs stay correct with
-- rows the API now refuses but an older version (or a hand-written insert) left behind: run_at
-- -infinity and infinity, null timings, a 5 MB error and 2 MB of progress.
begin;
select plan(22);
\ir ../../helpers/ops_setup.psql

-- only this test's rows (rolled back with it)
delete from queue.jobs;
delete from queue.job_history;
select queue.heartbeat('w-odd');

-- live: a waiting job due since -infinity (alice's), one due at infinity, a retrying one due since
-- -infinity with a 5 MB error, and a running one with 2 MB of progress
insert into queue.jobs (id, job_type, queue_name, status, priority, run_at, payload, max_attempts, owner_id, errors)
values
(
    nextval('queue.jobs_id_seq'), 't_ops_job', 't_ops', 'pending', 50, '-infinity', '{}', 3,
    '11111111-1111-4111-8111-111111111111', '[]'
),
(nextval('queue.jobs_id_seq'), 't_ops_job', 't_ops', 'pending', 50, 'infinity', '{}', 3, null, '[]'),
(
    nextval('queue.jobs_id_seq'), 't_ops_job', 't_ops', 'retrying', 50, '-infinity', '{}', 3,
    '11111111-1111-4111-8111-111111111111',
    jsonb_build_array(jsonb_build_object('attempt', 1, 'error', repeat('e', 5000000), 'worker_id', 'w-odd'))
);
insert into queue.jobs (
    id, job_type, queue_name, status, priority, run_at, payload, attempt, max_attempts, worker_id,
    lease_seconds, lease_expires_at, progress, started_at, lease_token
)
values (
    nextval('queue.jobs_id_seq'), 't_ops_job', 't_ops', 'running', 50, '-infinity', '{}', 1, 3, 'w-odd',
    60, now() + interval '1 minute', jsonb_build_object('log', repeat('p', 2000000)), '-infinity', gen_random_uuid()
);
-- finished: dead and completed rows with infinite and null timings and a 5 MB error
insert into queue.job_history (
    id, job_type, queue_name, status, priority, payload, attempt, max_attempts, owner_id, errors,
    run_at, created_at, started_at, finished_at
)
values
(
    nextval('queue.jobs_id_seq'), 't_ops_job', 't_ops', 'dead', 50, '{}', 1, 1,
    '11111111-1111-4111-8111-111111111111',
    jsonb_build_array(jsonb_build_object('attempt', 1, 'error', repeat('e', 5000000), 'worker_id', 'w-odd')),
    '-infinity', now(), now(), now()
),
(nextval('queue.jobs_id_seq'), 't_ops_job', 't_ops', 'completed', 50, '{}', 1, 1, null, '[]', 'infinity', now(), '-infinity', now()),
(
    nextval('queue.jobs_id_seq'), 't_ops_job', 't_ops', 'completed', 50, '{}', 1, 1, null, '[]',
    now() - interval '3 seconds', now() - interval '3 seconds', now() - interval '2 seconds', now()
),
(nextval('queue.jobs_id_seq'), 't_ops_job', 't_ops', 'cancelled', 50, '{}', 0, 1, null, '[]', 'infinity', now(), null, now());

select lives_ok($$ select * from queue.queue_stats $$, 'queue_stats reads every row');
select
    is(
        (
            select row(waiting, scheduled, running, retrying, dead, completed_last_hour, failed_last_hour)::text
            from queue.queue_stats
            where queue_name = 't_ops'
        ),
        row(1, 1, 1, 1, 1, 2, 1)::text,
        'queue_stats counts them: -infinity is waiting, infinity is scheduled'
    );
select
    is(
        (
            select oldest_waiting_age from queue.queue_stats
            where queue_name = 't_ops'
        ),
        now() - (now() - interval '100 years'),
        'a -infinity run_at counts as waited 100 years'
    );
select
    is(
        (
            select row(wait_p50_seconds, run_p50_seconds)::text from queue.queue_stats
            where queue_name = 't_ops'
        ),
        row(1::float8, 2::float8)::text,
        'the percentiles leave the infinite rows out and keep the finite one'
    );

select lives_ok($$ select queue.health() $$, 'health() reads every row');
select
    is(
        queue.health() ->> 'status',
        'unhealthy',
        'health() judges the -infinity backlog'
    );
select
    ok(
        (queue.health() -> 'reasons') ->> 0 like 'queue t_ops: oldest waiting job has waited 36525 days%',
        'and names it'
    );
select
    is(
        (queue.health() -> 'queues' -> 't_ops' ->> 'oldest_waiting_seconds')::numeric,
        round(extract(epoch from now() - (now() - interval '100 years')), 3),
        'health() reports the clamped age in seconds'
    );

select lives_ok($$ select queue.snapshot_stats() $$, 'snapshot_stats (the pg_cron queue-stats job) runs');
select
    is(
        (
            select oldest_waiting_age from queue.stats_history
            where queue_name = 't_ops'
            order by captured_at desc limit 1
        ),
        now() - (now() - interval '100 years'),
        'stats_history keeps the snapshot'
    );
select lives_ok($$ select * from queue.stats_history $$, 'stats_history reads');

select lives_ok($$ select * from queue.list_jobs(lim => 10000) $$, 'list_jobs reads every row');
select is((select count(*) from queue.list_jobs(lim => 10000)), 8::bigint, 'list_jobs lists all eight');
select
    lives_ok(
        $$ select queue.list_jobs(created_after => '-infinity', created_before => 'infinity') $$,
        'list_jobs takes infinite bounds'
    );
select
    lives_ok(
        $$ select queue.get_job(id) from queue.all_jobs $$,
        'get_job reads each of them'
    );
select lives_ok($$ select * from queue.dead_letter $$, 'dead_letter reads the 5 MB error');
select lives_ok($$ select * from queue.workers $$, 'workers reads');
select lives_ok($$ select * from queue.schedules $$, 'schedules reads');

-- the owner's view: the 5 MB error stays internal, a generic line is shown instead
select pg_temp.login('alice');
set local role authenticated;
select lives_ok($$ select * from queue_public.my_jobs $$, 'my_jobs reads the owner''s rows');
select
    is(
        (
            select array_agg(public_error order by status::text) from queue_public.my_jobs
            where public_error is not null
        ),
        array['The job failed.', 'The last attempt failed; the job will be retried.'],
        'my_jobs shows a generic public error, not the 5 MB raw one'
    );
reset role;

-- and the API cannot write such rows any more
select
    throws_ok(
        $$ select queue.enqueue_job('t_ops_job', run_at => '-infinity') $$,
        '22023', 'run_at must be a finite time, got -infinity',
        'enqueue refuses -infinity'
    );
select pg_temp.login('alice');
set local role authenticated;
select queue_public.enqueue_job('t_ops_user', run_at => now() - interval '10 years') as early \gset
reset role;
select
    is(
        (
            select run_at from queue.jobs
            where id = :early
        ),
        now(),
        'an end user''s past run_at becomes now: no jumping ahead of jobs that waited longer'
    );

select * from finish();
rollback;
