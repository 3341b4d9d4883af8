"""freee client against httpx.MockTransport, with bodies shaped as freee publishes them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from python_worker.receipts.adapters.errors import PermanentServiceError, RetryableServiceError
from python_worker.receipts.adapters.freee import (
    JST,
    DealDetail,
    FreeeClient,
    InMemoryTokenStore,
    Payment,
    TokenPair,
    classify_response,
)

NOW = datetime(2026, 4, 30, 3, 0, tzinfo=UTC)  # 12:00 JST
COMPANY = 1234


def error_400() -> httpx.Response:
    return httpx.Response(400, json={"status_code": 400, "errors": [
        {"type": "status", "messages": ["不正なリクエストです。"]},
        {"type": "validation",
         "messages": ["Date は不正な日付フォーマットです。入力例：2019-12-17"]},
    ]})


def error_40x(status: int, code: str | None, message: str = "アクセスする権限がありません"
              ) -> httpx.Response:
    body: dict[str, object] = {"message": message}
    if code:
        body["code"] = code
    return httpx.Response(status, json=body, headers={"X-Freee-Request-ID": "req-err"})


def error_404() -> httpx.Response:
    return httpx.Response(404, json={"status_code": 404, "errors": [
        {"type": "status", "messages": ["指定したリソースが見つかりませんでした。"]}]})


def error_5xx(status: int) -> httpx.Response:
    return httpx.Response(status, json={"status_code": status, "errors": [
        {"type": "status", "messages": ["システム内で予期しないエラーが発生しました。"]}]})


def too_many(header: str | None, meta_reset: str | None) -> httpx.Response:
    headers = {"x-ratelimit-limit": "3", "x-ratelimit-remaining": "0"}
    if header:
        headers["x-ratelimit-reset"] = header
    meta: dict[str, object] = {"limit": 3, "period": 1, "remaining": 0}
    if meta_reset:
        meta["reset"] = meta_reset
    return httpx.Response(429, json={"status_code": 429, "meta": meta}, headers=headers)


# --- the retry table, row by row --------------------------------------------------------

@pytest.mark.parametrize(("response", "kind"), [
    (httpx.Response(201, json={"receipt": {"id": 1}}), "ok"),
    (error_400(), "permanent"),
    (error_40x(401, "expired_access_token"), "refresh"),
    (error_40x(401, "invalid_grant"), "permanent"),
    (error_40x(401, "re_authorization_required"), "permanent"),
    (error_40x(401, "user_do_not_have_permission"), "permanent"),
    (error_40x(403, "user_do_not_have_permission"), "permanent"),
    (error_40x(403, "freee_plan_limit"), "permanent"),
    (error_40x(403, "source_ip_address_limit"), "permanent"),
    (error_40x(403, "not_available_plan_limited_app"), "permanent"),
    (error_40x(403, None), "retryable"),
    (error_404(), "permanent"),
    (too_many("2026-04-30T12:00:30+09:00", None), "retryable"),
    (error_5xx(500), "retryable"),
    (error_5xx(502), "retryable"),
    (error_5xx(503), "retryable"),
    (error_5xx(504), "retryable"),
])
def test_retry_classification_table(response: httpx.Response, kind: str) -> None:
    assert classify_response(response, NOW).kind == kind


def test_validation_messages_are_kept() -> None:
    outcome = classify_response(error_400(), NOW)
    assert "Date は不正な日付フォーマットです" in outcome.message


def test_403_throttle_retries_after_ten_minutes() -> None:
    outcome = classify_response(error_40x(403, None, "Forbidden"), NOW)
    assert outcome.retry_at == NOW + timedelta(minutes=10)


def test_429_waits_for_the_reset_header_in_jst() -> None:
    outcome = classify_response(too_many("2026-04-30T12:00:30+09:00", None), NOW)
    assert outcome.retry_at == datetime(2026, 4, 30, 3, 0, 30, tzinfo=UTC)


def test_429_falls_back_to_the_body_meta_reset() -> None:
    outcome = classify_response(too_many(None, "2026-04-30T12:01:00+09:00"), NOW)
    assert outcome.retry_at == datetime(2026, 4, 30, 12, 1, tzinfo=JST)


# --- the client -------------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, expires_in: timedelta = timedelta(hours=5)
                ) -> tuple[FreeeClient, InMemoryTokenStore, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    store = InMemoryTokenStore(TokenPair("access-1", "refresh-1", NOW + expires_in))
    client = FreeeClient(company_id=COMPANY, client_id="cid", client_secret="secret",
                         token_store=store, transport=httpx.MockTransport(record),
                         clock=lambda: NOW)
    return client, store, seen


def token_response(n: int) -> httpx.Response:
    return httpx.Response(200, json={
        "access_token": f"access-{n}", "token_type": "bearer", "expires_in": 21600,
        "refresh_token": f"refresh-{n}", "scope": "read write", "created_at": 1777518000,
        "company_id": COMPANY})


RECEIPT_BODY = {"receipt": {
    "id": 501, "status": "unconfirmed", "description": "髙島ストア kyu:42",
    "mime_type": "application/pdf",
    "origin": "public_api", "created_at": "2026-04-30T12:00:00+09:00", "file_src": "https://…",
    "user": {"id": 1, "email": "a@example.com", "display_name": "経理"},
    "receipt_metadatum": {"partner_name": "株式会社髙島ストア", "issue_date": "2026-04-03",
                          "amount": 3820}}}


def test_upload_receipt_sends_multipart_metadata() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/1/receipts" and request.method == "POST"
        return httpx.Response(201, json=RECEIPT_BODY, headers={"X-Freee-Request-ID": "req-1"})

    client, _, seen = make_client(handler)
    created = client.upload_receipt(
        content=b"%PDF-1.4", filename="領収書.pdf", content_type="application/pdf",
        reconcile_token="kyu:42", description="髙島ストア", partner_name="株式会社髙島ストア",
        issue_date=date(2026, 4, 3), amount=3820, qualified_invoice="qualified")
    assert created.id == 501 and created.request_id == "req-1" and not created.reconciled
    request = seen[0]
    assert request.headers["Authorization"] == "Bearer access-1"
    assert request.headers["content-type"].startswith("multipart/form-data")
    body = request.content.decode("utf-8", "replace")
    for field, value in [("company_id", "1234"), ("description", "髙島ストア kyu:42"),
                         ("receipt_metadatum_partner_name", "株式会社髙島ストア"),
                         ("receipt_metadatum_issue_date", "2026-04-03"),
                         ("receipt_metadatum_amount", "3820"), ("qualified_invoice", "qualified"),
                         ("document_type", "receipt")]:
        assert f'name="{field}"\r\n\r\n{value}\r\n' in body
    assert 'name="receipt"; filename=' in body


def test_expired_access_token_refreshes_once_and_persists_before_retry() -> None:
    store_ref: list[InMemoryTokenStore] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.secure.freee.co.jp":
            form = dict(x.split("=") for x in request.content.decode().split("&"))
            assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "refresh-1"
            return token_response(2)
        if request.headers["Authorization"] == "Bearer access-1":
            return error_40x(401, "expired_access_token")
        # the new pair must already be saved when it is first used
        assert store_ref[0].pair.refresh_token == "refresh-2"
        return httpx.Response(200, json={"receipts": []})

    client, store, seen = make_client(handler)
    store_ref.append(store)
    assert client.list_receipts(date(2026, 4, 1), date(2026, 4, 30)) == []
    assert [r.url.host for r in seen] == ["api.freee.co.jp", "accounts.secure.freee.co.jp",
                                          "api.freee.co.jp"]
    assert store.saves == [TokenPair("access-2", "refresh-2", NOW + timedelta(hours=6))]


def test_still_expired_after_one_refresh_is_retryable_and_refreshes_only_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.secure.freee.co.jp":
            return token_response(2)
        return error_40x(401, "expired_access_token")

    client, store, seen = make_client(handler)
    with pytest.raises(RetryableServiceError):
        client.list_receipts(date(2026, 4, 1), date(2026, 4, 30))
    assert sum(r.url.host == "accounts.secure.freee.co.jp" for r in seen) == 1


def test_refresh_with_a_spent_token_is_permanent_and_marks_credentials_broken() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.secure.freee.co.jp":
            return httpx.Response(401, json={
                "error": "invalid_grant",
                "error_description": "指定された認可グラントは不正か、有効期限切れか、無効です。"})
        return error_40x(401, "expired_access_token")

    client, store, _ = make_client(handler)
    with pytest.raises(PermanentServiceError) as info:
        client.list_receipts(date(2026, 4, 1), date(2026, 4, 30))
    assert info.value.code == "invalid_grant" and store.broken is not None
    assert store.saves == []


def test_reauthorization_required_marks_credentials_broken() -> None:
    client, store, _ = make_client(lambda r: error_40x(
        401, "re_authorization_required",
        "アプリのバージョンが更新されてデータアクセス範囲が追加されています。再度認可をしてください。"))
    with pytest.raises(PermanentServiceError):
        client.list_receipts(date(2026, 4, 1), date(2026, 4, 30))
    assert store.broken == "freee re_authorization_required"


def test_expired_pair_is_refreshed_before_the_call() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.secure.freee.co.jp":
            return token_response(2)
        assert request.headers["Authorization"] == "Bearer access-2"
        return httpx.Response(200, json={"receipts": []})

    client, _, seen = make_client(handler, expires_in=timedelta(seconds=30))
    client.list_receipts(date(2026, 4, 1), date(2026, 4, 30))
    assert len(seen) == 2


def test_refresh_done_by_another_worker_is_reused() -> None:
    client, store, seen = make_client(lambda r: httpx.Response(500))
    store.pair = TokenPair("access-9", "refresh-9", NOW + timedelta(hours=6))
    assert client.refresh("access-1").access_token == "access-9"
    assert seen == []  # no second use of a refresh token


@pytest.mark.parametrize(("response", "error", "retry_at"), [
    (error_400(), PermanentServiceError, None),
    (error_404(), PermanentServiceError, None),
    (error_40x(403, "freee_plan_limit"), PermanentServiceError, None),
    (error_40x(403, None), RetryableServiceError, NOW + timedelta(minutes=10)),
    (too_many("2026-04-30T12:00:30+09:00", None), RetryableServiceError,
     datetime(2026, 4, 30, 12, 0, 30, tzinfo=JST)),
    (error_5xx(503), RetryableServiceError, None),
])
def test_errors_raise_typed_exceptions(response: httpx.Response, error: type,
                                       retry_at: datetime | None) -> None:
    client, _, _ = make_client(lambda r: response)
    with pytest.raises(error) as info:
        client.list_deals(date(2026, 4, 3), date(2026, 4, 3))
    if isinstance(info.value, RetryableServiceError):
        assert info.value.retry_at == retry_at


def test_timeouts_and_connect_errors_are_retryable() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    for handler, code in ((timeout, "timeout"), (refused, "transport")):
        client, _, _ = make_client(handler)
        with pytest.raises(RetryableServiceError) as info:
            client.list_receipts(date(2026, 4, 1), date(2026, 4, 30))
        assert info.value.code == code and info.value.retry_at is None


def test_upload_timeout_then_reconcile_finds_it_and_does_not_repost() -> None:
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(request)
            raise httpx.ReadTimeout("timed out after sending", request=request)
        assert request.url.params["start_date"] == "2026-04-29"
        assert request.url.params["end_date"] == "2026-04-30"
        return httpx.Response(200, json={"receipts": [
            {**RECEIPT_BODY["receipt"], "id": 500, "description": "other kyu:420"},
            RECEIPT_BODY["receipt"]]})

    client, _, _ = make_client(handler)
    kwargs = dict(content=b"%PDF", filename="r.pdf", content_type="application/pdf",
                  reconcile_token="kyu:42")
    with pytest.raises(RetryableServiceError):
        client.upload_receipt(**kwargs)  # type: ignore[arg-type]
    created = client.upload_receipt(**kwargs, reconcile=True)  # type: ignore[arg-type]
    assert created.reconciled and created.id == 501
    assert len(posts) == 1


def test_reconcile_that_finds_nothing_posts_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"receipts": []})
        return httpx.Response(201, json=RECEIPT_BODY)

    client, _, seen = make_client(handler)
    created = client.upload_receipt(content=b"%PDF", filename="r.pdf",
                                    content_type="application/pdf", reconcile_token="kyu:42",
                                    reconcile=True)
    assert not created.reconciled and [r.method for r in seen] == ["GET", "POST"]


DEAL = {"id": 9001, "company_id": COMPANY, "issue_date": "2026-04-03", "type": "expense",
        "amount": 3820, "ref_number": "kyu-42", "status": "unsettled", "details": [],
        "payments": [], "receipts": [{"id": 501}]}


def test_create_deal_payload() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"deal": DEAL}, headers={"X-Freee-Request-ID": "r2"})

    client, _, seen = make_client(handler)
    created = client.create_expense_deal(
        issue_date=date(2026, 4, 3), ref_number="kyu-42", receipt_ids=[501], partner_id=77,
        details=[DealDetail(101, 136, 2200, vat=200, description="10%"),
                 DealDetail(101, 163, 1620, vat=120)],
        payments=[Payment(3820, "credit_card", 5, date(2026, 4, 4))])
    assert created.id == 9001 and created.request_id == "r2"
    payload = json.loads(seen[0].content)
    assert payload == {
        "company_id": COMPANY, "issue_date": "2026-04-03", "type": "expense",
        "ref_number": "kyu-42", "partner_id": 77, "receipt_ids": [501],
        "details": [{"account_item_id": 101, "tax_code": 136, "amount": 2200, "vat": 200,
                     "description": "10%"},
                    {"account_item_id": 101, "tax_code": 163, "amount": 1620, "vat": 120}],
        "payments": [{"amount": 3820, "from_walletable_type": "credit_card",
                      "from_walletable_id": 5, "date": "2026-04-04"}]}


def test_deal_reconcile_compares_ref_number_client_side_across_pages() -> None:
    page1 = [{**DEAL, "id": i, "ref_number": f"other-{i}"} for i in range(100)]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET" and "ref_number" not in request.url.params
        assert request.url.params["start_issue_date"] == "2026-04-03"
        offset = int(request.url.params["offset"])
        deals = page1 if offset == 0 else [DEAL]
        return httpx.Response(200, json={"deals": deals, "meta": {"total_count": 101}})

    client, _, seen = make_client(handler)
    created = client.create_expense_deal(issue_date=date(2026, 4, 3), ref_number="kyu-42",
                                         details=[DealDetail(101, 136, 3820)], reconcile=True)
    assert created.reconciled and created.id == 9001
    assert [r.url.params["offset"] for r in seen] == ["0", "100"]
