-- claim_jobs: order, due jobs only, paused queues, filters, leases, bad input.
begin;
select plan(15);
\ir ../../helpers/core_setup.psql

create temp table seeded as
select
    t.id,
    t.ord
from queue.enqueue_jobs((
    '[{"job_type": "t_job", "payload": {"k": "late"}, "priority": 50, "run_at": "2020-01-02T00:00:00Z"},
      {"job_type": "t_job", "payload": {"k": "early"}, "priority": 50, "run_at": "2020-01-01T00:00:00Z"},
      {"job_type": "t_job", "payload": {"k": "urgent"}, "priority": 1, "run_at": "2020-01-03T00:00:00Z"},
      {"job_type": "t_job", "payload": {"k": "tie-a"}, "priority": 60, "run_at": "2020-01-01T00:00:00Z"},
      {"job_type": "t_job", "payload": {"k": "tie-b"}, "priority": 60, "run_at": "2020-01-01T00:00:00Z"},
      {"job_type": "t_job", "payload": {"k": "future"}, "priority": 1, "run_at": "' || (now() + interval '300 days') || '"}]'
)::jsonb
) with ordinality as t (id, ord);

create temp table first_claim as
select c.*
from queue.claim_jobs(worker_id => 'w-a', batch_size => 2, queue_names => array['t_core']) as c;
insert into first_claim
select c.*
from queue.claim_jobs(worker_id => 'w-a', batch_size => 2, queue_names => array['t_core']) as c;
select
    is(
        (select array_agg(f.payload ->> 'k' order by f.ctid) from first_claim as f),
        array['urgent', 'early', 'late', 'tie-a'],
        'priority first, then run_at, then id'
    );
select
    is(
        (
            select count(*) from queue.jobs as j inner join first_claim as f on j.id = f.id
            where j.status = 'running'
        ),
        4::bigint,
        'claimed jobs are running'
    );
select
    is(
        (select array_agg(distinct f.attempt) from first_claim as f),
        array[1],
        'a claim starts attempt 1'
    );
select
    ok(
        (select bool_and(f.lease_seconds = 120 and f.lease_expires_at = now() + interval '120 seconds') from first_claim as f),
        'the lease defaults to the queue''s lease_seconds'
    );
select
    is(
        (select array_agg(c.payload ->> 'k') from queue.claim_jobs('w-b', 10, array['t_core']) as c),
        array['tie-b'],
        'a second claim gets what is left that is due; the future job waits'
    );
select
    is(
        (select count(*) from queue.claim_jobs('w-b', 10, array['t_core'])),
        0::bigint,
        'nothing due is left'
    );

-- the job type's timeout is its lease; an explicit lease_seconds wins
select queue.enqueue_job('t_typed', '{"k": "typed"}');
select
    is(
        (select c.lease_seconds from queue.claim_jobs('w-c', 1, array['t_core']) as c),
        45,
        'the job type''s timeout_seconds is the lease'
    );
select queue.enqueue_job('t_typed', '{"k": "typed-2"}');
select
    is(
        (select c.lease_seconds from queue.claim_jobs('w-c', 1, array['t_core'], null, 7) as c),
        7,
        'lease_seconds given to claim_jobs wins'
    );

-- job type filter
select queue.enqueue_job('t_job', '{"k": "plain"}');
select queue.enqueue_job('t_typed', '{"k": "typed-3"}');
select
    is(
        (select array_agg(c.payload ->> 'k') from queue.claim_jobs('w-d', 10, array['t_core'], array['t_typed']) as c),
        array['typed-3'],
        'job_types limits what is claimed'
    );
-- several types take another path (candidates first, then locks): the same promise
select queue.enqueue_job('t_typed', '{"k": "typed-4"}');
select
    is(
        (
            select array_agg(c.payload ->> 'k')
            from queue.claim_jobs('w-d', 10, array['t_core'], array['t_typed', 't_missing']) as c
        ),
        array['typed-4'],
        'several job_types limit what is claimed too'
    );

-- paused queues are skipped, resumed ones served
select queue.pause_queue('t_core');
select is((select count(*) from queue.claim_jobs('w-e', 10, array['t_core'])), 0::bigint, 'a paused queue gives nothing');
select queue.resume_queue('t_core');
select
    is(
        (select array_agg(c.payload ->> 'k') from queue.claim_jobs('w-e', 10, array['t_core']) as c),
        array['plain'],
        'a resumed queue is served again'
    );

select throws_ok($$ select queue.claim_jobs('w', 0) $$, '22023', 'batch_size must be between 1 and 1000, got 0', 'batch_size 0');
select
    throws_ok(
        $$ select queue.claim_jobs('w', 1001) $$, '22023', 'batch_size must be between 1 and 1000, got 1001', 'batch_size over 1000'
    );
select throws_ok($$ select queue.claim_jobs('', 1) $$, '22023', 'worker_id is required', 'empty worker_id');

select * from finish();
rollback;
