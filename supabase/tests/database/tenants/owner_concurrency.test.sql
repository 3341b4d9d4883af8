-- Per-owner concurrency: at most owner_concurrency running jobs per owner, counted at each
-- claim under the queue's lock; a finished job frees a place; unowned jobs are not limited.
begin;
select plan(7);
\ir ../../helpers/core_setup.psql

select queue.create_queue(queue_name => 't_oc', owner_concurrency => 2, lease_seconds => 60);
select queue.register_job_type(job_type => 't_oc_job', queue_name => 't_oc');
select queue.enqueue_jobs((
    select jsonb_agg(jsonb_build_object('job_type', 't_oc_job', 'owner_id', o, 'payload', jsonb_build_object('i', i)))
    from unnest(array['aaaaaaaa-0000-4000-8000-000000000000', 'bbbbbbbb-0000-4000-8000-000000000000']::uuid[]) as o,
        generate_series(1, 10) as i
));

create temp table got as
select
    c.id,
    c.owner_id,
    c.lease_token
from queue.claim_jobs('w-oc', 10, array['t_oc']) as c;
select
    results_eq(
        'select owner_id::text, count(*) from got group by owner_id order by owner_id',
        $$values ('aaaaaaaa-0000-4000-8000-000000000000', 2::bigint), ('bbbbbbbb-0000-4000-8000-000000000000', 2::bigint)$$,
        'a batch of 10 takes 2 jobs of each owner'
    );
select is((select count(*) from queue.claim_jobs('w-oc', 10, array['t_oc'])), 0::bigint, 'and no more while they run');
select
    is(
        (select count(*) from queue.claim_jobs('w-oc', 10, null)),
        0::bigint,
        'a claim over every queue honours it too'
    );

select queue.complete_job(g.id, 'w-oc', lease_token => g.lease_token)
from got as g
where g.owner_id = 'aaaaaaaa-0000-4000-8000-000000000000'
order by g.id limit 1;
select
    results_eq(
        $$select owner_id::text from queue.claim_jobs('w-oc', 10, array['t_oc'])$$,
        $$values ('aaaaaaaa-0000-4000-8000-000000000000')$$,
        'a finished job frees one place for its owner'
    );

select queue.enqueue_job('t_oc_job') from generate_series(1, 3);
select
    is(
        (
            select count(*) from queue.claim_jobs('w-oc', 10, array['t_oc']) as c
            where c.owner_id is null
        ),
        3::bigint,
        'jobs without an owner are not limited'
    );

-- fair and owner_concurrency together
select queue.create_queue(queue_name => 't_oc', owner_concurrency => 3, fair => true, lease_seconds => 60);
select
    results_eq(
        $$select owner_id::text, count(*) from queue.claim_jobs('w-oc', 10, array['t_oc']) group by owner_id order by owner_id$$,
        $$values ('aaaaaaaa-0000-4000-8000-000000000000', 1::bigint), ('bbbbbbbb-0000-4000-8000-000000000000', 1::bigint)$$,
        'raised to 3 on a fair queue: one more each'
    );
select
    throws_ok(
        $$select queue.create_queue(queue_name => 't_oc', owner_concurrency => -1)$$,
        '22023',
        'owner_concurrency must be at least 1 (or null for no limit), got -1',
        'owner_concurrency is checked'
    );

select * from finish();
rollback;
