-- queue_worker: claims, finishes and heartbeats; reads a payload only through claim_jobs, and
-- only of the jobs it claimed.
begin;
select plan(14);
\ir ../../helpers/ops_setup.psql

select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "claimable"}', priority => 1) as job_a
\gset
select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "not-yet"}', priority => 90) as job_b
\gset

set local role queue_worker;

select
    throws_ok(
        'select payload from queue.jobs',
        '42501',
        null,
        'the worker cannot read payloads from queue.jobs'
    );
select
    throws_ok(
        'select payload from queue.job_history',
        '42501',
        null,
        'the worker cannot read finished payloads'
    );
select
    throws_ok(
        'select payload from queue.all_jobs',
        '42501',
        null,
        'the worker cannot read the all_jobs view'
    );
select
    throws_ok(
        format('select queue.get_job(%s)', :job_b),
        '42501',
        null,
        'the worker cannot fetch an unclaimed job with get_job'
    );
select
    throws_ok(
        $$select * from queue.list_jobs(payload_contains => '{"k": "not-yet"}')$$,
        '42501',
        null,
        'the worker cannot list jobs'
    );
select
    throws_ok(
        $$select queue.enqueue_jobs('[{"job_type": "t_ops_job"}]')$$,
        '42501',
        null,
        'the worker cannot bulk-enqueue (it may enqueue_job follow-up jobs, which returns only ids)'
    );
select
    throws_ok(
        format('select queue.cancel_job(%s)', :job_b),
        '42501',
        null,
        'the worker cannot cancel jobs'
    );

select
    results_eq(
        $$select c.id, c.payload from queue.claim_jobs(worker_id => 'w-role', batch_size => 1, queue_names => array['t_ops']) as c$$,
        format($$values (%s::bigint, '{"k": "claimable"}'::jsonb)$$, :job_a),
        'claim_jobs hands the worker the payload of the job it claimed, and only that one'
    );
select
    results_eq(
        format(
            $$select queue.heartbeat('w-role', array[%s::bigint], 'host-1', 42, lease_tokens => array[pg_temp.token(%s)])$$, :job_a, :job_a
        ),
        format('values (%s::bigint)', :job_a),
        'the worker heartbeats its job'
    );
select
    ok(
        queue.report_progress(:job_a, 'w-role', '{"pct": 50}', pg_temp.token(:job_a)),
        'the worker reports progress'
    );
select
    is(
        queue.report_service('t-ops-svc', true),
        'closed',
        'the worker reports a service outcome'
    );
select
    ok(
        queue.complete_job(:job_a, 'w-role', '{"done": true}', lease_token => pg_temp.token(:job_a)),
        'the worker completes its job'
    );
select
    ok(
        not queue.complete_job(:job_b, 'w-role', lease_token => gen_random_uuid()),
        'the worker cannot complete a job it does not hold'
    );
select
    is(
        queue.release_jobs('w-role', array[:job_b]::bigint[], array[gen_random_uuid()]),
        0,
        'the worker cannot release a job it does not hold'
    );
reset role;

select * from finish();
rollback;
