"""Per document, ocrpipe's output against ocrmypdf's alone on the same file: bytes, and whether the
page images (filters, size, bits, colour), page geometry or metadata keys differ. Must be none."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pikepdf

from ocrpipe.stages.fidelity import image_changes, page_images


def _looks(path: Path) -> dict[str, Any]:
    with pikepdf.open(path) as pdf:
        return {
            "images": page_images(pdf),
            "geometry": [{key: repr(page.obj.get(key)) for key in ("/MediaBox", "/CropBox", "/UserUnit", "/Rotate")}
                         for page in pdf.pages],
            "metadataKeys": (sorted(pdf.docinfo.keys()), sorted(pdf.open_metadata().keys())),
        }


def compare_document(name: str, ours: Path, alone: Path) -> dict[str, Any]:
    mine, theirs = _looks(ours), _looks(alone)
    images = mine["images"] != theirs["images"]
    return {"document": name, "bytes": ours.stat().st_size, "bytesAlone": alone.stat().st_size,
            "imagesDiffer": images, "imageChange": image_changes(theirs["images"], mine["images"]) if images else None,
            "geometryDiffers": mine["geometry"] != theirs["geometry"],
            "metadataKeysDiffer": mine["metadataKeys"] != theirs["metadataKeys"]}


def output_fidelity(pairs: Sequence[tuple[str, Path | None, Path]]) -> dict[str, Any]:
    """``pairs``: (input name, ocrpipe's output or None, ocrmypdf's alone); outputs that one side
    lacks (a failed job) are counted apart."""
    rows = [compare_document(name, ours, alone) for name, ours, alone in pairs
            if ours is not None and ours.is_file() and alone.is_file()]
    ours_total, alone_total = sum(r["bytes"] for r in rows), sum(r["bytesAlone"] for r in rows)
    return {
        "documents": len(rows), "missing": len(pairs) - len(rows),
        "imageEncodingsDiffer": sum(r["imagesDiffer"] for r in rows),
        "geometryDiffers": sum(r["geometryDiffers"] for r in rows),
        "metadataKeysDiffer": sum(r["metadataKeysDiffer"] for r in rows),
        "bytes": ours_total, "bytesAlone": alone_total,
        "bytesVsAlone": round(ours_total / alone_total, 4) if alone_total else None,
        "perDocument": rows,
    }
