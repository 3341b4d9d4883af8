"""freee accounting API client (httpx): receipt upload, expense deals, reconcile, token refresh.

Public API:

- `FreeeClient(*, company_id, client_id, client_secret, token_store, base_url=FREEE_API,
  token_url=TOKEN_URL, transport=None, timeout=30.0, clock=utcnow)`
  - `upload_receipt(*, content, filename, content_type, reconcile_token, description=None,
    partner_name=None, issue_date=None, amount=None, qualified_invoice=None,
    document_type="receipt", reconcile=False, reconcile_since=None) -> Created`
  - `create_expense_deal(*, issue_date, ref_number, details: Sequence[DealDetail],
    partner_id=None, receipt_ids=(), payments=(), reconcile=False) -> Created`
  - `list_receipts(start_date, end_date) -> list[dict]`, `find_receipt(reconcile_token,
    start_date, end_date) -> dict | None`, `list_deals(start_issue_date, end_issue_date,
    deal_type="expense") -> list[dict]`, `find_deal(ref_number, issue_date) -> dict | None`
  - `request(method, path, **kw) -> httpx.Response` (2xx only; everything else raises)
- `classify_response(response, now) -> Outcome(kind, status, code, message, retry_at,
  request_id)`, kind ∈ ok | refresh | retryable | permanent (the table in
  receipts-domain.md §1).
- `TokenPair`, `TokenStore` protocol (`load`, `save`, `refresh_lock`, `mark_broken`),
  `InMemoryTokenStore`; `DealDetail`, `Payment`, `Created(id, body, request_id, reconciled)`.

freee has no idempotency key, so a POST whose earlier attempt may have reached freee (any retry
after a timeout or 5xx) must pass `reconcile=True`: the client first looks for the object
(receipts: a `reconcile_token` such as `kyu:42` in the description, searched by upload date;
deals: `ref_number`, compared client-side after filtering by issue date) and only posts when
nothing is found. Refresh tokens work once: the new pair is saved before the new access token
is used, under the store's lock, and a refresh that another worker already did is reused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal, Protocol

import httpx

from .errors import PermanentServiceError, RetryableServiceError

FREEE_API = "https://api.freee.co.jp"
TOKEN_URL = "https://accounts.secure.freee.co.jp/public_api/token"
JST = timezone(timedelta(hours=9), "JST")
THROTTLE_DELAY = timedelta(minutes=10)  # freee: excessive access → 403, resumes after ~10 min
DEFAULT_429_DELAY = timedelta(seconds=60)
REFRESH_MARGIN = timedelta(minutes=2)
REFRESH_CODES = frozenset({"expired_access_token", "invalid_access_token"})
REAUTH_CODES = frozenset({"invalid_grant", "re_authorization_required"})
PERMANENT_403_CODES = frozenset({
    "user_do_not_have_permission", "company_not_found", "freee_plan_limit",
    "source_ip_address_limit", "not_available_plan_limited_app", *REAUTH_CODES,
})

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- tokens -----------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: datetime  # tz-aware


class TokenStore(Protocol):
    """Where one company's OAuth pair lives (e.g. a `freee_credentials` row).

    `save` must be durable when it returns: the old refresh token is already revoked.
    `refresh_lock` must serialize refreshes across workers (e.g. `select ... for update` on
    the row, held until the new pair is committed).
    """

    def load(self) -> TokenPair: ...

    def save(self, pair: TokenPair) -> None: ...

    def refresh_lock(self) -> AbstractContextManager[object]: ...

    def mark_broken(self, reason: str) -> None: ...


@dataclass
class InMemoryTokenStore:
    """A process-local store for scripts and tests; not shared between workers."""

    pair: TokenPair
    broken: str | None = None
    saves: list[TokenPair] = field(default_factory=list)

    def load(self) -> TokenPair:
        return self.pair

    def save(self, pair: TokenPair) -> None:
        self.pair = pair
        self.saves.append(pair)

    def refresh_lock(self) -> AbstractContextManager[object]:
        return nullcontext()

    def mark_broken(self, reason: str) -> None:
        self.broken = reason


# --- classification ---------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    kind: Literal["ok", "refresh", "retryable", "permanent"]
    status: int
    code: str | None
    message: str
    retry_at: datetime | None
    request_id: str | None


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _message(body: dict[str, Any], response: httpx.Response) -> str:
    parts: list[str] = []
    for err in body.get("errors") or []:
        if isinstance(err, dict):
            parts.extend(str(m) for m in err.get("messages") or [])
    for key in ("message", "messages", "error_description", "error"):
        value = body.get(key)
        if isinstance(value, list):
            parts.extend(str(v) for v in value)
        elif value:
            parts.append(str(value))
    return "; ".join(parts) or response.reason_phrase or f"HTTP {response.status_code}"


def _parse_reset(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=JST)  # freee documents JST


def classify_response(response: httpx.Response, now: datetime | None = None) -> Outcome:
    """Apply the retry table of receipts-domain.md §1 to one response."""
    now = now or utcnow()
    status = response.status_code
    request_id = response.headers.get("x-freee-request-id")
    if 200 <= status < 300:
        return Outcome("ok", status, None, "", None, request_id)
    body = _body(response)
    code = body.get("code") if isinstance(body.get("code"), str) else None
    code = code or (body.get("error") if isinstance(body.get("error"), str) else None)
    message = _message(body, response)

    def out(kind: Literal["refresh", "retryable", "permanent"],
            retry_at: datetime | None = None) -> Outcome:
        return Outcome(kind, status, code, message, retry_at, request_id)

    if status == 401:
        if code in REAUTH_CODES:
            return out("permanent")
        return out("refresh" if code in REFRESH_CODES or code is None else "permanent")
    if status == 403:
        if code in PERMANENT_403_CODES:
            return out("permanent")
        return out("retryable", now + THROTTLE_DELAY)
    if status == 429:
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        reset = _parse_reset(response.headers.get("x-ratelimit-reset")) or _parse_reset(
            meta.get("reset"))
        return out("retryable", max(reset, now) if reset else now + DEFAULT_429_DELAY)
    if status >= 500 or status == 408:
        return out("retryable")
    return out("permanent")  # 400 validation, 404 stale id, 409/422


def _raise(outcome: Outcome) -> None:
    text = f"freee {outcome.status}{' ' + outcome.code if outcome.code else ''}: {outcome.message}"
    if outcome.kind == "permanent":
        raise PermanentServiceError(text, code=outcome.code, request_id=outcome.request_id)
    raise RetryableServiceError(text, outcome.retry_at, code=outcome.code,
                                request_id=outcome.request_id)


# --- payloads ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DealDetail:
    account_item_id: int
    tax_code: int
    amount: int  # tax-included yen
    vat: int | None = None
    description: str | None = None


@dataclass(frozen=True)
class Payment:
    amount: int
    from_walletable_type: Literal["bank_account", "credit_card", "wallet",
                                  "private_account_item"]
    from_walletable_id: int
    date: date


@dataclass(frozen=True)
class Created:
    id: int
    body: dict[str, Any]
    request_id: str | None
    reconciled: bool  # True: found an object an earlier attempt created; nothing was posted


def _with_token(description: str | None, token: str, limit: int = 255) -> str:
    room = limit - len(token) - 1
    text = (description or "").strip()[: max(room, 0)]
    return f"{text} {token}".strip()


# --- client -----------------------------------------------------------------------------

class FreeeClient:
    def __init__(self, *, company_id: int, client_id: str, client_secret: str,
                 token_store: TokenStore, base_url: str = FREEE_API, token_url: str = TOKEN_URL,
                 transport: httpx.BaseTransport | None = None, timeout: float = 30.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.company_id = company_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.tokens = token_store
        self.token_url = token_url
        self.clock = clock
        self.http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout,
                                 headers={"Accept": "application/json"})

    def close(self) -> None:
        self.http.close()

    # tokens

    def refresh(self, stale_access_token: str) -> TokenPair:
        """Exchange the refresh token once, save the new pair, return it. If another worker
        refreshed meanwhile (the stored access token changed), reuse its pair."""
        with self.tokens.refresh_lock():
            current = self.tokens.load()
            if current.access_token != stale_access_token and \
                    current.expires_at > self.clock() + REFRESH_MARGIN:
                return current
            try:
                response = self.http.post(self.token_url, data={
                    "grant_type": "refresh_token", "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "refresh_token": current.refresh_token})
            except httpx.TransportError as exc:
                # The old refresh token may be spent if freee got the request: the next try
                # then gets invalid_grant and asks for re-authorization.
                raise RetryableServiceError(f"freee token refresh: {exc}") from exc
            body = _body(response)
            if response.status_code == 200 and body.get("access_token"):
                pair = TokenPair(str(body["access_token"]), str(body["refresh_token"]),
                                 self.clock() + timedelta(seconds=int(body.get("expires_in",
                                                                               21600))))
                self.tokens.save(pair)  # persist before use: the old pair is already revoked
                return pair
            outcome = classify_response(response, self.clock())
            if response.status_code in (400, 401) or outcome.code in REAUTH_CODES:
                reason = f"freee refresh failed: {outcome.code or response.status_code}"
                self.tokens.mark_broken(reason)
                raise PermanentServiceError(f"{reason}: {outcome.message}",
                                            code=outcome.code or "invalid_grant",
                                            request_id=outcome.request_id)
            _raise(outcome)
            raise AssertionError("unreachable")

    def _access_token(self) -> str:
        pair = self.tokens.load()
        if pair.expires_at <= self.clock() + REFRESH_MARGIN:
            pair = self.refresh(pair.access_token)
        return pair.access_token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with auth; refresh once on 401 expired_access_token; raise on non-2xx."""
        token = self._access_token()
        for attempt in (1, 2):
            try:
                response = self.http.request(
                    method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            except httpx.TimeoutException as exc:
                raise RetryableServiceError(f"freee {method} {path}: timeout ({exc})",
                                            code="timeout") from exc
            except httpx.TransportError as exc:
                raise RetryableServiceError(f"freee {method} {path}: {exc}",
                                            code="transport") from exc
            outcome = classify_response(response, self.clock())
            log.info("freee %s %s -> %s request_id=%s", method, path, response.status_code,
                     outcome.request_id)
            if outcome.kind == "ok":
                return response
            if outcome.kind == "refresh" and attempt == 1:
                token = self.refresh(token).access_token
                continue
            if outcome.kind == "permanent" and outcome.code in REAUTH_CODES:
                self.tokens.mark_broken(f"freee {outcome.code}")
            if outcome.kind == "refresh":  # still rejected with a fresh token
                outcome = Outcome("retryable", outcome.status, outcome.code, outcome.message,
                                  None, outcome.request_id)
            _raise(outcome)
        raise AssertionError("unreachable")

    # receipts

    def list_receipts(self, start_date: date, end_date: date, limit: int = 3000
                      ) -> list[dict[str, Any]]:
        """Receipts uploaded between the dates (freee filters by upload date)."""
        response = self.request("GET", "/api/1/receipts", params={
            "company_id": self.company_id, "start_date": start_date.isoformat(),
            "end_date": end_date.isoformat(), "limit": limit})
        return list(_body(response).get("receipts") or [])

    def find_receipt(self, reconcile_token: str, start_date: date | None = None,
                     end_date: date | None = None) -> dict[str, Any] | None:
        """A receipt whose description holds `reconcile_token` (default window: the last
        two days in JST, as uploads are dated by freee at upload time)."""
        today = self.clock().astimezone(JST).date()
        start = start_date or today - timedelta(days=1)
        for receipt in self.list_receipts(start, end_date or today):
            if reconcile_token in (receipt.get("description") or "").split():
                return dict(receipt)
        return None

    def upload_receipt(self, *, content: bytes, filename: str, content_type: str,
                       reconcile_token: str, description: str | None = None,
                       partner_name: str | None = None, issue_date: date | None = None,
                       amount: int | None = None, qualified_invoice: str | None = None,
                       document_type: str | None = "receipt", reconcile: bool = False,
                       reconcile_since: date | None = None) -> Created:
        """POST /api/1/receipts (multipart). With `reconcile`, look for an earlier upload
        carrying `reconcile_token` first (`reconcile_since`: the first attempt's date)."""
        if reconcile:
            found = self.find_receipt(reconcile_token, reconcile_since)
            if found is not None:
                return Created(int(found["id"]), found, None, True)
        form: dict[str, str] = {
            "company_id": str(self.company_id),
            "description": _with_token(description, reconcile_token),
        }
        optional = {
            "receipt_metadatum_partner_name": partner_name,
            "receipt_metadatum_issue_date": issue_date.isoformat() if issue_date else None,
            "receipt_metadatum_amount": str(amount) if amount is not None else None,
            "qualified_invoice": qualified_invoice, "document_type": document_type,
        }
        form.update({k: v for k, v in optional.items() if v is not None})
        response = self.request("POST", "/api/1/receipts", data=form,
                                files={"receipt": (filename, content, content_type)})
        receipt = _body(response).get("receipt") or {}
        return Created(int(receipt["id"]), receipt, response.headers.get("x-freee-request-id"),
                       False)

    # deals

    def list_deals(self, start_issue_date: date, end_issue_date: date,
                   deal_type: str = "expense") -> list[dict[str, Any]]:
        """All deals issued between the dates (pages of 100)."""
        deals: list[dict[str, Any]] = []
        offset = 0
        while True:
            response = self.request("GET", "/api/1/deals", params={
                "company_id": self.company_id, "start_issue_date": start_issue_date.isoformat(),
                "end_issue_date": end_issue_date.isoformat(), "type": deal_type,
                "limit": 100, "offset": offset})
            page = list(_body(response).get("deals") or [])
            deals.extend(page)
            if len(page) < 100:
                return deals
            offset += 100

    def find_deal(self, ref_number: str, issue_date: date) -> dict[str, Any] | None:
        """The deal with this 管理番号 (no server-side filter exists: compare locally)."""
        for deal in self.list_deals(issue_date, issue_date):
            if deal.get("ref_number") == ref_number:
                return dict(deal)
        return None

    def create_expense_deal(self, *, issue_date: date, ref_number: str,
                            details: Sequence[DealDetail], partner_id: int | None = None,
                            receipt_ids: Sequence[int] = (), payments: Sequence[Payment] = (),
                            reconcile: bool = False) -> Created:
        """POST /api/1/deals (type expense). Without payments the deal stays unsettled."""
        if not details or len(details) > 100:
            raise PermanentServiceError("a deal needs 1 to 100 detail rows")
        if reconcile:
            found = self.find_deal(ref_number, issue_date)
            if found is not None:
                return Created(int(found["id"]), found, None, True)
        payload: dict[str, Any] = {
            "company_id": self.company_id, "issue_date": issue_date.isoformat(),
            "type": "expense", "ref_number": ref_number,
            "details": [{k: v for k, v in {
                "account_item_id": d.account_item_id, "tax_code": d.tax_code,
                "amount": d.amount, "vat": d.vat, "description": d.description}.items()
                if v is not None} for d in details],
        }
        if partner_id is not None:
            payload["partner_id"] = partner_id
        if receipt_ids:
            payload["receipt_ids"] = list(receipt_ids)
        if payments:
            payload["payments"] = [{
                "amount": p.amount, "from_walletable_type": p.from_walletable_type,
                "from_walletable_id": p.from_walletable_id, "date": p.date.isoformat()}
                for p in payments]
        response = self.request("POST", "/api/1/deals", json=payload)
        deal = _body(response).get("deal") or {}
        return Created(int(deal["id"]), deal, response.headers.get("x-freee-request-id"), False)
