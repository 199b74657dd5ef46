"""``GET /health``: is the scheduler ticking, is there disk space; with the pools and tools for context."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ocrpipe.engine.snapshot import Snapshot

MB = 2**20


def disk_free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def check_health(snapshot: Snapshot | None, *, clock: float, started: float, stale_seconds: float,
                 free_bytes: int | None, min_free_mb: int, tools: Mapping[str, str]) -> tuple[bool, dict[str, Any]]:
    """(healthy, body). ``clock`` and ``started`` are on the scheduler's clock (monotonic)."""
    if snapshot is None:  # not ticked yet: fine while the start is recent
        age = clock - started
        tick: dict[str, Any] = {"ok": age <= stale_seconds, "lastTickAt": None, "ageSeconds": None,
                                "staleAfterSeconds": stale_seconds}
    else:
        age = max(0.0, clock - snapshot.tickMonotonic)
        tick = {"ok": age <= stale_seconds, "lastTickAt": snapshot.tickAt, "ageSeconds": round(age, 3),
                "staleAfterSeconds": stale_seconds}
    if free_bytes is None:
        disk: dict[str, Any] = {"ok": False, "freeMb": None, "minFreeMb": min_free_mb,
                                "error": "the work folder's free space cannot be read"}
    else:
        disk = {"ok": free_bytes / MB >= min_free_mb, "freeMb": int(free_bytes // MB), "minFreeMb": min_free_mb}
    pools = {"ok": True, **({name: {"workers": p.workers, "busy": p.busy} for name, p in snapshot.pools.items()}
                            if snapshot else {})}
    checks = {"scheduler": tick, "disk": disk, "pools": pools, "tools": {"ok": bool(tools), **tools}}
    failing = [name for name, check in checks.items() if not check["ok"]]
    body: dict[str, Any] = {"status": "ok" if not failing else "failing", "checks": checks}
    if failing:
        body["failing"] = failing
    return not failing, body
