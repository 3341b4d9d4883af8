-- Rendered by scripts/render_migrations.sh from sql/queue/upgrades/20261203000100_tenants.sql and the
-- sql/queue files named below; edit those files, not this one.

-- ---- sql/queue/upgrades/20261203000100_tenants.sql ----
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

-- ---- sql/queue/25_registry.sql ----
-- Policy and registry: queues and job types (declarative upserts: a call states the whole policy,
-- so running it twice is harmless) and customer tiers (a priority offset applied at enqueue).

-- create_queue: creates the queue, or sets every policy field of an existing one to what is given.
create or replace function queue.create_queue(
    queue_name text,
    max_attempts int default 5,
    backoff_strategy queue.backoff_strategy default 'exponential',
    backoff_base interval default '5 seconds',
    backoff_max interval default '1 hour',
    backoff_jitter numeric default 0.1,
    lease_seconds int default 300,
    retention interval default '7 days',
    concurrency int default null,
    rate_limit int default null,
    rate_interval interval default null,
    aging_interval interval default null,
    owner_max_live_jobs int default null,
    owner_enqueue_rate int default null,
    owner_enqueue_interval interval default null,
    owner_limits_all boolean default false,
    owner_concurrency int default null,
    fair boolean default false
)
returns queue.queues
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_row queue.queues;
begin
    if create_queue.queue_name is null or create_queue.queue_name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' then
        raise exception 'queue_name must be 1-63 characters of a-z, 0-9, _ . - (starting with a letter or digit), got %',
            coalesce(quote_literal(create_queue.queue_name), 'null') using errcode = '22023';
    elsif create_queue.max_attempts is null or create_queue.max_attempts not between 1 and 100 then
        raise exception 'max_attempts must be from 1 to 100, got %', coalesce(create_queue.max_attempts::text, 'null')
            using errcode = '22023';
    elsif create_queue.backoff_strategy is null then
        raise exception 'backoff_strategy must be fixed, linear or exponential, got null' using errcode = '22023';
    elsif create_queue.backoff_base is null or create_queue.backoff_base < interval '0'
        or create_queue.backoff_base > interval '1 hour' then
        raise exception 'backoff_base must be from 0 to 1 hour, got %', coalesce(create_queue.backoff_base::text, 'null')
            using errcode = '22023', hint = 'Delays grow from the base; backoff_max caps them (up to 7 days).';
    elsif create_queue.backoff_max is null or create_queue.backoff_max < create_queue.backoff_base
        or create_queue.backoff_max <= interval '0' or create_queue.backoff_max > interval '7 days' then
        raise exception 'backoff_max must be over 0, at most 7 days and not below backoff_base (%), got %',
            create_queue.backoff_base, coalesce(create_queue.backoff_max::text, 'null')
            using errcode = '22023';
    elsif create_queue.backoff_jitter is null or create_queue.backoff_jitter not between 0 and 1 then
        raise exception 'backoff_jitter must be between 0 and 1, got %', coalesce(create_queue.backoff_jitter::text, 'null')
            using errcode = '22023';
    elsif create_queue.lease_seconds is null or create_queue.lease_seconds not between 1 and 86400 then
        raise exception 'lease_seconds must be from 1 to 86400 (a day), got %', coalesce(create_queue.lease_seconds::text, 'null')
            using errcode = '22023';
    elsif create_queue.retention is null or create_queue.retention <= interval '0' then
        raise exception 'retention must be positive, got %', coalesce(create_queue.retention::text, 'null')
            using errcode = '22023';
    elsif create_queue.concurrency < 1 then
        raise exception 'concurrency must be at least 1 (or null for no limit), got %', create_queue.concurrency
            using errcode = '22023';
    elsif (create_queue.rate_limit is null) <> (create_queue.rate_interval is null)
        or create_queue.rate_limit < 1 or create_queue.rate_interval <= interval '0' then
        raise exception 'rate_limit (>= 1) and rate_interval (> 0) go together, got % per %',
            create_queue.rate_limit, create_queue.rate_interval using errcode = '22023';
    elsif create_queue.aging_interval <= interval '0' then
        raise exception 'aging_interval must be positive (or null for off), got %', create_queue.aging_interval
            using errcode = '22023';
    end if;
    perform queue._check_owner_policy(
        create_queue.owner_max_live_jobs, create_queue.owner_enqueue_rate, create_queue.owner_enqueue_interval
    );
    if create_queue.owner_concurrency < 1 then
        raise exception 'owner_concurrency must be at least 1 (or null for no limit), got %', create_queue.owner_concurrency
            using errcode = '22023';
    end if;

    insert into queue.queues as q (
        queue_name, max_attempts, backoff_strategy, backoff_base, backoff_max, backoff_jitter,
        lease_seconds, retention, concurrency, rate_limit, rate_interval, aging_interval,
        owner_max_live_jobs, owner_enqueue_rate, owner_enqueue_interval, owner_limits_all, owner_concurrency, fair
    )
    values (
        create_queue.queue_name, create_queue.max_attempts, create_queue.backoff_strategy,
        create_queue.backoff_base, create_queue.backoff_max, create_queue.backoff_jitter,
        create_queue.lease_seconds, create_queue.retention, create_queue.concurrency,
        create_queue.rate_limit, create_queue.rate_interval, create_queue.aging_interval,
        create_queue.owner_max_live_jobs, create_queue.owner_enqueue_rate, create_queue.owner_enqueue_interval,
        coalesce(create_queue.owner_limits_all, false), create_queue.owner_concurrency,
        coalesce(create_queue.fair, false)
    )
    on conflict on constraint queues_pkey do update
    set max_attempts = excluded.max_attempts,
        backoff_strategy = excluded.backoff_strategy,
        backoff_base = excluded.backoff_base,
        backoff_max = excluded.backoff_max,
        backoff_jitter = excluded.backoff_jitter,
        lease_seconds = excluded.lease_seconds,
        retention = excluded.retention,
        concurrency = excluded.concurrency,
        rate_limit = excluded.rate_limit,
        rate_interval = excluded.rate_interval,
        -- a changed rate starts from a full bucket
        rate_tokens = case when q.rate_limit is distinct from excluded.rate_limit
            or q.rate_interval is distinct from excluded.rate_interval then null else q.rate_tokens end,
        aging_interval = excluded.aging_interval,
        owner_max_live_jobs = excluded.owner_max_live_jobs,
        owner_enqueue_rate = excluded.owner_enqueue_rate,
        owner_enqueue_interval = excluded.owner_enqueue_interval,
        owner_limits_all = excluded.owner_limits_all,
        owner_concurrency = excluded.owner_concurrency,
        fair = excluded.fair,
        updated_at = now()
    returning q.* into v_row;
    return v_row;
end
$$;

comment on function queue.create_queue(
    text, int, queue.backoff_strategy, interval, interval, numeric, int, interval, int, int, interval, interval,
    int, int, interval, boolean, int, boolean
) is
'Creates a queue, or sets every policy field of an existing one to the given values (defaults for those left out; paused is kept). concurrency: max running jobs across all workers; rate_limit per rate_interval: a token bucket of starts; aging_interval: waiting jobs gain one priority step per interval. Tenants: owner_max_live_jobs (live jobs per owner) and owner_enqueue_rate per owner_enqueue_interval (a token bucket per owner) limit end users at enqueue (every caller passing an owner_id with owner_limits_all); owner_concurrency: max running jobs per owner; fair: round-robin across owners within a priority.';

-- register_job_type: creates or updates a job type.
create or replace function queue.register_job_type(
    job_type text,
    queue_name text default 'default',
    priority int default 50,
    max_attempts int default null,
    timeout_seconds int default null,
    user_enqueue boolean default false,
    services text[] default '{}',
    description text default null,
    chains_to text[] default '{}',
    owner_max_live_jobs int default null,
    owner_enqueue_rate int default null,
    owner_enqueue_interval interval default null
)
returns queue.job_types
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_row queue.job_types;
begin
    if register_job_type.job_type is null or register_job_type.job_type !~ '^[A-Za-z][A-Za-z0-9_.:-]{0,99}$' then
        raise exception 'job_type must be 1-100 characters of letters, digits, _ . : - (starting with a letter), got %',
            coalesce(quote_literal(register_job_type.job_type), 'null') using errcode = '22023';
    elsif not exists (select from queue.queues as q where q.queue_name = register_job_type.queue_name) then
        raise exception 'unknown queue: %', register_job_type.queue_name
            using errcode = '22023', hint = 'Create it first: select queue.create_queue(queue_name => ...);';
    elsif register_job_type.priority is null or register_job_type.priority not between 1 and 100 then
        raise exception 'priority must be between 1 and 100, got %', register_job_type.priority using errcode = '22023';
    elsif register_job_type.max_attempts not between 1 and 100 then
        raise exception 'max_attempts must be from 1 to 100, got %', register_job_type.max_attempts using errcode = '22023';
    elsif register_job_type.timeout_seconds < 1 then
        raise exception 'timeout_seconds must be at least 1, got %', register_job_type.timeout_seconds using errcode = '22023';
    elsif array_position(register_job_type.chains_to, null) is not null then
        raise exception 'chains_to must list job types, got %', register_job_type.chains_to using errcode = '22023';
    end if;
    perform queue._check_owner_policy(
        register_job_type.owner_max_live_jobs, register_job_type.owner_enqueue_rate,
        register_job_type.owner_enqueue_interval
    );

    insert into queue.job_types as t (
        job_type, queue_name, priority, max_attempts, timeout_seconds, user_enqueue, services, description,
        chains_to, owner_max_live_jobs, owner_enqueue_rate, owner_enqueue_interval
    )
    values (
        register_job_type.job_type, register_job_type.queue_name, register_job_type.priority,
        register_job_type.max_attempts, register_job_type.timeout_seconds,
        coalesce(register_job_type.user_enqueue, false), coalesce(register_job_type.services, '{}'),
        register_job_type.description, coalesce(register_job_type.chains_to, '{}'),
        register_job_type.owner_max_live_jobs, register_job_type.owner_enqueue_rate,
        register_job_type.owner_enqueue_interval
    )
    on conflict on constraint job_types_pkey do update
    set queue_name = excluded.queue_name,
        priority = excluded.priority,
        max_attempts = excluded.max_attempts,
        timeout_seconds = excluded.timeout_seconds,
        user_enqueue = excluded.user_enqueue,
        services = excluded.services,
        description = excluded.description,
        chains_to = excluded.chains_to,
        owner_max_live_jobs = excluded.owner_max_live_jobs,
        owner_enqueue_rate = excluded.owner_enqueue_rate,
        owner_enqueue_interval = excluded.owner_enqueue_interval,
        updated_at = now()
    returning t.* into v_row;
    return v_row;
end
$$;

comment on function queue.register_job_type(text, text, int, int, int, boolean, text[], text, text[], int, int, interval) is
'Creates or updates a job type: default queue and priority, overrides of the queue''s max_attempts (1-100) and lease (timeout_seconds), whether authenticated end users may enqueue it, the external services it depends on (circuit breakers), the job types its handler may enqueue as children (chains_to; queue.enqueue_child_jobs), and per-owner quotas for its jobs on top of the queue''s (owner_max_live_jobs, owner_enqueue_rate per owner_enqueue_interval).';

-- ensure_job_type: registers a job type only if it is missing (a worker starting with its
-- handlers); an existing type keeps the settings an operator gave it. Returns true if it added it.
create or replace function queue.ensure_job_type(
    job_type text,
    queue_name text default 'default',
    priority int default 50,
    max_attempts int default null,
    timeout_seconds int default null,
    description text default null
)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if exists (select from queue.job_types as t where t.job_type = ensure_job_type.job_type) then
        return false;
    end if;
    perform queue.register_job_type(
        job_type => ensure_job_type.job_type,
        queue_name => ensure_job_type.queue_name,
        priority => ensure_job_type.priority,
        max_attempts => ensure_job_type.max_attempts,
        timeout_seconds => ensure_job_type.timeout_seconds,
        description => ensure_job_type.description
    );
    return true;
end
$$;

comment on function queue.ensure_job_type(text, text, int, int, int, text) is
'Registers a job type only if it is missing (workers call it for their handlers); an existing type keeps its settings. Returns true when it added the type.';

-- set_owner_tier: puts a job owner on a customer tier (or off any tier with null).
create or replace function queue.set_owner_tier(owner_id uuid, tier text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if set_owner_tier.owner_id is null then
        raise exception 'owner_id is required' using errcode = '22023';
    end if;
    if set_owner_tier.tier is null then
        delete from queue.owner_tiers as o where o.owner_id = set_owner_tier.owner_id;
        return;
    end if;
    if not exists (select from queue.tiers as t where t.tier = set_owner_tier.tier) then
        raise exception 'unknown tier: %', queue._shown(set_owner_tier.tier) using errcode = '22023',
            hint = 'Tiers live in queue.tiers (tier, priority_offset).';
    end if;
    insert into queue.owner_tiers as o (owner_id, tier)
    values (set_owner_tier.owner_id, set_owner_tier.tier)
    on conflict on constraint owner_tiers_pkey do update set tier = excluded.tier;
end
$$;

comment on function queue.set_owner_tier(
    uuid, text
) is 'Puts a job owner on a customer tier: their jobs are enqueued with priority + the tier''s priority_offset.';

-- ---- sql/queue/27_owner_limits.sql ----
-- Tenants at enqueue: per-owner quotas. A queue or a job type may cap an owner's live (waiting or
-- running) jobs and the owner's enqueue rate (a token bucket per owner); a tier multiplies both
-- (queue.tiers.quota_factor). They bind end users (queue_public.enqueue_job) always, and every
-- caller passing an owner_id only on queues with owner_limits_all: service_role is trusted
-- unless an operator asks.
-- Over a limit: SQLSTATE 53400 (configuration_limit_exceeded: a configured limit, not bad input;
-- PostgREST answers it with 503, which clients retry later), the owner, the scope and the limit
-- in the message, when to retry in the hint. Nothing is written: the check runs after the insert
-- in the same transaction, under the owner's lock, and its error undoes the insert.

-- _check_owner_policy: what is wrong with a quota setting (create_queue, register_job_type).
create or replace function queue._check_owner_policy(
    owner_max_live_jobs int,
    owner_enqueue_rate int,
    owner_enqueue_interval interval
)
returns void
language plpgsql
immutable
security definer
set search_path = ''
as $$
begin
    if _check_owner_policy.owner_max_live_jobs < 1 then
        raise exception 'owner_max_live_jobs must be at least 1 (or null for no limit), got %',
            _check_owner_policy.owner_max_live_jobs
            using errcode = '22023';
    end if;
    if (_check_owner_policy.owner_enqueue_rate is null) <> (_check_owner_policy.owner_enqueue_interval is null)
        or _check_owner_policy.owner_enqueue_rate < 1
        or _check_owner_policy.owner_enqueue_interval <= interval '0'
        or _check_owner_policy.owner_enqueue_interval > interval '1 day' then
        raise exception 'owner_enqueue_rate (>= 1) and owner_enqueue_interval (over 0, at most a day) go together, got % per %',
            coalesce(_check_owner_policy.owner_enqueue_rate::text, 'null'),
            coalesce(_check_owner_policy.owner_enqueue_interval::text, 'null')
            using errcode = '22023',
            hint = 'For example owner_enqueue_rate => 10, owner_enqueue_interval => ''1 second''.';
    end if;
end
$$;

comment on function queue._check_owner_policy(int, int, interval) is
'Private: raises 22023 naming the value when a per-owner quota setting is out of range (owner_max_live_jobs >= 1; owner_enqueue_rate >= 1 together with an owner_enqueue_interval over 0 and at most a day).';

-- _enforce_owner_limits: the quotas of one owner for new jobs of one job type in one queue.
-- Called after the jobs are inserted (counted = true: the live count includes them) or before
-- (counted = false). Scopes are locked in name order (queue:... before type:...), and always as
-- the transaction's last lock, so concurrent enqueuers wait in line and never deadlock.
create or replace function queue._enforce_owner_limits(
    owner_id uuid,
    job_type text,
    queue_name text,
    new_jobs int default 1,
    counted boolean default true
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_factor numeric;
    v_scope record;
    v_max int;
    v_live int;
    v_tokens double precision;
    v_refilled_at timestamptz;
    v_cap double precision;
begin
    if _enforce_owner_limits.owner_id is null then
        return;
    end if;
    for v_scope in
        select
            'queue:' || q.queue_name as scope,
            'queue ' || q.queue_name as label,
            'queue.queues' as source,
            q.owner_max_live_jobs as max_live,
            q.owner_enqueue_rate as rate,
            q.owner_enqueue_interval as per
        from queue.queues as q
        where q.queue_name = _enforce_owner_limits.queue_name
            and (q.owner_max_live_jobs is not null or q.owner_enqueue_rate is not null)
        union all
        select
            'type:' || jt.job_type,
            'job type ' || jt.job_type,
            'queue.job_types',
            jt.owner_max_live_jobs,
            jt.owner_enqueue_rate,
            jt.owner_enqueue_interval
        from queue.job_types as jt
        where jt.job_type = _enforce_owner_limits.job_type
            and (jt.owner_max_live_jobs is not null or jt.owner_enqueue_rate is not null)
        order by 1
    loop
        if v_factor is null then
            select t.quota_factor into v_factor
            from queue.owner_tiers as ot
            join queue.tiers as t on t.tier = ot.tier
            where ot.owner_id = _enforce_owner_limits.owner_id;
            v_factor := coalesce(v_factor, 1);
        end if;
        -- the owner's row in this scope is the lock: a second enqueuer of the same owner waits
        -- here until the first commits, then counts again in a new statement (a new snapshot in
        -- read committed; under repeatable read the update fails with 40001 instead of overshooting)
        insert into queue.owner_buckets as b (owner_id, scope)
        values (_enforce_owner_limits.owner_id, v_scope.scope)
        on conflict on constraint owner_buckets_pkey do update
        set refilled_at = b.refilled_at
        returning b.tokens, b.refilled_at into v_tokens, v_refilled_at;

        if v_scope.max_live is not null then
            v_max := greatest(1, floor(v_scope.max_live * v_factor))::int;
            -- stops past the quota plus the new jobs, so the cost is bounded by the quota itself
            if v_scope.scope like 'queue:%' then
                select count(*) into v_live
                from (
                    select
                    from queue.jobs as j
                    where j.owner_id = _enforce_owner_limits.owner_id
                        and j.queue_name = _enforce_owner_limits.queue_name
                    limit v_max + _enforce_owner_limits.new_jobs
                ) as l;
            else
                select count(*) into v_live
                from (
                    select
                    from queue.jobs as j
                    where j.owner_id = _enforce_owner_limits.owner_id
                        and j.job_type = _enforce_owner_limits.job_type
                    limit v_max + _enforce_owner_limits.new_jobs
                ) as l;
            end if;
            if not _enforce_owner_limits.counted then
                v_live := v_live + _enforce_owner_limits.new_jobs;
            end if;
            if v_live > v_max then
                raise exception 'owner % may have at most % live jobs in %, and this enqueue would make %',
                    _enforce_owner_limits.owner_id, v_max, v_scope.label, v_live
                    using errcode = '53400',
                    hint = format(
                        'Wait until some of the owner''s jobs finish (live = waiting or running). An operator raises the quota with %s.owner_max_live_jobs or the owner''s tier (queue.tiers.quota_factor).',
                        v_scope.source
                    );
            end if;
        end if;

        if v_scope.rate is not null then
            -- a token bucket: capacity rate x factor, refilled continuously over per; a waiting
            -- enqueuer's now() may be older than the last refill, so time never runs backwards
            v_cap := v_scope.rate * v_factor;
            v_tokens := least(
                v_cap,
                coalesce(v_tokens, v_cap)
                + greatest(0, extract(epoch from now() - v_refilled_at)) * v_cap / extract(epoch from v_scope.per)
            );
            if v_tokens < _enforce_owner_limits.new_jobs then
                raise exception 'owner % is over the enqueue rate of %: % per %',
                    _enforce_owner_limits.owner_id, v_scope.label, trim_scale(round(v_cap::numeric, 2)), v_scope.per
                    using errcode = '53400',
                    hint = format(
                        'Retry in %s seconds. An operator raises the rate with %s.owner_enqueue_rate or the owner''s tier (queue.tiers.quota_factor).',
                        trim_scale(round(((_enforce_owner_limits.new_jobs - v_tokens) * extract(epoch from v_scope.per) / v_cap)::numeric, 3)),
                        v_scope.source
                    );
            end if;
            update queue.owner_buckets as b
            set tokens = v_tokens - _enforce_owner_limits.new_jobs,
                refilled_at = greatest(b.refilled_at, now())
            where b.owner_id = _enforce_owner_limits.owner_id and b.scope = v_scope.scope;
        end if;
    end loop;
end
$$;

comment on function queue._enforce_owner_limits(uuid, text, text, int, boolean) is
'Private: applies the per-owner quotas of queue_name and job_type (live jobs, enqueue rate; times the owner''s tier quota_factor) to new_jobs new jobs of owner_id, locking the owner''s queue.owner_buckets rows in name order. counted: the new jobs are already inserted and in the live count. Raises 53400 naming the owner, the scope and the limit, with when to retry; spends one token per job.';

-- _enforce_owner_limits_of: enqueue_jobs' hook: the quotas of queues that bind every caller
-- (owner_limits_all) for the jobs just inserted. One probe of the queue table when none does.
create or replace function queue._enforce_owner_limits_of(job_ids bigint[])
returns void
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_group record;
begin
    if not exists (select from queue.queues as q where q.owner_limits_all) then
        return;
    end if;
    for v_group in
        select j.owner_id, j.queue_name, j.job_type, count(*)::int as n
        from queue.jobs as j
        join queue.queues as q on q.queue_name = j.queue_name
        where j.id = any(_enforce_owner_limits_of.job_ids)
            and j.owner_id is not null
            and q.owner_limits_all
        group by j.owner_id, j.queue_name, j.job_type
        order by j.owner_id, j.queue_name, j.job_type
    loop
        perform queue._enforce_owner_limits(v_group.owner_id, v_group.job_type, v_group.queue_name, v_group.n, true);
    end loop;
end
$$;

comment on function queue._enforce_owner_limits_of(bigint[]) is
'Private: called by enqueue_jobs after its insert: applies the per-owner quotas to the listed jobs that are owned and sit in a queue with owner_limits_all (one probe of queue.queues when no queue has it).';

-- owner_stats: per queue and owner now: waiting, scheduled, running, retrying, the oldest wait.
-- One pass over the hot table (like queue_stats); read the top owners with an order by and a limit.
create or replace view queue.owner_stats as
select
    s.queue_name,
    s.owner_id,
    ot.tier,
    s.waiting::int as waiting,
    s.scheduled::int as scheduled,
    s.running::int as running,
    s.retrying::int as retrying,
    s.live::int as live,
    s.oldest_waiting_age
from (
    select
        j.queue_name,
        j.owner_id,
        count(*) filter (where j.status = 'pending' and j.run_at <= now()) as waiting,
        count(*) filter (where j.status = 'pending' and j.run_at > now()) as scheduled,
        count(*) filter (where j.status = 'running') as running,
        count(*) filter (where j.status = 'retrying') as retrying,
        count(*) as live,
        -- clamped like queue_stats: a row with an infinite run_at cannot break the reader
        now() - min(greatest(j.run_at, now() - interval '100 years'))
        filter (where j.status in ('pending', 'retrying') and j.run_at <= now()) as oldest_waiting_age
    from queue.jobs as j
    group by j.queue_name, j.owner_id
) as s
left join queue.owner_tiers as ot on s.owner_id = ot.owner_id;

comment on view queue.owner_stats is
'Per queue and owner (null owner = jobs enqueued without one) now: the owner''s tier, waiting (due), scheduled (run_at ahead), running, retrying, live (all of them) and the oldest due job''s wait. The top owners: order by live desc limit 20.';

-- ---- sql/queue/30_enqueue.sql ----
-- Enqueueing: enqueue_job (one) and enqueue_jobs (many, one statement). Both go through
-- _resolve_jobs, which applies defaults (job type, then queue, then tier offset) and names
-- the first problem of each job, so single and bulk enqueue validate exactly alike.

-- _resolve_jobs: the jobs of a JSON array with every default applied, and what is wrong with each.
-- plpgsql rather than sql: a definer sql function is never inlined and re-plans on every call,
-- while plpgsql caches its plan per session (measured: 1 ms -> 0.3 ms per enqueue).
create or replace function queue._resolve_jobs(jobs jsonb)
returns table (
    ord bigint,
    job_type text,
    queue_name text,
    priority int,
    run_at timestamptz,
    payload jsonb,
    max_attempts int,
    unique_key text,
    owner_id uuid,
    backoff_strategy queue.backoff_strategy,
    backoff_base interval,
    backoff_max interval,
    parent_id bigint,
    problem text
)
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
#variable_conflict use_column
begin
    return query
    select
        i.ord,
        i.j ->> 'job_type',
        q.queue_name,
        least(100, greatest(1, coalesce(i.priority, jt.priority) + coalesce(t.priority_offset, 0))),
        coalesce(i.run_at, now()),
        coalesce(i.j -> 'payload', '{}'),
        coalesce(i.max_attempts, jt.max_attempts, q.max_attempts),
        i.j ->> 'unique_key',
        i.owner_id,
        i.backoff_strategy,
        i.backoff_base,
        i.backoff_max,
        i.parent_id,
        case
            when jsonb_typeof(i.j) <> 'object'
                then format('each job must be a JSON object, got %s', jsonb_typeof(i.j))
            when i.bad_key is not null
                then format('unknown key %s (expected job_type, payload, queue_name, priority, run_at, max_attempts, unique_key, owner_id, backoff_strategy, backoff_base, backoff_max, parent_id)', queue._shown(i.bad_key))
            when i.j ->> 'job_type' is null
                then 'job_type is required'
            when jt.job_type is null
                then format('unknown job type: %s', queue._shown(i.j ->> 'job_type'))
            when q.queue_name is null
                then format('unknown queue: %s', queue._shown(i.j ->> 'queue_name'))
            when jsonb_typeof(i.j -> 'priority') = 'number' and i.priority is null and (i.j ->> 'priority')::numeric % 1 = 0
                then format('priority must be between 1 and 100, got %s', queue._shown(i.j ->> 'priority'))
            when i.j ? 'priority' and jsonb_typeof(i.j -> 'priority') <> 'null' and i.priority is null
                then format('priority must be an integer from 1 to 100, got %s', queue._shown((i.j -> 'priority')::text))
            when i.j ? 'payload' and jsonb_typeof(i.j -> 'payload') is distinct from 'object'
                then format('payload must be a JSON object, got %s', coalesce(jsonb_typeof(i.j -> 'payload'), 'null'))
            -- its text is at most 6x its binary size (a control character becomes \u0001), so
            -- only payloads that could be over the cap are serialised to count their bytes
            when pg_column_size(i.j -> 'payload') * 6 > i.max_payload_bytes
                and octet_length((i.j -> 'payload')::text) > i.max_payload_bytes
                then format(
                    'payload is %s bytes, over the cap of %s bytes (queue.settings.max_payload_bytes)',
                    octet_length((i.j -> 'payload')::text), i.max_payload_bytes
                )
            when jsonb_typeof(i.j -> 'max_attempts') = 'number' and (i.j ->> 'max_attempts')::numeric < 1
                then format('max_attempts must be at least 1, got %s', queue._shown(i.j ->> 'max_attempts'))
            when jsonb_typeof(i.j -> 'max_attempts') = 'number' and (i.j ->> 'max_attempts')::numeric > 100
                then format('max_attempts must be at most 100, got %s', queue._shown(i.j ->> 'max_attempts'))
            when i.j ? 'max_attempts' and jsonb_typeof(i.j -> 'max_attempts') <> 'null' and i.max_attempts is null
                then format('max_attempts must be an integer from 1 to 100, got %s', queue._shown((i.j -> 'max_attempts')::text))
            when i.j ? 'unique_key' and jsonb_typeof(i.j -> 'unique_key') not in ('string', 'null')
                then format('unique_key must be a string, got %s', queue._shown((i.j -> 'unique_key')::text))
            when length(i.j ->> 'unique_key') > 300
                then format('unique_key is %s characters, over the limit of 300', length(i.j ->> 'unique_key'))
            when i.j ->> 'owner_id' is not null and i.owner_id is null
                then format('owner_id must be a uuid, got %s', queue._shown(i.j ->> 'owner_id'))
            when i.j ->> 'run_at' is not null and i.run_at is null
                then format('run_at must be a time, got %s', queue._shown(i.j ->> 'run_at'))
            -- finite and at most a year ahead; a past time is an operator's back-dating (end users'
            -- past times become now in enqueue_user_job)
            when i.run_at is not null and queue._time_problem('run_at', i.run_at, null) is not null
                then queue._time_problem('run_at', i.run_at, null)
            when i.j ->> 'backoff_strategy' is not null and i.backoff_strategy is null
                then format('backoff_strategy must be fixed, linear or exponential, got %s', queue._shown(i.j ->> 'backoff_strategy'))
            when i.j ->> 'backoff_base' is not null
                and (i.backoff_base is null or i.backoff_base < interval '0' or i.backoff_base > interval '1 hour')
                then format('backoff_base must be an interval from 0 to 1 hour, got %s', queue._shown(i.j ->> 'backoff_base'))
            when i.j ->> 'backoff_max' is not null
                and (i.backoff_max is null or i.backoff_max <= interval '0' or i.backoff_max > interval '7 days')
                then format('backoff_max must be an interval over 0 and at most 7 days, got %s', queue._shown(i.j ->> 'backoff_max'))
            when i.backoff_max < coalesce(i.backoff_base, q.backoff_base)
                then format('backoff_max (%s) must not be less than backoff_base (%s)', i.backoff_max, coalesce(i.backoff_base, q.backoff_base))
            when i.j ->> 'parent_id' is not null and i.parent_id is null
                then format('parent_id must be a job id, got %s', queue._shown(i.j ->> 'parent_id'))
        end
    from (
        select
            e.ord,
            e.j,
            -- numbers are range-checked before the cast, so 1e10 is our error, not "integer out of range"
            case when jsonb_typeof(e.j -> 'priority') = 'number' and (e.j ->> 'priority')::numeric between 1 and 100
                and (e.j ->> 'priority')::numeric % 1 = 0
                then (e.j ->> 'priority')::numeric::int end as priority,
            case when jsonb_typeof(e.j -> 'max_attempts') = 'number' and (e.j ->> 'max_attempts')::numeric between 1 and 100
                and (e.j ->> 'max_attempts')::numeric % 1 = 0
                then (e.j ->> 'max_attempts')::numeric::int end as max_attempts,
            case when jsonb_typeof(e.j -> 'parent_id') = 'number' and (e.j ->> 'parent_id')::numeric between 1 and 9223372036854775807
                and (e.j ->> 'parent_id')::numeric % 1 = 0
                then (e.j ->> 'parent_id')::numeric::bigint end as parent_id,
            -- texts are parsed only when present: a batch without them pays nothing
            case when e.j ->> 'owner_id' is not null then queue._to_uuid(e.j ->> 'owner_id') end as owner_id,
            case when e.j ->> 'run_at' is not null then queue._to_timestamptz(e.j ->> 'run_at') end as run_at,
            case when e.j ->> 'backoff_strategy' is not null then (
                select s.s from unnest(enum_range(null::queue.backoff_strategy)) as s (s)
                where s.s::text = e.j ->> 'backoff_strategy'
            ) end as backoff_strategy,
            case when e.j ->> 'backoff_base' is not null then queue._to_interval(e.j ->> 'backoff_base') end as backoff_base,
            case when e.j ->> 'backoff_max' is not null then queue._to_interval(e.j ->> 'backoff_max') end as backoff_max,
            (select s.max_payload_bytes from queue.settings as s) as max_payload_bytes,
            -- the known keys taken away in one call; the first one left is looked up only when
            -- there is one (a subquery per job cost 1.5 of 6.5 ms per 1,000 jobs)
            case when jsonb_typeof(e.j) = 'object' and e.j - i_known.keys <> '{}' then (
                select k.key
                from jsonb_object_keys(e.j - i_known.keys) as k (key)
                limit 1
            ) end as bad_key
        from jsonb_array_elements(_resolve_jobs.jobs) with ordinality as e (j, ord)
        cross join (
            select array[
                'job_type', 'payload', 'queue_name', 'priority', 'run_at', 'max_attempts',
                'unique_key', 'owner_id', 'backoff_strategy', 'backoff_base', 'backoff_max', 'parent_id'
            ] as keys
        ) as i_known
    ) as i
    left join queue.job_types as jt on jt.job_type = i.j ->> 'job_type'
    left join queue.queues as q on q.queue_name = coalesce(i.j ->> 'queue_name', jt.queue_name)
    left join queue.owner_tiers as ot on ot.owner_id = i.owner_id
    left join queue.tiers as t on t.tier = ot.tier
    -- in input order: enqueue_jobs draws the ids in the order these rows come, and a hash
    -- join above returned them shuffled once the policy tables had statistics
    order by i.ord;
end
$$;

comment on function queue._resolve_jobs(
    jsonb
) is 'Private: applies enqueue defaults to a JSON array of jobs and names each one''s first problem.';

-- _reject_job: raises the problem of one job; called from a query only for a bad row.
create or replace function queue._reject_job(ord bigint, job_count int, problem text)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_hint text;
begin
    v_hint := case
        when problem like 'unknown job type%'
            then 'Register it first: select queue.register_job_type(job_type => ..., queue_name => ...);'
        when problem like 'unknown queue%'
            then 'Create it first (select queue.create_queue(queue_name => ...);) or leave queue_name out for the job type''s queue.'
        when problem like 'unknown key%' or problem like 'each job%'
            then 'Each job is an object with the keys of queue.enqueue_job.'
        when problem like 'run_at%'
            then 'Pass a finite time at most a year ahead (an ISO 8601 string in JSON); for later work use queue.schedule_job.'
        when problem like 'payload is%'
            then 'Store large data elsewhere (a table, Storage) and pass its id in the payload.'
        when problem like 'unique_key is%'
            then 'Use a short key, e.g. a hash of what makes the job unique.'
    end;
    if job_count > 1 then
        raise exception 'jobs[%]: %', ord - 1, problem
            using errcode = '22023',
            hint = concat_ws(' ', v_hint, 'Nothing was enqueued: the batch is all or nothing.');
    end if;
    raise exception '%', problem using errcode = '22023', hint = coalesce(v_hint, '');
end
$$;

comment on function queue._reject_job(bigint, int, text) is 'Private: raises an enqueue validation error (22023).';

-- _unique_key_holder: the job holding a unique_key that enqueue skipped.
create or replace function queue._unique_key_holder(unique_key text)
returns bigint
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_id bigint;
begin
    select j.id into v_id from queue.jobs as j where j.unique_key = _unique_key_holder.unique_key;
    if v_id is null then
        -- the holder finished in between: it was live when we enqueued, so it answers
        select h.id into v_id
        from queue.job_history as h
        where h.unique_key = _unique_key_holder.unique_key
        order by h.finished_at desc
        limit 1;
    end if;
    return v_id;
end
$$;

comment on function queue._unique_key_holder(text) is
'Private: the id of the job holding unique_key, the live one or else the one that finished last; what enqueue returns for a job skipped for its unique_key.';

-- _enqueue_plain: enqueue_jobs' path for a batch of plain jobs (each a job type and a payload,
-- every option left to its default: what bulk producers send). The general path validates 25
-- options per job whatever the job holds; this one checks what a plain job can get wrong in one
-- pass and inserts with the type's and queue's defaults. Server time per job of a 1,000-job
-- batch: 17-22 -> 13-14 us against a bare insert's 8-10 (a DO loop, rolled back, three rounds).
-- Returns null, having written nothing, for a batch it does not take whole: anything else, an
-- unknown type, a payload that is not an object or could be over the cap goes the general way
-- and gets its error there, so errors are the same on both paths.
create or replace function queue._enqueue_plain(jobs jsonb)
returns bigint[]
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_plain boolean;
    v_ids bigint [];
    v_queues text [];
begin
    -- the first job that is not plain ends the check (a batch with options pays one job's look)
    select not exists (
        select
        from jsonb_array_elements(_enqueue_plain.jobs) as e (j)
        cross join queue.settings as s
        left join queue.job_types as jt on jt.job_type = e.j ->> 'job_type'
        where not coalesce(
            case when jsonb_typeof(e.j) = 'object' then
                e.j - array['job_type', 'payload'] = '{}'
                and jt.job_type is not null
                and coalesce(jsonb_typeof(e.j -> 'payload'), 'object') = 'object'
                -- surely under the cap (its text is at most 6x its binary size); a compressed
                -- value says nothing of its text, so it takes the exact check
                and (
                    e.j -> 'payload' is null
                    or (pg_column_size(e.j -> 'payload') * 6 <= s.max_payload_bytes
                        and pg_column_compression(e.j -> 'payload') is null)
                )
            end,
            false
        )
    ) into v_plain;
    if not v_plain then
        return null;
    end if;

    -- ids drawn in input order (a subquery with an order by is never flattened), so sorting them
    -- gives the input order back
    with ins as (
        insert into queue.jobs as j (id, job_type, queue_name, priority, run_at, payload, max_attempts)
        select nextval('queue.jobs_id_seq'), x.job_type, x.queue_name, x.priority, now(), x.payload, x.max_attempts
        from (
            select
                jt.job_type,
                jt.queue_name,
                jt.priority,
                coalesce(e.j -> 'payload', '{}') as payload,
                coalesce(jt.max_attempts, q.max_attempts) as max_attempts
            from jsonb_array_elements(_enqueue_plain.jobs) with ordinality as e (j, ord)
            join queue.job_types as jt on jt.job_type = e.j ->> 'job_type'
            join queue.queues as q on q.queue_name = jt.queue_name
            order by e.ord
        ) as x
        returning j.id, j.queue_name
    )
    select array_agg(ins.id order by ins.id), array_agg(distinct ins.queue_name) into v_ids, v_queues
    from ins;
    if cardinality(v_ids) is distinct from jsonb_array_length(_enqueue_plain.jobs) then
        raise exception 'a job type was removed while these jobs were enqueued; nothing was enqueued'
            using errcode = '40001', hint = 'Retry the call.';
    end if;
    -- one notification per queue wakes idle workers
    perform pg_notify('kyu_jobs', q) from unnest(v_queues) as q;
    return v_ids;
end
$$;

comment on function queue._enqueue_plain(jsonb) is
'Private: enqueue_jobs for a batch whose every job is a known job type and an object payload (or none) surely under the cap, nothing else; inserts them with the defaults and returns their ids in input order. Null (nothing written) for any other batch.';

-- enqueue_jobs: many jobs in one statement; returns their ids in input order.
create or replace function queue.enqueue_jobs(jobs jsonb)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_count int;
    v_ids bigint [];
    v_keys text [];
    v_inserted boolean [];
    v_queues text [];
    v_one record;
    v_id bigint;
begin
    if jsonb_typeof(enqueue_jobs.jobs) is distinct from 'array' then
        raise exception 'jobs must be a JSON array of job objects, got %',
            coalesce(jsonb_typeof(enqueue_jobs.jobs), 'null')
            using errcode = '22023';
    end if;
    v_count := jsonb_array_length(enqueue_jobs.jobs);
    if v_count = 0 then
        return;
    end if;
    if v_count > 10000 then
        raise exception 'jobs has % jobs, over the limit of 10000 per call', v_count
            using errcode = '22023', hint = 'Split the batch: each call is one transaction.';
    end if;

    -- one job (every enqueue_job): the same resolver, then one plain insert. The set statement
    -- below spends ~100 us per call on executor start-up alone (its CTEs, join and aggregates):
    -- enqueue_job's CPU 200 -> 100 us (pg_stat_statements, one session, no commit)
    if v_count = 1 then
        select r.* into v_one from queue._resolve_jobs(enqueue_jobs.jobs) as r;
        if v_one.problem is not null then
            perform queue._reject_job(v_one.ord, v_count, v_one.problem);
        end if;
        insert into queue.jobs as j (
            job_type, queue_name, priority, run_at, payload, max_attempts, unique_key,
            owner_id, backoff_strategy, backoff_base, backoff_max, parent_id
        )
        values (
            v_one.job_type, v_one.queue_name, v_one.priority, v_one.run_at, v_one.payload,
            v_one.max_attempts, v_one.unique_key, v_one.owner_id, v_one.backoff_strategy,
            v_one.backoff_base, v_one.backoff_max, v_one.parent_id
        )
        on conflict (unique_key) where unique_key is not null do nothing
        returning j.id into v_id;
        if v_id is null then
            v_id := queue._unique_key_holder(v_one.unique_key);
        elsif v_one.run_at <= now() then
            perform pg_notify('kyu_jobs', v_one.queue_name);
        end if;
        -- per-owner quotas of a queue that binds every caller (27_owner_limits.sql)
        if v_one.owner_id is not null then
            perform queue._enforce_owner_limits_of(array[v_id]);
        end if;
        return next v_id;
        return;
    end if;

    -- plain jobs (a type and a payload each, the bulk producer's batch) skip the general checks
    v_ids := queue._enqueue_plain(enqueue_jobs.jobs);
    if v_ids is not null then
        return query select unnest(v_ids);
        return;
    end if;

    -- ids are drawn before the insert so each input row keeps its id whatever the insert order,
    -- and in input order: _resolve_jobs returns its rows in its join's order, which follows the
    -- plan (a hash join over job_types reversed two jobs once the tables had statistics), so
    -- they are sorted first; a subquery with an order by is never flattened
    with resolved as materialized (
        select r.*, nextval('queue.jobs_id_seq') as new_id
        from (
            select x.* from queue._resolve_jobs(enqueue_jobs.jobs) as x
            order by x.ord
        ) as r
    ),
    ins as (
        insert into queue.jobs (
            id, job_type, queue_name, priority, run_at, payload, max_attempts, unique_key,
            owner_id, backoff_strategy, backoff_base, backoff_max, parent_id
        )
        select
            case when r.problem is null then r.new_id else queue._reject_job(r.ord, v_count, r.problem) end,
            r.job_type, r.queue_name, r.priority, r.run_at, r.payload, r.max_attempts, r.unique_key,
            r.owner_id, r.backoff_strategy, r.backoff_base, r.backoff_max, r.parent_id
        from resolved as r
        order by r.ord
        on conflict (unique_key) where unique_key is not null do nothing
        returning id, queue_name, run_at
    )
    select
        array_agg(r.new_id order by r.ord),
        array_agg(r.unique_key order by r.ord),
        array_agg(ins.id is not null order by r.ord),
        (select array_agg(distinct ins2.queue_name) from ins as ins2 where ins2.run_at <= now())
    into v_ids, v_keys, v_inserted, v_queues
    from resolved as r
    left join ins on ins.id = r.new_id;

    -- a job skipped for its unique_key takes the id of the job that holds the key (the loop
    -- only when one was skipped: walking 1,000 flags in plpgsql cost ~1 us per job)
    if array_position(v_inserted, false) is not null then
        for i in 1 .. v_count loop
            if not v_inserted[i] then
                v_ids[i] := queue._unique_key_holder(v_keys[i]);
            end if;
        end loop;
    end if;

    -- per-owner quotas of queues that bind every caller (27_owner_limits.sql)
    perform queue._enforce_owner_limits_of(v_ids);

    -- one notification per queue per statement wakes idle workers; future jobs are found by polling
    if v_queues is not null then
        perform pg_notify('kyu_jobs', q) from unnest(v_queues) as q;
    end if;

    return query select unnest(v_ids);
end
$$;

comment on function queue.enqueue_jobs(jsonb) is
'Enqueues many jobs in one statement (all or nothing). jobs is a JSON array of objects with the keys of enqueue_job. Returns the ids in input order; a job whose unique_key is live returns that job''s id.';

-- enqueue_job: one job; returns its id (or the id of the live job holding unique_key).
create or replace function queue.enqueue_job(
    job_type text,
    payload jsonb default '{}',
    queue_name text default null,
    priority int default null,
    run_at timestamptz default null,
    max_attempts int default null,
    unique_key text default null,
    owner_id uuid default null,
    backoff_strategy queue.backoff_strategy default null,
    backoff_base interval default null,
    backoff_max interval default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_type record;
    v_id bigint;
begin
    -- the common call (a job type and an object payload, every option left to its default)
    -- takes its defaults with one lookup: _resolve_jobs' general query, built for batches and
    -- every option, cost ~100 of enqueue_job's ~200 us of CPU (DO loop, one session, no commit).
    -- Nothing is checked here that the general path would not accept: an unknown type, a
    -- payload that is not an object or could be over the cap falls through to it and its errors.
    if enqueue_job.queue_name is null and enqueue_job.priority is null and enqueue_job.run_at is null
        and enqueue_job.max_attempts is null and enqueue_job.unique_key is null
        and enqueue_job.owner_id is null and enqueue_job.backoff_strategy is null
        and enqueue_job.backoff_base is null and enqueue_job.backoff_max is null
        and jsonb_typeof(enqueue_job.payload) = 'object' then
        select jt.queue_name, jt.priority, coalesce(jt.max_attempts, q.max_attempts) as max_attempts
        into v_type
        from queue.job_types as jt
        join queue.queues as q on q.queue_name = jt.queue_name
        cross join queue.settings as s
        where jt.job_type = enqueue_job.job_type
            -- surely under the cap (its text is at most 6x its binary size); a compressed value
            -- (read from a table) says nothing of its text, so it takes the exact check
            and pg_column_size(enqueue_job.payload) * 6 <= s.max_payload_bytes
            and pg_column_compression(enqueue_job.payload) is null;
        if found then
            insert into queue.jobs as j (job_type, queue_name, priority, run_at, payload, max_attempts)
            values (
                enqueue_job.job_type, v_type.queue_name, v_type.priority, now(),
                enqueue_job.payload, v_type.max_attempts
            )
            returning j.id into v_id;
            perform pg_notify('kyu_jobs', v_type.queue_name);
            return v_id;
        end if;
    end if;

    -- plpgsql, not sql: a definer sql function is never inlined and planned this call afresh
    -- every time (CPU per enqueue_job 300 -> 180 us, one session, no commit)
    return queue.enqueue_jobs(jsonb_build_array(jsonb_build_object(
        'job_type', enqueue_job.job_type,
        'payload', coalesce(enqueue_job.payload, 'null'::jsonb),
        'queue_name', enqueue_job.queue_name,
        'priority', enqueue_job.priority,
        'run_at', enqueue_job.run_at,
        'max_attempts', enqueue_job.max_attempts,
        'unique_key', enqueue_job.unique_key,
        'owner_id', enqueue_job.owner_id,
        'backoff_strategy', enqueue_job.backoff_strategy,
        'backoff_base', enqueue_job.backoff_base,
        'backoff_max', enqueue_job.backoff_max
    )));
end
$$;

comment on function queue.enqueue_job(text, jsonb, text, int, timestamptz, int, text, uuid, queue.backoff_strategy, interval, interval) is
'Enqueues one job and returns its id. Defaults come from the job type, then its queue; an owner''s tier shifts the priority. With a unique_key that a waiting or running job holds, returns that job''s id instead. Wakes workers with pg_notify(''kyu_jobs'', queue_name).';

-- enqueue_child_jobs: a handler's follow-up work, as children of the job it holds. The parent's
-- lease token proves the caller holds it; the owner is the parent's, the job types are the ones
-- the parent's type may chain to (job_types.chains_to), the priority no more urgent than the
-- child type's. This is the worker role's only way to enqueue, so a worker cannot create jobs
-- for an arbitrary owner at an arbitrary priority.
create or replace function queue.enqueue_child_jobs(parent_id bigint, lease_token uuid, jobs jsonb)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_parent queue.jobs;
    v_chains text [];
    v_job jsonb;
    v_ord int := 0;
    v_key text;
    v_type_priority int;
    v_children jsonb := '[]'::jsonb;
begin
    if enqueue_child_jobs.parent_id is null or enqueue_child_jobs.lease_token is null then
        raise exception 'parent_id and lease_token are required (got parent_id %, lease_token %)',
            coalesce(enqueue_child_jobs.parent_id::text, 'null'),
            case when enqueue_child_jobs.lease_token is null then 'null' else 'given' end
            using errcode = '22023',
            hint = 'Pass the id and lease_token of the job your handler holds (claim_jobs returns both).';
    end if;
    select j.* into v_parent
    from queue.jobs as j
    where j.id = enqueue_child_jobs.parent_id
        and j.status = 'running'
        and j.lease_token = enqueue_child_jobs.lease_token;
    if not found then
        raise exception 'job % is not running under this lease_token: only the handler holding a job may chain from it',
            enqueue_child_jobs.parent_id
            using errcode = '42501', hint = 'The lease was lost (reclaimed or finished), or the token is not this job''s.';
    end if;
    if jsonb_typeof(enqueue_child_jobs.jobs) is distinct from 'array' then
        raise exception 'jobs must be a JSON array of job objects, got %',
            coalesce(jsonb_typeof(enqueue_child_jobs.jobs), 'null')
            using errcode = '22023';
    end if;
    select jt.chains_to into v_chains from queue.job_types as jt where jt.job_type = v_parent.job_type;
    for v_job in select e.j from jsonb_array_elements(enqueue_child_jobs.jobs) as e (j) loop
        v_ord := v_ord + 1;
        if jsonb_typeof(v_job) <> 'object' then
            raise exception 'jobs[%]: each job must be a JSON object, got %', v_ord - 1, jsonb_typeof(v_job)
                using errcode = '22023';
        end if;
        select k.key into v_key
        from jsonb_object_keys(v_job) as k (key)
        where k.key not in ('job_type', 'payload', 'priority', 'run_at', 'unique_key')
        limit 1;
        if v_key is not null then
            raise exception 'jobs[%]: a chained job cannot set %', v_ord - 1, queue._shown(v_key)
                using errcode = '42501',
                hint = 'A child takes job_type, payload, priority, run_at and unique_key; its owner is the parent''s, its queue, attempts and backoff its type''s.';
        end if;
        if not coalesce(v_job ->> 'job_type' = any(v_chains), false) then
            raise exception 'jobs[%]: job type % may not be chained from %', v_ord - 1,
                queue._shown(v_job ->> 'job_type'), v_parent.job_type
                using errcode = '42501',
                hint = format(
                    'An operator allows it: select queue.register_job_type(job_type => %L, queue_name => ..., chains_to => ...);',
                    v_parent.job_type
                );
        end if;
        select jt.priority into v_type_priority from queue.job_types as jt where jt.job_type = v_job ->> 'job_type';
        if jsonb_typeof(v_job -> 'priority') = 'number' and (v_job ->> 'priority')::numeric < v_type_priority then
            raise exception 'jobs[%]: priority % is more urgent than job type % allows chained jobs (% to 100)',
                v_ord - 1, v_job ->> 'priority', v_job ->> 'job_type', v_type_priority
                using errcode = '42501';
        end if;
        v_children := v_children || jsonb_build_array(
            v_job || jsonb_build_object('owner_id', v_parent.owner_id, 'parent_id', v_parent.id)
        );
    end loop;
    return query select queue.enqueue_jobs(v_children);
end
$$;

comment on function queue.enqueue_child_jobs(bigint, uuid, jsonb) is
'Enqueues follow-up jobs as children of a running job, proved by its lease_token (claim_jobs). Each job takes job_type (one the parent''s type may chain to: job_types.chains_to), payload, priority (no more urgent than the type''s), run_at and unique_key; the owner is the parent''s. All or nothing; returns the ids in input order. The worker role''s only way to enqueue.';

-- enqueue_child_job: one child job (see enqueue_child_jobs).
create or replace function queue.enqueue_child_job(
    parent_id bigint,
    lease_token uuid,
    job_type text,
    payload jsonb default '{}',
    priority int default null,
    run_at timestamptz default null,
    unique_key text default null
)
returns bigint
language sql
volatile
security definer
set search_path = ''
as $$
    select queue.enqueue_child_jobs(
        enqueue_child_job.parent_id,
        enqueue_child_job.lease_token,
        jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'job_type', enqueue_child_job.job_type,
            'priority', enqueue_child_job.priority,
            'run_at', enqueue_child_job.run_at,
            'unique_key', enqueue_child_job.unique_key
        )) || jsonb_build_object('payload', coalesce(enqueue_child_job.payload, 'null'::jsonb)))
    )
$$;

comment on function queue.enqueue_child_job(bigint, uuid, text, jsonb, int, timestamptz, text) is
'Enqueues one follow-up job as a child of the running job parent_id, proved by its lease_token; returns its id (see enqueue_child_jobs).';

-- ---- sql/queue/35_claim_policy.sql ----
-- Claim policy: what claim_jobs may take, apart from how it takes it. Open circuit breakers block
-- job types; paused and limited queues keep the one-scan plan away; a limited queue's concurrency
-- and token bucket say how many jobs it may start now, and each start spends a token.
-- All plpgsql (plans cached per session) and called once per claim_jobs call, never per row.

-- _blocked_job_types: job types whose external service has an open breaker still cooling down.
create or replace function queue._blocked_job_types()
returns text[]
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
begin
    -- the usual case, no open breaker, costs one probe of a tiny table
    if not exists (select from queue.circuit_breakers as cb where cb.state = 'open') then
        return null;
    end if;
    return (
        select array_agg(jt.job_type)
        from queue.job_types as jt
        where jt.services && array(
            select cb.service
            from queue.circuit_breakers as cb
            where cb.state = 'open' and cb.opened_at + cb.cooldown > now()
        )
    );
end
$$;

comment on function queue._blocked_job_types() is
'Private: the job types claim_jobs must skip because a service they list has an open circuit breaker still in its cool-down; null when none.';

-- _paused_or_limited_queues: the queues the one-scan claim plan must skip.
create or replace function queue._paused_or_limited_queues()
returns text[]
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
begin
    return (
        select coalesce(array_agg(q.queue_name), '{}')
        from queue.queues as q
        where q.paused or q.concurrency is not null or q.rate_limit is not null
            or q.fair or q.owner_concurrency is not null
    );
end
$$;

comment on function queue._paused_or_limited_queues() is
'Private: the queues that are paused or limited (concurrency, rate_limit, owner_concurrency or fair); the one-scan claim plan skips them.';

-- _limited_work_due: whether an unpaused limited queue has due jobs (of job_types, null = any).
create or replace function queue._limited_work_due(job_types text[])
returns boolean
language plpgsql
stable
security definer
set search_path = ''
set jit = off
-- one plan whatever the statistics say: the range on queue_name (not an equality) with the
-- order by queue_name first is a shape only jobs_queue_claim_idx serves without a sort, and
-- sorts and whole-table scans are off. Planned per call, an equality let the planner walk
-- jobs_claim_idx over every other queue's jobs once statistics said the table was empty
-- (tests/schema/test_plans.py: 40,200 rows read per claim of 100 at a 20k backlog)
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
begin
    return exists (
        select
        from queue.queues as q
        cross join lateral (
            select
            from queue.jobs as j
            where j.queue_name >= q.queue_name
                and j.queue_name <= q.queue_name
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (_limited_work_due.job_types is null or j.job_type = any(_limited_work_due.job_types))
            order by j.queue_name, j.priority, j.run_at, j.id
            limit 1
        ) as due
        where not q.paused
            and (q.concurrency is not null or q.rate_limit is not null or q.fair or q.owner_concurrency is not null)
    );
end
$$;

comment on function queue._limited_work_due(text[]) is
'Private: true when a queue that is not paused but has a concurrency or rate limit, owner_concurrency or fair claiming has due jobs (of job_types; null means any). claim_jobs then scans per queue so the limits apply.';

-- _claim_allowances: the queues a claim serves and how many jobs each may start now.
-- Limited queues are locked (in name order, so claimers never deadlock) until the transaction
-- ends, and their token buckets are refilled for the time since last use.
create or replace function queue._claim_allowances(
    queue_names text[],
    batch_size int,
    out queues text[],
    out allowances int[],
    out fair_queues text[]
)
returns record
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_queue record;
    v_tokens double precision;
    v_allow int;
begin
    for v_queue in
        select
            q.queue_name, q.concurrency, q.rate_limit, q.owner_concurrency,
            q.fair or q.owner_concurrency is not null as fair
        from queue.queues as q
        where not q.paused
            and (_claim_allowances.queue_names is null or q.queue_name = any(_claim_allowances.queue_names))
        order by q.queue_name
    loop
        v_allow := _claim_allowances.batch_size;
        -- a fair queue alone needs no lock: its picks lock as they read, skip locked, so two
        -- claimers take different jobs (measured: locking it cost the drain 15% and made B's
        -- job wait for the other claimer's whole claim); counts (owner_concurrency) need it
        if v_queue.concurrency is not null or v_queue.rate_limit is not null or v_queue.owner_concurrency is not null then
            perform from queue.queues as q where q.queue_name = v_queue.queue_name for update;
            if v_queue.concurrency is not null then
                select least(v_allow, v_queue.concurrency - count(*))::int into v_allow
                from queue.jobs as j
                where j.queue_name = v_queue.queue_name and j.status = 'running';
            end if;
            if v_queue.rate_limit is not null then
                -- re-read the bucket under the lock, then refill it for the time since last use
                select least(
                    q.rate_limit::double precision,
                    coalesce(q.rate_tokens, q.rate_limit)
                    + extract(epoch from now() - coalesce(q.rate_refilled_at, now()))
                    * q.rate_limit / extract(epoch from q.rate_interval)
                ) into v_tokens
                from queue.queues as q
                where q.queue_name = v_queue.queue_name;
                update queue.queues as q
                set rate_tokens = v_tokens, rate_refilled_at = now()
                where q.queue_name = v_queue.queue_name;
                v_allow := least(v_allow, floor(v_tokens)::int);
            end if;
        end if;
        if v_allow > 0 then
            queues := queues || v_queue.queue_name;
            allowances := allowances || v_allow;
            if v_queue.fair then
                fair_queues := fair_queues || v_queue.queue_name;
            end if;
        end if;
    end loop;
end
$$;

comment on function queue._claim_allowances(text[], int) is
'Private: for claim_jobs, the unpaused queues among queue_names (null = all) in name order with how many jobs each may start now: batch_size, capped by concurrency minus running jobs and by the whole tokens in the refilled rate bucket; fair_queues: those of them that are fair or have owner_concurrency (picked by _pick_fair; null when none). Locks the limited queues'' rows (owner_concurrency ones too; fair alone needs none) until the transaction ends. Queues that may start nothing are left out; null arrays when none may.';

-- _spend_tokens: one token per claimed job on rate-limited queues.
create or replace function queue._spend_tokens(job_ids bigint[], queues text[])
returns void
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- the jobs are found by primary key whatever the statistics say (see claim_jobs)
set enable_seqscan = off
as $$
begin
    -- no rate-limited queue among those claimed from (the usual case): nothing to spend, and no
    -- lookup of the jobs (one rate-limited queue anywhere, e.g. the receipts app's freee queue,
    -- used to cost every claim this update: ~0.2 ms per batch of 100)
    if not exists (
        select from queue.queues as q
        where q.queue_name = any(_spend_tokens.queues) and q.rate_limit is not null
    ) then
        return;
    end if;
    update queue.queues as q
    set rate_tokens = q.rate_tokens - n.started
    from (
        select j.queue_name, count(*) as started
        from queue.jobs as j
        where j.id = any(_spend_tokens.job_ids)
        group by j.queue_name
    ) as n
    where q.queue_name = n.queue_name and q.rate_limit is not null;
end
$$;

comment on function queue._spend_tokens(bigint[], text[]) is
'Private: takes one token per listed job from its queue''s rate bucket (rate-limited queues among queues only); claim_jobs calls it for the jobs it picked, under the queue locks _claim_allowances took.';

-- ---- sql/queue/37_fair_claim.sql ----
-- Fair claiming and per-owner concurrency: how claim_jobs picks from a queue marked fair (within
-- a priority, owners take turns, weighted by their tier's fair_weight) or with owner_concurrency
-- (at most N running per owner). claim_jobs calls _pick_fair only when such a queue is among the
-- ones it serves, so the plain path keeps its plan and its cost.
--
-- How a fair queue is picked, for an allowance of n jobs (rows are locked as they are read, skip
-- locked, so concurrent claimers take different jobs; with owner_concurrency the queue row is
-- locked too, by _claim_allowances, so the running counts hold across workers):
--   1. the next n owners with waiting jobs after the queue's fair_cursor, wrapping round: a
--      recursive skip scan of jobs_owner_claim_idx, one index descent per owner, stopped after
--      n owners (with owner_concurrency: owners with room);
--   2. each owner's share: ceil(n x weight / total weight) (fair_weight of the owner's tier), at
--      most owner_concurrency minus its running jobs; its first jobs (priority, run_at, id) from
--      the same index, in turns of `weight` jobs (turn 1: its first weight jobs, turn 2: the
--      next, ...);
--   3. the rest of the batch first in, first out from jobs_queue_claim_idx when the shares fall
--      short (owners with few jobs), else just the queue's oldest due job: a job without an
--      owner (they are not in the owners' index) takes a turn as one more owner once it is the
--      oldest, and a job more urgent than every share is seen; on owner_concurrency queues
--      only unowned jobs fill;
--   4. order by (priority, turn, owners after the cursor first, owner, run_at, id), take n, and
--      move fair_cursor to the owner served last, so a claim of one job goes round the owners.
-- A queue with owner_concurrency but not fair is picked the same way with every weight 1 (its
-- owners take turns too). Cost (measured, docs/design.md): with 1 owner about a plain claim's;
-- it grows with the owners visited, at most the batch size, not with the backlog.

-- _pick_fair: claim_jobs' pick when a queue among `queues` is fair or has owner_concurrency.
-- Picks the fair ones as above and the others as claim_jobs does, locked (skip locked), and
-- returns up to batch_size ids merged by priority. A fair queue's picks carry the run_at values
-- of the jobs picked, in fair order (the oldest to the first turn), so the merge with other
-- queues by (priority, run_at, id) keeps each queue's own order.
create or replace function queue._pick_fair(
    queues text[],
    allowances int[],
    fair_queues text[],
    job_types text[],
    blocked text[],
    batch_size int
)
returns bigint[]
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- one plan whatever the statistics say (see claim_jobs): ranges, not equalities, ordered by an
-- index's own columns with sorts off, so the skip scan and each owner's first jobs can only walk
-- jobs_owner_claim_idx, and the fill jobs_queue_claim_idx (tests/schema/test_plans.py: on
-- statistics that said the table was empty, an owner's share walked jobs_claim_idx through
-- 20,000 jobs of another queue). The few sorts left are of the picked rows, in memory.
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
declare
    v_queue record;
    v_ids bigint[];
    v_priorities int[];
    v_run_ats timestamptz[];
    v_share_ids bigint[];
    v_share_owners uuid[];
    v_share_weights int[];
    v_share_priorities int[];
    v_share_run_ats timestamptz[];
    v_fill_ids bigint[];
    v_fill_owners uuid[];
    v_fill_priorities int[];
    v_fill_run_ats timestamptz[];
    v_chosen bigint[];
    v_chosen_priorities int[];
    v_chosen_run_ats timestamptz[];
    v_turn_owners uuid[];
    v_last_owner uuid;
begin
    -- the other queues, exactly as claim_jobs picks them
    select array_agg(c.id), array_agg(c.priority), array_agg(c.run_at)
    into v_ids, v_priorities, v_run_ats
    from unnest(_pick_fair.queues, _pick_fair.allowances) as a (queue_name, allowance)
    cross join lateral (
        -- a range, not an equality, ordered by queue_name first: only jobs_queue_claim_idx
        -- serves it in order, whatever the statistics say (see _limited_work_due)
        select j.id, j.priority, j.run_at
        from queue.jobs as j
        where j.queue_name >= a.queue_name
            and j.queue_name <= a.queue_name
            and j.status in ('pending', 'retrying')
            and j.run_at <= now()
            and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
            and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
        order by j.queue_name, j.priority, j.run_at, j.id
        limit a.allowance
        for update skip locked
    ) as c
    where a.queue_name <> all(_pick_fair.fair_queues);

    for v_queue in
        select q.queue_name, q.fair, q.owner_concurrency, q.fair_cursor, a.allowance
        from unnest(_pick_fair.queues, _pick_fair.allowances) as a (queue_name, allowance)
        join queue.queues as q on q.queue_name = a.queue_name
        where a.queue_name = any(_pick_fair.fair_queues)
        order by q.queue_name
    loop
        -- 1: the next `allowance` owners with waiting jobs (and room under owner_concurrency)
        -- after the cursor, wrapping round: one descent each, and no more owners than jobs to
        -- hand out (the recursive scans run only as far as the limit pulls them)
        -- 2: each owner's share, locked as it is read (skip locked: a concurrent claimer takes
        -- the owner's next jobs; a share is at most its rounding above what is taken)
        with recursive after_cursor (owner_id) as (
            (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name >= v_queue.queue_name
                    and j.queue_name <= v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id > coalesce(v_queue.fair_cursor, '00000000-0000-0000-0000-000000000000')
                order by j.queue_name, j.owner_id
                limit 1
            )
            union all
            select (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name >= v_queue.queue_name
                    and j.queue_name <= v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id > o.owner_id
                order by j.queue_name, j.owner_id
                limit 1
            )
            from after_cursor as o
            where o.owner_id is not null
        ),
        from_start (owner_id) as (
            (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name >= v_queue.queue_name
                    and j.queue_name <= v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id is not null
                order by j.queue_name, j.owner_id
                limit 1
            )
            union all
            select (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name >= v_queue.queue_name
                    and j.queue_name <= v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id > o.owner_id
                order by j.queue_name, j.owner_id
                limit 1
            )
            from from_start as o
            where o.owner_id < v_queue.fair_cursor
        ),
        running as materialized (
            select j.owner_id, count(*)::int as n
            from queue.jobs as j
            where v_queue.owner_concurrency is not null
                and j.queue_name = v_queue.queue_name
                and j.status = 'running'
                and j.owner_id is not null
            group by j.owner_id
        ),
        owners as (
            select w.owner_id, w.room
            from (
                select
                    o.owner_id,
                    case
                        when v_queue.owner_concurrency is null then v_queue.allowance
                        else v_queue.owner_concurrency - coalesce((select r.n from running as r where r.owner_id = o.owner_id), 0)
                    end as room
                from (
                    select a.owner_id from after_cursor as a where a.owner_id is not null
                    union all
                    select f.owner_id from from_start as f where f.owner_id <= v_queue.fair_cursor
                ) as o
            ) as w
            where w.room > 0
            limit v_queue.allowance
        ),
        shares as materialized (
            select
                o.owner_id,
                -- weights are the fair share; owner_concurrency alone takes turns of one
                case when v_queue.fair then coalesce(t.fair_weight, 1) else 1 end as weight,
                o.room
            from owners as o
            left join queue.owner_tiers as ot on ot.owner_id = o.owner_id
            left join queue.tiers as t on t.tier = ot.tier
        ),
        total as (
            select sum(s.weight) as weight from shares as s where s.room > 0
        )
        select array_agg(c.id), array_agg(s.owner_id), array_agg(s.weight), array_agg(c.priority), array_agg(c.run_at)
        into v_share_ids, v_share_owners, v_share_weights, v_share_priorities, v_share_run_ats
        from shares as s
        cross join total as tw
        cross join lateral (
            select j.id, j.priority, j.run_at
            from queue.jobs as j
            where j.queue_name >= v_queue.queue_name
                and j.queue_name <= v_queue.queue_name
                and j.owner_id >= s.owner_id
                and j.owner_id <= s.owner_id
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
                and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
            order by j.queue_name, j.owner_id, j.priority, j.run_at, j.id
            limit least(
                s.room,
                case when v_queue.fair then ceil(v_queue.allowance * s.weight::numeric / tw.weight)::int else v_queue.allowance end
            )
            for update skip locked
        ) as c
        where s.room > 0;

        -- 3: the rest first in, first out: what the shares leave (owners with few jobs), and at
        -- least the oldest due job, so one without an owner (not in the owners' index) takes a
        -- turn once it is the oldest; on owner_concurrency queues only unowned jobs
        select array_agg(f.id), array_agg(f.owner_id), array_agg(f.priority), array_agg(f.run_at)
        into v_fill_ids, v_fill_owners, v_fill_priorities, v_fill_run_ats
        from (
            select j.id, j.owner_id, j.priority, j.run_at
            from queue.jobs as j
            where j.queue_name >= v_queue.queue_name
                and j.queue_name <= v_queue.queue_name
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
                and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
                and (v_queue.owner_concurrency is null or j.owner_id is null)
            order by j.queue_name, j.priority, j.run_at, j.id
            -- (it overlaps the shares, so a short fall reads a whole allowance)
            limit case when coalesce(cardinality(v_share_ids), 0) < v_queue.allowance then v_queue.allowance else 1 end
            for update skip locked
        ) as f;

        -- 4: in fair order, the first `allowance`. One owner and nothing new from the fill (a
        -- flood alone): its share is the pick, in its own order
        if v_share_owners[1] = all(v_share_owners) and (v_fill_ids is null or v_fill_ids <@ v_share_ids) then
            v_chosen := v_share_ids;
            v_chosen_priorities := v_share_priorities;
            v_chosen_run_ats := v_share_run_ats;
            v_last_owner := v_share_owners[1];
        else
            -- one sort (top-n) of the shares and the new part of the fill; array_agg keeps the
            -- subquery's order
            select
                array_agg(c.id),
                array_agg(c.priority),
                array_agg(c.run_at),
                array_agg(coalesce(c.owner_id, '00000000-0000-0000-0000-000000000000'))
                filter (where c.turn < 'infinity'::double precision)
            into v_chosen, v_chosen_priorities, v_chosen_run_ats, v_turn_owners
            from (
                select x.id, x.owner_id, x.priority, x.run_at, x.turn
                from (
                    -- turns of `weight` jobs: turn 1 is an owner's first weight jobs
                    select
                        sh.id, sh.owner_id, sh.priority, sh.run_at,
                        ceil(
                            (row_number() over (partition by sh.owner_id order by sh.priority, sh.run_at, sh.id))::numeric
                            / sh.weight
                        )::double precision as turn
                    from unnest(v_share_ids, v_share_owners, v_share_weights, v_share_priorities, v_share_run_ats)
                        as sh (id, owner_id, weight, priority, run_at)
                    union all
                    -- the fill's jobs not in a share: after every share of their priority; unowned
                    -- jobs take turns as one more owner
                    select
                        fi.id, fi.owner_id, fi.priority, fi.run_at,
                        case
                            when fi.owner_id is null
                                then (row_number() over (partition by fi.owner_id is null order by fi.priority, fi.run_at, fi.id))::double precision
                            else 'infinity'::double precision
                        end
                    from unnest(v_fill_ids, v_fill_owners, v_fill_priorities, v_fill_run_ats) as fi (id, owner_id, priority, run_at)
                    left join unnest(v_share_ids) as sh (id) on sh.id = fi.id
                    where sh.id is null
                ) as x
                order by
                    x.priority,
                    x.turn,
                    -- round-robin: owners after the one served last come first (unowned jobs
                    -- count as the nil uuid)
                    v_queue.fair_cursor is not null
                    and coalesce(x.owner_id, '00000000-0000-0000-0000-000000000000') <= v_queue.fair_cursor,
                    coalesce(x.owner_id, '00000000-0000-0000-0000-000000000000'),
                    x.run_at,
                    x.id
                limit v_queue.allowance
            ) as c;
            v_last_owner := v_turn_owners[cardinality(v_turn_owners)];
        end if;

        if v_chosen is null then
            continue;
        end if;
        -- the owner served last by a turn (not by the fill) is where the next claim starts. Skip
        -- locked: when another claimer holds the row it is moving the cursor itself, and waiting
        -- for its commit would make this claim wait for that whole claim (measured: B's job
        -- started 100 ms later in make bench)
        if v_last_owner is not null and v_last_owner is distinct from v_queue.fair_cursor then
            update queue.queues as q
            set fair_cursor = v_last_owner
            where q.queue_name = (
                select l.queue_name
                from queue.queues as l
                where l.queue_name = v_queue.queue_name
                for update skip locked
            );
        end if;
        -- alone in the claim: no merge, the picks are the claim
        if cardinality(_pick_fair.queues) = 1 then
            return v_chosen;
        end if;
        -- each pick takes the run_at of its place: within a priority the k-th pick in fair order
        -- gets the k-th oldest run_at of the picks, so the merge below keeps the fair order
        select
            coalesce(v_ids, '{}') || array_agg(p.id order by p.priority, p.place),
            coalesce(v_priorities, '{}') || array_agg(p.priority order by p.priority, p.place),
            coalesce(v_run_ats, '{}') || array_agg(s.run_at order by p.priority, p.place)
        into v_ids, v_priorities, v_run_ats
        from (
            select c.id, c.priority, row_number() over (partition by c.priority order by c.ord) as place
            from unnest(v_chosen, v_chosen_priorities) with ordinality as c (id, priority, ord)
        ) as p
        join (
            select c.priority, c.run_at, row_number() over (partition by c.priority order by c.run_at, c.id) as place
            from unnest(v_chosen, v_chosen_priorities, v_chosen_run_ats) as c (id, priority, run_at)
        ) as s on s.priority = p.priority and s.place = p.place;
    end loop;

    return array(
        select m.id
        from unnest(v_ids, v_priorities, v_run_ats) as m (id, priority, run_at)
        order by m.priority, m.run_at, m.id
        limit _pick_fair.batch_size
    );
end
$$;

comment on function queue._pick_fair(text[], int[], text[], text[], text[], int) is
'Private: claim_jobs'' pick when fair_queues (queues marked fair or with owner_concurrency) are among queues: locks (skip locked) and returns up to batch_size due jobs. In a fair queue owners take turns within a priority (a skip scan over its owners, each one''s share weighted by its tier''s fair_weight, the rest first in first out, starting after queues.fair_cursor, which it moves); with owner_concurrency no owner gets more than the limit minus its running jobs. The other queues are picked as claim_jobs picks them; all merged by priority.';

-- ---- sql/queue/40_claim.sql ----
-- Claiming: claim_jobs hands a worker up to batch_size due jobs, most urgent first, leased to it.
-- It reads check -> pick -> claim; the policy (breakers, limited queues, allowances, tokens) lives
-- in 35_claim_policy.sql. A claim filtered by job_types picks through _pick_by_type (each type's
-- own index); otherwise two ways to pick (both one statement with FOR UPDATE SKIP LOCKED), then
-- one update claims:
--   * every queue, and no limited queue has due work: one ordered scan of jobs_claim_idx that
--     skips paused and limited queues;
--   * otherwise: one scan per queue of jobs_queue_claim_idx, each capped by what the queue's
--     concurrency and rate limit allow (queue rows locked in name order, so limits hold across
--     any number of workers), merged by priority. With several queues this may lock up to
--     batch_size rows per queue for an instant; the cost is bounded and the plan stays simple.

-- _pick_by_type: for a claim filtered by job_types, the jobs to claim, locked, most urgent
-- first. Behind a backlog of other types the ordered scans of jobs_claim_idx and
-- jobs_queue_claim_idx read those jobs row by row (make bench-backlog: a claim of 100 of a type
-- behind 200,000 jobs of another took 34 ms, 11x one with nothing ahead); here each type's
-- first jobs come from jobs_type_claim_idx without locks, and only the chosen ones are locked,
-- by primary key (3.3 ms behind the same backlog).
-- Up to twice as many candidates as may be taken, so claimers racing for the same jobs still
-- fill their batch. queues null: every queue but `skip`; queues given: at most allowances[i]
-- locked in queues[i] (which may lock up to the allowance in each queue for an instant, as the
-- per-queue scan of claim_jobs does).
create or replace function queue._pick_by_type(
    job_types text[],
    queues text[],
    allowances int[],
    skip text[],
    blocked text[],
    batch_size int
)
returns bigint[]
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- one plan whatever the statistics say: a range on job_type ordered by job_type first is a
-- shape only jobs_type_claim_idx serves without a sort, and whole-table scans are off
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
as $$
declare
    v_candidates bigint[];
    v_candidate_queues text[];
begin
    -- one type (a worker with one handler, the usual batch worker): its index in order, locked
    -- as it is read, as cheap as an unfiltered claim (the two steps below cost 18% more at
    -- batch 1,000 with nothing ahead)
    if cardinality(_pick_by_type.job_types) = 1 then
        if _pick_by_type.queues is null then
            return array(
                select j.id
                from queue.jobs as j
                where j.job_type >= _pick_by_type.job_types[1]
                    and j.job_type <= _pick_by_type.job_types[1]
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (_pick_by_type.blocked is null or j.job_type <> all(_pick_by_type.blocked))
                    and j.queue_name <> all(_pick_by_type.skip)
                order by j.job_type, j.priority, j.run_at, j.id
                limit _pick_by_type.batch_size
                for update skip locked
            );
        end if;
        return array(
            select c.id
            from unnest(_pick_by_type.queues, _pick_by_type.allowances) as q (queue_name, allowance)
            cross join lateral (
                select j.id, j.priority, j.run_at
                from queue.jobs as j
                where j.job_type >= _pick_by_type.job_types[1]
                    and j.job_type <= _pick_by_type.job_types[1]
                    and j.queue_name = q.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (_pick_by_type.blocked is null or j.job_type <> all(_pick_by_type.blocked))
                order by j.job_type, j.priority, j.run_at, j.id
                limit q.allowance
                for update skip locked
            ) as c
            order by c.priority, c.run_at, c.id
            limit _pick_by_type.batch_size
        );
    end if;

    -- several types: candidates first, without locks, then lock only those taken
    if _pick_by_type.queues is null then
        v_candidates := array(
            select c.id
            from unnest(_pick_by_type.job_types) as t (job_type)
            cross join lateral (
                select j.id, j.priority, j.run_at
                from queue.jobs as j
                where j.job_type >= t.job_type
                    and j.job_type <= t.job_type
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (_pick_by_type.blocked is null or j.job_type <> all(_pick_by_type.blocked))
                    and j.queue_name <> all(_pick_by_type.skip)
                order by j.job_type, j.priority, j.run_at, j.id
                limit 2 * _pick_by_type.batch_size
            ) as c
            order by c.priority, c.run_at, c.id
            limit 2 * _pick_by_type.batch_size
        );
        -- lock in candidate order (the nested loop keeps unnest's order, so no sort locks them
        -- all), skipping rows another claimer holds, until batch_size are held. Each row is
        -- checked again once locked: still waiting (said without naming status, so the planner
        -- is offered no partial index to walk) and due
        return array(
            select l.id
            from unnest(v_candidates) as c (id)
            cross join lateral (
                select j.id
                from queue.jobs as j
                where j.id = c.id
                    and (j.worker_id is null or j.lease_expires_at is null)
                    and j.run_at <= now()
                for update skip locked
            ) as l
            limit _pick_by_type.batch_size
        );
    end if;

    -- per queue: up to 2 x allowance candidates, of which at most allowance are locked
    select array_agg(c.id order by c.priority, c.run_at, c.id), array_agg(c.queue_name order by c.priority, c.run_at, c.id)
    into v_candidates, v_candidate_queues
    from unnest(_pick_by_type.queues, _pick_by_type.allowances) as q (queue_name, allowance)
    cross join lateral (
        select x.id, x.priority, x.run_at, q.queue_name
        from unnest(_pick_by_type.job_types) as t (job_type)
        cross join lateral (
            select j.id, j.priority, j.run_at
            from queue.jobs as j
            where j.job_type >= t.job_type
                and j.job_type <= t.job_type
                and j.queue_name = q.queue_name
                and j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (_pick_by_type.blocked is null or j.job_type <> all(_pick_by_type.blocked))
            order by j.job_type, j.priority, j.run_at, j.id
            limit 2 * q.allowance
        ) as x
        order by x.priority, x.run_at, x.id
        limit 2 * q.allowance
    ) as c;
    return array(
        select l.id
        from unnest(_pick_by_type.queues, _pick_by_type.allowances) as q (queue_name, allowance)
        cross join lateral (
            select k.id, k.priority, k.run_at
            from unnest(v_candidates, v_candidate_queues) as c (id, queue_name)
            cross join lateral (
                select j.id, j.priority, j.run_at
                from queue.jobs as j
                where j.id = c.id
                    and (j.worker_id is null or j.lease_expires_at is null)
                    and j.run_at <= now()
                for update skip locked
            ) as k
            where c.queue_name = q.queue_name
            limit q.allowance
        ) as l
        order by l.priority, l.run_at, l.id
        limit _pick_by_type.batch_size
    );
end
$$;

comment on function queue._pick_by_type(text[], text[], int[], text[], text[], int) is
'Private: for claim_jobs with a job_types filter, locks (skip locked) and returns up to batch_size due jobs of those types, most urgent first, reading each type''s jobs through jobs_type_claim_idx: from every queue but skip (queues null), or at most allowances[i] from queues[i]. blocked: job types to leave (open breakers).';

create or replace function queue.claim_jobs(
    worker_id text,
    batch_size int default 1,
    queue_names text[] default null,
    job_types text[] default null,
    lease_seconds int default null
)
returns setof queue.claimed_job
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- plans that cannot go bad: queue.jobs swings from empty to a million rows between two
-- analyzes, and plpgsql keeps a generic plan made when it was tiny. With seq and bitmap scans
-- off the pick walks a claim index in order and the update finds rows by primary key whatever
-- the statistics say (make bench-backlog: 2,470 ms -> 3 ms per claim of 100 at a 1M backlog
-- after vacuum saw the table empty)
set enable_seqscan = off
set enable_bitmapscan = off
as $$
declare
    v_blocked text [];
    v_skip text [];
    v_queues text [];
    v_allowances int [];
    v_fair text [];
    v_ids bigint [];
begin
    -- check
    if claim_jobs.worker_id is null or btrim(claim_jobs.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
    elsif length(claim_jobs.worker_id) > 200 then
        raise exception 'worker_id must be at most 200 characters, got %', queue._shown(claim_jobs.worker_id)
            using errcode = '22023';
    end if;
    if claim_jobs.batch_size is null or claim_jobs.batch_size not between 1 and 1000 then
        raise exception 'batch_size must be between 1 and 1000, got %', coalesce(claim_jobs.batch_size::text, 'null')
            using errcode = '22023';
    end if;
    if claim_jobs.lease_seconds not between 1 and 86400 then
        raise exception 'lease_seconds must be from 1 to 86400 (a day), got %', claim_jobs.lease_seconds
            using errcode = '22023', hint = 'Leave it null for the job type''s timeout or the queue''s lease.';
    end if;
    v_blocked := queue._blocked_job_types();

    -- pick: the rows are locked (skip locked) here and claimed by the one update below
    if claim_jobs.job_types is not null then
        -- filtered by type: each type's own index, whatever other types wait ahead of it
        if claim_jobs.queue_names is null and not queue._limited_work_due(claim_jobs.job_types) then
            v_ids := queue._pick_by_type(
                claim_jobs.job_types, null, null, queue._paused_or_limited_queues(), v_blocked,
                claim_jobs.batch_size
            );
        else
            select a.queues, a.allowances, a.fair_queues into v_queues, v_allowances, v_fair
            from queue._claim_allowances(claim_jobs.queue_names, claim_jobs.batch_size) as a;
            if v_queues is null then
                return;
            end if;
            if v_fair is not null then
                -- a fair queue or one with owner_concurrency among them (37_fair_claim.sql)
                v_ids := queue._pick_fair(
                    v_queues, v_allowances, v_fair, claim_jobs.job_types, v_blocked, claim_jobs.batch_size
                );
            else
                v_ids := queue._pick_by_type(
                    claim_jobs.job_types, v_queues, v_allowances, '{}', v_blocked, claim_jobs.batch_size
                );
            end if;
            perform queue._spend_tokens(v_ids, v_queues);
        end if;
    elsif claim_jobs.queue_names is null and not queue._limited_work_due(null) then
        -- one ordered scan for every queue that is neither paused nor limited
        v_skip := queue._paused_or_limited_queues();
        v_ids := array(
            select j.id
            from queue.jobs as j
            where j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (v_blocked is null or j.job_type <> all(v_blocked))
                and j.queue_name <> all(v_skip)
            order by j.priority, j.run_at, j.id
            limit claim_jobs.batch_size
            for update skip locked
        );
    else
        -- one scan per queue, each capped by what the queue may start now, merged by priority
        select a.queues, a.allowances, a.fair_queues into v_queues, v_allowances, v_fair
        from queue._claim_allowances(claim_jobs.queue_names, claim_jobs.batch_size) as a;
        if v_queues is null then
            return;
        end if;
        if v_fair is not null then
            -- a fair queue or one with owner_concurrency among them (37_fair_claim.sql)
            v_ids := queue._pick_fair(
                v_queues, v_allowances, v_fair, null, v_blocked, claim_jobs.batch_size
            );
        else
            v_ids := array(
                select c.id
                from unnest(v_queues, v_allowances) as a (queue_name, allowance)
                cross join lateral (
                    select j.id, j.priority, j.run_at
                    from queue.jobs as j
                    where j.queue_name = a.queue_name
                        and j.status in ('pending', 'retrying')
                        and j.run_at <= now()
                        and (v_blocked is null or j.job_type <> all(v_blocked))
                    order by j.priority, j.run_at, j.id
                    limit a.allowance
                    for update skip locked
                ) as c
                order by c.priority, c.run_at, c.id
                limit claim_jobs.batch_size
            );
        end if;
        perform queue._spend_tokens(v_ids, v_queues);
    end if;

    -- claim: running, leased for the job type's timeout or the queue's lease; most urgent first
    return query
    with claimed as (
        update queue.jobs as j
        set status = 'running',
            attempt = j.attempt + 1,
            worker_id = claim_jobs.worker_id,
            lease_seconds = coalesce(claim_jobs.lease_seconds, jt.timeout_seconds, q.lease_seconds),
            lease_expires_at = now() + make_interval(
                secs => coalesce(claim_jobs.lease_seconds, jt.timeout_seconds, q.lease_seconds)
            ),
            attempted_at = now(),
            started_at = coalesce(j.started_at, now()),
            lease_token = gen_random_uuid()
        from queue.job_types as jt, queue.queues as q
        where j.id = any(v_ids)
            and jt.job_type = j.job_type
            and q.queue_name = j.queue_name
        returning j.id, j.job_type, j.queue_name, j.payload, j.attempt, j.max_attempts, j.priority,
            j.lease_expires_at, j.lease_seconds, j.owner_id, j.created_at, j.lease_token, j.parent_id
    )
    -- a fair pick is handed out in its own order, so the first turns start first (measured: a
    -- newcomer's job last in a batch of 1,000 started 30 ms after the batch came)
    select c.*
    from claimed as c
    left join unnest(case when v_fair is not null then v_ids end) with ordinality as f (id, ord) on f.id = c.id
    order by c.priority, f.ord, c.id;
end
$$;

comment on function queue.claim_jobs(text, int, text[], text[], int) is
'Claims up to batch_size due jobs for worker_id (priority 1 first, then run_at, then id) with FOR UPDATE SKIP LOCKED, skipping paused queues, honouring each queue''s concurrency and rate limit and open circuit breakers. Claimed jobs are running with a lease of lease_seconds (default: the job type''s timeout, else the queue''s lease) and a fresh random lease_token per job, which every later call about the attempt must present. Null queue_names / job_types mean all.';

-- ---- sql/queue/90_security.sql ----
-- Security, in one place: roles, grants, RLS policies and the end-user API schema.
-- Model (Supabase's): the engine schema `queue` is not exposed through the Data API; every
-- function in it is security definer with search_path = '' and is executable only by the roles
-- granted below. anon gets nothing. authenticated reaches Kyu through `queue_public`
-- (invoker wrappers and a security_invoker view) and sees only its own jobs through RLS.
-- service_role does everything; queue_worker may claim, finish, heartbeat and enqueue follow-up
-- jobs as children of a job it holds, nothing else (no table: it sees a payload only by claiming
-- its job, and every later call about that job needs the claim's lease token).

do $$
begin
    if not exists (select from pg_roles where rolname = 'queue_worker') then
        create role queue_worker nologin;
    end if;
end
$$;

-- ---- the end-user API: queue.enqueue_user_job (definer) behind queue_public (invoker) ----

-- enqueue_user_job: an end user's enqueue: flagged job types only, owned by auth.uid().
create or replace function queue.enqueue_user_job(
    job_type text,
    payload jsonb default '{}',
    priority int default null,
    run_at timestamptz default null,
    unique_key text default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_owner uuid;
    v_type queue.job_types;
    v_max_payload int;
    v_id bigint;
begin
    v_owner := auth.uid();
    if v_owner is null then
        raise exception 'enqueueing a job needs a signed-in user (auth.uid() is null)' using errcode = '42501';
    end if;
    -- unknown and not-flagged types get the same answer: end users cannot probe the registry
    select jt.* into v_type
    from queue.job_types as jt
    where jt.job_type = enqueue_user_job.job_type and jt.user_enqueue;
    if not found then
        raise exception 'job type % is not available to end users', queue._shown(enqueue_user_job.job_type)
            using errcode = '42501',
            hint = 'An operator enables a type with queue.register_job_type(..., user_enqueue => true).';
    end if;
    if enqueue_user_job.priority < v_type.priority then
        raise exception 'priority % is more urgent than job type % allows end users (% to 100)',
            enqueue_user_job.priority, v_type.job_type, v_type.priority
            using errcode = '42501';
    end if;
    if length(enqueue_user_job.unique_key) > 255 then
        raise exception 'unique_key is % characters, over the limit of 255', length(enqueue_user_job.unique_key)
            using errcode = '22023', hint = 'Use a short key, e.g. a hash of what makes the job unique.';
    end if;
    -- end users have a payload cap of their own, below the engine's
    select s.max_user_payload_bytes into v_max_payload from queue.settings as s;
    if octet_length(enqueue_user_job.payload::text) > v_max_payload then
        raise exception 'payload is % bytes, over the cap of % bytes for end users (queue.settings.max_user_payload_bytes)',
            octet_length(enqueue_user_job.payload::text), v_max_payload
            using errcode = '22023', hint = 'Store large data elsewhere (a table, Storage) and pass its id in the payload.';
    end if;
    v_id := queue.enqueue_job(
        job_type => v_type.job_type,
        payload => coalesce(enqueue_user_job.payload, '{}'),
        priority => enqueue_user_job.priority,
        -- a past run_at means now: an end user cannot move ahead of jobs that waited longer
        run_at => case
            when enqueue_user_job.run_at < now() and isfinite(enqueue_user_job.run_at) then now()
            else enqueue_user_job.run_at
        end,
        -- keys are per user, so one user can neither learn nor block another's job
        unique_key => 'user:' || v_owner || ':' || enqueue_user_job.unique_key,
        owner_id => v_owner
    );
    -- the owner's quotas (live jobs, enqueue rate) after the insert, under the owner's lock: an
    -- error undoes the insert. A queue that binds every caller had them applied by enqueue_jobs.
    if not (select q.owner_limits_all from queue.queues as q where q.queue_name = v_type.queue_name) then
        perform queue._enforce_owner_limits(v_owner, v_type.job_type, v_type.queue_name, 1, true);
    end if;
    return v_id;
end
$$;

comment on function queue.enqueue_user_job(text, jsonb, int, timestamptz, text) is
'An end user''s enqueue (called through queue_public.enqueue_job): only job types registered with user_enqueue => true; the job is owned by auth.uid() whatever else is passed; priority may not be more urgent than the job type''s; unique_key (at most 255 characters) is scoped to the user; a past run_at means now, so a user cannot move ahead of jobs that waited longer (an infinite one is refused); the payload is capped by queue.settings.max_user_payload_bytes; the owner''s quotas of the queue and job type (live jobs, enqueue rate) apply, over them the error is 53400. The queue, attempts and backoff are the job type''s. Returns the job id.';

create schema if not exists queue_public;

comment on schema queue_public is
'Kyu''s end-user API (exposed through the Data API): enqueue_job and my_jobs. Everything else lives in the unexposed schema queue.';

-- enqueue_job: supabase.schema('queue_public').rpc('enqueue_job', {...}).
create or replace function queue_public.enqueue_job(
    job_type text,
    payload jsonb default '{}',
    priority int default null,
    run_at timestamptz default null,
    unique_key text default null
)
returns bigint
language sql
volatile
security invoker
set search_path = ''
as $$
    select queue.enqueue_user_job(
        job_type => enqueue_job.job_type,
        payload => enqueue_job.payload,
        priority => enqueue_job.priority,
        run_at => enqueue_job.run_at,
        unique_key => enqueue_job.unique_key
    )
$$;

comment on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) is
'Enqueues a job owned by the signed-in user and returns its id. Only job types an operator flagged for end users; priority 1 (urgent) to 100, no more urgent than the type''s default; run_at delays it; a unique_key the user already has waiting or running returns that job''s id.';

-- my_jobs: the signed-in user's jobs, live and finished; RLS decides which rows.
create or replace view queue_public.my_jobs
with (security_invoker = true)
as
select
    j.id,
    j.job_type,
    j.queue_name,
    j.status,
    j.priority,
    j.attempt,
    j.max_attempts,
    j.progress,
    null::jsonb as result,
    -- what the handler chose to tell the owner, or a generic line: never the raw error, a worker
    -- id or a host (those stay in errors, for operators). last_error is the same text, under the
    -- name clients written before public_error select
    case when j.status = 'retrying' then coalesce(j.public_error, 'The last attempt failed; the job will be retried.') end
        as last_error,
    case when j.status = 'retrying' then coalesce(j.public_error, 'The last attempt failed; the job will be retried.') end
        as public_error,
    j.parent_id,
    j.run_at,
    j.created_at,
    j.started_at,
    null::timestamptz as finished_at
from queue.jobs as j
where j.owner_id = (select auth.uid())
union all
select
    h.id,
    h.job_type,
    h.queue_name,
    h.status,
    h.priority,
    h.attempt,
    h.max_attempts,
    h.progress,
    h.result,
    case when h.status = 'dead' then coalesce(h.public_error, 'The job failed.') end as last_error,
    case when h.status = 'dead' then coalesce(h.public_error, 'The job failed.') end as public_error,
    h.parent_id,
    h.run_at,
    h.created_at,
    h.started_at,
    h.finished_at
from queue.job_history as h
where h.owner_id = (select auth.uid());

comment on view queue_public.my_jobs is
'The signed-in user''s jobs (waiting, running and finished until purged): status, attempts, progress, result, a public error (what the handler chose to say, e.g. PermanentError(public=...), or a generic line while retrying or dead; last_error is the same text, kept for older clients), the parent job and timings. No payloads, raw errors or worker ids.';

-- ---- privileges ----

revoke all on schema queue from public;
revoke all on all tables in schema queue from public, anon, authenticated, queue_worker;
revoke all on all sequences in schema queue from public, anon, authenticated, queue_worker;
revoke execute on all routines in schema queue from public, anon, authenticated, queue_worker;
alter default privileges in schema queue revoke execute on routines from public;

revoke all on schema queue_public from public;
revoke all on all tables in schema queue_public from public, anon;
revoke execute on all routines in schema queue_public from public, anon;
alter default privileges in schema queue_public revoke execute on routines from public;

-- RLS on every table: only the policies below let anyone but the owner and service_role in.
alter table queue.settings enable row level security;
alter table queue.queues enable row level security;
alter table queue.job_types enable row level security;
alter table queue.tiers enable row level security;
alter table queue.owner_tiers enable row level security;
alter table queue.owner_buckets enable row level security;
alter table queue.circuit_breakers enable row level security;
alter table queue.jobs enable row level security;
alter table queue.job_history enable row level security;
-- partitions are read through queue.job_history (its policies apply); the daily ones get row
-- level security from queue._create_history_partition as they are made
alter table queue.job_history_default enable row level security;
alter table queue.worker_sessions enable row level security;
alter table queue.recurring_jobs enable row level security;
alter table queue.stats_history enable row level security;

-- service_role: the whole engine, and the end-user API.
grant usage on schema queue to service_role;
grant all on all tables in schema queue to service_role;
grant all on all sequences in schema queue to service_role;
grant execute on all routines in schema queue to service_role;
grant usage on schema queue_public to service_role;
grant select on queue_public.my_jobs to service_role;
grant execute on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) to service_role;

-- queue_worker: the worker's calls only; it reads payloads through claim_jobs, never tables.
grant usage on schema queue to queue_worker;
grant execute on function
queue.claim_jobs(text, int, text[], text[], int),
queue.complete_job(bigint, text, jsonb, int, uuid),
queue.complete_jobs(bigint[], text, jsonb[], int[], uuid[]),
queue.fail_job(bigint, text, text, boolean, timestamptz, int, uuid, text),
queue.heartbeat(text, bigint[], text, int, jsonb, uuid[]),
queue.release_jobs(text, bigint[], uuid[]),
queue.report_progress(bigint, text, jsonb, uuid),
queue.report_service(text, boolean, text, int, interval)
to queue_worker;
-- handlers chain work (an email's receipts enqueue their OCR) only as children of the job they
-- hold: the owner is inherited and the types are the parent type's chains_to. Not enqueue_job,
-- which would let a worker create jobs for any owner at any priority.
grant execute on function
queue.enqueue_child_jobs(bigint, uuid, jsonb),
queue.enqueue_child_job(bigint, uuid, text, jsonb, int, timestamptz, text)
to queue_worker;

-- authenticated: the end-user API. queue_public.enqueue_job is invoker, so the user executes the
-- one definer function behind it; my_jobs is security_invoker, so the user needs the columns it
-- reads (never payload, unique_key, errors or worker_id) and RLS picks the user's own rows.
grant usage on schema queue_public to authenticated;
grant execute on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) to authenticated;
grant select on queue_public.my_jobs to authenticated;
grant usage on schema queue to authenticated;
grant execute on function queue.enqueue_user_job(text, jsonb, int, timestamptz, text) to authenticated;
grant select (
    id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, public_error, parent_id, progress,
    run_at, created_at, started_at
)
on queue.jobs to authenticated;
grant select (
    id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, public_error, parent_id, result,
    progress, run_at, created_at, started_at, finished_at
)
on queue.job_history to authenticated;

-- dropped first so this file runs again in an upgrade (supabase/migrations/*_tenants.sql)
drop policy if exists jobs_owner_reads on queue.jobs;
create policy jobs_owner_reads on queue.jobs
for select to authenticated
using (owner_id = (select auth.uid()));

drop policy if exists job_history_owner_reads on queue.job_history;
create policy job_history_owner_reads on queue.job_history
for select to authenticated
using (owner_id = (select auth.uid()));
