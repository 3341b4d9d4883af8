-- The pg_cron >= 1.5 paths that hosted Supabase runs (Debian ships 1.4): with the installed
-- version stood in by kyu.test_pg_cron_version, the reaper is scheduled every 30 seconds and a
-- seconds schedule keys each run by its N-second window.
begin;
select plan(5);

select set_config('kyu.test_pg_cron_version', '1.4', true);
select
    is(
        (
            select h.schedule from queue._housekeeping_jobs() as h
            where h.jobname = 'queue-reap'
        ),
        '* * * * *',
        'pg_cron 1.4: the reaper runs every minute'
    );

select set_config('kyu.test_pg_cron_version', '1.6', true);
select is(queue._cron_version(), array[1, 6], 'the stand-in version is read');
select
    is(
        (
            select h.schedule from queue._housekeeping_jobs() as h
            where h.jobname = 'queue-reap'
        ),
        '30 seconds',
        'pg_cron 1.6: the reaper runs every 30 seconds'
    );
select
    is(
        array[
            queue._schedule_key('r', '10 seconds', '2026-12-03 10:00:09Z'),
            queue._schedule_key('r', '10 seconds', '2026-12-03 10:00:10Z'),
            queue._schedule_key('r', '10 seconds', '2026-12-03 10:00:19.9Z')
        ],
        array['queue-job:r@2026-12-03T10:00:00Z', 'queue-job:r@2026-12-03T10:00:10Z', 'queue-job:r@2026-12-03T10:00:10Z'],
        'a seconds schedule keys each run by its 10-second window'
    );
select
    is(
        queue._schedule_key('r', '*/5 * * * *', '2026-12-03 10:04:59Z'),
        'queue-job:r@2026-12-03T10:04:00Z',
        'a cron expression keys each run by its minute'
    );

select * from finish();
rollback;
