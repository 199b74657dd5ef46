"""The repository stands on its own: no test and no default benchmark input reads beside it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

import guard
import inputs
from guard import REPO, Guard, ReadBesideRepository
from inputs import InputSet

sys.path.insert(0, str(REPO / "bench"))

import benchmarks  # noqa: E402
import sources  # noqa: E402


def forget_last_reach() -> str:
    """Take back what a test reached on purpose, so the session does not fail for it."""
    assert guard.GUARD is not None
    return guard.GUARD.reached.pop()


def test_opening_a_file_beside_the_repository_fails() -> None:
    beside = REPO.parent / "shared" / "corpus" / "MANIFEST.tsv"
    with pytest.raises(ReadBesideRepository, match="beside the repository"):
        open(beside, encoding="utf-8")
    assert forget_last_reach() == f"open {beside}"


def test_listing_the_parent_folder_fails_even_when_the_error_is_caught() -> None:
    with pytest.raises(ReadBesideRepository):
        os.listdir(REPO.parent)
    with pytest.raises(ReadBesideRepository):
        os.scandir(REPO.parent / "shared" / "corpus")
    assert forget_last_reach().startswith("os.scandir")
    assert forget_last_reach() == f"os.listdir {REPO.parent}"


def test_guard_tells_beside_from_inside_and_elsewhere(tmp_path: Path) -> None:
    repo = tmp_path / "clone" / "ocrpipe"
    rule = Guard(repo, allowed=[tmp_path / "clone" / "corpus", tmp_path])
    assert rule.is_beside(str(tmp_path / "clone" / "shared" / "corpus" / "a.pdf"))
    assert rule.is_beside(str(tmp_path / "clone"))
    assert rule.is_beside(str(tmp_path / "clone" / "ocrpipe-other" / "x"))  # a name prefix is not inside
    assert not rule.is_beside(str(repo / "tests" / "inputs.py"))
    assert not rule.is_beside(str(tmp_path / "clone" / "corpus" / "b.png"))  # an opted-in corpus
    assert not rule.is_beside(str(tmp_path.parent / "elsewhere"))
    # tmp_path holds the repository's parent: allowing it would allow everything beside, so it is ignored.
    assert rule.is_beside(str(tmp_path / "clone" / "notes.txt"))


def test_every_generated_input_is_made_in_the_sessions_folder(made_inputs: InputSet) -> None:
    for name in inputs.RECIPES:
        path = made_inputs[name]
        assert path.parent == made_inputs.folder and path.stat().st_size > 0, name
    assert guard.GUARD is not None and not guard.GUARD.is_beside(str(made_inputs.folder))


@pytest.mark.parametrize("argv, count", [(["--smoke"], 3), ([], 21)], ids=["smoke", "default"])
def test_benchmark_default_inputs_are_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                argv: list[str], count: int) -> None:
    """Chosen under the guard: a default that still read ../shared/corpus would raise here."""
    monkeypatch.delenv("OCRPIPE_CORPUS", raising=False)
    args = benchmarks.resolve_args(benchmarks.build_parser().parse_args(argv))
    made = benchmarks.make_inputs(args, tmp_path)
    assert len(made) == count
    assert all(f.source.startswith("generated:") and f.path.is_relative_to(tmp_path) for f in made)
    assert len({sources.sha256_of(f.path) for f in made}) == count  # no duplicates for ocrpipe to hold
    if not argv:  # the default workload is a mix: PDFs, images and archives
        kinds = {sources.copy_kind(f.path) for f in made} | {f.path.suffix for f in made}
        assert {"pdf", "zip", ".tif", ".jpg", ".png"} <= kinds


def test_benchmark_source_takes_any_folder(tmp_path: Path, made_inputs: InputSet) -> None:
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.pdf").write_bytes(made_inputs["fox.pdf"].read_bytes())
    (folder / "b.png").write_bytes(made_inputs["no-dpi.png"].read_bytes())
    args = benchmarks.resolve_args(benchmarks.build_parser().parse_args(["--source", str(folder), "--files", "2"]))
    made = benchmarks.make_inputs(args, tmp_path / "work")
    assert sorted(f.source for f in made) == ["b.png", "sub/a.pdf"]
    with pytest.raises(benchmarks.BenchError, match="not a folder"):
        benchmarks.resolve_args(argparse.Namespace(**{**vars(args), "source": tmp_path / "missing"}))
