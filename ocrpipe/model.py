"""Job identity, stages and the legal state transitions: pure functions, no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from enum import Enum
from typing import Any


class Stage(str, Enum):
    CONVERT = "CONVERT"  # only for documents that are neither PDF nor image: Office files, e-mail
    PREP = "PREP"
    OCR = "OCR"


class JobState(str, Enum):
    DISCOVERED = "DISCOVERED"
    CONVERT_SUBMITTED = "CONVERT_SUBMITTED"
    CONVERT_RUNNING = "CONVERT_RUNNING"
    CONVERT_DONE = "CONVERT_DONE"
    CONVERT_RETRY = "CONVERT_RETRY"
    CONVERT_ERROR = "CONVERT_ERROR"
    CONVERT_TIMEOUT = "CONVERT_TIMEOUT"
    PREP_SUBMITTED = "PREP_SUBMITTED"
    PREP_RUNNING = "PREP_RUNNING"
    PREP_DONE = "PREP_DONE"
    PREP_RETRY = "PREP_RETRY"
    PREP_ERROR = "PREP_ERROR"
    PREP_TIMEOUT = "PREP_TIMEOUT"
    OCR_SUBMITTED = "OCR_SUBMITTED"
    OCR_RUNNING = "OCR_RUNNING"
    OCR_RETRY = "OCR_RETRY"
    OCR_ERROR = "OCR_ERROR"
    OCR_TIMEOUT = "OCR_TIMEOUT"
    DONE = "DONE"
    ERROR = "ERROR"


S = JobState
TERMINAL_STATES = frozenset({S.DONE, S.ERROR})
RUNNING_STATES = frozenset({S.CONVERT_RUNNING, S.PREP_RUNNING, S.OCR_RUNNING})
SUBMITTED_STATES = frozenset({S.CONVERT_SUBMITTED, S.PREP_SUBMITTED, S.OCR_SUBMITTED})

# A failure is first recorded (…_ERROR / …_TIMEOUT), then decided: retry or give up for good.
LEGAL_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.DISCOVERED: frozenset({S.CONVERT_SUBMITTED, S.PREP_SUBMITTED, S.ERROR}),
    # CONVERT turns an Office document or an e-mail into PDF parts; PREP then takes them as any PDF.
    S.CONVERT_SUBMITTED: frozenset({S.CONVERT_RUNNING, S.CONVERT_ERROR, S.CONVERT_TIMEOUT}),
    S.CONVERT_RUNNING: frozenset({S.CONVERT_DONE, S.CONVERT_ERROR, S.CONVERT_TIMEOUT}),
    S.CONVERT_ERROR: frozenset({S.CONVERT_RETRY, S.ERROR}),
    S.CONVERT_TIMEOUT: frozenset({S.CONVERT_RETRY, S.ERROR}),
    S.CONVERT_RETRY: frozenset({S.CONVERT_SUBMITTED, S.ERROR}),
    S.CONVERT_DONE: frozenset({S.PREP_SUBMITTED, S.ERROR}),
    S.PREP_SUBMITTED: frozenset({S.PREP_RUNNING, S.PREP_ERROR, S.PREP_TIMEOUT}),
    S.PREP_RUNNING: frozenset({S.PREP_DONE, S.PREP_ERROR, S.PREP_TIMEOUT}),
    S.PREP_ERROR: frozenset({S.PREP_RETRY, S.ERROR}),
    S.PREP_TIMEOUT: frozenset({S.PREP_RETRY, S.ERROR}),
    S.PREP_RETRY: frozenset({S.PREP_SUBMITTED, S.ERROR}),
    S.PREP_DONE: frozenset({S.OCR_SUBMITTED, S.ERROR}),
    S.OCR_SUBMITTED: frozenset({S.OCR_RUNNING, S.OCR_ERROR, S.OCR_TIMEOUT}),
    S.OCR_RUNNING: frozenset({S.DONE, S.OCR_ERROR, S.OCR_TIMEOUT}),
    S.OCR_ERROR: frozenset({S.OCR_RETRY, S.ERROR}),
    S.OCR_TIMEOUT: frozenset({S.OCR_RETRY, S.ERROR}),
    S.OCR_RETRY: frozenset({S.OCR_SUBMITTED, S.ERROR}),
    S.DONE: frozenset(),
    S.ERROR: frozenset(),
}


def is_legal_transition(old: JobState, new: JobState) -> bool:
    return new in LEGAL_TRANSITIONS[old]


def stage_of(state: JobState) -> Stage | None:
    """The stage a state belongs to, or None for DISCOVERED/DONE/ERROR."""
    if state.value.startswith("CONVERT_"):
        return Stage.CONVERT
    if state.value.startswith("PREP_"):
        return Stage.PREP
    if state.value.startswith("OCR_"):
        return Stage.OCR
    return None


def failure_state(stage: Stage, *, timeout: bool) -> JobState:
    suffix = "TIMEOUT" if timeout else "ERROR"
    return JobState(f"{stage.value}_{suffix}")


def retry_state(stage: Stage) -> JobState:
    return JobState(f"{stage.value}_RETRY")


def submitted_state(stage: Stage) -> JobState:
    return JobState(f"{stage.value}_SUBMITTED")


def running_state(stage: Stage) -> JobState:
    return JobState(f"{stage.value}_RUNNING")


def retry_delay(attempts_done: int, backoff_seconds: float) -> float:
    """Pause before the next attempt: backoff, then doubling (5 s, 10 s, 20 s…)."""
    return backoff_seconds * (2 ** max(0, attempts_done - 1))


def stable_json(obj: Any) -> str:
    """One canonical text per value: sorted keys, compact, non-ASCII kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalise_languages(lang: str) -> str:
    """``fra+eng`` and ``eng+fra`` name the same OCR languages."""
    return "+".join(sorted({part.strip() for part in lang.split("+") if part.strip()}))


def canonical_profile(
    *, ocr_lang: str, ocrmypdf_args: Iterable[str], tool_versions: dict[str, str], image_dpi: int,
    lang_candidates: Iterable[str] = (), lang_default: str = "eng",
) -> dict[str, Any]:
    """What decides the output of a file: same bytes + same profile ⇒ same result. Under OCR_LANG=auto
    the candidates and the first reading's language decide it too (other settings keep their old keys)."""
    auto = {"ocr_lang_candidates": sorted(set(lang_candidates)), "ocr_lang_default": lang_default} \
        if ocr_lang == "auto" else {}
    return {
        "ocr_lang": normalise_languages(ocr_lang),
        "ocrmypdf_args": list(ocrmypdf_args),
        "tool_versions": dict(sorted(tool_versions.items())),
        "image_dpi": image_dpi,
        **auto,
    }


def make_job_key(file_hash: str, profile: dict[str, Any]) -> tuple[str, str]:
    """Return ``(profile_hash, job_key)``; ``job_key = f"{file_hash}__{profile_hash}"``."""
    profile_hash = hashlib.sha256(stable_json(profile).encode("utf-8")).hexdigest()
    return profile_hash, f"{file_hash}__{profile_hash}"
