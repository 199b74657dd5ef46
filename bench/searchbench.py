"""Full-text search's figures: the job index's size per page of text, and ``ocrpipe search`` over many pages.

``python bench/searchbench.py --pages 100000 [--dir DIR]`` records that many generated pages (as ``ocrpipe run``
records them: a job row each 4 pages, its pages' text in the same transaction), then times searches through the
real command line, and prints JSON."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from indexbench import history_entry  # noqa: E402

from ocrpipe.index.jobindex import JobIndex  # noqa: E402
from ocrpipe.index.search import PageRecord, store_pages  # noqa: E402

PAGES_PER_JOB = 4
WORDS_PER_PAGE = 320  # a typed letter page: about 2,000 characters
VOCABULARY = 20_000
QUERIES = ("invoice", "walrus", '"payment received"', "contr*", "ACME OR walrus", "4711")
REPEATS = 3


class PageMaker:
    """Office prose: words drawn from a Zipf-like vocabulary, with numbers, dates and amounts, as in real
    letters and invoices (a vocabulary of a few dozen words would make the index unrealistically small)."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        common = ("the of and to a in for is on that by this with you it not or be are from at as your all have "
                  "invoice payment received order customer account delivery address total amount date contract "
                  "service please find attached report meeting tax balance statement notice letter").split()
        made = {"".join(self.rng.choices(string.ascii_lowercase, k=self.rng.randint(4, 11))) for _ in range(VOCABULARY)}
        self.words = common + sorted(made)
        self.weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(self.words))]

    def page(self) -> str:
        rng = self.rng
        words = rng.choices(self.words, weights=self.weights, k=WORDS_PER_PAGE)
        for n in range(0, WORDS_PER_PAGE, 25):  # numbers: references, dates, amounts
            words[n] = rng.choice((f"{rng.randint(1000, 99999)}", f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}."
                                   f"{rng.randint(2019, 2026)}", f"{rng.randint(1, 9999)},{rng.randint(0, 99):02d}"))
        lines = [" ".join(words[i:i + 12]) for i in range(0, WORDS_PER_PAGE, 12)]
        return "\n".join(lines).capitalize()


def fill(index_dir: Path, pages: int, *, with_text: bool = True) -> dict[str, Any]:
    """``pages`` pages in jobs of PAGES_PER_JOB, each job one transaction; returns sizes and time.
    ``with_text=False``: the same jobs and readings without the text (SEARCH_INDEX=off), for the difference."""
    maker = PageMaker()
    started = time.monotonic()
    chars = 0
    with JobIndex(index_dir) as index:
        before = _size(index_dir)
        for n in range(pages // PAGES_PER_JOB):
            texts = [maker.page() for _ in range(PAGES_PER_JOB)]
            if n % 997 == 0:
                texts[0] += "\nThe walrus from ACME signed the payment received notice"
            chars += sum(map(len, texts))
            record = PageRecord(texts if with_text else None, [{"chars": len(t), "confidence": 90.0} for t in texts])
            index.record({**history_entry(n), "state": "DONE"},
                         then=lambda conn, row, r=record: store_pages(conn, row, r))
        index.read(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(), None)
    size = _size(index_dir) - before
    return {"pages": pages, "textChars": chars, "indexBytes": size, "bytesPerPage": round(size / pages),
            "bytesPerTextChar": round(size / chars, 2), "fillSeconds": round(time.monotonic() - started, 1)}


def _size(index_dir: Path) -> int:
    return sum(p.stat().st_size for p in index_dir.glob("ocrpipe.sqlite*"))


def time_searches(data_dir: Path) -> dict[str, Any]:
    """Each query through ``ocrpipe search`` (a new process, as a person runs it): the median wall time."""
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    results = {}
    for query in QUERIES:
        times = []
        for _ in range(REPEATS):
            t0 = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "ocrpipe", "search", query, "--json"], env=env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True)
            times.append(time.monotonic() - t0)
        results[query] = {"seconds": round(statistics.median(times), 3),
                          "hits": len(json.loads(done.stdout)["hits"])}
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "ocrpipe", "--version"], env=env, stdin=subprocess.DEVNULL,
                   capture_output=True, check=True)
    results["(python -m ocrpipe --version, for the start-up share)"] = {"seconds": round(time.monotonic() - t0, 3)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, help="where to build the index (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data, without = (args.dir or Path(scratch)) / "data", (args.dir or Path(scratch)) / "without-text"
        (data / "index").mkdir(parents=True, exist_ok=True)
        (without / "index").mkdir(parents=True, exist_ok=True)
        filled, bare = fill(data / "index", args.pages), fill(without / "index", args.pages, with_text=False)
        text_bytes = filled["indexBytes"] - bare["indexBytes"]
        report = {"fill": filled, "withoutText": bare,
                  "text": {"bytesPerPage": round(text_bytes / args.pages),
                           "megabytesPer1000Pages": round(text_bytes / args.pages * 1000 / 2**20, 2),
                           "bytesPerTextChar": round(text_bytes / filled["textChars"], 2)},
                  "search": time_searches(data)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
