"""Generated one-page scans whose image encodings a batch must keep: lossless PNG, JPEG 2000,
CCITT G4, bilevel, palette and 16-bit pages, and pages with /UserUnit or /Rotate."""

from __future__ import annotations

import io
from typing import Callable

import img2pdf
import pikepdf
from PIL import Image, ImageDraw

SIZE = (600, 300)  # 2 x 1 inches at 300 dpi: enough for Tesseract to find the words, quick to OCR


def _drawn(mode: str, text: str) -> Image.Image:
    image = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(image)
    draw.text((30, 120), text, fill=0, font_size=48)
    draw.rectangle((10, 10, SIZE[0] - 10, SIZE[1] - 10), outline=0, width=3)
    if mode == "RGB":
        coloured = Image.merge("RGB", (image, image.point(lambda v: min(255, v + 40)), image))
        return coloured
    return image.convert(mode)


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, dpi=(300, 300), **options)
    return buffer.getvalue()


def _pdf(image_bytes: bytes) -> bytes:
    return img2pdf.convert(image_bytes, layout_fun=img2pdf.default_layout_fun)


def png_page(text: str = "Lossless page") -> bytes:
    """A greyscale PNG, which img2pdf embeds as it is: /FlateDecode."""
    return _pdf(_encoded(_drawn("L", text), "PNG"))


def rgb_png_page(text: str = "Colour page") -> bytes:
    return _pdf(_encoded(_drawn("RGB", text), "PNG"))


def jpeg_page(text: str = "JPEG page") -> bytes:
    """A JPEG, which img2pdf embeds as it is: /DCTDecode; ocrmypdf's optimizer deflates it."""
    return _pdf(_encoded(_drawn("RGB", text), "JPEG"))


def jpx_page(text: str = "JPEG 2000 page") -> bytes:
    """A JPEG 2000 image: pikepdf cannot check it, so ocrmypdf sends the document through Ghostscript."""
    return _pdf(_encoded(_drawn("RGB", text), "JPEG2000", quality_mode="dB", quality_layers=[40]))


def cmyk_jpeg_page(text: str = "CMYK page") -> bytes:
    """A CMYK JPEG: PDF/A with ocrmypdf's sRGB output intent cannot hold it without conversion."""
    return _pdf(_encoded(_drawn("RGB", text).convert("CMYK"), "JPEG"))


def ccitt_page(text: str = "Fax page") -> bytes:
    """A bilevel TIFF with Group 4 compression, which img2pdf embeds as /CCITTFaxDecode."""
    return _pdf(_encoded(_drawn("1", text), "TIFF", compression="group4"))


def bilevel_page(text: str = "Bilevel page") -> bytes:
    return _pdf(_encoded(_drawn("1", text), "PNG"))


def palette_page(text: str = "Palette page") -> bytes:
    image = _drawn("RGB", text).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _pdf(_encoded(image, "PNG"))


def sixteen_bit_page(text: str = "Sixteen bit page") -> bytes:
    image = _drawn("L", text).point(lambda v: v * 257, "I").convert("I;16")
    return _pdf(_encoded(image, "PNG"))


def _changed(pdf_bytes: bytes, change: Callable[[pikepdf.Pdf], None]) -> bytes:
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        change(pdf)
        buffer = io.BytesIO()
        pdf.save(buffer)
        return buffer.getvalue()


def user_unit_page(text: str = "Poster page", unit: int = 10) -> bytes:
    return _changed(png_page(text), lambda pdf: pdf.pages[0].obj.__setitem__("/UserUnit", unit))


def rotated_page(text: str = "Rotated page") -> bytes:
    return _changed(png_page(text), lambda pdf: pdf.pages[0].obj.__setitem__("/Rotate", 90))


def titled(pdf_bytes: bytes, title: str) -> bytes:
    def add(pdf: pikepdf.Pdf) -> None:
        pdf.docinfo["/Title"] = title
        pdf.docinfo["/Author"] = "Scanner"
        pdf.docinfo["/CreationDate"] = "D:20240102030405+01'00'"

    return _changed(pdf_bytes, add)


KINDS: dict[str, Callable[[str], bytes]] = {
    "png": png_page, "rgb": rgb_png_page, "jpeg": jpeg_page, "jpx": jpx_page, "ccitt": ccitt_page, "bilevel": bilevel_page,
    "palette": palette_page, "16bit": sixteen_bit_page, "userunit": user_unit_page, "rotate": rotated_page,
}
