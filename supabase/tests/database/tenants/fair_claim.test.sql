-- Fair claiming: within a priority owners take turns (a batch holds every owner's first job,
-- single claims go round the owners), weighted by the tier's fair_weight, the rest of a batch
-- first in first out, priorities still first; an unfair queue stays first in, first out.
begin;
select plan(10);
\ir ../../helpers/core_setup.psql

select queue.create_queue(queue_name => 't_fair', fair => true);
select queue.create_queue(queue_name => 't_fifo');
select queue.register_job_type(job_type => 't_fair_job', queue_name => 't_fair');
select queue.register_job_type(job_type => 't_fifo_job', queue_name => 't_fifo');

-- owners a < b < c (uuid order is the round-robin order)
create temp table owners (name text primary key, id uuid not null);
insert into owners values
('a', 'aaaaaaaa-0000-4000-8000-000000000000'),
('b', 'bbbbbbbb-0000-4000-8000-000000000000'),
('c', 'cccccccc-0000-4000-8000-000000000000');

-- pg_temp.flood(job_type, owner, n, age): n jobs of that owner, due since age ago
create function pg_temp.flood(job_type text, owner_name text, n int, age interval) returns void
language sql as $$
    select queue.enqueue_jobs((
        select jsonb_agg(jsonb_build_object(
            'job_type', job_type, 'owner_id', (select o.id from owners as o where o.name = owner_name),
            'run_at', now() - age, 'payload', jsonb_build_object('i', i)))
        from generate_series(1, n) as i
    ))
$$;
-- pg_temp.claimed(queue, batch): the owners of one claim, by name, in name order
create function pg_temp.claimed(queue_name text, batch int) returns text
language sql as $$
    select coalesce(string_agg(o.name, '' order by o.name), '')
    from queue.claim_jobs('w-fair', batch, array[queue_name]) as c
    join owners as o on o.id = c.owner_id
$$;

-- a flooded the queue an hour ago; b and c came later
select pg_temp.flood('t_fair_job', 'a', 100, '1 hour');
select pg_temp.flood('t_fair_job', 'b', 2, '1 minute');
select pg_temp.flood('t_fair_job', 'c', 1, '1 second');
select pg_temp.flood('t_fifo_job', 'a', 100, '1 hour');
select pg_temp.flood('t_fifo_job', 'b', 2, '1 minute');

select is(pg_temp.claimed('t_fifo', 3), 'aaa', 'an unfair queue is first in, first out: a''s backlog first');
select is(pg_temp.claimed('t_fair', 3), 'abc', 'a fair queue''s batch of 3 holds each owner''s first job');
select
    is(
        array[pg_temp.claimed('t_fair', 1), pg_temp.claimed('t_fair', 1), pg_temp.claimed('t_fair', 1)],
        array['a', 'b', 'a'],
        'single claims go round the owners (c had one job, b two)'
    );
select is(pg_temp.claimed('t_fair', 5), 'aaaaa', 'with one owner left, a batch is all theirs (no short batch)');

-- priorities come first: b's urgent job before a's turn, whoever is due
select queue.enqueue_job('t_fair_job', priority => 10, owner_id => (
    select o.id from owners as o
    where o.name = 'b'
));
select is(pg_temp.claimed('t_fair', 1), 'b', 'a more urgent job comes before any owner''s turn');

-- the rest of a batch is first in, first out: b's single job and a's oldest fill it
select pg_temp.flood('t_fair_job', 'b', 1, '1 second');
select is(pg_temp.claimed('t_fair', 10), 'aaaaaaaaab', 'a batch of 10 with b''s single job: 1 of b, 9 of a');

-- weights: a on enterprise (fair_weight 4) against b on free (1): 4 turns to 1
select queue.set_owner_tier((
    select o.id from owners as o
    where o.name = 'a'
), 'enterprise');
select pg_temp.flood('t_fair_job', 'b', 50, '1 second');
select is(pg_temp.claimed('t_fair', 10), 'aaaaaaaabb', 'a batch of 10: 8 turns of weight 4 against 2 of weight 1');

-- jobs without an owner take turns as one more owner (the nil uuid, first in uuid order);
-- the cursor is on a (served last), so b, then the unowned job, then a
select queue.enqueue_job('t_fair_job', run_at => now() - interval '2 hours');
select
    is(
        array[pg_temp.claimed('t_fair', 1), pg_temp.claimed('t_fair', 1), pg_temp.claimed('t_fair', 1)],
        array['b', '', 'a'],
        'an unowned job takes its turn between the owners'
    );
select
    is(
        (
            select q.fair_cursor from queue.queues as q
            where q.queue_name = 't_fair'
        ),
        (
            select o.id from owners as o
            where o.name = 'a'
        ),
        'the queue remembers the owner served last'
    );

-- the all-queues claim goes through the fair pick too (a fair queue is never in the one scan)
select
    is(
        (
            select string_agg(o.name, '' order by o.name)
            from queue.claim_jobs('w-fair', 2, null, array['t_fair_job']) as c
            inner join owners as o on c.owner_id = o.id
        ),
        'ab',
        'a claim over every queue is fair in the fair queue'
    );

select * from finish();
rollback;
