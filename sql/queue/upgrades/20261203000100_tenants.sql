-- Upgrade: tenants (issue 12) for databases that applied an earlier initial migration. Adds the
-- per-owner quota, concurrency and fairness columns (nullable, or with a constant default: no
-- table rewrite), the owner_buckets table and the owners' claim index, then drops the functions
-- whose signature or result changes; the sql/queue files rendered after this step
-- create them again, with every grant (90_security.sql runs again, its policies dropped first).
-- Nothing changes for anyone until an operator sets a quota, owner_concurrency or fair: every
-- new setting is off, and existing tiers keep quota_factor 1 and fair_weight 1 (a fresh install
-- seeds pro 10 / 2 and enterprise 100 / 4).
-- Locks: ACCESS EXCLUSIVE on queue.settings, queues, job_types and tiers for an instant (added
-- columns); building jobs_owner_claim_idx holds a SHARE lock on queue.jobs while it reads the
-- waiting jobs that have an owner (enqueues and claims wait for it: well under a second per
-- 100,000 such jobs). Workers may keep running.
alter table queue.settings
add column if not exists max_user_payload_bytes int not null default 65536;

alter table queue.queues
add column if not exists owner_max_live_jobs int,
add column if not exists owner_enqueue_rate int,
add column if not exists owner_enqueue_interval interval,
add column if not exists owner_limits_all boolean not null default false,
add column if not exists owner_concurrency int,
add column if not exists fair boolean not null default false,
add column if not exists fair_cursor uuid;

alter table queue.job_types
add column if not exists owner_max_live_jobs int,
add column if not exists owner_enqueue_rate int,
add column if not exists owner_enqueue_interval interval;

alter table queue.tiers
add column if not exists quota_factor numeric not null default 1,
add column if not exists fair_weight int not null default 1;

-- the check constraints of sql/queue/20_tables.sql, added once
do $$
declare
    v_check record;
begin
    for v_check in
        select c.tbl, c.name, c.def
        from (
            values
            ('queue.settings', 'settings_max_user_payload_positive', 'check (max_user_payload_bytes > 0)'),
            ('queue.queues', 'queues_owner_max_live_positive',
                'check (owner_max_live_jobs is null or owner_max_live_jobs >= 1)'),
            ('queue.queues', 'queues_owner_rate_complete',
                'check ((owner_enqueue_rate is null and owner_enqueue_interval is null)'
                || ' or (owner_enqueue_rate >= 1 and owner_enqueue_interval > interval ''0''))'),
            ('queue.queues', 'queues_owner_concurrency_positive',
                'check (owner_concurrency is null or owner_concurrency >= 1)'),
            ('queue.job_types', 'job_types_owner_max_live_positive',
                'check (owner_max_live_jobs is null or owner_max_live_jobs >= 1)'),
            ('queue.job_types', 'job_types_owner_rate_complete',
                'check ((owner_enqueue_rate is null and owner_enqueue_interval is null)'
                || ' or (owner_enqueue_rate >= 1 and owner_enqueue_interval > interval ''0''))'),
            ('queue.tiers', 'tiers_quota_factor_in_range', 'check (quota_factor > 0 and quota_factor <= 1000)'),
            ('queue.tiers', 'tiers_fair_weight_in_range', 'check (fair_weight between 1 and 100)')
        ) as c (tbl, name, def)
        where not exists (
            select from pg_catalog.pg_constraint as k
            where k.conrelid = c.tbl::regclass and k.conname = c.name
        )
    loop
        execute format('alter table %s add constraint %I %s', v_check.tbl, v_check.name, v_check.def);
    end loop;
end
$$;

comment on table queue.settings is
'Global settings (one row): the payload size cap for enqueue (max_payload_bytes) and the lower one for end users (max_user_payload_bytes).';
comment on column queue.queues.owner_max_live_jobs is
'At most this many live (waiting or running) jobs per owner in this queue, for end users (and for every caller with owner_limits_all), times the owner''s tier quota_factor; null = no limit.';
comment on column queue.queues.owner_enqueue_rate is
'At most owner_enqueue_rate enqueues per owner_enqueue_interval per owner in this queue (a token bucket per owner), times the tier''s quota_factor; null = no limit.';
comment on column queue.queues.owner_limits_all is
'false (default): the owner quotas apply to end users only (queue_public.enqueue_job); true: also to service_role and every caller of enqueue_job(s) that passes an owner_id.';
comment on column queue.queues.owner_concurrency is 'At most this many running jobs per owner across all workers; null = no limit.';
comment on column queue.queues.fair is
'Within a priority, claim_jobs hands out jobs round-robin across owners (weighted by the tier''s fair_weight) instead of first in, first out.';
comment on table queue.tiers is
'Customer tiers: a job owned by a user of this tier gets priority + priority_offset (lower runs sooner); the per-owner quotas and enqueue rates are multiplied by quota_factor; on a fair queue the owner gets fair_weight turns for every one of a weight-1 owner.';

create table if not exists queue.owner_buckets (
    owner_id uuid not null,
    scope text not null,
    tokens double precision,
    refilled_at timestamptz not null default now(),
    constraint owner_buckets_pkey primary key (owner_id, scope)
);

comment on table queue.owner_buckets is
'Per-owner enqueue state: one row per owner and scope (queue:<name>, type:<name>) with the owner''s token bucket (tokens, refilled_at; null tokens = full). Its row lock serializes an owner''s enqueues in the scope, which keeps the live-job quota exact under concurrent enqueuers.';

create index if not exists jobs_owner_claim_idx on queue.jobs (queue_name, owner_id, priority, run_at, id)
where status in ('pending', 'retrying') and owner_id is not null;

-- signatures and columns that change: created again by the files below
drop function if exists queue.create_queue(
    text, int, queue.backoff_strategy, interval, interval, numeric, int, interval, int, int, interval, interval
);
drop function if exists queue.register_job_type(text, text, int, int, int, boolean, text[], text, text[]);
drop function if exists queue._claim_allowances(text[], int);
