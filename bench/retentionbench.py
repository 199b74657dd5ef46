"""``ocrpipe clean`` over a big index: a dry run and ``--apply``, wall time and peak memory of each.

    python bench/retentionbench.py [--rows 100000] [--old 10000] [--dir DIR]

The index is filled the fast way (a ``jobs.jsonl`` imported at the first open, as bench/indexbench.py does);
``--old`` of the rows finished 100 days ago, each with a 4 KB archived original; RETAIN_ARCHIVE_DAYS=90 and
RETAIN_INDEX_DAYS=90, so the apply removes those files and thins those rows."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from indexbench import history_entry, timed_process  # noqa: E402

from ocrpipe.index.jobindex import JobIndex  # noqa: E402


def build(data: Path, rows: int, old: int) -> None:
    """``rows`` finished jobs; every ``rows // old``-th finished 100 days ago, its original in archive/."""
    every = max(1, rows // old)
    long_ago = (datetime.now(UTC) - timedelta(days=100)).isoformat(timespec="milliseconds")
    index_dir = data / "index"
    index_dir.mkdir(parents=True)
    made = 0
    with open(index_dir / "jobs.jsonl", "w", encoding="utf-8") as handle:
        for n in range(rows):
            entry = history_entry(n)
            for field in ("output", "archived"):
                if entry.get(field):
                    entry[field] = entry[field].replace("/srv/ocrpipe/data", str(data))
            if n % every == 0 and made < old and entry["state"] == "DONE":
                entry["finishedAt"] = long_ago
                path = Path(entry["archived"])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(os.urandom(4096))
                made += 1
            handle.write(json.dumps(entry) + "\n")
    JobIndex(index_dir).close()  # imports jobs.jsonl once: the index now holds every row


def measure(rows: int, old: int, folder: Path) -> dict[str, Any]:
    data = folder / "data"
    build(data, rows, old)
    env = {**os.environ, "RETAIN_ARCHIVE_DAYS": "90", "RETAIN_INDEX_DAYS": "90", "DATA_DIR": str(data)}
    report: dict[str, Any] = {"rows": rows, "old": old}
    for label, extra in (("dryRun", []), ("apply", ["--apply"])):
        argv = [sys.executable, "-m", "ocrpipe", "clean", "--json", *extra]
        result = timed_process(argv, env)
        if result["exitCode"] != 0:
            raise RuntimeError(f"ocrpipe clean {extra} exited {result['exitCode']}")
        summary = json.loads(result["stdout"] or "{}")
        report[label] = {"seconds": result["seconds"], "peakRssMb": result["peakRssMb"],
                         "files": summary["files"], "bytes": summary["bytes"],
                         "indexRows": summary.get("indexRowsThinned", summary.get("indexRowsToThin"))}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--old", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, help="where to build the data folder (default: a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        print(json.dumps(measure(args.rows, args.old, Path(folder)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
