-- queue_policies, circuit_breaker_states and get_stats_history: what the console's pages read.
begin;
select plan(9);
\ir ../../helpers/ops_setup.psql

select queue.create_queue(
    queue_name => 't_pol', concurrency => 3, rate_limit => 10, rate_interval => '1 second',
    backoff_strategy => 'linear', backoff_base => '2 seconds', backoff_max => '1 minute'
);
select queue.register_job_type(job_type => 't_pol_b', queue_name => 't_pol', services => array['t_svc']);
select queue.register_job_type(job_type => 't_pol_a', queue_name => 't_pol');
select queue.pause_queue('t_pol');

select
    results_eq(
        $$select paused, concurrency, rate_limit, rate_interval, backoff_strategy::text, backoff_base, backoff_max, job_types
          from queue.queue_policies where queue_name = 't_pol'$$,
        $$values (true, 3, 10, interval '1 second', 'linear', interval '2 seconds', interval '1 minute', array['t_pol_a', 't_pol_b'])$$,
        'queue_policies shows the policy as create_queue set it, paused, and the job types in order'
    );
select
    is(
        (
            select job_types from queue.queue_policies
            where queue_name = 't_ops_other'
        ),
        '{}'::text[],
        'a queue without job types lists none'
    );

select queue.create_queue(
    queue_name => 't_pol_fair', fair => true, owner_max_live_jobs => 5, owner_enqueue_rate => 2,
    owner_enqueue_interval => '1 minute', owner_concurrency => 1, owner_limits_all => true
);
select
    results_eq(
        $$select queue_name, fair, owner_max_live_jobs, owner_enqueue_rate, owner_enqueue_interval,
                 owner_concurrency, owner_limits_all
          from queue.queue_policies where queue_name in ('t_pol', 't_pol_fair') order by queue_name$$,
        $$values ('t_pol', false, null::int, null::int, null::interval, null::int, false),
                 ('t_pol_fair', true, 5, 2, interval '1 minute', 1, true)$$,
        'queue_policies shows the per-owner settings (fair, quotas, rate, concurrency, who they bind)'
    );

-- breakers: one open, one whose cool-down is over, one closed
select queue.report_service('t_svc', false, 'timeout', failure_threshold => 1, cooldown => '1 hour');
select queue.report_service('t_svc_cool', false, '503', failure_threshold => 1, cooldown => '1 second');
update queue.circuit_breakers set opened_at = now() - interval '1 minute'
where service = 't_svc_cool';
select queue.report_service('t_svc_ok', true);
select
    results_eq(
        $$select service, state, last_error, retry_at = now() + interval '1 hour', job_types
          from queue.circuit_breaker_states where service like 't_svc%' order by service$$,
        $$values ('t_svc', 'open', 'timeout', true, array['t_pol_b']),
                 ('t_svc_cool', 'half-open', '503', false, '{}'::text[]),
                 ('t_svc_ok', 'closed', null, null, '{}'::text[])$$,
        'circuit_breaker_states: open until retry_at, half-open after the cool-down, closed; with the job types it holds back'
    );

-- stats history
insert into queue.stats_history (
    captured_at, queue_name, waiting, scheduled, running, retrying, dead, completed_last_hour, failed_last_hour
)
values
(now() - interval '2 hours', 't_pol', 9, 0, 0, 0, 0, 0, 0),
(now() - interval '20 minutes', 't_pol', 5, 0, 1, 0, 0, 30, 3),
(now() - interval '10 minutes', 't_pol', 4, 0, 1, 0, 0, 40, 4),
(now() - interval '10 minutes', 't_ops', 1, 0, 0, 0, 0, 2, 0);
select
    is(
        (select array_agg(waiting) from queue.get_stats_history(queue_name => 't_pol')),
        array[5, 4],
        'get_stats_history: one queue''s snapshots of the last hour, oldest first'
    );
select
    is(
        (
            select count(*) from queue.get_stats_history(since => '3 hours')
            where queue_name like 't_%'
        ),
        4::bigint,
        'a longer window, every queue'
    );
select
    throws_ok(
        $$select * from queue.get_stats_history(since => '-1 hour')$$,
        '22023',
        'since must be a positive interval, got -01:00:00',
        'a negative window is refused, naming it'
    );

-- who may read them
select
    ok(
        not has_function_privilege(
            'authenticated',
            'queue.search_jobs(queue.job_status, text, text, uuid, timestamptz, timestamptz, jsonb, bigint, int)',
            'execute'
        )
        and not has_function_privilege('queue_worker', 'queue.discard_dead_jobs(bigint[])', 'execute')
        and not has_table_privilege('authenticated', 'queue.queue_policies', 'select'),
        'end users and workers cannot use the console''s functions and views'
    );
select
    ok(
        has_function_privilege('service_role', 'queue.discard_dead_jobs(bigint[])', 'execute')
        and has_table_privilege('service_role', 'queue.circuit_breaker_states', 'select'),
        'service_role can'
    );

select * from finish();
rollback;
