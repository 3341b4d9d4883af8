-- claim_jobs with queue_names null: the one-scan plan a worker uses by default. The same promises
-- as the per-queue path (claim.test.sql): order, due jobs only, paused queues, the job_types filter.
begin;
select plan(5);
\ir ../../helpers/core_setup.psql

-- only this test's jobs (rolled back with it), so the scan over every queue sees just these
delete from queue.jobs;

select queue.enqueue_jobs((
    '[{"job_type": "t_job", "payload": {"k": "late"}, "priority": 50, "run_at": "2020-01-02T00:00:00Z"},
      {"job_type": "t_job", "payload": {"k": "early"}, "priority": 50, "run_at": "2020-01-01T00:00:00Z"},
      {"job_type": "t_job", "queue_name": "t_other", "payload": {"k": "urgent"}, "priority": 5},
      {"job_type": "t_typed", "payload": {"k": "typed"}, "priority": 70},
      {"job_type": "t_job", "payload": {"k": "future"}, "priority": 1, "run_at": "' || (now() + interval '300 days') || '"}]'
)::jsonb
);

create temp table claimed (n serial, k text);
insert into claimed (k)
select c.payload ->> 'k' from queue.claim_jobs(worker_id => 'w-a', batch_size => 2) as c;
insert into claimed (k)
select c.payload ->> 'k' from queue.claim_jobs(worker_id => 'w-a', batch_size => 10, job_types => array['t_job']) as c;
select
    is(
        (select array_agg(k order by n) from claimed),
        array['urgent', 'early', 'late'],
        'every queue at once: priority first, then run_at, then id'
    );
select is((
    select count(*) from claimed
    where k = 'future'
), 0::bigint, 'a job due later is not claimed');
select is((
    select count(*) from claimed
    where k = 'typed'
), 0::bigint, 'job_types limits the claim to those types');

-- several types take another path (candidates first, then locks): the same promises
select queue.enqueue_job('t_job', '{"k": "plain-2"}', priority => 1);
select queue.enqueue_job('t_typed', '{"k": "typed-2"}', priority => 60);
select
    is(
        (
            select array_agg(c.payload ->> 'k' order by c.priority)
            from queue.claim_jobs(worker_id => 'w-t', batch_size => 10, job_types => array['t_typed', 't_missing']) as c
        ),
        array['typed-2', 'typed'],
        'several job_types: only those types, most urgent first'
    );

select queue.pause_queue('t_core');
select queue.enqueue_job('t_job', '{"k": "paused"}');
select queue.enqueue_job('t_job', '{"k": "running"}', queue_name => 't_other');
select
    is(
        (select array_agg(c.payload ->> 'k') from queue.claim_jobs(worker_id => 'w-b', batch_size => 10) as c),
        array['running'],
        'a paused queue hands out nothing (t_typed waits in paused t_core too)'
    );

select * from finish();
rollback;
