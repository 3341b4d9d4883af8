-- Each backoff strategy's delays, the cap, jitter bounds, and a job's own override.
begin;
select plan(10);
\ir ../../helpers/core_setup.psql

select
    is(
        array[
            queue._backoff_delay('fixed', '10 seconds', '1 hour', 0, 1),
            queue._backoff_delay('fixed', '10 seconds', '1 hour', 0, 5)
        ],
        array[interval '10 seconds', interval '10 seconds'],
        'fixed: the base delay every time'
    );
select
    is(
        array[
            queue._backoff_delay('linear', '10 seconds', '1 hour', 0, 1),
            queue._backoff_delay('linear', '10 seconds', '1 hour', 0, 3)
        ],
        array[interval '10 seconds', interval '30 seconds'],
        'linear: base times the attempt'
    );
select
    is(
        array[
            queue._backoff_delay('exponential', '10 seconds', '1 hour', 0, 1),
            queue._backoff_delay('exponential', '10 seconds', '1 hour', 0, 2),
            queue._backoff_delay('exponential', '10 seconds', '1 hour', 0, 4)
        ],
        array[interval '10 seconds', interval '20 seconds', interval '80 seconds'],
        'exponential: base times 2^(attempt - 1)'
    );
select is(queue._backoff_delay('exponential', '10 seconds', '1 minute', 0, 10), interval '1 minute', 'exponential is capped');
select is(queue._backoff_delay('linear', '10 seconds', '25 seconds', 0, 3), interval '25 seconds', 'linear is capped');
select is(queue._backoff_delay('exponential', '1 second', '1 hour', 0, 1000), interval '1 hour', 'huge attempts do not overflow');

create temp table jittered as
select queue._backoff_delay('fixed', '100 seconds', '1 hour', 0.2, 1) as d
from generate_series(1, 200);
select
    ok(
        (select min(d) >= interval '80 seconds' and max(d) <= interval '120 seconds' from jittered),
        'jitter 0.2 keeps delays within ±20%'
    );
select ok((select count(distinct d) > 1 from jittered), 'jitter spreads the delays');

-- the queue's strategy drives fail_job; a job's own backoff overrides it
select queue.enqueue_job(job_type => 't_job', payload => '{"k": "q"}') as q_job \gset
select queue.claim_jobs('w', 1, array['t_core']);
select queue.fail_job(:q_job, 'w', 'x', lease_token => pg_temp.token(:q_job));
select is((
    select run_at from queue.jobs
    where id = :q_job
), now() + interval '10 seconds', 'fail_job uses the queue''s backoff');
select
    queue.enqueue_job(
        job_type => 't_job', payload => '{"k": "own"}', backoff_strategy => 'linear', backoff_base => '3 seconds'
    ) as own_job
\gset
select queue.claim_jobs('w', 1, array['t_core']);
select queue.fail_job(:own_job, 'w', 'x', lease_token => pg_temp.token(:own_job));
select is((
    select run_at from queue.jobs
    where id = :own_job
), now() + interval '3 seconds', 'a job''s own backoff wins');

select * from finish();
rollback;
