"""``ocrpipe duplicates`` lists what is held; ``ocrpipe decide`` writes decision.json for a person."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from ocrpipe.config import Settings
from ocrpipe.duplicates.hold import DECISION_FILE, STATUS_FILE, arrivals, claimed_decision, held_folders
from ocrpipe.duplicates.report import describe
from ocrpipe.errors import OcrpipeError
from ocrpipe.folders.fsutil import atomic_write_json, read_json, rename_new

VERBS = {"use-existing": "USE_EXISTING_RESULT", "discard": "DISCARD", "force": "FORCE_REPROCESS"}
PREFIX_SHOWN = 16


class UsageError(OcrpipeError):
    """A key or file a person typed names nothing held, or more than one thing (exit 2)."""


def pending(settings: Settings) -> list[dict[str, Any]]:
    """Every held key, read from files only: safe while ``ocrpipe run`` works."""
    found = []
    for key, folder in sorted(held_folders(settings.hold_dir).items()):
        try:
            status = read_json(folder / STATUS_FILE)
        except (OSError, ValueError):
            status = {}
        files = [describe(a) for a in arrivals(folder, tidy=False)]
        if files:
            found.append({"jobKey": key, "files": files, "existing": status.get("existing"),
                          "decisionWaiting": waiting_decision(folder) is not None, "error": status.get("error")})
    return found


def print_pending(settings: Settings, *, as_json: bool, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up at the call: it may have been replaced since the import
    keys = pending(settings)
    if as_json:
        print(json.dumps(keys, indent=2, ensure_ascii=False), file=out)
        return
    if not keys:
        print("No duplicates are waiting for a decision.", file=out)
        return
    for entry in keys:
        existing = entry["existing"] or {}
        earlier = existing.get("output") or (f"still {existing['state']}" if existing.get("state") else "unknown")
        print(f"{entry['jobKey'][:PREFIX_SHOWN]}  existing result: {earlier}", file=out)
        for held in entry["files"]:
            decided = f"  [decided: {held['decided']}]" if held.get("decided") else ""
            print(f"    {held['source']}  held {held['detectedAt']} as {held['heldFile']}{decided}", file=out)
        if entry["decisionWaiting"]:
            print("    a decision.json is waiting to be applied", file=out)
        if entry["error"]:
            print(f"    problem: {entry['error']}", file=out)
    print("Decide with: ocrpipe decide KEY use-existing|discard|force [--file NAME] [--note TEXT]", file=out)


def resolve_key(settings: Settings, prefix: str) -> tuple[str, Path]:
    """The held key (and its folder) that ``prefix`` starts: a prefix of the full job key, or of the hold
    folder's (short) name."""
    folders = held_folders(settings.hold_dir)
    wanted = prefix.lower()
    keys = sorted(folders)
    matches = [k for k in keys if k.startswith(wanted) or folders[k].name.lower().startswith(wanted)] if prefix else []
    if not matches:
        raise UsageError(f"no held duplicate has a job key starting with {prefix!r}; "
                         "'ocrpipe duplicates' lists them")
    if len(matches) > 1:
        raise UsageError(f"{prefix!r} starts {len(matches)} held job keys "
                         f"({', '.join(k[:PREFIX_SHOWN] for k in matches)}): give more of the key")
    return matches[0], folders[matches[0]]


def waiting_decision(folder: Path) -> Path | None:
    """The decision of this folder that ``ocrpipe run`` has not written into intents yet, if any."""
    claimed = claimed_decision(folder)
    if claimed is not None:
        return claimed[0]
    path = folder / DECISION_FILE
    return path if path.exists() else None


def _refuse_second(key: str, waiting: Path) -> UsageError:
    try:
        raw = read_json(waiting)
        what = f"{raw['action']} of {raw.get('file') or 'every undecided held file'}"
    except (OSError, ValueError, KeyError, TypeError):
        what = "one that cannot be read"
    return UsageError(f"a decision for {key[:PREFIX_SHOWN]} is waiting to be carried out ({what}, in {waiting}): "
                      "'ocrpipe run' applies it first; decide again once it has (or remove that file to replace it)")


def decide(settings: Settings, prefix: str, verb: str, *, file: str | None, note: str | None) -> str:
    """Write ``decision.json``, atomically and only where none waits: a second decision before a run
    carried out the first is refused (exit 2), never written over it. ``ocrpipe run`` (or the next
    ``run --once``) carries it out."""
    key, folder = resolve_key(settings, prefix)
    waiting = waiting_decision(folder)
    if waiting is not None:
        raise _refuse_second(key, waiting)
    if file is not None:
        names = [(a.held_name, a.file_name, a.meta.get("source")) for a in arrivals(folder, tidy=False)
                 if not a.intent and not a.problem]
        exact = [n for n in names if file == n[0]]
        loose = [n for n in names if file in n[1:]]
        if not exact and len(loose) != 1:
            what = "names several held files" if loose else "is not held (or already decided) there"
            raise UsageError(f"{file!r} {what}: use one of {', '.join(n[0] for n in names) or 'none'}")
    decision: dict[str, Any] = {"action": VERBS[verb]}
    if file is not None:
        decision["file"] = file
    if note is not None:
        decision["note"] = note
    temp = folder / f".{DECISION_FILE}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        atomic_write_json(temp, decision, pretty=True)
        rename_new(temp, folder / DECISION_FILE)  # another decide at the same moment: one of them is refused
    except FileNotFoundError:  # ocrpipe run carried out the last decision of this key a moment ago
        raise UsageError(f"nothing is held under {key[:PREFIX_SHOWN]} any more; 'ocrpipe duplicates' lists "
                         "what is") from None
    except FileExistsError:
        raise _refuse_second(key, folder / DECISION_FILE) from None
    finally:
        temp.unlink(missing_ok=True)
    return key
