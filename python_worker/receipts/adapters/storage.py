"""File storage behind one protocol: a local directory (default), Google Drive, Supabase Storage.

Public API:

- `Storage` protocol: `put(path: str, data: bytes, content_type: str, key: str) -> StoredFile`
  and `exists(path: str) -> bool`. `path` is relative and '/'-separated (see
  `receipts.filing.filing_path`); `key` names the logical object (e.g. `receipt:42`).
- `StoredFile(path, location, sha256, size, created, backend)`: `path` is where the object now
  is (it can carry a `~<sha8>` suffix, below); `location` is the local file, Drive file id or
  Supabase object key; `created` is False when nothing had to be written.
- `LocalStorage(root)`, `DriveStorage(service, root_folder_id, drive_id=None)`,
  `SupabaseStorage(bucket)`; `supabase_object_key(path)`, `suffixed_path(path, sha256)`.

Idempotency contract:
1. Same key, same content → the existing object is returned, never a second copy. If the path
   changed (a corrected vendor), Local and Drive move the object; Supabase writes the new path
   (it cannot look objects up by key).
2. Same key, new content → the new content replaces the key's object.
3. Path taken by different content under another key → the object goes to the deterministic,
   content-addressed `name~<sha256[:8]>.ext` next to it. Never an error, never an overwrite.

Errors surface as `PermanentServiceError` / `RetryableServiceError` (adapters.errors).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from .errors import PermanentServiceError, RetryableServiceError

FOLDER_MIME = "application/vnd.google-apps.folder"


@dataclass(frozen=True)
class StoredFile:
    path: str
    location: str
    sha256: str
    size: int
    created: bool
    backend: str


class Storage(Protocol):
    def put(self, path: str, data: bytes, content_type: str, key: str) -> StoredFile: ...

    def exists(self, path: str) -> bool: ...


def split_path(path: str) -> list[str]:
    """Validate a relative storage path and return its segments."""
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or "\x00" in path
            or any(p in ("", ".", "..") for p in parts)):
        raise PermanentServiceError(f"invalid storage path: {path!r}")
    return parts


def suffixed_path(path: str, sha256: str) -> str:
    """`a/b/name.pdf` → `a/b/name~1a2b3c4d.pdf`: a name owned by this content."""
    pure = PurePosixPath(path)
    return str(pure.with_name(f"{pure.stem}~{sha256[:8]}{pure.suffix}"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- local ------------------------------------------------------------------------------

class LocalStorage:
    """Files under `root`, written atomically (temp file + fsync + os.replace).

    A small index under `root/.kyu/keys/` maps each key to its path, so a re-filed receipt is
    moved rather than copied.
    """

    backend = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _file(self, path: str) -> Path:
        return self.root.joinpath(*split_path(path))

    def _index(self, key: str) -> Path:
        digest = _sha256(key.encode("utf-8"))
        return self.root / ".kyu" / "keys" / digest[:2] / f"{digest}.json"

    @staticmethod
    def _atomic_write(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _file_sha(self, path: str) -> str | None:
        try:
            return _sha256(self._file(path).read_bytes())
        except FileNotFoundError:
            return None

    def _target(self, path: str, sha: str, own_sha: str | None) -> tuple[str, bool]:
        """(path to use, whether it already holds this content). `own_sha` is what this key
        last wrote at `path`, which it may overwrite."""
        current = self._file_sha(path)
        if current is None or current == sha or current == own_sha:
            return path, current == sha
        alt = suffixed_path(path, sha)
        return alt, self._file_sha(alt) == sha

    def exists(self, path: str) -> bool:
        return self._file(path).is_file()

    def put(self, path: str, data: bytes, content_type: str, key: str) -> StoredFile:
        try:
            return self._put(path, data, key)
        except OSError as exc:
            permanent = exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG)
            cls = PermanentServiceError if permanent else RetryableServiceError
            raise cls(f"local storage: {exc}", code=errno.errorcode.get(exc.errno or 0)) from exc

    def _put(self, path: str, data: bytes, key: str) -> StoredFile:
        split_path(path)
        sha = _sha256(data)
        index = self._index(key)
        previous: str | None = None
        previous_sha: str | None = None
        if index.is_file():
            record = json.loads(index.read_text(encoding="utf-8"))
            previous, previous_sha = record["path"], record["sha256"]
        target, present = self._target(path, sha, previous_sha if previous == path else None)
        created = False
        if previous and previous != target and self._file_sha(previous) == sha and not present:
            self._file(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._file(previous), self._file(target))  # re-filed: move, not copy
        elif not present:
            self._atomic_write(self._file(target), data)
            created = True
        if previous and previous != target:
            with contextlib.suppress(FileNotFoundError):
                self._file(previous).unlink()  # the key's old object is superseded
        self._atomic_write(index, json.dumps({"path": target, "sha256": sha}).encode())
        return StoredFile(target, str(self._file(target)), sha, len(data), created, self.backend)


# --- Google Drive -----------------------------------------------------------------------

def drive_q_literal(value: str) -> str:
    """Quote a string for a Drive `q` expression (escape backslash and single quote)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_DRIVE_RETRYABLE_403 = frozenset(
    {"userRateLimitExceeded", "rateLimitExceeded", "sharingRateLimitExceeded", "backendError"})


def classify_drive_error(exc: BaseException) -> Exception:
    """Map a googleapiclient/google-auth/transport exception to a service error."""
    from google.auth.exceptions import RefreshError
    from googleapiclient.errors import HttpError

    if isinstance(exc, RefreshError):
        return PermanentServiceError(f"drive: credentials need re-authorization: {exc}",
                                     code="refresh_error")
    if isinstance(exc, HttpError):
        status = int(exc.resp.status)
        reason = None
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            reason = json.loads(exc.content)["error"]["errors"][0]["reason"]
        message = f"drive {status} {reason or ''}: {exc.reason}".strip()
        if status == 429 or status >= 500 or (status == 403 and reason in _DRIVE_RETRYABLE_403):
            return RetryableServiceError(message, code=reason)
        return PermanentServiceError(message, code=reason)  # 400/401/404, 403 quota/permission
    if isinstance(exc, (OSError, TimeoutError)):
        return RetryableServiceError(f"drive transport: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class DriveStorage:
    """Google Drive v3. Folders are found by name + parent before being created; files by
    `appProperties.kyu_key`. `service` is `googleapiclient.discovery.build("drive", "v3", ...)`.
    Keys longer than 100 bytes are stored hashed (appProperties entries are capped at 124 bytes).
    """

    backend = "drive"

    def __init__(self, service: Any, root_folder_id: str, *, drive_id: str | None = None,
                 num_retries: int = 5, resumable_over: int = 5 * 1024 * 1024) -> None:
        self.service = service
        self.root_folder_id = root_folder_id
        self.drive_id = drive_id
        self.num_retries = num_retries
        self.resumable_over = resumable_over
        self._folders: dict[tuple[str, ...], str] = {}

    def _exec(self, request: Any) -> Any:
        try:
            return request.execute(num_retries=self.num_retries)
        except Exception as exc:  # noqa: BLE001 - classified below
            raise classify_drive_error(exc) from exc

    def _list(self, q: str, fields: str) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {"corpora": "drive", "driveId": self.drive_id} \
            if self.drive_id else {}
        result = self._exec(self.service.files().list(
            q=q, fields=f"files({fields})", pageSize=10, supportsAllDrives=True,
            includeItemsFromAllDrives=True, **extra))
        return list(result.get("files", []))

    def _kyu_key(self, key: str) -> str:
        return key if len(key.encode("utf-8")) <= 100 else "sha256:" + _sha256(key.encode())

    def _folder(self, parts: list[str], create: bool) -> str | None:
        parent = self.root_folder_id
        for depth in range(1, len(parts) + 1):
            cache_key = tuple(parts[:depth])
            if cache_key in self._folders:
                parent = self._folders[cache_key]
                continue
            name = parts[depth - 1]
            found = self._list(
                f"name = {drive_q_literal(name)} and {drive_q_literal(parent)} in parents and "
                f"mimeType = '{FOLDER_MIME}' and trashed = false", "id, name")
            if found:
                folder_id = str(found[0]["id"])
            elif create:
                folder_id = str(self._exec(self.service.files().create(
                    body={"name": name, "mimeType": FOLDER_MIME, "parents": [parent]},
                    fields="id", supportsAllDrives=True))["id"])
            else:
                return None
            self._folders[cache_key] = parent = folder_id
        return parent

    def _media(self, data: bytes, content_type: str) -> Any:
        from googleapiclient.http import MediaInMemoryUpload

        return MediaInMemoryUpload(data, mimetype=content_type,
                                   resumable=len(data) > self.resumable_over)

    def exists(self, path: str) -> bool:
        parts = split_path(path)
        parent = self._folder(parts[:-1], create=False)
        if parent is None:
            return False
        return bool(self._list(f"name = {drive_q_literal(parts[-1])} and "
                               f"{drive_q_literal(parent)} in parents and trashed = false", "id"))

    def put(self, path: str, data: bytes, content_type: str, key: str) -> StoredFile:
        parts = split_path(path)
        sha, md5 = _sha256(data), hashlib.md5(data).hexdigest()  # noqa: S324 - Drive's checksum
        kyu_key = self._kyu_key(key)
        fields = "id, name, parents, md5Checksum, appProperties"
        by_key = self._list("appProperties has { key='kyu_key' and value="
                            f"{drive_q_literal(kyu_key)} }} and trashed = false", fields)
        parent = self._folder(parts[:-1], create=True)
        assert parent is not None
        name = parts[-1]
        prefix = "/".join(parts[:-1])

        def stored(file: dict[str, Any], file_name: str, created: bool) -> StoredFile:
            return StoredFile(f"{prefix}/{file_name}" if prefix else file_name, str(file["id"]),
                              sha, len(data), created, self.backend)

        if by_key:
            file = by_key[0]
            same = file.get("md5Checksum") == md5
            if same and file.get("name") == name and parent in file.get("parents", []):
                return stored(file, name, False)
            stale = [p for p in file.get("parents", []) if p != parent]
            moves = {"addParents": parent, "removeParents": ",".join(stale)} if stale else {}
            request = self.service.files().update(
                fileId=file["id"], body={"name": name, "appProperties": {"kyu_sha256": sha}},
                media_body=None if same else self._media(data, content_type),
                fields="id, name, parents", supportsAllDrives=True, **moves)
            return stored(self._exec(request), name, not same)
        for candidate in (name, PurePosixPath(suffixed_path(f"x/{name}", sha)).name):
            clash = self._list(f"name = {drive_q_literal(candidate)} and "
                               f"{drive_q_literal(parent)} in parents and trashed = false", fields)
            same = [f for f in clash if f.get("md5Checksum") == md5]
            if same:  # written by an earlier attempt that died before tagging: adopt it
                self._exec(self.service.files().update(
                    fileId=same[0]["id"], body={"appProperties": {"kyu_key": kyu_key,
                                                                   "kyu_sha256": sha}},
                    fields="id", supportsAllDrives=True))
                return stored(same[0], candidate, False)
            if not clash:
                name = candidate
                break
        else:
            name = PurePosixPath(suffixed_path(f"x/{name}", sha)).name
        body = {"name": name, "parents": [parent], "mimeType": content_type,
                "appProperties": {"kyu_key": kyu_key, "kyu_sha256": sha}}
        created = self._exec(self.service.files().create(
            body=body, media_body=self._media(data, content_type), fields="id, name, parents",
            supportsAllDrives=True))
        return stored(created, name, True)


# --- Supabase Storage -------------------------------------------------------------------

_SUPABASE_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_!-.*'() &$@=;:+,?")


def supabase_object_key(path: str) -> str:
    """Supabase rejects non-ASCII object keys (InvalidKey, supabase/storage#133), so a segment
    with other characters is stored as `xn--` + punycode: deterministic and reversible."""
    out = []
    for segment in split_path(path):
        if all(c in _SUPABASE_SAFE for c in segment):
            out.append(segment)
            continue
        ascii_safe = "".join(c if ord(c) > 127 or c in _SUPABASE_SAFE else "_" for c in segment)
        out.append("xn--" + ascii_safe.encode("punycode").decode("ascii"))
    return "/".join(out)


def classify_supabase_error(exc: BaseException) -> Exception:
    import httpx
    from storage3.exceptions import StorageApiError

    if isinstance(exc, StorageApiError):
        try:
            status = int(exc.status)
        except (TypeError, ValueError):
            status = 500
        message = f"supabase storage {status} {exc.code}: {exc.message}"
        if status == 429 or status >= 500 or status == 409:
            return RetryableServiceError(message, code=str(exc.code))
        return PermanentServiceError(message, code=str(exc.code))  # 400/401/403/404/413
    if isinstance(exc, httpx.TransportError):
        return RetryableServiceError(f"supabase transport: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class SupabaseStorage:
    """A Supabase Storage bucket (`storage3` bucket proxy: `client.storage.from_("receipts")`
    or `SyncStorageClient(url, headers).from_(bucket)`). Uploads use `upsert: "true"`; the
    key and logical path travel as object metadata."""

    backend = "supabase"

    def __init__(self, bucket: Any) -> None:
        self.bucket = bucket

    def _info(self, object_key: str) -> dict[str, Any] | None:
        from storage3.exceptions import StorageApiError

        try:
            return dict(self.bucket.info(object_key))
        except StorageApiError as exc:
            if str(exc.status) == "404":
                return None
            raise classify_supabase_error(exc) from exc
        except Exception as exc:  # noqa: BLE001
            raise classify_supabase_error(exc) from exc

    @staticmethod
    def _same(info: dict[str, Any], sha: str, md5: str) -> bool:
        meta = info.get("metadata") or info.get("user_metadata") or {}
        etag = str(info.get("etag") or "").strip('"')
        return (isinstance(meta, dict) and meta.get("kyu_sha256") == sha) or etag == md5

    def exists(self, path: str) -> bool:
        return self._info(supabase_object_key(path)) is not None

    def put(self, path: str, data: bytes, content_type: str, key: str) -> StoredFile:
        sha, md5 = _sha256(data), hashlib.md5(data).hexdigest()  # noqa: S324 - S3 ETag
        target = path
        info = self._info(supabase_object_key(target))
        if info is not None and self._same(info, sha, md5):
            return StoredFile(target, supabase_object_key(target), sha, len(data), False,
                              self.backend)
        if info is not None:
            target = suffixed_path(path, sha)  # content-addressed: safe to upsert
        object_key = supabase_object_key(target)
        options = {"content-type": content_type, "upsert": "true",
                   "metadata": {"kyu_key": key, "kyu_sha256": sha, "path": target}}
        try:
            self.bucket.upload(object_key, data, options)
        except Exception as exc:  # noqa: BLE001
            raise classify_supabase_error(exc) from exc
        return StoredFile(target, object_key, sha, len(data), True, self.backend)
