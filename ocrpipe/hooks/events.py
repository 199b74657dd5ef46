"""Events read back from ``hooks/pending/`` and ``hooks/failed/``, checked before anything is done with them:
anyone who can write the data folder can put a file there. Only regular files named ``evt_<32 hex>.json``,
of a bounded size, shaped as the outbox writes them, are delivered; anything else is left alone."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ocrpipe.config import HOOK_EVENT_TYPES, Settings
from ocrpipe.folders.fsutil import atomic_write_json, rename_new
from ocrpipe.folders.nofollow import is_real_dir, is_regular, open_regular
from ocrpipe.folders.outbox import EVENT_ID, failed_dir, pending_dir
from ocrpipe.folders.pathcheck import is_job_key

log = logging.getLogger("ocrpipe.hooks")

MAX_EVENT_BYTES = 256 * 1024  # an event is a few hundred bytes; a bigger file is not one of ours
DELIVERY_SUFFIX = ".delivery.json"  # beside an event: its attempts, what was delivered, the last error
# What a kill leaves of an atomic write here (fsutil.atomic_write_bytes' temp names): ocrpipe's own, removed.
LEFTOVER_TEMP = re.compile(r"\.evt_[0-9a-f]{32}(\.delivery)?\.json\.[0-9a-f]{8}\.tmp")
TEXT_FIELDS = ("runId", "state", "source", "reason", "code", "action", "note", "decidedAt", "heldFile",
               "detectedAt")
PATH_FIELDS = ("output", "archived", "errorDir", "held")


class BadEvent(ValueError):
    """An event file is not as the outbox writes it: it is neither delivered nor moved."""


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    job_key: str
    seq: int
    created: float  # epoch seconds, from its timestamp
    body: bytes  # the file's bytes: what is posted and given on stdin, signed as they are
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.id}.json"


def event_names(folder: Path) -> list[str]:
    """The event files' names in ``folder`` (regular files only), unsorted; none when it is not a real folder."""
    if not is_real_dir(folder):
        return []
    names = []
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, dot, ext = entry.name.partition(".")
            if ext == "json" and EVENT_ID.fullmatch(stem) and is_regular(entry.stat(follow_symlinks=False)):
                names.append(entry.name)
    return names


def drop_leftover_temps(folder: Path) -> None:
    """At start, before anything writes here: the temp files of writes a kill cut short."""
    if not is_real_dir(folder):
        return
    with os.scandir(folder) as entries:
        for entry in entries:
            if LEFTOVER_TEMP.fullmatch(entry.name) and is_regular(entry.stat(follow_symlinks=False)):
                Path(entry.path).unlink(missing_ok=True)


def read_event(path: Path, settings: Settings) -> Event:
    """The event in ``path``, checked; BadEvent says what is wrong."""
    try:
        with open_regular(path) as handle:
            body = handle.read(MAX_EVENT_BYTES + 1)
    except OSError as exc:
        raise BadEvent(f"cannot be read ({exc.strerror or exc})") from None
    if len(body) > MAX_EVENT_BYTES:
        raise BadEvent(f"larger than {MAX_EVENT_BYTES} bytes")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadEvent("not valid JSON") from None
    return check_event(raw, path.name, body, settings)


def check_event(raw: object, name: str, body: bytes, settings: Settings) -> Event:
    if not isinstance(raw, dict):
        raise BadEvent("not a JSON object")
    ident, kind, seq, data = raw.get("id"), raw.get("type"), raw.get("seq"), raw.get("data")
    if not (isinstance(ident, str) and name == f"{ident}.json"):
        raise BadEvent("its id is not its file's name")
    if kind not in HOOK_EVENT_TYPES:
        raise BadEvent(f"its type {kind!r:.40} is not an event type of ocrpipe")
    if type(seq) is not int or seq < 0:
        raise BadEvent("its seq is not a whole number")
    try:
        created = datetime.fromisoformat(str(raw.get("timestamp"))).timestamp()
    except ValueError:
        raise BadEvent("its timestamp is not a time") from None
    if not isinstance(data, dict) or not is_job_key(data.get("jobKey")):
        raise BadEvent("its data names no job key")
    for field in TEXT_FIELDS:
        if not isinstance(data.get(field), (str, type(None))) or "\x00" in (data.get(field) or ""):
            raise BadEvent(f"its {field} is not text")
    for field in PATH_FIELDS:
        value = data.get(field)
        if value is not None and not _inside_own_folder(value, settings):
            raise BadEvent(f"its {field} {value!r:.80} is not inside a folder of ocrpipe")
    for field in ("pages", "seconds", "exitCode"):
        if data.get(field) is not None and type(data[field]) not in (int, float):
            raise BadEvent(f"its {field} is not a number")
    return Event(ident, str(kind), str(data["jobKey"]), seq, created, body, data)


def _inside_own_folder(value: object, settings: Settings) -> bool:
    """A path the hook will be handed: it must lie in out/, archive/, error/ or hold/, as ocrpipe's do, so
    an event written by someone else cannot point a hook at any file of the machine."""
    if not isinstance(value, str) or "\x00" in value or ".." in Path(value).parts:
        return False
    path = Path(value)
    roots = (settings.out_dir, settings.archive_dir, settings.error_dir, settings.hold_dir)
    return path.is_absolute() and any(root == path or root in path.parents for root in roots)


# ----- bookkeeping beside each event ---------------------------------------------------------------


def delivery_path(folder: Path, ident: str) -> Path:
    return folder / f"{ident}{DELIVERY_SUFFIX}"


def read_delivery(folder: Path, ident: str) -> dict[str, Any]:
    """What was tried for this event: ``attempts``, ``delivered`` (the targets that have it), ``lastError``;
    anything unreadable counts as nothing tried."""
    try:
        with open_regular(delivery_path(folder, ident)) as handle:
            raw = json.loads(handle.read(MAX_EVENT_BYTES))
    except (OSError, ValueError):
        return {"attempts": 0, "delivered": []}
    attempts = raw.get("attempts") if isinstance(raw, dict) else None
    delivered = raw.get("delivered") if isinstance(raw, dict) else None
    return {"attempts": attempts if type(attempts) is int and attempts >= 0 else 0,
            "delivered": [t for t in delivered if t in ("command", "webhook")] if isinstance(delivered, list) else [],
            "lastError": str(raw.get("lastError"))[:2000] if isinstance(raw, dict) and raw.get("lastError") else None}


def write_delivery(folder: Path, ident: str, delivery: dict[str, Any]) -> None:
    # Not fsynced: lost in a power cut, an event is only tried again sooner (and a target may get it twice).
    atomic_write_json(delivery_path(folder, ident), delivery, durable=False)


def forget(folder: Path, ident: str) -> None:
    """Delivered: the event and its bookkeeping go (the bookkeeping last, so a crash leaves nothing odd)."""
    (folder / f"{ident}.json").unlink(missing_ok=True)
    delivery_path(folder, ident).unlink(missing_ok=True)


def set_aside(settings: Settings, ident: str, delivery: dict[str, Any]) -> None:
    """Given up: to hooks/failed/ with why (the bookkeeping first: the event is never without its reason)."""
    failed = failed_dir(settings)
    failed.mkdir(parents=True, exist_ok=True)
    write_delivery(failed, ident, delivery)
    os.replace(pending_dir(settings) / f"{ident}.json", failed / f"{ident}.json")
    delivery_path(pending_dir(settings), ident).unlink(missing_ok=True)


def put_back(settings: Settings, ident: str) -> bool:
    """A failed event back to pending/ with a fresh count of attempts; False when it is not there (or an
    event of that id is pending already)."""
    failed, pending = failed_dir(settings), pending_dir(settings)
    source = failed / f"{ident}.json"
    if not EVENT_ID.fullmatch(ident) or not is_real_dir(failed) or not source.is_file() or source.is_symlink():
        return False
    pending.mkdir(parents=True, exist_ok=True)
    try:
        rename_new(source, pending / f"{ident}.json")
    except FileExistsError:
        return False
    delivery_path(failed, ident).unlink(missing_ok=True)
    return True


def failed_events(settings: Settings) -> list[dict[str, Any]]:
    """What ``ocrpipe hooks`` lists of hooks/failed/: id, type, job key, source and why, oldest first."""
    folder = failed_dir(settings)
    found = []
    for name in event_names(folder):
        ident = name[: -len(".json")]
        try:
            event = read_event(folder / name, settings)
            item = {"id": ident, "type": event.type, "jobKey": event.job_key, "source": event.data.get("source"),
                    "seq": event.seq}
        except BadEvent as exc:
            item = {"id": ident, "type": None, "jobKey": None, "source": None, "seq": 0, "problem": str(exc)}
        delivery = read_delivery(folder, ident)
        found.append({**item, "attempts": delivery["attempts"], "lastError": delivery.get("lastError")})
    return sorted(found, key=lambda e: (e["seq"], e["id"]))


def backlog(settings: Settings) -> dict[str, Any]:
    """Counts read from the folders, for ``ocrpipe status`` (another process than the one delivering)."""
    pending = event_names(pending_dir(settings))
    oldest = None
    for name in pending:
        try:
            mtime = (pending_dir(settings) / name).stat().st_mtime
        except OSError:
            continue
        oldest = mtime if oldest is None else min(oldest, mtime)
    return {"pending": len(pending), "failed": len(event_names(failed_dir(settings))), "oldestPendingAt": oldest}
