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
