"""``ocrpipe clean [--apply] [--json]``: what retention would remove now (a dry run), or removes it."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from ocrpipe.config import Settings
from ocrpipe.errors import ExitCode
from ocrpipe.folders.places import check_places
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.retention.apply import apply_retention, pending_plan
from ocrpipe.retention.daily import describe
from ocrpipe.retention.plan import Summary, Tally, survey

SETTINGS_NAMES = "RETAIN_ARCHIVE_DAYS, RETAIN_ERROR_DAYS, RETAIN_INDEX_DAYS"


def _tally_line(label: str, tally: Tally, unit: str) -> str:
    oldest = f", the oldest finished {tally.oldest[:10]}" if tally.oldest else ""
    return f"  {label:<8} {tally.items} {unit} ({tally.files} file(s), {tally.bytes / 2**20:.1f} MB){oldest}"


def _print_summary(summary: Summary, settings: Settings, out: TextIO) -> None:
    c = summary.cutoffs
    verb = "Removed" if summary.applied else "Would remove"
    if summary.trash:
        verb = "Moved to " + summary.trash if summary.applied else f"Would move to {summary.trash}"
    print(f"{verb}:", file=out)
    print(_tally_line("archive", summary.archive, "original(s)") +
          (f"; kept: finished after {c.archive[:10]}" if c.archive else "; RETAIN_ARCHIVE_DAYS is not set"), file=out)
    print(_tally_line("error", summary.error, "folder(s)") +
          (f"; kept: failed after {c.error[:10]}" if c.error else "; RETAIN_ERROR_DAYS is not set"), file=out)
    thinned = "thinned" if summary.applied else "to thin"
    print(f"  index    {summary.rows_thinned} row(s) {thinned}" +
          (f" (finished before {c.index[:10]})" if c.index else "; RETAIN_INDEX_DAYS is not set"), file=out)
    print(f"  total    {summary.archive.files + summary.error.files} file(s), "
          f"{(summary.archive.bytes + summary.error.bytes) / 2**20:.1f} MB", file=out)
    if summary.resumed:
        print(f"  ({summary.resumed} of them finish an interrupted pass)", file=out)
    for failed in summary.failed:
        print(f"  NOT REMOVED {failed}", file=out)
    if not settings.retention_on:
        print(f"No retention setting is set ({SETTINGS_NAMES}): nothing is removed.", file=out)
    elif not summary.applied:
        print("Nothing was removed: run 'ocrpipe clean --apply' to remove them.", file=out)


def clean(settings: Settings, *, apply: bool, as_json: bool, out: TextIO | None = None,
          now: datetime | None = None) -> ExitCode:
    out = out or sys.stdout  # looked up now: a redirected stdout is the one written to
    now = now or datetime.now(UTC)
    items: list[dict[str, Any]] = []
    # Read-only first: a damaged index is named (the next 'ocrpipe run' rebuilds it), never rebuilt half here.
    with JobIndex(settings.index_dir, readonly=True) as reader:
        if not apply:
            summary = survey(settings, reader, now, on_item=items.append if as_json else
                             (lambda item: print(f"  {item['kind']:<8} {item['finishedAt'] or '?':<10.10} "
                                                 f"{item['path']}", file=out)))
    if apply:
        check_places(settings)
        with JobIndex(settings.index_dir) as index:
            summary = apply_retention(settings, index, now)
    elif pending_plan(settings) and not as_json:
        print("An interrupted 'clean --apply' (or daily pass) left removals to finish: 'ocrpipe clean --apply' "
              "or the next 'ocrpipe run' finishes them.", file=out)
    if as_json:
        print(json.dumps({**summary.as_json(), **({"items": items} if not apply else {}),
                          "interruptedPassWaiting": pending_plan(settings)}, ensure_ascii=False, indent=2), file=out)
    else:
        _print_summary(summary, settings, out)
    if apply:
        print(f"ocrpipe: retention: {describe(summary)}", file=sys.stderr)
    return ExitCode.JOBS_FAILED if summary.failed else ExitCode.OK
