"""ocrmypdf: the options we use, and what its exit codes mean for a job."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ocrpipe.errors import DiskFullError, PermanentError, TransientError
from ocrpipe.tools.run import ToolResult, disk_full

# Debian 12's Ghostscript 10.0.0 makes ``--output-type pdfa`` refuse ``--skip-text`` (exit 3), and the
# internal PDF/A backend fails on JPEG 2000 (exit 10). ``auto`` gives PDF/A-2b through either path and
# succeeded on every scan of the corpus; ``--skip-text`` keeps pages that already have text as they are.
DEFAULT_ARGS: tuple[str, ...] = ("--output-type", "auto", "--skip-text")
# Options that choose what happens to pages with text: one of them in OCR_ARGS replaces --skip-text,
# since ocrmypdf refuses two (exit 1).
_MODE_OPTIONS = ("-f", "--force-ocr", "-s", "--skip-text", "--redo-ocr", "-m", "--mode")

# ocrmypdf's ExitCode values (ocrmypdf.exceptions) that retrying the same file cannot fix.
_PERMANENT = {
    1: "ocrmypdf refused its options (check OCR_ARGS)",
    2: "the file is not a document ocrmypdf can read (damaged or unsupported)",
    3: "a program ocrmypdf needs is missing (run 'ocrpipe doctor')",
    6: "the document already has text and the options forbid OCR over it",
    8: "the PDF is encrypted; it needs a password to open",
    9: "ocrmypdf's configuration is invalid (check OCR_ARGS and OCR_LANG)",
    10: "the result could not be made PDF/A",
}
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


def default_args(extra_args: Sequence[str]) -> list[str]:
    """Our defaults, less --skip-text when the operator chose another mode for pages with text."""
    if any(_names_mode(arg) for arg in extra_args):
        return [arg for arg in DEFAULT_ARGS if arg != "--skip-text"]
    return list(DEFAULT_ARGS)


def build_argv(
    command: Sequence[str], input_pdf: Path, output_pdf: Path, *, lang: str, jobs: int,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Our defaults first, so the operator's OCR_ARGS can override them."""
    return [*command, *default_args(extra_args), "-l", lang, "--jobs", str(jobs), *extra_args, str(input_pdf),
            str(output_pdf)]


def profile_args(extra_args: Sequence[str]) -> list[str]:
    """The options that decide the output (``--jobs`` does not), for the job profile."""
    return [*default_args(extra_args), *extra_args]


def raise_for_exit(result: ToolResult) -> None:
    """Turn an exit code into a domain error; returns quietly on success."""
    code = result.returncode
    if code == 0:
        return
    if disk_full(result):
        raise DiskFullError("the disk is full (ocrmypdf ran out of space)", code, result.stderr_tail)
    if code in _PERMANENT:
        raise PermanentError(_PERMANENT[code], code, result.stderr_tail)
    if code < 0:
        reason = f"ocrmypdf was killed by signal {-code}"
    else:
        reason = _TRANSIENT.get(code, f"ocrmypdf failed with exit code {code}")
    raise TransientError(reason, code, result.stderr_tail)
