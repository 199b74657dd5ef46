"""Dropped files named like ocrpipe's own files (error.json, status.json, decision.json, a sidecar's
``.arrival.json``) keep their bytes in error/ and hold/, and are decided like any other held file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from conftest import drive, make_pdf
from faultkit import Driven, finished
from ocrpipe.config import Settings
from ocrpipe.engine.scheduler import Scheduler

OWN_NAMES = ("x.arrival.json", "status.json", "decision.json", "Error.JSON")


@pytest.mark.parametrize("name", ["error.json", "ERROR.json"])
def test_a_failing_file_named_error_json_keeps_its_bytes_in_error(
        data_dir: Path, make_settings: Callable[..., Settings],
        scheduler_for: Callable[[Settings], Scheduler], name: str) -> None:
    (data_dir / "in").mkdir(parents=True)
    dropped = b'{"a person\'s": "notes, not a scan"}'
    (data_dir / "in" / name).write_bytes(dropped)
    drive(scheduler_for(make_settings()))
    [folder] = list((data_dir / "error").iterdir())
    error = json.loads((folder / "error.json").read_text(encoding="utf-8"))
    assert error["code"] == "UNSUPPORTED_TYPE" and error["source"] == name
    assert error["file"].casefold() != "error.json"
    assert (folder / error["file"]).read_bytes() == dropped
    assert sorted(p.name for p in folder.iterdir()) == sorted(["error.json", error["file"]])


def hold_folder_of(data: Path) -> Path:
    [folder] = [p for p in (data / "hold" / "duplicates").iterdir() if p.is_dir()]
    return folder


def held_names(folder: Path) -> list[str]:
    """The held files, as status.json lists them."""
    status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
    return sorted(f["heldFile"] for f in status["files"])


def test_duplicates_named_like_ocrpipes_own_files_are_held_and_decided(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    (data / "in").mkdir(parents=True)
    (data / "in" / "scan.pdf").write_bytes(make_pdf(2))
    driven = Driven(settings)
    now = driven.run_all(0.0)
    for name in OWN_NAMES:
        (data / "in" / name).write_bytes(make_pdf(2))
    now = driven.run_all(now)
    folder = hold_folder_of(data)
    held = held_names(folder)
    assert sorted(name.split("__", 1)[1] for name in held) == sorted(OWN_NAMES)
    for name in held:
        assert (folder / name).read_bytes() == make_pdf(2)
    driven.restart()  # a start looks at every hold: nothing of the person's is taken for ours there either
    now = driven.run_all(now)
    assert held_names(folder) == held and all((folder / name).read_bytes() == make_pdf(2) for name in held)
    (folder / "decision.json").write_text(json.dumps({"action": "USE_EXISTING_RESULT"}), encoding="utf-8")
    driven.run_all(now)
    assert not folder.exists()
    for name in OWN_NAMES:
        assert (data / "archive" / name).read_bytes() == make_pdf(2)
    decided = [d for run in finished(data) for d in (run.get("decision") or [])]
    assert sorted(d["source"] for d in decided) == sorted(OWN_NAMES)


def test_sidecars_named_by_an_older_version_are_still_read(make_settings: Callable[..., Settings]) -> None:
    """Older versions wrote ``<held>.arrival.json`` beside the held file: a start reads them as sidecars, a held
    ``x.arrival.json`` among them stays a held file, and a decision carries out each intent."""
    settings = make_settings()
    data = settings.data_dir
    (data / "in").mkdir(parents=True)
    (data / "in" / "scan.pdf").write_bytes(make_pdf(2))
    driven = Driven(settings)
    now = driven.run_all(0.0)
    for name in ("copy.pdf", "x.arrival.json"):
        (data / "in" / name).write_bytes(make_pdf(2))
    now = driven.run_all(now)
    folder = hold_folder_of(data)
    held = held_names(folder)
    for name in held:  # as an older version named them
        (folder / f".{name}.arrival.json").rename(folder / f"{name}.arrival.json")
    sources = {name: json.loads((folder / f"{name}.arrival.json").read_text())["source"] for name in held}
    driven.restart()
    now = driven.run_all(now)
    assert held_names(folder) == held and all((folder / name).read_bytes() == make_pdf(2) for name in held)
    (folder / "decision.json").write_text(json.dumps({"action": "DISCARD"}), encoding="utf-8")
    driven.run_all(now)
    assert not folder.exists()
    decided = [d for run in finished(data) for d in (run.get("decision") or [])]
    assert sorted(d["source"] for d in decided) == sorted(sources.values()) == ["copy.pdf", "x.arrival.json"]
