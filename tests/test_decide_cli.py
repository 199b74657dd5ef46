"""``ocrpipe duplicates`` and ``ocrpipe decide`` with real ``ocrpipe run --once`` processes (fake tools)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import finished_jobs, make_pdf


def ocrpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrpipe", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def run_once(env: dict[str, str]) -> None:
    done = ocrpipe(env, "run", "--once")
    assert done.returncode == 0, done.stderr


def pending(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = ocrpipe(env, "duplicates", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


@pytest.fixture
def held(data_dir: Path, fake_env: dict[str, str]) -> str:
    """scan.pdf processed by one run --once, its copies held by the next; returns the job key."""
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
    run_once(fake_env)
    for name in ("one.pdf", "two.pdf", "three.pdf"):
        (data_dir / "in" / name).write_bytes(make_pdf(1))
    run_once(fake_env)
    [entry] = pending(fake_env)
    return str(entry["jobKey"])


def test_each_action_through_the_cli_and_run_once(data_dir: Path, fake_env: dict[str, str], held: str) -> None:
    [entry] = pending(fake_env)
    assert sorted(f["fileName"] for f in entry["files"]) == ["one.pdf", "three.pdf", "two.pdf"]
    assert entry["existing"]["output"].endswith("scan.pdf")
    text = ocrpipe(fake_env, "duplicates")
    assert held[:16] in text.stdout and "one.pdf" in text.stdout and "scan.pdf" in text.stdout
    for name, verb in (("one.pdf", "use-existing"), ("two.pdf", "discard"), ("three.pdf", "force")):
        decided = ocrpipe(fake_env, "decide", held[:12], verb, "--file", name, "--note", f"cli {verb}")
        assert decided.returncode == 0, decided.stderr
        run_once(fake_env)
    assert pending(fake_env) == []
    assert sorted(p.name for p in (data_dir / "out").iterdir()) == ["one.pdf", "scan.pdf", "three.pdf"]
    assert sorted(p.name for p in (data_dir / "archive").iterdir()) == ["one.pdf", "scan.pdf", "three.pdf"]
    runs = finished_jobs(data_dir)
    assert [r["jobKey"] for r in runs] == [held, held] and runs[0]["runId"] != runs[1]["runId"]
    assert [d["action"] for d in runs[0]["decision"]] == ["USE_EXISTING_RESULT", "DISCARD"]
    assert [(d["action"], d["note"]) for d in runs[1]["decision"]] == [("FORCE_REPROCESS", "cli force")]
    metrics = json.loads((data_dir / "index" / "metrics.json").read_text())
    assert [metrics[k] for k in ("duplicates_detected", "duplicates_used_existing", "duplicates_discarded",
                                 "duplicates_reprocessed", "duplicates_pending")] == [3, 1, 1, 1, 0]


def test_bad_usage_of_decide_is_exit_2_with_a_clear_message(fake_env: dict[str, str], held: str) -> None:
    for args, message in ((("0000", "discard"), "no held duplicate"),
                          ((held[:8], "discard", "--file", "nope.pdf"), "is not held"),
                          ((held[:8], "burn"), "invalid choice")):
        result = ocrpipe(fake_env, "decide", *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result


def test_the_same_bytes_with_another_ocr_lang_are_not_a_duplicate(data_dir: Path, fake_env: dict[str, str]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
    run_once(fake_env)
    (data_dir / "in" / "again.pdf").write_bytes(make_pdf(1))
    run_once({**fake_env, "OCR_LANG": "fra"})
    assert pending(fake_env) == []
    runs = finished_jobs(data_dir)
    assert len(runs) == 2 and runs[0]["jobKey"] != runs[1]["jobKey"]
    assert runs[0]["jobKey"].split("__")[0] == runs[1]["jobKey"].split("__")[0]  # same bytes


def test_a_second_decide_before_a_run_is_refused_naming_the_first(data_dir: Path, fake_env: dict[str, str],
                                                                  held: str) -> None:
    first = ocrpipe(fake_env, "decide", held[:12], "use-existing", "--file", "one.pdf")
    assert first.returncode == 0, first.stderr
    second = ocrpipe(fake_env, "decide", held[:12], "discard", "--file", "two.pdf")
    assert second.returncode == 2 and "Traceback" not in second.stderr, second
    assert "waiting" in second.stderr and "USE_EXISTING_RESULT of one.pdf" in second.stderr, second.stderr
    run_once(fake_env)
    again = ocrpipe(fake_env, "decide", held[:12], "discard", "--file", "two.pdf")  # the first is carried out
    assert again.returncode == 0, again.stderr
    run_once(fake_env)
    [entry] = pending(fake_env)
    assert [f["fileName"] for f in entry["files"]] == ["three.pdf"]
    assert sorted(p.name for p in (data_dir / "out").iterdir()) == ["one.pdf", "scan.pdf"]
