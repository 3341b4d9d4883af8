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
