"""The benchmark's generated inputs: a scanner inbox of full pages of prose, and the three-file smoke set."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import inputs  # noqa: E402  (tests/inputs.py: the generator the test suite uses too)
from sources import interleave  # noqa: E402

PDF_PAGES = (1, 2, 3, 4, 1, 2, 3)
ZIP_PAGES = (2, 3, 2, 2, 3, 2, 3)


def smoke_inputs(dest: Path) -> list[tuple[Path, str]]:
    """Three small files: a scanned PDF, a PNG without a DPI, a TIFF."""
    dest.mkdir(parents=True, exist_ok=True)
    made = [inputs.scanned_pdf(dest / "letter.pdf", [inputs.LETTER]),
            inputs.text_page_png(dest / "no-dpi.png", inputs.FOX, dpi=None),
            inputs.text_page_tiff(dest / "goose.tif", inputs.GOOSE)]
    return [(path, f"generated:{path.name}") for path in made]


def generated_scans(dest: Path) -> list[tuple[Path, str]]:
    """The default workload: 21 documents of 42 full Letter pages of prose at 300 DPI, mixed like a scanner
    inbox: 7 PDFs (1–4 pages), 7 images (PNG without DPI, TIFF, JPEG, CMYK JPEG, CCITT G4, transparent PNG,
    a 3-frame TIFF) and 7 zips of 2–3 pages; every third page grey, speckled and skewed."""
    dest.mkdir(parents=True, exist_ok=True)
    seeds = itertools.count(1)

    def page() -> Any:
        return inputs.prose_page(next(seeds))

    def image(name: str, **save: Any) -> Path:
        return inputs.save_image(page(), dest / name, **save)

    def bundle(name: str, pages: int, pack: Any) -> Path:
        images = [image(f"{Path(name).stem}-page{n}.png") for n in range(1, pages + 1)]
        pack(dest / name, images)
        for path in images:
            path.unlink()
        return dest / name

    pdfs = [bundle(f"doc{n}.pdf", pages, inputs.image_pdf) for n, pages in enumerate(PDF_PAGES, start=1)]
    frames = [page() for _ in range(3)]
    images = [image("scan-no-dpi.png", dpi=None),
              image("scan.tif", compression="tiff_lzw"),
              inputs.save_image(page().convert("RGB"), dest / "photo.jpg", dpi=None, quality=85),
              inputs.save_image(page().convert("CMYK"), dest / "print.jpg", quality=85),
              inputs.save_image(inputs.bilevel(page()), dest / "fax.tif", compression="group4"),
              inputs.save_image(inputs.transparent(page()), dest / "transparent.png"),
              inputs.save_image(frames[0], dest / "three-frames.tif", save_all=True, append_images=frames[1:],
                                compression="tiff_lzw")]
    archives = [bundle(f"batch{n}.zip", pages, lambda path, members: inputs.zip_of(path, {m.name: m for m in members}))
                for n, pages in enumerate(ZIP_PAGES, start=1)]
    return [(path, f"generated:{path.name}") for path in interleave([pdfs, images, archives])]
