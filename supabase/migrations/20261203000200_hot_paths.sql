-- Rendered by scripts/render_migrations.sh from sql/queue/upgrades/20261203000200_hot_paths.sql and the
-- sql/queue files named below; edit those files, not this one.

-- ---- sql/queue/upgrades/20261203000200_hot_paths.sql ----
-- Upgrade: the hot paths of issue 15's last round. enqueue_jobs takes a batch of plain jobs (a
-- type and a payload each) through the new queue._enqueue_plain; complete_jobs pairs each id
-- with its lease token through a join with the batch's unnest instead of a jsonb map; and the
-- console's queue_policies view shows the per-owner settings of the tenants upgrade. Nothing
-- changes in the tables: the sql/queue files named below run again (functions and the view
-- replaced in place, the view's new columns last; 90_security.sql grants the new function).
-- Locks: none beyond replacing the functions and the view. Workers may keep running.

-- ---- sql/queue/30_enqueue.sql ----
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

-- ---- sql/queue/50_finish.sql ----
-- Finishing attempts: complete, fail (retry with backoff or dead-letter), heartbeat, release,
-- and the reaper for leases whose worker vanished. Every call is fenced by the claim's lease
-- token and worker_id (and, where given, the attempt number): a worker_id is only a name anyone
-- can pass, the token is the claim's secret, so a stale worker's late answer changes nothing.

-- _backoff_delay: how long to wait before retry number `attempt` (1-based).
create or replace function queue._backoff_delay(
    strategy queue.backoff_strategy,
    base interval,
    max_delay interval,
    jitter numeric,
    attempt int
)
returns interval
language sql
volatile
security definer
set search_path = ''
as $$
    select least(
        max_delay,
        case strategy
            when 'fixed' then base
            when 'linear' then base * attempt
            else base * power(2, least(attempt - 1, 30))
        end * (1 + coalesce(jitter, 0) * (2 * random() - 1))
    )
$$;

comment on function queue._backoff_delay(queue.backoff_strategy, interval, interval, numeric, int) is
'Private: retry delay. fixed = base, linear = base * attempt, exponential = base * 2^(attempt-1); times (1 ± jitter), capped at max_delay.';

-- _write_history: writes finished jobs (already deleted from queue.jobs) into queue.job_history;
-- the one place that lists history's columns. It takes a set, so a batch is still one insert.
create or replace function queue._write_history(
    jobs queue.jobs[],
    status queue.job_status,
    results jsonb[] default null
)
returns int
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_count int;
    -- the time of this call, not now(): a job completed inside its handler's transaction
    -- (ctx.connection) finishes when that transaction ends, not when it began
    v_finished_at timestamptz := clock_timestamp();
begin
    insert into queue.job_history (
        id, job_type, queue_name, status, priority, payload, attempt, max_attempts, unique_key,
        owner_id, worker_id, errors, result, progress, run_at, created_at, started_at, finished_at,
        public_error, parent_id, releases, released_at, released_by
    )
    select
        j.id, j.job_type, j.queue_name, _write_history.status, j.priority, j.payload, j.attempt,
        j.max_attempts, j.unique_key, j.owner_id, j.worker_id, j.errors, _write_history.results[j.ordinality],
        j.progress, j.run_at, j.created_at, j.started_at, v_finished_at,
        j.public_error, j.parent_id, j.releases, j.released_at, j.released_by
    from unnest(_write_history.jobs) with ordinality as j;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

comment on function queue._write_history(queue.jobs[], queue.job_status, jsonb[]) is
'Private: inserts the given job rows (already deleted from queue.jobs) into queue.job_history with the final status, the result aligned with each row (results may be null), and finished_at = the time of the call (clock_timestamp(), not the transaction''s start). Returns how many.';

-- _archive_job: moves one live job to history with its final status.
create or replace function queue._archive_job(
    job_id bigint,
    status queue.job_status,
    errors jsonb,
    result jsonb default null,
    public_error text default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
begin
    delete from queue.jobs as j
    where j.id = _archive_job.job_id
    returning j.* into v_job;
    if found then
        v_job.errors := _archive_job.errors;
        v_job.public_error := coalesce(_archive_job.public_error, v_job.public_error);
        perform queue._write_history(array[v_job], _archive_job.status, array[_archive_job.result]);
    end if;
end
$$;

comment on function queue._archive_job(bigint, queue.job_status, jsonb, jsonb, text) is 'Private: moves a live job to queue.job_history.';

-- complete_jobs: finishes the jobs the worker still holds; returns how many it finished.
create or replace function queue.complete_jobs(
    job_ids bigint[],
    worker_id text,
    results jsonb[] default null,
    attempts int[] default null,
    lease_tokens uuid[] default null
)
returns int
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- plans that cannot go bad: queue.jobs is read only through jobs_pkey (id = any(job_ids)),
-- whatever the statistics say. The delete once joined unnest(job_ids, ...) with queue.jobs
-- alone; on statistics that saw the table empty, a generic plan hashed every running job (170
-- ms for 2,000 ids at 200k running), rescanned the table per id (115 s for 5,000 ids, issue 15),
-- or walked jobs_pkey whole per id (a 20 s stall in make bench-backlog). Now the ids restrict
-- the scan of queue.jobs itself, so any join method reads only the batch's rows, and nested
-- loops are off: one with the unnest inside would compare every row with every id
set enable_seqscan = off
set enable_bitmapscan = off
set enable_nestloop = off
as $$
declare
    v_count int;
    v_big record;
begin
    -- one test on the hot path (three separate checks looked ~0.1 ms slower per batch of 100 on
    -- the shared bench box; within its noise); the problem is named only when there is one
    if complete_jobs.lease_tokens is null
        or array_position(complete_jobs.lease_tokens, null) is not null
        or cardinality(complete_jobs.lease_tokens) <> cardinality(complete_jobs.job_ids)
        or complete_jobs.results is not null then
        if complete_jobs.lease_tokens is null or array_position(complete_jobs.lease_tokens, null) is not null then
            raise exception 'lease_token is required: job % was passed without one',
                complete_jobs.job_ids[coalesce(array_position(complete_jobs.lease_tokens, null), 1)]
                using errcode = '22023',
                hint = 'Pass the lease_token claim_jobs returned with the job: a worker_id alone does not prove the lease.';
        elsif cardinality(complete_jobs.lease_tokens) <> cardinality(complete_jobs.job_ids) then
            raise exception 'lease_tokens must hold one token per job id (% ids, % tokens)',
                cardinality(complete_jobs.job_ids), cardinality(complete_jobs.lease_tokens)
                using errcode = '22023', hint = 'Pass the lease_token claim_jobs returned with each job, in job_ids order.';
        end if;
        select r.ord, octet_length(r.result::text) as bytes into v_big
        from unnest(complete_jobs.results) with ordinality as r (result, ord)
        where octet_length(r.result::text) > (select s.max_payload_bytes from queue.settings as s)
        limit 1;
        if found then
            raise exception 'job_ids[%]: result is % bytes, over the cap of % bytes (queue.settings.max_payload_bytes)',
                v_big.ord - 1, v_big.bytes, (select s.max_payload_bytes from queue.settings as s)
                using errcode = '22023', hint = 'Store large results elsewhere and return their id. Nothing was completed.';
        end if;
    end if;
    -- one delete and one insert for the whole batch: the writer takes the deleted rows as a set.
    -- Each id is paired with the token, result and attempt at its position (the join), not with
    -- any token of the batch. The jsonb map of them this join replaced cost 2 of complete_jobs'
    -- 8 us per job (batch 100; pg_stat_statements over a procedure loop)
    with done as (
        delete from queue.jobs as j
        using unnest(complete_jobs.job_ids, complete_jobs.lease_tokens, complete_jobs.results, complete_jobs.attempts)
            as c (id, lease_token, result, attempt)
        where j.id = any(complete_jobs.job_ids)
            and j.id = c.id
            -- running, said without naming status: worker_id and lease_expires_at are set
            -- exactly while running (jobs_running_has_lease), and a status clause would offer
            -- the planner a full scan of the partial jobs_running_idx instead of the ids
            and j.lease_expires_at is not null
            and j.worker_id = complete_jobs.worker_id
            and j.lease_token = c.lease_token
            and coalesce(c.attempt, j.attempt) = j.attempt
        returning j, c.result
    )
    select queue._write_history(array_agg(d.j), 'completed', array_agg(d.result)) into v_count
    from done as d;
    return v_count;
end
$$;

comment on function queue.complete_jobs(bigint[], text, jsonb[], int[], uuid[]) is
'Completes the listed jobs that worker_id still holds under their lease_tokens (one per job id, as claim_jobs returned them; optionally with per-job results, each at most queue.settings.max_payload_bytes, and attempt numbers, aligned with job_ids). Returns how many it completed; a job reclaimed by another worker, finished, or presented with another token is left alone.';

-- complete_job: finishes one job; false when the caller no longer holds it.
create or replace function queue.complete_job(
    job_id bigint,
    worker_id text,
    result jsonb default null,
    attempt int default null,
    lease_token uuid default null
)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $$
    select queue.complete_jobs(
        array[complete_job.job_id],
        complete_job.worker_id,
        array[complete_job.result],
        array[complete_job.attempt],
        array[complete_job.lease_token]
    ) = 1
$$;

comment on function queue.complete_job(bigint, text, jsonb, int, uuid) is
'Completes one job with its result; lease_token (from claim_jobs) is required. Returns false (and changes nothing) when worker_id no longer holds the job''s lease under that token, so nothing completes twice.';

-- _fail_locked: records a failed attempt of a locked running job; retries or dead-letters it.
create or replace function queue._fail_locked(
    job queue.jobs,
    error text,
    retryable boolean,
    retry_at timestamptz,
    public_error text default null
)
returns queue.job_status
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
as $$
declare
    v_errors jsonb;
    v_queue queue.queues;
begin
    -- cut, never refused: a failure must always be recordable, whatever the handler produced
    v_errors := job.errors || jsonb_build_object(
        'attempt', job.attempt,
        'error', coalesce(queue._clip(error, 4000), '(no error message)'),
        'worker_id', job.worker_id,
        'at', now()
    );
    -- the owner's view: only what the handler chose to say (null: a generic message)
    job.public_error := queue._clip(public_error, 200);
    if not coalesce(retryable, true) or job.attempt >= job.max_attempts then
        perform queue._archive_job(job.id, 'dead', v_errors, null, job.public_error);
        return 'dead'::queue.job_status;
    end if;
    select q.* into v_queue from queue.queues as q where q.queue_name = job.queue_name;
    update queue.jobs as j
    set status = 'retrying',
        worker_id = null,
        lease_seconds = null,
        lease_expires_at = null,
        lease_token = null,
        errors = v_errors,
        public_error = job.public_error,
        run_at = coalesce(
            -- a past retry_at means now
            case when _fail_locked.retry_at is not null then greatest(_fail_locked.retry_at, now()) end,
            now() + queue._backoff_delay(
                coalesce(job.backoff_strategy, v_queue.backoff_strategy),
                coalesce(job.backoff_base, v_queue.backoff_base),
                coalesce(job.backoff_max, v_queue.backoff_max),
                v_queue.backoff_jitter,
                job.attempt
            )
        )
    where j.id = job.id;
    return 'retrying'::queue.job_status;
end
$$;

comment on function queue._fail_locked(
    queue.jobs, text, boolean, timestamptz, text
) is 'Private: the failure rules shared by fail_job and reap_expired_leases.';

-- fail_job: records an attempt's error; returns retrying or dead, or null if not held.
create or replace function queue.fail_job(
    job_id bigint,
    worker_id text,
    error text,
    retryable boolean default true,
    retry_at timestamptz default null,
    attempt int default null,
    lease_token uuid default null,
    public_error text default null
)
returns queue.job_status
language plpgsql
volatile
security definer
set search_path = ''
set jit = off
-- by primary key whatever the statistics say (a plan cached while queue.jobs was one page
-- scanned it whole once it had grown; see complete_jobs)
set enable_seqscan = off
as $$
declare
    v_job queue.jobs;
    v_problem text;
begin
    if fail_job.lease_token is null then
        raise exception 'lease_token is required: job % was failed without one', fail_job.job_id
            using errcode = '22023',
            hint = 'Pass the lease_token claim_jobs returned with the job: a worker_id alone does not prove the lease.';
    end if;
    v_problem := queue._time_problem('retry_at', fail_job.retry_at, null);
    if v_problem is not null then
        raise exception '%', v_problem
            using errcode = '22023', hint = 'Pass a finite time at most a year ahead, or null for the backoff.';
    end if;
    select j.* into v_job
    from queue.jobs as j
    where j.id = fail_job.job_id
        and j.status = 'running'
        and j.lease_token = fail_job.lease_token
        and j.worker_id = fail_job.worker_id
        and (fail_job.attempt is null or j.attempt = fail_job.attempt)
    for update;
    if not found then
        return null;
    end if;
    return queue._fail_locked(v_job, fail_job.error, fail_job.retryable, fail_job.retry_at, fail_job.public_error);
end
$$;

comment on function queue.fail_job(bigint, text, text, boolean, timestamptz, int, uuid, text) is
'Records a failed attempt (every attempt''s error is kept, cut to 4,000 characters with a marker). Retryable with attempts left: status retrying, run_at after the backoff (or at retry_at when given: finite, at most a year ahead; a past one means now). Otherwise: dead (queue.dead_letter). public_error (cut to 200 characters) is what the job''s owner sees instead of the raw error. lease_token (from claim_jobs) is required. Returns null and changes nothing when worker_id no longer holds the job under that token.';

-- heartbeat: extends the leases the worker still holds and records that it is alive.
create or replace function queue.heartbeat(
    worker_id text,
    job_ids bigint[] default '{}',
    host text default null,
    pid int default null,
    metadata jsonb default null,
    lease_tokens uuid[] default null
)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
-- by primary key whatever the statistics say (see complete_jobs)
set enable_seqscan = off
as $$
begin
    if heartbeat.worker_id is null or btrim(heartbeat.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
    elsif length(heartbeat.worker_id) > 200 then
        raise exception 'worker_id must be at most 200 characters, got %', queue._shown(heartbeat.worker_id)
            using errcode = '22023';
    elsif length(heartbeat.host) > 255 then
        raise exception 'host must be at most 255 characters, got %', queue._shown(heartbeat.host) using errcode = '22023';
    elsif jsonb_typeof(heartbeat.metadata) <> 'object' then
        raise exception 'metadata must be a JSON object, got %', jsonb_typeof(heartbeat.metadata) using errcode = '22023';
    elsif octet_length(heartbeat.metadata::text) > 65536 then
        raise exception 'metadata is % bytes, over the limit of 65536', octet_length(heartbeat.metadata::text)
            using errcode = '22023';
    elsif coalesce(cardinality(heartbeat.job_ids), 0) > 0
        and (heartbeat.lease_tokens is null or array_position(heartbeat.lease_tokens, null) is not null
            or cardinality(heartbeat.lease_tokens) <> cardinality(heartbeat.job_ids)) then
        raise exception 'lease_tokens must hold one token per job id (% ids, % tokens)',
            cardinality(heartbeat.job_ids), coalesce(cardinality(heartbeat.lease_tokens)::text, 'null')
            using errcode = '22023',
            hint = 'Pass the lease_token claim_jobs returned with each job, in job_ids order: a worker_id alone does not prove the lease.';
    end if;
    insert into queue.worker_sessions as w (worker_id, host, pid, metadata)
    values (heartbeat.worker_id, heartbeat.host, heartbeat.pid, coalesce(heartbeat.metadata, '{}'))
    on conflict on constraint worker_sessions_pkey do update
    set last_seen_at = now(),
        host = coalesce(excluded.host, w.host),
        pid = coalesce(excluded.pid, w.pid),
        metadata = case when heartbeat.metadata is null then w.metadata else excluded.metadata end;

    return query
    update queue.jobs as j
    set lease_expires_at = now() + make_interval(secs => j.lease_seconds)
    from unnest(heartbeat.job_ids, heartbeat.lease_tokens) as h (id, lease_token)
    where j.id = h.id
        and j.status = 'running'
        and j.lease_token = h.lease_token
        and j.worker_id = heartbeat.worker_id
    returning j.id;
end
$$;

comment on function queue.heartbeat(text, bigint[], text, int, jsonb, uuid[]) is
'Extends the lease of each listed job worker_id still holds under its lease token (lease_tokens: one per job id, required with job_ids) by its lease length, and records the worker as alive (queue.workers). Returns the ids still held: a missing id was reclaimed or finished.';

-- report_progress: stores a running job's progress (any JSON) for status readers.
create or replace function queue.report_progress(
    job_id bigint,
    worker_id text,
    progress jsonb,
    lease_token uuid default null
)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if report_progress.lease_token is null then
        raise exception 'lease_token is required: progress for job % was reported without one', report_progress.job_id
            using errcode = '22023',
            hint = 'Pass the lease_token claim_jobs returned with the job: a worker_id alone does not prove the lease.';
    elsif octet_length(report_progress.progress::text) > 65536 then
        raise exception 'progress is % bytes, over the limit of 65536', octet_length(report_progress.progress::text)
            using errcode = '22023', hint = 'Progress is a small status for readers (a percentage, a step); keep data elsewhere.';
    end if;
    update queue.jobs as j
    set progress = report_progress.progress
    where j.id = report_progress.job_id
        and j.status = 'running'
        and j.lease_token = report_progress.lease_token
        and j.worker_id = report_progress.worker_id;
    return found;
end
$$;

comment on function queue.report_progress(bigint, text, jsonb, uuid) is
'Stores progress (JSON, at most 64 kB) for a job the worker holds under lease_token (required; from claim_jobs); shown by get_job and my_jobs. False if not held.';

-- release_jobs: gives held jobs back without counting the attempt (graceful shutdown).
create or replace function queue.release_jobs(worker_id text, job_ids bigint[], lease_tokens uuid[] default null)
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_count int;
begin
    if coalesce(cardinality(release_jobs.job_ids), 0) > 0
        and (release_jobs.lease_tokens is null or array_position(release_jobs.lease_tokens, null) is not null
            or cardinality(release_jobs.lease_tokens) <> cardinality(release_jobs.job_ids)) then
        raise exception 'lease_tokens must hold one token per job id (% ids, % tokens)',
            cardinality(release_jobs.job_ids), coalesce(cardinality(release_jobs.lease_tokens)::text, 'null')
            using errcode = '22023',
            hint = 'Pass the lease_token claim_jobs returned with each job, in job_ids order: a worker_id alone does not prove the lease.';
    end if;
    -- the release is recorded on the job: claiming then releasing is no way to read payloads unseen
    update queue.jobs as j
    set status = case when j.attempt > 1 then 'retrying'::queue.job_status else 'pending' end,
        attempt = j.attempt - 1,
        worker_id = null,
        lease_seconds = null,
        lease_expires_at = null,
        lease_token = null,
        releases = j.releases + 1,
        released_at = now(),
        released_by = release_jobs.worker_id
    from unnest(release_jobs.job_ids, release_jobs.lease_tokens) as r (id, lease_token)
    where j.id = r.id
        and j.status = 'running'
        and j.lease_token = r.lease_token
        and j.worker_id = release_jobs.worker_id;
    get diagnostics v_count = row_count;
    if v_count > 0 then
        perform pg_notify('kyu_jobs', q.queue_name)
        from (select distinct j.queue_name from queue.jobs as j where j.id = any(release_jobs.job_ids)) as q;
    end if;
    return v_count;
end
$$;

comment on function queue.release_jobs(text, bigint[], uuid[]) is
'Returns jobs the worker holds (under lease_tokens, one per job id, required) to the queue at once, without counting the attempt (a worker shutting down); each job records it (releases, released_at, released_by). Returns how many.';

-- reap_expired_leases: fails the attempts of jobs whose worker stopped heartbeating.
create or replace function queue.reap_expired_leases()
returns int
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
    v_count int := 0;
begin
    for v_job in
        select j.*
        from queue.jobs as j
        where j.status = 'running' and j.lease_expires_at < now()
        order by j.lease_expires_at
        limit 10000
        for update skip locked
    loop
        perform queue._fail_locked(
            v_job,
            format('lease expired at %s: worker %s stopped heartbeating', v_job.lease_expires_at, v_job.worker_id),
            true,
            null
        );
        v_count := v_count + 1;
    end loop;
    return v_count;
end
$$;

comment on function queue.reap_expired_leases() is
'Jobs whose lease expired (their worker vanished) count the attempt as failed: they wait for a retry, or go to the dead letter when attempts are spent. Returns how many were reaped. Run every minute by pg_cron.';

-- fail_worker_jobs: fails the attempts of every job a worker held, when whoever ran that worker
-- saw it die (the supervisor of run --processes): at once, instead of after the lease and the
-- reaper. Not granted to queue_worker: a worker may finish only what its lease tokens prove.
create or replace function queue.fail_worker_jobs(worker_id text, error text)
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
begin
    if fail_worker_jobs.worker_id is null or btrim(fail_worker_jobs.worker_id) = '' then
        raise exception 'worker_id is required' using errcode = '22023';
    end if;
    for v_job in
        select j.*
        from queue.jobs as j
        where j.status = 'running' and j.worker_id = fail_worker_jobs.worker_id
        order by j.id
        for update
    loop
        perform queue._fail_locked(v_job, coalesce(fail_worker_jobs.error, 'worker died'), true, null);
        return next v_job.id;
    end loop;
end
$$;

comment on function queue.fail_worker_jobs(text, text) is
'Fails (retryably: retry or dead letter as usual) every running job of a worker that is known to be dead, with error as the cause; returns their ids. For a supervisor that saw the worker process exit; service_role only.';

-- ---- sql/queue/88_console.sql ----
-- The operator's console (python -m python_worker dashboard, and the CLI verbs beside it): what
-- the monitor views do not already give it. search_jobs (one page of jobs, keyset-paginated),
-- queue_policies, circuit_breaker_states, get_stats_history and discard_dead_jobs.

-- job_summary: a job as a listing shows it (everything but payload, errors and result). Created
-- once: the tenants upgrade runs this file again (for queue_policies)
do $$
begin
    create type queue.job_summary as (
        id bigint,
        job_type text,
        queue_name text,
        status queue.job_status,
        priority int,
        attempt int,
        max_attempts int,
        owner_id uuid,
        worker_id text,
        last_error text,
        progress jsonb,
        run_at timestamptz,
        created_at timestamptz,
        started_at timestamptz,
        finished_at timestamptz
    );
exception
    when duplicate_object then null;
end
$$;

comment on type queue.job_summary is
'A job as queue.search_jobs lists it: no payload, result or error history (queue.get_job has them), the last attempt''s error only.';

-- search_jobs: one page of live and finished jobs, newest first, continuing below before_id.
-- Keyset, not offset: a page is a backward walk of both primary keys (merged) from before_id,
-- so page 1,000 costs what page 1 costs. The filters sit on queue.all_jobs, outside its union,
-- so the planner pushes them into both legs and keeps the merge of the two index scans (a
-- WHERE inside a union leg stops that, and a page became a sort of the whole history: 390 ms
-- on a million rows). force_custom_plan plans each call with its values: a null filter drops
-- out, and a status excludes the table that cannot hold it (the status checks on jobs and
-- job_history), which a generic plan cannot do. Measured with 1,000,000 rows in history:
-- docs/benchmarks.md, "The console's jobs page". payload_contains and the created_at window
-- have no index: a filter that matches little walks far (the whole history for no match).
-- No payloads in the rows: a listing never shows them, and they are most of a row's bytes.
create or replace function queue.search_jobs(
    status queue.job_status default null,
    job_type text default null,
    queue_name text default null,
    owner_id uuid default null,
    created_after timestamptz default null,
    created_before timestamptz default null,
    payload_contains jsonb default null,
    before_id bigint default null,
    lim int default 50
)
returns setof queue.job_summary
language plpgsql
stable
security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
begin
    if search_jobs.lim is null or search_jobs.lim not between 1 and 1000 then
        raise exception 'lim must be between 1 and 1000, got %', coalesce(search_jobs.lim::text, 'null')
            using errcode = '22023', hint = 'Page through more with before_id => the last id of a page.';
    elsif search_jobs.payload_contains is not null and jsonb_typeof(search_jobs.payload_contains) <> 'object' then
        raise exception 'payload_contains must be a JSON object, got %', jsonb_typeof(search_jobs.payload_contains)
            using errcode = '22023', hint = 'Pass an object such as {"receipt_id": 42}; rows match when payload @> it.';
    elsif search_jobs.created_after >= search_jobs.created_before then
        raise exception 'created_after (%) must be before created_before (%)',
            search_jobs.created_after, search_jobs.created_before
            using errcode = '22023';
    end if;
    return query
    select
        a.id, a.job_type, a.queue_name, a.status, a.priority, a.attempt, a.max_attempts, a.owner_id,
        a.worker_id, a.last_error, a.progress, a.run_at, a.created_at, a.started_at, a.finished_at
    from queue.all_jobs as a
    where (search_jobs.before_id is null or a.id < search_jobs.before_id)
        and (search_jobs.status is null or a.status = search_jobs.status)
        and (search_jobs.job_type is null or a.job_type = search_jobs.job_type)
        and (search_jobs.queue_name is null or a.queue_name = search_jobs.queue_name)
        and (search_jobs.owner_id is null or a.owner_id = search_jobs.owner_id)
        and (search_jobs.created_after is null or a.created_at >= search_jobs.created_after)
        and (search_jobs.created_before is null or a.created_at < search_jobs.created_before)
        and (search_jobs.payload_contains is null or a.payload @> search_jobs.payload_contains)
    order by a.id desc
    limit search_jobs.lim;
end
$$;

comment on function queue.search_jobs(
    queue.job_status, text, text, uuid, timestamptz, timestamptz, jsonb, bigint, int
) is
'One page of live and finished jobs, newest first (ids follow enqueue order), without payloads: filtered by status, job type, queue, owner, created_at in [created_after, created_before) and payload containment (payload @> payload_contains); lim (1-1000) rows with ids below before_id. The next page is before_id => the last id returned. Cost is per page, not per offset.';

-- queue_policies: every queue's policy as create_queue set it, with its job types.
create or replace view queue.queue_policies as
select
    q.queue_name,
    q.paused,
    q.max_attempts,
    q.backoff_strategy,
    q.backoff_base,
    q.backoff_max,
    q.backoff_jitter,
    q.lease_seconds,
    q.retention,
    q.concurrency,
    q.rate_limit,
    q.rate_interval,
    q.aging_interval,
    coalesce(
        (
            select array_agg(jt.job_type order by jt.job_type) from queue.job_types as jt
            where jt.queue_name = q.queue_name
        ),
        '{}'
    ) as job_types,
    q.created_at,
    q.updated_at,
    -- tenants (27_owner_limits.sql, 37_fair_claim.sql); last, so an upgrade can replace the view
    q.owner_max_live_jobs,
    q.owner_enqueue_rate,
    q.owner_enqueue_interval,
    q.owner_limits_all,
    q.owner_concurrency,
    q.fair
from queue.queues as q;

comment on view queue.queue_policies is
'Each queue''s policy as queue.create_queue set it (attempts, backoff, lease, retention, concurrency, rate limit, priority aging, and per owner: live-job quota, enqueue rate, whether the quotas bind every caller, concurrency, fair claiming), whether it is paused, and the job types registered in it. Change a policy with queue.create_queue, pause with queue.pause_queue.';

-- circuit_breaker_states: each breaker with what claim_jobs makes of it now.
create or replace view queue.circuit_breaker_states as
select
    cb.service,
    case
        when cb.state = 'open' and cb.opened_at + cb.cooldown > now() then 'open'
        when cb.state = 'open' then 'half-open'
        else 'closed'
    end as state,
    cb.failures,
    cb.failure_threshold,
    cb.cooldown,
    cb.opened_at,
    case when cb.state = 'open' then cb.opened_at + cb.cooldown end as retry_at,
    cb.last_error,
    cb.updated_at,
    coalesce(
        (
            select array_agg(jt.job_type order by jt.job_type) from queue.job_types as jt
            where cb.service = any(jt.services)
        ),
        '{}'
    ) as job_types
from queue.circuit_breakers as cb;

comment on view queue.circuit_breaker_states is
'Shared circuit breakers as claim_jobs sees them now: open (jobs of the listed job_types are not claimed until retry_at), half-open (cool-down over: the next outcome reported through queue.report_service closes or reopens it) or closed; failures against failure_threshold and the last error.';

-- get_stats_history: the per-minute snapshots of queue_stats over a recent window, oldest first.
create or replace function queue.get_stats_history(
    since interval default '1 hour',
    queue_name text default null
)
returns setof queue.stats_history
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if get_stats_history.since is null or get_stats_history.since <= interval '0' then
        raise exception 'since must be a positive interval, got %', coalesce(get_stats_history.since::text, 'null')
            using errcode = '22023', hint = 'For example since => ''6 hours''; snapshots are kept 7 days.';
    end if;
    return query
    select s.*
    from queue.stats_history as s
    where s.captured_at > now() - get_stats_history.since
        and (get_stats_history.queue_name is null or s.queue_name = get_stats_history.queue_name)
    order by s.captured_at, s.queue_name;
end
$$;

comment on function queue.get_stats_history(interval, text) is
'Snapshots of queue.queue_stats taken in the last since (one row per queue per minute, written by pg_cron''s queue-stats), oldest first; one queue or all. Feeds the console''s throughput, failure-rate and wait charts.';

-- discard_dead_jobs: deletes dead jobs for good; returns the ids it deleted.
create or replace function queue.discard_dead_jobs(job_ids bigint[])
returns setof bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if discard_dead_jobs.job_ids is null or cardinality(discard_dead_jobs.job_ids) = 0 then
        raise exception 'job_ids must hold at least one id, got %', coalesce(discard_dead_jobs.job_ids::text, 'null')
            using errcode = '22023';
    end if;
    -- only the dead letter: a job retried (or discarded) meanwhile is skipped and left out of the result
    return query
    delete from queue.job_history as h
    where h.id = any(discard_dead_jobs.job_ids) and h.status = 'dead'
    returning h.id;
end
$$;

comment on function queue.discard_dead_jobs(bigint[]) is
'Deletes the given jobs from the dead letter for good and returns the ids deleted. Ids that are not dead jobs (retried meanwhile, never dead, unknown) are skipped, not errors, so a bulk discard from a stale page cannot touch anything else.';

-- ---- sql/queue/90_security.sql ----
-- Security, in one place: roles, grants, RLS policies and the end-user API schema.
-- Model (Supabase's): the engine schema `queue` is not exposed through the Data API; every
-- function in it is security definer with search_path = '' and is executable only by the roles
-- granted below. anon gets nothing. authenticated reaches Kyu through `queue_public`
-- (invoker wrappers and a security_invoker view) and sees only its own jobs through RLS.
-- service_role does everything; queue_worker may claim, finish, heartbeat and enqueue follow-up
-- jobs as children of a job it holds, nothing else (no table: it sees a payload only by claiming
-- its job, and every later call about that job needs the claim's lease token).

do $$
begin
    if not exists (select from pg_roles where rolname = 'queue_worker') then
        create role queue_worker nologin;
    end if;
end
$$;

-- ---- the end-user API: queue.enqueue_user_job (definer) behind queue_public (invoker) ----

-- enqueue_user_job: an end user's enqueue: flagged job types only, owned by auth.uid().
create or replace function queue.enqueue_user_job(
    job_type text,
    payload jsonb default '{}',
    priority int default null,
    run_at timestamptz default null,
    unique_key text default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_owner uuid;
    v_type queue.job_types;
    v_max_payload int;
    v_id bigint;
begin
    v_owner := auth.uid();
    if v_owner is null then
        raise exception 'enqueueing a job needs a signed-in user (auth.uid() is null)' using errcode = '42501';
    end if;
    -- unknown and not-flagged types get the same answer: end users cannot probe the registry
    select jt.* into v_type
    from queue.job_types as jt
    where jt.job_type = enqueue_user_job.job_type and jt.user_enqueue;
    if not found then
        raise exception 'job type % is not available to end users', queue._shown(enqueue_user_job.job_type)
            using errcode = '42501',
            hint = 'An operator enables a type with queue.register_job_type(..., user_enqueue => true).';
    end if;
    if enqueue_user_job.priority < v_type.priority then
        raise exception 'priority % is more urgent than job type % allows end users (% to 100)',
            enqueue_user_job.priority, v_type.job_type, v_type.priority
            using errcode = '42501';
    end if;
    if length(enqueue_user_job.unique_key) > 255 then
        raise exception 'unique_key is % characters, over the limit of 255', length(enqueue_user_job.unique_key)
            using errcode = '22023', hint = 'Use a short key, e.g. a hash of what makes the job unique.';
    end if;
    -- end users have a payload cap of their own, below the engine's
    select s.max_user_payload_bytes into v_max_payload from queue.settings as s;
    if octet_length(enqueue_user_job.payload::text) > v_max_payload then
        raise exception 'payload is % bytes, over the cap of % bytes for end users (queue.settings.max_user_payload_bytes)',
            octet_length(enqueue_user_job.payload::text), v_max_payload
            using errcode = '22023', hint = 'Store large data elsewhere (a table, Storage) and pass its id in the payload.';
    end if;
    v_id := queue.enqueue_job(
        job_type => v_type.job_type,
        payload => coalesce(enqueue_user_job.payload, '{}'),
        priority => enqueue_user_job.priority,
        -- a past run_at means now: an end user cannot move ahead of jobs that waited longer
        run_at => case
            when enqueue_user_job.run_at < now() and isfinite(enqueue_user_job.run_at) then now()
            else enqueue_user_job.run_at
        end,
        -- keys are per user, so one user can neither learn nor block another's job
        unique_key => 'user:' || v_owner || ':' || enqueue_user_job.unique_key,
        owner_id => v_owner
    );
    -- the owner's quotas (live jobs, enqueue rate) after the insert, under the owner's lock: an
    -- error undoes the insert. A queue that binds every caller had them applied by enqueue_jobs.
    if not (select q.owner_limits_all from queue.queues as q where q.queue_name = v_type.queue_name) then
        perform queue._enforce_owner_limits(v_owner, v_type.job_type, v_type.queue_name, 1, true);
    end if;
    return v_id;
end
$$;

comment on function queue.enqueue_user_job(text, jsonb, int, timestamptz, text) is
'An end user''s enqueue (called through queue_public.enqueue_job): only job types registered with user_enqueue => true; the job is owned by auth.uid() whatever else is passed; priority may not be more urgent than the job type''s; unique_key (at most 255 characters) is scoped to the user; a past run_at means now, so a user cannot move ahead of jobs that waited longer (an infinite one is refused); the payload is capped by queue.settings.max_user_payload_bytes; the owner''s quotas of the queue and job type (live jobs, enqueue rate) apply, over them the error is 53400. The queue, attempts and backoff are the job type''s. Returns the job id.';

create schema if not exists queue_public;

comment on schema queue_public is
'Kyu''s end-user API (exposed through the Data API): enqueue_job and my_jobs. Everything else lives in the unexposed schema queue.';

-- enqueue_job: supabase.schema('queue_public').rpc('enqueue_job', {...}).
create or replace function queue_public.enqueue_job(
    job_type text,
    payload jsonb default '{}',
    priority int default null,
    run_at timestamptz default null,
    unique_key text default null
)
returns bigint
language sql
volatile
security invoker
set search_path = ''
as $$
    select queue.enqueue_user_job(
        job_type => enqueue_job.job_type,
        payload => enqueue_job.payload,
        priority => enqueue_job.priority,
        run_at => enqueue_job.run_at,
        unique_key => enqueue_job.unique_key
    )
$$;

comment on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) is
'Enqueues a job owned by the signed-in user and returns its id. Only job types an operator flagged for end users; priority 1 (urgent) to 100, no more urgent than the type''s default; run_at delays it; a unique_key the user already has waiting or running returns that job''s id.';

-- my_jobs: the signed-in user's jobs, live and finished; RLS decides which rows.
create or replace view queue_public.my_jobs
with (security_invoker = true)
as
select
    j.id,
    j.job_type,
    j.queue_name,
    j.status,
    j.priority,
    j.attempt,
    j.max_attempts,
    j.progress,
    null::jsonb as result,
    -- what the handler chose to tell the owner, or a generic line: never the raw error, a worker
    -- id or a host (those stay in errors, for operators). last_error is the same text, under the
    -- name clients written before public_error select
    case when j.status = 'retrying' then coalesce(j.public_error, 'The last attempt failed; the job will be retried.') end
        as last_error,
    case when j.status = 'retrying' then coalesce(j.public_error, 'The last attempt failed; the job will be retried.') end
        as public_error,
    j.parent_id,
    j.run_at,
    j.created_at,
    j.started_at,
    null::timestamptz as finished_at
from queue.jobs as j
where j.owner_id = (select auth.uid())
union all
select
    h.id,
    h.job_type,
    h.queue_name,
    h.status,
    h.priority,
    h.attempt,
    h.max_attempts,
    h.progress,
    h.result,
    case when h.status = 'dead' then coalesce(h.public_error, 'The job failed.') end as last_error,
    case when h.status = 'dead' then coalesce(h.public_error, 'The job failed.') end as public_error,
    h.parent_id,
    h.run_at,
    h.created_at,
    h.started_at,
    h.finished_at
from queue.job_history as h
where h.owner_id = (select auth.uid());

comment on view queue_public.my_jobs is
'The signed-in user''s jobs (waiting, running and finished until purged): status, attempts, progress, result, a public error (what the handler chose to say, e.g. PermanentError(public=...), or a generic line while retrying or dead; last_error is the same text, kept for older clients), the parent job and timings. No payloads, raw errors or worker ids.';

-- ---- privileges ----

revoke all on schema queue from public;
revoke all on all tables in schema queue from public, anon, authenticated, queue_worker;
revoke all on all sequences in schema queue from public, anon, authenticated, queue_worker;
revoke execute on all routines in schema queue from public, anon, authenticated, queue_worker;
alter default privileges in schema queue revoke execute on routines from public;

revoke all on schema queue_public from public;
revoke all on all tables in schema queue_public from public, anon;
revoke execute on all routines in schema queue_public from public, anon;
alter default privileges in schema queue_public revoke execute on routines from public;

-- RLS on every table: only the policies below let anyone but the owner and service_role in.
alter table queue.settings enable row level security;
alter table queue.queues enable row level security;
alter table queue.job_types enable row level security;
alter table queue.tiers enable row level security;
alter table queue.owner_tiers enable row level security;
alter table queue.owner_buckets enable row level security;
alter table queue.circuit_breakers enable row level security;
alter table queue.jobs enable row level security;
alter table queue.job_history enable row level security;
-- partitions are read through queue.job_history (its policies apply); the daily ones get row
-- level security from queue._create_history_partition as they are made
alter table queue.job_history_default enable row level security;
alter table queue.worker_sessions enable row level security;
alter table queue.recurring_jobs enable row level security;
alter table queue.stats_history enable row level security;

-- service_role: the whole engine, and the end-user API.
grant usage on schema queue to service_role;
grant all on all tables in schema queue to service_role;
grant all on all sequences in schema queue to service_role;
grant execute on all routines in schema queue to service_role;
grant usage on schema queue_public to service_role;
grant select on queue_public.my_jobs to service_role;
grant execute on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) to service_role;

-- queue_worker: the worker's calls only; it reads payloads through claim_jobs, never tables.
grant usage on schema queue to queue_worker;
grant execute on function
queue.claim_jobs(text, int, text[], text[], int),
queue.complete_job(bigint, text, jsonb, int, uuid),
queue.complete_jobs(bigint[], text, jsonb[], int[], uuid[]),
queue.fail_job(bigint, text, text, boolean, timestamptz, int, uuid, text),
queue.heartbeat(text, bigint[], text, int, jsonb, uuid[]),
queue.release_jobs(text, bigint[], uuid[]),
queue.report_progress(bigint, text, jsonb, uuid),
queue.report_service(text, boolean, text, int, interval)
to queue_worker;
-- handlers chain work (an email's receipts enqueue their OCR) only as children of the job they
-- hold: the owner is inherited and the types are the parent type's chains_to. Not enqueue_job,
-- which would let a worker create jobs for any owner at any priority.
grant execute on function
queue.enqueue_child_jobs(bigint, uuid, jsonb),
queue.enqueue_child_job(bigint, uuid, text, jsonb, int, timestamptz, text)
to queue_worker;

-- authenticated: the end-user API. queue_public.enqueue_job is invoker, so the user executes the
-- one definer function behind it; my_jobs is security_invoker, so the user needs the columns it
-- reads (never payload, unique_key, errors or worker_id) and RLS picks the user's own rows.
grant usage on schema queue_public to authenticated;
grant execute on function queue_public.enqueue_job(text, jsonb, int, timestamptz, text) to authenticated;
grant select on queue_public.my_jobs to authenticated;
grant usage on schema queue to authenticated;
grant execute on function queue.enqueue_user_job(text, jsonb, int, timestamptz, text) to authenticated;
grant select (
    id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, public_error, parent_id, progress,
    run_at, created_at, started_at
)
on queue.jobs to authenticated;
grant select (
    id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, public_error, parent_id, result,
    progress, run_at, created_at, started_at, finished_at
)
on queue.job_history to authenticated;

-- dropped first so this file runs again in an upgrade (supabase/migrations/*_tenants.sql)
drop policy if exists jobs_owner_reads on queue.jobs;
create policy jobs_owner_reads on queue.jobs
for select to authenticated
using (owner_id = (select auth.uid()));

drop policy if exists job_history_owner_reads on queue.job_history;
create policy job_history_owner_reads on queue.job_history
for select to authenticated
using (owner_id = (select auth.uid()));
