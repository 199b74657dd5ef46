"""The HTTP API's measurements: requests over a long job history, and the snapshot's share of a tick."""

from __future__ import annotations

import http.client
import statistics
import time
from concurrent.futures import Executor, Future
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

TARGET_MS = 100  # one request, with a history of any length
PUBLISH_TARGET_MS = 1  # the snapshot's share of a tick, with MAX_JOBS_IN_FLIGHT jobs in flight
REQUESTS = 15


class _Idle(Executor):
    """An executor that never runs anything: the scheduler's own work is measured, not the stages."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return Future()


def fill_index(index_dir: Path, count: int) -> list[str]:
    """``count`` finished jobs over the last days, one in ten failed; returns their keys, oldest first."""
    from ocrpipe.index.jobindex import JobIndex

    now = datetime.now(timezone.utc)
    keys = [f"{n:064x}__{'0' * 64}" for n in range(count)]

    def entry(n: int) -> dict[str, Any]:
        failed = n % 10 == 0
        finished = (now - timedelta(seconds=(count - n) * 3)).isoformat(timespec="milliseconds")
        return {"jobKey": keys[n], "runId": f"run{n}", "state": "ERROR" if failed else "DONE",
                "source": f"scans/scan{n}.pdf", "output": None if failed else f"/out/scans/scan{n}.pdf",
                "pages": 1 + n % 5, "attempts": {"PREP": 1, "OCR": 0 if failed else 1},
                "reason": "the file is empty" if failed else None, "createdAt": finished, "finishedAt": finished}

    with JobIndex(index_dir) as index:
        index.record_many(map(entry, range(count)))
    return keys


def _timed_get(host: str, port: int, path: str) -> tuple[float, int, int]:
    """(milliseconds, status, body bytes) of one GET on a fresh connection, as curl would make it."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000, response.status, len(body)


def api_over_history(finished: int, work: Path) -> dict[str, Any]:
    """Each route's request time with ``finished`` jobs in the index and a full scheduler in flight."""
    from ocrpipe.web.api import Api
    from ocrpipe.config import load_settings
    from ocrpipe.web.server import serve
    from ocrpipe.engine.scheduler import Scheduler

    data = work / "api" / "data"
    (data / "in").mkdir(parents=True)
    started = time.perf_counter()
    keys = fill_index(data / "index", finished)
    fill_seconds = time.perf_counter() - started
    settings = load_settings({"DATA_DIR": str(data), "STABLE_SECONDS": "0", "POLL_SECONDS": "0.05",
                              "MIN_FREE_MB": "0"})
    scheduler = Scheduler(settings, profile={"bench": 1}, executor_factory=lambda workers: _Idle())
    for n in range(settings.max_jobs_in_flight):  # never run: _Idle
        (data / "in" / f"new{n}.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n" + str(n).encode())
    publish: list[float] = []
    publish_once = scheduler.snapshot.publish

    def timed_publish(*args: Any, **kwargs: Any) -> Any:  # inside real ticks, whatever the scheduler hands it
        began = time.perf_counter()
        try:
            return publish_once(*args, **kwargs)
        finally:
            publish.append((time.perf_counter() - began) * 1000)

    scheduler.snapshot.publish = timed_publish  # type: ignore[method-assign]
    for n in range(200):
        scheduler.tick(1000.0 + n * 0.01)
    in_flight = len(scheduler.jobs)
    api = Api(settings, scheduler.snapshot, tools={"bench": "1"}, clock=lambda: 1002.0)
    routes = {"firstPage": "/jobs", "deepPageByOffset": f"/jobs?offset={max(0, finished - 100)}",
              "deepPageByCursor": "/jobs?before=101",  # the oldest 100, by the cursor a page gives
              "errorsOnly": "/jobs?state=ERROR&limit=1000", "oldestJob": f"/jobs/{keys[0]}" if keys else "/jobs",
              "metrics": "/metrics", "health": "/health", "statusPage": "/"}
    timings: dict[str, Any] = {}
    with serve(api, "127.0.0.1", 0) as service:
        host, port = service.server.server_address[:2]
        for name, path in routes.items():
            runs = [_timed_get(str(host), int(port), path) for _ in range(REQUESTS)]
            ms = [r[0] for r in runs]
            timings[name] = {"path": path, "status": runs[0][1], "bytes": runs[0][2],
                             "medianMs": round(statistics.median(ms), 2), "maxMs": round(max(ms), 2)}
    slowest = max(t["medianMs"] for t in timings.values())
    statuses_ok = all(t["status"] == 200 for t in timings.values())
    publish_median = statistics.median(publish)
    return {"finishedJobs": finished, "inFlight": in_flight, "indexFillSeconds": round(fill_seconds, 1),
            "requests": timings, "targetMs": TARGET_MS,
            "publishSnapshotMs": {"median": round(publish_median, 3), "max": round(max(publish), 3),
                                  "target": PUBLISH_TARGET_MS},
            "ok": statuses_ok and slowest <= TARGET_MS and publish_median <= PUBLISH_TARGET_MS}
