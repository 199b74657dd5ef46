"""The delivery loop: a thread of ``ocrpipe run`` beside the scheduler (a slow receiver never slows a tick).
``step(now)`` is one pass, time passed in, so tests drive it; ``start`` only loops it.

At least once: an event leaves pending/ only after every configured target took it, or for failed/ once it
has waited HOOK_RETRY_LIMIT_SECONDS. In order per job: only a job's oldest pending event is tried; its later
ones wait for it. Each target that took an event is noted beside it, so a retry goes to the others only."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.folders.outbox import failed_dir, pending_dir
from ocrpipe.folders.store import utc_now
from ocrpipe.hooks.command import HookResult, event_environment, run_hook_command
from ocrpipe.hooks.events import (
    BadEvent,
    Event,
    drop_leftover_temps,
    event_names,
    forget,
    read_delivery,
    read_event,
    set_aside,
    write_delivery,
)
from ocrpipe.hooks.webhook import post_event, shown_url
from ocrpipe.index.metrics import set_gauge, update_metrics

log = logging.getLogger("ocrpipe.hooks")

FIRST_PAUSE_SECONDS = 10.0  # after the first failure; doubled after each one
MAX_PAUSE_SECONDS = 3600.0
IDLE_WAIT_SECONDS = 1.0  # between looks at pending/ when nothing was due


def retry_pause(attempts: int) -> float:
    return min(MAX_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2 ** max(0, attempts - 1))


class Courier:
    """Delivers the outbox's events to HOOK_COMMAND and WEBHOOK_URL."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.hooks = settings.hooks
        self.clock = clock  # the wall clock: an event's age is counted from its timestamp
        self.targets = {name for name, on in (("command", bool(self.hooks.command)),
                                              ("webhook", bool(self.hooks.webhook_url))) if on}
        self._lock = threading.Lock()  # guards what other threads read: the counts and the view
        self._unfed = {"hooks_delivered": 0, "hooks_failed": 0}  # not yet added to metrics.json's counters
        self._view: dict[str, Any] = {"pending": 0, "failed": 0, "delivered": 0, "oldestPendingAt": None,
                                      "lastError": None}
        self._due: dict[str, float] = {}  # event id → when (monotonic) it may be tried again
        self._cache: dict[str, tuple[tuple[int, int], Event | None]] = {}  # name → (mtime, size), its event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- one pass -----------------------------------------------------------------------------

    def step(self, now: float, *, ignore_pauses: bool = False) -> int:
        """Try each job's oldest pending event that is due; the number delivered."""
        heads: dict[str, Event] = {}
        events = self._pending_events()
        for event in sorted(events, key=lambda e: (e.seq, e.id)):
            heads.setdefault(event.job_key, event)
        delivered: set[str] = set()
        for event in sorted(heads.values(), key=lambda e: (e.seq, e.id)):
            if self._stop.is_set():
                break
            if not ignore_pauses and self._due.get(event.id, 0.0) > now:
                continue
            try:
                if self._deliver(event, now):
                    delivered.add(event.id)
            except Exception as exc:  # noqa: BLE001 — one event's fault (a file that vanished, say) stops nothing
                log.error("hook event %s could not be handled: %s: %s", event.id, type(exc).__name__, exc,
                          extra={"jobKey": event.job_key})
                self._due[event.id] = now + MAX_PAUSE_SECONDS
        self._publish([e for e in events if e.id not in delivered])
        return len(delivered)

    def _pending_events(self) -> list[Event]:
        folder = pending_dir(self.settings)
        found, names = [], set(event_names(folder))
        for name in names:
            try:
                st = (folder / name).stat()
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(name)
            if cached is None or cached[0] != stamp:
                try:
                    cached = (stamp, read_event(folder / name, self.settings))
                except BadEvent as exc:  # said once per version of the file; it is left where it is
                    log.warning("%s is not an event ocrpipe wrote (%s): not delivered, left as it is",
                                folder / name, exc)
                    cached = (stamp, None)
                self._cache[name] = cached
            if cached[1] is not None:
                found.append(cached[1])
        for gone in self._cache.keys() - names:
            del self._cache[gone]
            self._due.pop(gone[: -len(".json")], None)
        return found

    def _deliver(self, event: Event, now: float) -> bool:
        folder = pending_dir(self.settings)
        delivery = read_delivery(folder, event.id)
        done = set(delivery["delivered"])
        errors = []
        for target in sorted(self.targets - done):  # the command first, then the webhook
            result = self._send(target, event)
            if result.ok:
                done.add(target)
            else:
                errors.append(f"{target}: {result.detail}")
        context = {"jobKey": event.job_key, "event": event.type, "eventId": event.id}
        if self.targets <= done:
            forget(folder, event.id)
            self._due.pop(event.id, None)
            with self._lock:
                self._unfed["hooks_delivered"] += 1
                self._view["delivered"] += 1
            log.info("hook event %s delivered (%s)", event.type, ", ".join(sorted(self.targets)), extra=context)
            return True
        attempts = delivery["attempts"] + 1
        record = {"attempts": attempts, "delivered": sorted(done), "lastError": "; ".join(errors),
                  "lastAttemptAt": utc_now()}
        with self._lock:
            self._view["lastError"] = record["lastError"]
        if self.clock() - event.created >= self.hooks.retry_limit_seconds:
            set_aside(self.settings, event.id, record)
            self._due.pop(event.id, None)
            with self._lock:
                self._unfed["hooks_failed"] += 1
            log.error("hook event %s given up after %d attempts over HOOK_RETRY_LIMIT_SECONDS=%g: %s; it is in "
                      "%s (ocrpipe hooks retry puts it back)", event.type, attempts, self.hooks.retry_limit_seconds,
                      record["lastError"], failed_dir(self.settings), extra=context)
            return False
        write_delivery(folder, event.id, record)
        pause = retry_pause(attempts)
        self._due[event.id] = now + pause
        log.warning("hook event %s not delivered (%s); retry in %.0fs", event.type, record["lastError"], pause,
                    extra=context)
        return False

    def _send(self, target: str, event: Event) -> HookResult:
        if target == "command":
            env = event_environment(dict(self.settings.tool_env), event.id, event.type, event.data)
            return run_hook_command(self.hooks.command, body=event.body, env=env,
                                    timeout=self.hooks.timeout_seconds, cwd=self.settings.data_dir)
        assert self.hooks.webhook_url is not None
        return post_event(self.hooks.webhook_url, event_id=event.id, body=event.body,
                          secret=self.hooks.webhook_secret, timeout=self.hooks.webhook_timeout_seconds,
                          timestamp=int(self.clock()))

    def _publish(self, pending: list[Event]) -> None:
        oldest = min((e.created for e in pending), default=None)
        failed = len(event_names(failed_dir(self.settings)))
        with self._lock:
            self._view.update(pending=len(pending), failed=failed, oldestPendingAt=oldest)

    # ----- what others read ---------------------------------------------------------------------

    def feed_metrics(self, metrics: dict[str, Any]) -> None:
        """Called on the scheduler's thread before it writes metrics.json: this loop's counts go in."""
        with self._lock:
            for name, amount in self._unfed.items():
                update_metrics(metrics, name, amount)
                self._unfed[name] = 0
            set_gauge(metrics, "hooks_pending", self._view["pending"])

    def view(self) -> dict[str, Any]:
        """For the status page and /health: pending, failed, delivered this run, the oldest pending event's
        time and the last error."""
        with self._lock:
            view = dict(self._view)
        oldest = view.pop("oldestPendingAt")
        view["oldestPendingAt"] = (datetime.fromtimestamp(oldest, UTC).isoformat(timespec="seconds")
                                   if oldest is not None else None)
        view["oldestPendingSeconds"] = round(max(0.0, self.clock() - oldest), 1) if oldest is not None else None
        view["backlogAfterSeconds"] = self.hooks.backlog_seconds
        view["ok"] = view["oldestPendingSeconds"] is None or view["oldestPendingSeconds"] <= self.hooks.backlog_seconds
        view["targets"] = sorted(self.targets)
        view["webhook"] = shown_url(self.hooks.webhook_url) if self.hooks.webhook_url else None
        return view

    # ----- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Called before the scheduler's first tick: nothing writes into hooks/ yet."""
        for folder in (pending_dir(self.settings), failed_dir(self.settings)):
            drop_leftover_temps(folder)
        self._thread = threading.Thread(target=self._run, name="ocrpipe-hooks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = self.step(time.monotonic())
            except Exception as exc:  # noqa: BLE001 — the loop outlives any fault (pending/ unreadable, say)
                log.error("hook delivery: %s: %s; trying again shortly", type(exc).__name__, exc)
                delivered = 0
            if not delivered:
                self._stop.wait(min(IDLE_WAIT_SECONDS, self.settings.poll_seconds))

    def stop(self) -> None:
        """Ends the loop after the delivery under way (bounded by its own time limit)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.hooks.timeout_seconds + self.hooks.webhook_timeout_seconds + 5)
            self._thread = None
        self._stop.clear()

    def drain(self, timeout: float) -> int:
        """``run --once`` before it exits: deliver what is pending (each tried at once, then after the usual
        pauses) for up to ``timeout`` seconds; the number of events still pending (tried at the next run)."""
        deadline = time.monotonic() + timeout
        first = True
        while True:
            now = time.monotonic()
            self.step(now, ignore_pauses=first)
            first = False
            with self._lock:
                left = self._view["pending"]
            if not left or now >= deadline:
                return left
            due = min((t for t in self._due.values()), default=now)
            time.sleep(max(0.05, min(due - now, deadline - now, IDLE_WAIT_SECONDS)))
