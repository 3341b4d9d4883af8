-- Demo data (applied by `supabase db reset` and by `make demo`): vendor aliases of the
-- single-tenant owner for the generated sample mail. Bank and card lines name vendors in
-- half-width katakana, receipts in kanji; kanji and kana never fuzz well, so a user's alias
-- table (normally learned from confirmed matches) bridges them. Idempotent.

insert into receipts.vendor_aliases (owner_id, alias, vendor)
values
('00000000-0000-0000-0000-000000000000', 'ﾀｶｼﾏｽﾄｱ', '株式会社髙島ストア'),
('00000000-0000-0000-0000-000000000000', 'タカシマストア', '株式会社髙島ストア'),
('00000000-0000-0000-0000-000000000000', 'ﾌﾞﾂｸｽﾄｱ', '株式会社ブックストア')
on conflict on constraint vendor_aliases_alias_once do nothing;
