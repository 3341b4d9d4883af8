"""Settings of the receipt handlers, from the environment (``KYU_*``; see each field).

Offline defaults do real work: files under ``out/files`` (local storage), blobs under
``out/blobs``, freee requests kept in ``receipts.freee_outbox``. Set the Drive, Supabase or freee
variables to use the real services.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from uuid import UUID

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SINGLE_TENANT_OWNER = UUID(int=0)


class ReceiptSettings(BaseSettings):
    """Where files go, how OCR runs, and which external services are configured."""

    model_config = SettingsConfigDict(env_prefix="KYU_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres:postgres@127.0.0.1:54322/postgres",
        validation_alias="DATABASE_URL",
    )
    files_dir: Path = Path("out/files")  # KYU_FILES_DIR: local storage (filed receipts, reports)
    blobs_dir: Path = Path("out/blobs")  # KYU_BLOBS_DIR: intake copies of mails and attachments
    owner_id: UUID = SINGLE_TENANT_OWNER  # KYU_OWNER_ID: owner when a payload names none
    storage: Literal["local", "drive", "supabase"] = "local"  # KYU_STORAGE
    ocr_lang: str = "jpn+eng"  # KYU_OCR_LANG
    ocr_dpi: int = 300
    ocr_timeout: float = 120.0
    report_formats: list[str] = ["csv", "html", "pdf"]

    # Google Drive (KYU_STORAGE=drive): a service-account or authorized-user JSON file
    drive_credentials_file: Path | None = None
    drive_root_folder_id: str | None = None
    drive_id: str | None = None

    # Supabase Storage (KYU_STORAGE=supabase)
    supabase_url: str | None = None
    supabase_service_key: str | None = None
    supabase_bucket: str = "receipts"

    # freee: with client id, secret and company id set, sync_freee sends the outbox rows
    # (tokens in receipts.freee_credentials)
    freee_client_id: str | None = None
    freee_client_secret: str | None = None
    freee_company_id: int | None = None
    freee_api_url: str = "https://api.freee.co.jp"
    freee_token_url: str = "https://accounts.secure.freee.co.jp/public_api/token"
    freee_account_item_id: int | None = None  # 勘定科目 for expense deals (per company)
    freee_tax_codes: dict[int, int] = {}  # rate -> tax_code, e.g. {"10": 136, "8": 163}
    freee_walletables: dict[str, int] = {}  # account kind -> walletable id, e.g. {"card": 1}

    # IMAP (process_email_receipt with source imap)
    imap_host: str | None = None
    imap_user: str | None = None
    imap_password: str | None = None

    @property
    def freee_configured(self) -> bool:
        return bool(self.freee_client_id and self.freee_client_secret and self.freee_company_id)


@lru_cache(maxsize=1)
def get_settings() -> ReceiptSettings:
    """The process's settings (read once; tests call ``get_settings.cache_clear()``)."""
    return ReceiptSettings()
