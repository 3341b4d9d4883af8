-- discard_dead_jobs: deletes dead jobs only, and says which.
begin;
select plan(5);
\ir ../../helpers/ops_setup.psql

select queue.enqueue_job(job_type => 't_ops_job') as dead_id
\gset
select queue.enqueue_job(job_type => 't_ops_job') as cancelled_id
\gset
select queue.enqueue_job(job_type => 't_ops_job') as live_id
\gset
select c.id from queue.claim_jobs(worker_id => 'w-d', batch_size => 1, queue_names => array['t_ops']) as c;
select queue.fail_job(:dead_id, 'w-d', 'gone', retryable => false, lease_token => pg_temp.token(:dead_id));
select queue.cancel_job(:cancelled_id);

select
    is(
        (select array_agg(d) from queue.discard_dead_jobs(array[:dead_id, :cancelled_id, :live_id, -1]::bigint[]) as d),
        array[:dead_id]::bigint[],
        'only the dead job is discarded, and its id returned'
    );
select
    ok(
        not exists (
            select from queue.job_history
            where id = :dead_id
        ),
        'the dead job is gone from history'
    );
select
    is(
        (select array[(queue.get_job(:cancelled_id)).status, (queue.get_job(:live_id)).status]::text[]),
        array['cancelled', 'pending'],
        'a cancelled and a live job are left alone'
    );
select
    throws_ok(
        $$select queue.discard_dead_jobs('{}')$$,
        '22023',
        'job_ids must hold at least one id, got {}',
        'an empty list is an error naming it'
    );
select
    throws_ok(
        'select queue.discard_dead_jobs(null)',
        '22023',
        'job_ids must hold at least one id, got null',
        'so is null'
    );

select * from finish();
rollback;
