"""What a document's page images are (filters, size, bits, colour space), and whether ocrmypdf's
PDF/A step would have to send it through Ghostscript, which re-encodes images."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pikepdf
from pikepdf.pdfa import PdfaError
from pikepdf.pdfa import save as save_pdfa

# ocrmypdf --output-type auto first writes PDF/A itself with pikepdf.pdfa.save (validated, as
# here) and only when pikepdf does not approve the result falls back to Ghostscript's pdfwrite.
PDFA_FLAVOUR = "2b"
# ocrmypdf's optimizer (-O1, the default) deflates JPEGs below this size losslessly, to /FlateDecode
# /DCTDecode (ocrmypdf.optimize.FLATE_JPEG_THRESHOLD), unless the file as a whole did not shrink.
FLATE_JPEG_THRESHOLD = 10000
MAX_FORM_DEPTH = 8  # Form XObjects nest; a loop in a damaged file must not recurse for ever


class ImageSig(NamedTuple):
    """One image as ocrmypdf alone keeps it: what a batch must not change."""

    filters: tuple[str, ...]
    width: int
    height: int
    bpc: int
    colour: str

    def lossless_view(self) -> ImageSig:
        """The same image with a /FlateDecode wrapped around another codec taken off: ocrmypdf's
        optimizer (-O1, the default) deflates JPEG data losslessly (whether a batch kept that from a
        document is checked apart: see batch.split)."""
        if len(self.filters) > 1 and self.filters[0] == "/FlateDecode":
            return self._replace(filters=self.filters[1:])
        return self

    def __str__(self) -> str:
        return f"{'+'.join(self.filters) or 'raw'} {self.width}x{self.height} {self.bpc}-bit {self.colour}"


def _names(value: pikepdf.Object | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, pikepdf.Array):
        return tuple(str(item) for item in value)
    return (str(value),)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0  # damaged files carry odd values: compared as they are, never a crash


def _colour(image: pikepdf.Object) -> str:
    if image.get("/ImageMask", False):
        return "/ImageMask"
    space = image.get("/ColorSpace")
    if space is None:
        return "none"  # JPEG 2000 carries its own
    if isinstance(space, pikepdf.Array):
        return str(space[0]) if len(space) else "none"
    return str(space)


def _images_in(resources: pikepdf.Object, depth: int = 0) -> Iterator[pikepdf.Object]:
    xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
    if not isinstance(xobjects, pikepdf.Dictionary) or depth > MAX_FORM_DEPTH:
        return
    for _, xobject in xobjects.items():
        if not isinstance(xobject, pikepdf.Stream):
            continue
        if xobject.get("/Subtype") == "/Image":
            yield xobject
        elif xobject.get("/Subtype") == "/Form" and "/Resources" in xobject:
            yield from _images_in(xobject.Resources, depth + 1)


def page_images(pdf: pikepdf.Pdf) -> list[list[ImageSig]]:
    """Per page, its images (in forms too) as signatures, in a stable order."""
    pages = []
    for page in pdf.pages:
        sigs = [ImageSig(_names(image.get("/Filter")), _int(image.get("/Width", 0)), _int(image.get("/Height", 0)),
                         _int(image.get("/BitsPerComponent", 0)), _colour(image))
                for image in _images_in(page.obj.get("/Resources", pikepdf.Dictionary()))]
        pages.append(sorted(sigs))
    return pages


def has_deflatable_jpeg(pdf: pikepdf.Pdf) -> bool:
    """Does the document hold a JPEG that ocrmypdf's optimizer would deflate?"""
    return any(_names(image.get("/Filter")) == ("/DCTDecode",) and "/DecodeParms" not in image
               and 8 <= _int(image.get("/Width", 0)) < FLATE_JPEG_THRESHOLD
               and 8 <= _int(image.get("/Height", 0)) < FLATE_JPEG_THRESHOLD
               for page in pdf.pages for image in _images_in(page.obj.get("/Resources", pikepdf.Dictionary())))


def batch_group(raw: Path) -> str | None:
    """Documents with JPEGs the optimizer deflates are batched together, apart from the others: its
    all-or-nothing decision over a call then goes as it would for each alone (measured: a call mixing
    one JPEG page with 13 other scans kept none of its work, and the JPEG stayed undeflated)."""
    with pikepdf.open(raw) as pdf:
        return "deflatable JPEG" if has_deflatable_jpeg(pdf) else None


def image_changes(expected: list[list[ImageSig]], actual: list[list[ImageSig]]) -> str | None:
    """The first difference, said for a person, or None when every page's images are the same
    (up to the optimizer's lossless wrapping)."""
    if len(expected) != len(actual):
        return f"{len(actual)} pages instead of {len(expected)}"
    for number, (want, got) in enumerate(zip(expected, actual, strict=False), start=1):
        if sorted(s.lossless_view() for s in want) != sorted(s.lossless_view() for s in got):
            lost = [str(s) for s in want if s not in got] or ["nothing"]
            new = [str(s) for s in got if s not in want] or ["nothing"]
            return f"page {number}: {', '.join(lost)} became {', '.join(new)}"
    return None


def ghostscript_reason(raw: Path) -> str | None:
    """Why ocrmypdf's own PDF/A conversion would not be approved for this document, so that
    Ghostscript would rewrite it (re-encoding its images), or None when pikepdf approves it.

    The same check ocrmypdf runs (``pikepdf.pdfa.save`` with the sRGB intent), on the pages before
    OCR: the text layer ocrmypdf adds is plain text in an embedded font, which PDF/A accepts.
    Measured here (pikepdf 10.18): JPEG 2000 images, DeviceN colour, DeviceCMYK under the sRGB
    intent and ICC profiles that are not of a display (Lab's abstract ones) need Ghostscript;
    sRGB ICC, Lab, Indexed, 16-bit, soft masks, CCITT and bilevel images do not. The prediction
    agreed with ocrmypdf on all 21 scans of the corpus (one, a JPEG 2000 photo, needs it)."""
    with pikepdf.open(raw) as pdf, tempfile.TemporaryDirectory(dir=raw.parent) as scratch:
        try:
            save_pdfa(pdf, Path(scratch) / "check.pdf", PDFA_FLAVOUR, output_intent="sRGB")
        except PdfaError as exc:
            findings = exc.report.findings
            return findings[0].message if findings else "pikepdf's validator did not approve it"
        except Exception as exc:  # noqa: BLE001 — ocrmypdf then falls back to Ghostscript too
            return f"pikepdf could not convert it ({type(exc).__name__}: {exc})"
    return None
