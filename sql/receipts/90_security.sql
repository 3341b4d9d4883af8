-- Security for the receipts schema, in one place. Model (the queue's): RLS on every table;
-- service_role does everything; the worker role writes through its handlers; authenticated end
-- users read their own rows (owner_id = auth.uid()) and act only through the review functions.

revoke all on schema receipts from public;
revoke all on all tables in schema receipts from public;
revoke all on all sequences in schema receipts from public;
revoke execute on all functions in schema receipts from public;
alter default privileges in schema receipts revoke execute on functions from public;

alter table receipts.email_messages enable row level security;
alter table receipts.files enable row level security;
alter table receipts.receipts enable row level security;
alter table receipts.transactions enable row level security;
alter table receipts.matches enable row level security;
alter table receipts.vendor_aliases enable row level security;
alter table receipts.freee_outbox enable row level security;
alter table receipts.freee_credentials enable row level security;
alter table receipts.reports enable row level security;

-- service_role: everything.
grant usage on schema receipts to service_role;
grant all on all tables in schema receipts to service_role;
grant all on all sequences in schema receipts to service_role;
grant execute on all functions in schema receipts to service_role;

-- queue_worker: the handlers read and write domain rows in the job's transaction.
grant usage on schema receipts to queue_worker;
grant select, insert, update on all tables in schema receipts to queue_worker;
grant usage on all sequences in schema receipts to queue_worker;
-- handlers enqueue the next step with queue.enqueue_child_job (granted in sql/queue/90_security.sql):
-- a child of the job they hold, owned by its owner. No enqueue_job: a worker creates no job for an
-- arbitrary owner at an arbitrary priority.

create policy email_messages_worker_all on receipts.email_messages
for all to queue_worker using (true) with check (true);
create policy files_worker_all on receipts.files
for all to queue_worker using (true) with check (true);
create policy receipts_worker_all on receipts.receipts
for all to queue_worker using (true) with check (true);
create policy transactions_worker_all on receipts.transactions
for all to queue_worker using (true) with check (true);
create policy matches_worker_all on receipts.matches
for all to queue_worker using (true) with check (true);
create policy vendor_aliases_worker_all on receipts.vendor_aliases
for all to queue_worker using (true) with check (true);
create policy freee_outbox_worker_all on receipts.freee_outbox
for all to queue_worker using (true) with check (true);
create policy freee_credentials_worker_all on receipts.freee_credentials
for all to queue_worker using (true) with check (true);
create policy reports_worker_all on receipts.reports
for all to queue_worker using (true) with check (true);

-- authenticated: read its own rows; decide through review_match and review_receipt. No access
-- to freee_credentials, and no direct writes.
grant usage on schema receipts to authenticated;
grant select on receipts.email_messages, receipts.files, receipts.receipts, receipts.transactions to authenticated;
grant select on receipts.matches, receipts.vendor_aliases, receipts.freee_outbox, receipts.reports to authenticated;
grant select on receipts.receipt_summary to authenticated;
grant execute on function receipts.review_match(bigint, text) to authenticated;
grant execute on function receipts.review_receipt(bigint, text, date, bigint, text) to authenticated;

create policy email_messages_owner_reads on receipts.email_messages
for select to authenticated
using (owner_id = (select auth.uid()));
create policy files_owner_reads on receipts.files
for select to authenticated
using (owner_id = (select auth.uid()));
create policy receipts_owner_reads on receipts.receipts
for select to authenticated
using (owner_id = (select auth.uid()));
create policy transactions_owner_reads on receipts.transactions
for select to authenticated
using (owner_id = (select auth.uid()));
create policy matches_owner_reads on receipts.matches
for select to authenticated
using (owner_id = (select auth.uid()));
create policy vendor_aliases_owner_reads on receipts.vendor_aliases
for select to authenticated
using (owner_id = (select auth.uid()));
create policy freee_outbox_owner_reads on receipts.freee_outbox
for select to authenticated
using (owner_id = (select auth.uid()));
create policy reports_owner_reads on receipts.reports
for select to authenticated
using (owner_id = (select auth.uid()));
