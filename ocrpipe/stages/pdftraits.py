"""What a PDF is, beyond its pages: digitally signed, or a dynamic XFA form (ocrmypdf's own tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pikepdf


@dataclass(frozen=True)
class PdfTraits:
    signed: bool
    dynamic_xfa: bool


def pdf_traits(pdf: pikepdf.Pdf) -> PdfTraits:
    """The tests ocrmypdf itself applies: AcroForm's SigFlags bit 1 (signatures exist), and
    NeedsRendering (a LiveCycle form whose pages only Adobe's viewer draws)."""
    acroform = pdf.Root.get("/AcroForm")
    signed = isinstance(acroform, pikepdf.Dictionary) and bool(int(acroform.get("/SigFlags", 0)) & 1)
    return PdfTraits(signed=signed, dynamic_xfa=bool(pdf.Root.get("/NeedsRendering", False)))


def largest_image(pdf: pikepdf.Pdf) -> tuple[int, int]:
    """Width and height of the image with the most pixels, as the PDF declares them (nothing decoded)."""
    best = (0, 0)
    for page in pdf.pages:
        for image in page.get_images().values():
            try:
                size = (int(image.get("/Width", 0)), int(image.get("/Height", 0)))
            except (TypeError, ValueError):
                continue
            if size[0] * size[1] > best[0] * best[1]:
                best = size
    return best


def read_traits(path: Path) -> PdfTraits:
    with pikepdf.open(path) as pdf:
        return pdf_traits(pdf)
