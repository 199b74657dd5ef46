"""ocrmypdf: the options we use, and what its exit codes mean for a job."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ocrpipe.errors import Code, DiskFullError, PermanentError, TransientError
from ocrpipe.tools.run import ToolResult, disk_full

# Debian 12's Ghostscript 10.0.0 makes ``--output-type pdfa`` refuse ``--skip-text`` (exit 3), and the
# internal PDF/A backend fails on JPEG 2000 (exit 10). ``auto`` gives PDF/A-2b through either path and
# succeeded on every scan of the corpus; ``--skip-text`` keeps pages that already have text as they are.
DEFAULT_ARGS: tuple[str, ...] = ("--output-type", "auto", "--skip-text")
# PDFA=lossless: ocrmypdf writes PDF/A only through its own conversion, which keeps the images as
# they are; where only Ghostscript could make PDF/A (re-encoding images), it writes a regular PDF.
_PDFA_ARGS = {"auto": (), "lossless": ("--pdfa-backend", "internal"), "required": ()}
# ROTATE_PAGES=always: ocrmypdf's --rotate-pages turns a page when Tesseract's orientation detection
# is at least this sure. Its default, 14, left turned pages unturned here: right answers came with
# confidences from 1.3 (a small page) to 35, and no upright page was given a turn (README "Orientation").
ALWAYS_ROTATE_THRESHOLD = 1.0
ROTATE_CHOICES = ("auto", "always", "off")
# Options that choose what happens to pages with text: one of them in OCR_ARGS replaces --skip-text,
# since ocrmypdf refuses two (exit 1).
_MODE_OPTIONS = ("-f", "--force-ocr", "-s", "--skip-text", "--redo-ocr", "-m", "--mode")

# ocrmypdf's ExitCode values (ocrmypdf.exceptions) that retrying the same file cannot fix.
_PERMANENT = {
    1: ("ocrmypdf refused its options (check OCR_ARGS)", Code.TOOL_CONFIG),
    2: ("the file is not a document ocrmypdf can read (damaged or unsupported)", Code.PDF_DAMAGED),
    3: ("a program ocrmypdf needs is missing (run 'ocrpipe doctor')", Code.TOOL_CONFIG),
    6: ("the document already has text and the options forbid OCR over it", Code.PDF_HAS_TEXT),
    8: ("the PDF is encrypted; it needs a password to open", Code.PDF_PASSWORD),
    9: ("ocrmypdf's configuration is invalid (check OCR_ARGS and OCR_LANG)", Code.TOOL_CONFIG),
    10: ("the result could not be made PDF/A", Code.PDF_PDFA_FAILED),
}
# What ocrmypdf names in its stderr (an exception's name or its own words) decides over its exit
# code: these are permanent whatever the code (a decompression bomb exits 15, "other").
_DIAGNOSES: tuple[tuple[re.Pattern[str], str, Code], ...] = tuple((re.compile(pattern), reason, code) for (
    pattern, reason, code) in (
    (r"DecompressionBombError(?:: Image size \((?P<pixels>\d+) pixels\))?",
     "image too large: a page holds an image of {mpixels} megapixels, over MAX_IMAGE_MPIXELS", Code.IMAGE_TOO_LARGE),
    (r"NotTranscodable\w*Error|UnsupportedImageFormatError",
     "the PDF holds an image ocrmypdf cannot convert (a JBIG2 or similar image it cannot transcode)",
     Code.PDF_UNSUPPORTED_IMAGE),
    (r"DigitalSignatureError|has a digital signature",
     "the PDF is digitally signed and OCR would invalidate the signature (see SIGNED_PDF)", Code.PDF_SIGNED),
    (r"dynamic XFA forms?",
     "the PDF is a dynamic XFA form (Adobe LiveCycle) that only Adobe Reader can show; print it to PDF from "
     "there and drop that", Code.PDF_XFA),
    (r"EncryptedPdfError", "the PDF is encrypted; it needs a password to open", Code.PDF_PASSWORD),
    (r"PriorOcrFoundError|TaggedPDFError", "the document already has text and the options forbid OCR over it",
     Code.PDF_HAS_TEXT),
    (r"MissingDependencyError", "a program ocrmypdf needs is missing (run 'ocrpipe doctor')", Code.TOOL_CONFIG),
))
# The rest — 4 invalid output, 5 file access, 7 a child process failed, 15 other, 130 interrupted,
# or killed by a signal — are the kind of failure another attempt may not meet.
_TRANSIENT = {
    4: "ocrmypdf produced an invalid PDF",
    5: "ocrmypdf could not read or write a file",
    7: "a program run by ocrmypdf (Tesseract or Ghostscript) failed",
    15: "ocrmypdf failed unexpectedly",
    130: "ocrmypdf was interrupted",
}


def _names_mode(arg: str) -> bool:
    return arg in _MODE_OPTIONS or arg.startswith(("--mode=", "-m="))


def default_args(extra_args: Sequence[str], pdfa: str = "auto") -> list[str]:
    """Our defaults, less --skip-text when the operator chose another mode for pages with text."""
    args = [*DEFAULT_ARGS, *_PDFA_ARGS[pdfa]]
    if any(_names_mode(arg) for arg in extra_args):
        return [arg for arg in args if arg != "--skip-text"]
    return args


def orientation_args(rotate_pages: str, deskew: bool, plugin: Path | None = None) -> list[str]:
    """ROTATE_PAGES and DESKEW as ocrmypdf options; ``auto`` loads ocrpipe's plugin (``plugin``: its
    file; without it, as the job profile names it, machine-independent)."""
    if rotate_pages not in ROTATE_CHOICES:
        raise ValueError(f"rotate_pages={rotate_pages!r}")
    turn = {"auto": ["--plugin", str(plugin)] if plugin else ["ROTATE_PAGES=auto"],
            "always": ["--rotate-pages", "--rotate-pages-threshold", f"{ALWAYS_ROTATE_THRESHOLD:g}"],
            "off": []}[rotate_pages]
    return [*turn, *(["--deskew"] if deskew else [])]


def build_argv(
    command: Sequence[str], input_pdf: Path, output_pdf: Path, *, lang: str, jobs: int,
    extra_args: Sequence[str] = (), max_image_mpixels: float | None = None, invalidate_signatures: bool = False,
    pdfa: str = "auto", orientation: Sequence[str] = (), sidecar: Path | None = None,
) -> list[str]:
    """Our defaults first, so the operator's OCR_ARGS can override them; ``orientation`` is what
    ``orientation_args`` gives for the plugin's file; ``sidecar``: where ocrmypdf writes the text it
    read, page by page (OCR_LANG=auto reads the language from it)."""
    limits = ["--max-image-mpixels", f"{max_image_mpixels:g}"] if max_image_mpixels else []
    signed = ["--invalidate-digital-signatures"] if invalidate_signatures else []
    text = ["--sidecar", str(sidecar)] if sidecar else []
    return [*command, *default_args(extra_args, pdfa), "-l", lang, "--jobs", str(jobs), *limits, *signed,
            *orientation, *text, *extra_args, str(input_pdf), str(output_pdf)]


def profile_args(extra_args: Sequence[str], pdfa: str = "auto", *, rotate_pages: str = "off",
                 deskew: bool = False) -> list[str]:
    """The options that decide the output (``--jobs`` does not), for the job profile. PDFA=required
    adds no option but fails what is not PDF/A, so it is named; ``auto`` keeps the keys of old jobs,
    and so does ROTATE_PAGES=off (what ocrpipe did before it had the setting)."""
    named = ["PDFA=required"] if pdfa == "required" else []
    return [*default_args(extra_args, pdfa), *orientation_args(rotate_pages, deskew), *extra_args, *named]


def diagnose(stderr: str) -> tuple[str, Code] | None:
    """The cause ocrmypdf named in its output, as a reason for a person and a code."""
    for pattern, reason, code in _DIAGNOSES:
        matches = list(pattern.finditer(stderr))
        if matches:
            pixels = matches[-1].groupdict().get("pixels")  # the traceback's last line carries the message
            return reason.format(mpixels=f"{int(pixels) / 1e6:,.0f}" if pixels else "too many"), code
    return None


def raise_for_exit(result: ToolResult) -> None:
    """Turn an exit code into a domain error; returns quietly on success."""
    code = result.returncode
    if code == 0:
        return
    if disk_full(result):
        raise DiskFullError("the disk is full (ocrmypdf ran out of space)", code, result.stderr_tail)
    named = diagnose(result.stderr_tail) if code > 0 else None
    if named:
        raise PermanentError(named[0], code, result.stderr_tail, code=named[1])
    if code in _PERMANENT:
        reason, reason_code = _PERMANENT[code]
        raise PermanentError(reason, code, result.stderr_tail, code=reason_code)
    if code < 0:
        reason = f"ocrmypdf was killed by signal {-code}"
    else:
        reason = _TRANSIENT.get(code, f"ocrmypdf failed with exit code {code}")
    raise TransientError(reason, code, result.stderr_tail)
