"""One Office document to PDF through LibreOffice, for the CONVERT stage (a dropped document, or an e-mail's
attachment), and the time limit the stage's tool calls share."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ocrpipe.config import Settings
from ocrpipe.errors import Code, PermanentError, ToolTimeout
from ocrpipe.folders.fsutil import remove_tree
from ocrpipe.folders.layout import TMP_DIR
from ocrpipe.stages.common import tool_env
from ocrpipe.stages.doctype import DocType
from ocrpipe.tools.soffice import PROFILE_DIR, convert_to_pdf

CONVERT_DIR = "convert"  # the parts, named by number only: a name from a message never becomes a path
CONVERT_LOG = "convert.log"


class Deadline:
    """The stage's time limit shared by its tool calls (an e-mail may convert several attachments)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def left(self, what: str) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise ToolTimeout(f"CONVERT ran longer than its limit of {self.seconds:g}s before {what}")
        return left


def office_pdf(settings: Settings, job_dir: Path, source: Path, found: DocType, dest: Path, *,
               deadline: Deadline, shown: str) -> Path:
    """One Office document to ``dest`` through LibreOffice, with the job's own profile and no network."""
    if found.encrypted:
        raise PermanentError(f"{shown} is password-protected; open it, remove the password (or print it to "
                             "PDF) and drop that", code=Code.OFFICE_PASSWORD)
    tmp = job_dir / TMP_DIR
    work = tmp / "lo" / dest.stem
    remove_tree(work)
    work.mkdir(parents=True)
    # LibreOffice is given the document under the extension its content says, whatever its name was.
    given = work / f"document.{found.ext}"
    try:
        os.link(source, given)
    except OSError:
        shutil.copyfile(source, given)
    made = convert_to_pdf(settings.soffice, given, work / "out", profile_dir=tmp / PROFILE_DIR,
                          timeout=deadline.left(f"converting {shown}"), env=tool_env(settings, job_dir),
                          log_path=job_dir / CONVERT_LOG)
    tidy_pdf(made)
    os.replace(made, dest)
    return dest


def tidy_pdf(path: Path) -> None:
    """Take out what keeps ocrmypdf's own PDF/A step (pikepdf) from approving a converter's PDF, which then
    goes through Ghostscript: it re-encodes the images and here broke ligatures in the text ("a琀琀achment").
    LibreOffice writes a /DocChecksum in the trailer and an /OpenAction; WeasyPrint gives every page empty
    /Pattern and /Shading resources. None of them is content."""
    import pikepdf  # in the worker only

    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        changed = "/DocChecksum" in pdf.trailer or "/OpenAction" in pdf.Root
        if "/DocChecksum" in pdf.trailer:
            del pdf.trailer["/DocChecksum"]
        if "/OpenAction" in pdf.Root:  # LibreOffice's "open at page 1"; an action of a document's own goes too
            del pdf.Root["/OpenAction"]
        for page in pdf.pages:
            resources = page.obj.get("/Resources")
            if not isinstance(resources, pikepdf.Dictionary):
                continue
            for key in ("/Pattern", "/Shading"):
                value = resources.get(key)
                if isinstance(value, pikepdf.Dictionary) and len(value.keys()) == 0:
                    del resources[key]
                    changed = True
        if changed:
            pdf.save(path)
