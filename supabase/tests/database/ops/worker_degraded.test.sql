-- A worker that reports itself degraded (every handler thread stuck past its timeout) shows in
-- queue.workers and makes health() degraded while it is alive; its connections show beside it.
begin;
select plan(4);
\ir ../../helpers/ops_setup.psql

create function pg_temp.has_reason(pattern text) returns boolean
language sql as $$
    select exists (select from jsonb_array_elements_text(queue.health() -> 'reasons') as r where r like pattern)
$$;

delete from queue.worker_sessions;
select queue.heartbeat(
    'w-stuck', '{}', 'host-a', 42,
    '{"degraded": "all 2 handler threads stuck past their timeout", "connections": 7, "max_connections": 10}'
);
select
    is(
        (
            select row(degraded, connections, max_connections) from queue.workers
            where worker_id = 'w-stuck'
        ),
        row('all 2 handler threads stuck past their timeout'::text, 7, 10),
        'queue.workers shows why the worker is degraded and the connections it holds'
    );
select
    ok(
        pg_temp.has_reason('worker w-stuck is degraded: all 2 handler threads stuck past their timeout'),
        'health() names the degraded worker and why'
    );

select queue.heartbeat('w-stuck', '{}', 'host-a', 42, '{"degraded": null, "connections": 7}');
select ok(not pg_temp.has_reason('worker w-stuck is degraded%'), 'no reason once it recovers');

update queue.worker_sessions
set
    last_seen_at = now() - interval '2 minutes',
    metadata = '{"degraded": "all 2 handler threads stuck past their timeout"}';
select ok(not pg_temp.has_reason('worker w-stuck is degraded%'), 'a dead worker''s last word is not judged');

select * from finish();
rollback;
