"""Command line: ``ocrpipe run | worker | cluster-certs | doctor | status | export | schedule | duplicates |
decide | hooks | clean | search``; the only place errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ocrpipe import __version__
from ocrpipe.cluster.certs import DEFAULT_DAYS
from ocrpipe.config import Settings, load_settings
from ocrpipe.errors import ConfigError, ExitCode, OcrpipeError
from ocrpipe.ops.schedule import FORMATS

EPILOG = """exit codes: 0 all jobs ended well, 1 a file went to error/, 2 bad configuration or usage,
3 a required tool (or the Dask scheduler of OCR_EXECUTOR) is missing,
4 another ocrpipe runs on this data folder, 5 ocrpipe kept failing
outside any job and stopped, 6 schtasks refused the scheduled task, 130 interrupted.
Settings come from environment variables (DATA_DIR, OCR_LANG, OCR_CONCURRENCY…; see the README);
flags win over them."""
WINDOWS = os.name == "nt"  # schedule's default format, and whether schtasks exists


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2, as configuration errors do
        self.print_usage(sys.stderr)
        self.exit(ExitCode.BAD_CONFIG, f"ocrpipe: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ocrpipe", description="Folder-drop OCR: scans in, searchable PDF/A out.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ocrpipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="watch in/ and process what is dropped there")
    run.add_argument("--data", type=Path, help="data folder (DATA_DIR), default ./data")
    run.add_argument("--once", action="store_true", help="process what is in in/ now, then exit")
    run.add_argument("--prep-concurrency", type=int, dest="PREP_CONCURRENCY")
    run.add_argument("--ocr-concurrency", type=int, dest="OCR_CONCURRENCY")
    run.add_argument("--lang", dest="OCR_LANG", help="Tesseract languages, e.g. fra+eng (OCR_LANG)")
    run.add_argument("--port", dest="ORCHESTRATOR_PORT", help="port of the HTTP API, 0 for none (ORCHESTRATOR_PORT)")
    run.add_argument("--log-file", dest="LOG_FILE", help="also log to this file, rotated by size (LOG_FILE)")
    worker = sub.add_parser("worker", help="run stages for an ocrpipe on a Dask cluster (README: several machines)")
    worker.add_argument("--scheduler", required=True, metavar="ADDR", help="the Dask scheduler, e.g. tls://host:8786")
    worker.add_argument("--data", type=Path, help="the shared data folder as this machine sees it (DATA_DIR)")
    worker.add_argument("--nthreads", type=int, help="stages at a time (default: OCR_CONCURRENCY's default here)")
    certs = sub.add_parser("cluster-certs",
                           help="make a CA and TLS certificates for a Dask cluster (README: several machines)")
    certs.add_argument("--out", required=True, type=Path, metavar="DIR",
                       help="folder to write them into (never over a file)")
    certs.add_argument("--hosts", nargs="+", default=[], metavar="HOST",
                       help="the machines' names or addresses, written into the certificates")
    certs.add_argument("--days", type=_days, default=DEFAULT_DAYS,
                       help=f"how long they are valid (default {DEFAULT_DAYS})")
    doctor = sub.add_parser("doctor", help="check the tools, languages and folders")
    doctor.add_argument("--data", type=Path)
    doctor.add_argument("--lang", dest="OCR_LANG", help="Tesseract languages to check (OCR_LANG)")
    status = sub.add_parser("status", help="what ocrpipe is doing and has done")
    status.add_argument("--data", type=Path)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    export = sub.add_parser("export", help="write the job index out, one JSON object per finished job")
    export.add_argument("--jsonl", action="store_true", required=True, help="JSON lines (the only format)")
    export.add_argument("--data", type=Path)
    export.add_argument("--out", default="-", metavar="FILE", help="file to write, or - for stdout (default)")
    schedule = sub.add_parser(
        "schedule", help="run 'ocrpipe run --once' every few minutes (Task Scheduler, cron, systemd)")
    schedule.add_argument("verb", choices=("show", "install", "remove"),
                          help="show prints the task; install and remove call schtasks (Windows only)")
    schedule.add_argument("--every", default="5m", help="how often: 1m to 24h, e.g. 5m, 90m, 2h (default 5m)")
    schedule.add_argument("--data", type=Path, help="data folder (DATA_DIR), default ./data; it must exist")
    schedule.add_argument("--name", default="ocrpipe", help="the task's (or unit's) name, default ocrpipe")
    schedule.add_argument("--format", choices=FORMATS, dest="fmt",
                          help="xml (Task Scheduler; the default on Windows), cron (the default elsewhere) or systemd")
    dups = sub.add_parser("duplicates", help="list the held duplicates waiting for a decision")
    dups.add_argument("--data", type=Path)
    dups.add_argument("--json", action="store_true", help="machine-readable output")
    decide = sub.add_parser("decide", help="decide what happens to a held duplicate (writes decision.json)")
    decide.add_argument("key", metavar="KEY", help="the job key, or a unique start of it")
    decide.add_argument("verb", choices=["use-existing", "discard", "force"],
                        help="use-existing: copy the earlier output and archive the file; discard: delete it; "
                             "force: process it again")
    decide.add_argument("--file", help="only this held file (its held name or its original name)")
    decide.add_argument("--note", help="a note kept with the decision in the job index")
    decide.add_argument("--data", type=Path)
    hooks = sub.add_parser("hooks", help="hook events waiting or given up; 'hooks retry' puts failed ones back")
    hooks.add_argument("verb", nargs="?", choices=["list", "retry"], default="list",
                       help="list (the default) or retry")
    hooks.add_argument("ids", nargs="*", metavar="EVENT_ID", help="retry only these events (default: all failed)")
    hooks.add_argument("--data", type=Path)
    hooks.add_argument("--json", action="store_true", help="machine-readable output (list)")
    clean = sub.add_parser("clean", help="remove old archived originals, error folders and index rows "
                                         "(RETAIN_*_DAYS); a dry run unless --apply")
    clean.add_argument("--apply", action="store_true", help="remove them (default: only list what would go)")
    clean.add_argument("--json", action="store_true", help="machine-readable output")
    clean.add_argument("--data", type=Path)
    _add_search(sub)
    return parser


def _add_search(sub: argparse._SubParsersAction) -> None:
    search = sub.add_parser(
        "search", help="find the pages that say something (full-text search; docs/search.md)",
        description="QUERY is FTS5 syntax: words (all must be on the page), \"a phrase\", a OR b, prefix*, "
                    "NOT word. Accents and case do not matter: numero finds Numéro.")
    search.add_argument("query", nargs="?", metavar="QUERY", help='e.g. invoice 4711, "delivery note", inv*')
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.add_argument("--limit", type=_limit, default=20, help="hits at most, 1 to 1000 (default 20)")
    search.add_argument("--since", metavar="DATE", help="only documents finished since, e.g. 2026-05-01")
    search.add_argument("--reindex", action="store_true",
                        help="fill in the text of jobs done before search existed, from their outputs in out/")
    search.add_argument("--forget-gone", action="store_true",
                        help="forget the text of jobs whose output is no longer in out/ (deleted or moved by hand)")
    search.add_argument("--data", type=Path)


def _limit(raw: str) -> int:
    value = int(raw) if raw.isdigit() else 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{raw!r} is not valid: expected a whole number from 1 to 1000")
    return value


def _days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not valid: expected a whole number of days >= 1")
    return days


def _flags(args: argparse.Namespace) -> dict[str, object]:
    flags = {k: v for k, v in vars(args).items() if k.isupper()}
    if getattr(args, "data", None) is not None:
        flags["DATA_DIR"] = args.data
    return flags


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "worker":
        from ocrpipe.cluster.worker import worker_main

        return worker_main(scheduler=args.scheduler, data=args.data, nthreads=args.nthreads)
    if args.command == "cluster-certs":
        from ocrpipe.cluster.certs import describe, make_cluster_certs

        print(describe(make_cluster_certs(args.out.resolve(), hosts=args.hosts, days=args.days)))
        return ExitCode.OK
    settings = load_settings(flags=_flags(args))
    if args.command == "run":
        from ocrpipe.runner import run

        return run(settings, once=args.once)
    if args.command == "doctor":
        from ocrpipe.ops.doctor import doctor

        return doctor(settings)
    if args.command == "schedule":
        from ocrpipe.ops.schedule import schedule

        text = schedule(args.verb, settings, every=args.every, name=args.name, fmt=args.fmt,
                       python=sys.executable, windows=WINDOWS)
        print(text.rstrip("\n"))
        return ExitCode.OK
    if args.command == "export":
        from ocrpipe.index.jobindex import JobIndex
        from ocrpipe.index.migrate import export_to

        with JobIndex(settings.index_dir, readonly=True) as index:
            count = export_to(index, args.out)
        if args.out != "-":
            print(f"ocrpipe: exported {count} finished jobs to {args.out}", file=sys.stderr)
        return ExitCode.OK
    if args.command in ("duplicates", "decide"):
        from ocrpipe.duplicates import cli as dupcli

        if args.command == "duplicates":
            dupcli.print_pending(settings, as_json=args.json)
            return ExitCode.OK
        key = dupcli.decide(settings, args.key, args.verb, file=args.file, note=args.note)
        from ocrpipe.duplicates.hold import DECISION_FILE, hold_folder

        print(f"ocrpipe: decision written to {hold_folder(settings.hold_dir, key) / DECISION_FILE}; "
              "ocrpipe run (or the next run --once) carries it out")
        return ExitCode.OK
    if args.command == "hooks":
        from ocrpipe.hooks import cli as hookcli

        if args.verb == "retry":
            hookcli.retry(settings, list(args.ids))
        else:
            hookcli.print_hooks(settings, as_json=args.json)
        return ExitCode.OK
    if args.command == "clean":
        from ocrpipe.ops.clean import clean

        return clean(settings, apply=args.apply, as_json=args.json)
    if args.command == "search":
        return _search(settings, args)
    from ocrpipe.ops.status import print_status

    print_status(settings, as_json=args.json)
    return ExitCode.OK


def _search(settings: Settings, args: argparse.Namespace) -> int:
    from ocrpipe.ops import search

    if args.forget_gone:
        search.forget_gone(settings)
    if args.reindex:
        search.reindex(settings)
    if args.query is None:
        if args.reindex or args.forget_gone:
            return ExitCode.OK
        raise ConfigError("ocrpipe search needs a QUERY (or --reindex); e.g. ocrpipe search 'invoice 4711'")
    search.print_search(settings, args.query, as_json=args.json, limit=args.limit, since=args.since)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(_dispatch(args))
    except OcrpipeError as exc:
        print(f"ocrpipe: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("ocrpipe: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader of our output left early (`ocrpipe status | head`): nothing is wrong, nothing to say.
        # stdout now points nowhere, so that flushing it at exit raises nothing either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)
    except Exception as exc:  # noqa: BLE001 — a bug: one clear line for the user, the details in a file
        # The temp folder: a scheduled task's current folder (System32) is not writable.
        crash = Path(tempfile.gettempdir()) / "ocrpipe-crash.log"
        try:
            crash.write_text(traceback.format_exc(), encoding="utf-8")
            where = f"details in {crash}"
        except OSError:
            where = "run with LOG_LEVEL=DEBUG for details"
        print(f"ocrpipe: internal error: {type(exc).__name__}: {exc} ({where})", file=sys.stderr)
        return int(ExitCode.JOBS_FAILED)


if __name__ == "__main__":
    sys.exit(main())
