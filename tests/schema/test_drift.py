"""sql/ (the current definition) and supabase/migrations (what databases apply) never drift."""

from __future__ import annotations

import psycopg

from .conftest import drop_database, make_database, migration_files, source_files, url_for

# Everything a database's schema is made of, as comparable text rows.
CATALOG = """
with ns as (
    select oid, nspname from pg_namespace where nspname in ('queue', 'queue_public', 'receipts')
)
select 'function',
    n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
    concat_ws(' | ', pg_get_function_result(p.oid), p.prosecdef, p.provolatile, p.proconfig::text,
        md5(p.prosrc), p.proacl::text, obj_description(p.oid, 'pg_proc'))
from pg_proc as p join ns as n on n.oid = p.pronamespace
union all
select 'relation', n.nspname || '.' || c.relname,
    concat_ws(' | ', c.relkind, c.relrowsecurity, c.reloptions::text, c.relacl::text,
        obj_description(c.oid, 'pg_class'),
        case when c.relkind = 'v' then pg_get_viewdef(c.oid) end)
from pg_class as c join ns as n on n.oid = c.relnamespace
where c.relkind in ('r', 'v', 'm', 'p', 'S')
union all
select 'column', n.nspname || '.' || c.relname || '.' || a.attname,
    concat_ws(' | ', format_type(a.atttypid, a.atttypmod), a.attnotnull,
        pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attacl::text,
        col_description(c.oid, a.attnum))
from pg_attribute as a
join pg_class as c on c.oid = a.attrelid
join ns as n on n.oid = c.relnamespace
left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'v', 'p')
union all
select 'constraint', n.nspname || '.' || c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
from pg_constraint as k
join pg_class as c on c.oid = k.conrelid
join ns as n on n.oid = c.relnamespace
union all
select 'index', n.nspname || '.' || i.relname, pg_get_indexdef(i.oid)
from pg_index as x join pg_class as i on i.oid = x.indexrelid join ns as n on n.oid = i.relnamespace
union all
select 'policy', p.schemaname || '.' || p.tablename || '.' || p.policyname,
    concat_ws(' | ', p.permissive, p.roles::text, p.cmd, p.qual, p.with_check)
from pg_policies as p where p.schemaname in (select nspname from ns)
union all
select 'type', n.nspname || '.' || t.typname,
    concat_ws(' | ', t.typtype, (select string_agg(e.enumlabel, ',' order by e.enumsortorder)
        from pg_enum as e where e.enumtypid = t.oid))
from pg_type as t join ns as n on n.oid = t.typnamespace
where t.typtype in ('e', 'c', 'd') and t.typrelid = 0 or (t.typtype = 'c' and n.nspname is not null
    and exists (select from pg_class as c where c.oid = t.typrelid and c.relkind = 'c'))
union all
select 'schema', n.nspname, concat_ws(' | ', n.nspacl::text, obj_description(n.oid, 'pg_namespace'))
from pg_namespace as n where n.nspname in ('queue', 'queue_public', 'receipts')
order by 1, 2
"""


def snapshot(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(CATALOG).fetchall()]


def test_migrations_and_sql_sources_build_the_same_schema() -> None:
    from_migrations = make_database("kyu_drift_m", migration_files())
    from_sources = make_database("kyu_drift_s", source_files())
    try:
        migrated = snapshot(url_for(from_migrations))
        sourced = snapshot(url_for(from_sources))
    finally:
        drop_database(from_migrations)
        drop_database(from_sources)
    assert len(migrated) > 100, "the catalog query found too little to compare"
    only_migrations = sorted(set(migrated) - set(sourced))
    only_sources = sorted(set(sourced) - set(migrated))
    assert not only_migrations and not only_sources, (
        "sql/ and supabase/migrations differ (run scripts/render_migrations.sh, or write a"
        f" migration):\nonly in migrations: {only_migrations[:10]}"
        f"\nonly in sql/: {only_sources[:10]}"
    )
