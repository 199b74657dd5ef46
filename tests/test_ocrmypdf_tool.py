"""ocrmypdf's argv and the sorting of its exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ocrpipe.errors import Code, PermanentError, TransientError
from ocrpipe.tools.ocrmypdf import build_argv, raise_for_exit
from ocrpipe.tools.check import own_ocrmypdf_version
from ocrpipe.tools.run import ToolResult, probe_version


def test_argv_defaults_first_so_operator_args_win() -> None:
    argv = build_argv(["ocrmypdf"], Path("raw.pdf"), Path("out.pdf"), lang="eng+fra", jobs=2,
                      extra_args=["--output-type", "pdf"])
    assert argv == ["ocrmypdf", "--output-type", "auto", "--skip-text", "-l", "eng+fra", "--jobs", "2",
                    "--output-type", "pdf", "raw.pdf", "out.pdf"]


@pytest.mark.parametrize("code", [1, 2, 3, 6, 8, 9, 10])
def test_permanent_exit_codes(code: int) -> None:
    with pytest.raises(PermanentError) as info:
        raise_for_exit(ToolResult(code, "", "tail", 1.0))
    assert info.value.exit_code == code and info.value.stderr_tail == "tail"


@pytest.mark.parametrize("code", [4, 5, 7, 15, 130, -9, 99])
def test_transient_exit_codes(code: int) -> None:
    with pytest.raises(TransientError):
        raise_for_exit(ToolResult(code, "", "", 1.0))


def test_success_and_reasons_are_plain_words() -> None:
    raise_for_exit(ToolResult(0, "", "", 1.0))
    with pytest.raises(PermanentError, match="encrypted"):
        raise_for_exit(ToolResult(8, "", "", 1.0))
    with pytest.raises(TransientError, match="killed by signal 9"):
        raise_for_exit(ToolResult(-9, "", "", 1.0))


def test_errors_survive_pickling() -> None:
    import pickle

    err = PermanentError("encrypted", 8, "tail")
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.reason, copy.exit_code, copy.stderr_tail) == (PermanentError, "encrypted", 8, "tail")


@pytest.mark.parametrize("mode", [["--force-ocr"], ["-f"], ["--redo-ocr"], ["--mode", "force"], ["-m", "redo"],
                                  ["--mode=skip"]])
def test_operator_mode_replaces_skip_text(mode: list[str]) -> None:
    argv = build_argv(["ocrmypdf"], Path("in.pdf"), Path("out.pdf"), lang="eng", jobs=1, extra_args=mode)
    assert "--skip-text" not in argv and argv[-2 - len(mode):-2] == mode
    assert argv[1:3] == ["--output-type", "auto"]


def test_own_ocrmypdf_version_is_the_one_its_command_reports() -> None:
    """Read from package metadata at start-up instead of running ocrmypdf: it must be the same string,
    or every job key (it holds the tool versions) would change and duplicates would go unnoticed."""
    assert own_ocrmypdf_version() == probe_version((sys.executable, "-m", "ocrmypdf"))
    assert own_ocrmypdf_version() is not None


# The last lines of ocrmypdf 17's stderr on OCRmyPDF's and paperless-ngx's own test files.
BOMB_TAIL = """  File ".../PIL/Image.py", line 3590, in _decompression_bomb_check
    raise DecompressionBombError(msg)
PIL.Image.DecompressionBombError: Image size (1225000000 pixels) exceeds limit of 500000000 pixels, could be \
decompression bomb DOS attack."""
JBIG2_TAIL = """ocrmypdf._exec.ghostscript... 
ocrmypdf.exceptions.HifiPrintImageNotTranscodableError: Image cannot be transcoded"""
SIGNED_TAIL = """DigitalSignatureError: Input PDF has a digital signature. OCR would alter the document,
invalidating the signature."""
XFA_TAIL = """This PDF contains dynamic XFA forms created by Adobe LiveCycle Designer and can only be read by \
Adobe Acrobat or Adobe Reader."""


@pytest.mark.parametrize(("exit_code", "tail", "code", "words"), [
    (15, BOMB_TAIL, Code.IMAGE_TOO_LARGE, "image too large: a page holds an image of 1,225 megapixels"),
    (15, JBIG2_TAIL, Code.PDF_UNSUPPORTED_IMAGE, "cannot convert"),
    (2, SIGNED_TAIL, Code.PDF_SIGNED, "digitally signed"),
    (2, XFA_TAIL, Code.PDF_XFA, "dynamic XFA form"),
    (2, "InputFileError: something else", Code.PDF_DAMAGED, "damaged or unsupported"),
    (8, "", Code.PDF_PASSWORD, "encrypted"),
])
def test_the_tools_own_diagnosis_makes_a_failure_permanent(exit_code: int, tail: str, code: Code,
                                                           words: str) -> None:
    with pytest.raises(PermanentError, match=words) as info:
        raise_for_exit(ToolResult(exit_code, "", tail, 1.0))
    assert info.value.code is code and info.value.exit_code == exit_code and not info.value.transient


def test_an_unknown_failure_stays_transient_with_the_generic_code() -> None:
    with pytest.raises(TransientError) as info:
        raise_for_exit(ToolResult(15, "", "ValueError: something nobody has seen", 1.0))
    assert info.value.code is Code.TOOL_FAILED


def test_codes_survive_pickling() -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(PermanentError("bomb", None, "", code=Code.ARCHIVE_BOMB)))
    assert copy.code is Code.ARCHIVE_BOMB and copy.reason == "bomb"


def test_argv_passes_the_image_limit_and_the_signature_choice() -> None:
    argv = build_argv(["ocrmypdf"], Path("raw.pdf"), Path("out.pdf"), lang="eng", jobs=1, max_image_mpixels=300,
                      invalidate_signatures=True)
    assert argv[6:11] == ["--jobs", "1", "--max-image-mpixels", "300", "--invalidate-digital-signatures"]
