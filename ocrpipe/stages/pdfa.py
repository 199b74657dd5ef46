"""What one ocrmypdf run did to PDF/A and to the images, for the job's record; PDFA=required enforced."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pikepdf
from pikepdf.pdfa import PdfaError, prepare, resolve_save_kwargs
from pikepdf.pdfa import save as save_pdfa

from ocrpipe.errors import Code, PermanentError
from ocrpipe.stages.fidelity import image_changes, page_images

# What ocrmypdf 17 logs (stderr) with --output-type auto when its own PDF/A was not approved:
# Ghostscript made it instead, or (no Ghostscript, or --pdfa-backend internal) nobody did.
GHOSTSCRIPT_MESSAGE = "produced PDF/A via Ghostscript"
NO_PDFA_MESSAGE = "could not produce PDF/A"
# … and when its optimizer's result was not smaller than its input, a decision for the file as a whole.
OPTIMIZER_UNUSED_MESSAGE = "optimizations will not be used"


def _tool_log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def went_through_ghostscript(tool_log: Path) -> bool:
    return GHOSTSCRIPT_MESSAGE in _tool_log(tool_log)


def optimizer_unused(tool_log: Path) -> bool:
    return OPTIMIZER_UNUSED_MESSAGE in _tool_log(tool_log)


def batch_spoiled(tool_log: Path) -> str | None:
    """Why a batch's output is not what each member alone would get, or None: one member kept
    ocrmypdf's own PDF/A from being approved, for all of them."""
    text = _tool_log(tool_log)
    if GHOSTSCRIPT_MESSAGE in text:
        return "ocrmypdf made its PDF/A with Ghostscript, which re-encodes images"
    if NO_PDFA_MESSAGE in text:
        return "ocrmypdf could not make it PDF/A"
    return None


def images_changed(raw: Path, output: Path) -> str | None:
    """How the output's page images differ from the input's (codec, size, bits, colour), or None."""
    with pikepdf.open(raw) as before, pikepdf.open(output) as after:
        return image_changes(page_images(before), page_images(after))


def run_fields(*, pdfa_setting: str, raw: Path, output: Path, pdfa: str | None, tool_log: Path,
               predicted: str | None) -> dict[str, Any]:
    """``imagesReencoded`` (and why) and, for PDFA=lossless, why the output is not PDF/A.

    ``predicted`` is PREP's reason why ocrmypdf's own PDF/A conversion would not be approved."""
    if pdfa is None and pdfa_setting == "required":
        why = f" ({predicted})" if predicted else ""
        raise PermanentError(f"the result could not be made PDF/A{why}, and PDFA=required",
                             code=Code.PDF_PDFA_FAILED)
    fields: dict[str, Any] = {"imagesReencoded": False, "reencodeReason": None, "pdfaSkippedReason": None}
    changed = images_changed(raw, output)
    if went_through_ghostscript(tool_log):
        why = predicted or "ocrmypdf's own PDF/A conversion was not approved"
        fields.update(imagesReencoded=True, reencodeReason=(
            f"PDF/A made by Ghostscript, which rewrites the images, since {why}" + (f"; {changed}" if changed else "")))
    elif changed:
        fields.update(imagesReencoded=True, reencodeReason=changed)
    if pdfa is None and pdfa_setting == "lossless" and predicted:
        fields["pdfaSkippedReason"] = f"a regular PDF, since only Ghostscript could make PDF/A ({predicted}), " \
                                      "re-encoding the images (PDFA=lossless)"
    return fields


def save_as_pdfa(part: pikepdf.Pdf, ocred: pikepdf.Pdf, out: Path, flavour: str | None) -> bool:
    """Save a document made of ocrmypdf's pages (cut from a batch, merged from ranges): PDF/A
    ``flavour`` with ``ocred``'s OutputIntent (ocrmypdf's sRGB), or a plain PDF when None. True when
    pikepdf's PDF/A check passed on the bytes written (its save re-opens and checks them)."""
    if flavour is None:
        part.save(out)
        return False
    if "/OutputIntents" in ocred.Root:
        part.Root.OutputIntents = pikepdf.Array(
            part.copy_foreign(intent) if intent.is_indirect else intent for intent in ocred.Root.OutputIntents)
    try:
        save_pdfa(part, out, flavour, output_intent=None)
        return True
    except PdfaError:
        # pikepdf's validator cannot check some content (JPEG 2000): declare PDF/A as ocrmypdf's
        # Ghostscript route did, without the validator's approval.
        prepare(part, flavour, output_intent=None)
        part.save(out, **resolve_save_kwargs(flavour))
        return False


def pdfa_flavours(outputs: Iterable[Path]) -> set[str | None]:
    """The PDF/A flavours ("1b", "2b", "3b"; None: not PDF/A) that outputs of one document's several
    ocrmypdf calls claim: more than one, and they cannot become one document."""
    found: set[str | None] = set()
    for output in outputs:
        with pikepdf.open(output) as pdf:
            status = (pdf.open_metadata().pdfa_status or "").lower()
            found.add(status if status in ("1b", "2b", "3b") else None)
    return found
