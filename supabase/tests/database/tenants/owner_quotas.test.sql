-- Per-owner quotas at enqueue: live jobs per owner (queue and job type scopes), a tier's
-- quota_factor, the end users' payload cap, service_role unlimited unless the queue asks, and
-- nothing written when a quota refuses.
begin;
select plan(20);
\ir ../../helpers/ops_setup.psql

select queue.create_queue(queue_name => 't_ten', owner_max_live_jobs => 3);
select queue.register_job_type(job_type => 't_ten_user', queue_name => 't_ten', user_enqueue => true);
select queue.register_job_type(
    job_type => 't_ten_one', queue_name => 't_ten', user_enqueue => true, owner_max_live_jobs => 1
);

-- pg_temp.live(name): that user's live jobs in t_ten (definer: readable whoever asks)
create function pg_temp.live(user_name text) returns bigint
language sql security definer as $$
    select count(*) from queue.jobs as j
    where j.queue_name = 't_ten' and j.owner_id = (select u.id from t_users as u where u.name = user_name)
$$;

select pg_temp.login('alice');
set local role authenticated;
select queue_public.enqueue_job(job_type => 't_ten_user', payload => jsonb_build_object('n', n))
from generate_series(1, 3) as n;
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_ten_user')$$,
        '53400',
        'owner 11111111-1111-4111-8111-111111111111 may have at most 3 live jobs in queue t_ten, and this enqueue would make 4',
        'the fourth live job of an owner is refused with 53400 naming the owner, the scope and the limit'
    );
select is(pg_temp.live('alice'), 3::bigint, 'nothing was written by the refused enqueue');
select
    ok(
        (select count(*) from queue_public.my_jobs) = 3,
        'alice still sees her three jobs'
    );
-- a repeated unique_key at the quota returns the live job (it adds nothing)
reset role;
select queue.cancel_job(max(j.id)) from queue.jobs as j
where j.queue_name = 't_ten';
select pg_temp.login('alice');
set local role authenticated;
select queue_public.enqueue_job(job_type => 't_ten_user', unique_key => 'once') as once_id \gset
select
    is(
        queue_public.enqueue_job(job_type => 't_ten_user', unique_key => 'once'),
        :once_id::bigint,
        'at the quota, the same unique_key still answers with the live job'
    );

-- another owner has a quota of their own
select pg_temp.login('bob');
select
    lives_ok(
        $$select queue_public.enqueue_job(job_type => 't_ten_user')$$,
        'bob is not limited by alice''s jobs'
    );

-- a job type's quota counts that type's jobs, on top of the queue's
select
    lives_ok(
        $$select queue_public.enqueue_job(job_type => 't_ten_one')$$,
        'bob''s first t_ten_one job is accepted'
    );
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_ten_one')$$,
        '53400',
        'owner 22222222-2222-4222-8222-222222222222 may have at most 1 live jobs in job type t_ten_one, and this enqueue would make 2',
        'a job type''s quota counts the owner''s jobs of that type'
    );
reset role;

-- finished jobs free the quota
select queue.cancel_job(j.id) from queue.jobs as j
where j.queue_name = 't_ten' and j.owner_id = '11111111-1111-4111-8111-111111111111'
order by j.id limit 1;
select pg_temp.login('alice');
set local role authenticated;
select
    lives_ok(
        $$select queue_public.enqueue_job(job_type => 't_ten_user')$$,
        'a finished (here cancelled) job gives its place back'
    );
reset role;

-- service_role is trusted: no quota unless the queue binds every caller
set local role service_role;
select
    lives_ok(
        $$select queue.enqueue_job(job_type => 't_ten_user', owner_id => '11111111-1111-4111-8111-111111111111')$$,
        'service_role enqueues past an owner''s quota by default'
    );
reset role;
select queue.create_queue(queue_name => 't_ten', owner_max_live_jobs => 3, owner_limits_all => true);
set local role service_role;
select
    throws_ok(
        $$select queue.enqueue_job(job_type => 't_ten_user', owner_id => '11111111-1111-4111-8111-111111111111')$$,
        '53400',
        null,
        'with owner_limits_all the quota binds service_role too'
    );
select
    throws_ok(
        $$select queue.enqueue_jobs('[{"job_type": "t_ten_user", "owner_id": "22222222-2222-4222-8222-222222222222"},
            {"job_type": "t_ten_user", "owner_id": "22222222-2222-4222-8222-222222222222"},
            {"job_type": "t_ten_user", "owner_id": "22222222-2222-4222-8222-222222222222"}]')$$,
        '53400',
        'owner 22222222-2222-4222-8222-222222222222 may have at most 3 live jobs in queue t_ten, and this enqueue would make 5',
        'a batch is counted whole: bob''s 2 + 3 is over 3, and the batch is refused'
    );
select is(pg_temp.live('bob'), 2::bigint, 'the refused batch wrote nothing');
select
    lives_ok(
        $$select queue.enqueue_job(job_type => 't_ten_user')$$,
        'jobs without an owner are never limited'
    );
reset role;

-- a tier multiplies the quota: pro has quota_factor 10
select queue.set_owner_tier('22222222-2222-4222-8222-222222222222', 'pro');
select pg_temp.login('bob');
set local role authenticated;
select queue_public.enqueue_job(job_type => 't_ten_user') from generate_series(1, 28);
select is(pg_temp.live('bob'), 30::bigint, 'a pro owner (quota_factor 10) holds 30 live jobs');
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_ten_user')$$,
        '53400',
        'owner 22222222-2222-4222-8222-222222222222 may have at most 30 live jobs in queue t_ten, and this enqueue would make 31',
        '... and no 31st'
    );

-- end users' payloads have their own cap (64 kB by default)
select
    throws_like(
        $$select queue_public.enqueue_job(job_type => 't_ops_user', payload => jsonb_build_object('x', repeat('a', 70000)))$$,
        'payload is 70009 bytes, over the cap of 65536 bytes for end users (queue.settings.max_user_payload_bytes)',
        'an end user''s 70 kB payload is refused'
    );
reset role;
select
    lives_ok(
        $$select queue.enqueue_job(job_type => 't_ops_user', payload => jsonb_build_object('x', repeat('a', 70000)))$$,
        'the service''s cap stays the engine''s (1 MB)'
    );

-- bad settings name the value
select
    throws_ok(
        $$select queue.create_queue(queue_name => 't_ten', owner_enqueue_rate => 5)$$,
        '22023',
        'owner_enqueue_rate (>= 1) and owner_enqueue_interval (over 0, at most a day) go together, got 5 per null',
        'a rate without its interval is refused'
    );
select
    throws_ok(
        $$select queue.register_job_type(job_type => 't_ten_one', queue_name => 't_ten', owner_max_live_jobs => 0)$$,
        '22023',
        'owner_max_live_jobs must be at least 1 (or null for no limit), got 0',
        'a quota of 0 is refused'
    );
select
    throws_ok(
        $$select queue.create_queue(queue_name => 't_ten', owner_concurrency => 0)$$,
        '22023',
        'owner_concurrency must be at least 1 (or null for no limit), got 0',
        'an owner_concurrency of 0 is refused'
    );

select * from finish();
rollback;
