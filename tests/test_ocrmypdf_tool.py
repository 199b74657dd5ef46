"""ocrmypdf's argv and the sorting of its exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ocrpipe.errors import PermanentError, TransientError
from ocrpipe.tools.ocrmypdf import build_argv, raise_for_exit
from ocrpipe.toolcheck import own_ocrmypdf_version
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
