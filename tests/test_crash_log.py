"""An internal error leaves its traceback in the system's temp folder, never in the current folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from ocrpipe import cli


def test_crash_log_goes_to_the_temp_folder_not_the_current_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    temp, cwd = tmp_path / "temp", tmp_path / "cwd"
    temp.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(cwd)

    def broken(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_dispatch", broken)
    assert cli.main(["status"]) == 1
    crash = temp / "ocrpipe-crash.log"
    assert "RuntimeError: a bug" in crash.read_text(encoding="utf-8")
    assert list(cwd.iterdir()) == []
    assert f"details in {crash}" in capsys.readouterr().err
