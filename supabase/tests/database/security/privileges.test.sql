-- Privileges and RLS, read from the catalog: every routine in queue is security definer with
-- search_path = '' (or a documented commit-per-batch procedure), every table has RLS, and each
-- role can execute exactly what it should.
begin;
select plan(24);

-- the check that fails when anyone adds a function without a fixed search_path
select
    is(
        (
            select coalesce(array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text), '{}')
            from pg_proc as p
            where
                p.pronamespace in ('queue'::regnamespace, 'queue_public'::regnamespace)
                and p.prokind <> 'p'
                and not coalesce('search_path=""' = any(p.proconfig), false)
        ),
        '{}'::text[],
        'every function in queue and queue_public has search_path = '''''
    );
select
    is(
        (
            select coalesce(array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text), '{}')
            from pg_proc as p
            where p.pronamespace = 'queue'::regnamespace and p.prokind <> 'p' and not p.prosecdef
        ),
        '{}'::text[],
        'every function in queue is security definer'
    );
-- PostgreSQL forbids COMMIT in a procedure that is security definer or has SET: the one procedure
-- that commits per batch is invoker, listed here by name so a new one gets reviewed
select
    is(
        (
            select coalesce(array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text), '{}')
            from pg_proc as p
            where p.pronamespace = 'queue'::regnamespace and p.prokind = 'p'
        ),
        array['queue.purge_history_batches(integer,integer)'],
        'the only procedure in queue is the batch purge'
    );
select
    is(
        (
            select coalesce(array_agg(c.oid::regclass::text order by c.oid::regclass::text), '{}')
            from pg_class as c
            where c.relnamespace = 'queue'::regnamespace and c.relkind in ('r', 'p') and not c.relrowsecurity
        ),
        '{}'::text[],
        'every table in queue has row level security'
    );
select
    is(
        (
            select coalesce(array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text), '{}')
            from pg_proc as p
            where
                p.pronamespace in ('queue'::regnamespace, 'queue_public'::regnamespace)
                and (
                    has_function_privilege('anon', p.oid, 'execute')
                    or exists (
                        select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a
                        where a.grantee = 0
                    )
                )
        ),
        '{}'::text[],
        'no routine in queue or queue_public is executable by public or anon'
    );
select
    is(
        (
            select coalesce(array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text), '{}')
            from pg_proc as p
            where
                p.pronamespace in ('queue'::regnamespace, 'queue_public'::regnamespace)
                and has_function_privilege('authenticated', p.oid, 'execute')
        ),
        array[
            'queue.enqueue_user_job(text,jsonb,integer,timestamp with time zone,text)',
            'queue_public.enqueue_job(text,jsonb,integer,timestamp with time zone,text)'
        ],
        'authenticated executes only the end-user enqueue'
    );
select
    is(
        (
            select coalesce(array_agg(p.proname::text order by p.proname::text), '{}')
            from pg_proc as p
            where
                p.pronamespace in ('queue'::regnamespace, 'queue_public'::regnamespace)
                and has_function_privilege('queue_worker', p.oid, 'execute')
        ),
        array[
            'claim_jobs', 'complete_job', 'complete_jobs', 'enqueue_child_job', 'enqueue_child_jobs', 'fail_job',
            'heartbeat', 'release_jobs', 'report_progress', 'report_service'
        ]::text[],
        'queue_worker executes only the worker calls (and enqueue_child_job(s), for follow-up jobs of a job it holds; not enqueue_job)'
    );
select
    is(
        (
            select coalesce(array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text), '{}')
            from pg_proc as p
            where
                p.pronamespace in ('queue'::regnamespace, 'queue_public'::regnamespace)
                and not has_function_privilege('service_role', p.oid, 'execute')
        ),
        '{}'::text[],
        'service_role executes everything'
    );
select
    is(
        (
            select coalesce(array_agg(distinct c.relname::text order by c.relname::text), '{}')
            from pg_class as c
            cross join (values ('anon'), ('queue_worker')) as r (rolname)
            where
                c.relnamespace in ('queue'::regnamespace, 'queue_public'::regnamespace)
                and c.relkind in ('r', 'v', 'p', 'm', 'S')
                and (
                    has_table_privilege(r.rolname, c.oid, 'select,insert,update,delete,truncate,references,trigger')
                    or has_any_column_privilege(r.rolname, c.oid, 'select,insert,update,references')
                )
        ),
        '{}'::text[],
        'anon and queue_worker have no privilege on any table, view or sequence'
    );
select
    is(
        (
            select coalesce(array_agg(c.oid::regclass::text order by c.oid::regclass::text), '{}')
            from pg_class as c
            where
                c.relnamespace in ('queue'::regnamespace, 'queue_public'::regnamespace)
                and c.relkind in ('r', 'v', 'p', 'm', 'S')
                and has_any_column_privilege('authenticated', c.oid, 'select,insert,update,references')
        ),
        array['queue.job_history', 'queue.jobs', 'queue_public.my_jobs'],
        'authenticated reads only jobs, job_history (some columns, under RLS) and my_jobs'
    );
select
    ok(
        not has_column_privilege('authenticated', 'queue.jobs', 'payload', 'select')
        and not has_column_privilege('authenticated', 'queue.job_history', 'payload', 'select'),
        'authenticated cannot select any payload'
    );
select
    ok(
        not has_schema_privilege('anon', 'queue', 'usage')
        and not has_schema_privilege('anon', 'queue_public', 'usage'),
        'anon has no usage on queue or queue_public'
    );

select
    function_privs_are(
        'queue_public', 'enqueue_job', array['text', 'jsonb', 'integer', 'timestamp with time zone', 'text'],
        'authenticated', array['EXECUTE'],
        'authenticated may execute queue_public.enqueue_job'
    );
select
    function_privs_are(
        'queue_public', 'enqueue_job', array['text', 'jsonb', 'integer', 'timestamp with time zone', 'text'],
        'anon', array[]::text[],
        'anon may not execute queue_public.enqueue_job'
    );
select
    function_privs_are(
        'queue', 'claim_jobs', array['text', 'integer', 'text[]', 'text[]', 'integer'],
        'queue_worker', array['EXECUTE'],
        'queue_worker may execute claim_jobs'
    );
select
    function_privs_are(
        'queue', 'claim_jobs', array['text', 'integer', 'text[]', 'text[]', 'integer'],
        'authenticated', array[]::text[],
        'authenticated may not execute claim_jobs'
    );
select
    function_privs_are(
        'queue', 'schedule_job', array['text', 'text', 'text', 'jsonb', 'text', 'integer'],
        'queue_worker', array[]::text[],
        'queue_worker may not schedule recurring jobs'
    );
select
    function_privs_are(
        'queue', 'schedule_job', array['text', 'text', 'text', 'jsonb', 'text', 'integer'],
        'service_role', array['EXECUTE'],
        'service_role may schedule recurring jobs'
    );

select
    policies_are(
        'queue', 'jobs', array['jobs_owner_reads'],
        'queue.jobs has only the owner-reads policy'
    );
select
    policies_are(
        'queue', 'job_history', array['job_history_owner_reads'],
        'queue.job_history has only the owner-reads policy'
    );
select
    policy_roles_are(
        'queue', 'jobs', 'jobs_owner_reads', array['authenticated'],
        'the jobs policy applies to authenticated only'
    );
select
    policy_cmd_is(
        'queue', 'jobs', 'jobs_owner_reads', 'select',
        'the jobs policy only reads'
    );

select
    ok(
        (
            select 'security_invoker=true' = any(c.reloptions) from pg_class as c
            where c.oid = 'queue_public.my_jobs'::regclass
        ),
        'queue_public.my_jobs is a security_invoker view'
    );
select
    ok(
        (
            select not bool_or(p.prosecdef)
            from pg_proc as p
            where p.pronamespace = 'queue_public'::regnamespace
        ),
        'queue_public has no security definer function (Splinter: none in an exposed schema)'
    );

select * from finish();
rollback;
