-- RLS on every table an end user may read (matches, vendor aliases, mail messages, reports):
-- alice sees her rows and none of bob's, on the tables themselves.
begin;
select plan(5);
\ir ../../helpers/receipts_setup.psql

select pg_temp.make_receipt(pg_temp.alice(), 'alice-1', 1100) as ra \gset
select pg_temp.make_receipt(pg_temp.bob(), 'bob-1', 2200) as rb \gset
select pg_temp.make_match(:ra, pg_temp.make_txn(pg_temp.alice(), 'ta', 1100), 'suggested') as ma \gset
select pg_temp.make_match(:rb, pg_temp.make_txn(pg_temp.bob(), 'tb', 2200), 'suggested') as mb \gset
insert into receipts.vendor_aliases (owner_id, alias, vendor) values
(pg_temp.alice(), 'ALICE SHOP', 'アリス商店'),
(pg_temp.bob(), 'BOB SHOP', 'ボブ商店');
insert into receipts.email_messages (owner_id, source, source_key, raw_sha256, subject) values
(pg_temp.alice(), 'eml', 'a.eml', repeat('a', 64), 'alice mail'),
(pg_temp.bob(), 'eml', 'b.eml', repeat('b', 64), 'bob mail');
insert into receipts.reports (owner_id, month) values
(pg_temp.alice(), '2026-10-01'),
(pg_temp.bob(), '2026-10-01');

select pg_temp.as_user(pg_temp.alice());
select is((select array_agg(id) from receipts.matches), array[:ma::bigint], 'alice sees her match and not bob''s');
select is((select array_agg(alias) from receipts.vendor_aliases), array['ALICE SHOP'], 'alice sees only her vendor aliases');
select is((select array_agg(subject) from receipts.email_messages), array['alice mail'], 'alice sees only her mail');
select is((select array_agg(owner_id) from receipts.reports), array[pg_temp.alice()], 'alice sees only her reports');
reset role;
select is((
    select count(*) from receipts.reports
    where month = '2026-10-01'
), 2::bigint, 'both reports exist (RLS filtered bob''s)');

select * from finish();
rollback;
