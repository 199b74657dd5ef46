"""A HOOK_COMMAND that copies each finished PDF into another folder (a document system's import folder, say).

    HOOK_COMMAND=python /opt/ocrpipe/copy_output.py /srv/dms/import
    HOOK_EVENTS=job.done

Events may come more than once (after a crash, or a retry): copying again to the same name is harmless.
The output stays in out/: a hook copies, it never moves or deletes ocrpipe's files.
"""

import os
import shutil
import sys
from pathlib import Path

target = Path(sys.argv[1])
output = os.environ.get("OCRPIPE_OUTPUT")
if os.environ.get("OCRPIPE_EVENT") != "job.done" or not output:
    sys.exit(0)  # nothing to copy for this event: it counts as delivered
target.mkdir(parents=True, exist_ok=True)
destination = target / Path(output).name
partial = destination.with_name(destination.name + ".part")
shutil.copyfile(output, partial)
os.replace(partial, destination)  # the importer never sees half a file
