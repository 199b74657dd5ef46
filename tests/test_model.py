"""Job identity and the state model: pure functions."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ocrpipe.model import (
    LEGAL_TRANSITIONS, TERMINAL_STATES, JobState, Stage, canonical_profile, failure_state, is_legal_transition,
    make_job_key, normalise_languages, retry_delay, retry_state, stable_json,
)

VERSIONS = {"ocrmypdf": "17.13.0", "tesseract": "5.3.0", "ghostscript": "10.00.0", "7z": "16.02"}


def profile(lang: str = "fra+eng", args: tuple[str, ...] = ("--skip-text",), **versions: str) -> dict:
    return canonical_profile(ocr_lang=lang, ocrmypdf_args=args, tool_versions={**VERSIONS, **versions}, image_dpi=300)


def test_profile_language_order_does_not_matter() -> None:
    assert profile("fra+eng") == profile("eng+fra")
    assert make_job_key("a" * 64, profile("fra+eng")) == make_job_key("a" * 64, profile("eng+fra"))


def test_language_normalisation_drops_repeats_and_blanks() -> None:
    assert normalise_languages("fra+eng+fra") == "eng+fra"
    assert normalise_languages(" deu + eng ") == "deu+eng"


def test_stable_json_ignores_key_order_and_keeps_non_ascii() -> None:
    assert stable_json({"b": 1, "a": {"y": 2, "x": 3}}) == stable_json({"a": {"x": 3, "y": 2}, "b": 1})
    assert stable_json({"a": 1, "b": [1, 2]}) == '{"a":1,"b":[1,2]}'
    assert stable_json({"langue": "français"}) == '{"langue":"français"}'


def test_job_key_format_and_what_changes_it() -> None:
    base = profile()
    profile_hash, key = make_job_key("f" * 64, base)
    assert key == f"{'f' * 64}__{profile_hash}"
    assert len(profile_hash) == 64
    assert make_job_key("e" * 64, base)[1] != key
    assert make_job_key("f" * 64, profile(args=("--skip-text", "--deskew")))[1] != key
    assert make_job_key("f" * 64, profile(tesseract="5.4.0"))[1] != key
    assert make_job_key("f" * 64, profile(lang="deu"))[1] != key


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=6))
def test_stable_json_round_trips_and_is_order_free(obj: dict) -> None:
    reordered = dict(reversed(list(obj.items())))
    assert stable_json(obj) == stable_json(reordered)
    assert json.loads(stable_json(obj)) == obj


@given(st.lists(st.sampled_from(["eng", "fra", "deu", "spa", "ita"]), min_size=1, max_size=5), st.randoms())
def test_job_key_stable_under_language_permutations(langs: list[str], rnd) -> None:
    shuffled = list(langs)
    rnd.shuffle(shuffled)
    assert make_job_key("0" * 64, profile("+".join(langs))) == make_job_key("0" * 64, profile("+".join(shuffled)))


def test_every_non_terminal_state_can_reach_an_end() -> None:
    for state in JobState:
        seen, frontier = {state}, [state]
        while frontier:
            for nxt in LEGAL_TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL_STATES, state


def test_failures_go_through_record_then_retry_or_error() -> None:
    for stage in Stage:
        for timeout in (False, True):
            failed = failure_state(stage, timeout=timeout)
            assert is_legal_transition(failed, retry_state(stage))
            assert is_legal_transition(failed, JobState.ERROR)
    assert not is_legal_transition(JobState.DONE, JobState.DISCOVERED)
    assert not is_legal_transition(JobState.DISCOVERED, JobState.OCR_SUBMITTED)


def test_retry_delay_doubles() -> None:
    assert [retry_delay(n, 5) for n in (1, 2, 3)] == [5, 10, 20]
