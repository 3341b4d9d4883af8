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
