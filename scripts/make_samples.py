"""Generate deterministic sample receipts, mails and transactions for tests and the demo.

    python scripts/make_samples.py [OUT_DIR]      # default out/samples

Writes `mail/NN_*.eml` (ISO-2022-JP with ①㈱髙, Shift_JIS, UTF-8, English; text-layer PDFs,
an image-only PDF, PNG and JPEG scans, an HTML-only receipt, an exact duplicate, an unreadable
attachment), `transactions.csv` (source, external_id, account_kind, date, amount, description:
with near misses and a tie) and `truth.json` (expected fields and match per receipt).
Same output bytes on every run: fixed seeds, fixed dates (April 2026), fixed MIME boundaries.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_CANDIDATES = [
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
]


def font_path() -> str:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise SystemExit("IPAGothic not found: apt-get install fonts-ipafont-gothic")


def check_digit(digits12: str) -> int:
    """法人番号 check digit (財務省令第七十号 第二条): 9 − (Σ Pn·Qn mod 9)."""
    total = sum(int(c) * (1 if n % 2 else 2) for n, c in enumerate(reversed(digits12), 1))
    return 9 - total % 9


def t_number(digits12: str, valid: bool = True) -> str:
    digit = check_digit(digits12)
    return f"T{digit if valid else (digit + 1) % 10}{digits12}"


# --- encodings --------------------------------------------------------------------------

def encode_iso2022jp(text: str) -> bytes:
    """ISO-2022-JP as Windows writes it (CP50220): cp932 bytes turned into JIS rows, so NEC
    row 13 (①, ㈱) and NEC-selected IBM characters (髙) survive."""
    out = bytearray()
    mode = "ascii"
    for ch in text:
        if ord(ch) < 0x80:
            if mode != "ascii":
                out += b"\x1b(B"
                mode = "ascii"
            out.append(ord(ch))
            continue
        s1, s2 = ch.encode("cp932")
        s1 = (s1 - (0x70 if s1 <= 0x9F else 0xB0)) * 2
        if s2 >= 0x9F:
            j1, j2 = s1, s2 - 0x7E
        else:
            j1, j2 = s1 - 1, s2 - (0x20 if s2 >= 0x80 else 0x1F)
        if mode != "jis":
            out += b"\x1b$B"
            mode = "jis"
        out += bytes((j1, j2))
    if mode != "ascii":
        out += b"\x1b(B"
    return bytes(out)


def encode(text: str, charset: str) -> bytes:
    if charset.lower() == "iso-2022-jp":
        return encode_iso2022jp(text)
    if charset.lower() == "shift_jis":
        return text.encode("cp932")
    return text.encode(charset)


def encoded_word(text: str, charset: str) -> str:
    if text.isascii():
        return text
    return f"=?{charset.upper()}?B?{base64.b64encode(encode(text, charset)).decode()}?="


def b64(data: bytes) -> str:
    raw = base64.b64encode(data).decode()
    return "\r\n".join(raw[i:i + 76] for i in range(0, len(raw), 76))


@dataclass
class Part:
    content_type: str
    body: bytes
    filename: str | None = None
    charset: str | None = None


@dataclass
class Mail:
    name: str
    sender: str
    sender_name: str
    subject: str
    date: str
    charset: str
    parts: list[Part] = field(default_factory=list)

    def raw(self) -> bytes:
        boundary = f"=_kyu_{self.name}"
        head = [
            f"From: {encoded_word(self.sender_name, self.charset)} <{self.sender}>",
            "To: keiri@example.com",
            f"Subject: {encoded_word(self.subject, self.charset)}",
            f"Date: {self.date}",
            f"Message-ID: <{self.name}@samples.kyu.example>",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/mixed; boundary="{boundary}"',
        ]
        chunks = ["\r\n".join(head) + "\r\n\r\nThis is a multi-part message in MIME format.\r\n"]
        for part in self.parts:
            lines = [f"--{boundary}"]
            if part.content_type.startswith("text/"):
                lines.append(f"Content-Type: {part.content_type}; charset={part.charset}")
                lines.append("Content-Transfer-Encoding: base64")
            else:
                name = encoded_word(part.filename or "file", self.charset)
                lines.append(f'Content-Type: {part.content_type}; name="{name}"')
                lines.append(f'Content-Disposition: attachment; filename="{name}"')
                lines.append("Content-Transfer-Encoding: base64")
            chunks.append("\r\n".join(lines) + "\r\n\r\n" + b64(part.body) + "\r\n")
        chunks.append(f"--{boundary}--\r\n")
        return "".join(chunks).encode("ascii")


def text_part(text: str, charset: str, subtype: str = "plain") -> Part:
    return Part(f"text/{subtype}", encode(text, charset), charset=charset)


# --- receipt renderers ------------------------------------------------------------------

def render_pdf_text(lines: list[str], width_mm: float = 80) -> bytes:
    """A born-digital receipt: text layer in IPAGothic (embedded TrueType subset)."""
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    if "IPAGothic" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("IPAGothic", font_path()))
    height = (len(lines) + 4) * 6 * mm
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(width_mm * mm, height), invariant=True)
    pdf.setFont("IPAGothic", 9)
    y = height - 10 * mm
    for line in lines:
        pdf.drawString(5 * mm, y, line)
        y -= 6 * mm
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def render_image(lines: list[str], seed: int, width: int = 900, size: int = 34,
                 rotate: float = 0.4, noise: int = 400) -> Image.Image:
    """A scanned receipt: black text on off-white, slight rotation, blur and speckles."""
    font = ImageFont.truetype(font_path(), size)
    line_height = int(size * 1.6)
    image = Image.new("L", (width, line_height * (len(lines) + 3)), 246)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((40, line_height * (i + 1)), line, font=font, fill=20)
    rng = random.Random(seed)
    for _ in range(noise):
        x, y = rng.randrange(image.width), rng.randrange(image.height)
        image.putpixel((x, y), rng.choice((90, 140, 200)))
    image = image.rotate(rotate, resample=Image.Resampling.BICUBIC, fillcolor=246, expand=True)
    return image.filter(ImageFilter.GaussianBlur(0.6))


def to_bytes(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, fmt, quality=82)
    elif fmt == "PDF":
        fixed = time.gmtime(1776243600)  # 2026-04-15 09:00 UTC: no wall clock in the file
        image.save(buffer, fmt, resolution=300.0, creationDate=fixed, modDate=fixed)
    else:
        image.save(buffer, fmt, optimize=False)
    return buffer.getvalue()


# --- the sample set ---------------------------------------------------------------------

def build(out: Path) -> dict[str, object]:
    rng = random.Random(20260401)
    reg_takashima = t_number("010401234567")
    reg_family = t_number("011101987654")
    reg_cloud = t_number("030001112223")
    reg_yamada = t_number("987654321098", valid=False)  # sole proprietor style: no check digit
    reg_maru = t_number("020001445566")
    reg_book = t_number("011001556677")
    reg_taxi = t_number("010001778899")
    reg_tech = t_number("013301990011")

    takashima = [
        "領収書", "株式会社髙島ストア", "東京都中央区日本橋1-2-3", "TEL 03-1234-5678",
        f"登録番号 {reg_takashima}", "2026年4月3日 14:22", "コーヒー豆 ※    ¥1,620",
        "マグカップ        ¥2,200", "小計              ¥3,820",
        "8%対象 ¥1,620 (内消費税 ¥120)", "10%対象 ¥2,200 (内消費税 ¥200)",
        "合計              ¥3,820", "お預り            ¥5,000", "お釣り            ¥1,180",
        "※は軽減税率対象",
    ]
    family = [
        "ファミリーストア 新宿店", "東京都新宿区西新宿2-8-1", "電話 03-9876-5432",
        "2026年4月7日(火) 08:15", "おにぎり 軽      ¥160", "お茶 軽          ¥150",
        "合計              ¥310", "(8%対象 ¥310 内消費税等 ¥22)", f"登録番号 {reg_family}",
    ]
    cloud = [
        "INVOICE", "Example Cloud Inc.", "Invoice No. INV-2026-0412", "Date: April 12, 2026",
        "Bill to: Kyu Trading", "Cloud hosting (April)       JPY 9,000",
        "Consumption tax (10%)       ¥900", "Total (tax incl.)           ¥9,900",
        f"Registration No. {reg_cloud}",
    ]
    yamada = [
        "領収書", "山田文具店", "2026/04/15", "ボールペン        ¥330", "ノート            ¥440",
        "合計              ¥770", "内消費税(10%)     ¥70", f"登録番号 {reg_yamada}",
    ]
    maru = [
        "マルサン食品館", "株式会社マルサン", "令和8年4月18日 17:40", "牛乳 ※            ¥248",
        "食パン ※          ¥216", "洗剤              ¥440", "小計              ¥904",
        "(8%対象 ¥464 内税 ¥34)", "(10%対象 ¥440 内税 ¥40)", "お買上計          ¥904",
        f"登録番号 {reg_maru}",
    ]
    taxi = [
        "領収書", "日本交通タクシー株式会社", "2026年4月24日 23:10", "乗車料金          ¥1,100",
        "合計              ¥1,100", "(10%対象 ¥1,100 内消費税 ¥100)", f"登録番号 {reg_taxi}",
    ]
    tech = [
        "請求書", "合同会社サンプル商事 御中", "株式会社テックサービス", "発行日 R8.4.28",
        "システム保守費(4月分)   ¥50,000", "小計                    ¥50,000",
        "消費税(10%)             ¥5,000", "ご請求金額              ¥55,000",
        f"登録番号 {reg_tech}", "お支払期限 2026年5月31日",
    ]
    html = f"""<html><head><meta charset="utf-8"><title>ご注文の確認</title></head><body>
<h2>ご注文の確認</h2><p>この度はご利用ありがとうございます。</p>
<table><tr><td>販売元: 株式会社ブックストア</td></tr>
<tr><td>注文日: 2026年4月20日</td></tr>
<tr><td>書籍「はじめての簿記」 ￥1,320</td></tr><tr><td>書籍「経理の基本」 ￥1,100</td></tr>
<tr><td>合計（税込） ￥2,420</td></tr><tr><td>(10%対象 ￥2,420 内消費税 ￥220)</td></tr>
<tr><td>登録番号 {reg_book}</td></tr></table>
<img src="https://tracker.example.com/open.gif" alt=""></body></html>"""

    noise = Image.new("L", (600, 400))
    noise.putdata([rng.randrange(256) for _ in range(600 * 400)])

    mails = [
        Mail("01_takashima_iso2022jp", "noreply@takashima-store.example.jp", "㈱髙島ストア",
             "【領収書】㈱髙島ストア ご利用分①", "Fri, 03 Apr 2026 14:30:00 +0900",
             "iso-2022-jp", [
                 text_part("髙島ストアをご利用いただきありがとうございます。\r\n"
                           "①領収書を添付いたします。\r\n㈱髙島ストア\r\n", "iso-2022-jp"),
                 Part("application/pdf", render_pdf_text(takashima), "領収書_㈱髙島ストア.pdf")]),
        Mail("02_family_sjis", "receipt@family-store.example.jp", "ファミリーストア",
             "ご利用明細～ファミリーストア①", "Tue, 07 Apr 2026 08:20:00 +0900", "shift_jis", [
                 text_part("レシート画像を送付します～①\r\n", "shift_jis"),
                 Part("image/png", to_bytes(render_image(family, 2), "PNG"), "receipt.png")]),
        Mail("03_cloud_en", "billing@cloud.example.com", "Example Cloud",
             "Your invoice INV-2026-0412", "Sun, 12 Apr 2026 09:00:00 +0000", "utf-8", [
                 text_part("Hello,\r\nYour invoice for April is attached.\r\n", "utf-8"),
                 Part("application/pdf", render_pdf_text(cloud, 120), "INV-2026-0412.pdf")]),
        Mail("04_yamada_scanpdf", "yamada@bungu.example.jp", "山田文具店",
             "領収書の送付", "Wed, 15 Apr 2026 18:00:00 +0900", "utf-8", [
                 text_part("スキャンした領収書です。\r\n", "utf-8"),
                 Part("application/pdf", to_bytes(render_image(yamada, 4, rotate=0.2), "PDF"),
                      "scan_0415.pdf")]),
        Mail("05_marusan_jpeg", "me@example.com", "自分", "スーパーのレシート",
             "Sat, 18 Apr 2026 18:00:00 +0900", "utf-8", [
                 text_part("", "utf-8"),
                 Part("image/jpeg", to_bytes(render_image(maru, 5, rotate=-0.5), "JPEG"),
                      "IMG_0418.jpg")]),
        Mail("06_bookstore_html", "order@bookstore.example.jp", "ブックストア",
             "ご注文の確認", "Mon, 20 Apr 2026 10:00:00 +0900", "utf-8",
             [text_part(html, "utf-8", "html")]),
        Mail("08_unreadable", "me@example.com", "自分", "レシート送付",
             "Wed, 22 Apr 2026 12:00:00 +0900", "utf-8", [
                 text_part("読めないかもしれません\r\n", "utf-8"),
                 Part("image/png", to_bytes(noise, "PNG"), "blurry.png")]),
        Mail("09_taxi_png", "me@example.com", "自分", "タクシー領収書",
             "Fri, 24 Apr 2026 23:30:00 +0900", "utf-8", [
                 text_part("", "utf-8"),
                 Part("image/png", to_bytes(render_image(taxi, 9), "PNG"), "taxi.png")]),
        Mail("10_tech_invoice_sjis", "keiri@tech-service.example.jp", "テックサービス",
             "請求書送付のご案内（4月分）", "Tue, 28 Apr 2026 11:00:00 +0900", "shift_jis", [
                 text_part("4月分の請求書をお送りします。\r\n", "shift_jis"),
                 Part("application/octet-stream", render_pdf_text(tech, 110),
                      "請求書_202604.pdf")]),
    ]
    maildir = out / "mail"
    maildir.mkdir(parents=True, exist_ok=True)
    raws = {m.name: m.raw() for m in mails}
    raws["07_duplicate_of_01"] = raws["01_takashima_iso2022jp"]  # the same message, twice
    for name, raw in sorted(raws.items()):
        (maildir / f"{name}.eml").write_bytes(raw)

    transactions = [
        ("card_csv", "C-1001", "card", "2026-04-04", 3820, "ﾀｶｼﾏｽﾄｱ"),
        ("card_csv", "C-1002", "card", "2026-04-20", 3820, "ﾀｶｼﾏｽﾄｱ"),  # outside the window
        ("card_csv", "C-1003", "card", "2026-04-07", 310, "ﾌｱﾐﾘ-ｽﾄｱ ｼﾝｼﾞﾕｸ"),
        ("card_csv", "C-1004", "card", "2026-04-13", 9900, "EXAMPLE CLOUD"),
        ("bank_csv", "B-2001", "bank", "2026-04-25", 770, "ﾔﾏﾀﾞﾌﾞﾝｸﾞﾃﾝ"),  # too late for bank
        ("card_csv", "C-1005", "card", "2026-04-18", 1904, "ﾏﾙｻﾝｼﾖｸﾋﾝｶﾝ"),  # amount differs
        ("card_csv", "C-1006", "card", "2026-04-19", 904, "ﾏﾙｻﾝｼﾖｸﾋﾝｶﾝ"),
        ("card_csv", "C-1007", "card", "2026-04-22", 2420, "ﾌﾞﾂｸｽﾄｱ"),
        ("card_csv", "C-1008", "card", "2026-04-24", 1100, "ﾆﾎﾝｺｳﾂｳ ﾀｸｼ-"),
        ("card_csv", "C-1009", "card", "2026-04-24", 1100, "ﾆﾎﾝｺｳﾂｳ ﾀｸｼ-"),  # the tie
        ("bank_csv", "B-2002", "bank", "2026-04-30", 55000, "ﾌﾘｺﾐ ｶ)ﾃﾂｸｻ-ﾋﾞｽ"),
        ("bank_csv", "B-2003", "bank", "2026-04-10", 12000, "ﾃﾞﾝｷﾀﾞｲ"),
    ]
    with (out / "transactions.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["source", "external_id", "account_kind", "date", "amount",
                         "description"])
        writer.writerows(transactions)

    write_exports(out, transactions)

    def receipt(rid: str, eml: str, kind: str, vendor: str | None, day: str | None,
                total: int | None, tax: dict[str, dict[str, int]], reg: str | None,
                match: dict[str, object], **extra: object) -> dict[str, object]:
        return {"id": rid, "eml": f"{eml}.eml", "kind": kind, "vendor": vendor, "date": day,
                "total": total, "tax": tax, "registration_number": reg,
                "registration_valid": None if reg is None else reg != reg_yamada,
                "expected_match": match, **extra}

    truth = {
        "generator": "scripts/make_samples.py",
        "aliases": {"株式会社髙島ストア": ["ﾀｶｼﾏｽﾄｱ", "タカシマストア"],
                    "株式会社ブックストア": ["ﾌﾞﾂｸｽﾄｱ"]},
        "receipts": [
            receipt("r01", "01_takashima_iso2022jp", "pdf_text", "株式会社髙島ストア",
                    "2026-04-03", 3820, {"8": {"net": 1500, "tax": 120},
                                         "10": {"net": 2000, "tax": 200}}, reg_takashima,
                    {"status": "auto", "transaction": "C-1001"}),
            receipt("r02", "02_family_sjis", "png", "ファミリーストア 新宿店", "2026-04-07", 310,
                    {"8": {"net": 288, "tax": 22}}, reg_family,
                    {"status": "auto", "transaction": "C-1003"}),
            receipt("r03", "03_cloud_en", "pdf_text", "Example Cloud Inc.", "2026-04-12", 9900,
                    {"10": {"net": 9000, "tax": 900}}, reg_cloud,
                    {"status": "auto", "transaction": "C-1004"}),
            receipt("r04", "04_yamada_scanpdf", "pdf_scan", "山田文具店", "2026-04-15", 770,
                    {"10": {"net": 700, "tax": 70}}, reg_yamada,
                    {"status": "unmatched", "transaction": None}, expect_review=True),
            receipt("r05", "05_marusan_jpeg", "jpeg", "株式会社マルサン", "2026-04-18", 904,
                    {"8": {"net": 430, "tax": 34}, "10": {"net": 400, "tax": 40}}, reg_maru,
                    {"status": "auto", "transaction": "C-1006"}),
            receipt("r06", "06_bookstore_html", "html", "株式会社ブックストア", "2026-04-20",
                    2420, {"10": {"net": 2200, "tax": 220}}, reg_book,
                    {"status": "auto", "transaction": "C-1007"}),
            receipt("r07", "07_duplicate_of_01", "duplicate", None, None, None, {}, None,
                    {"status": None, "transaction": None}, duplicate_of="r01"),
            receipt("r08", "08_unreadable", "unreadable", None, None, None, {}, None,
                    {"status": "unmatched", "transaction": None}, expect_review=True),
            receipt("r09", "09_taxi_png", "png", "日本交通タクシー株式会社", "2026-04-24", 1100,
                    {"10": {"net": 1000, "tax": 100}}, reg_taxi,
                    {"status": "suggested", "transaction": None,
                     "candidates": ["C-1008", "C-1009"]}),
            receipt("r10", "10_tech_invoice_sjis", "pdf_text", "株式会社テックサービス",
                    "2026-04-28", 55000, {"10": {"net": 50000, "tax": 5000}}, reg_tech,
                    {"status": "auto", "transaction": "B-2002"}),
        ],
    }
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n",
                                    encoding="utf-8")
    return truth


ZEN = str.maketrans("0123456789,", "０１２３４５６７８９，")


def write_exports(out: Path, transactions: list[tuple[str, str, str, str, int, str]]) -> None:
    """The same lines as two Japanese exports, without ids: `bank-jp.csv` (cp932, a preamble,
    お引出し/お預入れ columns, a salary credit) and `card-jp.csv` (UTF-8 with BOM, 2026年4月4日
    dates, full-width ￥ amounts, a refund)."""
    bank = [t for t in transactions if t[2] == "bank"]
    rows = [["口座番号", "普通 1234567"], ["照会期間", "2026/04/01～2026/04/30"], [],
            ["取引日", "摘要", "メモ", "お引出し", "お預入れ", "残高"]]
    balance = 1_000_000
    lines = [(d, desc, amount, 0) for _, _, _, d, amount, desc in bank]
    lines.append(("2026-04-24", "ｷﾕｳﾖ ｶ)ｷﾕｳﾄﾚ-ﾃﾞｲﾝｸﾞ", 0, 300_000))
    for day, desc, out_yen, in_yen in sorted(lines):
        balance += in_yen - out_yen
        rows.append([day.replace("-", "/"), desc, "", f"{out_yen:,}" if out_yen else "",
                     f"{in_yen:,}" if in_yen else "", f"{balance:,}"])
    with (out / "bank-jp.csv").open("w", encoding="cp932", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)
    card = [t for t in transactions if t[2] == "card"]
    rows = [["ご利用日", "ご利用店名・商品名", "ご利用者", "支払区分", "ご利用金額", "備考"]]
    for _, _, _, day, amount, desc in card:
        y, m, d = (int(x) for x in day.split("-"))
        rows.append([f"{y}年{m}月{d}日", desc, "本人", "１回払い",
                     f"￥{amount:,}".translate(ZEN), ""])
    rows.append(["2026年4月26日", "ﾌﾞﾂｸｽﾄｱ ﾍﾝﾋﾟﾝ", "本人", "１回払い", "-1,100", "返品"])
    with (out / "card-jp.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)


# --- the large set: seeded variations of every failure class ----------------------------

@dataclass(frozen=True)
class Vendor:
    name: str  # the issuer as printed (the truth)
    kana: str  # reading, full-width katakana (bank lines are its half-width form)
    romaji: str  # card descriptor
    domain: str
    kind: str  # till | taxi | parking | invoice_jp | invoice_en | html
    legal: str = "ｶ)"  # the 全銀 legal-form mark on bank lines


VENDORS = [
    Vendor("株式会社髙島ストア", "タカシマストア", "TAKASHIMA STORE", "takashima-store.example.jp",
           "till"),
    Vendor("株式会社さくら珈琲", "サクラコーヒー", "SAKURA COFFEE", "sakura-coffee.example.jp",
           "till"),
    Vendor("株式会社ひかりドラッグ", "ヒカリドラッグ", "HIKARI DRUG", "hikari-drug.example.jp",
           "till"),
    Vendor("株式会社こだま書店", "コダマショテン", "KODAMA SHOTEN", "kodama-books.example.jp",
           "till"),
    Vendor("株式会社マルサン", "マルサン", "MARUSAN SHOKUHIN", "marusan.example.jp", "till"),
    Vendor("日本交通タクシー株式会社", "ニホンコウツウタクシー", "NIHON KOTSU TAXI",
           "nihon-kotsu.example.jp", "taxi"),
    Vendor("株式会社東都ハイヤー", "トウトハイヤー", "TOTO HIRE", "toto-hire.example.jp", "taxi"),
    Vendor("有限会社みどり駐車場", "ミドリチュウシャジョウ", "MIDORI PARKING",
           "midori-parking.example.jp", "parking", "ﾕ)"),
    Vendor("株式会社北斗パーキング", "ホクトパーキング", "HOKUTO PARKING",
           "hokuto-parking.example.jp", "parking"),
    Vendor("株式会社テックサービス", "テックサービス", "TECH SERVICE", "tech-service.example.jp",
           "invoice_jp"),
    Vendor("合同会社デザインラボ", "デザインラボ", "DESIGN LAB", "designlab.example.jp",
           "invoice_jp", "ﾄﾞ)"),
    Vendor("株式会社青葉システム", "アオバシステム", "AOBA SYSTEM", "aoba-sys.example.jp",
           "invoice_jp"),
    Vendor("Example Cloud Inc.", "エグザンプルクラウド", "EXAMPLE CLOUD", "cloud.example.com",
           "invoice_en"),
    Vendor("Nimbus Software K.K.", "ニンバスソフトウエア", "NIMBUS SOFTWARE",
           "nimbus-soft.example.com", "invoice_en"),
    Vendor("Bluefin Analytics Inc.", "ブルーフィンアナリティクス", "BLUEFIN ANALYTICS",
           "bluefin.example.com", "invoice_en"),
    Vendor("株式会社ブックストア", "ブックストア", "BOOKSTORE ONLINE", "bookstore.example.jp",
           "html"),
    Vendor("株式会社オフィスサプライ", "オフィスサプライ", "OFFICE SUPPLY",
           "office-supply.example.jp", "html"),
]
CUSTOMERS = ["合同会社サンプル商事", "株式会社キュウ・トレーディング", "山本 太郎"]
CUSTOMERS_EN = ["Kyu Trading LLC", "Sample Shoji G.K."]
ITEMS = {"till": [("コーヒー豆", 8), ("マグカップ", 10), ("牛乳", 8), ("洗剤", 10), ("文庫本", 10),
                  ("サンドイッチ", 8), ("目薬", 10), ("お茶", 8), ("ノート", 10)],
         "html": [("書籍「はじめての簿記」", 10), ("トナーカートリッジ", 10), ("コピー用紙", 10)],
         "invoice_jp": [("システム保守費", 10), ("デザイン制作費", 10), ("サーバー監視", 10)],
         "invoice_en": [("Cloud hosting", 10), ("Team plan (monthly)", 10),
                        ("Analytics seats", 10)]}


def half_kana(text: str) -> str:
    import jaconv

    return jaconv.z2h(text.translate(str.maketrans("ァィゥェォッャュョー", "アイウエオツヤユヨ-")),
                      kana=True, ascii=False, digit=False)


def yen_s(v: int) -> str:
    return f"¥{v:,}"


def jp_date(day: date, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return f"{day.year}年{day.month}月{day.day}日"
    if style == 1:
        return f"{day.year}/{day.month:02d}/{day.day:02d}"
    if style == 2:
        return f"令和{day.year - 2018}年{day.month}月{day.day}日"
    return f"R{day.year - 2018}.{day.month}.{day.day}"


def en_date(day: date, rng: random.Random) -> str:
    months = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]
    return (f"{months[day.month - 1]} {day.day}, {day.year}" if rng.random() < 0.6
            else f"{day.year}-{day.month:02d}-{day.day:02d}")


def inclusive_tax(gross: int, rate: int) -> int:
    return gross * rate // (100 + rate)


def large_document(v: Vendor, rng: random.Random, day: date, reg: str
                   ) -> tuple[list[str], int, dict[str, dict[str, int]], date | None]:
    """(lines, total, truth tax bands, due date) of one receipt of vendor `v`."""
    tax: dict[str, dict[str, int]] = {}
    due = None
    if v.kind in ("till", "html"):
        items = rng.sample(ITEMS[v.kind], rng.randint(1, 3))
        priced = [(n, r, rng.randrange(100, 3000, 10)) for n, r in items]
        gross = {r: sum(p for _, rr, p in priced if rr == r) for r in (8, 10)}
        total = sum(gross.values())
        for r in (10, 8):
            if gross[r]:
                t = inclusive_tax(gross[r], r)
                tax[str(r)] = {"net": gross[r] - t, "tax": t}
        if v.kind == "html":
            lines = [f"販売元: {v.name}", f"注文日: {jp_date(day, rng)}"]
            lines += [f"{n} ￥{p:,}" for n, _, p in priced]
            lines += [f"合計（税込） ￥{total:,}"]
            lines += [f"({r}%対象 ￥{gross[r]:,} 内消費税 ￥{inclusive_tax(gross[r], r):,})"
                      for r in (10, 8) if gross[r]]
            return [*lines, f"登録番号 {reg}"], total, tax, None
        lines = (["領収書"] if rng.random() < 0.5 else []) + [
            v.name, "東京都中央区日本橋1-2-3", f"TEL 03-{rng.randrange(1000, 9999)}-5678",
            f"登録番号 {reg}",
            jp_date(day, rng) + f" {rng.randrange(8, 22)}:{rng.randrange(60):02d}"]
        lines += [f"{n}{' ※' if r == 8 else ''}    {yen_s(p)}" for n, r, p in priced]
        lines.append(f"小計    {yen_s(total)}")
        for r in (8, 10):
            if gross[r]:
                band_tax = yen_s(inclusive_tax(gross[r], r))
                lines.append(f"{r}%対象 {yen_s(gross[r])} (内消費税 {band_tax})")
        paid = -(-total // 1000) * 1000
        lines += [f"合計    {yen_s(total)}", f"お預り    {yen_s(paid)}",
                  f"お釣り    {yen_s(paid - total)}"]
        return lines, total, tax, None
    if v.kind in ("taxi", "parking"):
        total = rng.randrange(500, 6000, 10) if v.kind == "taxi" else rng.randrange(300, 2400, 100)
        t = inclusive_tax(total, 10)
        tax["10"] = {"net": total - t, "tax": t}
        head = ["領収書"] + ([f"{rng.choice(CUSTOMERS)} 様"] if rng.random() < 0.5 else [])
        if v.kind == "taxi":
            body = [f"乗車料金    {yen_s(total)}"]
        else:
            body = [f"入庫 {day.month}/{day.day} 09:{rng.randrange(10, 59)}",
                    f"出庫 {day.month}/{day.day} 1{rng.randrange(0, 9)}:05",
                    f"駐車料金    {yen_s(total)}"]
        lines = [*head, v.name, jp_date(day, rng), *body, f"合計    {yen_s(total)}",
                 f"(10%対象 {yen_s(total)} 内消費税 {yen_s(t)})", f"登録番号 {reg}"]
        return lines, total, tax, None
    if v.kind == "invoice_jp":
        items = rng.sample(ITEMS[v.kind], rng.randint(1, 2))
        priced = [(n, rng.randrange(10, 200) * 1000) for n, _ in items]
        net = sum(p for _, p in priced)
        t = net * 10 // 100
        total = net + t
        tax["10"] = {"net": net, "tax": t}
        due = (day.replace(day=28) + timedelta(days=rng.randrange(8, 12)))
        lines = ["請求書", f"{rng.choice(CUSTOMERS[:2])} 御中", v.name,
                 f"発行日 {jp_date(day, rng)}"]
        lines += [f"{n}    {yen_s(p)}" for n, p in priced]
        lines += [f"小計    {yen_s(net)}", f"消費税(10%)    {yen_s(t)}",
                  f"ご請求金額    {yen_s(total)}", f"登録番号 {reg}",
                  f"お支払期限 {due.year}年{due.month}月{due.day}日"]
        return lines, total, tax, due
    # invoice_en: the failure classes of English SaaS receipts
    net = rng.randrange(10, 300) * 100
    style = rng.randrange(5)
    if style in (0, 1, 4):  # exclusive
        t = net * 10 // 100
        total = net + t
    else:  # inclusive: the price already holds the tax
        total = net
        t = inclusive_tax(total, 10)
        net = total - t
    tax["10"] = {"net": net, "tax": t}
    heading = rng.choice(["INVOICE", f"Receipt from {v.name}", "Tax Invoice", "RECEIPT"])
    bill = rng.choice(["Billed to", "Bill to"])
    customer = rng.choice(CUSTOMERS_EN)
    issuer_first = rng.random() < 0.5
    head = [heading]
    issuer = [v.name, "1-2-3 Shibuya, Tokyo"]
    billed = [f"{bill}:", customer, "Chiyoda-ku, Tokyo"]
    head += (issuer + billed) if issuer_first else (billed + issuer)
    head += [f"Invoice No. INV-{rng.randrange(10000, 99999)}", f"Date: {en_date(day, rng)}"]
    item = rng.choice(ITEMS["invoice_en"])[0]
    if style == 0:
        body = [f"{item}    ¥{net:,}", f"JCT (10% on ¥{net:,}) ¥{t:,}", f"Total ¥{total:,}"]
    elif style == 1:
        body = [f"{item}    ¥{net:,}", f"JCT - Japan (10%) ¥{t:,}", f"Amount due ¥{total:,}"]
    elif style == 2:
        body = [f"{item}    ¥{total:,}", f"Total ¥{total:,}", f"of which JCT 10% ¥{t:,}"]
    elif style == 3:
        body = [f"{item}    ¥{total:,}", f"Total ¥{total:,} (incl. tax 10% ¥{t:,})"]
    else:
        body = [f"{item}    JPY {net:,}", f"Consumption tax (10%) ¥{t:,}",
                f"Total (tax incl.) ¥{total:,}"]
    return [*head, *body, f"Registration No. {reg}"], total, tax, None


def build_large(out: Path, count: int, seed: int) -> dict[str, object]:
    """`count` mails from `seed`: every document kind and failure class, card and bank lines
    (card in romaji or half-width kana; invoices paid by transfer near the due date, weeks
    after issue), distractors and ties, as bank-jp.csv / card-jp.csv, and truth.json."""
    rng = random.Random(seed)
    maildir = out / "mail"
    maildir.mkdir(parents=True, exist_ok=True)
    for old in maildir.glob("*.eml"):
        old.unlink()
    regs = {v.name: t_number(f"{rng.randrange(10**11, 10**12):012d}") for v in VENDORS}
    txns: list[tuple[str, str, str, str, int, str]] = []
    truth_rows = []
    start = date(2026, 4, 1)
    for i in range(count):
        v = rng.choice(VENDORS)
        day = start + timedelta(days=rng.randrange(0, 58))
        lines, total, tax, due = large_document(v, rng, day, regs[v.name])
        if v.kind == "html":
            kind = "html"
        elif v.kind in ("invoice_jp", "invoice_en"):
            kind = rng.choice(["pdf_text", "pdf_text", "pdf_scan"])
        elif v.kind in ("till", "taxi", "parking"):
            kind = rng.choice(["photo", "photo", "pdf_scan", "png", "pdf_text"])
        name = f"{i:03d}_{v.kind}_{kind}"
        charset = rng.choice(["iso-2022-jp", "shift_jis", "utf-8"]) if not v.kind.endswith(
            "_en") else "utf-8"
        own = kind in ("photo", "png") and rng.random() < 0.7
        sender, sender_name = (("me@example.com", "自分") if own else
                               (f"billing@{v.domain}", v.name))
        part: Part
        if kind == "html":
            body = "<html><body><h2>ご注文の確認</h2><table>" + "".join(
                f"<tr><td>{line}</td></tr>" for line in lines) + "</table></body></html>"
            parts = [text_part(body, charset, "html")]
        else:
            if kind == "pdf_text":
                part = Part("application/pdf", render_pdf_text(lines, rng.choice([80, 110, 140])),
                            f"receipt_{i:03d}.pdf")
            elif kind == "pdf_scan":
                image = render_image(lines, seed + i, rotate=rng.uniform(-1.0, 1.0),
                                     size=rng.choice([28, 32, 36]))
                part = Part("application/pdf", to_bytes(image, "PDF"), f"scan_{i:03d}.pdf")
            else:
                image = render_image(lines, seed + i, rotate=rng.uniform(-1.5, 1.5),
                                     size=rng.choice([30, 34, 40]), noise=rng.randrange(200, 900))
                if kind == "photo":
                    buffer = io.BytesIO()
                    image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.7))).save(
                        buffer, "JPEG", quality=rng.randrange(55, 90))
                    part = Part("image/jpeg", buffer.getvalue(), f"IMG_{i:04d}.jpg")
                else:
                    part = Part("image/png", to_bytes(image, "PNG"), f"scan_{i:03d}.png")
            parts = [text_part("領収書を送付します。\r\n", charset), part]
        stamp = datetime(day.year, day.month, day.day, 20, 0, tzinfo=timezone(timedelta(hours=9)))
        mail = Mail(name, sender, sender_name, f"領収書 {v.name}", format_datetime(stamp), charset,
                    parts)
        (maildir / f"{name}.eml").write_bytes(mail.raw())
        expected: dict[str, object] = {"status": "unmatched", "transaction": None}
        if rng.random() < 0.85:  # most receipts were paid from an imported account
            if v.kind == "invoice_jp":
                paid = due - timedelta(days=rng.randrange(0, 3)) if due else day
                desc = "ﾌﾘｺﾐ " + v.legal + half_kana(v.kana)
                line = ("bank", paid.isoformat(), total, desc)
            else:
                paid = day + timedelta(days=rng.randrange(0, 3))
                desc = v.romaji if rng.random() < 0.5 else half_kana(v.kana)
                line = ("card", paid.isoformat(), total, desc)
            txns.append(("large", f"L-{i:03d}", line[0], line[1], line[2], line[3]))
            expected = {"status": "auto", "transaction": {"date": line[1], "amount": total,
                                                           "description": line[3]}}
        truth_rows.append({"id": f"r{i:03d}", "eml": f"{name}.eml", "kind": kind,
                           "document": v.kind, "vendor": v.name, "date": day.isoformat(),
                           "total": total, "tax": tax, "registration_number": regs[v.name],
                           "due_date": due.isoformat() if due else None,
                           "expected_match": expected})
    for j in range(count // 5):  # lines of other shops, some of the same amounts far away
        twin = rng.choice(truth_rows)
        far = date.fromisoformat(twin["date"]) + timedelta(days=rng.choice([-20, 15, 70]))
        amount = twin["total"] if rng.random() < 0.5 else rng.randrange(200, 90000, 10)
        txns.append(("large", f"D-{j:03d}", rng.choice(["card", "bank"]), far.isoformat(),
                     amount, rng.choice(["ｱﾏｿﾞﾝ ｼﾞﾔﾊﾟﾝ", "ETC ﾘﾖｳ", "DENKI", "ｺﾝﾋﾞﾆ"])))
    write_exports(out, sorted(txns, key=lambda t: (t[3], t[1])))
    truth = {"generator": f"scripts/make_samples.py --large {count} --seed {seed}",
             "aliases": {}, "receipts": truth_rows}
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")
    return truth


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="sample mail, statements and truth")
    p.add_argument("out", nargs="?", type=Path, default=Path("out/samples"))
    p.add_argument("--large", type=int, metavar="N", help="N seeded mails of every class")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv[1:])
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    truth = build_large(out, args.large, args.seed) if args.large else build(out)
    receipts = truth["receipts"]
    assert isinstance(receipts, list)
    print(f"wrote {len(receipts)} mails, transactions.csv and truth.json to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
