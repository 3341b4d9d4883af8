-- pg_cron: housekeeping is registered; recurring jobs enqueue once per slot; bad input is a
-- clear error. Runs in the database where pg_cron lives (the local cluster's postgres).
begin;
select plan(26);
\ir ../../helpers/ops_setup.psql

select
    is(
        (
            select array_agg(j.jobname::text order by j.jobname)
            from cron.job as j
            where j.jobname in (
                'queue-reap', 'queue-age', 'queue-stats', 'queue-purge', 'queue-cron-trim', 'queue-partitions',
                'queue-storage'
            ) and j.active
        ),
        array[
            'queue-age', 'queue-cron-trim', 'queue-partitions', 'queue-purge', 'queue-reap', 'queue-stats',
            'queue-storage'
        ],
        'the migration registered the housekeeping entries with pg_cron'
    );
select
    is(
        (
            select j.command from cron.job as j
            where j.jobname = 'queue-reap'
        ),
        'select queue.reap_expired_leases()',
        'queue-reap reaps expired leases'
    );
select
    is(
        (
            select j.schedule from cron.job as j
            where j.jobname = 'queue-reap'
        ),
        case when queue._cron_version() >= '{1,5}' then '30 seconds' else '* * * * *' end,
        'queue-reap uses a seconds schedule only where pg_cron supports it'
    );
select
    is(
        (
            select j.command from cron.job as j
            where j.jobname = 'queue-purge'
        ),
        'call queue.purge_history_batches()',
        'queue-purge calls the batch procedure'
    );
select
    is(
        (
            select array_agg(distinct j.username) from cron.job as j
            where j.jobname like 'queue-%'
        ),
        array['postgres'],
        'housekeeping runs as postgres'
    );

-- a recurring job, scheduled by service_role
set local role service_role;
select queue.schedule_job('t-nightly', '0 3 * * *', 't_ops_job', '{"report": "daily"}', 't_ops_other', 7) as cron_jobid
\gset
reset role;
select
    results_eq(
        $$select j.schedule, j.command, j.username, j.active from cron.job as j where j.jobname = 'queue-job:t-nightly'$$,
        $$values ('0 3 * * *', 'select queue.enqueue_scheduled_job(''t-nightly'')', 'postgres', true)$$,
        'schedule_job creates the pg_cron entry queue-job:<name>, run as postgres'
    );
select
    results_eq(
        $$select name, kind, schedule, job_type, queue_name, priority, active from queue.schedules where name = 't-nightly'$$,
        $$values ('t-nightly', 'recurring', '0 3 * * *', 't_ops_job', 't_ops_other', 7, true)$$,
        'queue.schedules shows the recurring job'
    );
select
    is(
        queue.schedule_job('t-nightly', '*/5 * * * *', 't_ops_job', '{"report": "daily"}', 't_ops_other', 7),
        :cron_jobid::bigint,
        'scheduling the same name again replaces the entry in place'
    );
select
    is(
        (
            select j.schedule from cron.job as j
            where j.jobname = 'queue-job:t-nightly'
        ),
        '*/5 * * * *',
        'with the new schedule'
    );

-- pg_temp.run_cron_job(jobname): runs an entry's command exactly as pg_cron would, returning its value
create function pg_temp.run_cron_job(jobname text) returns bigint
language plpgsql as $$
declare
    v_id bigint;
begin
    execute (select j.command from cron.job as j where j.jobname = run_cron_job.jobname) into v_id;
    return v_id;
end
$$;

create temp table runs (id bigint);
insert into runs select pg_temp.run_cron_job('queue-job:t-nightly') as id;
insert into runs select pg_temp.run_cron_job('queue-job:t-nightly') as id;
select
    results_eq(
        $$select j.job_type, j.queue_name, j.priority, j.payload, j.unique_key
          from queue.jobs as j where j.id in (select r.id from runs as r)$$,
        format(
            $$values ('t_ops_job', 't_ops_other', 7, '{"report": "daily"}'::jsonb, %L)$$,
            'queue-job:t-nightly@' || to_char(date_trunc('minute', now()) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        ),
        'the command enqueues the job with a unique_key of the name and the minute'
    );
select
    is(
        (select count(distinct r.id) from runs as r),
        1::bigint,
        'a repeated run in the same minute gives the same job'
    );

-- the run's job finishes; the same minute runs again (an overlapping or retried tick)
select c.id
from queue.claim_jobs(worker_id => 't-w', batch_size => 1, queue_names => array['t_ops_other']) as c;
select queue.complete_job((select min(r.id) from runs as r), 't-w', lease_token => pg_temp.token((select min(r.id) from runs as r)));
insert into runs select pg_temp.run_cron_job('queue-job:t-nightly') as id;
select
    is(
        (select count(distinct r.id) from runs as r),
        1::bigint,
        'a run of a minute whose job already finished enqueues nothing'
    );
select
    is(
        (
            select count(*) from queue.all_jobs as a
            where a.unique_key like 'queue-job:t-nightly@%'
        ),
        1::bigint,
        'one job for the minute, in history'
    );
select
    isnt(
        queue.enqueue_scheduled_job('t-nightly', now() + interval '1 minute'),
        (select min(r.id) from runs as r),
        'the next minute is a new run'
    );

-- bad input
select
    throws_ok(
        $$select queue.schedule_job('t-bad', 'every day', 't_ops_job')$$,
        '22023',
        'invalid cron schedule for recurring job t-bad: ''every day''',
        'an invalid cron expression is a clear error naming it'
    );
select
    throws_ok(
        $$select queue.schedule_job('t-bad', '0 0 * * * *', 't_ops_job')$$,
        '22023',
        'invalid cron schedule for recurring job t-bad: ''0 0 * * * *''',
        'a 6-field expression is refused (pg_cron would ignore the sixth field)'
    );
select
    throws_ok(
        $$select queue.schedule_job('t-bad', '61 * * * *', 't_ops_job')$$,
        '22023',
        'invalid cron schedule for recurring job t-bad: ''61 * * * *''',
        'an out-of-range field is refused'
    );
select
    case
        when queue._cron_version() >= '{1,5}'
            then lives_ok(
                $$select queue.schedule_job('t-secs', '10 seconds', 't_ops_job')$$,
                'N seconds schedules work on pg_cron >= 1.5'
            )
        else throws_ok(
            $$select queue.schedule_job('t-secs', '10 seconds', 't_ops_job')$$,
            '22023',
            'invalid cron schedule for recurring job t-secs: ''10 seconds''',
            'N seconds schedules are refused on pg_cron < 1.5'
        )
    end;
select
    throws_ok(
        $$select queue.schedule_job('t-bad', '* * * * *', 'no_such_type')$$,
        '22023',
        'unknown job type: no_such_type',
        'an unknown job type is a clear error'
    );
select
    throws_ok(
        $$select queue.schedule_job('t bad', '* * * * *', 't_ops_job')$$,
        '22023',
        null,
        'a name with a space is refused'
    );
select
    is(
        (
            select count(*) from queue.recurring_jobs as r
            where r.name = 't-bad'
        ),
        0::bigint,
        'a refused schedule leaves nothing behind'
    );
select
    throws_ok(
        $$select queue.enqueue_scheduled_job('t-never')$$,
        '22023',
        'unknown recurring job: t-never',
        'running an unknown recurring job is a clear error'
    );

-- unschedule
select
    ok(
        queue.unschedule_job('t-nightly'),
        'unschedule_job removes the recurring job'
    );
select
    is(
        (
            select count(*) from cron.job as j
            where j.jobname = 'queue-job:t-nightly'
        ),
        0::bigint,
        'and its pg_cron entry'
    );
select
    ok(
        not queue.unschedule_job('t-nightly'),
        'unscheduling an unknown name returns false'
    );

-- sync_cron_jobs restores what is missing and drops entries without a recurring job
select cron.unschedule('queue-stats');
select cron.schedule('queue-job:t-orphan', '* * * * *', 'select 1');
select queue.sync_cron_jobs();
select
    results_eq(
        $$select
            exists (select from cron.job as j where j.jobname = 'queue-stats'),
            exists (select from cron.job as j where j.jobname = 'queue-job:t-orphan')$$,
        $$values (true, false)$$,
        'sync_cron_jobs re-registers housekeeping and removes orphaned queue-job entries'
    );

select * from finish();
rollback;
