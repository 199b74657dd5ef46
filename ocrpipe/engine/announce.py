"""Hook events of held duplicates and applied decisions, written into the outbox (folders/outbox.py) in
the step that holds the file or carries out the decision."""

from __future__ import annotations

from typing import Any

from ocrpipe.config import Settings
from ocrpipe.duplicates.hold import Arrival
from ocrpipe.folders.outbox import DECIDED, HELD, wanted, write_event


def announce_held(settings: Settings, key: str, arrival: Arrival) -> None:
    """The event of a held arrival whose sidecar still says ``announce``; then the mark goes. A crash
    between the two writes the same event (same id) again at the next start."""
    if not arrival.meta.get("announce") or not wanted(settings, HELD):
        return
    data = {"jobKey": key, "runId": None, "state": "DUPLICATE_PENDING", "source": arrival.meta.get("source"),
            "held": str(arrival.path), "heldFile": arrival.held_name, "detectedAt": arrival.meta.get("detectedAt")}
    write_event(settings, HELD, data, key, arrival.held_name)
    del arrival.meta["announce"]
    arrival.save()


def announce_decision(settings: Settings, key: str, arrival: Arrival) -> None:
    """A decision carried out (before the intent is forgotten: a crash before that repeats it, and this)."""
    intent: dict[str, Any] = arrival.intent or {}
    placed = intent.get("placed") or {}
    action = str(intent.get("action"))
    data = {"jobKey": key, "runId": intent.get("runId"), "state": action, "action": action,
            "note": intent.get("note"), "decidedAt": intent.get("decidedAt"), "source": arrival.meta.get("source"),
            "heldFile": arrival.held_name, "output": placed.get("output"), "archived": placed.get("archived")}
    write_event(settings, DECIDED, data, key, arrival.held_name, str(intent.get("claim") or intent.get("decidedAt")))
