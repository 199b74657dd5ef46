"""``ocrpipe run`` applies retention once a day, in a thread of its own: the scheduler's step only looks
at a clock and starts or collects it, so its cost never grows with the history."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ocrpipe.config import Settings
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.metrics import update_metrics
from ocrpipe.index.retention import last_applied
from ocrpipe.retention.apply import apply_retention, pending_plan
from ocrpipe.retention.plan import Summary

log = logging.getLogger("ocrpipe.retention")
EVERY = timedelta(days=1)
CHECK_SECONDS = 600.0  # how often the step looks whether a day has passed since the last pass


def describe(summary: Summary) -> str:
    a, e = summary.archive, summary.error
    went = "moved to " + summary.trash if summary.trash else "removed"
    text = (f"{went} {a.files} archived original(s) ({a.bytes / 2**20:.1f} MB) and {e.items} error folder(s) "
            f"({e.files} file(s), {e.bytes / 2**20:.1f} MB); thinned {summary.rows_thinned} index row(s)")
    if summary.resumed:
        text += f"; {summary.resumed} of them finish an interrupted pass"
    if summary.failed:
        text += f"; {len(summary.failed)} could not be removed (tried again next time)"
    return text


def count(metrics: dict[str, object], summary: Summary) -> None:
    """A pass's removals in the counters of metrics.json (and /metrics)."""
    update_metrics(metrics, "retention_files_removed", summary.archive.files + summary.error.files)
    update_metrics(metrics, "retention_bytes_removed", summary.archive.bytes + summary.error.bytes)
    update_metrics(metrics, "retention_rows_thinned", summary.rows_thinned)


class DailyRetention:
    """Started from the scheduler's step when due: an interrupted pass waits, or a day has passed since the
    last one (the time is kept in the job index, so ``run --once`` every few minutes applies it once a day)."""

    def __init__(self, settings: Settings, index: JobIndex, *, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.index = index
        self.clock = clock or (lambda: datetime.now(UTC))
        self._next_check = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: Summary | None = None

    def due(self) -> bool:
        if pending_plan(self.settings):
            return True
        if not self.settings.retention_on:
            return False
        last = last_applied(self.index)
        try:
            return last is None or datetime.fromisoformat(last) + EVERY <= self.clock()
        except ValueError:
            return True

    def poll(self, now: float) -> Summary | None:
        """One look (monotonic ``now``): the summary of a pass that has just ended, else None."""
        if self._thread is not None:
            return None if self._thread.is_alive() else self.collect()
        if now < self._next_check:
            return None
        self._next_check = now + CHECK_SECONDS
        if self.due():
            self._thread = threading.Thread(target=self._pass, name="ocrpipe-retention", daemon=True)
            self._thread.start()
        return None

    def _pass(self) -> None:
        try:
            summary = apply_retention(self.settings, self.index, self.clock(), stop=self._stop.is_set)
        except Exception as exc:  # noqa: BLE001 — a pass that fails is logged and tried again at the next check
            log.error("retention: the pass failed (%s: %s); tried again later", type(exc).__name__, exc)
            return
        log.info("retention: %s", describe(summary), extra={"event": "retention", **summary.as_json()})
        self._result = summary

    def collect(self) -> Summary | None:
        """The summary of the pass that ended, once (None while one runs or when none ended)."""
        if self._thread is not None and self._thread.is_alive():
            return None
        self._thread = None
        done, self._result = self._result, None
        return done

    def join(self) -> None:
        """Wait for a pass under way (tests; ``run --once`` ending)."""
        if self._thread is not None:
            self._thread.join()

    def close(self, *, wait: bool) -> None:
        """``wait``: let a pass under way end; else ask it to stop after its current file (its plan stays)."""
        if not wait:
            self._stop.set()
        self.join()
