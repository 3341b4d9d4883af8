-- End users (authenticated, through queue_public): enqueue only flagged job types, as themselves,
-- and read only their own jobs; anon gets nothing.
begin;
select plan(22);
\ir ../../helpers/ops_setup.psql

-- a job of bob's enqueued by the service (with a payload alice must never see)
select
    queue.enqueue_job(
        job_type => 't_ops_user', payload => '{"secret": "bob-only"}',
        owner_id => (
            select u.id from t_users as u
            where u.name = 'bob'
        )
    ) as bob_job
\gset

-- alice, as PostgREST would run her request
select pg_temp.login('alice');
set local role authenticated;

select
    lives_ok(
        $$select queue_public.enqueue_job(job_type => 't_ops_user', payload => '{"n": 1}')$$,
        'alice enqueues a job type flagged user_enqueue'
    );
select
    is(
        (select count(*) from queue_public.my_jobs),
        1::bigint,
        'alice sees exactly her one job in my_jobs'
    );
select
    is(
        (
            select count(*) from queue_public.my_jobs
            where id = :bob_job
        ),
        0::bigint,
        'alice cannot see bob''s job in my_jobs'
    );
select
    is(
        (
            select count(*) from queue.jobs
            where id = :bob_job
        ),
        0::bigint,
        'RLS hides bob''s job from alice even on the table'
    );
select
    throws_ok(
        'select payload from queue.jobs',
        '42501',
        null,
        'alice cannot read payloads, not even her own'
    );
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_ops_internal')$$,
        '42501',
        'job type t_ops_internal is not available to end users',
        'a job type not flagged for end users is refused'
    );
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 'no_such_type')$$,
        '42501',
        'job type no_such_type is not available to end users',
        'an unknown job type gets the same answer (no probing the registry)'
    );
select
    throws_ok(
        $$select queue.enqueue_job(job_type => 't_ops_user', owner_id => '22222222-2222-4222-8222-222222222222')$$,
        '42501',
        null,
        'alice cannot call the engine''s enqueue_job (and so cannot pick an owner)'
    );
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_ops_user', priority => 1)$$,
        '42501',
        'priority 1 is more urgent than job type t_ops_user allows end users (40 to 100)',
        'end users cannot jump the queue'
    );
select
    throws_ok(
        'select queue.claim_jobs(''w'', 1)',
        '42501',
        null,
        'alice cannot claim jobs'
    );
select
    throws_ok(
        'select * from queue.queue_stats',
        '42501',
        null,
        'alice cannot read the monitoring views'
    );

select queue_public.enqueue_job(job_type => 't_ops_user', unique_key => 'k1') as alice_k1
\gset
select
    is(
        queue_public.enqueue_job(job_type => 't_ops_user', unique_key => 'k1'),
        :alice_k1::bigint,
        'alice''s repeated unique_key returns her waiting job'
    );

-- bob uses the same unique_key: his own job, not alice's
select pg_temp.login('bob');
select
    isnt(
        queue_public.enqueue_job(job_type => 't_ops_user', unique_key => 'k1'),
        :alice_k1::bigint,
        'unique keys are per user: bob''s k1 is not alice''s job'
    );
select
    is(
        (
            select count(*) from queue_public.my_jobs
            where id = :alice_k1
        ),
        0::bigint,
        'bob cannot see alice''s job'
    );
select
    is(
        (select count(*) from queue_public.my_jobs),
        2::bigint,
        'bob sees his two jobs'
    );

-- a request without a user
select set_config('request.jwt.claims', '{"role":"authenticated"}', true);
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_ops_user')$$,
        '42501',
        'enqueueing a job needs a signed-in user (auth.uid() is null)',
        'no sub, no enqueue'
    );
reset role;

-- the owner is the caller, whatever the payload claims
select
    is(
        (
            select array_agg(distinct j.owner_id)
            from queue.jobs as j
            where j.job_type = 't_ops_user' and j.id <> :bob_job and j.payload ->> 'n' = '1'
        ),
        array[(
            select u.id from t_users as u
            where u.name = 'alice'
        )],
        'the job is owned by auth.uid()'
    );

-- a finished job: status, result and last error, still only for its owner
select c.id as claimed_id
from queue.claim_jobs(worker_id => 'w-sec', batch_size => 1, queue_names => array['t_ops']) as c
where c.id = :bob_job
\gset
select queue.complete_job(:bob_job, 'w-sec', '{"ok": true}', lease_token => pg_temp.token(:bob_job));
select pg_temp.login('bob');
set local role authenticated;
select
    results_eq(
        format('select status::text, result from queue_public.my_jobs where id = %s', :bob_job),
        $$values ('completed', '{"ok": true}'::jsonb)$$,
        'bob reads his finished job''s status and result'
    );
select pg_temp.login('alice');
select
    is(
        (
            select count(*) from queue_public.my_jobs
            where id = :bob_job
        ),
        0::bigint,
        'alice cannot see bob''s finished job'
    );
reset role;

-- anon: nothing at all
set local role anon;
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_ops_user')$$,
        '42501',
        null,
        'anon cannot enqueue'
    );
select
    throws_ok(
        'select * from queue_public.my_jobs',
        '42501',
        null,
        'anon cannot read my_jobs'
    );
select
    throws_ok(
        'select count(*) from queue.jobs',
        '42501',
        null,
        'anon cannot reach the engine schema'
    );
reset role;

select * from finish();
rollback;
