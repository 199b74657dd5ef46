"""The property test of the whole scheduler (test_properties.py) with a hostile writer besides: between
any two steps someone who can write the data folder plants links to a folder beside it (in in/, in the
staging folder, at a staged file's name, in work/ as a job folder, as the staging folder itself, which a
person removes later), writes status.json, arrival sidecars, decision.json and heartbeats by hand (keys
that are paths, another folder's key; heartbeats naming an innocent process of this machine), makes
them links or FIFOs, and drops files named as ocrpipe's own files, with names that are not UTF-8, and
FIFOs. Invariants, besides the machine's own: every dropped regular file ends exactly once in
out/+archive/, error/, hold/ or a DISCARD; the sentinel folder beside the data folder is unchanged
(names, types, contents, mtimes, and access times: nothing in it is read either); the innocent process
lives; no step blocks (a FIFO a step waits on is opened by a watchdog, so a regression fails, not hangs).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import stat
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import psutil
import pytest
from conftest import make_pdf
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule
from test_properties import PipelineMachine

from ocrpipe.folders.heartbeat import HOST
from ocrpipe.folders.intake import STAGING_DIR
from ocrpipe.ownprocs import OWNER_VARIABLE

pytestmark = pytest.mark.skipif(os.name == "nt", reason="FIFOs, and links without privileges, are POSIX's")

OWN_NAMES = ["error.json", "x.arrival.json", "status.json", "decision.json", "state.json", "prep.heartbeat"]
NOT_UTF8 = [b"caf\xe9", b"\xff\xfe", b"na\xefve \x80"]
SHORT_NAME = "0123456789abcdef_01234567"  # shaped as a job's folder name, no job's
ALIEN_KEY = "a" * 64 + "__" + "b" * 64  # shaped as a job key, no folder's


def start_innocent() -> subprocess.Popen[bytes]:
    """A process of this machine and user that is none of ocrpipe's: forged heartbeats name it."""
    env = {k: v for k, v in os.environ.items() if k != OWNER_VARIABLE}
    return subprocess.Popen([shutil.which("sleep") or "sleep", "3600"], stdin=subprocess.DEVNULL, env=env)


def snapshot(folder: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``folder`` (name, type, size, content, mtime, access time), read with O_NOATIME:
    taking it changes nothing, while a read by anyone else moves an access time (files and folders are
    made with an access time before their mtime, which relatime then updates)."""
    found: dict[str, tuple[Any, ...]] = {}

    def walk(dir_fd: int, prefix: str) -> None:
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            st_ = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
            content: Any = None
            if stat.S_ISREG(st_.st_mode):
                fd = os.open(entry.name, os.O_RDONLY | os.O_NOATIME | os.O_NOFOLLOW, dir_fd=dir_fd)
                with os.fdopen(fd, "rb") as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(st_.st_mode):
                content = os.readlink(entry.name, dir_fd=dir_fd)
            found[prefix + entry.name] = (stat.S_IFMT(st_.st_mode), st_.st_size, content, st_.st_mtime_ns,
                                          st_.st_atime_ns)
            if stat.S_ISDIR(st_.st_mode):
                child = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME | os.O_NOFOLLOW,
                                dir_fd=dir_fd)
                try:
                    walk(child, prefix + entry.name + "/")
                finally:
                    os.close(child)

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME | os.O_NOFOLLOW)
    try:
        st_ = os.fstat(fd)
        found["."] = (stat.S_IFMT(st_.st_mode), None, None, st_.st_mtime_ns, st_.st_atime_ns)
        walk(fd, "")
    finally:
        os.close(fd)
    return found


FIELDS = ("type", "size", "content", "mtime", "access time (read)")


def differences(before: dict[str, tuple[Any, ...]], now: dict[str, tuple[Any, ...]]) -> list[str]:
    """What changed, entry by entry: ``tmp: gone``, ``input: access time (read)``."""
    found = []
    for name in sorted({*before, *now}):
        if name not in now:
            found.append(f"{name}: gone")
        elif name not in before:
            found.append(f"{name}: new")
        elif before[name] != now[name]:
            found.append(f"{name}: " + ", ".join(f for f, a, b in zip(FIELDS, before[name], now[name]) if a != b))
    return found


def make_sentinel(folder: Path) -> None:
    """What ocrpipe must never read, write, move or delete: files a followed link would take in (PDFs),
    a settings.json a key ``<sentinel>/settings`` names, and folders named as a job's (tmp/, input/)."""
    for rel, content in (("secret.pdf", make_pdf(1, scenario="sentinel")), ("settings.json", b'{"keep": true}'),
                         ("tmp/keep.txt", b"keep"), ("input/original.pdf", make_pdf(2, scenario="sentinel-in")),
                         ("docs/a.pdf", make_pdf(1, scenario="sentinel-doc"))):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(content)
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in [*filenames, *dirnames, None]:
            path = os.path.join(dirpath, name) if name else dirpath
            mtime = os.lstat(path).st_mtime_ns
            os.utime(path, ns=(mtime - 100_000_000_000, mtime), follow_symlinks=False)


class FifoWatchdog:
    """Every half second, each FIFO under the data folder is opened for writing without blocking: that
    succeeds only while a reader waits on it, which then gets an end of file. So a step blocked on a
    FIFO ends, and the FIFO is recorded: the invariant fails instead of the test hanging."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.unblocked: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fifo-watchdog", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            for dirpath, _, names in os.walk(self.folder):
                for name in names:
                    path = os.path.join(dirpath, name)
                    try:
                        if not stat.S_ISFIFO(os.lstat(path).st_mode):
                            continue
                        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                    except OSError:  # ENXIO: no reader waits on it
                        continue
                    os.close(fd)
                    self.unblocked.append(path)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class HostileMachine(PipelineMachine):
    @initialize()
    def start(self) -> None:
        self.hostile = 0  # a counter for unique names
        self.top_names: set[str] = set()
        self.seen_staged: set[str] = set()
        self.watchdog: FifoWatchdog | None = None
        self.innocent = start_innocent()  # one per example: a failure shrinks to the steps that killed it
        # Tokens and run ids from a counter: staged leftovers are taken in in their tokens' order, which
        # decides which call a draw picks; random ones would make a failure impossible to shrink.
        counter = itertools.count(1)
        self.uuids = mock.patch.object(
            uuid, "uuid4", lambda: uuid.UUID(bytes=hashlib.sha256(b"%d" % next(counter)).digest()[:16]))
        self.uuids.start()
        super().start()
        self.sentinel = self.root / "sentinel"
        make_sentinel(self.sentinel)
        self.sentinel_before = snapshot(self.sentinel)
        self.watchdog = FifoWatchdog(self.data)

    def teardown(self) -> None:
        try:
            if hasattr(self, "scheduler"):
                self.person_removes_the_staging_link()  # else nothing could be taken in
                self.finish_everything()
                self.nothing_outside_the_data_folder_changed()
                self.the_innocent_process_lives()
                self.no_step_blocked_on_a_fifo()
        finally:
            if getattr(self, "watchdog", None) is not None:
                self.watchdog.stop()
            if hasattr(self, "uuids"):
                self.uuids.stop()
            if hasattr(self, "innocent"):
                self.innocent.kill()
                self.innocent.wait()
            if hasattr(self, "root"):
                shutil.rmtree(self.root, ignore_errors=True)

    # ----- the hostile writer ----------------------------------------------------------------------

    def unique(self) -> int:
        self.hostile += 1
        return self.hostile

    @property
    def staging(self) -> Path:
        return self.data / "in" / STAGING_DIR

    def staging_is_link(self) -> bool:
        return self.staging.is_symlink()

    def target(self, kind: str) -> Path:
        return {"file": self.sentinel / "secret.pdf", "folder": self.sentinel, "json": self.sentinel / "settings.json",
                "tmp": self.sentinel / "tmp", "docs": self.sentinel / "docs"}[kind]

    @rule(where=st.sampled_from(["in", "in/sub", "staging"]), points_to=st.sampled_from(["file", "folder", "docs"]),
          staged_shape=st.booleans())
    def plant_link(self, where: str, points_to: str, staged_shape: bool) -> None:
        """A link to the sentinel folder, or a file in it, where ocrpipe takes files from."""
        folder = self.staging if where == "staging" else self.data / where
        if folder.is_symlink():
            return
        folder.mkdir(parents=True, exist_ok=True)
        n = self.unique()
        name = f"{uuid.uuid4().hex[:16]}~link{n}.pdf" if staged_shape else f"link{n}.pdf"
        (folder / name).symlink_to(self.target(points_to))
        event(f"hostile: link in {where}")

    @invariant()
    def hostile_watches_staging(self) -> None:
        """Not a check: the hostile writer sees what is in the staging folder (a file a crash left there)."""
        if hasattr(self, "seen_staged") and self.staging.is_dir() and not self.staging.is_symlink():
            self.seen_staged |= {n for n in os.listdir(self.staging) if "~" in n}

    def staged_names_gone(self) -> list[str]:
        if not self.staging.is_dir() or self.staging.is_symlink():
            return []
        return sorted(n for n in self.seen_staged if not os.path.lexists(self.staging / n))

    @precondition(lambda self: self.staged_names_gone())
    @rule(data=st.data(), points_to=st.sampled_from(["file", "folder"]))
    def plant_link_where_a_staged_file_was(self, data: st.DataObject, points_to: str) -> None:
        """At the very name of a file ocrpipe staged (and has taken on): a restart must not take it."""
        name = data.draw(st.sampled_from(self.staged_names_gone()))
        self.seen_staged.discard(name)
        (self.staging / name).symlink_to(self.target(points_to))
        event("hostile: link at a staged file's name")

    @precondition(lambda self: not self.staging_is_link() and not (self.staging.is_dir() and os.listdir(self.staging)))
    @rule(points_to=st.sampled_from(["folder", "docs"]))
    def replace_the_staging_folder_with_a_link(self, points_to: str) -> None:
        """Only an empty staging folder: replacing a full one would move the files in it, not ocrpipe."""
        if self.staging.is_dir():
            self.staging.rmdir()
        self.staging.symlink_to(self.target(points_to), target_is_directory=True)
        event("hostile: staging folder replaced by a link")

    @precondition(lambda self: self.staging_is_link())
    @rule()
    def person_removes_the_staging_link(self) -> None:
        if self.staging_is_link():
            self.staging.unlink()
            event("person: staging link removed")

    @rule(points_to=st.sampled_from(["folder", "tmp"]))
    def plant_link_in_work(self, points_to: str) -> None:
        """In work/ (a share every worker machine writes, on a cluster), named as a job's folder."""
        work = self.data / "work"
        work.mkdir(parents=True, exist_ok=True)
        link = work / (SHORT_NAME if not os.path.lexists(work / SHORT_NAME) else f"{self.unique():016x}_01234567")
        link.symlink_to(self.target(points_to), target_is_directory=True)
        self.foreign.add(link)
        event("hostile: link in work/")

    @rule(where=st.sampled_from(["in", "in/sub", "staging"]))
    def drop_fifo(self, where: str) -> None:
        folder = self.staging if where == "staging" else self.data / where
        if folder.is_symlink():
            return
        folder.mkdir(parents=True, exist_ok=True)
        os.mkfifo(folder / f"pipe{self.unique()}.pdf")
        event(f"hostile: FIFO in {where}")

    def content(self, kind: str, data: st.DataObject) -> bytes:
        n = self.unique()
        if kind == "duplicate" and self.dropped:
            return data.draw(st.sampled_from(self.dropped))
        if kind == "junk":
            return f"not a document {n}\n".encode()
        return make_pdf(1, scenario=f"h{n}")

    def drop_at(self, relpath: bytes, content: bytes) -> None:
        path = os.path.join(os.fsencode(self.data / "in"), relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
        self.drops[hashlib.sha256(content).hexdigest()] += 1
        self.dropped.append(content)

    @rule(data=st.data(), name=st.sampled_from(OWN_NAMES), kind=st.sampled_from(["pdf", "duplicate", "junk"]))
    def drop_file_with_an_own_name(self, data: st.DataObject, name: str, kind: str) -> None:
        """Named as ocrpipe's own files: at the top of in/ once, then each in a folder of its own (a second
        report.pdf is published as "report (2).pdf", which the machine takes for a double publication)."""
        folder = "" if name not in self.top_names else f"own{self.unique()}/"
        self.top_names.add(name)
        self.drop_at(f"{folder}{name}".encode(), self.content(kind, data))
        event(f"hostile: dropped a file named as ocrpipe's ({kind})")

    @rule(data=st.data(), raw=st.sampled_from(NOT_UTF8), in_folder=st.booleans(),
          kind=st.sampled_from(["pdf", "duplicate", "junk"]))
    def drop_file_with_a_name_not_utf8(self, data: st.DataObject, raw: bytes, in_folder: bool, kind: str) -> None:
        n = str(self.unique()).encode()
        relpath = raw + b"dir" + n + b"/doc.pdf" if in_folder else raw + n + b".pdf"
        self.drop_at(relpath, self.content(kind, data))
        event("hostile: dropped a name not UTF-8")

    # ----- hand-written files of ocrpipe's ---------------------------------------------------------

    def hostile_key(self, kind: str) -> Any:
        others = [self.full_key(name) for name in self.held_keys()]
        return {"absolute": str(self.sentinel / "settings"), "dotdot": "../../../sentinel/settings",
                "deep": "../" * 12 + "tmp", "alien": ALIEN_KEY, "other": others[0] if others else ALIEN_KEY,
                "number": 42, "empty": ""}[kind]

    def full_key(self, folder_name: str) -> str | None:
        folder = self.data / "hold" / "duplicates" / folder_name
        for path in sorted(folder.glob(".*.arrival.json")):
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):  # the hostile writer's own link or FIFO
                    continue
                key = json.loads(path.read_text(encoding="utf-8")).get("jobKey")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(key, str):
                return key
        return None

    def write_hostile(self, path: Path, form: str, content: Any) -> None:
        """``path`` replaced by what the hostile writer chose: JSON, a link to the sentinel, or a FIFO."""
        if os.path.lexists(path):
            os.unlink(path)
        if form == "link":
            path.symlink_to(self.target("json"))
        elif form == "fifo":
            os.mkfifo(path)
        else:
            path.write_text(json.dumps(content), encoding="utf-8")

    def hold_folder(self, data: st.DataObject, where: str) -> Path:
        held = self.held_keys()
        if where == "held" and held:
            return self.data / "hold" / "duplicates" / data.draw(st.sampled_from(held))
        folder = self.data / "hold" / "duplicates" / data.draw(st.sampled_from([SHORT_NAME, "evil", ALIEN_KEY]))
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @rule(data=st.data(), where=st.sampled_from(["held", "new"]),
          key=st.sampled_from(["absolute", "dotdot", "deep", "alien", "other", "number", "empty"]),
          form=st.sampled_from(["json", "json", "link", "fifo"]))
    def write_status_json(self, data: st.DataObject, where: str, key: str, form: str) -> None:
        folder = self.hold_folder(data, where)
        self.write_hostile(folder / "status.json", form, {
            "jobKey": self.hostile_key(key), "state": "DUPLICATE_PENDING",
            "files": [{"heldFile": "../../../sentinel/secret.pdf"}, {"heldFile": str(self.sentinel / "docs")}]})
        event(f"hostile: status.json ({form})")

    @rule(data=st.data(), where=st.sampled_from(["held", "new"]),
          key=st.sampled_from(["own", "absolute", "dotdot", "alien", "other", "none"]),
          source=st.sampled_from(["../../../sentinel/secret.pdf", "/etc/passwd", "../../../../sentinel/docs/a.pdf",
                                  "ok.pdf"]),
          action=st.sampled_from([None, "USE_EXISTING_RESULT", "DISCARD", "FORCE_REPROCESS", "placed"]),
          form=st.sampled_from(["json", "json", "json", "link", "fifo"]))
    def write_sidecar(self, data: st.DataObject, where: str, key: str, source: str, action: str | None,
                      form: str) -> None:
        """Over a held file's own sidecar (or for a file that is not there), with a source that is a path."""
        folder = self.hold_folder(data, where)
        files = sorted(p.name for p in folder.iterdir() if "__" in p.name and not p.name.startswith("."))
        held = data.draw(st.sampled_from(files)) if files else "20240101T000000000000Z__evil.pdf"
        job_key = self.full_key(folder.name) if key == "own" else None if key == "none" else self.hostile_key(key)
        intent: dict[str, Any] | None = None
        if action == "placed":
            intent = {"action": "USE_EXISTING_RESULT", "placed": {"output": str(self.sentinel / "secret.pdf"),
                                                                  "archived": "../../../sentinel/settings.json"}}
        elif action is not None:
            intent = {"action": action, **({"runId": uuid.uuid4().hex} if action == "FORCE_REPROCESS" else {})}
        meta = {**({"jobKey": job_key} if job_key else {}), "source": source, "detectedAt": "2024-01-01T00:00:00Z",
                **({"decision": intent} if intent else {})}
        self.write_hostile(folder / f".{held}.arrival.json", form, meta)
        event(f"hostile: sidecar ({form})")

    @rule(data=st.data(), where=st.sampled_from(["held", "new"]),
          action=st.sampled_from(["USE_EXISTING_RESULT", "DISCARD", "FORCE_REPROCESS"]),
          file=st.sampled_from(["../../../sentinel/secret.pdf", "/etc/passwd", "../status.json", "."]),
          form=st.sampled_from(["json", "json", "link", "fifo"]))
    def write_decision(self, data: st.DataObject, where: str, action: str, file: str, form: str) -> None:
        folder = self.hold_folder(data, where)
        self.write_hostile(folder / "decision.json", form, {"action": action, "file": file})
        event(f"hostile: decision.json ({form})")

    def job_dirs(self) -> list[str]:
        work = self.data / "work"
        return sorted(p.name for p in work.iterdir() if p.is_dir() and not p.is_symlink()
                      and not p.name.startswith(".")) if work.is_dir() else []

    @precondition(lambda self: self.job_dirs())
    @rule(host=st.sampled_from([HOST, HOST, "elsewhere"]),
          form=st.sampled_from(["json", "json", "json", "link", "fifo"]))
    def forge_heartbeats(self, host: str, form: str) -> None:
        """In every job folder, for both stages: naming the innocent process, as the stage's worker and its
        tool, with its true create time (a restart or the next attempt reads them and kills what is ocrpipe's)."""
        innocent = {"pid": self.innocent.pid, "createTime": psutil.Process(self.innocent.pid).create_time()}
        for name in self.job_dirs():
            for stage in ("prep", "ocr"):
                self.write_hostile(self.data / "work" / name / f"{stage}.heartbeat", form, {
                    "stage": stage.upper(), "attempt": 1, "worker": innocent, "host": host, "tools": [innocent],
                    "at": 0.0})
        event(f"hostile: heartbeats ({form})")

    # ----- invariants ------------------------------------------------------------------------------

    @invariant()
    def nothing_outside_the_data_folder_changed(self) -> None:
        if hasattr(self, "sentinel_before"):
            assert not (changes := differences(self.sentinel_before, snapshot(self.sentinel))), changes

    @invariant()
    def the_innocent_process_lives(self) -> None:
        if hasattr(self, "innocent"):
            assert self.innocent.poll() is None, "a forged heartbeat had a process that is not ocrpipe's killed"

    @invariant()
    def no_step_blocked_on_a_fifo(self) -> None:
        if getattr(self, "watchdog", None) is not None:
            assert not self.watchdog.unblocked, f"a step blocked on a FIFO: {self.watchdog.unblocked}"


HostileMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
TestHostileProperties = HostileMachine.TestCase
