"""Dropped files opened and moved without following links and without blocking on a FIFO.

Anyone who can drop a file can plant a symbolic link (on Windows also a junction) or a named pipe: a
link would make ocrpipe read or move what it points to, outside the data folder; a FIFO would block
``open()`` for ever. Platform twins, chosen once at import, so each branch is testable on any OS.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

FILE_ATTRIBUTE_REPARSE_POINT = 0x400
# Reparse tags with this bit stand for another name (symbolic links, junctions); others, like a cloud
# placeholder (OneDrive, Dropbox), are the file itself.
_NAME_SURROGATE = 0x20000000
WINDOWS = os.name == "nt"


class NotRegularFile(OSError):
    """A link, FIFO, device, socket or folder where a dropped file was expected."""


def _is_link_posix(st: os.stat_result) -> bool:
    return stat.S_ISLNK(st.st_mode)


def _is_link_windows(st: os.stat_result) -> bool:
    if stat.S_ISLNK(st.st_mode):
        return True
    if not getattr(st, "st_file_attributes", 0) & FILE_ATTRIBUTE_REPARSE_POINT:
        return False
    tag = getattr(st, "st_reparse_tag", 0)
    return not tag or bool(tag & _NAME_SURROGATE)  # a reparse point of unknown kind is not trusted


def _open_flags_posix() -> int:
    # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; reads of a regular
    # file never block anyway.
    return os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_flags_windows() -> int:
    # No O_NOFOLLOW there: the lstat before the open and the fstat after it must name the same file.
    return os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)


is_link = _is_link_windows if WINDOWS else _is_link_posix
open_flags = _open_flags_windows if WINDOWS else _open_flags_posix


def is_regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and not is_link(st)


def is_real_dir(path: Path | str) -> bool:
    """A folder, not a link to one."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and not is_link(st)


def entry_is_link(entry: os.DirEntry[str]) -> bool:
    """On Windows a junction is no symlink to ``is_symlink``; its attributes come with the listing."""
    return entry.is_symlink() or (WINDOWS and is_link(entry.stat(follow_symlinks=False)))


def link_on_the_way(root: Path, path: Path) -> bool:
    """A folder between ``root`` (trusted) and ``path`` is a link, or no longer a folder."""
    folder = root
    for part in path.relative_to(root).parts[:-1]:
        folder = folder / part
        if not is_real_dir(folder):
            return True
    return False


def open_regular(path: Path | str) -> BinaryIO:
    """``path`` opened for reading, only if it is a regular file and not a link; else NotRegularFile."""
    before = os.lstat(path)
    if not is_regular(before):
        raise NotRegularFile(errno.EINVAL, "not a regular file (a link, FIFO, device or folder)", str(path))
    try:
        fd = os.open(path, open_flags())
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # swapped for a link, or for a socket
            raise NotRegularFile(exc.errno, "not a regular file (swapped after it was listed)", str(path)) from None
        raise
    try:
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise NotRegularFile(errno.EINVAL, "not a regular file (swapped after it was listed)", str(path))
        if not WINDOWS:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def identity(path: Path | str) -> tuple[int, int] | None:
    """(device, inode) of a regular file that can be opened now (on Windows, not locked by its writer)."""
    try:
        with open_regular(path) as handle:
            handle.read(1)
            st = os.fstat(handle.fileno())
    except OSError:
        return None
    return st.st_dev, st.st_ino


def refuse_link(path: Path) -> None:
    """Before a rename or copy of ``path``: a link is never moved nor read through."""
    if not is_regular(os.lstat(path)):
        raise NotRegularFile(errno.EINVAL, "not a regular file (a link, FIFO, device or folder)", str(path))


def rename_into(src: Path, folder: Path, name: str) -> None:
    """``src`` renamed to ``folder/name``, where ``folder`` must be a real folder. On POSIX the rename goes
    through a handle of the folder opened without following a link, so a swap after the check cannot
    send the file elsewhere; on Windows the check just before the rename has to do."""
    if WINDOWS or os.rename not in os.supports_dir_fd:
        if not is_real_dir(folder):
            raise NotRegularFile(errno.ENOTDIR, "not a real folder (a link?)", str(folder))
        os.rename(src, folder / name)
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.rename(src, name, dst_dir_fd=fd)
    finally:
        os.close(fd)
