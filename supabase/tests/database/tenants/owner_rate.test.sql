-- The per-owner enqueue rate: a token bucket per owner and scope, its capacity, its refill, a
-- tier's quota_factor, and the 53400 error that says when to retry. now() stands still inside
-- the test's transaction, so time passes by moving the bucket's refilled_at back.
begin;
select plan(11);
\ir ../../helpers/ops_setup.psql

select queue.create_queue(queue_name => 't_rate', owner_enqueue_rate => 2, owner_enqueue_interval => '1 hour');
select queue.register_job_type(job_type => 't_rate_user', queue_name => 't_rate', user_enqueue => true);

-- pg_temp.wait(name, seconds): as if that much time had passed since alice's bucket was refilled
create function pg_temp.wait(seconds int) returns void
language sql security definer as $$
    update queue.owner_buckets as b
    set refilled_at = b.refilled_at - make_interval(secs => seconds)
    where b.owner_id = '11111111-1111-4111-8111-111111111111' and b.scope = 'queue:t_rate'
$$;
create function pg_temp.tokens() returns double precision
language sql security definer as $$
    select b.tokens from queue.owner_buckets as b
    where b.owner_id = '11111111-1111-4111-8111-111111111111' and b.scope = 'queue:t_rate'
$$;

select pg_temp.login('alice');
set local role authenticated;
select
    lives_ok(
        $$select queue_public.enqueue_job(job_type => 't_rate_user'), queue_public.enqueue_job(job_type => 't_rate_user')$$,
        'a full bucket lets a burst of rate (2) through'
    );
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_rate_user')$$,
        '53400',
        'owner 11111111-1111-4111-8111-111111111111 is over the enqueue rate of queue t_rate: 2 per 01:00:00',
        'the third enqueue within the interval is refused with 53400'
    );
select
    throws_like(
        $$select queue_public.enqueue_job(job_type => 't_rate_user')$$,
        '%over the enqueue rate%',
        'and stays refused while no time passes'
    );
select is(pg_temp.tokens(), 0::double precision, 'refusals spend nothing: the bucket is empty, not negative');

-- half the interval refills one token (2 per hour: one per 30 minutes)
select pg_temp.wait(1799);
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_rate_user')$$,
        '53400',
        null,
        'one second short of a token: still refused'
    );
select pg_temp.wait(1);
select
    lives_ok(
        $$select queue_public.enqueue_job(job_type => 't_rate_user')$$,
        'after 30 minutes one token is back'
    );
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_rate_user')$$,
        '53400',
        null,
        '... and only one'
    );
-- a long pause refills to the capacity, never beyond
select pg_temp.wait(86400);
select queue_public.enqueue_job(job_type => 't_rate_user');
select is(pg_temp.tokens(), 1::double precision, 'after a day the bucket held 2 (its capacity), one is spent');

-- another owner has a bucket of their own; a pro owner (quota_factor 10) gets 20 per hour
reset role;
select queue.set_owner_tier('22222222-2222-4222-8222-222222222222', 'pro');
select pg_temp.login('bob');
set local role authenticated;
select
    lives_ok(
        $$select queue_public.enqueue_job(job_type => 't_rate_user') from generate_series(1, 20)$$,
        'bob, on pro, has his own bucket of 20 (rate x quota_factor)'
    );
select
    throws_ok(
        $$select queue_public.enqueue_job(job_type => 't_rate_user')$$,
        '53400',
        'owner 22222222-2222-4222-8222-222222222222 is over the enqueue rate of queue t_rate: 20 per 01:00:00',
        '... and no 21st'
    );
reset role;
set local role service_role;
select
    lives_ok(
        $$select queue.enqueue_job(job_type => 't_rate_user', owner_id => '22222222-2222-4222-8222-222222222222')$$,
        'service_role is not rate limited unless the queue says owner_limits_all'
    );
reset role;

select * from finish();
rollback;
