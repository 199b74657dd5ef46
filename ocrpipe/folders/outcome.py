"""A stage's outcome: the message a worker sends back, and how it is written into state.json.

Workers write their own stage's record (start, end, result); the scheduler writes only what it
decides (retry, give up) and what it saw itself (a dead worker, a stale heartbeat). These pure
functions change a record in memory, for store.update_state to write in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocrpipe.errors import Code
from ocrpipe.folders.store import apply_transition
from ocrpipe.model import JobState, Stage, failure_state, running_state, submitted_state

# What became of the images and of PDF/A in the OCR run (stages/pdfa.py), kept in state.json and the index.
RUN_FIDELITY_FIELDS = ("imagesReencoded", "reencodeReason", "pdfaSkippedReason")
ORIENTATION_FIELDS = ("orientationChecked", "pagesTurned")
# OCR_LANG=auto (stages/language.py): the language(s) found, how sure, whether a second reading ran, the
# languages the kept reading used, each page's where pages differ, and a batch member read again alone.
LANGUAGE_FIELDS = ("languages", "languageProbability", "secondReading", "ocrLang", "pageLanguages", "readAlone")

# DISCOVERED is ready for CONVERT or for PREP: the job's record says which (``convert``, see first_stage).
READY_STATES = {
    Stage.CONVERT: frozenset({JobState.DISCOVERED, JobState.CONVERT_RETRY}),
    Stage.PREP: frozenset({JobState.DISCOVERED, JobState.CONVERT_DONE, JobState.PREP_RETRY}),
    Stage.OCR: frozenset({JobState.PREP_DONE, JobState.OCR_RETRY}),
}


@dataclass(frozen=True)
class StageOutcome:
    """What a worker reports back; plain data, so it pickles across the process boundary."""

    stage: Stage
    ok: bool
    seconds: float
    fields: dict[str, Any]
    transient: bool = True
    timeout: bool = False
    reason: str = ""
    exit_code: int | None = None
    stderr_tail: str = ""
    disk_full: bool = False
    code: str | None = None  # the reason code (errors.Code) of a failure
    batch_failure: bool = False  # a batch failed as a whole: each member is retried alone, for free
    split_failure: bool = False  # a split into page ranges failed: the document runs whole, for free
    free: bool = False  # not this file's fault (another job's worker died): the attempt does not count
    interrupted: bool = False  # cut short by a restart of ocrpipe: no attempt used (restarts.py)
    started_at: str | None = None
    ended_at: str | None = None


def mark_started(record: dict[str, Any], stage: Stage, attempts: dict[str, int], **fields: Any) -> None:
    """Submitted and running, in one write: the scheduler hands the attempt count to the worker."""
    if JobState(record["state"]) in READY_STATES[stage]:
        apply_transition(record, submitted_state(stage))
    record["attempts"] = dict(attempts)
    apply_transition(record, running_state(stage))
    record.update(fields)


def add_attempt(record: dict[str, Any], outcome: StageOutcome) -> None:
    stage = outcome.stage.value
    record["attemptLog"].append({
        "stage": stage, "number": record["attempts"][stage], "start": outcome.started_at, "end": outcome.ended_at,
        "seconds": round(outcome.seconds, 3),
        "outcome": "ok" if outcome.ok else ("timeout" if outcome.timeout else "error"),
        "exitCode": outcome.exit_code, "stderrTail": outcome.stderr_tail,
    })
    key = f"{stage.lower()}Seconds"
    record["timings"][key] = round(record["timings"].get(key, 0) + outcome.seconds, 3)


def mark_prepared(record: dict[str, Any], outcome: StageOutcome) -> None:
    add_attempt(record, outcome)
    apply_transition(record, JobState.PREP_DONE)
    # soloReason: what an OCR batch would drop of the document (its bookmarks, say); ghostscriptReason:
    # why ocrmypdf would make its PDF/A with Ghostscript, which would re-encode its batch mates' images
    # too. Either way it is OCRed alone. batchGroup: the documents it may share an OCR call with.
    # pageWork: its pages' estimated OCR work, from which the scheduler predicts whether a split pays.
    record.update(pages=outcome.fields["pages"], kind=outcome.fields["kind"],
                  soloReason=outcome.fields.get("soloReason"),
                  ghostscriptReason=outcome.fields.get("ghostscriptReason"),
                  batchGroup=outcome.fields.get("batchGroup"), pageWork=outcome.fields.get("pageWork"))
    if outcome.fields.get("signed"):
        record["signed"] = True


def first_stage(convert: str | None) -> Stage:
    """The stage a new job starts with: CONVERT for what admission found to be an Office document or an
    e-mail (its record's ``convert``), PREP for the rest."""
    return Stage.CONVERT if convert else Stage.PREP


def mark_converted(record: dict[str, Any], outcome: StageOutcome) -> None:
    """CONVERT's end: the PDF parts PREP takes in order (``convertedParts``: path under the job folder and
    the name a person knows it by), and what the conversion left out (listed on an e-mail's first page)."""
    add_attempt(record, outcome)
    apply_transition(record, JobState.CONVERT_DONE)
    record.update(convertedParts=outcome.fields["parts"], convertSkipped=outcome.fields.get("skipped") or [],
                  converter=outcome.fields.get("converter"))


def mark_done(record: dict[str, Any], outcome: StageOutcome) -> None:
    add_attempt(record, outcome)
    record.update(pdfa=outcome.fields.get("pdfa"), batchSize=outcome.fields.get("batchSize", 1),
                  splitInto=outcome.fields.get("splitInto"),
                  **{key: outcome.fields.get(key) for key in RUN_FIDELITY_FIELDS})
    for key in ORIENTATION_FIELDS:  # ROTATE_PAGES=auto: pages checked, pages turned
        if key in outcome.fields:
            record[key] = outcome.fields[key]
    for key in LANGUAGE_FIELDS:  # OCR_LANG=auto
        if key in outcome.fields:
            record[key] = outcome.fields[key]
    if outcome.fields.get("signature"):
        record["signature"] = outcome.fields["signature"]  # "kept" (no OCR) or "invalidated" (OCRed anyway)
    apply_transition(record, JobState.DONE)


def mark_failed(record: dict[str, Any], outcome: StageOutcome, attempts: dict[str, int] | None = None) -> None:
    """The failure, and the attempt it used; from a ready state too (its worker never started)."""
    stage = outcome.stage
    if JobState(record["state"]) in READY_STATES[stage]:
        apply_transition(record, submitted_state(stage))
    if attempts is not None:
        record["attempts"] = dict(attempts)
    add_attempt(record, outcome)
    apply_transition(record, failure_state(stage, timeout=outcome.timeout), outcome.reason)
    record["lastError"] = {"stage": stage.value, "attempt": record["attempts"][stage.value], "reason": outcome.reason,
                           "exitCode": outcome.exit_code, "stderrTail": outcome.stderr_tail,
                           "transient": outcome.transient, "code": failure_code(outcome)}


def failure_code(outcome: StageOutcome) -> str:
    """The reason code: the one the worker's error named, else what the scheduler saw (a timeout, a
    lost worker) or an unknown tool failure."""
    if outcome.code:
        return outcome.code
    return Code.TOOL_TIMEOUT.value if outcome.timeout else Code.TOOL_FAILED.value
