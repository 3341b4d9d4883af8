-- enqueue_freee_drain: one sync_freee per filed receipt whose freee requests are not done,
-- never twice; scoped to alice so rows already in the database do not count.
begin;
select plan(5);
\ir ../../helpers/receipts_setup.psql

select pg_temp.make_receipt(pg_temp.alice(), 'waiting', 1100) as r1 \gset
select pg_temp.make_receipt(pg_temp.alice(), 'sent', 2200) as r2 \gset
select pg_temp.make_receipt(pg_temp.alice(), 'never-queued', 3300) as r3 \gset
select pg_temp.make_receipt(pg_temp.alice(), 'not-filed', 4400) as r4 \gset
update receipts.files as f
set storage_path = 'p/' || f.id, filed_at = now()
from receipts.receipts as r
where r.file_id = f.id and r.id in (:r1, :r2, :r3);
insert into receipts.freee_outbox (owner_id, receipt_id, kind, request, state, sent_at)
values
(pg_temp.alice(), :r1, 'upload_receipt', '{}', 'sent', now()),
(pg_temp.alice(), :r1, 'create_deal', '{}', 'pending', null),
(pg_temp.alice(), :r2, 'upload_receipt', '{}', 'sent', now()),
(pg_temp.alice(), :r2, 'create_deal', '{}', 'sent', now());

select
    is(
        receipts.enqueue_freee_drain(owner_id => pg_temp.alice()),
        2,
        'the receipt with a pending request and the filed one never queued are covered'
    );
select
    is(
        (
            select array_agg((payload ->> 'receipt_id')::bigint order by id) from queue.jobs
            where job_type = 'sync_freee' and owner_id = pg_temp.alice()
        ),
        array[:r1, :r3]::bigint[],
        'sent and unfiled receipts are left alone'
    );
select
    is(
        (
            select unique_key from queue.jobs
            where job_type = 'sync_freee' and payload ->> 'receipt_id' = :'r1'
        ),
        format('freee:%s', :r1),
        'the job''s unique_key is freee:<receipt_id>, as the pipeline''s own'
    );
select receipts.enqueue_freee_drain(owner_id => pg_temp.alice());
select
    is(
        (
            select count(*) from queue.jobs
            where job_type = 'sync_freee' and owner_id = pg_temp.alice()
        ),
        2::bigint,
        'a second drain while the jobs wait adds nothing'
    );
select
    is(
        (
            select owner_id from queue.jobs
            where job_type = 'sync_freee' and payload ->> 'receipt_id' = :'r3'
        ),
        pg_temp.alice(),
        'the job belongs to the receipt''s owner'
    );

select * from finish();
rollback;
