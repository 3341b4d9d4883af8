"""Text from a receipt file: the PDF text layer first, tesseract otherwise.

Public API (pure, no database; runs the `tesseract` binary as a subprocess):

- `extract_text(data: bytes, content_type: str, *, lang: str = "jpn+eng", dpi: int = 300,
  timeout: float = 120.0, max_pages: int = 5, digits_lang: str | None = "eng") -> OcrResult`
- `OcrResult(text, source: "pdf_text" | "ocr", confidence: float 0..1, pages: int, engine: str)`;
  `confidence` is the mean tesseract word confidence (TSV), or 1.0 for a text layer.
- `pdf_text_layer(data) -> str`, `text_layer_usable(text) -> bool`,
  `ocr_image(image, lang, ...) -> tuple[str, float]`, `preprocess(image) -> Image`,
  `engine_version(lang, digits_lang) -> str` (store it with the result: a re-run with another
  engine may differ). `digits_lang` adds a second pass that re-reads numbers (see ocr_image).

Errors, for the handler to map (receipts-domain.md §7, process_ocr):
- `OcrConfigError`: tesseract or its traineddata is missing. Permanent (an operator must act).
- `UnreadableDocument`: corrupt/encrypted PDF, undecodable image, unsupported type. Permanent.
- `OcrFailed`: tesseract crashed or timed out. Retryable (with a low max_attempts).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/tiff", "image/gif", "image/bmp",
                         "image/webp"})
# Scale scans so text bands are about this tall (px, as text_line_height measures them:
# ~0.9 of the font size). Tesseract misreads small glyphs and over-enlarged ones alike (a clean
# "¥1,100" came out "1,160" after a blind 2.5x). Fields right (total, date, T-number, tax) on
# 24 degraded + 14 clean sample renders, jpn+eng --psm 6 with the digit pass: target 30 =
# 131/152, 36 = 127, 42 = 133, 48 = 143. Median filter or threshold 160 added nothing.
TARGET_LINE_HEIGHT = 48
MAX_UPSCALE = 2.5


@dataclass(frozen=True)
class Preparation:
    """How a page image is prepared and read: text line height to scale to, whether to
    binarise (Otsu) first, tesseract's page segmentation mode."""

    line_height: int = TARGET_LINE_HEIGHT
    binarize: bool = False
    psm: int = 6


DEFAULT_PREP = Preparation()


def otsu_threshold(gray: Image.Image) -> int:
    """The grey level that best splits the histogram into ink and paper (Otsu, 1979)."""
    hist = gray.histogram()[:256]
    total = sum(hist)
    sum_all = sum(i * h for i, h in enumerate(hist))
    weight_bg = sum_bg = 0.0
    best, best_var = 127, -1.0
    for level, count in enumerate(hist):
        weight_bg += count
        if weight_bg == 0 or weight_bg == total:
            continue
        sum_bg += level * count
        mean_bg, mean_fg = sum_bg / weight_bg, (sum_all - sum_bg) / (total - weight_bg)
        var = weight_bg * (total - weight_bg) * (mean_bg - mean_fg) ** 2
        if var > best_var:
            best, best_var = level, var
    return best


class OcrError(Exception):
    """Base class of OCR failures."""


class OcrConfigError(OcrError):
    """tesseract or a language's traineddata is missing: a deployment problem."""


class UnreadableDocument(OcrError):
    """The file cannot be read as a receipt (corrupt, encrypted, unsupported type)."""


class OcrFailed(OcrError):
    """tesseract crashed or timed out; another attempt may succeed."""


@dataclass(frozen=True)
class OcrResult:
    text: str
    source: Literal["pdf_text", "ocr"]
    confidence: float
    pages: int
    engine: str


def _tesseract() -> str:
    path = shutil.which("tesseract")
    if path is None:
        raise OcrConfigError("tesseract binary not found (apt-get install tesseract-ocr)")
    return path


def _env() -> dict[str, str]:
    # One OpenMP thread per process: measured 2x faster on 2 cores (receipts-domain.md §4).
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


@lru_cache(maxsize=8)
def _available_langs() -> frozenset[str]:
    out = subprocess.run([_tesseract(), "--list-langs"], capture_output=True, text=True,
                         env=_env(), timeout=30, check=False)
    lines = out.stdout.splitlines()[1:]
    return frozenset(line.strip() for line in lines if line.strip())


def check_langs(lang: str) -> None:
    """Raise OcrConfigError when a language in `lang` ('jpn+eng') is not installed."""
    missing = [x for x in lang.split("+") if x not in _available_langs()]
    if missing:
        raise OcrConfigError(f"tesseract traineddata missing for: {', '.join(missing)}")


@lru_cache(maxsize=8)
def engine_version(lang: str = "jpn+eng", digits_lang: str | None = "eng") -> str:
    """E.g. 'tesseract 5.3.0 jpn+eng psm6 +eng-digits'; changes with the engine or settings."""
    out = subprocess.run([_tesseract(), "--version"], capture_output=True, text=True,
                         env=_env(), timeout=30, check=False)
    first = (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) \
        else "tesseract"
    digits = f" +{digits_lang}-digits" if digits_lang and digits_lang != lang else ""
    return f"{first} {lang} psm6{digits}"


# --- PDF --------------------------------------------------------------------------------

def pdf_text_layer(data: bytes, max_pages: int = 5) -> tuple[str, int]:
    """The embedded text of the first `max_pages` pages, and the page count."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")  # many "encrypted" receipts only restrict printing
            except Exception as exc:  # noqa: BLE001 - pypdf raises several types here
                raise UnreadableDocument(f"encrypted PDF: {exc}") from exc
        pages = reader.pages
        texts = [(page.extract_text() or "") for page in list(pages)[:max_pages]]
        return "\n".join(texts), len(pages)
    except PdfReadError as exc:
        raise UnreadableDocument(f"unreadable PDF: {exc}") from exc
    except UnreadableDocument:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf surfaces struct/zlib/key errors raw
        raise UnreadableDocument(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc


_MEANINGFUL = re.compile(r"[0-9A-Za-z\u3040-\u30ff\u3400-\u9fff]")
_RECEIPT_MARK = re.compile(r"合計|¥|円|total|amount", re.I)


def text_layer_usable(text: str) -> bool:
    """A text layer is trusted when it has >= 20 letters/digits and a total-like mark.

    Scans carry no layer, and some PDFs carry garbage from a broken ToUnicode map.
    """
    norm = unicodedata.normalize("NFKC", text)
    return len(_MEANINGFUL.findall(norm)) >= 20 and bool(_RECEIPT_MARK.search(norm))


def _render_pdf(data: bytes, dpi: int, max_pages: int) -> list[Image.Image]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise UnreadableDocument(f"unreadable PDF: {exc}") from exc
    try:
        images = []
        for index in range(min(len(pdf), max_pages)):
            page = pdf[index]
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            images.append(bitmap.to_pil())
            page.close()
        return images
    finally:
        pdf.close()


# --- images -----------------------------------------------------------------------------

def _open_images(data: bytes, max_pages: int) -> list[Image.Image]:
    try:
        image = Image.open(io.BytesIO(data))
        frames: list[Image.Image] = []
        for index in range(min(getattr(image, "n_frames", 1), max_pages)):
            image.seek(index)
            frames.append(ImageOps.exif_transpose(image.copy()) or image.copy())
        return frames
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise UnreadableDocument(f"unreadable image: {exc}") from exc


def text_line_height(gray: Image.Image) -> float | None:
    """Median height (px) of the dark horizontal bands, i.e. text lines; None when there are
    none (blank page, uniform noise)."""
    rows = list(ImageOps.invert(gray).resize((1, gray.height), Image.Resampling.BOX).tobytes())
    if len(rows) < 8:
        return None
    # Smooth over 5 rows: kanji have light rows between strokes inside one text line.
    smooth = [sum(rows[max(0, i - 2):i + 3]) / len(rows[max(0, i - 2):i + 3])
              for i in range(len(rows))]
    base = sorted(smooth)[len(smooth) // 10]  # the paper's tone, whatever its colour
    if max(smooth) - base < 12:
        return None  # no contrast between lines and gaps: not text
    # Just above the paper: a short line of text is much lighter than a long one.
    threshold = base + max(2.5, (max(smooth) - base) * 0.08)
    runs: list[int] = []
    run = 0
    for value in [*smooth, base]:
        if value > threshold:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    runs = sorted(r for r in runs if r >= 4)
    if not runs or (len(runs) == 1 and runs[0] > 0.8 * gray.height):
        return None
    return float(runs[len(runs) // 2])


def preprocess(image: Image.Image, prep: Preparation = DEFAULT_PREP) -> Image.Image:
    """Grayscale, stretch contrast, upscale when text lines are short of the target height
    (prep.line_height), then binarise with Otsu's threshold when asked. By default no median
    filter or threshold: neither helped on the samples, tesseract binarises."""
    gray = ImageOps.grayscale(image.convert("RGB") if image.mode in ("P", "RGBA", "LA", "CMYK")
                              else image)
    gray = ImageOps.autocontrast(gray, cutoff=1)
    height = text_line_height(gray)
    if height is not None and height < prep.line_height * 0.9:
        factor = min(MAX_UPSCALE, prep.line_height / height)
        gray = gray.resize((round(gray.width * factor), round(gray.height * factor)),
                           Image.Resampling.LANCZOS)
    if prep.binarize:
        level = otsu_threshold(gray)
        gray = gray.point(lambda v: 255 if v > level else 0)
    return gray


@dataclass
class _Word:
    line: tuple[int, int, int, int]  # page, block, paragraph, line
    left: int
    top: int
    width: int
    height: int
    conf: float
    text: str


def _tsv_words(tsv: str) -> list[_Word]:
    words = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
            continue
        words.append(_Word((int(cols[1]), int(cols[2]), int(cols[3]), int(cols[4])),
                           int(cols[6]), int(cols[7]), int(cols[8]), int(cols[9]),
                           float(cols[10]), cols[11].strip()))
    return words


_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]")
_DIGITISH = re.compile(r"^[¥\\$]?[TＴ]?\d[\d,.\-]*$")
_YEN = ("¥", "\\", "￥")


def _merge_digits(main: list[_Word], digits: list[_Word]) -> None:
    """Replace number words of the jpn pass with the eng pass's reading of the same box.

    The jpn model confuses 0/9/6 in amounts and registration numbers; eng reads digits well
    but not kanji. Only a word the eng box covers (>= 80%) and that has no CJK is replaced.
    """
    for word in digits:
        if not _DIGITISH.match(word.text):
            continue
        mid = word.top + word.height / 2
        hits = sorted((m for m in main
                       if min(m.left + m.width, word.left + word.width)
                       - max(m.left, word.left) > 0.5 * m.width
                       and abs(m.top + m.height / 2 - mid) < 0.6 * word.height),
                      key=lambda m: m.left)
        if not hits or any(_CJK.search(m.text) for m in hits):
            continue
        span = max(m.left + m.width for m in hits) - hits[0].left
        if word.width < 0.8 * span:
            continue
        text = word.text
        if hits[0].text.startswith(_YEN) and not text.startswith((*_YEN, "$")):
            text = "¥" + text  # eng often drops the yen sign
        hits[0].text = text
        for extra in hits[1:]:
            extra.text = ""


def _words_to_text(words: list[_Word]) -> str:
    lines: dict[tuple[int, int, int, int], list[str]] = {}
    for word in words:
        if word.text:
            lines.setdefault(word.line, []).append(word.text)
    return "\n".join(_join_words(parts) for _, parts in sorted(lines.items()))


def _join_words(words: list[str]) -> str:
    # tesseract's jpn model splits CJK text into one "word" per glyph run; keep Latin spacing.
    out = words[0]
    for word in words[1:]:
        glue = "" if _CJK.search(out[-1]) and _CJK.search(word[0]) else " "
        out += glue + word
    return out


def _run_tesseract(src: Path, lang: str, psm: int, dpi: int, timeout: float) -> str:
    out = src.with_name(f"out-{lang.replace('+', '_')}")
    cmd = [_tesseract(), str(src), str(out), "-l", lang, "--psm", str(psm), "--dpi", str(dpi),
           "tsv"]
    try:
        proc = subprocess.run(cmd, capture_output=True, env=_env(), timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OcrFailed(f"tesseract timed out after {timeout}s") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        if "Failed loading language" in err or "Error opening data file" in err:
            raise OcrConfigError(err)
        raise OcrFailed(f"tesseract exited {proc.returncode}: {err[-500:]}")
    return out.with_suffix(".tsv").read_text(encoding="utf-8", errors="replace")


def ocr_image(image: Image.Image, lang: str = "jpn+eng", *, psm: int = 6,
              timeout: float = 120.0, dpi: int = 300,
              digits_lang: str | None = "eng") -> tuple[str, float]:
    """Run tesseract on one image; return (text, mean word confidence 0..1).

    With `digits_lang` (and a `lang` that is not just that), a second pass reads numbers
    (see _merge_digits): on 24 degraded sample renders it raised registration numbers read
    right from 12 to 23 and tax bands from 13 to 17, for about 0.3 s more per page.
    """
    check_langs(lang)
    second = digits_lang if digits_lang and digits_lang != lang else None
    if second:
        check_langs(second)
    with tempfile.TemporaryDirectory(prefix="kyu-ocr-") as tmp:
        src = Path(tmp) / "page.png"
        image.save(src, format="PNG", dpi=(dpi, dpi))
        words = _tsv_words(_run_tesseract(src, lang, psm, dpi, timeout))
        confs = [w.conf for w in words if w.conf >= 0]
        mean = sum(confs) / len(confs) / 100 if confs else 0.0
        if second and mean >= 0.4:  # not worth a second pass over garbage
            _merge_digits(words, _tsv_words(_run_tesseract(src, second, psm, dpi, timeout)))
    return _words_to_text(words), round(mean, 4)


def _ocr_pages(images: list[Image.Image], lang: str, digits_lang: str | None, timeout: float,
               dpi: int, pages: int, prep: Preparation = DEFAULT_PREP) -> OcrResult:
    texts: list[str] = []
    confs: list[float] = []
    for image in images:
        text, conf = ocr_image(preprocess(image, prep), lang, psm=prep.psm, timeout=timeout,
                               dpi=dpi, digits_lang=digits_lang)
        texts.append(text)
        confs.append(conf)
    confidence = round(sum(confs) / len(confs), 4) if confs else 0.0
    engine = engine_version(lang, digits_lang)
    if prep != DEFAULT_PREP:
        engine += f" lines{prep.line_height}{' otsu' if prep.binarize else ''} psm{prep.psm}"
    return OcrResult("\n".join(texts), "ocr", confidence, pages, engine)


def extract_text(data: bytes, content_type: str, *, lang: str = "jpn+eng", dpi: int = 300,
                 timeout: float = 120.0, max_pages: int = 5,
                 digits_lang: str | None = "eng",
                 prep: Preparation = DEFAULT_PREP) -> OcrResult:
    """Text of a receipt file. PDFs use their text layer when usable (see
    `text_layer_usable`), else are rendered at `dpi` and OCR'd; images are OCR'd directly."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/pdf" or (ctype == "application/octet-stream"
                                      and data.startswith(b"%PDF")):
        text, pages = pdf_text_layer(data, max_pages)
        if text_layer_usable(text):
            return OcrResult(text, "pdf_text", 1.0, pages, "pypdf")
        return _ocr_pages(_render_pdf(data, dpi, max_pages), lang, digits_lang, timeout, dpi,
                          pages, prep)
    if ctype in IMAGE_TYPES:
        images = _open_images(data, max_pages)
        return _ocr_pages(images, lang, digits_lang, timeout, dpi, len(images), prep)
    if ctype == "image/heic":
        raise UnreadableDocument("HEIC is not supported (no HEIF decoder installed)")
    raise UnreadableDocument(f"unsupported content type: {content_type}")
