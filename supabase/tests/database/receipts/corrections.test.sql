-- Corrections: a human's vendor for a receipt is kept as an alias of the text that was read.
begin;
select plan(4);
\ir ../../helpers/receipts_setup.psql

select pg_temp.make_receipt(pg_temp.alice(), 'c1', 1500) as c1 \gset

select receipts.review_receipt(:c1, 'Example Cloud Inc.', '2026-10-05', 1500);
select
    results_eq(
        format('select alias, vendor from receipts.vendor_aliases where owner_id = %L', pg_temp.alice()),
        $$values ('テスト商店 c1', 'Example Cloud Inc.')$$,
        'the vendor as read becomes an alias of the corrected vendor'
    );
select
    is(
        (
            select status from receipts.receipts
            where id = :c1
        ), 'confirmed',
        'the corrected receipt is confirmed'
    );

select receipts.review_receipt(:c1, 'Example Cloud Inc.', '2026-10-06', 1500);
select
    is(
        (
            select count(*)::int from receipts.vendor_aliases
            where owner_id = pg_temp.alice()
        ), 1,
        'a correction that keeps the vendor teaches nothing new'
    );

select pg_temp.make_receipt(pg_temp.bob(), 'c1', 900) as b1 \gset
select receipts.review_receipt(:b1, 'Bob''s Shop', '2026-10-05', 900);
select
    is(
        (
            select vendor from receipts.vendor_aliases
            where owner_id = pg_temp.alice()
        ),
        'Example Cloud Inc.',
        'aliases are per owner: the same text read for another owner does not overwrite it'
    );

select * from finish();
rollback;
