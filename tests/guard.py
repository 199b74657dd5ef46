"""The test session's guard: opening or listing anything beside the repository (``../shared/corpus``) fails.

A fresh clone has nothing beside it, so a test that reads there passes on one machine and fails on the
next. An audit hook (PEP 578) sees every ``open``, ``os.listdir``, ``os.scandir`` and ``glob.glob`` of the
test process; one that reaches into the repository's parent folder, outside the repository and outside the
folders allowed (pytest's temp folder, an opted-in corpus), raises ``ReadBesideRepository`` and is recorded,
so the session fails even when the caller swallowed the error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WATCHED = {"open": 0, "os.listdir": 0, "os.scandir": 0, "glob.glob": 0}  # event -> index of its path argument
# Allowed, like every folder given, only where it does not hold the repository's parent: when the repository
# sits at the top of the file system, everything is "beside" it, and the system's own folders stay readable.
SYSTEM = tuple(Path(p) for p in ("/usr", "/etc", "/lib", "/lib64", "/bin", "/sbin", "/opt", "/proc", "/sys",
                                 "/dev", "/run", "/var", "/tmp"))


class ReadBesideRepository(RuntimeError):
    """A test opened or listed a path beside the repository (not an OSError, so no `except OSError` hides it)."""


class Guard:
    """Which paths are beside the repository, and the ones reached so far."""

    def __init__(self, repo: Path, allowed: list[Path]) -> None:
        self.roots = {os.path.abspath(repo), str(repo.resolve())}
        self.parents = {os.path.dirname(root) for root in self.roots}
        self.allowed: list[str] = []
        self.reached: list[str] = []
        for folder in [*allowed, Path(sys.prefix), Path(sys.base_prefix), *SYSTEM]:
            self.allow(folder)

    def allow(self, folder: Path) -> None:
        """Allow a folder inside the repository's parent; one that holds the parent would allow everything."""
        for form in {os.path.abspath(folder), str(folder.resolve())}:
            if not any(_within(parent, form) for parent in self.parents):
                self.allowed.append(form)

    def is_beside(self, path: str) -> bool:
        absolute = os.path.abspath(path)
        if not any(_within(absolute, parent) for parent in self.parents):
            return False
        if any(_within(absolute, root) for root in self.roots):
            return False
        return not any(_within(absolute, folder) for folder in self.allowed)

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        index = WATCHED.get(event)
        if index is None or len(args) <= index:
            return
        path = args[index]
        if event in ("os.listdir", "os.scandir") and path is None:
            path = "."
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, (str, os.PathLike)):
            return  # a file descriptor: its path was checked when it was opened
        path = os.fspath(path)
        if self.is_beside(path):
            self.reached.append(f"{event} {os.path.abspath(path)}")
            raise ReadBesideRepository(f"{event}({path!r}) reaches beside the repository {REPO}: a fresh "
                                       "clone has nothing there; generate the input (tests/inputs.py)")


def _within(path: str, folder: str) -> bool:
    folder = folder.rstrip(os.sep) or os.sep
    return path == folder or path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


GUARD: Guard | None = None


def install_guard(allowed: list[Path]) -> Guard:
    """Once per process: audit hooks cannot be removed."""
    global GUARD
    if GUARD is None:
        GUARD = Guard(REPO, allowed)
        sys.addaudithook(GUARD.audit)
    return GUARD
