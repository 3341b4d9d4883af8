-- trim_cron_history deletes old run records of Kyu's own pg_cron entries (and of Kyu entries
-- since unscheduled) and leaves every other entry's runs alone. Needs pg_cron (the local
-- cluster's postgres database).
begin;
select plan(2);

select cron.schedule('t-other-app', '0 0 1 1 *', 'select 1') as other_job \gset
select j.jobid as reap_job from cron.job as j
where j.jobname = 'queue-reap' \gset
create temp table runs (label text, runid bigint);
with ins as (
    insert into cron.job_run_details (jobid, command, status, start_time, end_time)
    values
    (:reap_job, 'select queue.reap_expired_leases()', 'succeeded', now() - interval '30 days', now() - interval '30 days'),
    (:reap_job, 'select queue.reap_expired_leases()', 'succeeded', now() - interval '1 hour', now() - interval '1 hour'),
    (:other_job, 'select 1', 'succeeded', now() - interval '30 days', now() - interval '30 days'),
    (999999999, 'select queue.age_waiting_jobs()', 'succeeded', now() - interval '30 days', now() - interval '30 days'),
    (999999998, 'select app.cleanup()', 'succeeded', now() - interval '30 days', now() - interval '30 days')
    returning runid, jobid, end_time
)

insert into runs (label, runid)
select
    case
        when i.jobid = :reap_job and i.end_time < now() - interval '7 days' then 'kyu-old'
        when i.jobid = :reap_job then 'kyu-recent'
        when i.jobid = :other_job then 'other-old'
        when i.jobid = 999999999 then 'kyu-unscheduled-old'
        else 'other-unscheduled-old'
    end as label,
    i.runid
from ins as i;

select ok(queue.trim_cron_history() >= 2, 'old runs of Kyu''s entries are deleted');
select
    is(
        (
            select array_agg(r.label order by r.label) from runs as r
            where exists (
                select from cron.job_run_details as d
                where d.runid = r.runid
            )
        ),
        array['kyu-recent', 'other-old', 'other-unscheduled-old'],
        'recent Kyu runs and every other entry''s runs stay'
    );

select * from finish();
rollback;
