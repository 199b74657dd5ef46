"""Each job's ``state.json``: read and updated under a file lock, always written atomically."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.folders.layout import input_name
from ocrpipe.folders.pathcheck import UnsafePath, check_name
from ocrpipe.model import JobState, is_legal_transition

STATE_FILE = "state.json"
LOCK_FILE = "state.json.lock"
LOCK_TIMEOUT_SECONDS = 30


class IllegalTransition(RuntimeError):
    """A bug: code tried a state change the state model forbids."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _lock(job_dir: Path) -> FileLock:
    return FileLock(str(job_dir / LOCK_FILE), timeout=LOCK_TIMEOUT_SECONDS)


def new_state_record(
    *, job_key: str, run_id: str, file_hash: str, profile_hash: str, source_name: str,
    source_relpath: str, size: int,
) -> dict[str, Any]:
    now = utc_now()
    return {
        "jobKey": job_key,
        "runId": run_id,
        "fileHash": file_hash,
        "profileHash": profile_hash,
        "source": {"name": source_name, "relpath": source_relpath, "size": size},
        "input": f"input/{input_name(source_name)}",  # the name itself is in source
        "kind": None,
        "state": JobState.DISCOVERED.value,
        "history": [{"state": JobState.DISCOVERED.value, "at": now}],
        "attempts": {"PREP": 0, "OCR": 0},
        "attemptLog": [],
        "timings": {},
        "pages": None,
        "lastError": None,
        "output": None,
        "archived": None,
        "createdAt": now,
        "updatedAt": now,
    }


def read_state(job_dir: Path) -> dict[str, Any]:
    """The record; UnsafePath (a ValueError) when its ``input`` would lead out of ``input/``: state.json
    can be written by anyone who can write work/ (every worker machine, on a cluster)."""
    record = read_json(job_dir / STATE_FILE)
    check_input(record)
    return record


def check_input(record: object) -> None:
    """``input`` is ``input/<one name>``, the only place a job's original is read from or moved to."""
    if not isinstance(record, dict):
        raise UnsafePath(f"{STATE_FILE} is not a JSON object")
    value = record.get("input")
    folder, slash, name = value.partition("/") if isinstance(value, str) else ("", "", "")
    if folder != "input" or not slash:
        raise UnsafePath(f"{STATE_FILE}: its input {value!r:.80} is not input/<file name>")
    check_name(name, what=f"{STATE_FILE}: its input")


def write_new_state(job_dir: Path, record: dict[str, Any]) -> None:
    """A new job's first state: no lock, since no other process knows the job yet."""
    job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(job_dir / STATE_FILE, record)


def update_state(job_dir: Path, mutate: Callable[[dict[str, Any]], None], *, durable: bool = True,
                 only_changed: bool = False) -> dict[str, Any]:
    """Read, change and write back under the lock; returns the new record. ``durable=False`` skips
    the fsync, for records whose loss in a power cut only means a stage runs again. ``only_changed``:
    a check that found nothing to change writes nothing (not even ``updatedAt``)."""
    with _lock(job_dir):
        record = read_state(job_dir)
        before = copy.deepcopy(record) if only_changed else None
        mutate(record)
        if before is not None and record == before:
            return record
        record["updatedAt"] = utc_now()
        atomic_write_json(job_dir / STATE_FILE, record, durable=durable)
        return record


def apply_transition(record: dict[str, Any], new: JobState, note: str | None = None) -> None:
    old = JobState(record["state"])
    if not is_legal_transition(old, new):
        raise IllegalTransition(f"{record.get('jobKey')}: {old.value} -> {new.value} is not allowed")
    entry: dict[str, Any] = {"state": new.value, "at": utc_now()}
    if note:
        entry["note"] = note
    record["state"] = new.value
    record["history"].append(entry)


def transition(job_dir: Path, new: JobState, note: str | None = None, **fields: Any) -> dict[str, Any]:
    """Move the job to ``new`` (checked against the state model) and set ``fields`` with it."""

    def mutate(record: dict[str, Any]) -> None:
        apply_transition(record, new, note)
        record.update(fields)

    return update_state(job_dir, mutate)
