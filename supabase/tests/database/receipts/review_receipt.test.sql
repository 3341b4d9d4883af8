-- review_receipt: a human's fields win, and the pipeline continues with matching.
begin;
select plan(4);
\ir ../../helpers/receipts_setup.psql

select pg_temp.make_file(pg_temp.alice(), 'blurry') as f \gset
insert into receipts.receipts (owner_id, file_id, status, review_reasons)
values (pg_temp.alice(), :f, 'needs_review', '{no_total,no_date}')
returning id as r \gset

select
    throws_ok(
        format('select receipts.review_receipt(%s, %L, null, 1100)', :r, 'x'),
        '22023', null,
        'confirming needs a date and a total'
    );
select
    is(
        (
            select row(status, vendor, total_yen, review_reasons)
            from receipts.review_receipt(:r, 'タクシー', '2026-10-02', 1100)
        ),
        row('confirmed'::text, 'タクシー'::text, 1100::bigint, '{}'::text[]),
        'the receipt is confirmed with the human''s fields and no review reasons'
    );
select
    is(
        (
            select count(*) from queue.jobs
            where job_type = 'match_transaction' and unique_key = format('match:%s', :r)
        ),
        1::bigint,
        'match_transaction is enqueued for it'
    );
select
    lives_ok(
        format('select receipts.review_receipt(%s, null, %L, 1100)', :r, '2026-10-02'),
        'a second review is idempotent (the live match job is reused)'
    );

select * from finish();
rollback;
