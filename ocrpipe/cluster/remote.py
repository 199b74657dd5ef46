"""A stage call sent to a Dask worker: the scheduler's paths made relative to DATA_DIR, mapped back
onto the worker's own view of the shared folder (WORKER_DATA_DIR), checked against the marker file."""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.errors import WorkerSetupError
from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.folders.heartbeat import HOST

MARKER_FILE = ".ocrpipe-cluster.json"
_TOKEN = re.compile(r"[0-9a-f]{32}")  # uuid4().hex
TOOL_FIELDS = ("seven_zip", "ocrmypdf", "tesseract", "ghostscript", "tool_env", "cpu_count")
_local: dict[str, Any] = {}  # set by `ocrpipe worker` in its worker process: its data folder and tools


@dataclass(frozen=True)
class InData:
    """A path inside DATA_DIR, as parts relative to it: the same on every machine."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class RemoteCall:
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict[str, Any]
    token: str  # the marker's: proves the worker looks at this scheduler's data folder
    scheduler_data_dir: str  # for messages only
    worker_data_dir: str | None  # WORKER_DATA_DIR, used unless the worker was started with its own --data


def read_token(path: Path) -> str | None:
    """The marker's token, or None when the file is missing, unreadable or not as ocrpipe writes it
    (anyone may write the data folder: a hand-written marker is replaced, never trusted)."""
    try:
        token = read_json(path).get("token")
    except (OSError, ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and _TOKEN.fullmatch(token) else None


def marker_token(data_dir: Path) -> str:
    """The data folder's marker, written once by the scheduler and kept: workers check they see it."""
    path = data_dir / MARKER_FILE
    token = read_token(path)
    if token is None:
        token = uuid.uuid4().hex
        data_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"token": token, "dataDir": str(data_dir)}, pretty=True)
    return token


def to_wire(value: Any, data_dir: Path) -> Any:
    """Paths inside ``data_dir`` become InData; Settings become a field dict; the rest stays."""
    if isinstance(value, Settings):
        return ("Settings", {f.name: to_wire(getattr(value, f.name), data_dir) for f in dataclasses.fields(value)})
    if isinstance(value, Path):
        try:
            return InData(value.relative_to(data_dir).parts)
        except ValueError:
            return value  # outside DATA_DIR: mounted at the same path on every worker
    if isinstance(value, (list, tuple)):
        return type(value)(to_wire(v, data_dir) for v in value)
    if isinstance(value, dict):
        return {k: to_wire(v, data_dir) for k, v in value.items()}
    return value


def from_wire(value: Any, base: Path) -> Any:
    if isinstance(value, InData):
        return base.joinpath(*value.parts)
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "Settings" and isinstance(value[1], dict):
        fields = {k: from_wire(v, base) for k, v in value[1].items()}
        own = _local.get("settings")
        if own is not None:  # this machine's tools, environment and cores, not the scheduler's
            fields.update({name: getattr(own, name) for name in TOOL_FIELDS})
        return Settings(**fields)
    if isinstance(value, (list, tuple)):
        return type(value)(from_wire(v, base) for v in value)
    if isinstance(value, dict):
        return {k: from_wire(v, base) for k, v in value.items()}
    return value


def make_call(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any], *, settings: Settings,
              token: str) -> RemoteCall:
    return RemoteCall(fn, to_wire(args, settings.data_dir), to_wire(kwargs, settings.data_dir), token,
                      str(settings.data_dir), settings.worker_data_dir)


def worker_view(call: RemoteCall) -> Path:
    """This worker's data folder: its own --data, else WORKER_DATA_DIR, else the scheduler's path."""
    own = _local.get("data_dir")
    return Path(own or call.worker_data_dir or call.scheduler_data_dir)


def check_view(base: Path, token: str) -> None:
    seen = read_token(base / MARKER_FILE)
    if seen is None:
        raise WorkerSetupError(f"worker on {HOST} finds no "
                               f"{MARKER_FILE} in {base}: is the shared data folder mounted there "
                               f"(WORKER_DATA_DIR / ocrpipe worker --data)?")
    if seen != token:
        raise WorkerSetupError(f"{base} is another ocrpipe's data folder (its {MARKER_FILE} differs): "
                               "check the worker's --data / WORKER_DATA_DIR")


def run_remote(call: RemoteCall) -> Any:
    """The task a Dask worker runs: map the paths, check the view, give ``--jobs`` this machine's cores."""
    base = worker_view(call)
    check_view(base, call.token)
    args, kwargs = from_wire(call.args, base), from_wire(call.kwargs, base)
    if "jobs" in kwargs:
        kwargs["jobs"] = own_page_workers(kwargs["jobs"], calls=int(kwargs.get("parts") or 1))
    return call.fn(*args, **kwargs)


def own_page_workers(default: int, *, calls: int = 1) -> int:
    """``--jobs`` from this worker's cores and its task slots (the scheduler only knows its own); a split
    document's ``calls`` page ranges run together in this one task."""
    from ocrpipe.engine.batching import page_workers

    try:
        from distributed import get_worker

        state = get_worker().state
        return page_workers(os.cpu_count() or 1, state.nthreads, max(calls, len(state.executing)))
    except (ImportError, ValueError, AttributeError):
        return default


def set_local(*, data_dir: Path | None, settings: Settings | None) -> None:
    """Called once in an `ocrpipe worker` process: its own view of the data folder and its own tools."""
    _local.update(data_dir=data_dir, settings=settings)
