-- cancel, retry, pause/resume, get_job, queue and job type validation.
begin;
select plan(26);
\ir ../../helpers/core_setup.psql

select queue.enqueue_job('t_job', '{"k": "c"}') as waiting \gset
select is(queue.cancel_job(:waiting), true, 'a waiting job can be cancelled');
select is((queue.get_job(:waiting)).status::text, 'cancelled', 'get_job finds it cancelled in history');
select throws_ok(format('select queue.cancel_job(%s)', :waiting), '55000', null, 'cancelling a finished job is an error');
select throws_ok('select queue.cancel_job(-1)', 'P0002', 'job -1 not found', 'cancelling an unknown job is an error');

select queue.enqueue_job('t_job', '{"k": "r"}') as running \gset
select queue.claim_jobs('w', 1, array['t_core']);
select
    throws_ok(
        format('select queue.cancel_job(%s)', :running), '55000',
        format('job %s is running (worker w) and cannot be cancelled', :running), 'cancelling a running job is an error'
    );
select is((queue.get_job(:running)).status::text, 'running', 'get_job sees a running job');
select is((queue.get_job(:running)).worker_id, 'w', 'with its worker');

-- retry_job replays dead and cancelled jobs
select queue.fail_job(:running, 'w', 'fatal', retryable => false, lease_token => pg_temp.token(:running));
select is(queue.retry_job(:running), :running::bigint, 'retry_job replays a dead job under its id');
select
    is(
        (
            select row(status::text, attempt, jsonb_array_length(errors)) from queue.jobs
            where id = :running
        ),
        row('pending'::text, 0, 1),
        'pending again with fresh attempts and its old errors kept'
    );
select is(queue.retry_job(:waiting), :waiting::bigint, 'retry_job replays a cancelled job');
select
    throws_ok(
        format('select queue.retry_job(%s)', :waiting), '55000', null, 'retrying a live job is an error'
    );
select queue.claim_jobs('w', 10, array['t_core']);
select queue.complete_job(:waiting, 'w', lease_token => gen_random_uuid());
select queue.complete_job(:running, 'w', '{"done": true}', lease_token => pg_temp.token(:running));
select throws_ok(format('select queue.retry_job(%s)', :waiting), '55000', null, 'retrying a completed job is an error');
select throws_ok('select queue.get_job(-1)', 'P0002', null, 'get_job of an unknown id is an error');
select
    is(
        (queue.get_job(:running)).result,
        '{"done": true}'::jsonb,
        'get_job returns finished jobs with their result'
    );

-- pause / resume
select throws_ok($$ select queue.pause_queue('nope') $$, '22023', 'unknown queue: nope', 'pausing an unknown queue');
select queue.pause_queue('t_core');
select is((
    select paused from queue.queues
    where queue_name = 't_core'
), true, 'pause_queue pauses');
select queue.resume_queue('t_core');
select is((
    select paused from queue.queues
    where queue_name = 't_core'
), false, 'resume_queue resumes');

-- create_queue and register_job_type validate what they are given
select throws_ok($$ select queue.create_queue('Bad Name') $$, '22023', null, 'queue names are checked');
select
    throws_ok(
        $$ select queue.create_queue('t_x', max_attempts => 0) $$, '22023', 'max_attempts must be from 1 to 100, got 0',
        'a queue needs at least one attempt'
    );
select
    throws_ok(
        $$ select queue.create_queue('t_x', rate_limit => 5) $$, '22023', null, 'rate_limit needs rate_interval'
    );
select
    throws_ok(
        $$ select queue.register_job_type('t_y', queue_name => 'nope') $$, '22023', 'unknown queue: nope',
        'a job type needs a known queue'
    );
select
    throws_ok(
        $$ select queue.register_job_type('t_y', priority => 0) $$, '22023', 'priority must be between 1 and 100, got 0',
        'job type priority is checked'
    );
select
    is(
        (queue.create_queue('t_core', concurrency => 2)).backoff_strategy::text,
        'exponential',
        'create_queue on an existing queue sets every field (declarative)'
    );

select is(queue.ensure_job_type('t_new', queue_name => 't_other'), true, 'ensure_job_type adds a missing type');
select is(queue.ensure_job_type('t_typed', priority => 90), false, 'ensure_job_type leaves an existing type alone');
select
    is(
        (
            select row(queue_name, priority, timeout_seconds) from queue.job_types
            where job_type = 't_typed'
        ),
        row('t_core'::text, 20, 45),
        'its settings are kept'
    );

select * from finish();
rollback;
