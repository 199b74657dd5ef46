"""7-Zip: list an archive (``7z l -slt``), refuse hostile ones, extract (``7z x``) under watch."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ocrpipe.errors import Code, DiskFullError, PermanentError, StageError, TransientError
from ocrpipe.tools.run import ToolResult, disk_full, run_tool

# 7-Zip's exit codes: 0 ok, 1 warning, 2 fatal error, 7 bad command line, 8 out of memory, 255 stopped.
_CORRUPT = re.compile(
    r"Can ?not open (the )?file as (\[\w+\] )?archive|Unexpected end of (archive|data)|Data Error|CRC Failed"
    r"|Headers Error|is not archive|Unsupported Method|Unsupported compression method|Unknown method",
    re.IGNORECASE,
)
# 7-Zip says "Unsupported Method" for a member it has no decoder for (RAR in Debian's p7zip, the
# deflate64 or PPMd of some zips); retrying cannot bring the decoder.
_METHOD = re.compile(r"Unsupported (compression )?Method|Unknown method", re.IGNORECASE)
# Below this many bytes unpacked, a high ratio harms nothing (a zip of one blank page packs 500:1).
RATIO_FLOOR_BYTES = 16 * 2**20
WATCH_SECONDS = 0.02  # how often the extraction folder is looked at, at most
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
    """What is left of the job's budget (every level of nesting spends the same one), and the ratio."""

    max_members: int
    max_bytes: int
    max_ratio: float = 200.0

    def bytes_for(self, packed: int) -> int:
        """How many bytes an archive of ``packed`` bytes may unpack to."""
        return min(self.max_bytes, max(RATIO_FLOOR_BYTES, int(packed * self.max_ratio)))


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"


def bomb(what: str) -> PermanentError:
    return PermanentError(f"archive bomb refused: {what}", code=Code.ARCHIVE_BOMB)


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


def office_document(entries: Sequence[ArchiveEntry]) -> str | None:
    """An OpenDocument or Office Open XML file is a zip, but its pages are not files inside it."""
    names = {entry.path.replace("\\", "/") for entry in entries}
    if "mimetype" in names and "META-INF/manifest.xml" in names:
        return "an OpenDocument file (.odt, .ods…)"
    if "[Content_Types].xml" in names:
        return "an Office document (.docx, .xlsx…)"
    return None


def unsafe_member(path: str) -> bool:
    """True for names that would land outside the extraction folder (zip-slip)."""
    normalised = path.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        return True
    return ".." in PurePosixPath(normalised).parts


def check_entries(entries: Sequence[ArchiveEntry], limits: ArchiveLimits, *, packed: int | None = None) -> None:
    """Refuse archives that are hostile, locked or too big to unpack safely, by what the listing declares
    (extraction is watched too: see ``extract_archive``, as a crafted archive declares little)."""
    for entry in entries:
        if unsafe_member(entry.path) or (entry.link_target and unsafe_member(entry.link_target)):
            shown = entry.path if len(entry.path) <= 80 else "…" + entry.path[-60:]
            raise PermanentError(f"archive refused: member {shown!r} points outside the archive",
                                 code=Code.ARCHIVE_UNSAFE_PATH)
    if any(entry.encrypted for entry in entries):
        raise PermanentError("archive is password-protected; unpack it and drop the files instead",
                             code=Code.ARCHIVE_PASSWORD)
    files = [e for e in entries if not e.is_dir]
    if len(files) > limits.max_members:
        raise bomb(f"{len(files)} files, more than the limit of {limits.max_members} (MAX_ARCHIVE_MEMBERS)")
    total = sum(e.size for e in files)
    if total > limits.max_bytes:
        raise bomb(f"it unpacks to {total // 2**20} MB, more than the limit of {limits.max_bytes // 2**20} MB "
                   "(MAX_ARCHIVE_MB)")
    if packed is not None and total > limits.bytes_for(packed):
        raise bomb(f"it unpacks to {_mb(total)} from {_mb(packed)}, more than {limits.max_ratio:g} times its "
                   "size (MAX_ARCHIVE_RATIO)")


class ExtractionWatch:
    """Called while 7-Zip extracts: counts what it has written so far and stops it at a limit, since
    an archive's listing can lie (a member declared small that inflates to gigabytes)."""

    def __init__(self, dest: Path, limits: ArchiveLimits, packed: int) -> None:
        self.dest = dest
        self.limits = limits
        self.packed = packed
        self.files = 0
        self.bytes = 0
        self._next = 0.0

    def __call__(self, *, final: bool = False) -> None:
        # 7-Zip writes up to ~1 GB/s: looking often keeps the overshoot small, but a folder of
        # thousands of files costs a while to count, so the looks are spaced by 10x their own cost.
        started = time.monotonic()
        if not final and started < self._next:
            return
        self.files, self.bytes = _usage(self.dest)
        self._next = started + 10 * (time.monotonic() - started)
        if self.files > self.limits.max_members:
            raise bomb(f"7-Zip had written {self.files} files, more than the limit of {self.limits.max_members} "
                       "(MAX_ARCHIVE_MEMBERS), though the archive declared fewer")
        if self.bytes > self.limits.max_bytes:
            raise bomb(f"7-Zip had written {_mb(self.bytes)}, more than the limit of "
                       f"{self.limits.max_bytes // 2**20} MB (MAX_ARCHIVE_MB), though the archive declared less")
        if self.bytes > self.limits.bytes_for(self.packed):
            raise bomb(f"7-Zip had written {_mb(self.bytes)} from {_mb(self.packed)}, more than "
                       f"{self.limits.max_ratio:g} times its size (MAX_ARCHIVE_RATIO), though the archive "
                       "declared less")


def _usage(folder: Path) -> tuple[int, int]:
    """Files and bytes under ``folder``: allocated bytes where the OS tells them, so sparse files
    count what they take, and a file still being written counts what it has so far."""
    files = size = 0
    stack = [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                            continue
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone between listing and stat
                    files += 1
                    size += max(st.st_size, getattr(st, "st_blocks", 0) * 512)
        except OSError:
            continue
    return files, size


def _raise_for(result: ToolResult, action: str) -> None:
    error = extract_error(result, action)
    if error is not None:
        raise error


def extract_error(result: ToolResult, action: str) -> StageError | None:
    """What 7-Zip's exit code and its own words say went wrong; None on success. What it names
    (a password, a method it lacks, a file that is no archive) is permanent; the rest is retried."""
    if result.returncode in (0, 1):
        return None
    text = result.stdout[-4000:] + "\n" + result.stderr_tail
    if disk_full(result):
        return DiskFullError("the disk is full (7-Zip ran out of space)", result.returncode, result.stderr_tail)
    if _PASSWORD.search(text):
        return PermanentError("archive is password-protected; unpack it and drop the files instead",
                              result.returncode, result.stderr_tail, code=Code.ARCHIVE_PASSWORD)
    if result.returncode == 2 and _METHOD.search(text):
        return PermanentError("archive uses a compression method this 7-Zip cannot unpack (for RAR, see "
                              "SEVEN_ZIP in the README)", result.returncode, result.stderr_tail,
                              code=Code.ARCHIVE_DAMAGED)
    if result.returncode == 2 and _CORRUPT.search(text):
        return PermanentError(f"archive is damaged or not an archive 7-Zip can {action}",
                              result.returncode, result.stderr_tail, code=Code.ARCHIVE_DAMAGED)
    return TransientError(f"7-Zip failed to {action} the archive (exit code {result.returncode})",
                          result.returncode, result.stderr_tail)


def list_archive(command: Sequence[str], archive: Path, *, timeout: float, env: Mapping[str, str],
                 log_path: Path | None = None) -> list[ArchiveEntry]:
    result = run_tool([*command, "l", "-slt", "-y", "--", str(archive)], timeout=timeout, env=env, log_path=log_path)
    _raise_for(result, "read")
    return parse_listing(result.stdout.replace("\r\n", "\n"))


def extract_archive(command: Sequence[str], archive: Path, dest: Path, *, timeout: float,
                    env: Mapping[str, str], log_path: Path | None = None,
                    limits: ArchiveLimits | None = None) -> tuple[int, int]:
    """Unpack into ``dest``; with ``limits``, 7-Zip's tree is stopped the moment what it wrote crosses
    one. Returns the files and bytes written (for the budget of the levels below)."""
    dest.mkdir(parents=True, exist_ok=True)
    watch = ExtractionWatch(dest, limits, archive.stat().st_size) if limits else None
    result = run_tool([*command, "x", "-y", f"-o{dest}", "--", str(archive)], timeout=timeout, env=env,
                      log_path=log_path, watch=watch, watch_every=WATCH_SECONDS)
    if watch is not None:
        watch(final=True)  # a quick 7-Zip may finish between two looks
    _raise_for(result, "unpack")
    return (watch.files, watch.bytes) if watch else _usage(dest)
