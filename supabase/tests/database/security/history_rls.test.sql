-- RLS on queue.job_history itself (not only my_jobs' own filter): a signed-in user reading the
-- table directly sees only the finished jobs they own.
begin;
select plan(3);
\ir ../../helpers/ops_setup.psql

select
    queue.enqueue_job(job_type => 't_ops_job', payload => '{}', owner_id => (
        select id from t_users
        where name = 'alice'
    )) as alice_job
\gset
select queue.enqueue_job(job_type => 't_ops_job', payload => '{}', owner_id => (
    select id from t_users
    where name = 'bob'
)) as bob_job \gset
select queue.enqueue_job(job_type => 't_ops_job', payload => '{}') as nobodys_job \gset
select queue.complete_jobs(array_agg(c.id), 'w', lease_tokens => array_agg(c.lease_token))
from queue.claim_jobs('w', 3, array['t_ops']) as c;

select pg_temp.login('alice');
set local role authenticated;
select
    is(
        (
            select array_agg(id order by id) from queue.job_history
            where id in (:alice_job, :bob_job, :nobodys_job)
        ),
        array[:alice_job::bigint],
        'alice reads only her own finished job from queue.job_history'
    );
select is((
    select count(*) from queue.job_history
    where owner_id is null
), 0::bigint, 'jobs without an owner are hidden');
reset role;
select
    is(
        (
            select count(*) from queue.job_history
            where id in (:alice_job, :bob_job, :nobodys_job)
        ),
        3::bigint,
        'all three are in history (the filter is RLS, not a missing row)'
    );

select * from finish();
rollback;
