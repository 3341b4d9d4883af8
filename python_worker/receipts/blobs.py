"""Intake copies of raw mails and receipt files, addressed by content (``<sha[:2]>/<sha>.<ext>``).

Intake writes here before OCR and filing read; the key is stored in the database, so a rolled
back transaction leaves at most an orphan blob that the next attempt reuses. Workers on
several hosts need a shared ``KYU_BLOBS_DIR``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from .settings import get_settings


def _root() -> Path:
    return get_settings().blobs_dir


def put(data: bytes, ext: str) -> str:
    """Store ``data`` (idempotent) and return its key."""
    sha = hashlib.sha256(data).hexdigest()
    clean_ext = re.sub(r"[^a-z0-9]", "", ext.lower())[:10] or "bin"
    key = f"{sha[:2]}/{sha}.{clean_ext}"
    target = _root() / key
    if target.is_file() and target.stat().st_size == len(data):
        return key
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return key


def get(key: str) -> bytes:
    """The bytes stored under ``key``; FileNotFoundError when the blob is gone."""
    if ".." in key.split("/") or key.startswith("/"):
        raise FileNotFoundError(key)
    return (_root() / key).read_bytes()
