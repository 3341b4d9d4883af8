-- Monitoring: queue_stats counts and last-hour figures, workers, snapshot_stats, list_jobs.
begin;
select plan(20);
\ir ../../helpers/ops_setup.psql

select queue.create_queue(queue_name => 't_mon', lease_seconds => 60, backoff_base => '1 hour', backoff_max => '2 hours');
select queue.register_job_type(job_type => 't_mon_job', queue_name => 't_mon');

-- live: one retrying, one running, two due, one scheduled
select queue.enqueue_job(job_type => 't_mon_job', payload => '{"k": "retry"}') as retry_id
\gset
select c.id from queue.claim_jobs(worker_id => 'w-mon', batch_size => 1, queue_names => array['t_mon']) as c;
select queue.fail_job(:retry_id, 'w-mon', 'boom', lease_token => pg_temp.token(:retry_id));
select queue.enqueue_job(job_type => 't_mon_job', payload => '{"k": "run", "customer": {"id": 7}}') as run_id
\gset
select c.id from queue.claim_jobs(worker_id => 'w-mon', batch_size => 1, queue_names => array['t_mon']) as c;
select queue.enqueue_job(job_type => 't_mon_job', payload => '{"k": "due-old"}', run_at => now() - interval '10 minutes');
select queue.enqueue_job(job_type => 't_mon_job', payload => '{"k": "due-new"}', run_at => now() - interval '1 minute');
select queue.enqueue_job(job_type => 't_mon_job', payload => '{"k": "future"}', run_at => now() + interval '1 hour');

-- history: in the last hour 4 completed first attempts (waits 1-4 s, runs 10-40 s), one dead after
-- 3 attempts (waited 60 s from creation), one cancelled; older: one completed, one dead
insert into queue.job_history (
    id, job_type, queue_name, status, priority, payload, attempt, max_attempts, run_at, created_at, started_at, finished_at
)
select
    nextval('queue.jobs_id_seq') as id,
    't_mon_job' as job_type,
    't_mon' as queue_name,
    h.status::queue.job_status as status,
    50 as priority,
    '{}'::jsonb as payload,
    h.attempt,
    3 as max_attempts,
    now() - interval '30 minutes' as run_at,
    now() - interval '30 minutes' - h.created_before as created_at,
    now() - interval '30 minutes' + h.wait as started_at,
    now() - interval '30 minutes' + coalesce(h.wait + h.run, interval '0') - h.finished_before as finished_at
from (
    values
    ('completed', 1, interval '1 second', interval '10 seconds', interval '0', interval '0'),
    ('completed', 1, interval '2 seconds', interval '20 seconds', interval '0', interval '0'),
    ('completed', 1, interval '3 seconds', interval '30 seconds', interval '0', interval '0'),
    ('completed', 1, interval '4 seconds', interval '40 seconds', interval '0', interval '0'),
    ('dead', 3, interval '0', interval '5 seconds', interval '60 seconds', interval '0'),
    ('cancelled', 0, null, null, interval '0', interval '0'),
    ('completed', 1, interval '1 second', interval '1 second', interval '0', interval '2 hours'),
    ('dead', 3, interval '1 second', interval '1 second', interval '0', interval '2 days')
) as h (status, attempt, wait, run, created_before, finished_before);

select
    results_eq(
        $$select waiting, scheduled, running, retrying, dead, completed_last_hour, failed_last_hour, oldest_waiting_age
          from queue.queue_stats where queue_name = 't_mon'$$,
        $$values (2, 1, 1, 1, 2, 4, 1, interval '10 minutes')$$,
        'queue_stats counts live jobs by state, the dead letter, and the last hour''s outcomes'
    );
select
    results_eq(
        $$select wait_p50_seconds, round(wait_p95_seconds::numeric, 3), run_p50_seconds, round(run_p95_seconds::numeric, 3)
          from queue.queue_stats where queue_name = 't_mon'$$,
        $$values (3::double precision, 48.8, 25::double precision, 38.5)$$,
        'p50/p95 wait over started jobs and run over first-attempt completions of the last hour'
    );
select
    results_eq(
        $$select jobs_per_minute, failure_rate from queue.queue_stats where queue_name = 't_mon'$$,
        $$values (0.08, 0.2000)$$,
        'jobs per minute and failure rate over the last hour'
    );
select
    results_eq(
        $$select waiting, running, dead, completed_last_hour, oldest_waiting_age, wait_p50_seconds, failure_rate
          from queue.queue_stats where queue_name = 't_ops_other'$$,
        $$values (0, 0, 0, 0, null::interval, null::double precision, null::numeric)$$,
        'an idle queue has a row of zeros'
    );

-- workers
select queue.heartbeat('w-mon', array[:run_id]::bigint[], 'host-a', 4242, '{"version": "1"}', array[pg_temp.token(:run_id)]);
insert into queue.worker_sessions (worker_id, host, pid, started_at, last_seen_at)
values ('w-gone', 'host-b', 1, now() - interval '3 days', now() - interval '2 days');
select
    results_eq(
        $$select worker_id, host, pid, jobs_in_flight, alive, last_heartbeat = now()
          from queue.workers where worker_id in ('w-mon', 'w-gone') order by worker_id$$,
        $$values ('w-gone', 'host-b', 1, 0, false, false), ('w-mon', 'host-a', 4242, 1, true, true)$$,
        'workers shows each process with its jobs in flight and whether it is alive'
    );
select
    is(
        queue.purge_worker_sessions(),
        1,
        'purge_worker_sessions forgets a worker silent for a day'
    );
select
    ok(
        exists (
            select from queue.workers as w
            where w.worker_id = 'w-mon'
        ),
        'and keeps the live one'
    );

-- snapshots
insert into queue.stats_history (
    captured_at, queue_name, waiting, scheduled, running, retrying, dead, completed_last_hour, failed_last_hour
)
values (now() - interval '8 days', 't_mon', 0, 0, 0, 0, 0, 0, 0);
select
    cmp_ok(
        queue.snapshot_stats(),
        '>=',
        2,
        'snapshot_stats writes a row per queue'
    );
select
    results_eq(
        $$select waiting, dead, completed_last_hour, failure_rate from queue.stats_history
          where queue_name = 't_mon' and captured_at = now()$$,
        $$values (2, 2, 4, 0.2000)$$,
        'the snapshot holds the queue''s stats'
    );
select
    is(
        (
            select count(*) from queue.stats_history
            where captured_at < now() - interval '7 days'
        ),
        0::bigint,
        'snapshots older than 7 days are trimmed'
    );
select
    is(
        queue.snapshot_stats(),
        0,
        'a second snapshot in the same transaction adds nothing'
    );

-- list_jobs
select
    is(
        (select count(*) from queue.list_jobs(queue_name => 't_mon', lim => 1000)),
        13::bigint,
        'list_jobs lists live and finished jobs'
    );
select
    is(
        (select array_agg(l.payload ->> 'k') from queue.list_jobs(queue_name => 't_mon', status => 'pending') as l),
        array['future', 'due-new', 'due-old'],
        'filtered by status, newest first'
    );
select
    is(
        (select array_agg(l.id) from queue.list_jobs(payload_contains => '{"customer": {"id": 7}}') as l),
        array[:run_id::bigint],
        'filtered by payload containment'
    );
select
    is(
        (select count(*) from queue.list_jobs(queue_name => 't_mon', status => 'dead')),
        2::bigint,
        'finished statuses come from history'
    );
select
    is(
        (
            select count(*) from queue.list_jobs(
                job_type => 't_mon_job', created_after => now() - interval '1 minute', created_before => now() + interval '1 second'
            )
        ),
        5::bigint,
        'filtered by creation time'
    );
select
    is(
        (
            select array_agg(l.payload ->> 'k')
            from queue.list_jobs(queue_name => 't_mon', status => 'pending', priority => 50, lim => 2, off => 1) as l
        ),
        array['due-new', 'due-old'],
        'with priority, limit and offset'
    );
select
    is(
        (select count(*) from queue.list_jobs(job_type => 'no_such_type')),
        0::bigint,
        'an unmatched filter lists nothing'
    );
select
    throws_ok(
        'select * from queue.list_jobs(lim => 0)',
        '22023',
        'lim must be between 1 and 10000, got 0',
        'lim is checked'
    );
select
    throws_ok(
        $$select * from queue.list_jobs(payload_contains => '[1]')$$,
        '22023',
        'payload_contains must be a JSON object, got array',
        'payload_contains must be an object'
    );

select * from finish();
rollback;
