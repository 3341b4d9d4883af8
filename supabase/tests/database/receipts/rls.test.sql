-- RLS: an end user reads only their own receipts rows and decides only on their own matches.
begin;
select plan(9);
\ir ../../helpers/receipts_setup.psql

select pg_temp.make_receipt(pg_temp.alice(), 'alice-1', 1100) as ra \gset
select pg_temp.make_receipt(pg_temp.bob(), 'bob-1', 2200) as rb \gset
select pg_temp.make_txn(pg_temp.alice(), 'ta', 1100) as ta \gset
select pg_temp.make_txn(pg_temp.bob(), 'tb', 2200) as tb \gset
select pg_temp.make_match(:ra, :ta, 'suggested') as ma \gset
select pg_temp.make_match(:rb, :tb, 'suggested') as mb \gset
insert into receipts.freee_outbox (owner_id, receipt_id, kind, request)
values (pg_temp.alice(), :ra, 'upload_receipt', '{}'), (pg_temp.bob(), :rb, 'upload_receipt', '{}');

select pg_temp.as_user(pg_temp.alice());

select
    is(
        (select array_agg(total_yen) from receipts.receipts),
        array[1100::bigint],
        'alice sees her receipt and not bob''s'
    );
select is((select count(*) from receipts.files), 1::bigint, 'alice sees only her file');
select is((select count(*) from receipts.transactions), 1::bigint, 'alice sees only her transactions');
select is((select count(*) from receipts.freee_outbox), 1::bigint, 'alice sees only her outbox rows');
select
    is(
        (select array_agg(total_yen) from receipts.receipt_summary),
        array[1100::bigint],
        'the summary view applies RLS too (security_invoker)'
    );
select
    throws_ok(
        format($$ update receipts.receipts set total_yen = 1 where id = %s $$, :ra),
        '42501', null,
        'end users do not write receipts directly'
    );
select
    throws_ok(
        format('select receipts.review_match(%s, %L)', :mb, 'confirmed'),
        'P0002', format('match %s not found', :mb),
        'alice cannot decide on bob''s match: it is not found'
    );
select
    is(
        (receipts.review_match(:ma, 'confirmed')).status,
        'confirmed',
        'alice confirms her own match'
    );
reset role;
select
    is(
        (
            select status from receipts.matches
            where id = :mb
        ),
        'suggested',
        'bob''s match is untouched'
    );

select * from finish();
rollback;
