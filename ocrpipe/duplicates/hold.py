"""Held duplicates: the move into ``hold/duplicates/<jobKey>/`` and what is known of each held arrival."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ocrpipe.folders.fsutil import atomic_write_json, candidate_names, move_replacing, read_json
from ocrpipe.folders.layout import MAX_PATH_CHARS, fit_name, folder_for, short_name
from ocrpipe.folders.names import MAX_NAME_BYTES, fit, safe_name
from ocrpipe.folders.nofollow import is_real_dir
from ocrpipe.folders.pathcheck import UnsafePath, check_job_key, is_job_key
from ocrpipe.folders.store import utc_now

STATUS_FILE = "status.json"
DECISION_FILE = "decision.json"
# Beside each held file, its sidecar ``.<held name>.arrival.json``: where it came from and, once decided,
# the intent. Hidden, so that it can never be the name of a held file (``<ts>__<name>``), whatever the
# dropped file was called. Older versions wrote ``<held name>.arrival.json``: still read.
ARRIVAL_SUFFIX = ".arrival.json"
ACTIONS = ["USE_EXISTING_RESULT", "DISCARD", "FORCE_REPROCESS"]
# What a kill leaves of the scheduler's own writes here: atomic-write temps of sidecars and status.json,
# and a cross-volume hold's partial copy (its source is still staged). decision.json's temps are a
# person's (the CLI's) and are left alone.
# Room for the sidecar's suffix, an atomic write's temp name around it and a numbered suffix.
HELD_NAME_BYTES = MAX_NAME_BYTES - len(ARRIVAL_SUFFIX) - 40
HELD_PATH_CHARS = MAX_PATH_CHARS - len("..") - len(ARRIVAL_SUFFIX) - len(".01234567.tmp")
OWN_LEFTOVER = re.compile(r"^\.(.+\.arrival\.json|status\.json)\.[0-9a-f]{8}\.tmp$|^\..+\.partial$")
_HEX32 = re.compile(r"[0-9a-f]{32}")  # a run id, a claim id: uuid4().hex
# decision.json is renamed to this before it is read: a decision.json written from then on is a new one,
# never lost to the removal of the one read. The id goes into the intents it becomes, so a restart after
# a crash between those writes and the removal does not apply it twice.
_CLAIMED = re.compile(r"\.decision\.([0-9a-f]{32})\.claimed\.json")


@dataclass
class Arrival:
    """One held file of a key; ``meta`` is its sidecar (source, detectedAt, and a decided intent)."""

    folder: Path
    held_name: str
    meta: dict[str, Any]
    legacy: bool = False  # its sidecar was written by an older version, as <held name>.arrival.json
    problem: str | None = None  # the sidecar is not as ocrpipe writes it: the file is shown, never decided

    @property
    def path(self) -> Path:
        return self.folder / self.held_name

    @property
    def sidecar(self) -> Path:
        return self.folder / (self.held_name + ARRIVAL_SUFFIX if self.legacy else sidecar_name(self.held_name))

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.meta["source"]).name

    @property
    def intent(self) -> dict[str, Any] | None:
        return self.meta.get("decision")

    def save(self) -> None:
        atomic_write_json(self.sidecar, self.meta, pretty=True)

    def forget(self) -> None:
        self.sidecar.unlink(missing_ok=True)


def held_folders(hold_dir: Path) -> dict[str, Path]:
    """Held job key → its folder (see :func:`scan_hold`)."""
    return scan_hold(hold_dir)[0]


def scan_hold(hold_dir: Path) -> tuple[dict[str, Path], dict[Path, str]]:
    """(held job key → its folder, folder → why it is not used). The key is read from status.json, else
    from a sidecar (a hold a crash cut short before status.json was written), else from the folder's name
    (an older layout: the full key). Anyone can write those files: a key that is no job key, or not the
    one the folder is named after, makes the folder one that nothing touches; a link is never followed."""
    if not hold_dir.is_dir():
        return {}, {}
    found: dict[str, Path] = {}
    bad: dict[Path, str] = {}
    for folder in sorted(hold_dir.iterdir()):
        if is_link(folder):
            bad[folder] = "a link, not a folder of ocrpipe: not followed"
        elif folder.is_dir():
            key, problem = examine_folder(folder)
            if problem:
                bad[folder] = problem
            elif key is not None:
                found.setdefault(key, folder)
    return found, bad


def is_link(path: Path) -> bool:
    """A symbolic link, or on Windows a junction (``Path.is_junction`` is new in Python 3.12)."""
    junction = getattr(path, "is_junction", None)
    return path.is_symlink() or bool(junction and junction())


def folder_key(folder: Path) -> str | None:
    """The full job key of a hold folder (short name or full key), or None when nothing says it or what
    says it is not to be trusted."""
    key, problem = examine_folder(folder)
    return None if problem else key


def examine_folder(folder: Path) -> tuple[str | None, str | None]:
    """(the folder's job key, why the key it names cannot be used)."""
    try:
        status = read_json(folder / STATUS_FILE)
    except (OSError, ValueError):
        status = None
    if isinstance(status, dict) and "jobKey" in status:
        return _checked_key(status["jobKey"], folder, f"{STATUS_FILE}: its jobKey")
    for sidecar in sorted(folder / name for name in sidecar_names(folder)):
        try:
            key = read_json(sidecar).get("jobKey")
        except (OSError, ValueError, AttributeError):
            continue
        if key is not None:
            return _checked_key(key, folder, f"{sidecar.name}: its jobKey")
    return (folder.name, None) if is_job_key(folder.name) else (None, None)


def _checked_key(key: object, folder: Path, what: str) -> tuple[str | None, str | None]:
    problem = key_problem(key, folder, what)
    return (None, problem) if problem else (str(key), None)


def key_problem(key: object, folder: Path, what: str) -> str | None:
    """Why ``key`` cannot be the job key of ``folder`` (held folders are named by the key's short name,
    or by the full key in an older layout), or None."""
    try:
        check_job_key(key, what=what)
    except UnsafePath as exc:
        return str(exc)
    assert isinstance(key, str)
    if folder.name not in (short_name(key), key):
        return f"{what} {key[:16]}... is not the job key of the folder {folder.name}"
    return None


def held_keys(hold_dir: Path) -> set[str]:
    """The job keys held."""
    return set(held_folders(hold_dir))


def hold_folder(hold_dir: Path, job_key: str) -> Path:
    """The hold folder of ``job_key``: the existing one (short name, or the full key of an older layout),
    else where a new hold goes (:func:`ocrpipe.folders.layout.folder_for`)."""
    check_job_key(job_key)
    for folder in (hold_dir / short_name(job_key), hold_dir / job_key):
        if is_real_dir(folder) and folder_key(folder) == job_key:
            return folder
    return folder_for(hold_dir, job_key, STATUS_FILE)


def hold_duplicate(source: Path, *, relpath: str, job_key: str, hold_dir: Path,
                   source_bytes: str | None = None, announce: bool = False) -> Arrival:
    """Move the file to ``hold/duplicates/<short job key>/<ts>__<name>``; its sidecar (with the full key,
    and ``source_bytes``, the escaped bytes of a name that was not UTF-8) is written first,
    so the held file's origin is never lost (a sidecar whose file never came is dropped
    by :func:`arrivals`). ``announce``: its hook event is still to be written (the sidecar says so until it
    is, so a crash right after the move does not lose the event)."""
    folder = hold_folder(hold_dir, job_key)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder.mkdir(parents=True, exist_ok=True)
    original = safe_name(PurePosixPath(relpath).name)  # the original name stays in the sidecar
    # Within MAX_PATH with its sidecar's atomic-write temp (".<name>.arrival.json.<8 hex>.tmp").
    fitted = fit_name(folder, fit(f"{stamp}__{original}", HELD_NAME_BYTES), limit=HELD_PATH_CHARS)
    name = next(c for c in candidate_names(fitted) if not (folder / c).exists()
                and not (folder / sidecar_name(c)).exists() and not (folder / (c + ARRIVAL_SUFFIX)).exists())
    arrival = Arrival(folder, name, {"jobKey": job_key, "source": relpath, "detectedAt": utc_now(),
                                     "sizeBytes": source.stat().st_size,
                                     **({"sourceBytes": source_bytes} if source_bytes else {}),
                                     **({"announce": True} if announce else {})})
    arrival.save()
    move_replacing(source, folder, name)  # one rename: the file is in staging or here, never between
    return arrival


def arrivals(folder: Path, *, tidy: bool = True) -> list[Arrival]:
    """The held files of one key, oldest first. A file held by an older version has no sidecar: its
    origin is read from its name. A sidecar without file and without intent is a hold a crash cut short:
    dropped when ``tidy`` (the scheduler; never a reader, which may see a hold under way)."""
    found: dict[str, Arrival] = {}
    if not folder.is_dir():
        return []
    names = {path.name for path in folder.iterdir()}
    sidecars = _sidecars(names)
    for name in names:
        path = folder / name
        if name in sidecars and not is_link(path):
            held, legacy = sidecars[name]
            held_here = (folder / held).is_file() and not is_link(folder / held)
            try:
                meta = read_json(path)
            except (OSError, ValueError):
                meta = None
            problem = None if meta is None else sidecar_problem(meta, folder)
            if problem:  # written by hand: shown with the file it names, which nothing moves
                if held_here:
                    found[held] = Arrival(folder, held, _from_name(folder / held), legacy, f"{name}: {problem}")
                continue
            if not held_here and not (isinstance(meta, dict) and meta.get("decision")):
                # A hold a crash cut short. An old-style name is ours only if it reads as one of our records.
                if tidy and (not legacy or isinstance(meta, dict)):
                    path.unlink(missing_ok=True)
                continue
            known = meta if isinstance(meta, dict) else {}
            found[held] = Arrival(folder, held, {**_from_name(folder / held), **known}, legacy)
        elif name.startswith(".") or is_link(path) or not path.is_file():
            if tidy and OWN_LEFTOVER.match(name) and not is_link(path):
                path.unlink(missing_ok=True)
        elif not name.endswith(".json") and "__" in name and name not in found:
            found[name] = Arrival(folder, name, _from_name(path))
    return sorted(found.values(), key=lambda a: (a.meta.get("detectedAt") or "", a.held_name))


def sidecar_name(held_name: str) -> str:
    return f".{held_name}{ARRIVAL_SUFFIX}"


def sidecar_names(folder: Path) -> list[str]:
    """The names of the sidecars in a hold folder, of this version and of older ones."""
    return list(_sidecars({path.name for path in folder.iterdir()})) if folder.is_dir() else []


def _sidecars(names: set[str]) -> dict[str, tuple[str, bool]]:
    """Sidecar name → (the held file's name, written by an older version) for each sidecar in ``names``.
    An old-style ``<x>.arrival.json`` that has a sidecar of its own is a held file (a person's file named
    so), not a sidecar."""
    found: dict[str, tuple[str, bool]] = {}
    for name in names:
        if not name.endswith(ARRIVAL_SUFFIX):
            continue
        held = name[: -len(ARRIVAL_SUFFIX)]
        if name.startswith("."):
            if held[1:] and not held[1:].startswith("."):  # no held name starts with a dot
                found[name] = (held[1:], False)
        elif held and sidecar_name(name) not in names and name + ARRIVAL_SUFFIX not in names:
            found[name] = (held, True)
    return found


def sidecar_problem(meta: object, folder: Path) -> str | None:
    """Why a sidecar's content is not as ocrpipe writes it (its key, origin and decided intent are used
    to name, move and delete files), or None."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    if "jobKey" in meta:
        problem = key_problem(meta["jobKey"], folder, "its jobKey")
        if problem:
            return problem
    source = meta.get("source")
    if source is not None and not (isinstance(source, str) and source.strip() and "\x00" not in source):
        return f"its source {source!r:.60} is not a file name"
    if not isinstance(meta.get("detectedAt"), (str, type(None))):
        return "its detectedAt is not a time"
    intent = meta.get("decision")
    if intent is not None and not _intent_ok(intent):
        return f"its decision {intent!r:.80} is not one ocrpipe wrote"
    return None


def _intent_ok(intent: object) -> bool:
    if not isinstance(intent, dict) or intent.get("action") not in ACTIONS:
        return False
    texts = ("note", "decidedAt")
    if any(not isinstance(intent.get(field), (str, type(None))) for field in texts):
        return False
    run_id, claim, placed = intent.get("runId"), intent.get("claim"), intent.get("placed")
    if intent["action"] == "FORCE_REPROCESS" and not (isinstance(run_id, str) and _HEX32.fullmatch(run_id)):
        return False
    if claim is not None and not (isinstance(claim, str) and _HEX32.fullmatch(claim)):
        return False
    return placed is None or (isinstance(placed, dict) and intent["action"] == "USE_EXISTING_RESULT"
                              and all(isinstance(placed.get(k), str) for k in ("output", "archived")))


def claimed_decision(folder: Path) -> tuple[Path, str] | None:
    """A decision.json claimed and not yet written into intents (a crash came between): (path, claim id)."""
    for path in sorted(folder.glob(".decision.*.claimed.json")):
        match = _CLAIMED.fullmatch(path.name)
        if match and path.is_file() and not is_link(path):
            return path, match.group(1)
    return None


def claim_decision(folder: Path) -> tuple[Path, str] | None:
    """decision.json renamed to a claimed name, or None when there is none (any more)."""
    claim = uuid.uuid4().hex
    claimed = folder / f".decision.{claim}.claimed.json"
    try:
        os.rename(folder / DECISION_FILE, claimed)
    except FileNotFoundError:
        return None
    return claimed, claim


def _from_name(path: Path) -> dict[str, Any]:
    stamp, _, original = path.name.partition("__")
    try:
        detected = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        at = detected.isoformat(timespec="milliseconds")
    except ValueError:
        at = None
    size = path.stat().st_size if path.is_file() else None
    return {"source": original or path.name, "detectedAt": at, "sizeBytes": size}
