-- Queue policies inside claim_jobs: concurrency, token-bucket rate limit, pause, per-type overrides
-- of attempts and timeout, priority aging and customer tiers. (Parallel claimers: tests/ops.)
begin;
select plan(19);
\ir ../../helpers/ops_setup.psql

-- concurrency 2
select queue.create_queue(queue_name => 't_conc', concurrency => 2);
select queue.register_job_type(job_type => 't_conc_job', queue_name => 't_conc');
select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 't_conc_job'))) from generate_series(1, 5);
create temp table conc_claims as
select c.id from queue.claim_jobs(worker_id => 'w1', batch_size => 5, queue_names => array['t_conc']) as c;
select
    is(
        (select count(*) from conc_claims),
        2::bigint,
        'a batch of 5 from a queue with concurrency 2 gets 2'
    );
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w2', batch_size => 5, queue_names => array['t_conc'])),
        0::bigint,
        'a second worker gets nothing while 2 run'
    );
select
    queue.complete_job(
        (select min(c.id) from conc_claims as c), 'w1', lease_token => pg_temp.token((select min(c.id) from conc_claims as c))
    );
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w2', batch_size => 5, queue_names => array['t_conc'])),
        1::bigint,
        'a finished job frees one slot'
    );
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w3', batch_size => 5, job_types => array['t_conc_job'])),
        0::bigint,
        'claiming from every queue still honours the limit'
    );

-- rate limit 3 per hour: a full bucket of 3, then nothing (no refill worth a token in a test)
select queue.create_queue(queue_name => 't_rate', rate_limit => 3, rate_interval => '1 hour');
select queue.register_job_type(job_type => 't_rate_job', queue_name => 't_rate');
select queue.enqueue_jobs(jsonb_agg(jsonb_build_object('job_type', 't_rate_job'))) from generate_series(1, 6);
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w1', batch_size => 10, queue_names => array['t_rate'])),
        3::bigint,
        'a rate-limited queue starts at most rate_limit jobs at once (the full bucket)'
    );
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w1', batch_size => 10, queue_names => array['t_rate'])),
        0::bigint,
        'an empty bucket starts nothing, even though nothing runs'
    );
-- the bucket refills with time: pretend the last refill was 40 minutes ago (2 tokens)
update queue.queues set rate_refilled_at = now() - interval '40 minutes'
where queue_name = 't_rate';
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w1', batch_size => 10, queue_names => array['t_rate'])),
        2::bigint,
        'the bucket refills at rate_limit per rate_interval'
    );

-- pause and resume
select queue.enqueue_job(job_type => 't_ops_job', payload => '{"k": "p"}');
select queue.pause_queue('t_ops');
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w1', batch_size => 10, queue_names => array['t_ops'])),
        0::bigint,
        'a paused queue gives nothing'
    );
select queue.resume_queue('t_ops');
select
    is(
        (select count(*) from queue.claim_jobs(worker_id => 'w1', batch_size => 10, queue_names => array['t_ops'])),
        1::bigint,
        'a resumed queue gives its job'
    );

-- per-job-type overrides of attempts and timeout
select queue.register_job_type(job_type => 't_override', queue_name => 't_ops', max_attempts => 9, timeout_seconds => 33);
select queue.enqueue_job(job_type => 't_override') as override_id
\gset
select
    is(
        (
            select j.max_attempts from queue.jobs as j
            where j.id = :override_id
        ),
        9,
        'the job type''s max_attempts overrides the queue''s'
    );
select
    is(
        (
            select c.lease_seconds
            from queue.claim_jobs(worker_id => 'w1', batch_size => 1, queue_names => array['t_ops'], job_types => array['t_override']) as c
        ),
        33,
        'the job type''s timeout_seconds is the lease'
    );
select queue.enqueue_job(job_type => 't_ops_job') as plain_type_id
\gset
select
    is(
        (
            select j.max_attempts from queue.jobs as j
            where j.id = :plain_type_id
        ),
        3,
        'without an override the queue''s max_attempts applies'
    );

-- aging: off by default, one step per aging_interval waited
select queue.create_queue(queue_name => 't_aging', aging_interval => '1 minute');
select queue.register_job_type(job_type => 't_aging_job', queue_name => 't_aging', priority => 90);
select queue.enqueue_job(job_type => 't_aging_job', run_at => now() - interval '5 minutes') as aging_id
\gset
select queue.enqueue_job(job_type => 't_ops_job', priority => 90, run_at => now() - interval '5 minutes') as plain_id
\gset
select queue.enqueue_job(job_type => 't_aging_job', run_at => now() - interval '10 seconds') as fresh_id
\gset
select
    cmp_ok(
        queue.age_waiting_jobs(),
        '>=',
        1,
        'age_waiting_jobs moves jobs'
    );
select
    results_eq(
        format('select id, priority from queue.jobs where id in (%s, %s, %s) order by id', :aging_id, :plain_id, :fresh_id),
        format('values (%s::bigint, 89), (%s, 90), (%s, 90)', :aging_id, :plain_id, :fresh_id),
        'a long-waiting job of an aging queue moves up one step; other queues and fresh jobs do not'
    );
select queue.age_waiting_jobs();
select
    is(
        (
            select j.priority from queue.jobs as j
            where j.id = :aging_id
        ),
        89,
        'the next step waits another aging_interval'
    );

-- tiers: the owner's tier shifts the priority at enqueue
select queue.set_owner_tier((
    select u.id from t_users as u
    where u.name = 'alice'
), 'enterprise');
select queue.set_owner_tier((
    select u.id from t_users as u
    where u.name = 'bob'
), 'free');
select
    queue.enqueue_job(
        job_type => 't_ops_job', queue_name => 't_ops_other', owner_id => (
            select u.id from t_users as u
            where u.name = 'bob'
        )
    )
        as bob_id
\gset
select
    queue.enqueue_job(
        job_type => 't_ops_job', queue_name => 't_ops_other', owner_id => (
            select u.id from t_users as u
            where u.name = 'alice'
        )
    )
        as alice_id
\gset
select
    results_eq(
        format('select id, priority from queue.jobs where id in (%s, %s) order by id', :bob_id, :alice_id),
        format('values (%s::bigint, 50), (%s, 30)', :bob_id, :alice_id),
        'an enterprise owner''s job gets priority 50 - 20; a free owner''s stays 50'
    );
select
    is(
        (select c.id from queue.claim_jobs(worker_id => 'w1', batch_size => 1, queue_names => array['t_ops_other']) as c),
        :alice_id::bigint,
        'the paying customer''s later job is claimed first'
    );
select
    throws_ok(
        $$select queue.set_owner_tier('33333333-3333-4333-8333-333333333333', 'platinum')$$,
        '22023',
        'unknown tier: platinum',
        'an unknown tier is refused'
    );
select
    throws_ok(
        $$select queue.create_queue(queue_name => 't_x', rate_limit => 5)$$,
        '22023',
        null,
        'a rate limit needs its interval'
    );

select * from finish();
rollback;
