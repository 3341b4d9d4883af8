-- Claiming: claim_jobs hands a worker up to batch_size due jobs, most urgent first, leased to it.
-- Two ways to pick (both one statement with FOR UPDATE SKIP LOCKED), then one update claims:
--   * every queue, and no limited queue has due work: one ordered scan of jobs_claim_idx that
--     skips paused and limited queues;
--   * otherwise: one scan per queue of jobs_queue_claim_idx, each capped by what the queue's
--     concurrency and rate limit allow (queue rows locked in name order, so limits hold across
--     any number of workers), merged by priority. With several queues this may lock up to
--     batch_size rows per queue for an instant; the cost is bounded and the plan stays simple.

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
as $$
declare
    v_blocked text [];
    v_queues text [];
    v_allowances int [];
    v_simple boolean;
    v_limited text [];
    v_ids bigint [];
    v_queue record;
    v_tokens double precision;
    v_allow int;
begin
    if claim_jobs.worker_id is null or btrim(claim_jobs.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
    end if;
    if claim_jobs.batch_size is null or claim_jobs.batch_size not between 1 and 1000 then
        raise exception 'batch_size must be between 1 and 1000, got %', coalesce(claim_jobs.batch_size::text, 'null')
            using errcode = '22023';
    end if;
    if claim_jobs.lease_seconds is not null and claim_jobs.lease_seconds < 1 then
        raise exception 'lease_seconds must be at least 1, got %', claim_jobs.lease_seconds using errcode = '22023';
    end if;

    -- job types whose external service has an open breaker still cooling down
    if exists (select from queue.circuit_breakers as cb where cb.state = 'open') then
        select array_agg(jt.job_type) into v_blocked
        from queue.job_types as jt
        where jt.services && array(
            select cb.service
            from queue.circuit_breakers as cb
            where cb.state = 'open' and cb.opened_at + cb.cooldown > now()
        );
    end if;

    -- the one-scan plan serves every queue that is neither paused nor limited; it is taken unless
    -- a limited queue has due work (then per-queue scans apply its limits)
    select coalesce(array_agg(q.queue_name), '{}') into v_limited
    from queue.queues as q
    where q.paused or q.concurrency is not null or q.rate_limit is not null;
    v_simple := claim_jobs.queue_names is null;
    for v_queue in
        select q.queue_name
        from queue.queues as q
        where q.queue_name = any(v_limited) and not q.paused
    loop
        exit when not v_simple;
        -- planned afresh (execute) so the planner sees which queue it is and walks
        -- jobs_queue_claim_idx; a cached generic plan scanned every other queue's jobs instead
        execute '
            select not exists (
                select
                from queue.jobs as j
                where j.queue_name = $1
                    and j.status in (''pending'', ''retrying'')
                    and j.run_at <= now()
                    and ($2 is null or j.job_type = any($2))
            )'
        into v_simple
        using v_queue.queue_name, claim_jobs.job_types;
    end loop;

    -- pick: the rows are locked (skip locked) here and claimed by the one update below
    if v_simple then
        v_ids := array(
            select j.id
            from queue.jobs as j
            where j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (claim_jobs.job_types is null or j.job_type = any(claim_jobs.job_types))
                and (v_blocked is null or j.job_type <> all(v_blocked))
                and j.queue_name <> all(v_limited)
            order by j.priority, j.run_at, j.id
            limit claim_jobs.batch_size
            for update skip locked
        );
    else
        -- the queues to serve and how many jobs each may start now; limited queues are locked
        -- (in name order, so claimers never deadlock) until this transaction ends
        for v_queue in
            select q.queue_name, q.concurrency, q.rate_limit, q.rate_interval, q.rate_tokens, q.rate_refilled_at
            from queue.queues as q
            where not q.paused
                and (claim_jobs.queue_names is null or q.queue_name = any(claim_jobs.queue_names))
            order by q.queue_name
        loop
            v_allow := claim_jobs.batch_size;
            if v_queue.concurrency is not null or v_queue.rate_limit is not null then
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
                v_queues := v_queues || v_queue.queue_name;
                v_allowances := v_allowances || v_allow;
            end if;
        end loop;

        if v_queues is null then
            return;
        end if;

        v_ids := array(
            select c.id
            from unnest(v_queues, v_allowances) as a (queue_name, allowance)
            cross join lateral (
                select j.id, j.priority, j.run_at
                from queue.jobs as j
                where j.queue_name = a.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (claim_jobs.job_types is null or j.job_type = any(claim_jobs.job_types))
                    and (v_blocked is null or j.job_type <> all(v_blocked))
                order by j.priority, j.run_at, j.id
                limit a.allowance
                for update skip locked
            ) as c
            order by c.priority, c.run_at, c.id
            limit claim_jobs.batch_size
        );

        -- spend one token per start on rate-limited queues
        update queue.queues as q
        set rate_tokens = q.rate_tokens - n.started
        from (
            select j.queue_name, count(*) as started
            from queue.jobs as j
            where j.id = any(v_ids)
            group by j.queue_name
        ) as n
        where q.queue_name = n.queue_name and q.rate_limit is not null;
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
            started_at = coalesce(j.started_at, now())
        from queue.job_types as jt, queue.queues as q
        where j.id = any(v_ids)
            and jt.job_type = j.job_type
            and q.queue_name = j.queue_name
        returning j.id, j.job_type, j.queue_name, j.payload, j.attempt, j.max_attempts, j.priority,
            j.lease_expires_at, j.lease_seconds, j.owner_id, j.created_at
    )
    select * from claimed as c order by c.priority, c.id;
end
$$;

comment on function queue.claim_jobs(text, int, text[], text[], int) is
'Claims up to batch_size due jobs for worker_id (priority 1 first, then run_at, then id) with FOR UPDATE SKIP LOCKED, skipping paused queues, honouring each queue''s concurrency and rate limit and open circuit breakers. Claimed jobs are running with a lease of lease_seconds (default: the job type''s timeout, else the queue''s lease). Null queue_names / job_types mean all.';
