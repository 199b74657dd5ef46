"""What the scheduler tracks in flight: jobs and the stage units running them; state.json stays the truth."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ocrpipe.model import RUNNING_STATES, SUBMITTED_STATES, JobState, Stage


@dataclass
class Job:
    """A job in flight, as the scheduler tracks it; state.json stays the record of truth."""

    key: str
    dir: Path
    state: JobState
    pages: int | None = None
    attempts: dict[str, int] = field(default_factory=lambda: {"PREP": 0, "OCR": 0})
    future: Future | None = None
    submitted_at: float = 0.0
    not_before: float = 0.0
    grace_until: float = 0.0  # after a pause of the scheduler itself, staleness is not judged before this
    solo: bool = False  # never batched: its batch failed, or a batch would drop part of it (bookmarks…)
    batch_group: str | None = None  # batched only with jobs of the same group (PREP's batchGroup)
    whole: bool = False  # never split into page ranges (a split of it failed)
    work: tuple[float, float] | None = None  # PREP's estimate of its OCR work: in all, heaviest page
    convert: str | None = None  # "office" or "email": the job starts with CONVERT (admission's finding)
    seq: int = 0

    @property
    def in_stage(self) -> bool:
        return self.state in SUBMITTED_STATES or self.state in RUNNING_STATES


@dataclass
class Unit:
    """One submitted stage: a single job, an OCR batch of several, or one job split into page ranges."""

    stage: Stage
    jobs: list[Job]
    parts: int = 1  # a long document OCRed as this many page ranges, one OCR slot each
    page_workers: int = 0  # each call's --jobs, once submitted

    @property
    def slots(self) -> int:
        return self.parts

    @property
    def batch(self) -> bool:
        return len(self.jobs) > 1

    @property
    def pages(self) -> int:
        return sum(j.pages or 1 for j in self.jobs)

    @property
    def busy_cores(self) -> int:
        """The cores its page phase keeps busy: a page worker each, while it has pages for them."""
        return min(self.parts * self.page_workers, self.pages)
