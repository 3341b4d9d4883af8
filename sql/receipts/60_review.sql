-- Review: what a human decides. A confirmed or rejected match and a confirmed receipt are
-- never overwritten by a handler re-run; confirming teaches the vendor alias table.

-- _assert_caller_owns: end users (authenticated) may act only on their own rows.
create or replace function receipts._assert_caller_owns(owner_id uuid, what text)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- the role GUC keeps the caller's role inside security definer functions
    if coalesce(current_setting('role', true), 'none') in ('authenticated', 'anon')
        and _assert_caller_owns.owner_id is distinct from (select auth.uid()) then
        raise exception '% not found', _assert_caller_owns.what using errcode = 'P0002';
    end if;
end
$$;

comment on function receipts._assert_caller_owns(uuid, text) is
'Private: raises "not found" (P0002) when an end user acts on another owner''s row.';

-- review_match: a human confirms or rejects one match candidate.
create or replace function receipts.review_match(match_id bigint, decision text)
returns receipts.matches
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_match receipts.matches;
    v_other bigint;
begin
    if review_match.decision is null or review_match.decision not in ('confirmed', 'rejected') then
        raise exception 'decision must be confirmed or rejected, got %', coalesce(review_match.decision, 'null')
            using errcode = '22023';
    end if;
    select m.* into v_match from receipts.matches as m where m.id = review_match.match_id for update;
    if not found then
        raise exception 'match % not found', review_match.match_id using errcode = 'P0002';
    end if;
    perform receipts._assert_caller_owns(v_match.owner_id, format('match %s', review_match.match_id));

    if review_match.decision = 'confirmed' then
        select m.id into v_other
        from receipts.matches as m
        where m.id <> v_match.id
            and m.status = 'confirmed'
            and (m.receipt_id = v_match.receipt_id or m.transaction_id = v_match.transaction_id)
        limit 1;
        if v_other is not null then
            raise exception 'match % conflicts with confirmed match %', v_match.id, v_other
                using errcode = '23505', hint = 'Reject the other match first.';
        end if;
        -- an automatic pick that disagrees with the human steps back to a suggestion
        update receipts.matches as m
        set status = 'suggested', updated_at = now()
        where m.id <> v_match.id
            and m.status = 'auto'
            and (m.receipt_id = v_match.receipt_id or m.transaction_id = v_match.transaction_id);
    end if;

    update receipts.matches as m
    set status = review_match.decision, decided_at = now(), updated_at = now()
    where m.id = v_match.id
    returning m.* into v_match;

    if review_match.decision = 'confirmed' then
        insert into receipts.vendor_aliases as a (owner_id, alias, vendor, learned_from_match_id)
        select v_match.owner_id, t.description, r.vendor, v_match.id
        from receipts.transactions as t
        cross join receipts.receipts as r
        where t.id = v_match.transaction_id
            and r.id = v_match.receipt_id
            and r.vendor is not null
            and btrim(t.description) <> ''
        on conflict on constraint vendor_aliases_alias_once do update
        set vendor = excluded.vendor, learned_from_match_id = excluded.learned_from_match_id;
    end if;
    return v_match;
end
$$;

comment on function receipts.review_match(bigint, text) is
'A human''s decision on a match candidate: confirmed (one-to-one; a conflicting auto match becomes a suggestion; the transaction''s description is learned as an alias of the receipt''s vendor) or rejected. Handlers never overwrite either.';

-- review_receipt: a human supplies or corrects the fields of a receipt sent to review.
create or replace function receipts.review_receipt(
    receipt_id bigint,
    vendor text,
    issue_date date,
    total_yen bigint,
    registration_number text default null
)
returns receipts.receipts
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_receipt receipts.receipts;
begin
    select r.* into v_receipt from receipts.receipts as r where r.id = review_receipt.receipt_id for update;
    if not found then
        raise exception 'receipt % not found', review_receipt.receipt_id using errcode = 'P0002';
    end if;
    perform receipts._assert_caller_owns(v_receipt.owner_id, format('receipt %s', review_receipt.receipt_id));
    if review_receipt.issue_date is null or review_receipt.total_yen is null then
        raise exception 'issue_date and total_yen are required to confirm receipt %', review_receipt.receipt_id
            using errcode = '22023';
    end if;

    -- a corrected vendor teaches an alias: the text read from this receipt names the vendor
    -- a human gave, so the next receipt that prints the same text is read as that vendor
    if v_receipt.vendor is not null and review_receipt.vendor is not null
        and btrim(v_receipt.vendor) <> '' and btrim(review_receipt.vendor) <> ''
        and btrim(v_receipt.vendor) <> btrim(review_receipt.vendor) then
        insert into receipts.vendor_aliases as a (owner_id, alias, vendor)
        values (v_receipt.owner_id, btrim(v_receipt.vendor), btrim(review_receipt.vendor))
        on conflict on constraint vendor_aliases_alias_once do update
        set vendor = excluded.vendor, learned_from_match_id = null;
    end if;

    update receipts.receipts as r
    set vendor = coalesce(review_receipt.vendor, r.vendor),
        issue_date = review_receipt.issue_date,
        total_yen = review_receipt.total_yen,
        registration_number = coalesce(review_receipt.registration_number, r.registration_number),
        status = 'confirmed',
        review_reasons = '{}',
        updated_at = now()
    where r.id = v_receipt.id
    returning r.* into v_receipt;

    -- the pipeline continues from matching, as it would have after a clean extraction
    perform queue.enqueue_job(
        job_type => 'match_transaction',
        payload => jsonb_build_object('receipt_id', v_receipt.id),
        owner_id => v_receipt.owner_id,
        unique_key => format('match:%s', v_receipt.id)
    );
    return v_receipt;
end
$$;

comment on function receipts.review_receipt(bigint, text, date, bigint, text) is
'A human confirms a receipt''s fields (status confirmed; later OCR runs leave it alone) and the pipeline continues: match_transaction is enqueued for it. A corrected vendor is kept as a vendor alias (the text that was read → the vendor given).';
