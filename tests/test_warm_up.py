"""A pool worker's warm-up loads its own stage's modules only: an OCR worker started beside the first PREP
does not also load PREP's (archives, images, Office), so it is ready when that PREP ends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from ocrpipe.engine.worker import warm_up
warm_up(*sys.argv[1:2])
print(json.dumps(sorted(m for m in sys.modules if m.startswith("ocrpipe.stages.") and m.count(".") == 2)))
"""


def loaded_after_warm_up(*stage: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *stage], capture_output=True, text=True, timeout=120,
                          check=True, stdin=subprocess.DEVNULL)
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(("stage", "loaded", "not_loaded"), [
    ("PREP", {"ocrpipe.stages.prep"}, set()),
    ("OCR", {"ocrpipe.stages.ocr", "ocrpipe.stages.batch", "ocrpipe.stages.split"},
     {"ocrpipe.stages.prep", "ocrpipe.stages.assemble", "ocrpipe.stages.convert"}),
    ("CONVERT", {"ocrpipe.stages.convert"}, {"ocrpipe.stages.prep", "ocrpipe.stages.split"}),
])
def test_a_worker_warms_up_with_its_own_stage(stage: str, loaded: set[str], not_loaded: set[str]) -> None:
    modules = loaded_after_warm_up(stage)
    assert loaded <= modules
    assert not modules & not_loaded


def test_without_a_stage_both_prep_and_ocr_are_loaded() -> None:
    assert {"ocrpipe.stages.prep", "ocrpipe.stages.ocr", "ocrpipe.stages.split"} <= loaded_after_warm_up()
