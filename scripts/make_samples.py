"""Generate deterministic sample receipts, mails and transactions for tests and the demo.

    python scripts/make_samples.py [OUT_DIR]      # default out/samples

Writes `mail/NN_*.eml` (ISO-2022-JP with ①㈱髙, Shift_JIS, UTF-8, English; text-layer PDFs,
an image-only PDF, PNG and JPEG scans, an HTML-only receipt, an exact duplicate, an unreadable
attachment), `transactions.csv` (source, external_id, account_kind, date, amount, description:
with near misses and a tie) and `truth.json` (expected fields and match per receipt).
Same output bytes on every run: fixed seeds, fixed dates (April 2026), fixed MIME boundaries.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import sys
import time
from dataclasses import dataclass, field
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


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path("out/samples")
    truth = build(out)
    receipts = truth["receipts"]
    assert isinstance(receipts, list)
    print(f"wrote {len(receipts)} mails, transactions.csv and truth.json to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
