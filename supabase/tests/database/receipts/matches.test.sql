-- Matches: auto and confirmed are one-to-one; a human's decision wins and teaches aliases.
begin;
select plan(11);
\ir ../../helpers/receipts_setup.psql

select pg_temp.make_receipt(pg_temp.alice(), 'r1', 1100) as r1 \gset
select pg_temp.make_receipt(pg_temp.alice(), 'r2', 1100) as r2 \gset
select pg_temp.make_txn(pg_temp.alice(), 't1', 1100) as t1 \gset
select pg_temp.make_txn(pg_temp.alice(), 't2', 1100) as t2 \gset

select pg_temp.make_match(:r1, :t1, 'auto') as m11 \gset
select
    throws_ok(
        format('select pg_temp.make_match(%s, %s, %L)', :r2, :t1, 'auto'),
        '23505', null,
        'a transaction settles one receipt (matches_transaction_settled_idx)'
    );
select
    throws_ok(
        format('select pg_temp.make_match(%s, %s, %L)', :r1, :t2, 'confirmed'),
        '23505', null,
        'a receipt settles one transaction (matches_receipt_settled_idx)'
    );
select
    lives_ok(
        format(
            'select pg_temp.make_match(%s, %s, %L); select pg_temp.make_match(%s, %s, %L)',
            :r2, :t1, 'suggested', :r1, :t2, 'suggested'
        ),
        'suggestions may overlap (a tie is shown to a human)'
    );
select id as m21 from receipts.matches
where receipt_id = :r2 and transaction_id = :t1 \gset

select
    throws_ok(
        format('select receipts.review_match(%s, %L)', :m21, 'maybe'),
        '22023', 'decision must be confirmed or rejected, got maybe',
        'review_match names a bad decision'
    );
select
    is(
        (receipts.review_match(:m21, 'confirmed')).status,
        'confirmed',
        'a human confirms the suggestion r2-t1'
    );
select
    is(
        (
            select status from receipts.matches
            where id = :m11
        ),
        'suggested',
        'the disagreeing auto match r1-t1 steps back to a suggestion'
    );
select
    is(
        (
            select vendor from receipts.vendor_aliases
            where alias = 'ﾃｽﾄｼﾖｳﾃﾝ t1'
        ),
        'テスト商店 r2',
        'confirming learns the bank description as an alias of the receipt''s vendor'
    );
select
    throws_ok(
        format('select receipts.review_match(%s, %L)', :m11, 'confirmed'),
        '23505', null,
        'a match conflicting with a confirmed one cannot be confirmed'
    );
select
    is(
        (receipts.review_match(:m11, 'rejected')).status,
        'rejected',
        'the other candidate can be rejected'
    );
select
    ok(
        (
            select decided_at is not null from receipts.matches
            where id = :m11
        ),
        'a decision is dated'
    );
select
    throws_ok(
        'select receipts.review_match(-1, ''rejected'')',
        'P0002', 'match -1 not found',
        'an unknown match is not found'
    );

select * from finish();
rollback;
