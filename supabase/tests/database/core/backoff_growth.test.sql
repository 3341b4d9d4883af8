-- Retry delays grow with the attempt through fail_job itself (not only in _backoff_delay), and
-- jitter spreads delays on both sides of the nominal delay.
begin;
select plan(3);
\ir ../../helpers/core_setup.psql

select queue.create_queue(
    queue_name => 't_exp',
    max_attempts => 5,
    backoff_strategy => 'exponential',
    backoff_base => '10 seconds',
    backoff_max => '1 hour',
    backoff_jitter => 0
);
select queue.register_job_type(job_type => 't_exp_job', queue_name => 't_exp');
select queue.enqueue_job('t_exp_job', '{}') as job \gset

-- fail attempts 1, 2 and 3; after each, note the delay and make the job due again
create temp table delays (attempt int, delay interval);
do $$
declare
    v_job bigint := (select max(id) from queue.jobs where queue_name = 't_exp');
    v_attempt int;
begin
    for i in 1..3 loop
        select c.attempt into v_attempt from queue.claim_jobs('w', 1, array['t_exp']) as c;
        perform queue.fail_job(v_job, 'w', 'boom ' || i, attempt => v_attempt, lease_token => pg_temp.token(v_job));
        insert into delays select v_attempt, j.run_at - now() from queue.jobs as j where j.id = v_job;
        update queue.jobs set run_at = now() where id = v_job;
    end loop;
end
$$;
select
    is(
        (select array_agg(delay order by attempt) from delays),
        array[interval '10 seconds', interval '20 seconds', interval '40 seconds'],
        'each failed attempt waits twice as long as the one before'
    );

create temp table jittered as
select queue._backoff_delay('fixed', '100 seconds', '1 hour', 0.2, 1) as d
from generate_series(1, 400);
select ok((
    select count(*) > 0 from jittered
    where d < interval '100 seconds'
), 'jitter shortens some delays');
select ok((
    select count(*) > 0 from jittered
    where d > interval '100 seconds'
), 'and lengthens others');

select * from finish();
rollback;
