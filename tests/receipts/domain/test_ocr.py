"""Text extraction: PDF text layer and real tesseract (no mocks)."""

from __future__ import annotations

import io
from datetime import date

import pytest
from PIL import Image, ImageDraw, ImageFont

from python_worker.receipts.domain import ocr, parse

FONT = "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"
LINES = ["領収書", "株式会社サンプル商店", "2026年4月1日", "合計 ¥1,100",
         "(10%対象 ¥1,100 内消費税 ¥100)"]


def _text_pdf(lines: list[str]) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    if "IPAGothic" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("IPAGothic", FONT))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(300, 300), invariant=True)
    pdf.setFont("IPAGothic", 10)
    for i, line in enumerate(lines):
        pdf.drawString(20, 270 - 18 * i, line)
    pdf.save()
    return buffer.getvalue()


def _scan(lines: list[str]) -> Image.Image:
    font = ImageFont.truetype(FONT, 40)
    image = Image.new("L", (1000, 80 * (len(lines) + 1)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 70 * i), line, font=font, fill=0)
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_text_layer_pdf_is_exact_and_skips_tesseract() -> None:
    result = ocr.extract_text(_text_pdf(LINES), "application/pdf")
    assert result.source == "pdf_text" and result.confidence == 1.0 and result.pages == 1
    assert [line.strip() for line in result.text.splitlines()] == LINES


def test_png_through_tesseract_gives_total_and_date() -> None:
    result = ocr.extract_text(_png(_scan(LINES)), "image/png")
    assert result.source == "ocr" and result.engine.startswith("tesseract")
    assert result.confidence > 0.7
    fields = parse.parse_receipt(result.text, ocr_confidence=result.confidence,
                                 today=date(2026, 5, 1))
    assert fields.total == 1100
    assert fields.issue_date == date(2026, 4, 1)


def test_image_only_pdf_is_rasterized_and_ocrd() -> None:
    buffer = io.BytesIO()
    _scan(LINES).save(buffer, "PDF", resolution=200.0)
    result = ocr.extract_text(buffer.getvalue(), "application/pdf")
    assert result.source == "ocr"
    assert parse.parse_receipt(result.text, today=date(2026, 5, 1)).total == 1100


def test_text_layer_without_receipt_marks_is_not_trusted() -> None:
    assert not ocr.text_layer_usable("scanned by ACME 2026")
    assert ocr.text_layer_usable("株式会社サンプル商店 2026年4月1日 合計 ¥1,100 ありがとう")


def test_corrupt_pdf_is_unreadable() -> None:
    with pytest.raises(ocr.UnreadableDocument):
        ocr.extract_text(b"%PDF-1.4\nthis is not a pdf", "application/pdf")


def test_corrupt_image_is_unreadable() -> None:
    with pytest.raises(ocr.UnreadableDocument):
        ocr.extract_text(b"\x89PNG\r\n\x1a\nbroken", "image/png")


def test_unsupported_type_is_unreadable() -> None:
    with pytest.raises(ocr.UnreadableDocument):
        ocr.extract_text(b"hello", "text/plain")


def test_missing_language_is_a_config_error() -> None:
    with pytest.raises(ocr.OcrConfigError):
        ocr.ocr_image(Image.new("L", (10, 10), 255), "xyz")


def _lines_image(size: int) -> Image.Image:
    font = ImageFont.truetype(FONT, size)
    image = Image.new("RGB", (30 * size, 2 * size * len(LINES)), (250, 250, 245))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(LINES):
        draw.text((size, size + 2 * size * i), line, font=font, fill=(10, 10, 10))
    return image


def test_preprocess_upscales_small_text_only() -> None:
    small = ocr.preprocess(_lines_image(16))
    assert small.mode == "L" and small.width > 30 * 16 * 1.5
    large = ocr.preprocess(_lines_image(64))
    assert large.size == (30 * 64, 2 * 64 * len(LINES))  # already readable: left alone
    blank = ocr.preprocess(Image.new("L", (300, 200), 255))
    assert blank.size == (300, 200)
