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
