"""A job's end: the searchable PDF to ``out/`` and the original to ``archive/``, or both to ``error/``.

Each step is ordered so that a crash between any two of them is finished, not repeated, at restart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.errors import Code
from ocrpipe.folders.fsutil import atomic_write_json, candidate_names, drop_temp, fold_name, place_file
from ocrpipe.folders.layout import FINAL_PDF, MAX_PATH_CHARS, MAX_SUFFIX, fit_name, long_path, plain_path, short_name
from ocrpipe.folders.names import fit, safe_name, safe_relpath
from ocrpipe.folders.store import update_state, utc_now

ERROR_FILE = "error.json"
INTAKE_STAGE = "INTAKE"  # the stage in error.json of a file refused before it became a job


def output_relpath(source_relpath: str) -> PurePosixPath:
    """``scans/May/invoice.tif`` → ``scans/May/invoice.pdf``, each part a name every OS accepts."""
    rel = safe_relpath(source_relpath)
    return rel.with_name(fit(rel.stem + ".pdf") if rel.suffix else fit(rel.name + ".pdf"))


def _tmp_name(record: dict[str, Any], purpose: str) -> str:
    # Derived from the job, so a restart after a crash finds the same temp file again.
    return f".{record['jobKey'][:16]}-{record['runId'][:8]}.{purpose}.ocrpipe-tmp"


def publish_done(settings: Settings, job_dir: Path, record: dict[str, Any],
                 finish: Callable[[dict[str, Any]], None], *,
                 before_done: Callable[[], None] | None = None) -> dict[str, Any]:
    """Copy final.pdf to out/, move the original to archive/, then record both with ``finish`` in one
    state write. Run again after a crash, it finds its own temp links and places nothing twice.
    ``before_done`` runs once both are placed, before that write: what must be kept before DONE is
    recorded but need not keep the output from its reader (final.pdf is still there)."""
    (out_folder, out_rel, out_tmp), (archive_folder, rel, orig_tmp) = _placements(settings, record)
    output = place_file(job_dir / FINAL_PDF, out_folder, out_rel.name, tmp_name=out_tmp, keep_source=True)
    archived = place_file(job_dir / record["input"], archive_folder, rel.name, tmp_name=orig_tmp, keep_source=False)
    if before_done is not None:
        before_done()

    def mutate(r: dict[str, Any]) -> None:
        r.update(output=plain_path(output), archived=plain_path(archived))
        finish(r)

    record = update_state(job_dir, mutate)
    drop_publish_temps(settings, record)
    return record


def _placements(settings: Settings, record: dict[str, Any]) -> list[tuple[Path, PurePosixPath, str]]:
    """(folder, relative name, temp name) of the output and of the archived original. They mirror in/'s
    sub-folders, which may be as deep as in/ allows: long-path calls where that is beyond MAX_PATH."""
    # The original name stays in state.json and the index; the placed files get safe names.
    rel = safe_relpath(record["source"]["relpath"])
    out_rel = output_relpath(record["source"]["relpath"])
    out_tmp, orig_tmp = _tmp_name(record, "out"), _tmp_name(record, "orig")
    return [
        (mirrored_folder(settings.out_dir, out_rel, out_tmp), out_rel, out_tmp),
        (mirrored_folder(settings.archive_dir, rel, orig_tmp), rel, orig_tmp),
    ]


def mirrored_folder(root: Path, rel: PurePosixPath, tmp_name: str) -> Path:
    """``root`` with ``rel``'s folders, in the long-path form when a file placed there could pass MAX_PATH:
    the name with a suffix, or the temp file with its notes."""
    folder = root.joinpath(*rel.parent.parts)
    longest = max(len(rel.name) + len(MAX_SUFFIX), len(tmp_name) + len(".partial.placed"))
    return long_path(folder, always=len(str(folder)) + 1 + longest > MAX_PATH_CHARS)


def drop_publish_temps(settings: Settings, record: dict[str, Any]) -> None:
    """The temp links are dropped only after DONE is recorded; a crash in between leaves them to this."""
    for folder, _, tmp in _placements(settings, record):
        drop_temp(folder, tmp)


def _error_folder(settings: Settings, job_dir: Path, record: dict[str, Any]) -> Path:
    """``error/<short job key>/`` (a suffix if an earlier run of the same file failed too), chosen once;
    error.json holds the full key."""
    if record.get("errorDir"):
        return Path(record["errorDir"])
    error_dir = settings.error_dir
    folder = next(error_dir / c for c in candidate_names(short_name(record["jobKey"])) if not (error_dir / c).exists())
    update_state(job_dir, lambda r: r.update(errorDir=str(folder)))
    return folder


def original_name_in_error(folder: Path, source_name: str) -> str:
    """The name the original gets beside error.json: never error.json itself in any case (a volume that
    ignores case would make them one file), so a dropped ``error.json`` is not overwritten by ours.
    error.json names the original in full."""
    fitted = fit_name(folder, safe_name(source_name))
    return next(name for name in candidate_names(fitted) if fold_name(name) != ERROR_FILE)


def publish_error(settings: Settings, job_dir: Path, record: dict[str, Any]) -> Path:
    """Move the original to ``error/<jobKey>/`` beside an error.json that says what went wrong."""
    folder = _error_folder(settings, job_dir, record)
    folder.mkdir(parents=True, exist_ok=True)  # also when the original is missing: error.json still goes here
    error = record.get("lastError") or {}
    source = job_dir / record["input"]
    tmp = _tmp_name(record, "orig")
    name = original_name_in_error(folder, record["source"]["name"])
    if source.exists() or (folder / tmp).exists():
        name = place_file(source, folder, name, tmp_name=tmp, keep_source=False).name
        drop_temp(folder, tmp)
    atomic_write_json(folder / ERROR_FILE, pretty=True, obj={
        "jobKey": record["jobKey"],
        "runId": record["runId"],
        "source": record["source"]["relpath"],
        "file": name,
        "stage": error.get("stage"),
        "attempts": record["attempts"],
        "reason": error.get("reason", "unknown failure"),
        "code": error.get("code") or Code.TOOL_FAILED.value,  # stable, for programs; the reason is for people
        "exitCode": error.get("exitCode"),
        "stderrTail": error.get("stderrTail", ""),
        "failedAt": utc_now(),
    })
    return folder
