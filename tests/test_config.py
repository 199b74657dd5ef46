"""Settings: one builder, flags win, bad values named with what is accepted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ocrpipe.cli import main
from ocrpipe.config import default_ocr_concurrency, load_settings
from ocrpipe.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    s = load_settings({"DATA_DIR": str(tmp_path)})
    assert s.in_dir == tmp_path.resolve() / "in" and s.out_dir == tmp_path.resolve() / "out"
    assert (s.poll_seconds, s.stable_seconds, s.prep_concurrency, s.image_dpi) == (1.0, 2.0, 1, 300)
    assert s.ocr_lang == "fra+eng" and s.ocr_args == ()
    assert 1 <= s.ocr_concurrency <= s.cpu_count
    assert s.ocrmypdf[-2:] == ("-m", "ocrmypdf")
    assert (s.orchestrator_host, s.orchestrator_port, s.health_stale_seconds, s.log_file) == ("127.0.0.1", 8080, 30, None)


def test_api_and_log_file_flags(tmp_path: Path) -> None:
    s = load_settings({"DATA_DIR": str(tmp_path), "ORCHESTRATOR_PORT": "9000"},
                      {"ORCHESTRATOR_PORT": "0", "LOG_FILE": str(tmp_path / "logs" / "ocrpipe.log")})
    assert s.orchestrator_port == 0 and s.log_file == (tmp_path / "logs" / "ocrpipe.log").resolve()


def test_flags_win_over_environment(tmp_path: Path) -> None:
    s = load_settings({"DATA_DIR": str(tmp_path / "env"), "OCR_CONCURRENCY": "1"},
                      {"DATA_DIR": tmp_path / "flag", "OCR_CONCURRENCY": 3})
    assert s.data_dir == (tmp_path / "flag").resolve() and s.ocr_concurrency == 3


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("POLL_SECONDS", "soon", "POLL_SECONDS='soon' is not valid: expected a number >= 0.05"),
    ("PREP_CONCURRENCY", "0", "PREP_CONCURRENCY=0 is not valid: expected a whole number >= 1"),
    ("OCR_CONCURRENCY", "2.5", "OCR_CONCURRENCY='2.5' is not valid: expected a whole number >= 1"),
    ("LOG_LEVEL", "loud", "LOG_LEVEL='LOUD' is not valid: expected one of DEBUG, INFO, WARNING, ERROR"),
    ("LOG_JSON", "perhaps", "LOG_JSON='perhaps' is not valid: expected true or false"),
    ("OCR_LANG", "fra eng", "OCR_LANG='fra eng' is not valid: expected Tesseract language codes"),
    ("OCR_ARGS", "--title 'unclosed", "OCR_ARGS=\"--title 'unclosed\" is not valid: expected ocrmypdf options"),
    ("MAX_ARCHIVE_RATIO", "0.5", "MAX_ARCHIVE_RATIO=0.5 is not valid: expected a number >= 1"),
    ("MAX_IMAGE_MPIXELS", "lots", "MAX_IMAGE_MPIXELS='lots' is not valid: expected a number >= 1"),
    ("SIGNED_PDF", "sign", "SIGNED_PDF='SIGN' is not valid: expected one of KEEP, OCR, ERROR"),
    ("EMPTY_FOLDER_SECONDS", "5", "EMPTY_FOLDER_SECONDS=5.0 is not valid: expected a number >= 60"),
    ("ORCHESTRATOR_PORT", "65536", "ORCHESTRATOR_PORT='65536' is not valid: expected a port number from 0 (off)"),
    ("ORCHESTRATOR_PORT", "http", "ORCHESTRATOR_PORT='http' is not valid: expected a port number"),
    ("ORCHESTRATOR_HOST", "my host", "ORCHESTRATOR_HOST='my host' is not valid: expected an IP address or host name"),
    ("HEALTH_STALE_SECONDS", "0", "HEALTH_STALE_SECONDS=0.0 is not valid: expected a number >= 1"),
])
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"DATA_DIR": str(tmp_path), name: value})
    assert str(info.value).startswith(expected)


def test_output_folders_inside_in_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OUT_DIR=.* must not be inside IN_DIR"):
        load_settings({"DATA_DIR": str(tmp_path), "OUT_DIR": str(tmp_path / "in" / "out")})
    with pytest.raises(ConfigError, match="ERROR_DIR"):
        load_settings({"IN_DIR": str(tmp_path / "drop"), "ERROR_DIR": str(tmp_path / "drop")})


def test_tool_command_with_spaces_in_a_path(tmp_path: Path) -> None:
    exe = tmp_path / "Program Files" / "7-Zip" / "7z.exe"
    exe.parent.mkdir(parents=True)
    exe.write_text("")
    s = load_settings({"DATA_DIR": str(tmp_path), "SEVEN_ZIP": str(exe)})
    assert s.seven_zip == (str(exe),)
    s = load_settings({"DATA_DIR": str(tmp_path), "SEVEN_ZIP": f'"{sys.executable}" fake.py 7z'})
    assert s.seven_zip == (sys.executable, "fake.py", "7z")


def test_ocr_concurrency_is_bounded_by_memory() -> None:
    assert default_ocr_concurrency(8, 64 * 2**30) == 8
    assert default_ocr_concurrency(8, 4 * 2**30) == 4  # 2 GiB for 16 page workers, 512 MiB a run
    assert default_ocr_concurrency(8, 1 * 2**30) == 1
    assert default_ocr_concurrency(4, 100 * 2**20) == 1


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MAX_JOBS_IN_FLIGHT", "lots")
    assert main(["status", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "ocrpipe: error: MAX_JOBS_IN_FLIGHT='lots' is not valid: expected a whole number >= 1\n"


def test_cli_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--no-such-flag"])
    assert info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=f"STABLE_SECONDS={value} is not valid: expected a number >= 0"):
        load_settings({"DATA_DIR": str(tmp_path), "STABLE_SECONDS": value})


def test_newest_ghostscript_folder_wins_on_windows(tmp_path: Path) -> None:
    from ocrpipe.locate import find_tool

    for version in ("gs9.56.1", "gs10.02.1", "gs10.0.0"):
        exe = tmp_path / "gs" / version / "bin" / "gswin64c.exe"
        exe.parent.mkdir(parents=True)
        exe.write_text("")
    found = find_tool("gs", environ={"PATH": "", "ProgramFiles": str(tmp_path)}, windows=True)
    assert found == str(tmp_path / "gs" / "gs10.02.1" / "bin" / "gswin64c.exe")


def test_hostile_input_settings(tmp_path: Path) -> None:
    defaults = load_settings({"DATA_DIR": str(tmp_path)})
    assert (defaults.max_archive_ratio, defaults.max_image_mpixels, defaults.signed_pdf,
            defaults.empty_folder_seconds) == (200, 300, "keep", 600)
    chosen = load_settings({"DATA_DIR": str(tmp_path), "MAX_ARCHIVE_RATIO": "50", "MAX_IMAGE_MPIXELS": "1000",
                            "SIGNED_PDF": "OCR", "EMPTY_FOLDER_SECONDS": "3600"})
    assert (chosen.max_archive_ratio, chosen.max_image_mpixels, chosen.signed_pdf,
            chosen.empty_folder_seconds) == (50, 1000, "ocr", 3600)
