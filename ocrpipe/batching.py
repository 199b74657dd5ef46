"""Which ready documents share one ocrmypdf call: pure planning, no I/O.

Each ocrmypdf call costs about 1 s of CPU before any OCR, so small documents that are ready
together are OCRed together. A batch never waits to fill up, is capped in pages, and batches are
sized so that the free OCR workers get about the same work (no long tail on one core).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence


class Plannable(Protocol):
    @property
    def pages(self) -> int | None: ...

    @property
    def solo(self) -> bool: ...


@dataclass
class PlannedUnit:
    jobs: list = field(default_factory=list)
    pages: int = 0
    batchable: bool = True


def plan_ocr_units(ready: Sequence[Plannable], *, free_slots: int, workers: int, max_batch_pages: int) -> list[list]:
    """Group ``ready`` (oldest first) into at most ``free_slots`` units; a unit of several is a batch."""
    if free_slots <= 0:
        return []

    def batchable(job: Plannable) -> bool:
        return not job.solo and (job.pages or 1) <= max_batch_pages and max_batch_pages > 1

    waiting_pages = sum(job.pages or 1 for job in ready if batchable(job))
    target = max(1, min(max_batch_pages, math.ceil(waiting_pages / max(1, workers))))
    units: list[PlannedUnit] = []
    for job in ready:
        pages = job.pages or 1
        if batchable(job):
            unit = next((u for u in units if u.batchable and u.pages + pages <= target), None)
            if unit is not None:
                unit.jobs.append(job)
                unit.pages += pages
                continue
        if len(units) < free_slots:
            units.append(PlannedUnit([job], pages, batchable(job)))
    return [unit.jobs for unit in units]
