"""The hooks' figures: events per second delivered to a loopback webhook (the documented receiver, which
checks each signature, in a process of its own) and to a command; and the scheduler's tick time while a
webhook takes 5 s per event, against the same run without hooks.

Usage::

    python bench/hookbench.py                      # 300 events; 40 files with and without a slow receiver
    python bench/hookbench.py --events 1000 --files 80 --out hooks.json

Fake tools (tests/fakes/fake_tool.py) do the OCR: the tick is what is measured, not the tools.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def fake_env(data: Path) -> dict[str, str]:
    fake = f'"{sys.executable}" -S "{ROOT / "tests" / "fakes" / "fake_tool.py"}"'
    return {**os.environ, "DATA_DIR": str(data), "SEVEN_ZIP": f"{fake} 7z", "OCRMYPDF": f"{fake} ocrmypdf",
            "TESSERACT": f"{fake} tesseract", "GHOSTSCRIPT": f"{fake} gs", "STABLE_SECONDS": "0",
            "POLL_SECONDS": "0.05", "OCR_LANG": "eng", "ORCHESTRATOR_PORT": "0", "LOG_LEVEL": "WARNING"}


def write_events(settings: Any, count: int) -> None:
    from conftest import made_job_key

    from ocrpipe.folders.outbox import write_event

    for n in range(count):
        key = made_job_key(f"bench{n}")
        write_event(settings, "job.done", {"jobKey": key, "runId": "r", "state": "DONE", "source": f"scan{n}.pdf",
                                           "output": str(settings.out_dir / f"scan{n}.pdf"), "pages": 1}, key, "r")


def delivery_rate(work: Path, count: int, *, webhook: bool) -> dict[str, Any]:
    """Events per second, all pending at the start, delivered by Courier.drain."""
    from ocrpipe.config import load_settings
    from ocrpipe.hooks.courier import Courier

    data = work / ("webhook" if webhook else "command") / "data"
    data.mkdir(parents=True)
    receiver = None
    env = fake_env(data)
    if webhook:
        printed = data.parent / "receiver.out"
        receiver = subprocess.Popen([sys.executable, str(ROOT / "docs" / "examples" / "webhook_receiver.py")],
                                    env={**os.environ, "WEBHOOK_SECRET": SECRET, "PORT": "0"},
                                    stdin=subprocess.DEVNULL, stdout=printed.open("w"), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while "listening" not in (printed.read_text() if printed.exists() else ""):
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.05)
        port = printed.read_text().split()[3]
        env.update(WEBHOOK_URL=f"http://127.0.0.1:{port}/", WEBHOOK_SECRET=SECRET)
    else:
        env["HOOK_COMMAND"] = f'"{sys.executable}" -S -c "import sys; sys.stdin.read()"'
    try:
        settings = load_settings(env)
        write_events(settings, count)
        courier = Courier(settings)
        started = time.perf_counter()
        left = courier.drain(600)
        seconds = time.perf_counter() - started
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait()
    if webhook:
        accepted = len((data.parent / "receiver.out").read_text().splitlines()) - 1
    else:
        accepted = count - left
    return {"target": "webhook (signed, checked by docs/examples/webhook_receiver.py)" if webhook
            else "command (python reading its stdin)", "events": count, "delivered": accepted, "left": left,
            "seconds": round(seconds, 2), "eventsPerSecond": round(accepted / seconds, 1)}


class _SlowReceiver:
    """Answers each POST after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.count = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                outer.count += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tick_times(work: Path, files: int, *, slow_webhook: float | None) -> dict[str, Any]:
    """Every tick's duration while ``files`` one-page PDFs go through the real scheduler and pools."""
    from conftest import TEST_PROFILE, make_pdf

    from ocrpipe.config import load_settings
    from ocrpipe.engine.pools import process_pool_factory
    from ocrpipe.engine.scheduler import Scheduler
    from ocrpipe.hooks.courier import Courier

    data = work / ("slow-hook" if slow_webhook else "no-hook") / "data"
    (data / "in").mkdir(parents=True)
    for n in range(files):
        (data / "in" / f"scan{n}.pdf").write_bytes(make_pdf(1, scenario=f"tick{n}"))
    env = fake_env(data)
    receiver = None
    if slow_webhook:
        receiver = _SlowReceiver(slow_webhook)
        env.update(WEBHOOK_URL=f"http://127.0.0.1:{receiver.server.server_address[1]}/",
                   WEBHOOK_TIMEOUT_SECONDS=str(slow_webhook + 5))
    settings = load_settings(env)
    scheduler = Scheduler(settings, profile=TEST_PROFILE, executor_factory=process_pool_factory(None, "WARNING"))
    courier = Courier(settings) if slow_webhook else None
    if courier is not None:
        scheduler.metric_feeds.append(courier.feed_metrics)
        courier.start()
    ticks: list[float] = []
    started = time.perf_counter()
    try:
        while True:
            began = time.perf_counter()
            scheduler.tick(time.monotonic())
            ticks.append((time.perf_counter() - began) * 1000)
            if scheduler.idle():
                break
            scheduler.wait(0.05)
        wall = time.perf_counter() - started
    finally:
        if courier is not None:
            courier.stop()
        scheduler.close()
        if receiver is not None:
            receiver.close()
    first, rest = ticks[0], ticks[1:]  # the first tick starts the scheduler (recovery, the index): apart
    ordered = sorted(rest)
    return {"hooks": f"webhook answering in {slow_webhook:g} s" if slow_webhook else "none", "files": files,
            "ticks": len(ticks), "wallSeconds": round(wall, 2), "firstTickMs": round(first, 2),
            "tickMs": {"median": round(statistics.median(rest), 2), "p95": round(ordered[int(len(ordered) * 0.95)], 2),
                       "max": round(ordered[-1], 2)},
            "eventsDeliveredDuringRun": receiver.count if receiver else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300, help="events for the delivery rates (default 300)")
    parser.add_argument("--files", type=int, default=40, help="files for the tick times (default 40)")
    parser.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="ocrpipe-hookbench-") as tmp:
        work = Path(tmp)
        report = {"delivery": [delivery_rate(work, args.events, webhook=True),
                               delivery_rate(work, max(1, args.events // 3), webhook=False)],
                  "tick": [tick_times(work, args.files, slow_webhook=None),
                           tick_times(work, args.files, slow_webhook=5.0)]}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
