"""LibreOffice as a tool: the argv of a conversion (its own profile, headless, no restore), the environment and
profile that keep it off the network, what its exits mean, the settings, and its version in the job key."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from conftest import fake_command
from ocrpipe.config import Settings
from ocrpipe.errors import Code, ConfigError, DiskFullError, MissingToolError, PermanentError, TransientError
from ocrpipe.model import make_job_key
from ocrpipe.tools.check import build_profile, converter_versions, probe_tools
from ocrpipe.tools.run import ToolResult
from ocrpipe.tools.soffice import (
    DEAD_PROXY,
    conversion_error,
    convert_argv,
    no_network_env,
    write_profile,
)


def test_argv_gives_each_job_its_own_profile(tmp_path: Path) -> None:
    argv = convert_argv(["soffice"], tmp_path / "in" / "document.docx", tmp_path / "out", tmp_path / "lo-profile")
    assert argv[1] == f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}"
    assert {"--headless", "--norestore", "--nolockcheck"} <= set(argv)
    assert argv[-5:] == ["--convert-to", "pdf", "--outdir", str(tmp_path / "out"),
                         str(tmp_path / "in" / "document.docx")]


def test_the_network_is_behind_a_dead_proxy(tmp_path: Path) -> None:
    env = no_network_env({"PATH": "/bin", "HTTPS_PROXY": "http://real:3128", "no_proxy": "localhost,127.0.0.1"})
    assert env["PATH"] == "/bin"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ftp_proxy", "all_proxy"):
        assert env[name] == DEAD_PROXY
    assert env["no_proxy"] == env["NO_PROXY"] == "", "no host, loopback included, bypasses the dead proxy"
    write_profile(tmp_path / "p")
    settings = (tmp_path / "p" / "user" / "registrymodifications.xcu").read_text()
    for expected in ('oor:name="ooInetProxyType" oor:op="fuse"><value>2<', 'ooInetHTTPSProxyName" oor:op="fuse">'
                     '<value>127.0.0.1<', 'ooInetNoProxy" oor:op="fuse"><value><', 'DisableMacrosExecution'):
        assert expected in settings


def _result(code: int, stderr: str = "", stdout: str = "") -> ToolResult:
    return ToolResult(code, stdout, stderr, 1.0)


def test_what_its_exits_mean(tmp_path: Path) -> None:
    made = tmp_path / "document.pdf"
    assert isinstance(conversion_error(_result(0), made), TransientError), "exit 0 and no PDF is a failure"
    unloadable = conversion_error(_result(0, "Error: source file could not be loaded"), made)
    assert isinstance(unloadable, PermanentError) and unloadable.code is Code.OFFICE_DAMAGED
    assert isinstance(conversion_error(_result(1, "No space left on device"), made), DiskFullError)
    killed = conversion_error(_result(-9), made)
    assert isinstance(killed, TransientError) and not isinstance(killed, PermanentError)
    made.write_bytes(b"%PDF-1.4\n")
    assert conversion_error(_result(0), made) is None
    made.write_bytes(b"<html>not a pdf")
    assert conversion_error(_result(0), made) is not None


def test_settings(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert (settings.office_input, settings.convert_concurrency, settings.max_attempts_convert,
            settings.convert_timeout_seconds) == ("auto", 1, 3, 300.0)
    assert make_settings(OFFICE_INPUT="On", CONVERT_CONCURRENCY="3").office_input == "on"
    for name, bad in (("OFFICE_INPUT", "sometimes"), ("CONVERT_CONCURRENCY", "0"), ("CONVERT_TIMEOUT_SECONDS", "x"),
                      ("MAX_ATTEMPTS_CONVERT", "-1")):
        with pytest.raises(ConfigError, match=name):
            make_settings(**{name: bad})


def test_the_converters_version_is_part_of_the_job_key(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(SOFFICE=fake_command("soffice"), OFFICE_INPUT="on")
    converters = converter_versions(settings)
    assert converters["soffice"] == "99.2.0.1"
    tools = probe_tools(settings)
    key = make_job_key("f" * 64, build_profile(settings, tools, converters))[1]
    newer = make_job_key("f" * 64, build_profile(settings, tools, {**converters, "soffice": "99.3.0.1"}))[1]
    assert key != newer, "a new LibreOffice gives a new key"
    off = converter_versions(make_settings(SOFFICE=fake_command("soffice"), OFFICE_INPUT="off"))
    assert "soffice" not in off


def test_office_input_on_needs_libreoffice(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    missing = str(tmp_path / "no-soffice")
    with pytest.raises(MissingToolError, match="OFFICE_INPUT=on"):
        converter_versions(make_settings(SOFFICE=missing, OFFICE_INPUT="on"))
    assert "soffice" not in converter_versions(make_settings(SOFFICE=missing, OFFICE_INPUT="auto"))
