"""Text from a receipt file: the PDF text layer first, tesseract otherwise.

Public API (pure, no database; runs the `tesseract` binary as a subprocess):

- `extract_text(data: bytes, content_type: str, *, lang: str = "jpn+eng", dpi: int = 300,
  timeout: float = 120.0, max_pages: int = 5) -> OcrResult`
- `OcrResult(text, source: "pdf_text" | "ocr", confidence: float 0..1, pages: int, engine: str)`;
  `confidence` is the mean tesseract word confidence (TSV), or 1.0 for a text layer.
- `pdf_text_layer(data) -> str`, `text_layer_usable(text) -> bool`,
  `ocr_image(image, lang, ...) -> tuple[str, float]`, `preprocess(image) -> Image`,
  `engine_version(lang) -> str` (store it with the result: a re-run with another engine may
  differ).

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
# Tesseract reads best with text about 30 px high; phone crops are often smaller.
MIN_SHORT_SIDE = 1200
MAX_UPSCALE = 2.5


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
def engine_version(lang: str = "jpn+eng") -> str:
    """E.g. 'tesseract 5.3.0 jpn+eng psm6'; changes when the engine or settings change."""
    out = subprocess.run([_tesseract(), "--version"], capture_output=True, text=True,
                         env=_env(), timeout=30, check=False)
    first = (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) \
        else "tesseract"
    return f"{first} {lang} psm6"


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
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableDocument(f"unreadable image: {exc}") from exc


def preprocess(image: Image.Image) -> Image.Image:
    """Grayscale, stretch contrast, upscale small images. No binarisation: on clean scans
    tesseract's own Otsu threshold does better, and phone photos vary too much for a fixed one."""
    gray = ImageOps.grayscale(image.convert("RGB") if image.mode in ("P", "RGBA", "LA")
                              else image)
    gray = ImageOps.autocontrast(gray, cutoff=1)
    short = min(gray.size)
    if short < MIN_SHORT_SIDE:
        factor = min(MAX_UPSCALE, MIN_SHORT_SIDE / max(short, 1))
        gray = gray.resize((round(gray.width * factor), round(gray.height * factor)),
                           Image.Resampling.LANCZOS)
    return gray


def _parse_tsv(tsv: str) -> tuple[str, float]:
    """Rebuild lines from tesseract TSV and average the word confidences."""
    lines: dict[tuple[int, int, int, int], list[str]] = {}
    confs: list[float] = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        word = cols[11].strip()
        if not word:
            continue
        key = (int(cols[1]), int(cols[2]), int(cols[3]), int(cols[4]))
        lines.setdefault(key, []).append(word)
        conf = float(cols[10])
        if conf >= 0:
            confs.append(conf)
    text = "\n".join(_join_words(words) for _, words in sorted(lines.items()))
    mean = sum(confs) / len(confs) / 100 if confs else 0.0
    return text, round(mean, 4)


_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]")


def _join_words(words: list[str]) -> str:
    # tesseract's jpn model splits CJK text into one "word" per glyph run; keep Latin spacing.
    out = words[0]
    for word in words[1:]:
        glue = "" if _CJK.search(out[-1]) and _CJK.search(word[0]) else " "
        out += glue + word
    return out


def ocr_image(image: Image.Image, lang: str = "jpn+eng", *, psm: int = 6,
              timeout: float = 120.0, dpi: int = 300) -> tuple[str, float]:
    """Run tesseract on one image; return (text, mean word confidence 0..1)."""
    exe = _tesseract()
    check_langs(lang)
    with tempfile.TemporaryDirectory(prefix="kyu-ocr-") as tmp:
        src = Path(tmp) / "page.png"
        image.save(src, format="PNG", dpi=(dpi, dpi))
        cmd = [exe, str(src), str(Path(tmp) / "out"), "-l", lang, "--psm", str(psm),
               "--dpi", str(dpi), "tsv"]
        try:
            proc = subprocess.run(cmd, capture_output=True, env=_env(), timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise OcrFailed(f"tesseract timed out after {timeout}s") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            if "Failed loading language" in err or "Error opening data file" in err:
                raise OcrConfigError(err)
            raise OcrFailed(f"tesseract exited {proc.returncode}: {err[-500:]}")
        tsv = (Path(tmp) / "out.tsv").read_text(encoding="utf-8", errors="replace")
    return _parse_tsv(tsv)


def _ocr_pages(images: list[Image.Image], lang: str, timeout: float, dpi: int,
               pages: int) -> OcrResult:
    texts: list[str] = []
    confs: list[float] = []
    for image in images:
        text, conf = ocr_image(preprocess(image), lang, timeout=timeout, dpi=dpi)
        texts.append(text)
        confs.append(conf)
    confidence = round(sum(confs) / len(confs), 4) if confs else 0.0
    return OcrResult("\n".join(texts), "ocr", confidence, pages, engine_version(lang))


def extract_text(data: bytes, content_type: str, *, lang: str = "jpn+eng", dpi: int = 300,
                 timeout: float = 120.0, max_pages: int = 5) -> OcrResult:
    """Text of a receipt file. PDFs use their text layer when usable (see
    `text_layer_usable`), else are rendered at `dpi` and OCR'd; images are OCR'd directly."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/pdf" or (ctype == "application/octet-stream"
                                      and data.startswith(b"%PDF")):
        text, pages = pdf_text_layer(data, max_pages)
        if text_layer_usable(text):
            return OcrResult(text, "pdf_text", 1.0, pages, "pypdf")
        return _ocr_pages(_render_pdf(data, dpi, max_pages), lang, timeout, dpi, pages)
    if ctype in IMAGE_TYPES:
        images = _open_images(data, max_pages)
        return _ocr_pages(images, lang, timeout, dpi, len(images))
    if ctype == "image/heic":
        raise UnreadableDocument("HEIC is not supported (no HEIF decoder installed)")
    raise UnreadableDocument(f"unsupported content type: {content_type}")
