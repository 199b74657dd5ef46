"""An ocrmypdf started ahead of its call: Python and ocrmypdf's imports (about 0.7 s of CPU here) are paid
while its worker waits for work. The call then comes on stdin as one JSON line (its arguments, its whole
environment, its working folder and the log file for its output) and runs as ``python -m ocrmypdf`` would.
The end of stdin without a call (its worker stopped) ends it at once."""

# Run by its path with the Python that has ocrmypdf (tools/readytool.py): it imports nothing of ocrpipe.

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
from contextlib import suppress


def main() -> int:
    # Run by its path, its folder comes first on sys.path, and ocrpipe's tools/ocrmypdf.py would shadow ocrmypdf.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [path for path in sys.path if os.path.abspath(path or os.curdir) != here]
    import ocrmypdf.__main__ as entry  # the import this process was started early for

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    call = json.loads(line)
    os.environ.clear()
    os.environ.update(call["env"])
    tempfile.tempdir = None  # found again from the call's TMPDIR
    if call.get("cwd"):
        os.chdir(call["cwd"])
    # As a tool started for this call: nothing on stdin, its output into the call's log.
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(call["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.argv = [entry.__file__, *call["args"]]
    multiprocessing.freeze_support()
    if sys.platform not in ("win32", "darwin"):  # as ocrmypdf's own __main__ does
        with suppress(RuntimeError):
            multiprocessing.set_start_method("forkserver")
    return int(entry.run(call["args"]))


if __name__ == "__main__":
    sys.exit(main())
