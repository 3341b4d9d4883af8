"""sync_freee: the outbox offline; with freee configured (an httpx mock shaped as freee's
published schema), sends, reconciles after a timeout, retries at the rate-limit reset and
records a refused request."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import make_receipt

from python_worker.context import RetryLater
from python_worker.receipts import services
from python_worker.receipts.adapters.freee import FreeeClient, InMemoryTokenStore, TokenPair
from python_worker.receipts.settings import get_settings

TAX = {"10": {"net": 2000, "tax": 200, "gross": 2200},
       "8": {"net": 1500, "tax": 120, "gross": 1620}}


def outbox(q, rid: int) -> dict[str, dict[str, Any]]:
    rows = q("select * from receipts.freee_outbox where receipt_id = %s", (rid,))
    return {r["kind"]: r for r in rows}


def test_offline_requests_wait_in_the_outbox_once(run, q):
    rid = make_receipt(q, "freee-off", "株式会社髙島ストア", date(2026, 4, 3), 3820, TAX)
    first = run("sync_freee", {"receipt_id": rid})
    second = run("sync_freee", {"receipt_id": rid})
    assert first["sent"] is False and second["outbox"] == {"upload_receipt": "pending",
                                                           "create_deal": "pending"}
    rows = outbox(q, rid)
    assert set(rows) == {"upload_receipt", "create_deal"}
    deal = rows["create_deal"]["request"]
    assert deal["ref_number"] == f"kyu-{rid}" and deal["issue_date"] == "2026-04-03"
    assert sorted((d["rate"], d["amount"], d["vat"]) for d in deal["details"]) == [
        (8, 1620, 120), (10, 2200, 200)]
    assert rows["upload_receipt"]["request"]["reconcile_token"] == f"kyu:{rid}"


class FakeFreee:
    """Routes requests to canned freee responses; records what was sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path, request.read()))
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return httpx.Response(404, json={"status_code": 404, "errors": [
                {"type": "status", "messages": ["not found"]}]})
        return route(request)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFreee]:
    fake = FakeFreee()
    monkeypatch.setenv("KYU_FREEE_CLIENT_ID", "id")
    monkeypatch.setenv("KYU_FREEE_CLIENT_SECRET", "secret")
    monkeypatch.setenv("KYU_FREEE_COMPANY_ID", "42")
    monkeypatch.setenv("KYU_FREEE_ACCOUNT_ITEM_ID", "101")
    monkeypatch.setenv("KYU_FREEE_TAX_CODES", json.dumps({"10": 136, "8": 163}))
    monkeypatch.setenv("KYU_FREEE_WALLETABLES", json.dumps({"card": 7}))
    get_settings.cache_clear()
    tokens = InMemoryTokenStore(TokenPair("access", "refresh",
                                          datetime.now(UTC) + timedelta(hours=6)))

    def build(settings: Any = None) -> FreeeClient:
        return FreeeClient(company_id=42, client_id="id", client_secret="secret",
                           token_store=tokens, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(services, "build_freee", build)
    yield fake
    monkeypatch.undo()
    get_settings.cache_clear()


def created(kind: str, object_id: int) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _req: httpx.Response(201, json={kind: {"id": object_id}},
                                       headers={"X-Freee-Request-ID": f"req-{object_id}"})


def test_configured_freee_gets_the_upload_then_the_deal(run, q, fake: FakeFreee):
    fake.routes[("POST", "/api/1/receipts")] = created("receipt", 501)
    fake.routes[("POST", "/api/1/deals")] = created("deal", 601)
    rid = make_receipt(q, "freee-ok", "株式会社髙島ストア", date(2026, 4, 3), 3820, TAX)
    result = run("sync_freee", {"receipt_id": rid})
    assert result["outbox"] == {"upload_receipt": "sent", "create_deal": "sent"}
    rows = outbox(q, rid)
    upload = rows["upload_receipt"]
    assert (upload["freee_id"], upload["request_id"]) == (501, "req-501")
    assert rows["create_deal"]["freee_id"] == 601
    deal = json.loads(next(body for m, p, body in fake.calls if p == "/api/1/deals"))
    assert deal["receipt_ids"] == [501] and deal["ref_number"] == f"kyu-{rid}"
    assert {(d["tax_code"], d["amount"]) for d in deal["details"]} == {(136, 2200), (163, 1620)}
    # a re-run sends nothing more
    calls = len(fake.calls)
    run("sync_freee", {"receipt_id": rid})
    assert len(fake.calls) == calls


def test_a_retry_after_a_timeout_reconciles_instead_of_posting_again(run, q, fake: FakeFreee):
    rid = make_receipt(q, "freee-timeout", "Example Cloud Inc.", date(2026, 4, 12), 9900)
    fake.routes[("GET", "/api/1/receipts")] = lambda _r: httpx.Response(200, json={"receipts": [
        {"id": 777, "description": f"Example Cloud Inc. kyu:{rid}", "status": "confirmed"}]})
    fake.routes[("GET", "/api/1/deals")] = lambda _r: httpx.Response(200, json={"deals": []})
    fake.routes[("POST", "/api/1/deals")] = created("deal", 888)
    result = run("sync_freee", {"receipt_id": rid}, attempt=2)
    assert result["freee_receipt_id"] == 777
    assert ("POST", "/api/1/receipts") not in {(m, p) for m, p, _ in fake.calls}
    assert outbox(q, rid)["upload_receipt"]["state"] == "sent"


def test_rate_limit_retries_at_freees_reset_time_and_counts_for_the_breaker(run, q, fake):
    reset = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
    fake.routes[("POST", "/api/1/receipts")] = lambda _r: httpx.Response(
        429, json={"status_code": 429, "meta": {"limit": 300, "period": 60, "remaining": 0,
                                                "reset": reset.isoformat()}},
        headers={"x-ratelimit-reset": reset.isoformat()})
    rid = make_receipt(q, "freee-429", "株式会社ブックストア", date(2026, 4, 20), 2420)
    failures = q("select coalesce(max(failures), 0) as n from queue.circuit_breakers"
                 " where service = 'freee'")[0]["n"]
    with pytest.raises(RetryLater) as caught:
        run("sync_freee", {"receipt_id": rid})
    assert caught.value.at == reset
    assert q("select failures from queue.circuit_breakers where service = 'freee'")[0][
        "failures"] == failures + 1
    assert outbox(q, rid) == {}  # the job's transaction rolled back; the retry recreates it


def test_a_refused_request_marks_its_outbox_row_failed(run, q, fake: FakeFreee):
    fake.routes[("POST", "/api/1/receipts")] = lambda _r: httpx.Response(400, json={
        "status_code": 400, "errors": [{"type": "validation",
                                        "messages": ["receipt_metadatum_amount is invalid"]}]})
    rid = make_receipt(q, "freee-400", "株式会社テックサービス", date(2026, 4, 28), 55000)
    result = run("sync_freee", {"receipt_id": rid})
    assert result["outbox"] == {"upload_receipt": "failed"}
    rows = outbox(q, rid)
    assert rows["upload_receipt"]["state"] == "failed"
    assert "receipt_metadatum_amount is invalid" in rows["upload_receipt"]["last_error"]
    assert rows["create_deal"]["state"] == "pending"


def test_a_receipt_in_review_gets_no_deal_until_confirmed(run, q):
    rid = make_receipt(q, "freee-review", "山田文具店", date(2026, 4, 15), 770,
                       status="needs_review")
    run("sync_freee", {"receipt_id": rid})
    assert set(outbox(q, rid)) == {"upload_receipt"}
    q("select receipts.review_receipt(%s, '山田文具店', '2026-04-15', 770)", (rid,))
    run("sync_freee", {"receipt_id": rid})
    assert set(outbox(q, rid)) == {"upload_receipt", "create_deal"}


def test_an_account_problem_dead_letters_the_job_and_keeps_the_rows_pending(run, q, fake):
    from python_worker.context import PermanentError

    fake.routes[("POST", "/api/1/receipts")] = lambda _r: httpx.Response(
        403, json={"code": "freee_plan_limit", "message": "プランの上限に達しました"})
    rid = make_receipt(q, "freee-403", "株式会社テックサービス", date(2026, 4, 27), 11000)
    with pytest.raises(PermanentError, match="freee_plan_limit"):
        run("sync_freee", {"receipt_id": rid})
    assert outbox(q, rid) == {}  # rolled back with the job: a drain recreates and resends
