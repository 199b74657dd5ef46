"""The pools stop together at the end of a run: each told to stop at once and all waited for, so one idle
worker's exit does not wait for another's; a pool that fails to stop is not silently passed over."""

from __future__ import annotations

import time

import pytest

from ocrpipe.engine.pools import shut_down_together


class SlowPool:
    """A pool whose stop takes a while: records when it began and ended."""

    def __init__(self, name: str, events: list[tuple[str, str]], fail: bool = False) -> None:
        self.name, self.events, self.fail = name, events, fail

    def shutdown(self, *, wait: bool) -> None:
        self.events.append(("begin", self.name))
        time.sleep(0.2)
        self.events.append(("end", self.name))
        if self.fail:
            raise RuntimeError(f"{self.name} would not stop")


def test_pools_are_stopped_together_and_a_failure_is_not_swallowed() -> None:
    events: list[tuple[str, str]] = []
    shut_down_together([SlowPool("PREP", events), SlowPool("OCR", events), SlowPool("CONVERT", events)],  # type: ignore[list-item]
                       wait=True)
    assert [kind for kind, _ in events[:3]] == ["begin"] * 3  # every stop began before any ended
    assert sorted(name for kind, name in events if kind == "end") == ["CONVERT", "OCR", "PREP"]
    with pytest.raises(RuntimeError, match="OCR would not stop"):
        shut_down_together([SlowPool("PREP", []), SlowPool("OCR", [], fail=True)], wait=True)  # type: ignore[list-item]
