-- Reading jobs wherever they live (queue.jobs while waiting or running, queue.job_history once
-- finished): the views all_jobs and dead_letter, get_job (one job) and list_jobs (filtered).

-- all_jobs: every job wherever it lives now.
create or replace view queue.all_jobs as
select
    j.id,
    j.job_type,
    j.queue_name,
    j.status,
    j.priority,
    j.payload,
    j.attempt,
    j.max_attempts,
    j.unique_key,
    j.owner_id,
    j.worker_id,
    j.errors,
    j.errors -> -1 ->> 'error' as last_error,
    null::jsonb as result,
    j.progress,
    j.run_at,
    j.created_at,
    j.started_at,
    null::timestamptz as finished_at,
    j.lease_expires_at
from queue.jobs as j
union all
select
    h.id,
    h.job_type,
    h.queue_name,
    h.status,
    h.priority,
    h.payload,
    h.attempt,
    h.max_attempts,
    h.unique_key,
    h.owner_id,
    h.worker_id,
    h.errors,
    h.errors -> -1 ->> 'error' as last_error,
    h.result,
    h.progress,
    h.run_at,
    h.created_at,
    h.started_at,
    h.finished_at,
    null::timestamptz as lease_expires_at
from queue.job_history as h;

comment on view queue.all_jobs is 'Live and finished jobs in one shape (live ones from queue.jobs, finished from queue.job_history).';

create or replace view queue.dead_letter as
select
    h.id,
    h.job_type,
    h.queue_name,
    h.priority,
    h.payload,
    h.attempt,
    h.max_attempts,
    h.errors -> -1 ->> 'error' as last_error,
    h.errors,
    h.owner_id,
    h.created_at,
    h.finished_at as died_at
from queue.job_history as h
where h.status = 'dead';

comment on view queue.dead_letter is 'Dead jobs (attempts spent or a permanent error), newest last; replay one with queue.retry_job(id).';

-- get_job: one job with its status, attempts, errors, result and timings.
create or replace function queue.get_job(job_id bigint)
returns queue.all_jobs
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_row queue.all_jobs;
begin
    select a.* into v_row from queue.all_jobs as a where a.id = get_job.job_id;
    if not found then
        raise exception 'job % not found (never enqueued, or purged after its queue''s retention)', get_job.job_id
            using errcode = 'P0002';
    end if;
    return v_row;
end
$$;

comment on function queue.get_job(
    bigint
) is 'One job wherever it lives now (waiting, running or finished): status, attempts, every attempt''s error, result, progress and timings.';

-- list_jobs: live and finished jobs with filters, newest first.
create or replace function queue.list_jobs(
    status queue.job_status default null,
    job_type text default null,
    queue_name text default null,
    priority int default null,
    created_after timestamptz default null,
    created_before timestamptz default null,
    payload_contains jsonb default null,
    lim int default 100,
    off int default 0
)
returns setof queue.all_jobs
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if list_jobs.lim is null or list_jobs.lim not between 1 and 10000 then
        raise exception 'lim must be between 1 and 10000, got %', coalesce(list_jobs.lim::text, 'null')
            using errcode = '22023';
    elsif list_jobs.off is null or list_jobs.off < 0 then
        raise exception 'off must be 0 or more, got %', coalesce(list_jobs.off::text, 'null') using errcode = '22023';
    elsif list_jobs.payload_contains is not null and jsonb_typeof(list_jobs.payload_contains) <> 'object' then
        raise exception 'payload_contains must be a JSON object, got %', jsonb_typeof(list_jobs.payload_contains)
            using errcode = '22023';
    end if;
    -- newest first by id (ids follow enqueue order): a merge of both primary keys, backwards
    return query
    select a.*
    from queue.all_jobs as a
    where (list_jobs.status is null or a.status = list_jobs.status)
        and (list_jobs.job_type is null or a.job_type = list_jobs.job_type)
        and (list_jobs.queue_name is null or a.queue_name = list_jobs.queue_name)
        and (list_jobs.priority is null or a.priority = list_jobs.priority)
        and (list_jobs.created_after is null or a.created_at >= list_jobs.created_after)
        and (list_jobs.created_before is null or a.created_at < list_jobs.created_before)
        and (list_jobs.payload_contains is null or a.payload @> list_jobs.payload_contains)
    order by a.id desc
    limit list_jobs.lim
    offset list_jobs.off;
end
$$;

comment on function queue.list_jobs(queue.job_status, text, text, int, timestamptz, timestamptz, jsonb, int, int) is
'Lists live and finished jobs (queue.all_jobs), newest first, filtered by status, job type, queue, priority, created_at in [created_after, created_before), and payload containment (payload @> payload_contains); lim (1-10000) rows from offset off.';
