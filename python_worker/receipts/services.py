"""The external services the handlers use, built from settings: the storage adapter (local by
default, Drive or Supabase), the freee client with tokens in ``receipts.freee_credentials``,
and circuit-breaker reports that must survive the job's rollback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from python_worker import PermanentError, RetryLater

from .adapters.errors import PermanentServiceError, RetryableServiceError
from .adapters.freee import FreeeClient, TokenPair
from .adapters.storage import LocalStorage, Storage
from .settings import ReceiptSettings, get_settings

STORAGE_SERVICE = "storage"
FREEE_SERVICE = "freee"
CREDENTIALS_CODE = "credentials"


def supabase_client(settings: ReceiptSettings | None = None, http_client: Any = None) -> Any:
    """supabase-py's client with the service key (KYU_SUPABASE_URL, KYU_SUPABASE_SERVICE_KEY):
    the design names the supabase package; Storage is reached as ``client.storage``.
    ``http_client`` (an httpx.Client) is for tests and proxies."""
    from supabase import ClientOptions, create_client  # noqa: PLC0415 - only when configured

    s = settings or get_settings()
    if not (s.supabase_url and s.supabase_service_key):
        raise PermanentError(
            "KYU_STORAGE=supabase needs KYU_SUPABASE_URL and KYU_SUPABASE_SERVICE_KEY")
    options = ClientOptions(auto_refresh_token=False, persist_session=False,
                            **({"httpx_client": http_client} if http_client else {}))
    return create_client(s.supabase_url, s.supabase_service_key, options=options)


def build_storage(settings: ReceiptSettings | None = None) -> Storage:
    """The configured storage adapter (KYU_STORAGE)."""
    s = settings or get_settings()
    if s.storage == "drive":
        from google.oauth2 import service_account  # noqa: PLC0415 - only when configured
        from googleapiclient.discovery import build  # noqa: PLC0415

        from .adapters.storage import DriveStorage  # noqa: PLC0415

        if not (s.drive_credentials_file and s.drive_root_folder_id):
            raise PermanentError(
                "KYU_STORAGE=drive needs KYU_DRIVE_CREDENTIALS_FILE and KYU_DRIVE_ROOT_FOLDER_ID")
        creds = service_account.Credentials.from_service_account_file(
            str(s.drive_credentials_file), scopes=["https://www.googleapis.com/auth/drive"]
        )
        service = build("drive", "v3", credentials=creds, cache_discovery=False)
        return DriveStorage(service, s.drive_root_folder_id, drive_id=s.drive_id)
    if s.storage == "supabase":
        from .adapters.storage import SupabaseStorage  # noqa: PLC0415

        return SupabaseStorage(supabase_client(s).storage.from_(s.supabase_bucket))
    return LocalStorage(s.files_dir)


def is_remote(storage: Storage) -> bool:
    return getattr(storage, "backend", "local") != "local"


def report_outside(service: str, ok: bool, error: str | None = None) -> None:
    """queue.report_service on its own autocommit connection: a failing handler's transaction
    rolls back, and the breaker must still count the failure."""
    url = get_settings().database_url
    with contextlib.suppress(psycopg.Error), psycopg.connect(
        url, autocommit=True, connect_timeout=5
    ) as conn:
        conn.execute("select queue.report_service(%s, %s, %s)", (service, ok, error))


def raise_for_service(service: str, exc: Exception, *, report: bool = True) -> None:
    """Turn an adapter error into the queue's outcome: permanent → dead letter; retryable →
    retry at the service's time (RetryLater) or after the queue's backoff."""
    if report:
        report_outside(service, False, str(exc)[:500])
    if isinstance(exc, PermanentServiceError):
        raise PermanentError(f"{service}: {exc}") from exc
    if isinstance(exc, RetryableServiceError) and exc.retry_at is not None:
        raise RetryLater(exc.retry_at, f"{service}: {exc}") from exc
    raise exc


# --- freee --------------------------------------------------------------------------------

class DbTokenStore:
    """One company's OAuth pair in receipts.freee_credentials, on its own connection: a new
    refresh token must be durable before it is used, whatever happens to the job."""

    def __init__(self, database_url: str, company_id: int) -> None:
        self.database_url = database_url
        self.company_id = company_id
        self._lock_conn: psycopg.Connection[Any] | None = None

    def _conn(self) -> psycopg.Connection[Any]:
        if self._lock_conn is not None:
            return self._lock_conn
        return psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)

    def load(self) -> TokenPair:
        conn = self._conn()
        try:
            row = conn.execute(
                "select access_token, refresh_token, expires_at, broken_reason"
                " from receipts.freee_credentials where company_id = %s",
                (self.company_id,),
            ).fetchone()
        finally:
            if conn is not self._lock_conn:
                conn.close()
        if row is None:
            raise PermanentServiceError(f"no freee credentials for company {self.company_id}",
                                        code=CREDENTIALS_CODE)
        if row[3]:
            raise PermanentServiceError(f"freee credentials need re-authorization: {row[3]}",
                                        code=CREDENTIALS_CODE)
        expires = row[2] or datetime.now(UTC) - timedelta(seconds=1)
        return TokenPair(row[0] or "", row[1], expires)

    def save(self, pair: TokenPair) -> None:
        conn = self._conn()
        try:
            conn.execute(
                "update receipts.freee_credentials set access_token = %s, refresh_token = %s,"
                " expires_at = %s, updated_at = now() where company_id = %s",
                (pair.access_token, pair.refresh_token, pair.expires_at, self.company_id),
            )
            if conn is self._lock_conn:
                conn.commit()  # durable now; the row lock ends with it
                conn.execute(
                    "select 1 from receipts.freee_credentials where company_id = %s for update",
                    (self.company_id,),
                )
        finally:
            if conn is not self._lock_conn:
                conn.close()

    @contextlib.contextmanager
    def refresh_lock(self) -> Iterator[object]:
        conn = psycopg.connect(self.database_url, connect_timeout=5)
        try:
            conn.execute(
                "select 1 from receipts.freee_credentials where company_id = %s for update",
                (self.company_id,),
            )
            self._lock_conn = conn
            yield conn
            conn.commit()
        finally:
            self._lock_conn = None
            conn.close()

    def mark_broken(self, reason: str) -> None:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                "update receipts.freee_credentials set broken_reason = %s, updated_at = now()"
                " where company_id = %s",
                (reason, self.company_id),
            )


def build_freee(settings: ReceiptSettings | None = None) -> FreeeClient | None:
    """The HTTP client when freee is configured; None keeps requests in the outbox."""
    s = settings or get_settings()
    if not s.freee_configured:
        return None
    assert s.freee_company_id is not None and s.freee_client_id and s.freee_client_secret
    return FreeeClient(
        company_id=s.freee_company_id,
        client_id=s.freee_client_id,
        client_secret=s.freee_client_secret,
        token_store=DbTokenStore(s.database_url, s.freee_company_id),
        base_url=s.freee_api_url,
        token_url=s.freee_token_url,
    )

