-- Idempotency keys and field rules: content hashes, source keys, per-receipt outbox rows.
begin;
select plan(13);
\ir ../../helpers/receipts_setup.psql

select pg_temp.make_file(pg_temp.alice(), 'a') as file_a \gset
select
    throws_ok(
        $$ select pg_temp.make_file(pg_temp.alice(), 'a') $$,
        '23505', null,
        'the same content twice for one owner is one file (files_content_once)'
    );
select
    lives_ok(
        $$ select pg_temp.make_file(pg_temp.bob(), 'a') $$,
        'another owner may hold the same bytes'
    );

insert into receipts.email_messages (owner_id, source, source_key, raw_sha256)
values (pg_temp.alice(), 'eml', 'inbox/1.eml', repeat('a', 64));
select
    throws_ok(
        $$ insert into receipts.email_messages (owner_id, source, source_key, raw_sha256)
           values (pg_temp.alice(), 'eml', 'inbox/1.eml', repeat('b', 64)) $$,
        '23505', null,
        'a source key is read once (email_messages_source_once)'
    );
select
    throws_ok(
        $$ insert into receipts.email_messages (owner_id, source, source_key, raw_sha256)
           values (pg_temp.alice(), 'eml', 'inbox/copy.eml', repeat('a', 64)) $$,
        '23505', null,
        'the same raw bytes under another key are caught (email_messages_raw_once)'
    );

insert into receipts.receipts (owner_id, file_id) values (pg_temp.alice(), :file_a);
select
    throws_ok(
        format($$ insert into receipts.receipts (owner_id, file_id) values (%L, %s) $$, pg_temp.alice(), :file_a),
        '23505', null,
        'one receipt per file (receipts_one_per_file)'
    );
select
    throws_ok(
        format($$ update receipts.receipts set status = 'extracted' where file_id = %s $$, :file_a),
        '23514', null,
        'extracted needs a total and a date (receipts_extracted_has_fields)'
    );
select
    throws_ok(
        format($$ update receipts.receipts set status = 'needs_review' where file_id = %s $$, :file_a),
        '23514', null,
        'needs_review needs a reason (receipts_review_has_reason)'
    );
select
    lives_ok(
        format($$ update receipts.receipts set status = 'needs_review', review_reasons = '{no_total}' where file_id = %s $$, :file_a),
        'needs_review with a reason is accepted'
    );
select
    throws_ok(
        format($$ update receipts.receipts set registration_number = 'T123' where file_id = %s $$, :file_a),
        '23514', null,
        'a registration number is T plus 13 digits (receipts_registration_format)'
    );

select pg_temp.make_txn(pg_temp.alice(), 'x1', 1100);
select
    throws_ok(
        $$ select pg_temp.make_txn(pg_temp.alice(), 'x1', 1100) $$,
        '23505', null,
        'a transaction is imported once per source and external id'
    );

select pg_temp.make_receipt(pg_temp.alice(), 'outbox', 500) as r_out \gset
insert into receipts.freee_outbox (owner_id, receipt_id, kind, request)
values (pg_temp.alice(), :r_out, 'upload_receipt', '{}');
select
    throws_ok(
        format($$ insert into receipts.freee_outbox (owner_id, receipt_id, kind, request)
                  values (%L, %s, 'upload_receipt', '{}') $$, pg_temp.alice(), :r_out),
        '23505', null,
        'one outbox row per receipt and kind (freee_outbox_once)'
    );
select
    throws_ok(
        format($$ update receipts.freee_outbox set state = 'sent' where receipt_id = %s $$, :r_out),
        '23514', null,
        'a sent request records when it was sent (freee_outbox_sent_complete)'
    );
select
    throws_ok(
        $$ insert into receipts.reports (owner_id, month) values (pg_temp.alice(), '2026-10-05') $$,
        '23514', null,
        'a report month is the first day of the month'
    );

select * from finish();
rollback;
