-- Lease tokens: each claim hands out a random token per job, and complete, fail, heartbeat,
-- release and report_progress require it. A worker_id is only a name: a stale worker with the
-- right worker_id but its old token is refused. Releases are recorded on the job.
begin;
select plan(22);
\ir ../../helpers/core_setup.psql

-- a batch gets one distinct random (version 4) token per job
select queue.enqueue_jobs('[{"job_type": "t_job"}, {"job_type": "t_job"}, {"job_type": "t_job"}]');
create temp table batch as select
    c.id,
    c.lease_token
from queue.claim_jobs('w-a', 3, array['t_core']) as c;
select
    is(
        (
            select count(distinct lease_token) from batch
            where lease_token::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4'
        ),
        3::bigint,
        'each claimed job gets its own random token'
    );
select
    is(
        (
            select array_agg(j.lease_token order by j.id) from queue.jobs as j
            where j.id in (select b.id from batch as b)
        ),
        (select array_agg(b.lease_token order by b.id) from batch as b),
        'the token handed out is the one the job keeps'
    );
select
    throws_ok(
        format($$ select queue.complete_job(%s, 'w-a') $$, (select min(id) from batch)),
        '22023', format('lease_token is required: job %s was passed without one', (select min(id) from batch)),
        'completing without the token is a named error'
    );
select
    is(
        queue.complete_jobs(
            (select array_agg(id order by id) from batch), 'w-a',
            lease_tokens => (select array_agg(gen_random_uuid()) from batch)
        ),
        0,
        'the right worker_id with made-up tokens completes nothing'
    );
select
    is(
        queue.complete_jobs(
            (select array_agg(id order by id) from batch), 'w-a',
            lease_tokens => (select array_agg(lease_token order by id desc) from batch)
        ),
        1,
        'tokens pair with ids by position: the batch''s own tokens in reverse order complete only the middle job'
    );
select
    is(
        queue.complete_jobs(
            (select array_agg(id order by id) from batch), 'w-a',
            lease_tokens => (select array_agg(lease_token order by id) from batch)
        ),
        2,
        'the tokens complete the rest'
    );

-- a stale worker: w-a claims, stalls past its lease, the reaper takes the job back, and the same
-- worker_id claims it again with a new token; the late answers of the first claim are refused
select queue.enqueue_job('t_job', '{"k": "stale"}') as job \gset
select c.lease_token as old_token from queue.claim_jobs('w-a', 1, array['t_core']) as c \gset
update queue.jobs set lease_expires_at = now() - interval '1 second'
where id = :job;
select queue.reap_expired_leases();
select is((
    select lease_token from queue.jobs
    where id = :job
), null, 'a reaped job keeps no token');
update queue.jobs set run_at = now()
where id = :job;
select c.lease_token as new_token from queue.claim_jobs('w-a', 1, array['t_core']) as c \gset
select isnt(:'new_token'::uuid, :'old_token'::uuid, 'the new claim has a new token');

set local role queue_worker;
select
    is(
        queue.complete_job(:job, 'w-a', '{}', lease_token => :'old_token'),
        false,
        'the stale complete (same worker_id, old token) is refused'
    );
select is(queue.fail_job(:job, 'w-a', 'late', lease_token => :'old_token'), null, 'so is its fail');
select
    is(
        (select count(*) from queue.heartbeat('w-a', array[:job]::bigint[], lease_tokens => array[:'old_token']::uuid[])),
        0::bigint,
        'its heartbeat extends nothing'
    );
select is(queue.report_progress(:job, 'w-a', '{"pct": 99}', :'old_token'), false, 'its progress is refused');
select is(queue.release_jobs('w-a', array[:job]::bigint[], array[:'old_token']::uuid[]), 0, 'its release is refused');
reset role;
select
    is(
        (
            select row(status::text, attempt, progress)::text from queue.jobs
            where id = :job
        ),
        row('running', 2, null::jsonb)::text,
        'the job still runs its second attempt, untouched'
    );

-- the current holder: heartbeat, progress, release (recorded), then the token is gone
set local role queue_worker;
select
    is(
        (select array_agg(h) from queue.heartbeat('w-a', array[:job]::bigint[], lease_tokens => array[:'new_token']::uuid[]) as h),
        array[:job::bigint],
        'the holder''s heartbeat extends its lease'
    );
select is(queue.report_progress(:job, 'w-a', '{"pct": 50}', :'new_token'), true, 'the holder reports progress');
select is(queue.release_jobs('w-a', array[:job]::bigint[], array[:'new_token']::uuid[]), 1, 'the holder releases it');
reset role;
select
    is(
        (
            select row(status::text, attempt, releases, released_by, released_at = now(), lease_token)::text from queue.jobs
            where id = :job
        ),
        row('retrying', 1, 1, 'w-a', true, null::uuid)::text,
        'the release is recorded on the job (how many, by whom, when) and the token is dropped'
    );
select
    is(
        (select row(releases, released_by)::text from queue.get_job(:job)),
        row(1, 'w-a')::text,
        'get_job shows the release'
    );
select is(queue.complete_job(:job, 'w-a', '{}', lease_token => :'new_token'), false, 'a released token completes nothing');

-- errors are cut, never refused: a failing job can always fail
select queue.cancel_job(:job);
select queue.enqueue_job('t_job', '{"k": "loud"}') as loud \gset
select queue.claim_jobs('w-a', 1, array['t_core']);
select
    is(
        queue.fail_job(:loud, 'w-a', repeat('e', 5000000), lease_token => pg_temp.token(:loud)),
        'retrying'::queue.job_status,
        'a 5 MB error still fails the attempt'
    );
select
    is(
        (
            select errors -> -1 ->> 'error' from queue.jobs
            where id = :loud
        ),
        repeat('e', 4000) || ' [... truncated: 4000 of 5000000 characters kept]',
        'the error is kept to 4,000 characters with a marker'
    );

select * from finish();
rollback;
