-- Input limits and the helpers that name a bad value. Every text, JSON, time, interval and number
-- the API takes has a bound (the README's "Limits" table lists them all), so a bad input gets
-- Kyu's own error (SQLSTATE 22023, the field, the value, for bulk calls jobs[i]:) before
-- PostgreSQL can answer with a raw one (a btree row too big, an integer out of range, a bad cast).
--   unique_key 300 characters (end users 255, then scoped user:<uid>:) - the btree holds 2704 bytes
--   run_at finite, at most a year ahead (end users: a past run_at means now); retry_at finite,
--   at most a year ahead (a past one means now); backoff_base 0..1 hour (2^30 x 1 hour still fits an interval),
--   backoff_max > 0..7 days; priority 1..100; max_attempts 1..100; 10,000 jobs per enqueue_jobs;
--   error 4,000 characters and public_error 200 (longer ones are cut with a marker, so a failing
--   job can always fail); progress 64 kB of JSON; result the payload cap; worker_id 200 characters.

-- _shown: a value as an error message shows it: at most 100 characters, then how long it was.
create or replace function queue._shown(value text)
returns text
language sql
immutable
security definer
set search_path = ''
as $$
    select case
        when value is null then 'null'
        when length(value) <= 100 then value
        else left(value, 100) || format('... (%s characters)', length(value))
    end
$$;

comment on function queue._shown(text) is
'Private: a value for an error message, cut to 100 characters with its length, so a 5 MB input never becomes a 5 MB error.';

-- _clip: text cut to max_chars with a marker that says how much was cut.
create or replace function queue._clip(value text, max_chars int)
returns text
language sql
immutable
security definer
set search_path = ''
as $$
    select case
        when length(value) <= max_chars then value
        else left(value, max_chars) || format(' [... truncated: %s of %s characters kept]', max_chars, length(value))
    end
$$;

comment on function queue._clip(text, int) is
'Private: value cut to max_chars with a marker [... truncated: n of m characters kept]; null stays null. Errors are cut rather than refused, so a failing job can always fail.';

-- _to_timestamptz / _to_interval / _to_uuid: a JSON string parsed, or null when it does not parse.
-- Called only for keys that are present, so a batch without them never enters the handler block.
create or replace function queue._to_timestamptz(value text)
returns timestamptz
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return value::timestamptz;
exception
    when data_exception then
        return null;
end
$$;

comment on function queue._to_timestamptz(text) is 'Private: value as a timestamptz, or null when it is not one.';

create or replace function queue._to_interval(value text)
returns interval
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    return value::interval;
exception
    when data_exception then
        return null;
end
$$;

comment on function queue._to_interval(text) is 'Private: value as an interval, or null when it is not one.';

create or replace function queue._to_uuid(value text)
returns uuid
language plpgsql
immutable
security definer
set search_path = ''
as $$
begin
    return value::uuid;
exception
    when data_exception then
        return null;
end
$$;

comment on function queue._to_uuid(text) is 'Private: value as a uuid, or null when it is not one.';

-- _time_problem: what is wrong with a due time (run_at, retry_at), or null.
-- An infinite time would never run (infinity) or jump every queue and break every age figure
-- (-infinity); a year ahead is far beyond any delay a queue is for (use a schedule). max_past
-- null: any finite past time.
create or replace function queue._time_problem(field text, value timestamptz, max_past interval)
returns text
language sql
stable
security definer
set search_path = ''
as $$
    select case
        when value is null then null
        when not isfinite(value)
            then format('%s must be a finite time, got %s', field, value)
        when value > now() + interval '1 year'
            then format('%s must be at most a year from now, got %s', field, value)
        when value < now() - max_past
            then format('%s must be at most %s in the past, got %s', field, max_past, value)
    end
$$;

comment on function queue._time_problem(text, timestamptz, interval) is
'Private: null when value (a due time) is null or finite, at most a year ahead and at most max_past ago (null: any past time); else the problem, naming field and value.';
