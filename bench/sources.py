"""The files a sweep feeds ocrpipe: chosen from a folder or a corpus's manifest and made unique, or generated blank."""

from __future__ import annotations

import csv
import hashlib
import itertools
import shutil
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypeVar

MAX_SOURCE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_BYTES = 512 * 1024
SKIPPED_SCANS = {"2400dpi.pdf", "hugemono.pdf"}
CORPUS_ARCHIVES = ("archives/scans_flat.zip", "archives/scans_nested.zip")  # scans_mixed.7z: too large
PDF_MAGIC, PNG_MAGIC = b"%PDF-", b"\x89PNG\r\n\x1a\n"
# The corpus' upright real scans, 18 pages in all: clean prints, a brochure, a book page with an illustration,
# bilevel scans, four degraded DIBCO prints, a 1555 page in Fraktur (read as English, it reads poorly) and
# a three-page TIFF. The cost of ROTATE_PAGES=auto is measured on pages that need no turn.
UPRIGHT_SCANS = ("ocrmypdf/linn.pdf", "ocrmypdf/skew.pdf", "ocrmypdf/c02-22.pdf", "ocrmypdf/3small.pdf",
                 "ocrmypdf/ccitt.pdf", "ocrmypdf/jbig2.pdf", "ocrmypdf/epson.pdf", "derived/dibco11_pr1-4.pdf",
                 "derived/leptonica_1555_003.pdf", "derived/paperless_multipage.pdf", "ocrmypdf/francais.pdf")
T = TypeVar("T")


class BenchError(Exception):
    """A problem with the bench's inputs or options: one clear line, exit code 2."""


@dataclass(frozen=True)
class InputFile:
    path: Path
    source: str  # where it came from (corpus-relative name, or "generated")
    copy: int  # 0 for the original bytes, n for the n-th unique copy


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----- choosing the inputs ------------------------------------------------------------------------


def is_corpus(folder: Path) -> bool:
    """A folder with a MANIFEST.tsv (like ``shared/corpus``): its scans are chosen by the manifest."""
    return (folder / "MANIFEST.tsv").is_file()


def read_manifest(corpus: Path) -> list[dict[str, str]]:
    manifest = corpus / "MANIFEST.tsv"
    if not manifest.is_file():
        raise BenchError(f"no corpus manifest at {manifest}")
    with open(manifest, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _is_default_scan(row: dict[str, str], size: int) -> str | None:
    """The group ('pdf' or 'image') of a manifest row the default set takes, else None."""
    name = row["file"]
    if row.get("kind") != "scan" or Path(name).name in SKIPPED_SCANS or size > MAX_SOURCE_BYTES:
        return None
    suffix = Path(name).suffix.lower()
    if suffix == ".pdf" and row.get("pages", "").isdigit() and 1 <= int(row["pages"]) <= 6:
        return "pdf"
    if suffix in (".tif", ".tiff", ".png", ".jpg", ".jpeg") and size <= MAX_IMAGE_BYTES:
        return "image"
    return None


def interleave(groups: Sequence[Sequence[T]]) -> list[T]:
    """Round-robin over the groups, so any prefix mixes PDFs, images and archives."""
    merged = itertools.chain.from_iterable(itertools.zip_longest(*groups))
    return [item for item in merged if item is not None]


def corpus_inputs(corpus: Path) -> list[tuple[Path, str]]:
    """The default set: small scans (PDFs, then images) and the benign zips, in a fixed order."""
    groups: dict[str, list[str]] = {"pdf": [], "image": []}
    for row in read_manifest(corpus):
        path = corpus / row["file"]
        group = _is_default_scan(row, path.stat().st_size) if path.is_file() else None
        if group:
            groups[group].append(row["file"])
    archives = [name for name in CORPUS_ARCHIVES if (corpus / name).is_file()]
    order = interleave([sorted(groups["pdf"]), sorted(groups["image"]), archives])
    return [(corpus / name, name) for name in order]


def upright_scans(corpus: Path) -> list[tuple[Path, str]]:
    """UPRIGHT_SCANS of a corpus folder, in their order."""
    missing = [name for name in UPRIGHT_SCANS if not (corpus / name).is_file()]
    if missing:
        raise BenchError(f"{corpus} lacks the upright scans {', '.join(missing)}")
    return [(corpus / name, name) for name in UPRIGHT_SCANS]


def folder_inputs(folder: Path) -> list[tuple[Path, str]]:
    """Every non-hidden file under ``folder``, sorted by relative path."""
    if not folder.is_dir():
        raise BenchError(f"--source {folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise BenchError(f"--source {folder} holds no file")
    return [(p, p.relative_to(folder).as_posix()) for p in files]


# ----- unique copies --------------------------------------------------------------------------------


def copy_kind(path: Path) -> str | None:
    """How a unique copy of ``path`` can be made: 'pdf', 'png', 'zip', or None (not copied)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(PDF_MAGIC):
        return "pdf"
    if head.startswith(PNG_MAGIC):
        return "png"
    return "zip" if zipfile.is_zipfile(path) else None


def copy_pdf(src: Path, dst: Path, copy: int) -> None:
    """Same pages, plus an Info key: different bytes, so not a duplicate for ocrpipe."""
    import pikepdf

    with pikepdf.open(src) as pdf:
        pdf.docinfo["/OcrpipeBenchCopy"] = str(copy)
        pdf.save(dst, static_id=True)


def copy_png(src: Path, dst: Path, copy: int) -> None:
    """Same pixels (no re-encoding): a tEXt chunk inserted before IEND."""
    data = src.read_bytes()
    body = b"tEXt" + b"OcrpipeBenchCopy\x00" + str(copy).encode()
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    end = data.rfind(b"IEND") - 4
    if end < len(PNG_MAGIC):
        raise ValueError("no IEND chunk")
    dst.write_bytes(data[:end] + chunk + data[end:])


def copy_zip(src: Path, dst: Path, copy: int) -> None:
    """Same members, a different archive comment."""
    shutil.copyfile(src, dst)
    with zipfile.ZipFile(dst, "a") as archive:
        archive.comment = f"ocrpipe bench copy {copy}".encode()


COPIERS = {"pdf": copy_pdf, "png": copy_png, "zip": copy_zip}


def write_input(src: Path, dst: Path, copy: int) -> bool:
    """The original bytes (copy 0) or a unique copy; False when no copy of this kind can be made."""
    if copy == 0:
        shutil.copyfile(src, dst)
        return True
    kind = copy_kind(src)
    if kind is None:
        return False
    try:
        COPIERS[kind](src, dst, copy)
    except Exception as exc:  # noqa: BLE001 — e.g. an encrypted PDF: that file gets no copies
        print(f"bench: no unique copy of {src.name}: {exc}", file=sys.stderr)
        dst.unlink(missing_ok=True)
        return False
    return True


def materialise_inputs(order: Sequence[tuple[Path, str]], count: int, dest: Path) -> list[InputFile]:
    """``count`` files, cycling through ``order``; every file's bytes differ from all others'."""
    dest.mkdir(parents=True, exist_ok=True)
    made: list[InputFile] = []
    seen: set[str] = set()
    for copy in itertools.count():
        added = 0
        for src, label in order:
            if len(made) == count:
                return made
            dst = dest / f"{len(made):04d}_{src.name}"
            if not write_input(src, dst, copy):
                continue
            digest = sha256_of(dst)
            if digest in seen:  # ocrpipe would hold it as a duplicate, not process it
                dst.unlink()
                continue
            seen.add(digest)
            made.append(InputFile(dst, label, copy))
            added += 1
        if added == 0:
            print(f"bench: only {len(made)} distinct inputs could be made (asked for {count})", file=sys.stderr)
            return made
    return made


def generated_inputs(count: int, dest: Path) -> list[InputFile]:
    """Tiny one-page PDFs with distinct content, for the fake-tool runs."""
    import pikepdf

    dest.mkdir(parents=True, exist_ok=True)
    made = []
    for n in range(count):
        pdf = pikepdf.new()
        pdf.add_blank_page(page_size=(200, 200))
        pdf.pages[0].Contents = pdf.make_stream(f"% ocrpipe bench page {n}\n".encode())
        path = dest / f"{n:05d}_generated.pdf"
        pdf.save(path, compress_streams=False, static_id=True)
        pdf.close()
        made.append(InputFile(path, "generated", 0))
    return made
