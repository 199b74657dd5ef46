"""LibreOffice (``soffice``): its version, the argv of a headless conversion to PDF with a profile of its own
and no network, and what its exit says."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ocrpipe.errors import Code, DiskFullError, PermanentError, TransientError
from ocrpipe.tools.run import ToolResult, disk_full, probe_version, run_tool

INSTALL = ("sudo apt-get install -y --no-install-recommends libreoffice-writer-nogui libreoffice-calc-nogui "
           "libreoffice-impress-nogui fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation",
           "winget install --id TheDocumentFoundation.LibreOffice")
# Every fetch LibreOffice makes goes through this proxy, a loopback port nothing listens on: a document's
# linked image (a tracking pixel, say) fails to load instead of calling out. Port 9 is "discard", never
# served on an office PC; a refused connection fails at once, with no time-out to wait for.
DEAD_PROXY_HOST, DEAD_PROXY_PORT = "127.0.0.1", 9
DEAD_PROXY = f"http://{DEAD_PROXY_HOST}:{DEAD_PROXY_PORT}"
PROFILE_DIR = "lo-profile"
# Beside the soffice executable, LibreOffice's version: an upgrade rewrites it (tools/probecache.py's key).
VERSION_FILES = ("versionrc", "version.ini")
# LibreOffice's own settings in the job's profile: the same dead proxy for HTTP, HTTPS and FTP, no
# exceptions, and no update check or other start-up fetch.
_REGISTRY = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
{items}
</oor:items>
"""
_INET = "org.openoffice.Inet/Settings"
_SECURITY = "org.openoffice.Office.Common/Security/Scripting"
_PROFILE_SETTINGS: tuple[tuple[str, str, str], ...] = (
    (_INET, "ooInetProxyType", "2"),  # 2: the proxies named here, not the system's
    (_INET, "ooInetNoProxy", ""),
    *((_INET, f"ooInet{scheme}Proxy{field}", value) for scheme in ("HTTP", "HTTPS", "FTP")
      for field, value in (("Name", DEAD_PROXY_HOST), ("Port", str(DEAD_PROXY_PORT)))),
    ("org.openoffice.Office.Common/Misc", "UseLocking", "false"),
    (_SECURITY, "MacroSecurityLevel", "3"),  # "very high": no document macro runs
    (_SECURITY, "DisableMacrosExecution", "true"),
)
_NOT_LOADED = re.compile(r"source file could not be loaded|Error: .*could not be loaded", re.IGNORECASE)


def write_profile(profile_dir: Path) -> None:
    """A fresh LibreOffice profile for one job, with the network settings above. One per job: instances
    sharing a profile fail silently (measured: one of three exited 1 with no PDF)."""
    user = profile_dir / "user"
    user.mkdir(parents=True, exist_ok=True)
    items = "\n".join(f'<item oor:path="/{path}"><prop oor:name="{name}" oor:op="fuse"><value>{value}</value>'
                      "</prop></item>" for path, name, value in _PROFILE_SETTINGS)
    (user / "registrymodifications.xcu").write_text(_REGISTRY.format(items=items), encoding="utf-8")


def no_network_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment LibreOffice runs in: every proxy variable at the dead proxy, no exceptions."""
    out = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "ftp_proxy",
                                                             "all_proxy", "no_proxy")}
    for name in ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy"):
        out[name] = out[name.upper()] = DEAD_PROXY
    out["no_proxy"] = out["NO_PROXY"] = ""
    return out


def convert_argv(command: Sequence[str], source: Path, outdir: Path, profile_dir: Path) -> list[str]:
    """``soffice --headless --convert-to pdf`` with the job's own profile; no recovery, no lock files."""
    return [*command, f"-env:UserInstallation={profile_dir.resolve().as_uri()}", "--headless", "--invisible",
            "--norestore", "--nologo", "--nodefault", "--nolockcheck", "--convert-to", "pdf",
            "--outdir", str(outdir), str(source)]


def convert_to_pdf(command: Sequence[str], source: Path, outdir: Path, *, profile_dir: Path, timeout: float,
                   env: Mapping[str, str], log_path: Path | None = None) -> Path:
    """Convert ``source`` into ``outdir/<stem>.pdf``; a domain error when no PDF came out."""
    if not (profile_dir / "user" / "registrymodifications.xcu").is_file():
        write_profile(profile_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    result = run_tool(convert_argv(command, source, outdir, profile_dir), timeout=timeout,
                      env=no_network_env(env), log_path=log_path)
    made = outdir / f"{source.stem}.pdf"
    error = conversion_error(result, made)
    if error is not None:
        raise error
    return made


def conversion_error(result: ToolResult, made: Path) -> Exception | None:
    """None when a PDF came out. LibreOffice often exits 0 without one, so the file decides; its words
    "could not be loaded" mean it cannot open the document (damaged, or a format it lacks): permanent."""
    if result.returncode == 0 and made.is_file() and made.stat().st_size > 0 and _is_pdf(made):
        return None
    if disk_full(result):
        return DiskFullError("the disk is full (LibreOffice ran out of space)", result.returncode, result.stderr_tail)
    text = result.stdout[-4000:] + "\n" + result.stderr_tail
    if _NOT_LOADED.search(text):
        return PermanentError("LibreOffice could not open the document (damaged, or not a format it reads)",
                              result.returncode, tail_of(text), code=Code.OFFICE_DAMAGED)
    if result.returncode < 0:
        return TransientError(f"LibreOffice was killed by signal {-result.returncode}", result.returncode,
                              result.stderr_tail)
    return TransientError(f"LibreOffice made no PDF (exit code {result.returncode})", result.returncode,
                          tail_of(text))


def tail_of(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def _is_pdf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return b"%PDF-" in handle.read(1024)


def soffice_version(command: Sequence[str], env: Mapping[str, str]) -> str | None:
    """``LibreOffice 7.4.7.2 40(Build:2)`` → ``7.4.7.2``; None when it does not run. ``--version`` starts
    no office and makes no profile (0.2 s here)."""
    return probe_version(command, ("--version",), env=no_network_env(env))
