-- plpgsql_check over every PL/pgSQL function in schema queue (and receipts when present),
-- honouring each function's own search_path. Any error or warning fails the check.
create extension if not exists plpgsql_check;

do $$
declare
    v_report text;
begin
    select string_agg(format('%s: %s %s%s', c.functionid, c.level, c.message,
        coalesce(' (' || c.detail || ')', '')), e'\n')
    into v_report
    from pg_proc as p
    join pg_namespace as n on n.oid = p.pronamespace
    join pg_language as l on l.oid = p.prolang
    cross join lateral plpgsql_check_function_tb(p.oid, performance_warnings => false,
        extra_warnings => true, security_warnings => true) as c
    where n.nspname in ('queue', 'receipts', 'queue_public')
        and l.lanname = 'plpgsql'
        and p.prorettype <> 'trigger'::regtype
        and c.level in ('error', 'warning', 'warning extra');
    if v_report is not null then
        raise exception e'plpgsql_check found problems:\n%', v_report;
    end if;
    raise notice 'plpgsql_check: no problems';
end
$$;
