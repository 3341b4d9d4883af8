-- queue.health(): healthy, degraded and unhealthy, each with its reason.
begin;
select plan(17);
\ir ../../helpers/ops_setup.psql

-- pg_temp.has_reason(pattern): whether health() gives a reason like the pattern
create function pg_temp.has_reason(pattern text, h jsonb default queue.health()) returns boolean
language sql as $$
    select exists (select from jsonb_array_elements_text(h -> 'reasons') as r where r like pattern)
$$;

-- a clean slate in this transaction: nothing waiting, nothing failed, housekeeping registered
-- and with no failed runs, one live worker
delete from queue.jobs;
delete from queue.job_history
where finished_at > now() - interval '1 hour';
update queue.circuit_breakers set state = 'closed', failures = 0, opened_at = null;
delete from queue.worker_sessions;
select queue.sync_cron_jobs();
delete from cron.job_run_details
where jobid in (
    select j.jobid from cron.job as j
    where j.jobname like 'queue-%'
);
select queue.heartbeat('w-health');

select
    is(
        queue.health() - 'checked_at' - 'queues',
        jsonb_build_object(
            'status', 'healthy',
            'reasons', '[]'::jsonb,
            'workers', jsonb_build_object('live', 1, 'known', 1),
            'housekeeping', jsonb_build_object(
                'pg_cron_version', array_to_string(queue._cron_version(), '.'), 'missing', '[]'::jsonb
            )
        ),
        'healthy when nothing is wrong'
    );
select
    ok(
        queue.health() -> 'queues' ? 't_ops',
        'health lists each queue'
    );

-- housekeeping
select cron.unschedule('queue-reap');
select
    is(
        queue.health() ->> 'status',
        'degraded',
        'degraded when housekeeping is not scheduled'
    );
select
    ok(
        pg_temp.has_reason('housekeeping is not scheduled: queue-reap missing or inactive in pg_cron%'),
        'and says which entry is missing'
    );
select
    is(
        queue.health() #> '{housekeeping,missing}',
        '["queue-reap"]'::jsonb,
        'housekeeping.missing names it'
    );
select queue.sync_cron_jobs();
select cron.alter_job(j.jobid, active => false) from cron.job as j
where j.jobname = 'queue-stats';
select
    ok(
        pg_temp.has_reason('housekeeping is not scheduled: queue-stats missing or inactive in pg_cron%'),
        'an inactive entry counts as not scheduled'
    );
select queue.sync_cron_jobs();
select cron.alter_job(j.jobid, active => true) from cron.job as j
where j.jobname = 'queue-stats';
insert into cron.job_run_details (jobid, runid, command, status, return_message, start_time, end_time)
select
    j.jobid,
    nextval('cron.runid_seq') as runid,
    j.command,
    'failed' as status,
    'ERROR: t-boom' as return_message,
    now() as start_time,
    now() as end_time
from cron.job as j
where j.jobname = 'queue-stats';
select
    ok(
        pg_temp.has_reason('housekeeping failed: queue-stats at % ERROR: t-boom'),
        'a failed housekeeping run is reported with its message'
    );
delete from cron.job_run_details
where jobid in (
    select j.jobid from cron.job as j
    where j.jobname like 'queue-%'
);
select queue.schedule_job('t-rec', '0 4 * * *', 't_ops_job');
insert into cron.job_run_details (jobid, runid, command, status, return_message, start_time, end_time)
select
    j.jobid,
    nextval('cron.runid_seq') as runid,
    j.command,
    'failed' as status,
    'ERROR: t-rec-boom' as return_message,
    now() as start_time,
    now() as end_time
from cron.job as j
where j.jobname = 'queue-job:t-rec';
select
    ok(
        pg_temp.has_reason('recurring job t-rec failed at % ERROR: t-rec-boom'),
        'a recurring job whose last run failed is reported'
    );
select queue.unschedule_job('t-rec');
select
    is(
        queue.health() ->> 'status',
        'healthy',
        'healthy again once housekeeping is back'
    );

-- backlog
select queue.enqueue_job(job_type => 't_ops_job', run_at => now() - interval '10 minutes');
select
    ok(
        pg_temp.has_reason('queue t_ops: oldest waiting job has waited 00:10:00 (over 00:05:00)')
        and queue.health() ->> 'status' = 'degraded',
        'degraded when the oldest waiting job waited longer than max_wait'
    );
select
    is(
        queue.health(max_wait => '1 minute') ->> 'status',
        'unhealthy',
        'unhealthy when it waited over 6 x max_wait'
    );

-- no live workers while jobs wait
delete from queue.worker_sessions;
select
    ok(
        pg_temp.has_reason('no live workers (no heartbeat in the last 00:01:00) while 1 jobs wait')
        and queue.health() ->> 'status' = 'unhealthy',
        'unhealthy when jobs wait and no worker heartbeats'
    );
select queue.pause_queue('t_ops');
select
    is(
        queue.health() -> 'reasons',
        '[]'::jsonb,
        'a paused queue''s backlog is not judged'
    );
select queue.resume_queue('t_ops');
delete from queue.jobs;

-- failure rate: 3 of 10 finished in the last hour died
insert into queue.job_history (id, job_type, queue_name, status, priority, payload, attempt, max_attempts, run_at, created_at, finished_at)
select
    nextval('queue.jobs_id_seq') as id,
    't_ops_job' as job_type,
    't_ops_other' as queue_name,
    case when i <= 3 then 'dead' else 'completed' end::queue.job_status as status,
    50 as priority,
    '{}'::jsonb as payload,
    1 as attempt,
    1 as max_attempts,
    now() as run_at,
    now() as created_at,
    now() as finished_at
from generate_series(1, 10) as i;
select
    ok(
        pg_temp.has_reason('queue t_ops_other: 30.0% of the jobs finished in the last hour died (3 of 10; over 20.0%)'),
        'degraded when the failure rate is over max_failure_rate'
    );
select
    ok(
        not pg_temp.has_reason('queue t_ops_other:%', queue.health(max_failure_rate => 0.5)),
        'max_failure_rate is the threshold'
    );
delete from queue.job_history
where queue_name = 't_ops_other';

-- leases nobody reaps
select queue.heartbeat('w-health');
select queue.enqueue_job(job_type => 't_ops_job') as lease_id
\gset
select c.id from queue.claim_jobs(worker_id => 'w-health', batch_size => 1, queue_names => array['t_ops']) as c;
update queue.jobs set lease_expires_at = now() - interval '5 minutes'
where id = :lease_id;
select
    ok(
        pg_temp.has_reason('1 running jobs have leases that expired over 3 minutes ago and were not reaped%'),
        'degraded when expired leases are not reaped'
    );
select queue.reap_expired_leases();
select
    is(
        queue.health() ->> 'status',
        'healthy',
        'healthy once they are reaped'
    );

select * from finish();
rollback;
