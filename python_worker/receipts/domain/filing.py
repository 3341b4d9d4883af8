"""Where a receipt file is filed: `YYYY/MM/<vendor>/<date>_<vendor>_<total>_<id>.<ext>`.

Public API (pure):

- `filing_path(*, receipt_id: int | str, issue_date: date | None, vendor: str | None,
  total: int | None, ext: str) -> str` e.g. `2026/04/髙島屋/2026-04-01_髙島屋_1100_42.pdf`.
  Unknown parts read `unknown` (an undated receipt goes under `unknown/unknown/`).
- `safe_component(name: str, max_bytes: int = 80) -> str`: one path segment that is valid on
  Linux, macOS, Windows and Drive: NFC, no path separators, control or Windows-reserved
  characters, no leading/trailing dots or spaces, not a reserved device name (CON, NUL, COM1…),
  at most `max_bytes` UTF-8 bytes (cut on a character boundary). Empty → 'unknown'.
- `extension_for(content_type: str, filename: str | None = None) -> str`.

The path is a pure function of the receipt fields, so re-filing is idempotent; the receipt id
in the name keeps two same-day, same-amount receipts from one vendor apart.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

UNKNOWN = "unknown"
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|]')
_WINDOWS_RESERVED = re.compile(r"^(?:CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(?:\..*)?$", re.I)
_EXT_BY_TYPE = {
    "application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png", "image/tiff": "tiff",
    "image/heic": "heic", "text/html": "html", "text/csv": "csv", "message/rfc822": "eml",
}


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def safe_component(name: str | None, max_bytes: int = 80) -> str:
    """A single, portable path segment derived from `name` (see module docstring)."""
    if not name:
        return UNKNOWN
    text = unicodedata.normalize("NFC", name)
    text = "".join(" " if unicodedata.category(c) in ("Zs", "Zl", "Zp") else c for c in text)
    text = _FORBIDDEN.sub("_", text)
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Co", "Cs", "Cn"))
    text = re.sub(r"\s+", " ", text).strip(" .")
    text = _truncate_utf8(text, max_bytes).strip(" .")
    if not text:
        return UNKNOWN
    if _WINDOWS_RESERVED.match(text):
        text = "_" + text
    return text


def extension_for(content_type: str, filename: str | None = None) -> str:
    """Lower-case extension without the dot: from the content type, else the file name."""
    ext = _EXT_BY_TYPE.get(content_type.split(";")[0].strip().lower())
    if ext is None and filename and "." in filename:
        ext = filename.rsplit(".", 1)[1]
    ext = re.sub(r"[^a-z0-9]", "", (ext or "").lower())[:10]
    return ext or "bin"


def filing_path(*, receipt_id: int | str, issue_date: date | None, vendor: str | None,
                total: int | None, ext: str) -> str:
    """The relative storage path of a receipt file (always '/'-separated)."""
    vendor_part = safe_component(vendor, max_bytes=60)
    year = f"{issue_date.year:04d}" if issue_date else UNKNOWN
    month = f"{issue_date.month:02d}" if issue_date else UNKNOWN
    day = issue_date.isoformat() if issue_date else UNKNOWN
    amount = str(total) if total is not None else UNKNOWN
    ident = safe_component(str(receipt_id), max_bytes=40)
    clean_ext = re.sub(r"[^a-z0-9]", "", ext.lower().lstrip("."))[:10] or "bin"
    name = safe_component(f"{day}_{vendor_part}_{amount}_{ident}", max_bytes=200)
    return f"{year}/{month}/{vendor_part}/{name}.{clean_ext}"
