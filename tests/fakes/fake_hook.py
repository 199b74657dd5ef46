"""A HOOK_COMMAND for the tests, launched as the real one is (an argument list, no shell).

Usage: ``python fake_hook.py LOG SCENARIO``. Each call appends one JSON line to LOG: the event's
``OCRPIPE_*`` variables, the JSON read from stdin (when the scenario reads it), its pid and the scenario.
Scenarios: ``ok``; ``fail`` (exit 3 after a line on stderr); ``fail-until-<file>`` (exit 3 until that file
exists); ``hang`` (starts a child that sleeps, then sleeps itself, never reading stdin); ``flood`` (10 MB to
stdout without reading stdin, then exit 0); ``hang-once-<file>`` (hangs unless that file exists, and makes
it: the first call hangs, later ones succeed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def record(log: str, scenario: str, event: object, child: int | None = None) -> None:
    seen = {k: v for k, v in os.environ.items() if k.startswith("OCRPIPE_") or k == "WEBHOOK_SECRET"}
    line = json.dumps({"scenario": scenario, "pid": os.getpid(), "child": child, "stdin": event, "env": seen})
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def main() -> int:
    log, scenario = sys.argv[1], sys.argv[2]
    if scenario == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdin=subprocess.DEVNULL)
        record(log, scenario, None, child.pid)
        time.sleep(120)
        return 0
    if scenario == "flood":
        record(log, scenario, None)
        chunk = b"x" * 65536 + b"\n"
        for _ in range(160):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return 0
    if scenario.startswith("hang-once-"):
        marker = scenario[len("hang-once-"):]
        if not os.path.exists(marker):
            open(marker, "w").close()
            record(log, "hang", None)
            time.sleep(120)
            return 0
    event = json.load(sys.stdin)
    record(log, scenario, event)
    if scenario == "fail" or (scenario.startswith("fail-until-") and not os.path.exists(scenario[len("fail-until-"):])):
        print("the receiving system is down", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
