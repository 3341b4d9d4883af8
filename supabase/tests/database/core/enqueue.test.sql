-- enqueue_job and enqueue_jobs: defaults, dedupe, ordering, tiers, and every bad input.
begin;
select plan(32);
\ir ../../helpers/core_setup.psql

select ok(queue.enqueue_job(job_type => 't_job', payload => '{"n": 1}') > 0, 'enqueue_job returns a new id');
select
    is(
        (
            select row(queue_name, priority, max_attempts, status::text, attempt) from queue.jobs
            where payload = '{"n": 1}'
        ),
        row('t_core'::text, 50, 3, 'pending'::text, 0),
        'defaults: the job type''s queue, priority 50, the queue''s max_attempts, pending, attempt 0'
    );
select queue.enqueue_job('t_typed', '{"n": 2}') as typed_id \gset
select
    is(
        (
            select row(priority, max_attempts) from queue.jobs
            where id = :typed_id
        ),
        row(20, 2),
        'the job type''s priority and max_attempts override the queue''s'
    );

-- enqueue_job's one-lookup path (type and payload only) writes the row the general path writes
select queue.enqueue_job('t_typed', '{"same": 1}') as fast_id \gset
select queue.enqueue_jobs('[{"job_type": "t_typed", "payload": {"same": 1}}]') as general_id \gset
select
    is(
        (
            select
                row(
                    j.job_type, j.queue_name, j.priority, j.max_attempts, j.status::text, j.attempt, j.run_at,
                    j.backoff_strategy, j.backoff_base, j.backoff_max, j.owner_id, j.unique_key, j.parent_id
                )
            from queue.jobs as j
            where j.id = :fast_id
        ),
        (
            select
                row(
                    j.job_type, j.queue_name, j.priority, j.max_attempts, j.status::text, j.attempt, j.run_at,
                    j.backoff_strategy, j.backoff_base, j.backoff_max, j.owner_id, j.unique_key, j.parent_id
                )
            from queue.jobs as j
            where j.id = :general_id
        ),
        'enqueue_job with only a type and a payload writes the same job as enqueue_jobs'
    );
-- enqueue_jobs' plain path (every job a type and a payload, nothing else) writes the jobs the
-- general path writes: the same batch with "run_at": null (its default) goes the general way
create temp table plain_ids as
select
    'plain' as path,
    e.ord,
    e.id
from
    queue.enqueue_jobs(
        '[{"job_type": "t_typed", "payload": {"plain": 1}},
      {"job_type": "t_job", "payload": {"plain": 2}}, {"job_type": "t_typed"}]'
    ) with ordinality as e (id, ord)
union all
select
    'general' as path,
    e.ord,
    e.id
from queue.enqueue_jobs(
    '[{"job_type": "t_typed", "payload": {"plain": 1}, "run_at": null},
      {"job_type": "t_job", "payload": {"plain": 2}}, {"job_type": "t_typed"}]'
) with ordinality as e (id, ord);
select
    results_eq(
        $$select p.ord, j.job_type, j.queue_name, j.priority, j.max_attempts, j.status::text, j.attempt,
                 j.run_at, j.payload, j.backoff_strategy, j.owner_id, j.unique_key, j.parent_id
          from plain_ids as p join queue.jobs as j on j.id = p.id
          where p.path = 'plain' order by p.ord$$,
        $$select p.ord, j.job_type, j.queue_name, j.priority, j.max_attempts, j.status::text, j.attempt,
                 j.run_at, j.payload, j.backoff_strategy, j.owner_id, j.unique_key, j.parent_id
          from plain_ids as p join queue.jobs as j on j.id = p.id
          where p.path = 'general' order by p.ord$$,
        'a batch of plain jobs is written as the general path writes it, ids in input order'
    );
select
    is(
        (
            select array_agg(p.id order by p.ord) from plain_ids as p
            where p.path = 'plain'
        ),
        (
            select array_agg(p.id order by p.id) from plain_ids as p
            where p.path = 'plain'
        ),
        'the plain path returns the ids in input order'
    );
select
    throws_ok(
        $$ select queue.enqueue_jobs('[{"job_type": "t_job"}, {"job_type": "t_nope", "payload": {}}]') $$,
        '22023', 'jobs[1]: unknown job type: t_nope',
        'a plain-looking batch with an unknown type gets the general path''s error'
    );
select
    throws_ok(
        $$ select queue.enqueue_jobs(jsonb_build_array(jsonb_build_object('job_type', 't_job'),
               jsonb_build_object('job_type', 't_job', 'payload', jsonb_build_object('x', repeat('x', 2000000))))) $$,
        '22023', 'jobs[1]: payload is 2000009 bytes, over the cap of 1048576 bytes (queue.settings.max_payload_bytes)',
        'a plain batch with a payload over the cap is refused whole'
    );

-- a payload read from a table may be compressed: its size says nothing of its text, so the cap
-- is still checked exactly (2 MB of one letter compresses to a few kB)
create temp table big_payloads (p jsonb);
insert into big_payloads values (jsonb_build_object('x', repeat('x', 2000000)));
select
    throws_ok(
        $$ select queue.enqueue_job('t_job', b.p) from big_payloads as b $$,
        '22023', 'payload is 2000009 bytes, over the cap of 1048576 bytes (queue.settings.max_payload_bytes)',
        'a compressed payload over the cap is refused by enqueue_job too'
    );
select
    queue.enqueue_job(
        job_type => 't_typed', payload => '{"n": 3}', queue_name => 't_other', priority => 5, max_attempts => 9
    ) as explicit_id
\gset
select
    is(
        (
            select row(queue_name, priority, max_attempts) from queue.jobs
            where id = :explicit_id
        ),
        row('t_other'::text, 5, 9),
        'explicit queue, priority and max_attempts win'
    );
select
    is(
        queue.enqueue_job(job_type => 't_job', unique_key => 'u-1'),
        queue.enqueue_job(job_type => 't_job', payload => '{"other": true}', unique_key => 'u-1'),
        'a live unique_key returns the existing job''s id'
    );
select is((
    select count(*) from queue.jobs
    where unique_key = 'u-1'
), 1::bigint, 'and adds no second job');
create temp table dedupe_batch as
select
    t.id,
    t.ord
from queue.enqueue_jobs(
    '[{"job_type": "t_job", "unique_key": "u-2"}, {"job_type": "t_job", "unique_key": "u-1"},
      {"job_type": "t_job", "unique_key": "u-2"}]'
) with ordinality as t (id, ord);
select
    is(
        (select array_agg(d.id order by d.ord) from dedupe_batch as d),
        array[
            (
                select j.id from queue.jobs as j
                where j.unique_key = 'u-2'
            ),
            (
                select j.id from queue.jobs as j
                where j.unique_key = 'u-1'
            ),
            (
                select j.id from queue.jobs as j
                where j.unique_key = 'u-2'
            )
        ],
        'enqueue_jobs answers a live or repeated key with the id of the job holding it'
    );
select
    is(
        (
            select count(*) from queue.jobs
            where unique_key = 'u-2'
        ),
        1::bigint,
        'a key repeated inside one batch is enqueued once'
    );

create temp table batch as
select
    t.id,
    t.ord
from queue.enqueue_jobs((
    '[{"job_type": "t_job", "payload": {"b": 1}}, {"job_type": "t_job", "payload": {"b": 2}, "priority": 7},
      {"job_type": "t_typed", "payload": {"b": 3}, "run_at": "' || (now() + interval '300 days') || '"}]'
)::jsonb
) with ordinality as t (id, ord);
select
    is(
        (select array_agg(j.payload ->> 'b' order by b.ord) from batch as b inner join queue.jobs as j on b.id = j.id),
        array['1', '2', '3'],
        'enqueue_jobs returns ids in input order'
    );
select
    is(
        (
            select j.run_at from batch as b inner join queue.jobs as j on b.id = j.id
            where b.ord = 3
        ),
        now() + interval '300 days',
        'run_at is kept for scheduled jobs'
    );
select is((select count(*) from queue.enqueue_jobs('[]')), 0::bigint, 'an empty batch enqueues nothing');

select queue.set_owner_tier('00000000-0000-0000-0000-0000000000aa', 'enterprise');
select queue.enqueue_job(job_type => 't_job', owner_id => '00000000-0000-0000-0000-0000000000aa') as tier_id \gset
select
    is(
        (
            select priority from queue.jobs
            where id = :tier_id
        ),
        30,
        'an enterprise owner''s job runs 20 steps sooner'
    );
select
    queue.enqueue_job(
        job_type => 't_job', priority => 5, owner_id => '00000000-0000-0000-0000-0000000000aa'
    ) as tier_top_id
\gset
select
    is(
        (
            select priority from queue.jobs
            where id = :tier_top_id
        ),
        1,
        'a tier never pushes priority past 1'
    );

-- bad input: a clear error, nothing written
select throws_ok($$ select queue.enqueue_job('no_such_type') $$, '22023', 'unknown job type: no_such_type', 'unknown job type');
select
    throws_ok(
        $$ select queue.enqueue_job(job_type => 't_job', queue_name => 'no_such_queue') $$,
        '22023', 'unknown queue: no_such_queue', 'unknown queue'
    );
select
    throws_ok(
        $$ select queue.enqueue_job(job_type => 't_job', priority => 0) $$,
        '22023', 'priority must be between 1 and 100, got 0', 'priority below 1'
    );
select
    throws_ok(
        $$ select queue.enqueue_job(job_type => 't_job', priority => 101) $$,
        '22023', 'priority must be between 1 and 100, got 101', 'priority above 100'
    );
select
    throws_ok(
        $$ select queue.enqueue_job('t_job', '[1, 2]') $$,
        '22023', 'payload must be a JSON object, got array', 'payload that is an array'
    );
select
    throws_ok(
        $$ select queue.enqueue_job('t_job', null) $$,
        '22023', 'payload must be a JSON object, got null', 'null payload'
    );
update queue.settings set max_payload_bytes = 100;
select
    throws_ok(
        format($$ select queue.enqueue_job('t_job', jsonb_build_object('big', repeat('x', 200))) $$),
        '22023', 'payload is 211 bytes, over the cap of 100 bytes (queue.settings.max_payload_bytes)',
        'payload over the size cap'
    );
update queue.settings set max_payload_bytes = 1048576;
select
    throws_ok(
        $$ select queue.enqueue_job(job_type => 't_job', max_attempts => 0) $$,
        '22023', 'max_attempts must be at least 1, got 0', 'max_attempts below 1'
    );
select
    throws_ok(
        $$ select queue.enqueue_jobs('{"job_type": "t_job"}') $$,
        '22023', 'jobs must be a JSON array of job objects, got object', 'enqueue_jobs wants an array'
    );
select
    throws_ok(
        $$ select queue.enqueue_jobs('[{"job_type": "t_job", "priorty": 3}]') $$,
        '22023', null, 'a misspelt key is refused'
    );
select
    throws_ok(
        $$ select queue.enqueue_jobs('[{"job_type": "t_job"}, {"job_type": "t_job", "priority": "high"}]') $$,
        '22023', 'jobs[1]: priority must be an integer from 1 to 100, got "high"', 'the bad job''s position is named'
    );
-- (no count check here: throws_ok runs each statement in a subtransaction that is always rolled
-- back, so a count after it could not fail; a batch is one statement, and the errors above prove
-- it is refused rather than partly applied)
select
    throws_ok(
        $$ select queue.enqueue_jobs('[42]') $$,
        '22023', 'each job must be a JSON object, got number', 'a job that is not an object'
    );
select
    throws_ok(
        $$ select queue.enqueue_jobs('[{"payload": {}}]') $$,
        '22023', 'job_type is required', 'a job without job_type'
    );

select * from finish();
rollback;
