"""``--hostile``: what a hostile file costs the machine. A PREP worker's peak memory on a 20,000 × 20,000 page
(refused at the default MAX_IMAGE_MPIXELS, and converted when the limit allows it), and the work folder's
peak size while a .gz that declares 1000 bytes and holds 512 MB is unpacked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from ocrpipe.folders.fsutil import tree_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import inputs  # noqa: E402  (tests/inputs.py: the generators the test suite uses too)

PAGE_PX = 20_000
BOMB_MB = 512
SAMPLE_SECONDS = 0.005
# The PREP stage in a fresh process, as a pool worker runs it: its own peak is what is measured.
CHILD = """
import json, sys
from pathlib import Path
from ocrpipe.config import load_settings
from ocrpipe.stages.prep import run_prep
from ocrpipe.folders.store import new_state_record, write_new_state
data, source, env = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
settings = load_settings({**env, "DATA_DIR": str(data)})
job = settings.work_dir / "bench__p"
record = new_state_record(job_key=job.name, run_id="r", file_hash="bench", profile_hash="p",
                          source_name=source.name, source_relpath=source.name, size=source.stat().st_size)
write_new_state(job, record)
(job / "input").mkdir()
source.rename(job / record["input"])
outcome = run_prep(settings, job, attempts={"PREP": 1, "OCR": 0})
print(json.dumps({"ok": outcome.ok, "code": outcome.code, "reason": outcome.reason, "pages": outcome.fields.get("pages")}))
"""


def measure_prep(work: Path, source: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run PREP on ``source`` in a child process; sample its tree's RSS and the work folder's size."""
    data = work / "data"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(source), json.dumps({**os.environ, **env})],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_disk = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_disk
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                rss = sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
            except psutil.Error:
                rss = 0
            peak_rss = max(peak_rss, rss)
            peak_disk = max(peak_disk, tree_bytes(data / "work"))
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    done.set()
    sampler.join()
    result = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {"ok": False, "reason": stderr[-500:]}
    return {**result, "seconds": round(time.monotonic() - started, 2), "peakRssMb": round(peak_rss / 2**20, 1),
            "peakWorkMb": round(peak_disk / 2**20, 1)}


def big_page(path: Path) -> Path:
    """A 20,000 × 20,000 bilevel page (400 megapixels, 50 MB in memory as 1-bit) with a few lines of text."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("1", (PAGE_PX, PAGE_PX), 1)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=400)
    for n, line in enumerate(inputs.FOX):
        draw.text((1000, 1000 + 600 * n), line, fill=0, font=font)
    page.save(path, dpi=(1200, 1200))
    return path


def hostile(work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name, env in (("page20kRefused", {}), ("page20kConverted", {"MAX_IMAGE_MPIXELS": "500"})):
        folder = work / name
        folder.mkdir()
        results[name] = measure_prep(folder, big_page(folder / "page.png"), env)
    folder = work / "lyingBomb"
    folder.mkdir()
    bomb = inputs.lying_gzip(folder / "bomb.gz", megabytes=BOMB_MB)
    results["lyingBomb512Mb"] = measure_prep(folder, bomb, {})
    results["ok"] = (not results["page20kRefused"]["ok"] and results["page20kRefused"]["code"] == "IMAGE_TOO_LARGE"
                     and results["lyingBomb512Mb"]["code"] == "ARCHIVE_BOMB"
                     and results["lyingBomb512Mb"]["peakWorkMb"] < BOMB_MB / 2)
    return results
