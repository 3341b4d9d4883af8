-- History partitions: maintain_history_partitions creates the coming days, drops a day only once
-- the longest queue retention has passed its end, and moves jobs that landed in the default
-- partition into their day; get_job and all_jobs read every partition.
begin;
select plan(13);
\ir ../../helpers/ops_setup.psql

create temp table utc as select (now() at time zone 'UTC')::date as today;
grant select on utc to public;

select queue.maintain_history_partitions(days_ahead => 3);
select
    is(
        (
            select count(*)::int from queue._history_partitions() as p
            where p.partition_name in (
                select 'job_history_p' || to_char(u.today + g, 'YYYYMMDD') from utc as u, generate_series(0, 3) as g
            )
        ),
        4,
        'today and the next three days have a partition'
    );
select is(
    (select count(*)::int from queue.job_history_default), 0, 'the default partition is empty after maintenance'
);

-- three finished jobs, moved to 30 days, 2 days and 0 days ago
select queue.enqueue_jobs(
    (select jsonb_agg(jsonb_build_object('job_type', 't_ops_job', 'payload', jsonb_build_object('n', g))) from generate_series(1, 3) as g)
);
create temp table claimed as
select
    c.id,
    c.lease_token
from queue.claim_jobs('w', 3, array['t_ops']) as c;
select queue.complete_jobs(
    array(
        select c.id from claimed as c
        order by c.id
    ),
    'w',
    lease_tokens => array(
        select c.lease_token from claimed as c
        order by c.id
    )
);
create temp table finished as
select
    (h.payload ->> 'n')::int as n,
    h.id
from queue.job_history as h
where h.queue_name = 't_ops';
grant select on finished to public;
select queue._create_history_partition(u.today - 30) from utc as u;
select queue._create_history_partition(u.today - 2) from utc as u;
update queue.job_history as h
set finished_at = now() - (array[interval '30 days', '2 days', '0 days'])[f.n]
from finished as f
where h.id = f.id;

select
    is(
        (
            select tableoid::regclass::text from queue.job_history
            where id = (
                select f.id from finished as f
                where f.n = 1
            )
        ),
        (select 'queue.job_history_p' || to_char(u.today - 30, 'YYYYMMDD') from utc as u),
        'a job lives in the partition of the day it finished'
    );
select
    is(
        (queue.get_job((
            select f.id from finished as f
            where f.n = 1
        ))).status,
        'completed'::queue.job_status,
        'get_job finds a job in an old partition'
    );

-- the longest retention decides: a queue keeping 60 days keeps the 30-day-old partition
select queue.create_queue(queue_name => 't_long', retention => '60 days');
select
    is(
        (
            select count(*)::int from queue.maintain_history_partitions() as m
            where m like 'dropped %'
        ),
        0,
        'nothing is dropped while a queue''s retention still covers the day'
    );
select queue.create_queue(queue_name => 't_long', retention => '1 day');
select
    ok(
        (
            select bool_or(m = 'dropped job_history_p' || to_char(u.today - 30, 'YYYYMMDD'))
            from queue.maintain_history_partitions() as m, utc as u
        ),
        'a day past every queue''s retention is dropped whole'
    );
select
    is(
        (
            select count(*)::int from queue.all_jobs as a
            where a.id in (select f.id from finished as f)
        ),
        2,
        'its jobs are gone; the jobs of days within retention stay'
    );
select
    throws_ok(
        format('select queue.get_job(%s)', (
            select f.id from finished as f
            where f.n = 1
        )),
        'P0002',
        null,
        'get_job of a dropped job says not found'
    );
select
    ok(
        to_regclass('queue.job_history_p' || to_char((select u.today - 2 from utc as u), 'YYYYMMDD')) is not null,
        'the partition of two days ago (inside the 7-day retention) stays'
    );

-- housekeeping behind: a day without partition fills the default partition; maintenance moves it
select
    is(
        (
            select h.tableoid::regclass::text from queue.job_history as h
            where h.id = (
                select f.id from finished as f
                where f.n = 3
            )
        ),
        (select 'queue.job_history_p' || to_char(u.today, 'YYYYMMDD') from utc as u),
        'today''s jobs are in today''s partition'
    );
update queue.job_history set finished_at = now() + interval '10 days'
where id = (
    select f.id from finished as f
    where f.n = 3
);
select
    ok(
        (
            select bool_or(m = 'created job_history_p' || to_char(u.today + 10, 'YYYYMMDD'))
            from queue.maintain_history_partitions() as m, utc as u
        ),
        'a day found in the default partition gets its partition'
    );
select
    is(
        (
            select h.tableoid::regclass::text from queue.job_history as h
            where h.id = (
                select f.id from finished as f
                where f.n = 3
            )
        ),
        (select 'queue.job_history_p' || to_char(u.today + 10, 'YYYYMMDD') from utc as u),
        'and its jobs move out of the default partition into it'
    );

select
    throws_ok(
        'select queue.maintain_history_partitions(days_ahead => -1)',
        '22023',
        'days_ahead must be between 0 and 60, got -1',
        'days_ahead is checked'
    );

select * from finish();
rollback;
