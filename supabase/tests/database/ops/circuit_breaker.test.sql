-- Shared circuit breakers: failures reported for a service open it; while it cools down, jobs of
-- the types that depend on it are not claimed (their attempts are not burnt); a success closes it.
begin;
select plan(12);
\ir ../../helpers/ops_setup.psql

select queue.register_job_type(job_type => 't_cb_ocr', queue_name => 't_ops', services => array['t-ocr-api']);
select queue.enqueue_job(job_type => 't_cb_ocr', payload => '{"k": "ocr"}', priority => 1) as ocr_id
\gset
select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "plain"}', priority => 50) as plain_id
\gset

select
    is(
        queue.report_service('t-ocr-api', false, 'timeout', failure_threshold => 3, cooldown => '10 minutes'),
        'closed',
        'one failure below the threshold keeps the breaker closed'
    );
select queue.report_service('t-ocr-api', false, 'timeout');
select
    is(
        queue.report_service('t-ocr-api', false, 'HTTP 503'),
        'open',
        'the third failure in a row opens it'
    );
select
    results_eq(
        $$select state, failures, last_error from queue.circuit_breakers where service = 't-ocr-api'$$,
        $$values ('open', 3, 'HTTP 503')$$,
        'the breaker records the failures and the last error'
    );
select
    is(
        (select array_agg(c.id) from queue.claim_jobs(worker_id => 'w-cb', batch_size => 10, queue_names => array['t_ops']) as c),
        array[:plain_id::bigint],
        'while open, jobs of dependent types are skipped and others are claimed'
    );
select
    results_eq(
        format('select status::text, attempt from queue.jobs where id = %s', :ocr_id),
        $$values ('pending', 0)$$,
        'the skipped job keeps its attempts'
    );
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w-cb', batch_size => 10, job_types => array['t_cb_ocr'])),
        0::bigint,
        'the all-queues claim skips it too'
    );
select
    ok(
        exists (
            select from jsonb_array_elements_text(queue.health() -> 'reasons') as r
            where r like 'circuit breaker t-ocr-api is open since %: HTTP 503'
        ),
        'health reports the open breaker'
    );

-- the cool-down passes: the next claim is the trial call
update queue.circuit_breakers set opened_at = now() - interval '11 minutes'
where service = 't-ocr-api';
select
    is(
        (select array_agg(c.id) from queue.claim_jobs(worker_id => 'w-cb', batch_size => 10, queue_names => array['t_ops']) as c),
        array[:ocr_id::bigint],
        'after the cool-down the job is claimed again'
    );
select
    is(
        queue.report_service('t-ocr-api', false, 'still down'),
        'open',
        'a failed trial opens it again at once'
    );
select
    ok(
        (
            select c.opened_at = now() from queue.circuit_breakers as c
            where c.service = 't-ocr-api'
        ),
        'with a fresh cool-down'
    );
select
    is(
        queue.report_service('t-ocr-api', true),
        'closed',
        'a success closes it'
    );
select
    results_eq(
        $$select state, failures, opened_at from queue.circuit_breakers where service = 't-ocr-api'$$,
        $$values ('closed', 0, null::timestamptz)$$,
        'and resets the count'
    );

select * from finish();
rollback;
