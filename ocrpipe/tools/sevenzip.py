"""7-Zip: list an archive (``7z l -slt``), refuse hostile ones, extract (``7z x``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from ocrpipe.errors import DiskFullError, PermanentError, TransientError
from ocrpipe.tools.run import ToolResult, disk_full, run_tool

# 7-Zip's exit codes: 0 ok, 1 warning, 2 fatal error, 7 bad command line, 8 out of memory, 255 stopped.
_CORRUPT = re.compile(
    r"Can ?not open (the )?file as archive|Unexpected end of (archive|data)|Data Error|CRC Failed"
    r"|Headers Error|is not archive|Unsupported Method",
    re.IGNORECASE,
)
_PASSWORD = re.compile(r"Wrong password|encrypted archive|Enter password", re.IGNORECASE)


@dataclass(frozen=True)
class ArchiveEntry:
    path: str
    size: int
    is_dir: bool
    encrypted: bool
    is_link: bool
    link_target: str = ""


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_bytes: int


def parse_listing(stdout: str) -> list[ArchiveEntry]:
    """Entries of ``7z l -slt`` output; the archive's own block (before ``----------``) is skipped."""
    _, sep, body = stdout.partition("\n----------\n")
    if not sep:
        return []
    entries = []
    for block in re.split(r"\n\s*\n", body):
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (line.partition(" = ") for line in block.splitlines())
            if _
        )
        if "Path" not in fields:
            continue
        attributes = fields.get("Attributes", "")
        entries.append(
            ArchiveEntry(
                path=fields["Path"],
                size=int(fields.get("Size") or 0),
                is_dir=fields.get("Folder") == "+" or attributes.startswith("D"),
                encrypted=fields.get("Encrypted") == "+",
                link_target=fields.get("Symbolic Link") or fields.get("Hard Link") or "",
                is_link=bool(fields.get("Symbolic Link") or fields.get("Hard Link"))
                or bool(re.search(r"(^|\s)l[rwxsStT-]{9}", attributes)),
            )
        )
    return entries


def unsafe_member(path: str) -> bool:
    """True for names that would land outside the extraction folder (zip-slip)."""
    normalised = path.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        return True
    return ".." in PurePosixPath(normalised).parts


def check_entries(entries: Sequence[ArchiveEntry], limits: ArchiveLimits) -> None:
    """Refuse archives that are hostile, locked or too big to unpack safely."""
    for entry in entries:
        if unsafe_member(entry.path) or (entry.link_target and unsafe_member(entry.link_target)):
            shown = entry.path if len(entry.path) <= 80 else "…" + entry.path[-60:]
            raise PermanentError(f"archive refused: member {shown!r} points outside the archive")
    if any(entry.encrypted for entry in entries):
        raise PermanentError("archive is password-protected; unpack it and drop the files instead")
    files = [e for e in entries if not e.is_dir]
    if len(files) > limits.max_members:
        raise PermanentError(f"archive refused: {len(files)} files, more than the limit of {limits.max_members}")
    total = sum(e.size for e in files)
    if total > limits.max_bytes:
        raise PermanentError(
            f"archive refused: it unpacks to {total // 2**20} MB, more than the limit of {limits.max_bytes // 2**20} MB"
        )


def _raise_for(result: ToolResult, action: str) -> None:
    if result.returncode in (0, 1):
        return
    text = result.stdout[-4000:] + "\n" + result.stderr_tail
    if disk_full(result):
        raise DiskFullError("the disk is full (7-Zip ran out of space)", result.returncode, result.stderr_tail)
    if _PASSWORD.search(text):
        raise PermanentError("archive is password-protected; unpack it and drop the files instead",
                             result.returncode, result.stderr_tail)
    if result.returncode == 2 and _CORRUPT.search(text):
        raise PermanentError(f"archive is damaged or not an archive 7-Zip can {action}",
                             result.returncode, result.stderr_tail)
    raise TransientError(f"7-Zip failed to {action} the archive (exit code {result.returncode})",
                         result.returncode, result.stderr_tail)


def list_archive(command: Sequence[str], archive: Path, *, timeout: float, env: Mapping[str, str],
                 log_path: Path | None = None) -> list[ArchiveEntry]:
    result = run_tool([*command, "l", "-slt", "-y", "--", str(archive)], timeout=timeout, env=env, log_path=log_path)
    _raise_for(result, "read")
    return parse_listing(result.stdout.replace("\r\n", "\n"))


def extract_archive(command: Sequence[str], archive: Path, dest: Path, *, timeout: float,
                    env: Mapping[str, str], log_path: Path | None = None) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    result = run_tool([*command, "x", "-y", f"-o{dest}", "--", str(archive)], timeout=timeout, env=env,
                      log_path=log_path)
    _raise_for(result, "unpack")
