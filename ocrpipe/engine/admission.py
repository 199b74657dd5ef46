"""A staged file becomes a new job, a held duplicate, or the resumed intake of a job whose move a crash cut short."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.duplicates.hold import hold_duplicate
from ocrpipe.engine.announce import announce_held
from ocrpipe.engine.jobs import Job
from ocrpipe.engine.lifecycle import Lifecycle
from ocrpipe.folders.fsutil import move_replacing, sha256_file
from ocrpipe.folders.intake import StagedFile, unstage
from ocrpipe.folders.layout import folder_for
from ocrpipe.folders.names import name_bytes, readable_name
from ocrpipe.folders.nofollow import NotRegularFile
from ocrpipe.folders.outbox import HELD, wanted
from ocrpipe.folders.store import STATE_FILE, new_state_record, read_state, write_new_state
from ocrpipe.index.metrics import update_metrics
from ocrpipe.logs import job_context
from ocrpipe.model import JobState, make_job_key
from ocrpipe.stages.doctype import detect

log = logging.getLogger("ocrpipe.admission")


class UnreadableFile(Exception):
    """The staged file could not be read to be hashed: that file's fault, not the run's."""


class Admission:
    def __init__(self, settings: Settings, profile: dict[str, Any], life: Lifecycle, held: set[str],
                 on_held: Callable[[str], None]) -> None:
        self.settings = settings
        self.on_held = on_held  # writes the report and status.json
        self.profile = profile
        self.life = life
        self.held = held
        # What CONVERT can take on this run: the converters whose versions are in the job profile (check.py
        # puts them there only when they run), so a job converts only under a key that names its converter.
        versions = profile.get("tool_versions") or {}
        self.office = "soffice" in versions
        self.email = "weasyprint" in versions

    def known(self, job_key: str) -> bool:
        return job_key in self.life.jobs or job_key in self.held or self.life.index.is_done(job_key)

    def take_in(self, staged: StagedFile) -> None:
        """Hash the staged file and either start its job or hold it as a duplicate. A name that is not
        valid UTF-8 is recorded under its readable form, its bytes beside it (``relpathBytes``)."""
        try:
            file_hash = sha256_file(staged.path)
        except NotRegularFile:  # swapped for a link or a FIFO in the staging folder: not ours any more
            log.warning("not taken: %s was swapped for a link or a special file in the staging folder (%s); "
                        "left alone", staged.relpath, staged.path)
            unstage(staged)
            return
        except (OSError, ValueError) as exc:
            raise UnreadableFile(f"{type(exc).__name__}: {exc}") from exc
        profile_hash, key = make_job_key(file_hash, self.profile)
        resumed = self.life.jobs.get(key)
        if resumed is not None and self._own_intake(resumed, staged):
            self._finish_move(resumed, staged)
            return
        relpath, raw = readable_name(staged.relpath), name_bytes(staged.relpath)
        if self.known(key):
            arrival = hold_duplicate(staged.path, relpath=relpath, job_key=key, hold_dir=self.settings.hold_dir,
                                     source_bytes=raw, announce=wanted(self.settings, HELD))
            unstage(staged)
            announce_held(self.settings, key, arrival)
            update_metrics(self.life.metrics, "duplicates_detected")
            self.on_held(key)
            log.info("duplicate held: %s", relpath, extra=job_context(key))
            return
        job_dir = folder_for(self.settings.work_dir, key, STATE_FILE)
        record = new_state_record(job_key=key, run_id=uuid.uuid4().hex, file_hash=file_hash,
                                  profile_hash=profile_hash, source_name=PurePosixPath(relpath).name,
                                  source_relpath=relpath, size=staged.size)
        if raw:
            record["source"]["relpathBytes"] = raw
        record["stagedAs"] = self._staged_as(staged)  # which staged file this job was made for
        convert = self._convert_kind(staged)
        if convert:
            record.update(convert=convert, convertOffice=self.office)
            record["attempts"] = {"CONVERT": 0, **record["attempts"]}
        write_new_state(job_dir, record)  # the intent first: a crash now leaves a resumable job
        target = job_dir / record["input"]
        move_replacing(staged.path, target.parent, target.name)
        unstage(staged)
        self.life.track(Job(key, job_dir, JobState.DISCOVERED, attempts=dict(record["attempts"]), convert=convert))
        log.info("new job for %s", relpath, extra=job_context(key))

    def _convert_kind(self, staged: StagedFile) -> str | None:
        """"office" or "email" when the file is one and this run converts it (told by its content); else None,
        and PREP takes it (or refuses it, saying what would take it)."""
        if not (self.office or self.email):
            return None
        try:
            found = detect(staged.path)
        except OSError:
            return None  # PREP reads it again and says what is wrong with it
        if found is None:
            return None
        if found.kind == "office" and self.office:
            return "office"
        if found.kind == "email" and self.email:
            return "email"
        return None

    def _staged_as(self, staged: StagedFile) -> str:
        # The staged name carries a random token: another drop of the same file never has it. Readable, as
        # state.json holds only valid Unicode: the token keeps it apart from any other staged file.
        return readable_name(staged.path.relative_to(self.settings.in_dir).as_posix())

    def _own_intake(self, job: Job, staged: StagedFile) -> bool:
        """The staged file is the one this job was created for: a crash cut its move into input/ short."""
        if job.state is not JobState.DISCOVERED:
            return False
        try:
            return read_state(job.dir).get("stagedAs") == self._staged_as(staged)
        except (OSError, ValueError):
            return False

    def _finish_move(self, job: Job, staged: StagedFile) -> None:
        target = job.dir / read_state(job.dir)["input"]
        if target.is_file():
            # The move had copied it across volumes and not yet deleted the source: same bytes, one too many.
            staged.path.unlink()
        else:
            move_replacing(staged.path, target.parent, target.name)
        unstage(staged)
        log.info("finished taking in %s after a restart", readable_name(staged.relpath), extra=job_context(job.key))
