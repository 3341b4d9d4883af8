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
