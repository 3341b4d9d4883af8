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
