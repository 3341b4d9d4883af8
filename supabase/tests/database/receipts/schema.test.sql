-- The receipts schema's shape: its tables, RLS on each, comments, and hardened functions.
begin;
select plan(8);

select
    tables_are(
        'receipts',
        array[
            'email_messages', 'files', 'receipts', 'transactions', 'matches', 'vendor_aliases',
            'freee_outbox', 'freee_credentials', 'reports'
        ],
        'receipts has exactly the domain tables'
    );
select
    is(
        (
            select array_agg(c.relname::text order by c.relname)
            from pg_class as c
            where c.relnamespace = 'receipts'::regnamespace and c.relkind = 'r' and not c.relrowsecurity
        ),
        null,
        'every receipts table has row level security enabled'
    );
select
    is(
        (
            select array_agg(c.relname::text order by c.relname)
            from pg_class as c
            where
                c.relnamespace = 'receipts'::regnamespace and c.relkind in ('r', 'v')
                and obj_description(c.oid, 'pg_class') is null
        ),
        null,
        'every receipts table and view has a comment'
    );
select
    is(
        (
            select array_agg(p.proname::text order by p.proname)
            from pg_proc as p
            where
                p.pronamespace = 'receipts'::regnamespace
                and not (p.prosecdef and 'search_path=""' = any(p.proconfig))
        ),
        null,
        'every receipts function is security definer with search_path = '''''
    );
select
    is(
        (
            select array_agg(p.proname::text order by p.proname)
            from pg_proc as p
            where p.pronamespace = 'receipts'::regnamespace and obj_description(p.oid, 'pg_proc') is null
        ),
        null,
        'every receipts function has a comment'
    );
select
    ok(
        (
            select c.reloptions @> array['security_invoker=true'] from pg_class as c
            where c.oid = 'receipts.receipt_summary'::regclass
        ),
        'receipt_summary is a security_invoker view, so RLS applies to its readers'
    );
select
    ok(
        not has_function_privilege('anon', 'receipts.review_match(bigint, text)', 'execute')
        and not has_function_privilege('authenticated', 'receipts._assert_caller_owns(uuid, text)', 'execute'),
        'anon cannot review matches and nobody but service_role runs the private helper'
    );
select
    ok(
        not has_table_privilege('authenticated', 'receipts.freee_credentials', 'select')
        and not has_table_privilege('anon', 'receipts.receipts', 'select'),
        'freee credentials are hidden from end users and anon reads nothing'
    );

select * from finish();
rollback;
