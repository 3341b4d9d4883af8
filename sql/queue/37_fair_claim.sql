-- Fair claiming and per-owner concurrency: how claim_jobs picks from a queue marked fair (within
-- a priority, owners take turns, weighted by their tier's fair_weight) or with owner_concurrency
-- (at most N running per owner). claim_jobs calls _pick_fair only when such a queue is among the
-- ones it serves, so the plain path keeps its plan and its cost.
--
-- How a fair queue is picked, for an allowance of n jobs (one statement, under the queue row's
-- lock that _claim_allowances takes, so claimers of the queue take turns and the counts hold):
--   1. the owners with waiting jobs: a recursive skip scan of jobs_owner_claim_idx, one index
--      descent per owner;
--   2. each owner's share: ceil(n x weight / total weight), capped by owner_concurrency minus the
--      owner's running jobs; its first jobs (priority, run_at, id) from the same index, in turns
--      of `weight` jobs (turn 1: its first weight jobs, turn 2: the next, ...);
--   3. the rest of the batch first in, first out from jobs_queue_claim_idx (what owners with few
--      jobs leave), after every owner's share of the same priority; jobs without an owner found
--      there take turns as one more owner (they are not in jobs_owner_claim_idx, so they are
--      seen once they reach the first n of the queue); on owner_concurrency queues only
--      unowned jobs fill;
--   4. order by (priority, turn, owners after the queue's fair_cursor first, owner, run_at,
--      id), take n, lock them skip locked, and move fair_cursor to the owner served last, so a
--      claim of one job goes round the owners instead of always to the oldest job.
-- Cost (make bench; docs/design.md): one descent per owner with waiting jobs, plus up to twice
-- the batch in candidates.

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
-- one plan whatever the statistics say (see claim_jobs): the skip scan and each owner's first
-- jobs walk jobs_owner_claim_idx, the fill walks jobs_queue_claim_idx
set enable_seqscan = off
set enable_bitmapscan = off
as $$
declare
    v_queue record;
    v_chosen bigint[];
    v_owners uuid[];
    v_ranks double precision[];
    v_locked bigint[];
    v_ids bigint[] := '{}'::bigint[];
    v_priorities int[] := '{}'::int[];
    v_run_ats timestamptz[] := '{}'::timestamptz[];
    v_last_owner uuid;
begin
    -- the other queues, exactly as claim_jobs picks them
    select
        coalesce(array_agg(c.id), '{}'),
        coalesce(array_agg(c.priority), '{}'),
        coalesce(array_agg(c.run_at), '{}')
    into v_ids, v_priorities, v_run_ats
    from unnest(_pick_fair.queues, _pick_fair.allowances) as a (queue_name, allowance)
    cross join lateral (
        select j.id, j.priority, j.run_at
        from queue.jobs as j
        where j.queue_name = a.queue_name
            and j.status in ('pending', 'retrying')
            and j.run_at <= now()
            and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
            and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
        order by j.priority, j.run_at, j.id
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
        -- 1-4: candidates in fair order, not locked yet
        with recursive owners (owner_id) as (
            (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name = v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id is not null
                order by j.queue_name, j.owner_id
                limit 1
            )
            union all
            select (
                select j.owner_id
                from queue.jobs as j
                where j.queue_name = v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.owner_id is not null
                    and j.owner_id > o.owner_id
                order by j.queue_name, j.owner_id
                limit 1
            )
            from owners as o
            where o.owner_id is not null
        ),
        running as (
            select j.owner_id, count(*)::int as n
            from queue.jobs as j
            where v_queue.owner_concurrency is not null
                and j.queue_name = v_queue.queue_name
                and j.status = 'running'
                and j.owner_id is not null
            group by j.owner_id
        ),
        shares as materialized (
            select
                o.owner_id,
                coalesce(t.fair_weight, 1) as weight,
                case
                    when v_queue.owner_concurrency is null then v_queue.allowance
                    else greatest(0, v_queue.owner_concurrency - coalesce(r.n, 0))
                end as room
            from owners as o
            left join queue.owner_tiers as ot on ot.owner_id = o.owner_id
            left join queue.tiers as t on t.tier = ot.tier
            left join running as r on r.owner_id = o.owner_id
            where o.owner_id is not null
        ),
        total as (
            select sum(s.weight) as weight from shares as s where s.room > 0
        ),
        candidates as (
            select c.id, c.priority, c.run_at, s.owner_id, ceil(c.turn::numeric / s.weight)::double precision as rank
            from shares as s
            cross join total as tw
            cross join lateral (
                select j.id, j.priority, j.run_at, row_number() over (order by j.priority, j.run_at, j.id) as turn
                from queue.jobs as j
                where j.queue_name = v_queue.queue_name
                    and j.owner_id = s.owner_id
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
                    and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
                order by j.priority, j.run_at, j.id
                limit least(
                    s.room,
                    case when v_queue.fair then ceil(v_queue.allowance * s.weight::numeric / tw.weight)::int else v_queue.allowance end
                )
            ) as c
            where s.room > 0
            union all
            -- the rest first in, first out; on owner_concurrency queues only unowned jobs. Unowned
            -- jobs found here take turns too, as one more owner of weight 1
            select
                f.id, f.priority, f.run_at, f.owner_id,
                case
                    when f.owner_id is null
                        then (row_number() over (partition by f.owner_id is null order by f.priority, f.run_at, f.id))::double precision
                    else 'infinity'::double precision
                end
            from (
                select j.id, j.priority, j.run_at, j.owner_id
                from queue.jobs as j
                where j.queue_name = v_queue.queue_name
                    and j.status in ('pending', 'retrying')
                    and j.run_at <= now()
                    and (_pick_fair.job_types is null or j.job_type = any(_pick_fair.job_types))
                    and (_pick_fair.blocked is null or j.job_type <> all(_pick_fair.blocked))
                    and (v_queue.owner_concurrency is null or j.owner_id is null)
                order by j.priority, j.run_at, j.id
                limit v_queue.allowance
            ) as f
        ),
        best as (
            -- a job among both an owner's share and the fill keeps its turn
            select distinct on (c.id) c.id, c.priority, c.run_at, c.owner_id, c.rank
            from candidates as c
            order by c.id, c.rank
        ),
        chosen as (
            select
                b.id,
                b.owner_id,
                b.rank,
                row_number() over (
                    order by
                        b.priority,
                        b.rank,
                        -- round-robin: owners after the one served last come first (the
                        -- unowned jobs count as the nil uuid)
                        coalesce(b.owner_id, '00000000-0000-0000-0000-000000000000') <= coalesce(v_queue.fair_cursor, '00000000-0000-0000-0000-000000000000') and v_queue.fair_cursor is not null,
                        coalesce(b.owner_id, '00000000-0000-0000-0000-000000000000'),
                        b.run_at,
                        b.id
                ) as ord
            from best as b
        )
        select array_agg(c.id order by c.ord), array_agg(c.owner_id order by c.ord), array_agg(c.rank order by c.ord)
        into v_chosen, v_owners, v_ranks
        from chosen as c
        where c.ord <= v_queue.allowance;

        if v_chosen is null then
            continue;
        end if;
        -- lock in fair order, skipping rows another claimer holds (the queue lock keeps other
        -- claims of this queue out, so that is rare: a cancel or a claim by job id)
        v_locked := array(
            select l.id
            from unnest(v_chosen) with ordinality as c (id, ord)
            cross join lateral (
                select j.id
                from queue.jobs as j
                where j.id = c.id
                    and j.status <> 'running'
                    and j.run_at <= now()
                for update skip locked
            ) as l
            order by c.ord
        );
        -- the owner served last by a turn (not by the fill) is where the next claim starts
        if v_queue.fair then
            select coalesce(c.owner_id, '00000000-0000-0000-0000-000000000000') into v_last_owner
            from unnest(v_chosen, v_owners, v_ranks) with ordinality as c (id, owner_id, rank, ord)
            where c.id = any(v_locked) and c.rank < 'infinity'::double precision
            order by c.ord desc
            limit 1;
            if v_last_owner is not null then
                update queue.queues as q
                set fair_cursor = v_last_owner
                where q.queue_name = v_queue.queue_name;
            end if;
        end if;
        -- each pick takes the run_at of its place: within a priority the k-th pick in fair order
        -- gets the k-th oldest run_at of the picks, so the merge below keeps the fair order
        select
            v_ids || coalesce(array_agg(p.id), '{}'),
            v_priorities || coalesce(array_agg(p.priority), '{}'),
            v_run_ats || coalesce(array_agg(s.run_at), '{}')
        into v_ids, v_priorities, v_run_ats
        from (
            select j.id, j.priority, row_number() over (partition by j.priority order by c.ord) as place
            from unnest(v_locked) with ordinality as c (id, ord)
            join queue.jobs as j on j.id = c.id
        ) as p
        join (
            select j.priority, j.run_at, row_number() over (partition by j.priority order by j.run_at, j.id) as place
            from queue.jobs as j
            where j.id = any(v_locked)
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
