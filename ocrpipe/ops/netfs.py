"""Is a folder on a network file system? The job index must not be: SQLite's WAL needs shared memory that
NFS, SMB and their kin do not give. Linux reads the mount table; Windows asks the drive type. Twins chosen
by platform at call time, each a plain function of its inputs, so both are tested on any OS."""

from __future__ import annotations

import ctypes
import ntpath
import os
from collections.abc import Callable
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
# File system types of network and remote mounts as /proc/self/mountinfo names them (fuse.sshfs for sshfs).
NETWORK_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "glusterfs",
                           "fuse.sshfs", "sshfs", "fuse.glusterfs", "fuse.cephfs", "davfs", "fuse.davfs2",
                           "fuse.rclone", "lustre", "gpfs", "beegfs", "fuse.s3fs", "fuse.gcsfuse", "virtiofs"})
DRIVE_REMOTE = 4  # GetDriveTypeW's answer for a network drive


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def linux_fs_type(path: str, mountinfo: str) -> str | None:
    """The type of the file system ``path`` (absolute, links resolved) is on: the longest mount point
    that holds it, the last mounted one winning, as the kernel shows it."""
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if "-" not in fields or len(fields) < 5:
            continue
        mount_point = _unescape(fields[4])
        after = fields[fields.index("-") + 1:]
        if not after:
            continue
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), after[0])
    return best[1] if best else None


def windows_drive_remote(path: str, get_drive_type: Callable[[str], int]) -> bool:
    """A UNC path (``\\\\server\\share``) is remote; a drive letter is remote when mapped to a share."""
    drive, _ = ntpath.splitdrive(path)
    if drive.startswith(("\\\\", "//")):
        return True
    return bool(drive) and get_drive_type(drive + "\\") == DRIVE_REMOTE


def network_kind(folder: Path) -> str | None:
    """What kind of network file system ``folder`` (or the nearest folder above it that exists) is on,
    or None for a local disk or when it cannot be told."""
    path = folder
    while not path.exists() and path.parent != path:
        path = path.parent
    resolved = str(path.resolve())
    if os.name == "nt":
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        return "network drive" if windows_drive_remote(resolved, kernel32.GetDriveTypeW) else None
    try:
        table = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None  # macOS, BSD: no mount table to read; nothing is claimed
    kind = linux_fs_type(resolved, table)
    return kind if kind in NETWORK_TYPES else None
