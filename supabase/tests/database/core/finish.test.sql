-- complete, fail, retry with backoff, dead letter, lease fencing, heartbeat, release, reaper.
begin;
select plan(31);
\ir ../../helpers/core_setup.psql

select queue.enqueue_job('t_job', '{"k": 1}') as job_1 \gset
select
    c.id as claimed_1,
    c.lease_token as token_1
from queue.claim_jobs('w-a', 1, array['t_core']) as c \gset
select is(:claimed_1::bigint, :job_1::bigint, 'the job is claimed');
select is(queue.complete_job(:job_1, 'w-b', '{"r": 0}', lease_token => :'token_1'), false, 'another worker cannot complete it');
select is(queue.complete_job(:job_1, 'w-a', '{"r": 1}', lease_token => :'token_1'), true, 'its worker completes it');
select is(queue.complete_job(:job_1, 'w-a', '{"r": 2}', lease_token => :'token_1'), false, 'nothing completes twice');
select
    is(
        (
            select row(status::text, result) from queue.job_history
            where id = :job_1
        ),
        row('completed'::text, '{"r": 1}'::jsonb),
        'the completed job is in history with its result'
    );
select is((
    select count(*) from queue.jobs
    where id = :job_1
), 0::bigint, 'and gone from the hot table');

-- complete_jobs in a batch, fenced per job
select queue.enqueue_jobs('[{"job_type": "t_job"}, {"job_type": "t_job"}, {"job_type": "t_job"}]');
create temp table batch as select
    c.id,
    c.lease_token
from queue.claim_jobs('w-a', 3, array['t_core']) as c;
select
    is(
        queue.complete_jobs(
            (select array_agg(id) || array[-1::bigint] from batch), 'w-a',
            lease_tokens => (select array_agg(lease_token) || array[gen_random_uuid()] from batch)
        ),
        3,
        'complete_jobs counts what it completed (an unknown id is skipped)'
    );
select
    is(
        queue.complete_jobs((select array_agg(id) from batch), 'w-a', lease_tokens => (select array_agg(lease_token) from batch)),
        0,
        'and completes none twice'
    );

-- failures: fixed backoff of 10 s on t_core, 3 attempts
select queue.enqueue_job('t_job', '{"k": "flaky"}') as job_2 \gset
select queue.claim_jobs('w-a', 1, array['t_core']);
select
    is(
        queue.fail_job(:job_2, 'w-b', 'not mine', lease_token => pg_temp.token(:job_2)),
        null,
        'another worker cannot fail it, even holding its token'
    );
select
    is(
        queue.fail_job(:job_2, 'w-a', 'boom 1', lease_token => pg_temp.token(:job_2)),
        'retrying'::queue.job_status,
        'a failed attempt with attempts left retries'
    );
select
    is(
        (
            select row(status::text, run_at, worker_id) from queue.jobs
            where id = :job_2
        ),
        row('retrying'::text, now() + interval '10 seconds', null::text),
        'after the queue''s backoff, with the lease dropped'
    );
select
    is(
        queue.fail_job(:job_2, 'w-a', 'late', lease_token => gen_random_uuid()),
        null,
        'failing a job the worker no longer holds changes nothing'
    );
update queue.jobs set run_at = now()
where id = :job_2;
select queue.claim_jobs('w-a', 1, array['t_core']);
select queue.fail_job(:job_2, 'w-a', 'boom 2', retry_at => now() + interval '300 days', lease_token => pg_temp.token(:job_2));
select is((
    select run_at from queue.jobs
    where id = :job_2
), now() + interval '300 days', 'retry_at sets the retry time');
update queue.jobs set run_at = now()
where id = :job_2;
select queue.claim_jobs('w-a', 1, array['t_core']);
select
    is(
        queue.fail_job(:job_2, 'w-a', 'boom 3', lease_token => pg_temp.token(:job_2)),
        'dead'::queue.job_status,
        'the last attempt''s failure is dead'
    );
select
    is(
        (
            select array_agg(e.value ->> 'error' order by (e.value ->> 'attempt')::int)
            from queue.job_history as h
            cross join lateral jsonb_array_elements(h.errors) as e (value)
            where h.id = :job_2
        ),
        array['boom 1', 'boom 2', 'boom 3'],
        'every attempt''s error is kept'
    );
select
    is(
        (
            select row(last_error, attempt) from queue.dead_letter
            where id = :job_2
        ),
        row('boom 3'::text, 3),
        'queue.dead_letter shows it with its last error'
    );

select queue.enqueue_job('t_job', '{"k": "doomed"}') as job_3 \gset
select queue.claim_jobs('w-a', 1, array['t_core']);
select
    is(
        queue.fail_job(:job_3, 'w-a', 'bad input', retryable => false, lease_token => pg_temp.token(:job_3)),
        'dead'::queue.job_status,
        'a permanent failure is dead at once'
    );

-- lease fencing: the lease expires, the reaper reclaims, another worker takes it
select queue.enqueue_job('t_job', '{"k": "lost"}') as job_4 \gset
select c.lease_token as old_token from queue.claim_jobs('w-old', 1, array['t_core']) as c \gset
update queue.jobs set lease_expires_at = now() - interval '1 second'
where id = :job_4;
select is(queue.reap_expired_leases() >= 1, true, 'the reaper takes back an expired lease');
select
    is(
        (
            select row(status::text, attempt, errors -> -1 ->> 'worker_id') from queue.jobs
            where id = :job_4
        ),
        row('retrying'::text, 1, 'w-old'::text),
        'the vanished worker''s attempt counts as failed'
    );
update queue.jobs set run_at = now()
where id = :job_4;
select c.lease_token as new_token from queue.claim_jobs('w-new', 1, array['t_core']) as c \gset
select is(queue.complete_job(:job_4, 'w-old', '{}', lease_token => :'old_token'), false, 'the stale worker''s complete is refused');
select is(queue.fail_job(:job_4, 'w-old', 'late', lease_token => :'old_token'), null, 'and so is its fail');
select is(queue.complete_job(:job_4, 'w-new', '{}', attempt => 1, lease_token => :'new_token'), false, 'an old attempt number is refused');
select is(queue.complete_job(:job_4, 'w-new', '{}', attempt => 2, lease_token => :'new_token'), true, 'the new holder completes it');

-- the reaper dead-letters when attempts are spent
select queue.enqueue_job(job_type => 't_job', payload => '{"k": "last"}', max_attempts => 1) as job_5 \gset
select queue.claim_jobs('w-old', 1, array['t_core']);
update queue.jobs set lease_expires_at = now() - interval '1 second'
where id = :job_5;
select queue.reap_expired_leases();
select is((
    select status::text from queue.job_history
    where id = :job_5
), 'dead', 'an expired last attempt is dead');

-- heartbeat extends leases the worker holds and says which it still holds
select queue.enqueue_jobs('[{"job_type": "t_job", "payload": {"k": "hb"}}]');
select c.id as job_6 from queue.claim_jobs('w-hb', 1, array['t_core']) as c \gset
update queue.jobs set lease_expires_at = now() + interval '1 second'
where id = :job_6;
select
    is(
        (
            select array_agg(h)
            from queue.heartbeat('w-hb', array[:job_6, -5], lease_tokens => array[pg_temp.token(:job_6), gen_random_uuid()]) as h
        ),
        array[:job_6::bigint],
        'heartbeat returns the ids still held'
    );
select
    is(
        (
            select lease_expires_at from queue.jobs
            where id = :job_6
        ),
        now() + interval '120 seconds',
        'heartbeat extends the lease by its length'
    );
select
    is(
        (select count(*) from queue.heartbeat('w-other', array[:job_6], lease_tokens => array[pg_temp.token(:job_6)])),
        0::bigint,
        'another worker''s heartbeat extends nothing'
    );
select is((
    select count(*) from queue.worker_sessions
    where worker_id = 'w-hb'
), 1::bigint, 'the worker is recorded alive');
select is(queue.report_progress(:job_6, 'w-hb', '{"pct": 50}', pg_temp.token(:job_6)), true, 'progress is stored for a held job');

-- release: back to the queue without counting the attempt
select is(queue.release_jobs('w-hb', array[:job_6], array[pg_temp.token(:job_6)]), 1, 'release_jobs gives the job back');
select
    is(
        (
            select row(status::text, attempt, worker_id) from queue.jobs
            where id = :job_6
        ),
        row('pending'::text, 0, null::text),
        'released jobs wait again with the attempt uncounted'
    );

select * from finish();
rollback;
