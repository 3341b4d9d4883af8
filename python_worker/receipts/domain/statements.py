"""Bank and card statement CSVs → transaction lines, whatever the bank's export looks like.

Public API (pure, no database):

- `Profile`: how one export shape is read (columns, sign convention, account kind); a pydantic
  model, so a saved profile (JSON) that names an unknown key or lacks a column is refused
  with the field's name. `BUILTIN_PROFILES`: `generic`, `bank-jp`, `card-jp`.
- `load_profile(name_or_path) -> Profile`, `decode_csv(data, encoding=None) -> (text, encoding)`,
  `read_statement(data, profile, *, account=None) -> list[StatementLine]`,
  `parse_yen(text) -> int | None`, `parse_day(text) -> date`.
- `StatementError`: bad input, with the row number and column that were wrong.

Encodings: a UTF-8 BOM, then strict UTF-8, then strict cp932 (Shift_JIS as Windows writes it,
with ①, ㈱, ～). Strict decoding is exact for these three: a cp932 file with kana is never valid
UTF-8, and a detector (charset-normalizer) guessed wrong on short all-ASCII-plus-few-kana files
where the strict order cannot. Any other encoding is named with `encoding=`.

Amounts: NFKC first (full-width digits, ￥, ，), then yen signs, 円, commas and spaces are
dropped; `-`, `▲`, `△` or parentheses mean negative. A line has either one signed amount
(`amount`, with `expense_sign` saying which sign is money out) or a debit column (money out)
and a credit column (money in).

Ids: a file's own id column when the profile names one; otherwise a content id,
SHA-256 of (account, date, signed amount, description, n) where n counts identical earlier
lines in the same file, so two ¥1,100 taxis on one day stay two lines and re-importing the
same file yields the same ids (adds nothing).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class StatementError(ValueError):
    """The file or the profile does not fit: the message names the row and column."""


class Profile(BaseModel):
    """Column names are matched after NFKC and trimming (全角 headers match half-width)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    account_kind: Literal["bank", "card"]
    date: str
    description: list[str]  # the first is required; more are joined when present (摘要, メモ)
    amount: str | None = None  # one signed column ...
    expense_sign: Literal["positive", "negative"] = "negative"
    debit: str | None = None  # ... or money out ...
    credit: str | None = None  # ... and money in
    id: str | None = None  # the file's own line id, when it has one
    kind_column: str | None = None  # a column saying bank or card per line, when there is one
    encoding: str | None = None  # None: detect (UTF-8 with or without BOM, cp932)

    @model_validator(mode="after")
    def _one_amount_shape(self) -> Profile:
        if (self.amount is None) == (self.debit is None and self.credit is None):
            raise ValueError("give either amount (signed) or debit/credit columns, not both")
        if not self.description:
            raise ValueError("description needs at least one column")
        return self


BUILTIN_PROFILES: dict[str, Profile] = {
    # the demo's CSV and any hand-made file: date, amount (positive = spent), description
    "generic": Profile(name="generic", account_kind="card", date="date", amount="amount",
                       expense_sign="positive", description=["description"], id="external_id",
                       kind_column="account_kind"),
    # 普通預金 入出金明細 as Japanese net banks export it: cp932, a preamble, 引出/預入 columns
    "bank-jp": Profile(name="bank-jp", account_kind="bank", date="取引日",
                       description=["摘要", "メモ"], debit="お引出し", credit="お預入れ"),
    # カード利用明細: ご利用日, 利用店名, signed 利用金額 (返品 negative), no line id
    "card-jp": Profile(name="card-jp", account_kind="card", date="ご利用日",
                       description=["ご利用店名・商品名"], amount="ご利用金額",
                       expense_sign="positive"),
}


@dataclass(frozen=True)
class StatementLine:
    external_id: str
    account_kind: Literal["bank", "card"]
    txn_date: date
    amount_yen: int  # positive
    entry_side: Literal["expense", "income"]
    description: str
    row: int  # 1-based line number in the file


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a saved one from a JSON file."""
    if name_or_path in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise StatementError(f"unknown profile {name_or_path!r}: not one of "
                             f"{', '.join(BUILTIN_PROFILES)} and no such file")
    try:
        return Profile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise StatementError(f"profile {path}: {exc}") from None


def decode_csv(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding used)."""
    if encoding:
        try:
            return data.decode(encoding), encoding
        except (LookupError, UnicodeDecodeError) as exc:
            raise StatementError(f"cannot decode as {encoding}: {exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    for candidate in ("utf-8", "cp932"):
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    raise StatementError("neither UTF-8 nor cp932 (Shift_JIS): pass the encoding explicitly")


_NEGATIVE = re.compile(r"^\s*(?:-|▲|△)|^\s*\(.*\)\s*$")


def parse_yen(text: str) -> int | None:
    """'￥３，８２０' → 3820, '▲1,100' → -1100, '' → None; anything else is an error."""
    t = unicodedata.normalize("NFKC", text or "").strip()
    if not t:
        return None
    negative = bool(_NEGATIVE.match(t))
    digits = re.sub(r"[¥\\,\s円()\-▲△+]", "", t)
    if not digits.isdigit():
        raise StatementError(f"not a yen amount: {text!r}")
    value = int(digits)
    return -value if negative else value


_DAY = re.compile(r"^(\d{4})\s*[年/.\-]\s*(\d{1,2})\s*[月/.\-]\s*(\d{1,2})\s*日?")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_ERA_DAY = re.compile(r"^(令和|R)\s*(\d{1,2}|元)\s*[年/.\-]\s*(\d{1,2})\s*[月/.\-]\s*(\d{1,2})")


def parse_day(text: str) -> date:
    """'2026/04/03', '2026-4-3', '2026年4月3日', '20260403', '令和8年4月3日', 'R8.4.3'."""
    t = unicodedata.normalize("NFKC", text or "").strip()
    m = _DAY.match(t) or _COMPACT.match(t)
    try:
        if m:
            return date(int(m[1]), int(m[2]), int(m[3]))
        if (e := _ERA_DAY.match(t)) is not None:
            year = 2018 + (1 if e[2] == "元" else int(e[2]))
            return date(year, int(e[3]), int(e[4]))
    except ValueError:
        pass
    raise StatementError(f"not a date: {text!r}")


def _key(header: str) -> str:
    return unicodedata.normalize("NFKC", header).strip().strip("\ufeff")


def _find_header(rows: list[list[str]], needed: list[str]) -> int:
    wanted = {_key(n) for n in needed}
    for index, row in enumerate(rows[:30]):
        if wanted <= {_key(c) for c in row}:
            return index
    first = rows[0] if rows else []
    raise StatementError(f"no header row with the columns {', '.join(needed)} "
                         f"(first row: {', '.join(first)[:120]!r}); choose a profile or "
                         "name the columns")


def _content_id(account: str, day: date, signed: int, description: str, n: int) -> str:
    raw = f"{account}\x1f{day.isoformat()}\x1f{signed}\x1f{description}\x1f{n}"
    return "sha:" + hashlib.sha256(raw.encode()).hexdigest()[:20]


def read_statement(data: bytes, profile: Profile, *, account: str | None = None,
                   ) -> list[StatementLine]:
    """Every money line of the file; blank lines and lines with no amount are skipped."""
    text, _ = decode_csv(data, profile.encoding)
    rows = list(csv.reader(io.StringIO(text)))
    optional = [c for c in (profile.id,) if c]
    needed = [profile.date, profile.description[0],
              *[c for c in (profile.amount, profile.debit, profile.credit) if c]]
    start = _find_header(rows, needed)
    header = {_key(c): i for i, c in enumerate(rows[start])}
    has_id = all(_key(c) in header for c in optional) and bool(optional)
    has_kind = profile.kind_column is not None and _key(profile.kind_column) in header
    account = account or profile.name
    seen: dict[tuple[date, int, str], int] = {}
    out: list[StatementLine] = []

    def cell(row: list[str], column: str | None) -> str:
        if column is None:
            return ""
        i = header[_key(column)]
        return row[i].strip() if i < len(row) else ""

    for number, row in enumerate(rows[start + 1:], start=start + 2):
        if not any(c.strip() for c in row):
            continue
        try:
            day = parse_day(cell(row, profile.date))
            if profile.amount is not None:
                value = parse_yen(cell(row, profile.amount))
                if value is None:
                    continue
                spent = value if profile.expense_sign == "positive" else -value
            else:
                out_yen = parse_yen(cell(row, profile.debit)) or 0
                in_yen = parse_yen(cell(row, profile.credit)) or 0
                if out_yen and in_yen:
                    raise StatementError("both a debit and a credit amount")
                spent = out_yen - in_yen
        except StatementError as exc:
            raise StatementError(f"line {number}: {exc}") from None
        if spent == 0:
            continue
        description = " ".join(
            d for d in (cell(row, c) for c in profile.description if _key(c) in header) if d)
        if has_id and cell(row, profile.id):
            external_id = cell(row, profile.id)
        else:
            key = (day, spent, description)
            seen[key] = seen.get(key, 0) + 1
            external_id = _content_id(account, day, spent, description, seen[key])
        kind = cell(row, profile.kind_column) if has_kind else ""
        out.append(StatementLine(external_id, kind if kind in ("bank", "card")  # type: ignore[arg-type]
                                 else profile.account_kind, day, abs(spent),
                                 "expense" if spent > 0 else "income", description, number))
    return out
