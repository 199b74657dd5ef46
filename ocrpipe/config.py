"""The one place that reads the environment: builds a frozen, validated Settings."""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import shlex
import sqlite3
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psutil

from ocrpipe.clustertls import check_address, check_tls_files, tls_file
from ocrpipe.errors import ConfigError
from ocrpipe.locate import default_command

T = TypeVar("T")

# One ocrmypdf run took 107–195 MB here, and each page worker it adds about 70 MB more (Tesseract:
# 60 MB on these scans); big pages take more, so plan for this much.
MB_PER_OCR_RUN = 512
MB_PER_PAGE_WORKER = 128
DEFAULT_BATCH_MAX_PAGES = 20
# Only a lone document of at least this many pages may be OCRed as page ranges (docs/speed.md); 0: never.
# Whether it is, and in how many, engine/splitplan.py predicts. Below 16 pages a split's extra calls (about
# 1.5 CPU-s each) cost more than a tenth of the document's CPU (19 scanned pages: 47 CPU-s).
DEFAULT_SPLIT_MIN_PAGES = 16
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SIGNED_PDF_CHOICES = ("KEEP", "OCR", "ERROR")  # what a digitally signed PDF gets: see the README
# auto: PDF/A where ocrmypdf can make it, through Ghostscript (which re-encodes images) if need be;
# lossless: a regular PDF where only Ghostscript could make PDF/A; required: PDF/A or the job fails.
PDFA_CHOICES = ("AUTO", "LOSSLESS", "REQUIRED")
# auto: pages that read like turned ones are checked and turned; always: every page (ocrmypdf's
# --rotate-pages); off: none. See the README's "Orientation" for what each costs.
ROTATE_PAGES_CHOICES = ("AUTO", "ALWAYS", "OFF")
# A document with a page read below this (Tesseract's word confidence, weighted by characters, 0-100) is
# flagged as read poorly. Measured on 53 generated pages, clean, scanner-noisy, blurred and speckled
# (docs/search.md): every page read at 85 or more had at least 88 % of its words right, every page with
# less than 85 % right read below 75 (at 38-74); real upright scans read at 82-96.
DEFAULT_LOW_CONFIDENCE = 75.0


# Office documents through LibreOffice: on (soffice must be there), off, or auto (when soffice is found).
OFFICE_INPUT_CHOICES = ("AUTO", "ON", "OFF")


# ----- hooks: the command and the webhook told of every job that ends (docs/hooks.md) ---------------------
# The event types an outbox event can have; HOOK_EVENTS picks among them.
HOOK_EVENT_TYPES = ("job.done", "job.error", "duplicate.held", "decision.applied")
WEBHOOK_SECRET_PREFIX = "whsec_"  # Standard Webhooks: "whsec_" + the key in base64
# Kept out of the environment the tools and the hook command start from: only the webhook signs.
SECRET_VARIABLES = frozenset({"WEBHOOK_SECRET"})


@dataclass(frozen=True)
class HookSettings:
    """Who is told when a job ends: a command, a webhook, or both; neither set turns the outbox off."""

    command: tuple[str, ...] = ()
    timeout_seconds: float = 30.0
    webhook_url: str | None = None
    webhook_secret: bytes | None = field(default=None, repr=False)  # the HMAC key itself, never logged
    webhook_timeout_seconds: float = 10.0
    events: frozenset[str] = frozenset(HOOK_EVENT_TYPES)
    retry_limit_seconds: float = 86400.0  # after this long undelivered, an event goes to hooks/failed/
    backlog_seconds: float = 3600.0  # /health fails while an event has waited longer than this
    once_timeout_seconds: float = 60.0  # how long `run --once` keeps delivering before it exits

    @property
    def enabled(self) -> bool:
        return bool(self.command or self.webhook_url)


@dataclass(frozen=True)
class Settings:
    """Everything ocrpipe needs to know; picklable, so workers get it as an argument."""

    data_dir: Path
    in_dir: Path
    out_dir: Path
    archive_dir: Path
    error_dir: Path
    poll_seconds: float = 1.0
    stable_seconds: float = 2.0
    intake_max_depth: int = 32  # levels of sub-folders of in/ that are entered
    prep_concurrency: int = 1
    ocr_concurrency: int = 2
    max_jobs_in_flight: int = 32
    ocr_lang: str = "fra+eng"  # or "auto": each document in its own language (stages/language.py)
    # OCR_LANG=auto: the languages a document may be in (empty: the installed ones, found at the start),
    # and the language of the first reading, which a document in another candidate gets a second one after.
    ocr_lang_candidates: tuple[str, ...] = ()
    ocr_lang_default: str = "eng"
    ocr_args: tuple[str, ...] = ()
    image_dpi: int = 300
    seven_zip: tuple[str, ...] = ("7z",)
    ocrmypdf: tuple[str, ...] = ("ocrmypdf",)
    tesseract: tuple[str, ...] = ("tesseract",)
    ghostscript: tuple[str, ...] = ("gs",)
    log_level: str = "INFO"
    log_json: bool = False
    log_file: Path | None = None
    max_attempts_prep: int = 3
    max_attempts_ocr: int = 3
    retry_backoff_seconds: float = 5.0
    prep_timeout_seconds: float = 600.0
    ocr_timeout_seconds: float = 300.0
    ocr_timeout_per_page_seconds: float = 60.0
    max_archive_members: int = 5000
    max_archive_mb: int = 4096
    max_archive_ratio: float = 200.0
    max_image_mpixels: float = 300.0
    signed_pdf: str = "keep"
    empty_folder_seconds: float = 600.0
    heartbeat_seconds: float = 2.0
    job_timeout_seconds: float = 60.0
    min_free_mb: int = 500
    ocr_temp_mb_per_page: int = 100
    shutdown_grace_seconds: float = 30.0
    ocr_batch_max_pages: int = DEFAULT_BATCH_MAX_PAGES
    ocr_split_min_pages: int = DEFAULT_SPLIT_MIN_PAGES  # 0: never split
    ocr_split_parts: int = 0  # 0 (auto): as many page ranges as predicted shortest, if any; k: always k
    pdfa: str = "auto"  # auto | lossless | required: see PDFA_CHOICES
    rotate_pages: str = "auto"  # auto | always | off: see ROTATE_PAGES_CHOICES
    deskew: bool = False  # ocrmypdf's --deskew
    cpu_count: int = 1
    # The HTTP API (httpapi.py): port 0 turns it off; 127.0.0.1 keeps it internal.
    orchestrator_port: int = 8080
    orchestrator_host: str = "127.0.0.1"
    health_stale_seconds: float = 30.0
    http_timeout_seconds: float = 5.0  # for a request's head to arrive, and for each read or write after
    # The environment the tools start from (PATH, locale…), captured once here.
    tool_env: tuple[tuple[str, str], ...] = ()
    # Where each stage runs: "local" (the process pools) or a Dask scheduler's address.
    prep_executor: str = "local"
    ocr_executor: str = "local"
    worker_data_dir: str | None = None  # DATA_DIR as the Dask workers see it (None: the same path)
    executor_connect_seconds: float = 10.0  # how long `ocrpipe run` tries to reach the Dask scheduler
    # The Dask cluster's TLS (clustertls.py): this machine's certificate, its key, and the cluster's CA.
    dask_tls_ca_file: Path | None = None
    dask_tls_cert: Path | None = None
    dask_tls_key: Path | None = None
    dask_allow_insecure: bool = False  # a plain tcp:// scheduler off this machine, knowingly
    # The concurrency limits an operator set (None: not set): a cluster's size is bounded by them.
    prep_concurrency_set: int | None = None
    ocr_concurrency_set: int | None = None
    hooks: HookSettings = HookSettings()  # the command hook and the webhook (docs/hooks.md)
    # Retention (retention/): days an archived original, an error/ folder and a full index row are kept,
    # by when the job finished (None: for ever); RETAIN_TRASH_DIR moves them there instead of deleting.
    retain_archive_days: int | None = None
    retain_error_days: int | None = None
    retain_index_days: int | None = None
    retain_trash_dir: Path | None = None
    # INDEX_DIR and WORK_DIR when set (None: inside the data folder); read them as index_dir and work_dir.
    index_dir_set: Path | None = None
    work_dir_set: Path | None = None
    # CONVERT: Office documents (LibreOffice) and e-mail (WeasyPrint) to PDF before PREP.
    office_input: str = "auto"  # auto | on | off: see OFFICE_INPUT_CHOICES
    soffice: tuple[str, ...] = ("soffice",)
    convert_concurrency: int = 1  # LibreOffice takes about 210 MB and a core per conversion
    max_attempts_convert: int = 3
    convert_timeout_seconds: float = 300.0
    # Full-text search (docs/search.md): each page's text into the job index; on by default where SQLite has FTS5.
    search_index: bool = False
    low_confidence: float = DEFAULT_LOW_CONFIDENCE  # a page read below this flags its document; 0: never

    @property
    def work_dir(self) -> Path:
        return self.work_dir_set or self.data_dir / "work"

    @property
    def state_dir(self) -> Path:
        """The data folder's own notes, wherever INDEX_DIR is: the single-instance lock and the journal of
        staged files. They describe the data folder (a second ocrpipe on it, files in in/), so they stay
        beside it; with the default INDEX_DIR this is the index folder, as in every earlier layout."""
        return self.data_dir / "index"

    @property
    def retention_on(self) -> bool:
        return any(days is not None for days in (self.retain_archive_days, self.retain_error_days,
                                                  self.retain_index_days))

    @property
    def hold_dir(self) -> Path:
        return self.data_dir / "hold" / "duplicates"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports" / "duplicates"

    @property
    def index_dir(self) -> Path:
        return self.index_dir_set or self.data_dir / "index"

    def ocr_timeout_for(self, pages: int) -> float:
        return self.ocr_timeout_seconds + self.ocr_timeout_per_page_seconds * max(1, pages)


def default_ocr_concurrency(cpu_count: int, available_bytes: int) -> int:
    """One OCR run per core, but never more than free memory holds, with the page workers the runs
    share between them (about two per core: see batching.page_workers)."""
    free_mb = available_bytes // (1024 * 1024) - 2 * cpu_count * MB_PER_PAGE_WORKER
    return max(1, min(cpu_count, free_mb // MB_PER_OCR_RUN))


class _Reader:
    """Reads named values from flags first, then the environment, and names the culprit on error."""

    def __init__(self, environ: Mapping[str, str], flags: Mapping[str, object]) -> None:
        self.environ = environ
        self.flags = {k: v for k, v in flags.items() if v is not None}

    def raw(self, name: str) -> str | None:
        if name in self.flags:
            return str(self.flags[name])
        value = self.environ.get(name)
        return value if value not in (None, "") else None

    def get(self, name: str, parse: Callable[[str], T], default: T, accepted: str) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw.strip())
        except (ValueError, TypeError):
            raise ConfigError(f"{name}={raw!r} is not valid: expected {accepted}") from None

    def number(self, name: str, default: float, *, minimum: float, integer: bool = False) -> float:
        parse = int if integer else float
        kind = "a whole number" if integer else "a number"
        value = self.get(name, parse, default, f"{kind} >= {minimum:g}")
        if not math.isfinite(value) or value < minimum:
            raise ConfigError(f"{name}={value!r} is not valid: expected {kind} >= {minimum:g}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.raw(name) or default).strip().upper()
        if value not in choices:
            raise ConfigError(f"{name}={value!r} is not valid: expected one of {', '.join(choices)}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.raw(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={raw!r} is not valid: expected true or false")

    def command(self, name: str, tool: str) -> tuple[str, ...]:
        raw = self.raw(name)
        if raw is None:
            return tuple(default_command(tool, environ=self.environ))
        if Path(raw).is_file():  # a path with spaces, like C:\Program Files\7-Zip\7z.exe
            return (raw,)
        try:
            parts = shlex.split(raw, posix=sys.platform != "win32")
        except ValueError:
            parts = []
        if not parts:
            raise ConfigError(f"{name}={raw!r} is not valid: expected a program path or command")
        return tuple(parts)


def _languages(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", raw):
        raise ValueError(raw)
    if "auto" in raw.lower().split("+") and raw.lower() != "auto":
        raise ValueError(raw)  # auto stands alone: it chooses the languages itself
    return "auto" if raw.lower() == "auto" else raw


def _one_language(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z_]+", raw) or raw.lower() in ("auto", "osd"):
        raise ValueError(raw)
    return raw


def _candidates(raw: str) -> tuple[str, ...]:
    """``deu+eng+fra`` or ``deu,eng,fra`` (spaces too): each a Tesseract language code."""
    parts = [part for part in re.split(r"[+,\s]+", raw) if part]
    if not parts or any(not re.fullmatch(r"[A-Za-z_]+", p) or p.lower() in ("auto", "osd") for p in parts):
        raise ValueError(raw)
    return tuple(sorted(set(parts)))


def _split_parts(raw: str) -> int:
    if raw.lower() == "auto":
        return 0
    parts = int(raw)
    if parts < 2:
        raise ValueError(raw)
    return parts


def _port(raw: str) -> int:
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError(raw)
    return port


def _host(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:\[\]_-]+", raw):
        raise ValueError(raw)
    return raw


def _executor(raw: str) -> str:
    """``local``, or a Dask scheduler address: ``tcp://host:8786`` (tls:// and inproc:// too)."""
    if raw.lower() == "local":
        return "local"
    if not re.fullmatch(r"(tcp|tls|inproc|ucx)://[^\s/]+(:\d+)?/?", raw):
        raise ValueError(raw)
    return raw.rstrip("/")


_FTS5: list[bool] = []


def fts5_available() -> bool:
    """Whether this Python's SQLite has FTS5 with the tokenizer the search uses (asked once per process)."""
    if not _FTS5:
        conn = sqlite3.connect(":memory:")
        try:
            conn.execute("CREATE VIRTUAL TABLE probe USING fts5(text, tokenize = 'unicode61 remove_diacritics 2')")
            _FTS5.append(True)
        except sqlite3.Error:
            _FTS5.append(False)
        finally:
            conn.close()
    return _FTS5[0]


def _search_index(read: _Reader) -> bool:
    wanted = read.flag("SEARCH_INDEX", fts5_available())
    if wanted and not fts5_available():
        raise ConfigError(f"SEARCH_INDEX={read.raw('SEARCH_INDEX')!r} is not valid here: this Python's SQLite "
                          f"({sqlite3.sqlite_version}) has no FTS5; set SEARCH_INDEX=off (docs/search.md)")
    return wanted


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def load_settings(environ: Mapping[str, str] | None = None, flags: Mapping[str, object] | None = None) -> Settings:
    """Build the settings from the environment, with command-line flags (same names) winning."""
    environ = os.environ if environ is None else environ
    read = _Reader(environ, flags or {})
    data_dir = Path(read.raw("DATA_DIR") or "data").expanduser().resolve()

    def folder(name: str, default: str) -> Path:
        return Path(read.raw(name) or data_dir / default).expanduser().resolve()

    in_dir = folder("IN_DIR", "in")
    dirs = {
        "OUT_DIR": folder("OUT_DIR", "out"),
        "ARCHIVE_DIR": folder("ARCHIVE_DIR", "archive"),
        "ERROR_DIR": folder("ERROR_DIR", "error"),
    }
    default_work = {} if read.raw("WORK_DIR") else {"DATA_DIR work/": data_dir / "work"}  # WORK_DIR: checked below
    for name, path in {**dirs, **default_work}.items():
        if _inside(path, in_dir):
            raise ConfigError(f"{name}={str(path)!r} is not valid: it must not be inside IN_DIR ({in_dir})")
    if default_work and _inside(in_dir, data_dir / "work"):
        raise ConfigError(f"IN_DIR={str(in_dir)!r} is not valid: it must not be inside the work folder")
    placed = _placed_folders(read, data_dir, in_dir, dirs)

    cpu_count = psutil.cpu_count(logical=True) or 1
    ocr_default = default_ocr_concurrency(cpu_count, psutil.virtual_memory().available)
    try:
        ocr_args = tuple(shlex.split(read.raw("OCR_ARGS") or ""))
    except ValueError:
        raise ConfigError(f"OCR_ARGS={read.raw('OCR_ARGS')!r} is not valid: expected ocrmypdf options") from None
    settings = Settings(
        data_dir=data_dir,
        in_dir=in_dir,
        out_dir=dirs["OUT_DIR"],
        archive_dir=dirs["ARCHIVE_DIR"],
        error_dir=dirs["ERROR_DIR"],
        poll_seconds=read.number("POLL_SECONDS", 1.0, minimum=0.05),
        stable_seconds=read.number("STABLE_SECONDS", 2.0, minimum=0),
        intake_max_depth=int(read.number("INTAKE_MAX_DEPTH", 32, minimum=0, integer=True)),
        prep_concurrency=int(read.number("PREP_CONCURRENCY", 1, minimum=1, integer=True)),
        ocr_concurrency=int(read.number("OCR_CONCURRENCY", ocr_default, minimum=1, integer=True)),
        max_jobs_in_flight=int(read.number("MAX_JOBS_IN_FLIGHT", 32, minimum=1, integer=True)),
        ocr_lang=read.get("OCR_LANG", _languages, "fra+eng",
                          "Tesseract language codes joined by '+', e.g. fra+eng, or auto"),
        ocr_lang_candidates=read.get("OCR_LANG_CANDIDATES", _candidates, (),
                                     "Tesseract language codes joined by '+' or ',', e.g. deu+eng+fra"),
        ocr_lang_default=read.get("OCR_LANG_DEFAULT", _one_language, "eng",
                                  "one Tesseract language code, e.g. eng"),
        ocr_args=ocr_args,
        image_dpi=int(read.number("IMAGE_DPI", 300, minimum=10, integer=True)),
        seven_zip=read.command("SEVEN_ZIP", "7z"),
        ocrmypdf=read.command("OCRMYPDF", "ocrmypdf") if read.raw("OCRMYPDF") else (sys.executable, "-m", "ocrmypdf"),
        tesseract=read.command("TESSERACT", "tesseract"),
        ghostscript=read.command("GHOSTSCRIPT", "gs"),
        log_level=read.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        log_json=read.flag("LOG_JSON", False),
        log_file=Path(log_file).expanduser().resolve() if (log_file := read.raw("LOG_FILE")) else None,
        max_attempts_prep=int(read.number("MAX_ATTEMPTS_PREP", 3, minimum=1, integer=True)),
        max_attempts_ocr=int(read.number("MAX_ATTEMPTS_OCR", 3, minimum=1, integer=True)),
        retry_backoff_seconds=read.number("RETRY_BACKOFF_SECONDS", 5.0, minimum=0),
        prep_timeout_seconds=read.number("PREP_TIMEOUT_SECONDS", 600.0, minimum=1),
        ocr_timeout_seconds=read.number("OCR_TIMEOUT_SECONDS", 300.0, minimum=1),
        ocr_timeout_per_page_seconds=read.number("OCR_TIMEOUT_PER_PAGE_SECONDS", 60.0, minimum=0),
        max_archive_members=int(read.number("MAX_ARCHIVE_MEMBERS", 5000, minimum=1, integer=True)),
        max_archive_mb=int(read.number("MAX_ARCHIVE_MB", 4096, minimum=1, integer=True)),
        max_archive_ratio=read.number("MAX_ARCHIVE_RATIO", 200.0, minimum=1),
        max_image_mpixels=read.number("MAX_IMAGE_MPIXELS", 300.0, minimum=1),
        signed_pdf=read.choice("SIGNED_PDF", "keep", SIGNED_PDF_CHOICES).lower(),
        empty_folder_seconds=read.number("EMPTY_FOLDER_SECONDS", 600.0, minimum=60),
        heartbeat_seconds=read.number("HEARTBEAT_SECONDS", 2.0, minimum=0.05),
        job_timeout_seconds=read.number("JOB_TIMEOUT_SECONDS", 60.0, minimum=0.1),
        min_free_mb=int(read.number("MIN_FREE_MB", 500, minimum=0, integer=True)),
        ocr_temp_mb_per_page=int(read.number("OCR_TEMP_MB_PER_PAGE", 100, minimum=0, integer=True)),
        shutdown_grace_seconds=read.number("SHUTDOWN_GRACE_SECONDS", 30.0, minimum=0),
        # Documents ready together share one ocrmypdf call, up to this many pages; 1 turns batches off.
        ocr_batch_max_pages=int(read.number("OCR_BATCH_MAX_PAGES", DEFAULT_BATCH_MAX_PAGES, minimum=1,
                                            integer=True)),
        # A lone document of fewer pages is never OCRed as page ranges in concurrent calls; 0: none is.
        ocr_split_min_pages=int(read.number("OCR_SPLIT_MIN_PAGES", DEFAULT_SPLIT_MIN_PAGES, minimum=0,
                                            integer=True)),
        # auto: the split is predicted (engine/splitplan.py); a number: always that many ranges (measuring it).
        ocr_split_parts=int(read.get("OCR_SPLIT_PARTS", _split_parts, 0, "auto or a whole number >= 2")),
        pdfa=read.choice("PDFA", "AUTO", PDFA_CHOICES).lower(),
        rotate_pages=read.choice("ROTATE_PAGES", "AUTO", ROTATE_PAGES_CHOICES).lower(),
        deskew=read.choice("DESKEW", "OFF", ("ON", "OFF")) == "ON",
        cpu_count=cpu_count,
        orchestrator_port=int(read.get("ORCHESTRATOR_PORT", _port, 8080, "a port number from 0 (off) to 65535")),
        orchestrator_host=read.get("ORCHESTRATOR_HOST", _host, "127.0.0.1",
                                   "an IP address or host name, e.g. 127.0.0.1"),
        health_stale_seconds=read.number("HEALTH_STALE_SECONDS", 30.0, minimum=1),
        http_timeout_seconds=read.number("HTTP_TIMEOUT_SECONDS", 5.0, minimum=0.1),
        tool_env=tuple(sorted((k, v) for k, v in environ.items() if k not in SECRET_VARIABLES)),
        prep_executor=read.get("PREP_EXECUTOR", _executor, "local", "local or a Dask scheduler address, e.g. tls://host:8786"),
        ocr_executor=read.get("OCR_EXECUTOR", _executor, "local", "local or a Dask scheduler address, e.g. tls://host:8786"),
        worker_data_dir=read.raw("WORKER_DATA_DIR"),
        executor_connect_seconds=read.number("EXECUTOR_CONNECT_SECONDS", 10.0, minimum=0.1),
        dask_tls_ca_file=tls_file("DASK_TLS_CA_FILE", read.raw("DASK_TLS_CA_FILE")),
        dask_tls_cert=tls_file("DASK_TLS_CERT", read.raw("DASK_TLS_CERT")),
        dask_tls_key=tls_file("DASK_TLS_KEY", read.raw("DASK_TLS_KEY")),
        dask_allow_insecure=read.flag("DASK_ALLOW_INSECURE", False),
        prep_concurrency_set=int(read.number("PREP_CONCURRENCY", 1, minimum=1, integer=True))
        if read.raw("PREP_CONCURRENCY") else None,
        ocr_concurrency_set=int(read.number("OCR_CONCURRENCY", 1, minimum=1, integer=True))
        if read.raw("OCR_CONCURRENCY") else None,
        hooks=_hook_settings(read),
        **placed,
        **_convert_settings(read),
        search_index=_search_index(read),
        low_confidence=_low_confidence(read),
    )
    check_cluster(settings)
    _check_work_dir_on_cluster(settings)
    return settings


def _placed_folders(read: _Reader, data_dir: Path, in_dir: Path, dirs: dict[str, Path]) -> dict[str, Any]:
    """INDEX_DIR, WORK_DIR and the retention settings. Whether a folder exists or can be written is checked
    when a command starts to use it (folders/places.py): reading the settings creates nothing."""
    def days(name: str) -> int | None:
        return int(read.number(name, 1, minimum=1, integer=True)) if read.raw(name) else None

    def folder(name: str) -> Path | None:
        raw = read.raw(name)
        return Path(raw).expanduser().resolve() if raw else None

    index_dir, work_dir, trash = folder("INDEX_DIR"), folder("WORK_DIR"), folder("RETAIN_TRASH_DIR")
    for name, path in (("INDEX_DIR", index_dir), ("WORK_DIR", work_dir), ("RETAIN_TRASH_DIR", trash)):
        if path is not None and (_inside(path, in_dir) or _inside(in_dir, path)):
            raise ConfigError(f"{name}={str(path)!r} is not valid: it must not be inside IN_DIR ({in_dir}) "
                              "nor hold it")
    if trash is not None:
        # Moved there, an original must not be taken in again, archived again, or found by a rebuild of the index.
        for name, kept in (("ARCHIVE_DIR", dirs["ARCHIVE_DIR"]), ("ERROR_DIR", dirs["ERROR_DIR"]),
                           ("WORK_DIR", work_dir or data_dir / "work")):
            if _inside(trash, kept) or _inside(kept, trash):
                raise ConfigError(f"RETAIN_TRASH_DIR={str(trash)!r} is not valid: it must not be inside {name} "
                                  f"({kept}) nor hold it")
    return {"retain_archive_days": days("RETAIN_ARCHIVE_DAYS"), "retain_error_days": days("RETAIN_ERROR_DAYS"),
            "retain_index_days": days("RETAIN_INDEX_DAYS"), "retain_trash_dir": trash,
            "index_dir_set": index_dir, "work_dir_set": work_dir}


def _check_work_dir_on_cluster(settings: Settings) -> None:
    """Dask workers reach a job's folder through the shared data folder: a work folder outside it is not theirs."""
    remote = [s for s in (settings.prep_executor, settings.ocr_executor) if s != "local"]
    if remote and settings.work_dir_set is not None and not _inside(settings.work_dir_set, settings.data_dir):
        raise ConfigError(f"WORK_DIR={str(settings.work_dir_set)!r} is not valid with a Dask executor: the "
                          f"workers reach work/ through the shared data folder ({settings.data_dir}); leave WORK_DIR "
                          "unset (INDEX_DIR may still be a local disk)")


def _convert_settings(read: _Reader) -> dict[str, Any]:
    """The CONVERT stage's settings (Office documents and e-mail)."""
    return {
        "office_input": read.choice("OFFICE_INPUT", "AUTO", OFFICE_INPUT_CHOICES).lower(),
        "soffice": read.command("SOFFICE", "soffice"),
        "convert_concurrency": int(read.number("CONVERT_CONCURRENCY", 1, minimum=1, integer=True)),
        "max_attempts_convert": int(read.number("MAX_ATTEMPTS_CONVERT", 3, minimum=1, integer=True)),
        "convert_timeout_seconds": read.number("CONVERT_TIMEOUT_SECONDS", 300.0, minimum=1),
    }


def _low_confidence(read: _Reader) -> float:
    value = read.number("LOW_CONFIDENCE", DEFAULT_LOW_CONFIDENCE, minimum=0)
    if value > 100:
        raise ConfigError(f"LOW_CONFIDENCE={value!r} is not valid: expected a number from 0 to 100")
    return value


def check_cluster(settings: Settings, scheduler: tuple[str, str] | None = None) -> None:
    """The TLS files, then each scheduler address (the executors', or ``scheduler``: a flag's name and value)."""
    tls = check_tls_files(settings.dask_tls_ca_file, settings.dask_tls_cert, settings.dask_tls_key)
    addresses = [scheduler] if scheduler else [("PREP_EXECUTOR", settings.prep_executor),
                                               ("OCR_EXECUTOR", settings.ocr_executor)]
    for name, address in addresses:
        check_address(name, address, tls=tls, allow_insecure=settings.dask_allow_insecure)


def _hook_settings(read: _Reader) -> HookSettings:
    """HOOK_* and WEBHOOK_*: each bad value named, as for every other setting."""
    raw_command = read.raw("HOOK_COMMAND")
    command: tuple[str, ...] = ()
    if raw_command is not None:
        command = read.command("HOOK_COMMAND", "hook")  # split like OCR_ARGS; a path with spaces stays whole
    url = read.raw("WEBHOOK_URL")
    if url is not None:
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            raise ConfigError(f"WEBHOOK_URL={url!r} is not valid: expected an http:// or https:// address")
    return HookSettings(
        command=command,
        timeout_seconds=read.number("HOOK_TIMEOUT_SECONDS", 30.0, minimum=0.1),
        webhook_url=url,
        webhook_secret=_webhook_secret(read.raw("WEBHOOK_SECRET")),
        webhook_timeout_seconds=read.number("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1),
        events=read.get("HOOK_EVENTS", _hook_events, frozenset(HOOK_EVENT_TYPES),
                        f"event types separated by commas, among {', '.join(HOOK_EVENT_TYPES)}"),
        retry_limit_seconds=read.number("HOOK_RETRY_LIMIT_SECONDS", 86400.0, minimum=1),
        backlog_seconds=read.number("HOOK_BACKLOG_SECONDS", 3600.0, minimum=1),
        once_timeout_seconds=read.number("HOOK_ONCE_TIMEOUT_SECONDS", 60.0, minimum=0),
    )


def _hook_events(raw: str) -> frozenset[str]:
    chosen = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    if not chosen or chosen - set(HOOK_EVENT_TYPES):
        raise ValueError(raw)
    return chosen


def _webhook_secret(raw: str | None) -> bytes | None:
    """``whsec_<base64>`` (as Standard Webhooks libraries make them) is the key in base64; any other
    text is the key itself, as UTF-8. The message never repeats the secret."""
    if raw is None:
        return None
    raw = raw.strip()
    if raw.startswith(WEBHOOK_SECRET_PREFIX):
        try:
            key = base64.b64decode(raw[len(WEBHOOK_SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise ConfigError("WEBHOOK_SECRET is not valid: after whsec_ it must be base64 (the value is not shown)")
        return key
    return raw.encode("utf-8")
