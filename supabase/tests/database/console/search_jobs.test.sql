-- search_jobs: one page of live and finished jobs, newest first, with every filter and keyset pages.
begin;
select plan(14);
\ir ../../helpers/ops_setup.psql

-- live: two waiting, one running (owned by alice); finished: one completed, one dead, one cancelled
select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "a", "customer": {"id": 7}}') as a_id
\gset
select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "b"}') as b_id
\gset
select
    queue.enqueue_job(
        job_type => 't_ops_job', payload => '{"k": "c"}', owner_id => '11111111-1111-4111-8111-111111111111'
    ) as c_id
\gset
select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "d"}', queue_name => 't_ops_other') as d_id
\gset
select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "e"}') as e_id
\gset
select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "f"}') as f_id
\gset
-- d completes, e dies, f is cancelled, c runs
select c.id from queue.claim_jobs(worker_id => 'w-s', batch_size => 10, queue_names => array['t_ops_other']) as c;
select queue.complete_job(:d_id, 'w-s', '{"ok": true}', lease_token => pg_temp.token(:d_id));
select queue.cancel_job(:a_id);
select queue.retry_job(:a_id);
select queue.cancel_job(:f_id);
select queue.cancel_job(:b_id);
select queue.retry_job(:b_id);
-- claim c and e (a and b were replayed with run_at now, so claim by id order through priorities)
update queue.jobs set priority = 1
where id in (:c_id, :e_id);
select c.id from queue.claim_jobs(worker_id => 'w-s', batch_size => 2, queue_names => array['t_ops']) as c;
select queue.fail_job(:e_id, 'w-s', 'card declined', retryable => false, lease_token => pg_temp.token(:e_id));

select
    is(
        (select array_agg(s.id) from queue.search_jobs(queue_name => 't_ops') as s),
        array[:f_id, :e_id, :c_id, :b_id, :a_id]::bigint[],
        'live and finished jobs of a queue, newest first'
    );
select
    is(
        (
            select array_agg(s.status::text || ':' || coalesce(s.last_error, '-'))
            from queue.search_jobs(queue_name => 't_ops', lim => 3) as s
        ),
        array['cancelled:-', 'dead:card declined', 'running:-'],
        'each with its status and last error, lim rows'
    );
select
    is(
        (select array_agg(s.id) from queue.search_jobs(queue_name => 't_ops', lim => 2, before_id => :e_id) as s),
        array[:c_id, :b_id]::bigint[],
        'the next page continues below before_id'
    );
select
    is(
        (select array_agg(s.id) from queue.search_jobs(queue_name => 't_ops', before_id => :a_id) as s),
        null::bigint[],
        'below the oldest id there is nothing'
    );
select
    is(
        (select array_agg(s.id) from queue.search_jobs(status => 'dead', job_type => 't_ops_job') as s),
        array[:e_id]::bigint[],
        'a finished status is looked up in history'
    );
select
    is(
        (select array_agg(s.id order by s.id) from queue.search_jobs(status => 'pending', queue_name => 't_ops') as s),
        array[:a_id, :b_id]::bigint[],
        'a live status is looked up among live jobs'
    );
select
    is(
        (select array_agg(s.id) from queue.search_jobs(owner_id => '11111111-1111-4111-8111-111111111111') as s),
        array[:c_id]::bigint[],
        'filtered by owner'
    );
select
    is(
        (select array_agg(s.id) from queue.search_jobs(payload_contains => '{"customer": {"id": 7}}') as s),
        array[:a_id]::bigint[],
        'filtered by payload containment'
    );
select
    is(
        (
            select count(*) from queue.search_jobs(
                job_type => 't_ops_job', created_after => now() - interval '1 minute', created_before => now() + interval '1 second'
            )
        ),
        6::bigint,
        'filtered by creation time'
    );
select
    is(
        (select count(*) from queue.search_jobs(job_type => 't_ops_job', created_before => now() - interval '1 minute')),
        0::bigint,
        'a window before the jobs were made lists nothing'
    );
select
    ok(
        not exists (
            select from information_schema.attributes
            where udt_schema = 'queue' and udt_name = 'job_summary' and attribute_name in ('payload', 'result', 'errors')
        ),
        'a page carries no payloads, results or error histories'
    );
select
    throws_ok(
        'select * from queue.search_jobs(lim => 1001)',
        '22023',
        'lim must be between 1 and 1000, got 1001',
        'lim is checked and named'
    );
select
    throws_ok(
        $$select * from queue.search_jobs(payload_contains => '"x"')$$,
        '22023',
        'payload_contains must be a JSON object, got string',
        'payload_contains must be an object'
    );
select
    throws_ok(
        $$select * from queue.search_jobs(created_after => '2026-01-02', created_before => '2026-01-01')$$,
        '22023',
        'created_after (2026-01-02 00:00:00+00) must be before created_before (2026-01-01 00:00:00+00)',
        'an empty time window is an error naming both ends'
    );

select * from finish();
rollback;
