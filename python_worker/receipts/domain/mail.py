"""Email intake: parse raw RFC 5322 messages, find receipt parts, read mail sources.

Public API (pure, no database):

- `parse_message(raw: bytes) -> ParsedMail`: headers, bodies and receipt attachments.
- `decode_text(data: bytes, charset: str | None) -> str`: body/attachment-name decoding with the
  Japanese fixes below. `decode_iso2022jp(data) -> str` is the CP50220-tolerant decoder.
- `decode_header_value(raw: str) -> str`: RFC 2047 header decoding with the same charset rules.
- `is_html_only_receipt(mail) -> bool` and `render_html_to_pdf(html: str) -> bytes`: e-commerce
  receipts that are an HTML body with no attachment become a PDF file (weasyprint, IPAGothic).
- `iter_eml_dir(path) -> Iterator[tuple[str, bytes]]`: sorted `.eml` files, key = relative path.
- `imap_source_key(...)`, `iter_imap(mailbox, account, folder, ...)`: raw messages from an
  already logged-in imap-tools `MailBox`, key `account/mailbox/UIDVALIDITY/UID`.

Parsing uses `email` with the compat32 policy and decodes every header by hand: policy.default
raises UnicodeDecodeError on RFC 2231 ISO-2022-JP parameters holding ① or 髙 (checked).

Charsets (receipts-domain.md §3): Python's iso2022_jp codecs reject NEC row 13 and IBM
extension characters (①, ㈱, 髙) that Windows mailers (CP50220) emit, so ISO-2022-JP falls back to
JIS→Shift_JIS arithmetic plus cp932; Shift_JIS aliases decode as cp932; EUC-JP falls back to
euc_jis_2004.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime, unquote
from pathlib import Path
from typing import Any

RECEIPT_CONTENT_TYPES = frozenset(
    {"application/pdf", "image/jpeg", "image/png", "image/tiff", "image/heic"}
)
_EXT_BY_TYPE = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/tiff": "tiff",
    "image/heic": "heic",
}
_ISO2022JP_NAMES = frozenset(
    {"iso-2022-jp", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3", "iso-2022-jp-2004",
     "iso-2022-jp-ms", "csiso2022jp", "cp50220", "cp50221", "cp50222"}
)
_SJIS_NAMES = frozenset(
    {"shift_jis", "shift-jis", "sjis", "x-sjis", "windows-31j", "cp932", "ms932", "ms_kanji",
     "csshiftjis", "shift_jisx0213", "x-ms-cp932"}
)
_EUCJP_NAMES = frozenset({"euc-jp", "euc_jp", "eucjp", "x-euc-jp", "cseucpkdfmtjapanese",
                          "eucjp-ms", "euc-jp-ms"})


@dataclass(frozen=True)
class Attachment:
    """One receipt-bearing MIME part."""

    filename: str
    content_type: str
    data: bytes
    sha256: str


@dataclass(frozen=True)
class ParsedMail:
    """The facts of one message that the intake handler stores."""

    message_id: str | None
    from_addr: str | None
    subject: str
    date: datetime | None  # tz-aware; None when missing or unparsable
    raw_sha256: str
    text_body: str | None
    html_body: str | None
    attachments: tuple[Attachment, ...]
    from_name: str | None = None  # the display name of From:, decoded


# --- charset decoding -------------------------------------------------------------------

def _norm_charset(charset: str | None) -> str:
    cs = (charset or "").strip().strip('"').lower()
    return cs if cs.isascii() and cs.isprintable() else ""


def decode_iso2022jp(data: bytes) -> str:
    """Decode ISO-2022-JP including NEC/IBM extensions, via JIS→Shift_JIS and cp932.

    Tracks the ESC designations ($@ $B: JIS X 0208; (B (J: ASCII/Roman; (I and SO/SI:
    half-width katakana). JIS X 0212 ($(D) has no cp932 mapping and becomes U+FFFD.
    """
    out = bytearray()
    mode = "ascii"
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x1B:
            seq3 = data[i + 1:i + 3]
            if seq3 in (b"$B", b"$@"):
                mode, i = "jis", i + 3
                continue
            if seq3 in (b"(B", b"(J"):
                mode, i = "ascii", i + 3
                continue
            if seq3 == b"(I":
                mode, i = "kana", i + 3
                continue
            if data[i + 1:i + 4] == b"$(D":
                mode, i = "x0212", i + 4
                continue
            out.append(b)
            i += 1
            continue
        if b == 0x0E:  # SO: half-width katakana until SI
            mode, i = "kana", i + 1
            continue
        if b == 0x0F:
            mode, i = "ascii", i + 1
            continue
        if b in (0x0A, 0x0D):
            # ISO-2022-JP returns to ASCII at line ends in practice; be lenient.
            out.append(b)
            i += 1
            continue
        if mode in ("jis", "x0212") and i + 1 < n and 0x21 <= b <= 0x7E:
            j1, j2 = b, data[i + 1]
            if mode == "x0212" or not 0x21 <= j2 <= 0x7E:
                out += "\ufffd".encode("cp932", errors="replace")
            else:
                s1 = (j1 + 1) // 2 + (0x70 if j1 <= 0x5E else 0xB0)
                if j1 % 2:
                    s2 = j2 + (0x1F if j2 <= 0x5F else 0x20)
                else:
                    s2 = j2 + 0x7E
                out += bytes((s1, s2))
            i += 2
            continue
        if mode == "kana" and 0x21 <= b <= 0x5F:
            out.append(b + 0x80)
            i += 1
            continue
        out.append(b)
        i += 1
    return out.decode("cp932", errors="replace")


def decode_text(data: bytes, charset: str | None) -> str:
    """Decode bytes labelled with `charset`, with the Japanese fallbacks of this module."""
    cs = _norm_charset(charset)
    if cs in _ISO2022JP_NAMES:
        try:
            return data.decode("iso2022_jp_2")  # exact standard mapping when possible
        except UnicodeDecodeError:
            return decode_iso2022jp(data)
    if cs in _SJIS_NAMES:
        return data.decode("cp932", errors="replace")
    if cs in _EUCJP_NAMES:
        for codec in ("euc_jp", "euc_jis_2004"):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                pass
        return data.decode("euc_jis_2004", errors="replace")
    if not cs or cs in ("us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            # Unlabelled 8-bit Japanese mail is nearly always Shift_JIS.
            return data.decode("cp932", errors="replace")
    try:
        return data.decode(cs, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def decode_header_value(raw: str) -> str:
    """Decode an RFC 2047 header value (encoded-words in any charset) to text."""
    # Unfold first; decode_header works on the logical line.
    unfolded = re.sub(r"\r?\n[ \t]+", " ", raw)
    try:
        chunks = decode_header(unfolded)
    except (HeaderParseError, ValueError, LookupError):
        return unicodedata.normalize("NFC", unfolded).strip()  # keep the raw text
    parts: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            if charset is None:
                text = chunk.decode("utf-8", errors="surrogateescape")
            else:
                text = decode_text(chunk, charset)
        else:
            text = chunk
        if any("\udc80" <= c <= "\udcff" for c in text):
            # 8-bit bytes put raw into a header (RFC 6532 or a broken mailer).
            text = decode_text(text.encode("utf-8", "surrogateescape"), None)
        parts.append(text)
    return unicodedata.normalize("NFC", "".join(parts)).strip()


# --- parsing ----------------------------------------------------------------------------

def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_text(payload, part.get_content_charset())


def _filename(part: Message, index: int, content_type: str) -> str:
    name: str | None = None
    value = part.get_param("filename", header="content-disposition") or part.get_param(
        "name", header="content-type")
    if isinstance(value, tuple):  # RFC 2231: (charset, language, %-decoded latin-1 text)
        name = decode_text(bytes(value[2], "raw-unicode-escape"), value[0] or None)
    elif isinstance(value, str) and value:
        name = decode_header_value(unquote(value))
    if not name:
        name = f"attachment-{index}.{_EXT_BY_TYPE.get(content_type, 'bin')}"
    return unicodedata.normalize("NFC", name)


def _is_receipt_part(content_type: str, filename: str) -> bool:
    if content_type in RECEIPT_CONTENT_TYPES:
        return True
    return content_type == "application/octet-stream" and filename.lower().endswith(".pdf")


def _effective_type(content_type: str, filename: str) -> str:
    if content_type == "application/octet-stream" and filename.lower().endswith(".pdf"):
        return "application/pdf"
    return content_type


def _walk_leaves(part: Message, in_related: bool = False) -> Iterator[tuple[Message, bool]]:
    if part.is_multipart():
        related = in_related or part.get_content_type() == "multipart/related"
        for sub in part.get_payload():  # type: ignore[union-attr]
            if isinstance(sub, Message):
                yield from _walk_leaves(sub, related)
    else:
        yield part, in_related


def _parse_date(msg: Message) -> datetime | None:
    raw = _raw_header(msg, "date")
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return value if value.tzinfo is not None else None  # "-0000" means unknown zone


def parse_message(raw: bytes) -> ParsedMail:
    """Parse raw message bytes. Never raises on malformed input; missing fields are None."""
    # compat32 on purpose: policy.default builds header objects that raise UnicodeDecodeError
    # on RFC 2231 ISO-2022-JP parameters holding ① or 髙; here every header is decoded by hand.
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    subject = decode_header_value(_raw_header(msg, "subject") or "")
    from_raw = _raw_header(msg, "from")
    from_addr = from_name = None
    if from_raw:
        addrs = getaddresses([decode_header_value(from_raw)])
        from_addr = next((a for _, a in addrs if "@" in a), None)
        from_name = next((n.strip() for n, a in addrs if "@" in a and n.strip()), None)
    mid_raw = _raw_header(msg, "message-id")
    message_id = mid_raw.strip() if mid_raw else None

    text_body: str | None = None
    html_body: str | None = None
    attachments: list[Attachment] = []
    for index, (part, in_related) in enumerate(_walk_leaves(msg), start=1):
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        if ctype in ("text/plain", "text/html") and disposition != "attachment":
            if ctype == "text/plain" and text_body is None:
                text_body = _part_text(part)
            elif ctype == "text/html" and html_body is None:
                html_body = _part_text(part)
            continue
        name = _filename(part, index, ctype)
        if not _is_receipt_part(ctype, name):
            continue
        if in_related and part.get("content-id") and disposition != "attachment":
            continue  # a logo referenced by the HTML body, not a receipt
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            continue
        attachments.append(Attachment(name, _effective_type(ctype, name), data,
                                      hashlib.sha256(data).hexdigest()))
    return ParsedMail(
        message_id=message_id,
        from_addr=from_addr,
        from_name=from_name,
        subject=subject,
        date=_parse_date(msg),
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        text_body=text_body,
        html_body=html_body,
        attachments=tuple(attachments),
    )


# --- HTML-only receipts -----------------------------------------------------------------

_RECEIPT_WORDS = re.compile(
    r"領収|合計|請求|ご注文|ご購入|お支払|金額|receipt|invoice|order|total|amount", re.I)
_AMOUNT = re.compile(r"[¥￥]\s*[\d０-９]|[\d０-９][\d,，０-９]*\s*円|JPY\s*[\d]", re.I)
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.I | re.S)

PDF_STYLESHEET = """
@page { size: A4; margin: 15mm; }
html, body { font-family: 'IPAGothic', 'IPAPGothic', sans-serif; font-size: 10.5pt; }
img { max-width: 100%; }
"""


def html_to_text(html: str) -> str:
    """Visible text of an HTML body (tags removed); enough for field extraction."""
    import html as html_mod

    text = re.sub(r"<br\s*/?>|</(p|div|tr|li|h\d|table)>", "\n", html, flags=re.I)
    text = _TAGS.sub(" ", text)
    text = html_mod.unescape(text)
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def is_html_only_receipt(mail: ParsedMail) -> bool:
    """True when the message has no receipt attachment and its HTML body looks like a receipt
    (a receipt word and a yen amount), so the body itself must be kept as the receipt file."""
    if mail.attachments or not mail.html_body:
        return False
    text = html_to_text(mail.html_body)
    return bool(_RECEIPT_WORDS.search(text) and _AMOUNT.search(text))


def render_html_to_pdf(html: str) -> bytes:
    """Render an HTML receipt to PDF with a Japanese font.

    Remote and file: URLs are never fetched (an email must not make the worker call out or
    read local files); only data: URIs load. Raises OSError if weasyprint's system libraries
    are missing.
    """
    from weasyprint import CSS, HTML
    from weasyprint.urls import URLFetcher

    fetcher = URLFetcher(allowed_protocols=["data"], fail_on_errors=False)
    document = HTML(string=html, url_fetcher=fetcher, base_url=None)
    return document.write_pdf(stylesheets=[CSS(string=PDF_STYLESHEET)])  # type: ignore[no-any-return]


# --- sources ----------------------------------------------------------------------------

def iter_eml_dir(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """Yield `(relative posix path, raw bytes)` for every `*.eml` under `path`, sorted."""
    root = Path(path)
    for file in sorted(root.rglob("*.eml"), key=lambda p: p.relative_to(root).as_posix()):
        if file.is_file():
            yield file.relative_to(root).as_posix(), file.read_bytes()


def imap_source_key(account: str, mailbox: str, uidvalidity: int, uid: int | str) -> str:
    """The idempotency key of an IMAP message. A new UIDVALIDITY invalidates every UID."""
    return f"{account}/{mailbox}/{int(uidvalidity)}/{int(uid)}"


def iter_imap(
    mailbox: Any,
    account: str,
    folder: str = "INBOX",
    criteria: Any = "ALL",
    bulk: int = 50,
) -> Iterator[tuple[str, bytes]]:
    """Yield `(imap_source_key, raw bytes)` from a logged-in `imap_tools.MailBox`.

    Fetches with BODY.PEEK (mark_seen=False) and keeps the exact raw bytes, since
    imap-tools otherwise re-parses them with the compat32 policy. Connection and login are the
    caller's (`MailBox(host).login(user, pw)` or `.xoauth2(user, token)`): IMAP errors such as
    `imaplib.IMAP4.abort` propagate unchanged.
    """
    from imap_tools import MailMessage

    class _RawMessage(MailMessage):
        def __init__(self, fetch_data: list[Any]) -> None:
            super().__init__(fetch_data)
            self.raw_bytes: bytes = self._get_message_data_parts(fetch_data)[0]

    mailbox.folder.set(folder)
    status = mailbox.folder.status(folder, ["UIDVALIDITY"])
    uidvalidity = int(status["UIDVALIDITY"])
    mailbox.email_message_class = _RawMessage
    for message in mailbox.fetch(criteria, mark_seen=False, bulk=bulk):
        if message.uid is None:
            continue
        yield imap_source_key(account, folder, uidvalidity, message.uid), message.raw_bytes
