-- Security, in one place: roles, grants, RLS policies and the end-user API schema.
-- Model (Supabase's): the engine schema `queue` is not exposed through the Data API; every
-- function in it is security definer with search_path = '' and is executable only by the roles
-- granted below. anon gets nothing. authenticated reaches Kyu through `queue_public`
-- (invoker wrappers and a security_invoker view) and sees only its own jobs through RLS.
-- service_role does everything; queue_worker may claim, finish and heartbeat, nothing else.

do $$
begin
    if not exists (select from pg_roles where rolname = 'queue_worker') then
        create role queue_worker nologin;
    end if;
end
$$;

revoke all on schema queue from public;
revoke all on all tables in schema queue from public;
revoke all on all sequences in schema queue from public;
revoke execute on all functions in schema queue from public;
alter default privileges in schema queue revoke execute on functions from public;

-- RLS on every table: only the policies below let anyone but the owner and service_role in.
alter table queue.settings enable row level security;
alter table queue.queues enable row level security;
alter table queue.job_types enable row level security;
alter table queue.tiers enable row level security;
alter table queue.owner_tiers enable row level security;
alter table queue.circuit_breakers enable row level security;
alter table queue.jobs enable row level security;
alter table queue.job_history enable row level security;
alter table queue.worker_sessions enable row level security;

-- service_role: the whole engine.
grant usage on schema queue to service_role;
grant all on all tables in schema queue to service_role;
grant all on all sequences in schema queue to service_role;
grant execute on all functions in schema queue to service_role;

-- queue_worker: the worker's calls only; it reads payloads through claim_jobs, never tables.
grant usage on schema queue to queue_worker;
grant execute on function
    queue.claim_jobs(text, int, text [], text [], int),
    queue.complete_job(bigint, text, jsonb, int),
    queue.complete_jobs(bigint [], text, jsonb [], int []),
    queue.fail_job(bigint, text, text, boolean, timestamptz, int),
    queue.heartbeat(text, bigint [], text, int, jsonb),
    queue.release_jobs(text, bigint []),
    queue.report_progress(bigint, text, jsonb),
    queue.report_service(text, boolean, text, int, interval)
to queue_worker;

-- authenticated: its own jobs, the columns an end user needs (no payload of others' jobs ever).
grant usage on schema queue to authenticated;
grant select (id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, errors, progress, run_at, created_at, started_at)
on queue.jobs to authenticated;
grant select (id, job_type, queue_name, status, priority, attempt, max_attempts, owner_id, errors, result, progress, run_at, created_at, started_at, finished_at)
on queue.job_history to authenticated;

create policy jobs_owner_reads on queue.jobs
for select to authenticated
using (owner_id = (select auth.uid()));

create policy job_history_owner_reads on queue.job_history
for select to authenticated
using (owner_id = (select auth.uid()));
