"""Exit codes and the error tree; every error pickles, since workers raise them across processes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``ocrpipe`` command."""

    OK = 0
    JOBS_FAILED = 1
    BAD_CONFIG = 2
    MISSING_TOOL = 3
    ALREADY_RUNNING = 4
    SCHEDULER_FAULT = 5
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


class AlreadyRunningError(OcrpipeError):
    """Another ocrpipe instance holds the data folder's lock."""

    exit_code = ExitCode.ALREADY_RUNNING


class SchedulerFault(OcrpipeError):
    """ocrpipe itself kept failing outside any job (the pools, the index), even after pauses."""

    exit_code = ExitCode.SCHEDULER_FAULT


class StageError(Exception):
    """A PREP or OCR stage failed; ``reason`` is written for a person, not a programmer."""

    transient = True

    def __init__(self, reason: str, exit_code: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(reason, exit_code, stderr_tail)
        self.reason = reason
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail

    def __str__(self) -> str:
        return self.reason


class TransientError(StageError):
    """Worth another attempt: the tool crashed or was killed, an I/O hiccup."""

    transient = True


class ToolTimeout(TransientError):
    """The tool ran past the stage's time limit and was killed with its children."""


class DiskFullError(TransientError):
    """No space left on the device: the job waits for space; it does not use up its attempts."""


class PermanentError(StageError):
    """Retrying cannot help: encrypted, corrupt, unsupported or refused input."""

    transient = False
