"""A stand-in for 7z and ocrmypdf, launched through the tool command like the real ones.

Usage: ``python fake_tool.py 7z|ocrmypdf|tesseract|gs|soffice ARGS...``. It does real minimal work (unzip
with zipfile, copy the PDF), logs every call to ``$FAKE_TOOL_LOG`` (JSON lines: start and end),
and takes its scenario from the input: ``FAKE-SCENARIO:<name>`` inside the PDF's bytes or the
archive's file name. Scenarios: ``hang`` (starts a child, then sleeps forever), ``exit-N``,
``transient-K`` (exit 7 on the first K calls for this job, then succeed), ``enospc-K`` (the
same, with "No space left on device"), ``nooutput``,
``killparent`` (SIGKILL its own parent, the pool worker, on the first call), ``says-<Name>`` (exit 15
after writing ``<Name>: …`` to stderr, as the real tool names a cause: ``says-DecompressionBombError``).
soffice (LibreOffice) writes a small PDF into --outdir; ``unloadable`` says "source file could not be
loaded" and exits 0 without one, as LibreOffice does; ``crash-once`` kills itself on the job's first call.
``$FAKE_SOFFICE_BARRIER=N``: each call waits until N calls have started (exit 1 after 30 s): N at once.
``$FAKE_OCR_WAIT_FOR=<path>``: ocrmypdf runs until that file exists (at most 120 s), so a test holds a
job in OCR for exactly as long as it needs to look at it.
Run on a batch (its input in a ``.batch-*`` folder), ``reencode-batch`` marks every Flate image of the
output as JPEG, ``ghostscript-batch`` logs that Ghostscript made the PDF/A, as ocrmypdf's fallback does,
and ``unoptimised-batch`` that ocrmypdf's optimizer kept none of its work.
Run on a page range of a split document (its input named ``range-N.pdf``), it adds a text layer to
every page as ocrmypdf does (a Form XObject named ``/OCR-…`` showing text), so the merge's checks run;
``fail-range`` then exits 7 on every range call (a whole run succeeds), ``flaky-range`` on the first
call of each range only.
With ``--sidecar FILE`` (OCR_LANG=auto) it writes each page's text there, as ocrmypdf does (pages
separated by form feeds), and a text layer into the output: a page whose content says ``FAKE-LANG:fra``
reads as a French paragraph, with its accents when ``-l`` names fra, without them (as an English
reading loses them) when not; ``FAKE-CHARS:N`` cuts it to N characters. ``tesseract … --psm 0``
(script detection) answers ``$FAKE_OSD_SCRIPT`` (default Latin).
With ``$FAKE_OCR_READS=1``, a page whose content carries the comment ``% FAKE-TEXT: <words>`` (cp1252)
is "read": the output gets a text layer showing those words, as ocrmypdf's shows what Tesseract read in
the page's image; and, with ``$OCRPIPE_READING_DIR`` set (ocrpipe's plugin reports there), a page whose
content says ``FAKE-CONFIDENCE:<n>`` is reported as read at confidence n (100 characters), as the plugin
reports a page Tesseract read; other pages get no report, as pages that kept their own text.
"""

from __future__ import annotations

import os
import sys
import time

# Few imports, and late ones (json, re, pathlib cost more to import than the fake's own work):
# an "instant" tool must cost next to nothing to start.
CALL_ID = os.urandom(16).hex()


def log(tool: str, event: str, **fields: object) -> None:
    path = os.environ.get("FAKE_TOOL_LOG")
    if not path:
        return
    import json

    line = json.dumps({"id": CALL_ID, "tool": tool, "event": event, "t": time.time(), "pid": os.getpid(), **fields})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def scenarios_of(path: str) -> list[str]:
    """Every scenario named in the input (a batch carries each document's), or $FAKE_FORCE_SCENARIO."""
    if os.environ.get("FAKE_FORCE_SCENARIO"):
        return [os.environ["FAKE_FORCE_SCENARIO"]]
    data = os.path.basename(path).encode() + b" " + read(path)
    if b"FAKE-SCENARIO:" not in data:
        return ["ok"]
    import re

    return [m.decode() for m in re.findall(rb"FAKE-SCENARIO:([\w-]+)", data)]


def hang() -> None:
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], stdin=subprocess.DEVNULL)
    log("child", "start", child_pid=child.pid)
    time.sleep(3600)


def count_call(job_dir: str, name: str = "fake-calls") -> int:
    counter = os.path.join(job_dir, name)
    n = int(read(counter)) + 1 if os.path.exists(counter) else 1
    with open(counter, "w") as handle:
        handle.write(str(n))
    return n


def apply_scenario(tool: str, scenario: str, job_dir: str) -> None:
    """Fail or misbehave as the scenario says; returns if the tool should do its real work."""
    import re

    if scenario == "hang":
        hang()
    if scenario == "killparent" and count_call(job_dir) == 1:
        import signal

        os.kill(os.getppid(), signal.SIGKILL)  # the pool worker dies mid-job, once
        time.sleep(5)
        sys.exit(15)
    if m := re.fullmatch(r"says-(\w+)", scenario):
        print(f"Traceback (most recent call last):\n{m.group(1)}: named by the fake {tool}", file=sys.stderr)
        sys.exit(15)
    if m := re.fullmatch(r"exit-(\d+)", scenario):
        print(f"fake {tool}: failing with exit {m.group(1)} as asked", file=sys.stderr)
        sys.exit(int(m.group(1)))
    if m := re.fullmatch(r"enospc-(\d+)", scenario):
        if count_call(job_dir) <= int(m.group(1)):
            print("OSError: [Errno 28] No space left on device", file=sys.stderr)
            sys.exit(15)
    if m := re.fullmatch(r"transient-(\d+)", scenario):
        if count_call(job_dir) <= int(m.group(1)):
            print(f"fake {tool}: transient failure", file=sys.stderr)
            sys.exit(7 if tool == "ocrmypdf" else 2)


def fake_7z(args: list[str]) -> int:
    if not args:
        print("\n7-Zip (fake) 99.01 : Copyright (c) Nobody")
        return 0
    command, archive = args[0], args[-1]
    log("7z", "start", command=command, archive=archive)  # its job folder tells the calls apart
    time.sleep(float(os.environ.get("FAKE_7Z_DELAY", "0")))
    for scenario in scenarios_of(archive):
        apply_scenario("7z", scenario, os.path.dirname(os.path.dirname(archive)))
    import zipfile

    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        print(f"ERROR: {archive} : Can not open the file as archive", file=sys.stderr)
        return 2
    with zf:
        if command == "l":
            print("Listing archive: x\n--\nPath = x\nType = zip\n\n----------")
            for info in zf.infolist():
                print(f"Path = {info.filename.rstrip('/')}\nFolder = {'+' if info.is_dir() else '-'}\n"
                      f"Size = {info.file_size}\nEncrypted = {'+' if info.flag_bits & 1 else '-'}\n")
        elif command == "x":
            dest = next(a[2:] for a in args if a.startswith("-o"))
            zf.extractall(dest)
    log("7z", "end", command=command, archive=archive)  # its job folder tells the calls apart
    return 0


def fake_ocrmypdf(args: list[str]) -> int:
    if "--version" in args:
        print("99.1.0")
        return 0
    source, output = args[-2], args[-1]
    log("ocrmypdf", "start", input=source, jobs=args[args.index("--jobs") + 1] if "--jobs" in args else None,
        lang=args[args.index("-l") + 1] if "-l" in args else None)
    time.sleep(float(os.environ.get("FAKE_OCR_DELAY", "0")))
    gate, deadline = os.environ.get("FAKE_OCR_WAIT_FOR"), time.time() + 120
    while gate and not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.05)
    scenarios = scenarios_of(source)
    for scenario in scenarios:
        apply_scenario("ocrmypdf", scenario, os.path.dirname(source))
    a_range = os.path.basename(source).startswith("range-")
    if a_range and ("fail-range" in scenarios or (
            "flaky-range" in scenarios and count_call(os.path.dirname(source), os.path.basename(source) + ".calls") == 1)):
        print("fake ocrmypdf: this page range fails, as asked", file=sys.stderr)
        return 7
    if "--sidecar" in args and "nooutput" not in scenarios:
        lang = args[args.index("-l") + 1] if "-l" in args else "eng"
        write_sidecar(source, args[args.index("--sidecar") + 1], lang.split("+"))
        add_text_layer(source, output)
    elif a_range and "nooutput" not in scenarios:
        add_text_layer(source, output)
    elif "nooutput" not in scenarios and os.environ.get("FAKE_OCR_READS"):
        add_text_layer(source, output, only_read=True)
    elif "nooutput" not in scenarios:
        data = read(source)
        in_batch = os.path.basename(os.path.dirname(source)).startswith(".batch-")
        if in_batch and "reencode-batch" in scenarios:
            data = data.replace(b"/FlateDecode", b"/DCTDecode  ")  # same length: offsets stay right
        if in_batch and "ghostscript-batch" in scenarios:
            print("Auto mode: produced PDF/A via Ghostscript", file=sys.stderr)
        if in_batch and "unoptimised-batch" in scenarios:
            print("Image optimization did not improve the file - optimizations will not be used", file=sys.stderr)
        with open(output, "wb") as handle:
            handle.write(data)
    if os.environ.get("OCRPIPE_READING_DIR") and os.environ.get("FAKE_OCR_READS"):
        report_readings(source, os.environ["OCRPIPE_READING_DIR"])
    log("ocrmypdf", "end", input=source)
    return 0


PARAGRAPHS = {
    "eng": "Dear Sir or Madam, thank you for your letter of last month. The meeting will take place at the town "
           "hall after lunch. Please find attached the invoice for the renovation of the office. We hope that this "
           "decision will suit you and your family. Yours faithfully, the customer service department.",
    "fra": "Madame, nous avons bien reçu votre lettre du mois dernier. Le château près de la rivière sera fermé "
           "pendant l'été. Les élèves ont déjà préparé une fête très réussie à l'école. Nous espérons que cette "
           "décision vous conviendra. Veuillez agréer nos salutations les plus distinguées.",
    "deu": "Sehr geehrte Damen und Herren, vielen Dank für Ihre Anfrage. Die Straße vor dem Gebäude wird nächste "
           "Woche gesperrt. Wir möchten Sie herzlich zur Eröffnung des Geschäfts einladen. Die Gebühren müssen "
           "bis Ende März überwiesen werden. Mit freundlichen Grüßen aus München und Köln.",
}


def write_sidecar(source: str, sidecar: str, langs: list[str]) -> None:
    import re
    import site
    import unicodedata

    site.main()
    import pikepdf

    texts = []
    with pikepdf.open(source) as pdf:
        for page in pdf.pages:
            streams = page.obj.get("/Contents", pikepdf.Array())
            content = b"".join(s.read_bytes() for s in (streams if isinstance(streams, pikepdf.Array) else [streams]))
            lang, chars = re.search(rb"FAKE-LANG:(\w+)", content), re.search(rb"FAKE-CHARS:(\d+)", content)
            text = PARAGRAPHS.get(lang.group(1).decode(), "") if lang else ""
            if lang and lang.group(1).decode() not in langs:  # read in another language: accents lost
                text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
            texts.append(text[:int(chars.group(1))] if chars else text)
    with open(sidecar, "w", encoding="utf-8") as handle:
        handle.write("\n\f".join(texts) + "\n\f")



def report_readings(source: str, folder: str) -> None:
    """What the plugin writes for each page Tesseract read: here, what the page's content says."""
    import json
    import re
    import site

    site.main()
    import pikepdf

    with pikepdf.open(source) as pdf:
        for number, page in enumerate(pdf.pages, start=1):
            page.contents_coalesce()
            found = re.search(rb"FAKE-CONFIDENCE:(\d+)", page.obj.Contents.read_bytes())
            if found:
                with open(os.path.join(folder, f"reading-{number:06d}.json"), "w") as handle:
                    json.dump({"page": number, "chars": 100, "confidence": float(found.group(1))}, handle)


def add_text_layer(source: str, output: str, *, only_read: bool = False) -> None:
    """Every page of ``source`` with a text layer as ocrmypdf adds one: a Form XObject it draws, showing
    the page's ``FAKE-TEXT`` words in Helvetica (else a placeholder); ``only_read``: pages without them
    are left as they are."""
    import re
    import site

    site.main()  # the fake starts without site-packages (python -S), for speed; pikepdf lives there
    import pikepdf

    with pikepdf.open(source) as pdf:
        font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                    BaseFont=pikepdf.Name.Helvetica,
                                                    Encoding=pikepdf.Name.WinAnsiEncoding))
        for number, page in enumerate(pdf.pages, start=1):
            page.contents_coalesce()
            said = re.search(rb"% FAKE-TEXT: ([^\r\n]*)", page.obj.Contents.read_bytes())
            if said is None and only_read:
                continue
            words = said.group(1) if said else b"fake OCR text %d" % number
            layer = pdf.make_stream(b"BT /F1 10 Tf 3 Tr 10 100 Td (" + words.replace(b"(", b"").replace(b")", b"")
                                    + b") Tj ET", Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Form,
                                    BBox=[0, 0, 200, 200], Resources=pikepdf.Dictionary(
                                        Font=pikepdf.Dictionary(F1=font)))
            resources = page.obj.get("/Resources", pikepdf.Dictionary())
            xobjects = resources.get("/XObject", pikepdf.Dictionary())
            xobjects["/OCR-fake"] = layer
            resources["/XObject"] = xobjects
            page.obj["/Resources"] = resources
            page.contents_add(pdf.make_stream(b"q /OCR-fake Do Q"), prepend=False)
        pdf.save(output)


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF written by hand (the fake runs without site-packages), showing ``text``."""
    stream = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def soffice_starts() -> int:
    with open(os.environ["FAKE_TOOL_LOG"], "rb") as handle:
        return sum(1 for line in handle if b'"tool": "soffice", "event": "start"' in line)


def fake_soffice(args: list[str]) -> int:
    """LibreOffice's ``--convert-to pdf``: a PDF naming the input's first words, in --outdir. Logs the
    profile it was given and the proxy it runs behind, so tests see both."""
    if "--version" in args:
        print("LibreOffice 99.2.0.1 fake")
        return 0
    source, outdir = args[-1], args[args.index("--outdir") + 1]
    profile = next((a.split("=", 1)[1] for a in args if a.startswith("-env:UserInstallation=")), None)
    log("soffice", "start", input=source, profile=profile, http_proxy=os.environ.get("http_proxy"),
        no_proxy=os.environ.get("no_proxy"))
    barrier = int(os.environ.get("FAKE_SOFFICE_BARRIER", "0"))
    deadline = time.time() + 30
    while barrier and soffice_starts() < barrier:
        if time.time() > deadline:
            print(f"fake soffice: never {barrier} at once", file=sys.stderr)
            return 1
        time.sleep(0.05)
    job_dir = source.rsplit(os.sep + "tmp" + os.sep, 1)[0]
    for scenario in scenarios_of(source):
        if scenario == "unloadable":
            print("Error: source file could not be loaded", file=sys.stderr)
            return 0  # as LibreOffice does: exit 0, no PDF
        if scenario == "crash-once" and count_call(job_dir, "soffice-calls") == 1:
            os.kill(os.getpid(), 9)
        apply_scenario("soffice", scenario, job_dir)
    words = read(source).decode("latin-1")[:200]
    import re

    text = " ".join(re.findall(r"[A-Za-z]{3,}", words)[-6:])
    stem = os.path.splitext(os.path.basename(source))[0]
    with open(os.path.join(outdir, stem + ".pdf"), "wb") as handle:
        handle.write(tiny_pdf(text))
    log("soffice", "end", input=source)
    return 0


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    if tool == "soffice":
        return fake_soffice(args)
    if tool == "7z":
        return fake_7z(args)
    if tool == "ocrmypdf":
        return fake_ocrmypdf(args)
    if tool == "tesseract" and "--list-langs" in args:
        langs = os.environ.get("FAKE_TESSERACT_LANGS", "eng fra osd").split()
        print(f"List of available languages ({len(langs)}):", *langs, sep="\n")
        return 0
    if tool == "tesseract" and "--psm" in args:
        print(f"Orientation in degrees: 0\nScript: {os.environ.get('FAKE_OSD_SCRIPT', 'Latin')}\n"
              "Script confidence: 5.00")
        return 0
    print(f"{tool} 99.0.0")  # tesseract / gs --version
    return 0


if __name__ == "__main__":
    sys.exit(main())
