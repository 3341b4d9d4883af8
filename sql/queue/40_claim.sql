-- Claiming: claim_jobs hands a worker up to batch_size due jobs, most urgent first, leased to it.
-- It reads check -> pick -> claim; the policy (breakers, limited queues, allowances, tokens) lives
-- in 35_claim_policy.sql. Two ways to pick (both one statement with FOR UPDATE SKIP LOCKED), then
-- one update claims:
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
    v_ids bigint [];
begin
    -- check
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
    v_blocked := queue._blocked_job_types();

    -- pick: the rows are locked (skip locked) here and claimed by the one update below
    if claim_jobs.queue_names is null and not queue._limited_work_due(claim_jobs.job_types) then
        -- one ordered scan for every queue that is neither paused nor limited
        v_skip := queue._paused_or_limited_queues();
        v_ids := array(
            select j.id
            from queue.jobs as j
            where j.status in ('pending', 'retrying')
                and j.run_at <= now()
                and (claim_jobs.job_types is null or j.job_type = any(claim_jobs.job_types))
                and (v_blocked is null or j.job_type <> all(v_blocked))
                and j.queue_name <> all(v_skip)
            order by j.priority, j.run_at, j.id
            limit claim_jobs.batch_size
            for update skip locked
        );
    else
        -- one scan per queue, each capped by what the queue may start now, merged by priority
        select a.queues, a.allowances into v_queues, v_allowances
        from queue._claim_allowances(claim_jobs.queue_names, claim_jobs.batch_size) as a;
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
        perform queue._spend_tokens(v_ids);
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
