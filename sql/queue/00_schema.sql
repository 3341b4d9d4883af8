-- Kyu's engine schema. Everything the queue is lives in `queue`; it is not exposed through
-- the Data API (end users go through `queue_public`, see 90_security.sql).
create schema if not exists queue;

comment on schema queue is 'Kyu: a background job queue inside Postgres (engine; not exposed to the Data API).';
