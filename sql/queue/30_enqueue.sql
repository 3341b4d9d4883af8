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
        coalesce((i.j ->> 'run_at')::timestamptz, now()),
        coalesce(i.j -> 'payload', '{}'),
        coalesce(i.max_attempts, jt.max_attempts, q.max_attempts),
        i.j ->> 'unique_key',
        i.owner_id,
        (i.j ->> 'backoff_strategy')::queue.backoff_strategy,
        (i.j ->> 'backoff_base')::interval,
        (i.j ->> 'backoff_max')::interval,
        case
            when jsonb_typeof(i.j) <> 'object'
                then format('each job must be a JSON object, got %s', jsonb_typeof(i.j))
            when i.bad_key is not null
                then format('unknown key %s (expected job_type, payload, queue_name, priority, run_at, max_attempts, unique_key, owner_id, backoff_strategy, backoff_base, backoff_max)', i.bad_key)
            when i.j ->> 'job_type' is null
                then 'job_type is required'
            when jt.job_type is null
                then format('unknown job type: %s', i.j ->> 'job_type')
            when q.queue_name is null
                then format('unknown queue: %s', i.j ->> 'queue_name')
            when i.j ? 'priority' and jsonb_typeof(i.j -> 'priority') <> 'null' and i.priority is null
                then format('priority must be an integer from 1 to 100, got %s', i.j -> 'priority')
            when i.priority not between 1 and 100
                then format('priority must be between 1 and 100, got %s', i.priority)
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
            when i.j ? 'max_attempts' and jsonb_typeof(i.j -> 'max_attempts') <> 'null' and i.max_attempts is null
                then format('max_attempts must be an integer, got %s', i.j -> 'max_attempts')
            when i.max_attempts < 1
                then format('max_attempts must be at least 1, got %s', i.max_attempts)
            when i.j ? 'unique_key' and jsonb_typeof(i.j -> 'unique_key') not in ('string', 'null')
                then format('unique_key must be a string, got %s', i.j -> 'unique_key')
            when (i.j ->> 'backoff_base')::interval < interval '0'
                then format('backoff_base must not be negative, got %s', i.j ->> 'backoff_base')
        end
    from (
        select
            e.ord,
            e.j,
            case when jsonb_typeof(e.j -> 'priority') = 'number' and (e.j ->> 'priority')::numeric % 1 = 0
                then (e.j ->> 'priority')::numeric::int end as priority,
            case when jsonb_typeof(e.j -> 'max_attempts') = 'number' and (e.j ->> 'max_attempts')::numeric % 1 = 0
                then (e.j ->> 'max_attempts')::numeric::int end as max_attempts,
            (e.j ->> 'owner_id')::uuid as owner_id,
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
                'unique_key', 'owner_id', 'backoff_strategy', 'backoff_base', 'backoff_max'
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
begin
    if job_count > 1 then
        raise exception 'jobs[%]: %', ord - 1, problem
            using errcode = '22023', hint = 'Nothing was enqueued: the batch is all or nothing.';
    end if;
    if problem like 'unknown job type%' then
        raise exception '%', problem
            using errcode = '22023',
            hint = 'Register it first: select queue.register_job_type(job_type => ..., queue_name => ...);';
    end if;
    raise exception '%', problem using errcode = '22023';
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
            owner_id, backoff_strategy, backoff_base, backoff_max
        )
        values (
            v_one.job_type, v_one.queue_name, v_one.priority, v_one.run_at, v_one.payload,
            v_one.max_attempts, v_one.unique_key, v_one.owner_id, v_one.backoff_strategy,
            v_one.backoff_base, v_one.backoff_max
        )
        on conflict (unique_key) where unique_key is not null do nothing
        returning j.id into v_id;
        if v_id is null then
            v_id := queue._unique_key_holder(v_one.unique_key);
        elsif v_one.run_at <= now() then
            perform pg_notify('kyu_jobs', v_one.queue_name);
        end if;
        return next v_id;
        return;
    end if;

    -- ids are drawn before the insert so each input row keeps its id whatever the insert order
    with resolved as materialized (
        select r.*, nextval('queue.jobs_id_seq') as new_id
        from queue._resolve_jobs(enqueue_jobs.jobs) as r
    ),
    ins as (
        insert into queue.jobs (
            id, job_type, queue_name, priority, run_at, payload, max_attempts, unique_key,
            owner_id, backoff_strategy, backoff_base, backoff_max
        )
        select
            case when r.problem is null then r.new_id else queue._reject_job(r.ord, v_count, r.problem) end,
            r.job_type, r.queue_name, r.priority, r.run_at, r.payload, r.max_attempts, r.unique_key,
            r.owner_id, r.backoff_strategy, r.backoff_base, r.backoff_max
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

    -- a job skipped for its unique_key takes the id of the job that holds the key
    for i in 1 .. v_count loop
        if not v_inserted[i] then
            v_ids[i] := queue._unique_key_holder(v_keys[i]);
        end if;
    end loop;

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
begin
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
