"""Email intake: Japanese charsets, receipt part selection, HTML-only receipts, sources."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from datetime import timedelta

import pytest

from python_worker.receipts.domain import mail

# "領収書①㈱髙" as Windows (CP50220) writes ISO-2022-JP: ① = JIS 2D21 and ㈱ = 2D6A (NEC row 13),
# 髙 = 7C62 (NEC-selected IBM extension). Written out by hand, not by our encoder.
JIS_RECEIPT = b"\x1b$BNN<}=q-!-j|b\x1b(B"
JIS_FILENAME = b"\x1b$B-j|b\x1b(B.pdf"  # "㈱髙.pdf"


def _ew(data: bytes, charset: str = "ISO-2022-JP") -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode()}?="


def _iso2022jp_message() -> bytes:
    pdf = b"%PDF-1.4\n% sample\n"
    return (
        b"From: " + _ew(b"\x1b$B-j|bEg\x1b(B").encode() + b" <shop@example.jp>\r\n"
        b"To: keiri@example.com\r\n"
        b"Subject: " + _ew(JIS_RECEIPT).encode() + b"\r\n"
        b"Date: Wed, 01 Apr 2026 10:00:00 +0900\r\n"
        b"Message-ID: <r1@example.jp>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n\r\n" + JIS_RECEIPT + b"\r\n"
        b"--b1\r\nContent-Type: application/octet-stream; name=\"" + _ew(JIS_FILENAME).encode()
        + b"\"\r\nContent-Disposition: attachment; filename=\"" + _ew(JIS_FILENAME).encode()
        + b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(pdf) + b"\r\n"
        b"--b1\r\nContent-Type: image/png\r\nContent-Disposition: attachment; "
        b"filename*=ISO-2022-JP''%1B%24B-!%1B%28B.png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"\x89PNG fake") + b"\r\n"
        b"--b1\r\nContent-Type: text/plain; name=notes.txt\r\n"
        b"Content-Disposition: attachment; filename=notes.txt\r\n\r\nnot a receipt\r\n"
        b"--b1--\r\n"
    )


def test_stdlib_iso2022jp_codec_rejects_nec_characters() -> None:
    # The reason for decode_iso2022jp: Python's codecs raise on NEC row 13 / IBM extensions.
    with pytest.raises(UnicodeDecodeError):
        JIS_RECEIPT.decode("iso2022_jp")


def test_decode_iso2022jp_handles_nec_and_ibm_extensions() -> None:
    assert mail.decode_iso2022jp(JIS_RECEIPT) == "領収書①㈱髙"
    assert mail.decode_text(JIS_RECEIPT, "ISO-2022-JP") == "領収書①㈱髙"


def test_decode_iso2022jp_half_width_katakana_and_roman() -> None:
    assert mail.decode_iso2022jp(b"\x1b(I6\x1b(Babc") == "ｶabc"


def test_iso2022jp_message_header_body_and_filenames() -> None:
    raw = _iso2022jp_message()
    parsed = mail.parse_message(raw)
    assert parsed.subject == "領収書①㈱髙"
    assert parsed.text_body is not None and parsed.text_body.strip() == "領収書①㈱髙"
    assert parsed.from_addr == "shop@example.jp"
    assert parsed.message_id == "<r1@example.jp>"
    assert parsed.date is not None and parsed.date.utcoffset() == timedelta(hours=9)
    assert parsed.raw_sha256 == hashlib.sha256(raw).hexdigest()
    names = [(a.filename, a.content_type) for a in parsed.attachments]
    # octet-stream named .pdf counts as a PDF; the text/plain attachment is not a receipt.
    assert names == [("㈱髙.pdf", "application/pdf"), ("①.png", "image/png")]
    assert parsed.attachments[0].data.startswith(b"%PDF")


def test_shift_jis_label_decodes_as_cp932() -> None:
    body = "①～㈱髙島 ￥1,100".encode("cp932")
    assert "\ufffd" in body.decode("shift_jis", errors="replace")  # why we alias to cp932
    raw = (b"From: a@example.jp\r\nSubject: " + _ew("ご利用明細①".encode("cp932"), "Shift_JIS")
           .encode() + b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=Shift_JIS"
           b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n")
    parsed = mail.parse_message(raw)
    assert parsed.subject == "ご利用明細①"
    assert parsed.text_body is not None and parsed.text_body.strip() == "①～㈱髙島 ￥1,100"
    assert parsed.attachments == ()


@pytest.mark.parametrize("label", ["shift_jis", "SJIS", "x-sjis", "Windows-31J"])
def test_shift_jis_aliases(label: str) -> None:
    assert mail.decode_text("①㈱".encode("cp932"), label) == "①㈱"


def test_euc_jp_with_nec_character_falls_back_to_euc_jis_2004() -> None:
    assert mail.decode_text(b"\xad\xa1\xa4\xa2", "EUC-JP") == "①あ"


def test_raw_8bit_header_is_decoded() -> None:
    raw = b"Subject: " + "領収書".encode("cp932") + b"\r\n\r\nbody\r\n"
    assert mail.parse_message(raw).subject == "領収書"


def test_inline_logo_of_html_body_is_not_a_receipt() -> None:
    raw = (
        b"Subject: order\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/related; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>logo <img src=cid:l1></p>\r\n"
        b"--r\r\nContent-Type: image/png\r\nContent-ID: <l1>\r\nContent-Transfer-Encoding: "
        b"base64\r\n\r\n" + base64.b64encode(b"png") + b"\r\n--r--\r\n")
    parsed = mail.parse_message(raw)
    assert parsed.attachments == ()
    assert parsed.html_body is not None and "logo" in parsed.html_body


HTML_RECEIPT = """<html><body><h2>ご注文の確認</h2>
<p>販売元: 株式会社ブックストア</p><p>注文日: 2026年4月20日</p>
<p>合計（税込） ￥2,420</p><p>髙島 ① ㈱</p>
<link rel="stylesheet" href="file:///{css}">
</body></html>"""


def _html_message(html: str) -> bytes:
    return (b"Subject: =?utf-8?B?" + base64.b64encode("ご注文の確認".encode()) + b"?=\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(html.encode())
            + b"\r\n")


def test_html_only_receipt_is_detected_and_rendered_with_japanese_font(tmp_path) -> None:
    css = tmp_path / "leak.css"
    css.write_text('body::before { content: "LEAKED-LOCAL-FILE"; }')
    parsed = mail.parse_message(_html_message(HTML_RECEIPT.format(css=css)))
    assert parsed.attachments == ()
    assert mail.is_html_only_receipt(parsed)
    assert parsed.html_body is not None
    pdf = mail.render_html_to_pdf(parsed.html_body)
    assert pdf.startswith(b"%PDF")
    pdf_file = tmp_path / "r.pdf"
    pdf_file.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(pdf_file), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "株式会社ブックストア" in text and "髙島" in text and "2,420" in text
    assert "LEAKED-LOCAL-FILE" not in text  # file: URLs in mail HTML are never fetched
    fonts = subprocess.run(["pdffonts", str(pdf_file)], capture_output=True, text=True,
                           check=True).stdout
    assert "IPAGothic" in fonts


def test_newsletter_without_amount_is_not_a_receipt() -> None:
    parsed = mail.parse_message(_html_message("<p>今月のおすすめ商品のご案内です。</p>"))
    assert not mail.is_html_only_receipt(parsed)


def test_message_with_attachment_is_not_html_only() -> None:
    assert not mail.is_html_only_receipt(mail.parse_message(_iso2022jp_message()))


def test_iter_eml_dir_is_sorted_with_relative_keys(tmp_path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.eml").write_bytes(b"Subject: two\r\n\r\n")
    (tmp_path / "1.eml").write_bytes(b"Subject: one\r\n\r\n")
    (tmp_path / "skip.txt").write_bytes(b"x")
    assert [k for k, _ in mail.iter_eml_dir(tmp_path)] == ["1.eml", "b/2.eml"]


def test_imap_source_key_includes_uidvalidity() -> None:
    assert mail.imap_source_key("me@example.com", "INBOX", 1700000000, "42") == \
        "me@example.com/INBOX/1700000000/42"
