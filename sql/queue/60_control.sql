-- Control: an operator's hands on jobs and queues: cancel a waiting job, retry a dead or
-- cancelled one, pause and resume a queue.

-- cancel_job: a waiting job goes to history as cancelled.
create or replace function queue.cancel_job(job_id bigint)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.jobs;
    v_status queue.job_status;
begin
    select j.* into v_job from queue.jobs as j where j.id = cancel_job.job_id for update;
    if not found then
        select h.status into v_status from queue.job_history as h where h.id = cancel_job.job_id;
        if found then
            raise exception 'job % is already % and cannot be cancelled', cancel_job.job_id, v_status
                using errcode = '55000';
        end if;
        raise exception 'job % not found', cancel_job.job_id using errcode = 'P0002';
    end if;
    if v_job.status = 'running' then
        raise exception 'job % is running (worker %) and cannot be cancelled', cancel_job.job_id, v_job.worker_id
            using errcode = '55000', hint = 'Wait for the attempt to finish, or let the handler fail permanently.';
    end if;
    perform queue._archive_job(v_job.id, 'cancelled', v_job.errors);
    return true;
end
$$;

comment on function queue.cancel_job(bigint) is 'Cancels a waiting (pending or retrying) job; a running or finished job is an error.';

-- retry_job: replays a dead or cancelled job with fresh attempts, keeping its id and errors.
create or replace function queue.retry_job(job_id bigint)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_job queue.job_history;
begin
    select h.* into v_job from queue.job_history as h where h.id = retry_job.job_id for update;
    if not found then
        if exists (select from queue.jobs as j where j.id = retry_job.job_id) then
            raise exception 'job % is still live and cannot be retried', retry_job.job_id using errcode = '55000';
        end if;
        raise exception 'job % not found', retry_job.job_id using errcode = 'P0002';
    end if;
    if v_job.status not in ('dead', 'cancelled') then
        raise exception 'job % is %; only dead or cancelled jobs can be retried', retry_job.job_id, v_job.status
            using errcode = '55000';
    end if;
    if v_job.unique_key is not null
        and exists (select from queue.jobs as j where j.unique_key = v_job.unique_key) then
        raise exception 'job % cannot be retried: another live job holds its unique_key %', retry_job.job_id, v_job.unique_key
            using errcode = '23505';
    end if;
    delete from queue.job_history as h where h.id = v_job.id;
    insert into queue.jobs (
        id, job_type, queue_name, status, priority, run_at, payload, attempt, max_attempts,
        unique_key, owner_id, errors, created_at
    )
    values (
        v_job.id, v_job.job_type, v_job.queue_name, 'pending', v_job.priority, now(), v_job.payload, 0,
        v_job.max_attempts, v_job.unique_key, v_job.owner_id, v_job.errors, v_job.created_at
    );
    perform pg_notify('kyu_jobs', v_job.queue_name);
    return v_job.id;
end
$$;

comment on function queue.retry_job(
    bigint
) is 'Replays a dead or cancelled job: back to pending now with its attempts reset (earlier errors kept). Returns its id.';

-- pause_queue / resume_queue: stop or restart claiming from a queue (running jobs finish).
create or replace function queue.pause_queue(queue_name text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    update queue.queues as q set paused = true, updated_at = now() where q.queue_name = pause_queue.queue_name;
    if not found then
        raise exception 'unknown queue: %', pause_queue.queue_name using errcode = '22023';
    end if;
end
$$;

comment on function queue.pause_queue(text) is 'Stops claiming from the queue; running jobs finish; enqueueing still works.';

create or replace function queue.resume_queue(queue_name text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    update queue.queues as q set paused = false, updated_at = now() where q.queue_name = resume_queue.queue_name;
    if not found then
        raise exception 'unknown queue: %', resume_queue.queue_name using errcode = '22023';
    end if;
    perform pg_notify('kyu_jobs', resume_queue.queue_name);
end
$$;

comment on function queue.resume_queue(text) is 'Resumes claiming from a paused queue and wakes workers.';
