"""A person's answer to a held duplicate: ``decision.json`` claimed (renamed), checked, written as one intent
per held file (its sidecar), removed, then each intent carried out. A restart finds the claimed decision
and the intents and finishes them."""

from __future__ import annotations

import hashlib
import logging
import uuid
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.duplicates.hold import (
    DECISION_FILE,
    STATUS_FILE,
    Arrival,
    arrivals,
    claim_decision,
    claimed_decision,
    hold_folder,
    is_link,
    scan_hold,
)
from ocrpipe.duplicates.report import ACTIONS, refresh, report_file, status_error
from ocrpipe.engine.announce import announce_decision, announce_held
from ocrpipe.engine.jobs import Job
from ocrpipe.engine.lifecycle import Lifecycle
from ocrpipe.folders.fsutil import atomic_write_json, drop_temp, move_replacing, place_file, read_json, rename_new
from ocrpipe.folders.layout import folder_for, plain_path
from ocrpipe.folders.names import safe_relpath
from ocrpipe.folders.outbox import HELD, wanted
from ocrpipe.folders.publish import mirrored_folder, output_relpath
from ocrpipe.folders.store import STATE_FILE, new_state_record, read_state, utc_now, write_new_state
from ocrpipe.index.metrics import update_metrics
from ocrpipe.logs import job_context
from ocrpipe.model import JobState

log = logging.getLogger("ocrpipe.decisions")

USE, DISCARD, FORCE = ACTIONS
COUNTER = {USE: "duplicates_used_existing", DISCARD: "duplicates_discarded", FORCE: "duplicates_reprocessed"}
WAITING = "a run of this file is in flight: the decision is carried out when it ends"


class BadDecision(ValueError):
    """decision.json cannot be carried out as written; nothing was moved."""


class Decisions:
    """The only code that moves held files after they were held."""

    def __init__(self, settings: Settings, profile: dict[str, Any], life: Lifecycle, held: set[str]) -> None:
        self.settings = settings
        self.profile = profile
        self.life = life
        self.held = held  # shared with admission: a key held here holds its next arrivals too
        self.pending: dict[str, int] = {}  # held files per key, for the gauge
        self._busy: set[str] = set()  # keys with intents not carried out yet
        self._shown: dict[str, tuple[Any, ...]] = {}  # what status.json shows: rewritten when it changes
        self._folders: dict[str, Path] = {}  # held key → its folder: found once, not by reading status.json each tick
        # key → (decision.json as it was put back, why): a malformed one is not claimed again at every tick
        self._rejected: dict[str, tuple[tuple[int, int, int], str]] = {}

    # ----- entry points ------------------------------------------------------------------------------

    def start(self) -> None:
        """At start: every held key is looked at once (intents a crash left are finished, old
        status.json files rewritten in today's format)."""
        reports = self.settings.reports_dir
        for leftover in reports.glob(".*.tmp") if reports.is_dir() else []:  # a kill during a report's write
            leftover.unlink(missing_ok=True)
        held, bad = scan_hold(self.settings.hold_dir)
        for folder, problem in bad.items():
            self._report_bad(folder, problem)
        for key in sorted(held):
            if wanted(self.settings, HELD):  # a hold a crash cut short before its event was written: before a
                for arrival in arrivals(self._folder(key)):  # decision carried out below forgets the arrival
                    announce_held(self.settings, key, arrival)
            self._apply(key, force_refresh=not self._up_to_date(key))

    def _report_bad(self, folder: Path, problem: str) -> None:
        """A folder of hold/ whose status.json or sidecar names a key that cannot be its own (written by
        hand, or by someone hostile): nothing in it is moved or deleted; its status.json says why (and the
        log, once: not again at the next start)."""
        if is_link(folder):  # writing into it would write where it points
            log.warning("%s: %s", folder, problem)
            return
        try:
            status = read_json(folder / STATUS_FILE)
        except (OSError, ValueError):
            status = None
        status = status if isinstance(status, dict) else {}
        if status.get("error") == problem:
            return
        log.warning("%s: %s; nothing in it is moved or deleted", folder, problem)
        try:
            atomic_write_json(folder / STATUS_FILE, {**status, "error": problem}, pretty=True)
        except OSError as exc:
            log.warning("cannot write %s (%s)", folder / STATUS_FILE, exc)

    def _up_to_date(self, key: str) -> bool:
        """Are status.json and the report as this version writes them, about the earlier run as it
        stands? Then a start rewrites nothing: many held keys cost a start no fsync each."""
        folder = self._folder(key)
        try:
            status = read_json(folder / STATUS_FILE)
        except (OSError, ValueError):
            return False
        in_flight = key in self.life.jobs
        held = arrivals(folder)
        if (not isinstance(status, dict) or status.get("state") != "DUPLICATE_PENDING"
                or any(a.intent for a in held)
                or sorted(a.held_name for a in held) != _held_names(status)
                or bool((status.get("existing") or {}).get("inFlight")) != in_flight
                or not report_file(self.settings.reports_dir, key).is_file()):
            return False
        self._shown[key] = (in_flight, status.get("error"), status.get("waiting"))
        return True

    def tick(self) -> None:
        """At every tick: keys with a new decision.json, intents still waiting, reports of a run that ended."""
        for key in sorted(self.held):
            folder = self._folder(key)
            shown = self._shown.get(key)
            if key in self._busy or self._new_decision(key, folder) or (
                    shown is not None and shown[0] and key not in self.life.jobs):
                self._apply(key)

    def held_one(self, key: str) -> None:
        """A new arrival was held: its report and status.json."""
        self.held.add(key)
        self._rejected.pop(key, None)  # a decision that named no held file may name this one
        self._apply(key, force_refresh=True)

    @property
    def pending_total(self) -> int:
        return sum(self.pending.values())

    # ----- one key -----------------------------------------------------------------------------------

    def _folder(self, key: str) -> Path:
        folder = self._folders.get(key)
        if folder is None:
            folder = self._folders[key] = hold_folder(self.settings.hold_dir, key)
        return folder

    def _apply(self, key: str, *, force_refresh: bool = False) -> None:
        folder = self._folder(key)
        try:
            changed, error, waiting = self._decide(key, folder)
        except OSError as exc:  # a file held by another program (Windows): tried again next tick
            self._busy.add(key)
            changed, error, waiting = False, f"could not carry out the decision yet: {exc}", None
        in_flight = key in self.life.jobs
        shown = (in_flight, error, waiting)
        if error and error != status_error(folder):
            log.warning("duplicate %s: %s", key[:12], error, extra=job_context(key))
        if changed or force_refresh or self._shown.get(key) != shown:
            held = refresh(folder, self.settings.reports_dir, key=key, existing=self.existing(key),
                           profile=self.profile,
                           error=error, waiting=waiting)
            self._shown[key] = shown
            self.pending[key] = len(held)
            if not held:
                self.held.discard(key)
                self.pending.pop(key, None)
                self._shown.pop(key, None)
                self._rejected.pop(key, None)
                self._folders.pop(key, None)  # a later hold of the key may get another folder
        elif key not in self.pending:  # at start, when nothing needed rewriting
            self.pending[key] = len(arrivals(folder))

    def _decide(self, key: str, folder: Path) -> tuple[bool, str | None, str | None]:
        """(something changed, an error to show, why it waits)."""
        changed, error, waiting = False, None, None
        try:
            changed = self._take_decision(key, folder)
        except BadDecision as exc:
            error = str(exc)
        if error is None and key in self._rejected:
            error = self._rejected[key][1]
        self._busy.discard(key)
        held = arrivals(folder)
        error = error or next((a.problem for a in held if a.problem), None)
        for arrival in held:
            intent = arrival.intent
            if not intent:
                continue
            job = self.life.jobs.get(key)
            if intent["action"] == FORCE and job is not None and _run_id(job) == intent["runId"]:
                self._finish_force(arrival, job)  # a crash cut its move into input/ short
                changed = True
            elif job is not None:
                waiting = WAITING
                self._busy.add(key)
            else:
                problem = self._carry_out(key, arrival)
                error = problem or error
                changed = True
        return changed, error, waiting

    def _new_decision(self, key: str, folder: Path) -> bool:
        """Is there a decision.json not yet claimed, other than the malformed one put back?"""
        try:
            seen = _signature(folder / DECISION_FILE)
        except OSError:
            return False
        rejected = self._rejected.get(key)
        return rejected is None or rejected[0] != seen

    def _take_decision(self, key: str, folder: Path) -> bool:
        """decision.json is claimed (renamed) before it is read; each chosen file's sidecar records the
        intent, then the claimed file goes: one or the other always says what to do. True when a
        decision was taken."""
        found = claimed_decision(folder)  # one a crash left claimed comes first: it was written first
        if found is None:
            if not self._new_decision(key, folder):
                return False
            found = claim_decision(folder)
            if found is None:
                return False
        path, claim = found
        held = arrivals(folder)
        if any((a.intent or {}).get("claim") == claim for a in held):
            path.unlink(missing_ok=True)  # a crash came after its intents were written
            return True
        try:
            if is_link(path):
                raise BadDecision("decision.json is a link: not followed; nothing was moved")
            action, note, chosen = parse_decision(path, held)
        except BadDecision as exc:
            self._put_back(key, path, folder / DECISION_FILE, str(exc))
            raise
        at = utc_now()
        for arrival in chosen:
            arrival.meta["decision"] = {"action": action, "note": note, "decidedAt": at, "claim": claim,
                                        **({"runId": uuid.uuid4().hex} if action == FORCE else {})}
            arrival.save()
        path.unlink(missing_ok=True)
        self._rejected.pop(key, None)
        log.info("decision %s for %d held file(s)%s", action, len(chosen), f" ({note})" if note else "",
                 extra=job_context(key))
        return True

    def _put_back(self, key: str, claimed: Path, path: Path, problem: str) -> None:
        """A malformed decision goes back where the person put it, to be corrected there; not over a
        decision.json written meanwhile, which replaces it."""
        try:
            rename_new(claimed, path)
        except FileExistsError:
            claimed.unlink(missing_ok=True)
            log.warning("a malformed decision.json was replaced by a newer one before it was put back (%s)",
                        problem, extra=job_context(key))
            return
        self._rejected[key] = (_signature(path), problem)

    # ----- the three actions -------------------------------------------------------------------------

    def _carry_out(self, key: str, arrival: Arrival) -> str | None:
        """An error for status.json when the action cannot be done (nothing moved then)."""
        intent = arrival.intent
        assert intent is not None
        if intent["action"] == FORCE:
            return self._start_force(key, arrival)
        if intent["action"] == USE and not intent.get("placed"):
            problem = self._use_existing(key, arrival)
            if problem:
                return problem
        elif intent["action"] == DISCARD:
            arrival.path.unlink(missing_ok=True)
        announce_decision(self.settings, key, arrival)
        self.life.index.add_decision(key, self._entry(arrival))
        if intent["action"] == USE:
            for folder, tmp in self._use_temps(key, arrival):
                drop_temp(folder, tmp)
        self._done(key, arrival)
        return None

    def _use_existing(self, key: str, arrival: Arrival) -> str | None:
        output = self._existing_output(key)
        if output is None:
            del arrival.meta["decision"]
            arrival.save()
            return ("USE_EXISTING_RESULT was not carried out: the earlier run's output is gone (or it has none); "
                    "nothing was moved. Choose DISCARD or FORCE_REPROCESS")
        rel = safe_relpath(arrival.meta["source"])  # placed under a name every OS accepts, as publish does
        out_rel = output_relpath(arrival.meta["source"])
        (out_folder, out_tmp), (archive_folder, orig_tmp) = self._use_temps(key, arrival)
        placed_out = place_file(output, out_folder, out_rel.name, tmp_name=out_tmp, keep_source=True)
        archived = place_file(arrival.path, archive_folder, rel.name, tmp_name=orig_tmp, keep_source=False)
        arrival.meta["decision"]["placed"] = {"output": plain_path(placed_out), "archived": plain_path(archived)}
        arrival.save()
        return None

    def _use_temps(self, key: str, arrival: Arrival) -> list[tuple[Path, str]]:
        # Derived from the held file, so a restart finds the same temp files again.
        tag = f".{key[:16]}-{hashlib.sha256(arrival.held_name.encode()).hexdigest()[:8]}"
        # The folders as publish makes them: in the long-path form when a name placed there could pass MAX_PATH.
        rel, out_rel = safe_relpath(arrival.meta["source"]), output_relpath(arrival.meta["source"])
        out_tmp, orig_tmp = f"{tag}.use-out.ocrpipe-tmp", f"{tag}.use-orig.ocrpipe-tmp"
        return [(mirrored_folder(self.settings.out_dir, out_rel, out_tmp), out_tmp),
                (mirrored_folder(self.settings.archive_dir, rel, orig_tmp), orig_tmp)]

    def _start_force(self, key: str, arrival: Arrival) -> str | None:
        """Same job key, a new run id; the run's record carries the decision to the job index."""
        intent = arrival.intent
        assert intent is not None
        job_dir = folder_for(self.settings.work_dir, key, STATE_FILE)  # as admission makes it
        if (job_dir / STATE_FILE).exists():
            return f"FORCE_REPROCESS waits: {job_dir} holds another run that could not be read"
        if not arrival.path.is_file():
            arrival.forget()  # nothing left to run (an older version moved it): nothing to record
            return None
        file_hash, _, profile_hash = key.partition("__")
        record = new_state_record(job_key=key, run_id=intent["runId"], file_hash=file_hash, profile_hash=profile_hash,
                                  source_name=arrival.file_name, source_relpath=arrival.meta["source"],
                                  size=arrival.path.stat().st_size)
        record.update(decision=[self._entry(arrival)], heldAs=arrival.held_name)
        if arrival.meta.get("sourceBytes"):  # a name that was not UTF-8: its bytes, as admission records them
            record["source"]["relpathBytes"] = arrival.meta["sourceBytes"]
        write_new_state(job_dir, record)  # the intent first, as admission does
        job = Job(key, job_dir, JobState.DISCOVERED)
        self.life.track(job)
        self._finish_force(arrival, job)
        return None

    def _finish_force(self, arrival: Arrival, job: Job) -> None:
        target = job.dir / read_state(job.dir)["input"]
        if arrival.path.is_file():
            if target.is_file():  # a cross-volume move had copied it, not yet deleted the source
                arrival.path.unlink()
            else:
                move_replacing(arrival.path, target.parent, target.name)
        log.info("reprocessing %s (same job key, a new run)", arrival.meta["source"], extra=job_context(job.key))
        announce_decision(self.settings, job.key, arrival)
        self._done(job.key, arrival)

    def _done(self, key: str, arrival: Arrival) -> None:
        action = arrival.intent["action"] if arrival.intent else ""
        arrival.forget()
        update_metrics(self.life.metrics, COUNTER.get(action, ""))
        if action != FORCE:
            log.info("%s: %s", action, arrival.meta["source"], extra=job_context(key))

    def _entry(self, arrival: Arrival) -> dict[str, Any]:
        intent = arrival.intent or {}
        return {"action": intent.get("action"), "note": intent.get("note"), "decidedAt": intent.get("decidedAt"),
                "file": arrival.held_name, "source": arrival.meta.get("source"), **(
                    {"output": intent["placed"]["output"]} if intent.get("placed") else {})}

    # ----- the earlier run ---------------------------------------------------------------------------

    def existing(self, key: str) -> dict[str, Any] | None:
        """The earlier run: the one in flight, else the latest that ended DONE, else the latest."""
        job = self.life.jobs.get(key)
        if job is not None:
            try:
                record = read_state(job.dir)
            except (OSError, ValueError):
                return {"state": job.state.value, "inFlight": True}
            return {"state": record["state"], "runId": record["runId"], "source": record["source"]["relpath"],
                    "output": None, "finishedAt": None, "inFlight": True}
        runs = self.life.index.get(key)
        done = [r for r in runs if r["state"] == "DONE"] or runs
        if not done:
            return None
        run = done[-1]
        return {"state": run["state"], "runId": run["runId"], "source": run.get("source"),
                "output": run.get("output"), "finishedAt": run.get("finishedAt")}

    def _existing_output(self, key: str) -> Path | None:
        for run in reversed(self.life.index.get(key)):
            if run["state"] == "DONE" and run.get("output") and Path(run["output"]).is_file():
                return Path(run["output"])
        return None


def _signature(path: Path) -> tuple[int, int, int]:
    """What tells a file from the one written after it (kept by a rename)."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _held_names(status: dict[str, Any]) -> list[str]:
    files = status.get("files")
    return sorted(str(f.get("heldFile")) for f in files if isinstance(f, dict)) if isinstance(files, list) else []


def _run_id(job: Job) -> str | None:
    try:
        return str(read_state(job.dir)["runId"])
    except (OSError, ValueError, KeyError):
        return None


def parse_decision(path: Path, held: list[Arrival]) -> tuple[str, str | None, list[Arrival]]:
    """(action, note, the held files it applies to); BadDecision says what is wrong."""
    try:
        raw = read_json(path)
    except ValueError as exc:
        raise BadDecision(f"decision.json is not valid JSON ({exc}); nothing was moved") from None
    except OSError as exc:
        raise BadDecision(f"decision.json cannot be read ({exc}); nothing was moved") from None
    if not isinstance(raw, dict):
        raise BadDecision('decision.json must be an object such as {"action": "DISCARD"}; nothing was moved')
    action = raw.get("action")
    if action not in ACTIONS:
        raise BadDecision(f"unknown action {action!r} in decision.json: use one of {', '.join(ACTIONS)}; "
                          "nothing was moved")
    note = raw.get("note")
    if note is not None and not isinstance(note, str):
        raise BadDecision("the note in decision.json must be text; nothing was moved")
    open_files = [a for a in held if not a.intent and not a.problem]
    wanted = raw.get("file")
    if wanted is None:
        return action, note, open_files
    if not isinstance(wanted, str):
        raise BadDecision(f"the file in decision.json must be text (a held file's name), not {wanted!r:.60}; "
                          "nothing was moved")
    chosen = [a for a in open_files if wanted == a.held_name] or [
        a for a in open_files if wanted in (a.file_name, a.meta.get("source"))]
    # The message names no list of files: it stays the same as more arrive, so it is logged once.
    if not chosen:
        raise BadDecision(f"unknown file {wanted!r} in decision.json: it is none of the undecided held files "
                          "that status.json lists; nothing was moved")
    if len(chosen) > 1:
        raise BadDecision(f"file {wanted!r} in decision.json names several held files: give the held name "
                          "(heldFile in status.json); nothing was moved")
    return action, note, chosen
