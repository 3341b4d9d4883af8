-- Circuit breakers: handlers report each call to an external service; failure_threshold
-- failures in a row open its breaker, and claim_jobs skips the job types that list the service
-- (queue._blocked_job_types) until the cool-down has passed.

-- report_service: a handler's outcome against an external service drives its circuit breaker.
create or replace function queue.report_service(
    service text,
    ok boolean,
    error text default null,
    failure_threshold int default null,
    cooldown interval default null
)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_state text;
begin
    if report_service.service is null or btrim(report_service.service) = '' then
        raise exception 'service is required' using errcode = '22023';
    end if;
    insert into queue.circuit_breakers as cb (service, failure_threshold, cooldown)
    values (
        report_service.service,
        coalesce(report_service.failure_threshold, 5),
        coalesce(report_service.cooldown, interval '1 minute')
    )
    on conflict on constraint circuit_breakers_pkey do update
    set failure_threshold = coalesce(report_service.failure_threshold, cb.failure_threshold),
        cooldown = coalesce(report_service.cooldown, cb.cooldown);

    if report_service.ok then
        update queue.circuit_breakers as cb
        set state = 'closed', failures = 0, opened_at = null, updated_at = now()
        where cb.service = report_service.service
        returning cb.state into v_state;
    else
        -- a failure after the cool-down (the trial call) opens it again at once
        update queue.circuit_breakers as cb
        set failures = cb.failures + 1,
            last_error = report_service.error,
            state = case when cb.failures + 1 >= cb.failure_threshold then 'open' else cb.state end,
            opened_at = case when cb.failures + 1 >= cb.failure_threshold then now() else cb.opened_at end,
            updated_at = now()
        where cb.service = report_service.service
        returning cb.state into v_state;
    end if;
    return v_state;
end
$$;

comment on function queue.report_service(text, boolean, text, int, interval) is
'Reports one call to an external service. failure_threshold failures in a row open its breaker: job types listing the service are not claimed until cooldown has passed; a success closes it. Returns the breaker state.';
