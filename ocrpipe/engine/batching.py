"""How ready documents are given to ocrmypdf: which share one call, and how many page workers
(``--jobs``) each call gets. Pure planning, no I/O. Whether a lone document is split: splitplan.py.

Each ocrmypdf call costs about 1.5 s of CPU before any OCR, so small documents that are ready
together are OCRed together. A batch never waits to fill up, is capped in pages, and the waiting
pages are shared evenly between the free OCR slots. Documents share a call only with documents of
their batch group (PREP decides it: those with JPEGs ocrmypdf's optimizer deflates go together, as
its all-or-nothing decision over the call must be the one each would get alone).

Page workers: a call's ``--jobs`` processes only work in its page phase; its start-up, text-layer
graft and PDF/A steps run on one core. So the calls together get about twice as many page workers
as there are cores (at least one each, all the cores for a call that starts alone): overlapping
calls fill each other's serial phases, and the call still running at the end of a burst does not
leave a core idle. Tesseract stays single-threaded (``OMP_THREAD_LIMIT=1``), so the kernel simply
shares the cores between them. Measured on 2 cores, 21 files, two calls at a time: 46.6 s with
``--jobs 2`` each, 49.7 s with ``--jobs 1`` (one run each; this machine's speed drifts by more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Plannable(Protocol):
    @property
    def pages(self) -> int | None: ...

    @property
    def solo(self) -> bool: ...

    @property
    def batch_group(self) -> str | None: ...


@dataclass
class PlannedUnit:
    jobs: list = field(default_factory=list)
    pages: int = 0
    batchable: bool = True
    group: str | None = None  # only documents of the same group share a call


def plan_ocr_units(ready: Sequence[Plannable], *, free_slots: int, max_batch_pages: int) -> list[list]:
    """Group ``ready`` (oldest first) into at most ``free_slots`` units; a unit of several is a batch."""
    if free_slots <= 0:
        return []

    def batchable(job: Plannable) -> bool:
        return not job.solo and (job.pages or 1) <= max_batch_pages and max_batch_pages > 1

    waiting_pages = sum(job.pages or 1 for job in ready if batchable(job))
    target = max(1, min(max_batch_pages, math.ceil(waiting_pages / free_slots)))
    units: list[PlannedUnit] = []
    for job in ready:
        pages = job.pages or 1
        if batchable(job):
            unit = next((u for u in units if u.batchable and u.group == job.batch_group
                         and u.pages + pages <= target), None)
            if unit is not None:
                unit.jobs.append(job)
                unit.pages += pages
                continue
        if len(units) < free_slots:
            units.append(PlannedUnit([job], pages, batchable(job), job.batch_group))
    return [unit.jobs for unit in units]


def page_workers(cores: int, slots: int, running: int) -> int:
    """``--jobs`` for an OCR call that starts while ``running`` calls (itself included) will run."""
    share_of_budget = math.ceil(2 * cores / max(1, slots))  # all slots busy: about 2 x cores in total
    alone = cores // max(1, running)  # fewer calls than slots: the free cores go to these
    return max(1, min(cores, max(share_of_budget, alone)))
