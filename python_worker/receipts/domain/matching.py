"""Match one receipt to bank/card transactions: amount gate, date window, vendor similarity.

Public API (pure, no database):

- `match_receipt(receipt: ReceiptFacts, candidates: Iterable[Transaction], *,
  config: MatchConfig = MatchConfig(), aliases: Mapping[str, Iterable[str]] | None = None,
  existing: Iterable[ExistingDecision] = (), taken: Collection[str] = ()) -> MatchResult`
- `normalize_vendor(text: str) -> str`: NFKC, upper case, katakana, large kana, no legal-form
  tokens, no 振込 prefix, no spaces or punctuation. `vendor_similarity(a, b) -> float` (0..1).
- Data: `ReceiptFacts(total, issue_date, vendor)`, `Transaction(id, account_kind, date, amount,
  description, entry_side="expense")`, `ExistingDecision(transaction_id, status)`,
  `DateWindow(before, after)`, `MatchConfig(...)`, `Candidate`, `ScoreComponents`,
  `MatchResult(status, transaction_id, candidates, reasons)`.

Rules (receipts-domain.md §5): the amount is a hard gate (|txn.amount| == total, expense side);
the date must fall in the account's window (card lines post late, bank debits sooner: both
configurable, e.g. widen bank to (3, 60) for invoices paid by transfer); the score is
`w_amount·1 + w_date·(1 − |Δd|/(span+1)) + w_vendor·similarity`.
Bands: `auto` needs score ≥ auto_threshold, a lead ≥ auto_margin over the runner-up, no tie and
a transaction not already taken; `suggested` (top 3) when ≥ suggest_threshold or on a tie;
otherwise `unmatched`. A user's decision wins: a confirmed pair is returned as is, rejected
pairs are never proposed again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from rapidfuzz import fuzz

AccountKind = Literal["bank", "card"]
Status = Literal["auto", "suggested", "unmatched", "confirmed"]


@dataclass(frozen=True)
class ReceiptFacts:
    total: int | None
    issue_date: date | None
    vendor: str | None
    due_date: date | None = None  # an invoice's payment due date: bank transfers pay by it


@dataclass(frozen=True)
class Transaction:
    id: str
    account_kind: AccountKind
    date: date
    amount: int
    description: str
    entry_side: Literal["expense", "income"] = "expense"


@dataclass(frozen=True)
class ExistingDecision:
    transaction_id: str
    status: Literal["confirmed", "rejected", "auto", "suggested"]


@dataclass(frozen=True)
class DateWindow:
    """Days the transaction may precede (`before`) or follow (`after`) the receipt date."""

    before: int
    after: int


@dataclass(frozen=True)
class MatchConfig:
    windows: Mapping[str, DateWindow] = field(default_factory=lambda: {
        "card": DateWindow(before=1, after=7),  # card feeds may carry the posting date
        "bank": DateWindow(before=1, after=3),  # debit/口座振替 lines post within days
        # an invoice paid by transfer: around its due date, often some days early
        "bank_due": DateWindow(before=20, after=5),
    })
    w_amount: float = 0.5
    w_date: float = 0.3
    w_vendor: float = 0.2
    auto_threshold: float = 0.85
    auto_margin: float = 0.10
    suggest_threshold: float = 0.6
    max_suggestions: int = 3


@dataclass(frozen=True)
class ScoreComponents:
    amount: float
    date: float
    vendor: float
    days_delta: int
    vendor_method: Literal["fuzzy", "alias", "none"]


@dataclass(frozen=True)
class Candidate:
    transaction_id: str
    score: float
    components: ScoreComponents


@dataclass(frozen=True)
class MatchResult:
    status: Status
    transaction_id: str | None
    candidates: list[Candidate]
    reasons: list[str]


# --- vendor normalisation ---------------------------------------------------------------

_SMALL_KANA = str.maketrans("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ")
# Longest first, so カブシキガイシヤ goes before カ).
_LEGAL_TOKENS = sorted([
    "株式会社", "有限会社", "合同会社", "合資会社", "(株)", "(有)", "(同)", "カブシキガイシヤ",
    "カブシキカイシヤ", "ユウゲンガイシヤ", "ゴウドウガイシヤ", "カ)", "(カ", "ユ)", "(ユ",
], key=len, reverse=True)
# Latin forms only as whole words: "INC" must not be cut out of "PRINCE".
_LEGAL_LATIN = re.compile(
    r"(?<![A-Z0-9])(?:CO\.?,?\s*LTD\.?|INC\.?|LLC|K\.K\.|CORPORATION|CORP\.?|LTD\.?)(?![A-Z0-9])")
_PREFIXES = re.compile(r"^(?:振込|フリコミ|振替|カード|VISA|MASTER|JCB|AMEX|デビツト)\s*")
_PUNCT = re.compile(r"[\W_]+")


def normalize_vendor(text: str) -> str:
    """Comparable form of a vendor or transaction description (may be empty)."""
    t = unicodedata.normalize("NFKC", text).upper()
    t = "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in t)
    t = t.translate(_SMALL_KANA).replace("ー", "")  # bank feeds write the long vowel as "-"
    t = _PREFIXES.sub("", t.strip())
    for token in _LEGAL_TOKENS:
        t = t.replace(token, " ")
    t = _LEGAL_LATIN.sub(" ", t)
    return _PUNCT.sub("", t)


def romanize(normalized: str) -> str:
    """Latin form of a normalised name: katakana read as Hepburn-like romaji (jaconv), long
    vowels and doubled vowels folded ("コーヒー", "KOHI" and "KOUHII" meet), Latin kept.
    Kanji cannot be read without a dictionary and are dropped."""
    import jaconv

    latin = jaconv.kana2alphabet(jaconv.kata2hira(normalized)).upper()
    latin = re.sub(r"[^A-Z0-9]", "", latin)
    latin = latin.replace("OU", "O").replace("UU", "U")
    return re.sub(r"([AEIOU])\1+", r"\1", latin)


_KANA = re.compile(r"[\u30a0-\u30ff]")
_LATIN = re.compile(r"[A-Z]")


def _fuzzy(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if min(len(a), len(b)) < 3:
        return fuzz.ratio(a, b) / 100
    return max(fuzz.partial_ratio(a, b), fuzz.token_set_ratio(a, b)) / 100


def vendor_similarity(a: str, b: str) -> float:
    """0..1 similarity of two normalised names: partial_ratio (bank text often truncates or
    adds branch names) but plain ratio for very short strings, where partial is too lax.
    When one side has kana and the other Latin letters (a receipt in katakana, a card line in
    romaji), both are also compared romanised, at most 0.9: a reading is weaker evidence
    than the same script."""
    direct = _fuzzy(a, b)
    if (_KANA.search(a) and _LATIN.search(b)) or (_LATIN.search(a) and _KANA.search(b)):
        ra, rb = romanize(a), romanize(b)
        if min(len(ra), len(rb)) >= 4:
            return max(direct, 0.9 * _fuzzy(ra, rb))
    return direct


def _alias_names(vendor: str, aliases: Mapping[str, Iterable[str]] | None) -> list[str]:
    """Normalised names of the receipt vendor's alias group (the group it belongs to)."""
    key = normalize_vendor(vendor)
    for canonical, names in (aliases or {}).items():
        group = [normalize_vendor(canonical), *(normalize_vendor(n) for n in names)]
        if key in group:
            return [g for g in group if g and g != key]
    return []


def _vendor_score(vendor: str | None, description: str,
                  aliases: Mapping[str, Iterable[str]] | None) -> tuple[float, str]:
    if not vendor:
        return 0.0, "none"
    desc = normalize_vendor(description)
    score = vendor_similarity(normalize_vendor(vendor), desc)
    method = "fuzzy"
    for alias in _alias_names(vendor, aliases):
        alias_score = vendor_similarity(alias, desc)
        if alias_score > score:
            score, method = alias_score, "alias"
    return score, method


# --- matching ---------------------------------------------------------------------------

def score_candidate(receipt: ReceiptFacts, txn: Transaction, config: MatchConfig,
                    aliases: Mapping[str, Iterable[str]] | None = None) -> Candidate | None:
    """Score one transaction, or None when it fails the amount gate or the date window."""
    if receipt.total is None or receipt.issue_date is None:
        return None
    if txn.entry_side != "expense" or abs(txn.amount) != receipt.total:
        return None
    anchors = [(receipt.issue_date, config.windows.get(txn.account_kind))]
    if txn.account_kind == "bank" and receipt.due_date is not None:
        anchors.append((receipt.due_date, config.windows.get("bank_due")))
    best: tuple[float, int] | None = None
    for anchor, window in anchors:
        if window is None:
            continue
        delta = (txn.date - anchor).days
        if delta < -window.before or delta > window.after:
            continue
        span = window.after if delta >= 0 else window.before
        scored = (1.0 - abs(delta) / (span + 1), delta)
        if best is None or scored[0] > best[0]:
            best = scored
    if best is None:
        return None
    date_score, delta = best
    vendor_score, method = _vendor_score(receipt.vendor, txn.description, aliases)
    score = config.w_amount + config.w_date * date_score + config.w_vendor * vendor_score
    return Candidate(txn.id, round(score, 4), ScoreComponents(
        1.0, round(date_score, 4), round(vendor_score, 4), delta, method))  # type: ignore[arg-type]


def match_receipt(receipt: ReceiptFacts, candidates: Iterable[Transaction], *,
                  config: MatchConfig | None = None,
                  aliases: Mapping[str, Iterable[str]] | None = None,
                  existing: Iterable[ExistingDecision] = (),
                  taken: Collection[str] = ()) -> MatchResult:
    """Decide the match for one receipt.

    `existing` are this receipt's stored decisions; `taken` are transaction ids already
    matched (auto/confirmed) to other receipts, which may be suggested but never auto-matched.
    """
    config = config or MatchConfig()
    decisions = list(existing)
    confirmed = [d for d in decisions if d.status == "confirmed"]
    if confirmed:
        return MatchResult("confirmed", confirmed[0].transaction_id, [], ["user_confirmed"])
    if receipt.total is None or receipt.issue_date is None:
        return MatchResult("unmatched", None, [], ["receipt_incomplete"])
    rejected = {d.transaction_id for d in decisions if d.status == "rejected"}

    scored = [c for txn in candidates if txn.id not in rejected
              if (c := score_candidate(receipt, txn, config, aliases)) is not None]
    scored.sort(key=lambda c: (-c.score, c.transaction_id))
    if not scored:
        return MatchResult("unmatched", None, [], ["no_candidate"])

    best = scored[0]
    runner_up = scored[1].score if len(scored) > 1 else 0.0
    top = scored[: config.max_suggestions]
    reasons: list[str] = []
    tie = len(scored) > 1 and abs(best.score - runner_up) < 1e-9
    if tie:
        reasons.append("tie")
    if best.transaction_id in taken:
        reasons.append("transaction_taken")
    if (best.score >= config.auto_threshold and not tie
            and best.score - runner_up >= config.auto_margin - 1e-9
            and best.transaction_id not in taken):
        return MatchResult("auto", best.transaction_id, top, reasons)
    if best.score >= config.auto_threshold and not tie and best.transaction_id not in taken:
        reasons.append("small_margin")
    if best.score >= config.suggest_threshold or tie:
        return MatchResult("suggested", None, top, reasons)
    reasons.append("low_score")
    return MatchResult("unmatched", None, top, reasons)
