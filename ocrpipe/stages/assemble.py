"""Turn pages (PDFs and images) into one ``raw.pdf``: img2pdf for images, pikepdf to merge."""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import img2pdf
import pikepdf
from PIL import Image, ImageOps, UnidentifiedImageError

from ocrpipe.errors import Code, PermanentError
from ocrpipe.stages.heic import require_heif
from ocrpipe.stages.sniff import Kind, is_heif, sniff

DEFAULT_MAX_MPIXELS = 300.0


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """``page2`` sorts before ``page10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.casefold()) for part in re.split(r"(\d+)", text))


def open_pdf(path: Path, *, name: str | None = None) -> pikepdf.Pdf:
    """Open a PDF; one with only an owner password opens (and is saved decrypted later). ``name`` is
    the one a refusal gives the file (its own by default)."""
    shown = name or path.name
    try:
        return pikepdf.open(path)
    except pikepdf.PasswordError:
        raise PermanentError(f"{shown}: the PDF is encrypted and needs a password to open",
                             code=Code.PDF_PASSWORD) from None
    except pikepdf.PdfError as exc:
        detail = str(exc).replace(f"{path}: ", "").replace(str(path), shown)  # no work-folder paths
        raise PermanentError(f"{shown}: the PDF is damaged beyond repair ({detail})",
                             code=Code.PDF_DAMAGED) from None


def _image_dpi(image: Image.Image) -> tuple[float, float] | None:
    dpi = image.info.get("dpi")
    # Pillow reports 1 or 0 dpi when a file carries a unit but no real value.
    if dpi and float(dpi[0]) > 10 and float(dpi[1]) > 10:
        return float(dpi[0]), float(dpi[1])
    return None


def _flatten_frame(frame: Image.Image) -> Image.Image:
    """A mode img2pdf takes: transparency on white, 16-bit scaled to 8, CMYK and palettes to RGB."""
    if frame.mode in ("1", "L", "RGB"):
        return frame.copy()
    if frame.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return frame.point(lambda v: v / 256).convert("L") if frame.mode != "F" else frame.convert("L")
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return frame.convert("RGB")


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(16)


@contextmanager
def _own_pixel_limit() -> Iterator[None]:
    """Pillow's own bomb check (a warning, then DecompressionBombError) gives way to ours, which names
    the size and MAX_IMAGE_PIXELS; opening an image reads its header only, so nothing is decoded yet."""
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_image_size(path: Path, max_mpixels: float, *, name: str | None = None) -> tuple[float, float] | None:
    """Refuse an image that declares more pixels than the limit, in any frame, before one is decoded;
    returns the image's DPI (None when it carries none). ``name``: as for :func:`open_pdf`."""
    shown = name or path.name
    if is_heif(_head(path)):
        require_heif(shown)
    try:
        with Image.open(path) as image:
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                width, height = image.size
                if width * height > max_mpixels * 1e6:
                    raise PermanentError(
                        f"{shown}: image too large ({width} × {height}, {width * height / 1e6:,.0f} megapixels; "
                        f"the limit is MAX_IMAGE_MPIXELS={max_mpixels:g})", code=Code.IMAGE_TOO_LARGE)
            image.seek(0)
            return _image_dpi(image)
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
        raise PermanentError(f"{shown}: the image is damaged or in a format we cannot read ({exc})",
                             code=Code.IMAGE_DAMAGED) from None


def _has_alpha(path: Path) -> bool:
    with Image.open(path) as image:
        return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _via_pillow(path: Path, dpi: tuple[float, float]) -> bytes:
    pages = []
    with Image.open(path) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frame = _flatten_frame(ImageOps.exif_transpose(image) or image)
            buffer = io.BytesIO()
            frame.save(buffer, format="PNG", dpi=dpi)
            pages.append(buffer.getvalue())
    layout = img2pdf.get_fixed_dpi_layout_fun(dpi)
    return img2pdf.convert(pages, layout_fun=layout)


def image_to_pdf_bytes(path: Path, default_dpi: int, max_mpixels: float = DEFAULT_MAX_MPIXELS, *,
                       name: str | None = None) -> bytes:
    """One PDF page per image frame; an image without DPI gets ``default_dpi``. ``name``: as for
    :func:`open_pdf`."""
    with _own_pixel_limit():
        image_dpi = check_image_size(path, max_mpixels, name=name)
        dpi = image_dpi or (float(default_dpi), float(default_dpi))
        # Its own DPI: img2pdf's default layout. (``layout_fun=None`` is not "the default": img2pdf then
        # fails with a TypeError, and every image with a DPI went through Pillow.)
        layout = {} if image_dpi else {"layout_fun": img2pdf.get_fixed_dpi_layout_fun(dpi)}
        # img2pdf would keep transparency as a soft mask; the page must be flattened onto white instead.
        if not _has_alpha(path) and not is_heif(_head(path)):
            try:
                return img2pdf.convert(str(path), rotation=img2pdf.Rotation.ifvalid, **layout)
            except Exception:  # noqa: BLE001 — img2pdf refuses 16-bit and odd modes; Pillow converts them
                pass
        try:
            return _via_pillow(path, dpi)
        except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
            raise PermanentError(f"{name or path.name}: the image could not be converted to PDF ({exc})",
                                 code=Code.IMAGE_DAMAGED) from None


def link_or_copy(src: Path, out: Path) -> None:
    """raw.pdf as a hard link to the input: nothing writes to either, so no copy is needed."""
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # no hard links on this file system
        shutil.copyfile(src, tmp)
    os.replace(tmp, out)


def _save(pdf: pikepdf.Pdf, out: Path) -> None:
    tmp = out.with_name(out.name + ".partial")
    pdf.save(tmp, encryption=False)
    os.replace(tmp, out)


def assemble(parts: Sequence[Path], out: Path, *, default_dpi: int,
             max_image_mpixels: float = DEFAULT_MAX_MPIXELS, names: Mapping[Path, str] | None = None) -> int:
    """Write all pages of ``parts``, in order, to ``out``; returns the page count. ``names`` are the names
    people know parts by, for the reasons a refusal gives (a job's copy of its input is ``original.pdf``)."""
    names = names or {}
    if len(parts) == 1 and sniff(parts[0]) is Kind.PDF:
        with open_pdf(parts[0], name=names.get(parts[0])) as pdf:
            pages = len(pdf.pages)
            if pages == 0:
                raise PermanentError(f"{names.get(parts[0], parts[0].name)}: the PDF has no pages",
                                     code=Code.PDF_DAMAGED)
            if pdf.is_encrypted:
                _save(pdf, out)  # ocrmypdf refuses owner-password PDFs; they open without one here
                return pages
        link_or_copy(parts[0], out)
        return pages
    merged = pikepdf.new()
    sources: list[pikepdf.Pdf] = []
    try:
        for part in parts:
            if sniff(part) is Kind.PDF:
                source = open_pdf(part, name=names.get(part))
            else:
                page = image_to_pdf_bytes(part, default_dpi, max_image_mpixels, name=names.get(part))
                source = pikepdf.open(io.BytesIO(page))
            sources.append(source)
            merged.pages.extend(source.pages)
        if len(merged.pages) == 0:
            raise PermanentError("the document has no pages", code=Code.PDF_DAMAGED)
        _save(merged, out)
        return len(merged.pages)
    finally:
        for source in sources:
            source.close()
        merged.close()
