"""The stages' pool entry points as the scheduler submits them: each imports its stage in the worker, so
the scheduler's own start does not pay for pikepdf, Pillow and the PDF/A checker (about 0.3 s here)."""

from __future__ import annotations

from typing import Any

from ocrpipe.engine.worker import ready_for_next


def run_convert(*args: Any, **kwargs: Any) -> Any:
    from ocrpipe.stages.convert import run_convert as run

    return run(*args, **kwargs)


def run_prep(*args: Any, **kwargs: Any) -> Any:
    from ocrpipe.stages.prep import run_prep as run

    return run(*args, **kwargs)


def run_ocr(*args: Any, **kwargs: Any) -> Any:
    from ocrpipe.stages.ocr import run_ocr as run

    try:
        return run(*args, **kwargs)
    finally:
        ready_for_next(args[0])


def run_ocr_batch(*args: Any, **kwargs: Any) -> Any:
    from ocrpipe.stages.batch import run_ocr_batch as run

    try:
        return run(*args, **kwargs)
    finally:
        ready_for_next(args[0])


def run_ocr_split(*args: Any, **kwargs: Any) -> Any:
    from ocrpipe.stages.split import run_ocr_split as run

    try:
        return run(*args, **kwargs)
    finally:
        ready_for_next(args[0])
