"""Exit codes and the error tree; every error pickles, since workers raise them across processes."""

from __future__ import annotations

from enum import Enum, IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``ocrpipe`` command."""

    OK = 0
    JOBS_FAILED = 1
    BAD_CONFIG = 2
    MISSING_TOOL = 3
    ALREADY_RUNNING = 4
    SCHEDULER_FAULT = 5
    SCHEDULE_FAILED = 6
    INTERRUPTED = 130


class OcrpipeError(Exception):
    """Base of the errors that end the command with a message, never a traceback."""

    exit_code = ExitCode.BAD_CONFIG

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(OcrpipeError):
    """A setting has a value we cannot use."""

    exit_code = ExitCode.BAD_CONFIG


class MissingToolError(OcrpipeError):
    """A required external tool is not installed or does not run."""

    exit_code = ExitCode.MISSING_TOOL


class ClusterError(OcrpipeError):
    """The Dask scheduler named by OCR_EXECUTOR / PREP_EXECUTOR cannot be used (unreachable, or Dask
    is not installed): like a missing tool, nothing can run."""

    exit_code = ExitCode.MISSING_TOOL


class WorkerSetupError(Exception):
    """A Dask worker cannot run a stage: its view of the data folder is not the scheduler's. Not the
    file's fault: the attempt does not count. Pickles (one argument)."""


class AlreadyRunningError(OcrpipeError):
    """Another ocrpipe instance holds the data folder's lock."""

    exit_code = ExitCode.ALREADY_RUNNING


class SchedulerFault(OcrpipeError):
    """ocrpipe itself kept failing outside any job (the pools, the index), even after pauses."""

    exit_code = ExitCode.SCHEDULER_FAULT


class ScheduleError(OcrpipeError):
    """schtasks refused to create or delete the scheduled task; its own message says why."""

    exit_code = ExitCode.SCHEDULE_FAILED


class Code(str, Enum):
    """Stable reason codes of a failed job, in error.json beside the readable reason; a program
    tells refusals apart by these, never by the wording. The family is the part before the first ``_``."""

    ARCHIVE_UNSAFE_PATH = "ARCHIVE_UNSAFE_PATH"  # a member points outside the archive (zip-slip)
    ARCHIVE_BOMB = "ARCHIVE_BOMB"  # over MAX_ARCHIVE_MB, MAX_ARCHIVE_MEMBERS or MAX_ARCHIVE_RATIO
    ARCHIVE_PASSWORD = "ARCHIVE_PASSWORD"
    ARCHIVE_NESTED = "ARCHIVE_NESTED"  # archives deeper than the levels unpacked
    ARCHIVE_EMPTY = "ARCHIVE_EMPTY"  # no PDF or image inside
    ARCHIVE_DAMAGED = "ARCHIVE_DAMAGED"  # not an archive 7-Zip can read, or a method it lacks
    PDF_PASSWORD = "PDF_PASSWORD"
    PDF_DAMAGED = "PDF_DAMAGED"
    PDF_SIGNED = "PDF_SIGNED"
    PDF_XFA = "PDF_XFA"
    PDF_UNSUPPORTED_IMAGE = "PDF_UNSUPPORTED_IMAGE"  # an image ocrmypdf cannot transcode (JBIG2…)
    PDF_HAS_TEXT = "PDF_HAS_TEXT"
    PDF_PDFA_FAILED = "PDF_PDFA_FAILED"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    IMAGE_DAMAGED = "IMAGE_DAMAGED"
    IMAGE_UNSUPPORTED = "IMAGE_UNSUPPORTED"  # a format this machine lacks the decoder of (HEIC)
    OFFICE_PASSWORD = "OFFICE_PASSWORD"  # an Office document that needs a password to open
    OFFICE_DAMAGED = "OFFICE_DAMAGED"  # LibreOffice cannot open it
    OFFICE_UNAVAILABLE = "OFFICE_UNAVAILABLE"  # an Office document, and OFFICE_INPUT=off or no LibreOffice
    EMAIL_DAMAGED = "EMAIL_DAMAGED"  # an e-mail that cannot be read, or whose body cannot be rendered
    EMAIL_UNAVAILABLE = "EMAIL_UNAVAILABLE"  # an e-mail (or an Outlook .msg) this machine has no renderer for
    EMPTY_FILE = "EMPTY_FILE"
    UNSUPPORTED_TYPE = "UNSUPPORTED_TYPE"
    TOOL_CONFIG = "TOOL_CONFIG"  # the tool refused our options, or a program it needs is missing
    TOOL_TIMEOUT = "TOOL_TIMEOUT"
    TOOL_FAILED = "TOOL_FAILED"  # an unknown failure: retried, and this code if it never succeeds
    TOOL_CRASH_LOOP = "TOOL_CRASH_LOOP"  # cut short by restarts of ocrpipe, alone, too many times in a row
    DISK_TOO_SMALL = "DISK_TOO_SMALL"
    INTAKE_FAILED = "INTAKE_FAILED"  # the dropped file could not be taken in (read, staged): no job was made

    @property
    def family(self) -> str:
        return self.value.split("_", 1)[0]


class StageError(Exception):
    """A PREP or OCR stage failed; ``reason`` is written for a person, not a programmer."""

    transient = True
    default_code = Code.TOOL_FAILED

    def __init__(self, reason: str, exit_code: int | None = None, stderr_tail: str = "",
                 code: Code | None = None) -> None:
        # Every value goes to Exception's args, so the error pickles back whole from a worker.
        super().__init__(reason, exit_code, stderr_tail, code)
        self.reason = reason
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.code = Code(code) if code is not None else self.default_code

    def __str__(self) -> str:
        return self.reason


class TransientError(StageError):
    """Worth another attempt: the tool crashed or was killed, an I/O hiccup."""

    transient = True


class RedoAlone(TransientError):
    """What a batch gave this document is not what ocrmypdf alone gives it (its images
    changed): it is OCRed again alone, an attempt that does not count (as after a failed batch)."""


class SplitFailed(TransientError):
    """A document split into page ranges could not be OCRed or merged that way: it is
    OCRed whole, an attempt that does not count."""


class ToolTimeout(TransientError):
    """The tool ran past the stage's time limit and was killed with its children."""

    default_code = Code.TOOL_TIMEOUT


class DiskFullError(TransientError):
    """No space left on the device: the job waits for space; it does not use up its attempts."""

    default_code = Code.DISK_TOO_SMALL


class PermanentError(StageError):
    """Retrying cannot help: encrypted, corrupt, unsupported or refused input."""

    transient = False
