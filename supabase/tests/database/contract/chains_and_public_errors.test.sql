-- Chained jobs with provenance, and what end users see of failures.
-- A handler enqueues follow-up work as children of the job it holds (proved by its lease token):
-- the owner is inherited, the type must be one the parent's type may chain to, and the worker
-- role has no other way to enqueue. get_job, all_jobs and my_jobs show the chain. End users see a
-- public error (the handler's choice or a generic line), never the raw error or a worker id.
begin;
select plan(16);
\ir ../../helpers/ops_setup.psql

select queue.register_job_type(job_type => 't_ops_parent', queue_name => 't_ops', chains_to => array['t_ops_job']);
select queue.enqueue_job('t_ops_parent', '{}', owner_id => '11111111-1111-4111-8111-111111111111') as parent \gset
select c.lease_token as parent_token from queue.claim_jobs('w-chain', 1, array['t_ops']) as c \gset

set local role queue_worker;
select queue.enqueue_child_job(:parent, :'parent_token', 't_ops_job', '{"step": 2}', unique_key => 'chain:1') as child
\gset
select
    throws_ok(
        $$ select queue.enqueue_job('t_ops_job', owner_id => '22222222-2222-4222-8222-222222222222', priority => 1) $$,
        '42501', null,
        'the worker role cannot enqueue_job (any owner, any priority) any more'
    );
reset role;

select
    is(
        (
            select row(owner_id, parent_id, priority, job_type)::text from queue.jobs
            where id = :child
        ),
        row('11111111-1111-4111-8111-111111111111'::uuid, :parent::bigint, 50, 't_ops_job')::text,
        'the child is owned by the parent''s owner, points at its parent, at its type''s priority'
    );
select is((queue.get_job(:parent)).children, array[:child::bigint], 'get_job shows the parent''s children');
select is((queue.get_job(:child)).parent_id, :parent::bigint, 'and the child''s parent');
select
    is(
        (
            select array_agg(id order by id) from queue.list_jobs()
            where parent_id = :parent
        ),
        array[:child::bigint],
        'list_jobs carries the chain'
    );

set local role queue_worker;
select
    is(
        (
            select array_agg(x)
            from
                queue.enqueue_child_jobs(
                    :parent, :'parent_token', '[{"job_type": "t_ops_job", "unique_key": "chain:1"}, {"job_type": "t_ops_job"}]'
                ) as x
        )[1],
        :child::bigint,
        'a live unique_key answers with the holder, as enqueue_jobs does'
    );
reset role;

-- the parent completes; its finished row still shows its children, and its token chains no more
select queue.complete_job(:parent, 'w-chain', lease_token => :'parent_token');
select is(cardinality((queue.get_job(:parent)).children), 2, 'a finished parent still lists its children');
set local role queue_worker;
select
    throws_ok(
        format($$ select queue.enqueue_child_job(%s, %L, 't_ops_job') $$, :parent, :'parent_token'),
        '42501', format('job %s is not running under this lease_token: only the handler holding a job may chain from it', :parent),
        'a finished parent''s token chains nothing'
    );
reset role;

-- the owner sees the chain and public errors only
select pg_temp.login('alice');
set local role authenticated;
select is((
    select parent_id from queue_public.my_jobs
    where id = :child
), :parent::bigint, 'my_jobs shows the parent');
reset role;

-- failures: the handler's public message, else a generic line; the raw error stays internal
select
    c.id as failing,
    c.lease_token as failing_token
from queue.claim_jobs('w-secret-host-7', 1, array['t_ops']) as c \gset
select
    queue.fail_job(
        :failing, 'w-secret-host-7', 'Traceback: psycopg.OperationalError at db-internal-3:5432', lease_token => :'failing_token'
    );
select pg_temp.login('alice');
set local role authenticated;
select
    is(
        (
            select public_error from queue_public.my_jobs
            where id = :failing
        ),
        'The last attempt failed; the job will be retried.',
        'a retrying job shows a generic line'
    );
select
    throws_ok(
        $$ select errors from queue.jobs $$,
        '42501', null,
        'the end user cannot read the raw errors column'
    );
select
    is(
        (
            select count(*) from queue_public.my_jobs
            where concat(public_error, last_error) ~ 'Traceback|w-secret|db-internal'
        ),
        0::bigint,
        'no raw error, worker id or host reaches my_jobs (public_error, nor last_error, kept for older clients)'
    );
reset role;
update queue.jobs set run_at = now()
where id = :failing;
select c.lease_token as failing_token2 from queue.claim_jobs('w-secret-host-7', 1, array['t_ops']) as c \gset
select
    queue.fail_job(
        :failing, 'w-secret-host-7', 'ValueError: receipt 42 has no total (parser v3)', retryable => false,
        lease_token => :'failing_token2', public_error => 'The receipt has no total; please upload a clearer scan.'
    );
select pg_temp.login('alice');
set local role authenticated;
select
    is(
        (
            select row(status::text, public_error)::text from queue_public.my_jobs
            where id = :failing
        ),
        row('dead', 'The receipt has no total; please upload a clearer scan.')::text,
        'a dead job shows the handler''s public error'
    );
reset role;
select
    is(
        (
            select errors -> -1 ->> 'error' from queue.job_history
            where id = :failing
        ),
        'ValueError: receipt 42 has no total (parser v3)',
        'service_role still sees the raw error'
    );
select
    is(
        (select public_error from queue.get_job(:failing)),
        'The receipt has no total; please upload a clearer scan.',
        'and the public one'
    );
select
    is(
        length(queue._clip(repeat('p', 500), 200)) < 260
        and queue._clip(repeat('p', 500), 200) like '%[... truncated: 200 of 500 characters kept]',
        true,
        'a public error is cut to 200 characters with a marker'
    );

select * from finish();
rollback;
