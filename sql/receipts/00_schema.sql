-- The receipt domain's schema. Its tables hold what the six receipt handlers read and write;
-- it is not exposed through the Data API (end users read their own rows through RLS).
create schema if not exists receipts;

comment on schema receipts is 'Kyu receipts: email intake, extracted receipts, bank/card matches, freee outbox and monthly reports.';
