"""The benchmark's comparison of each output with ocrmypdf's alone: bytes and changed encodings."""

from __future__ import annotations

import sys
from pathlib import Path

import fidelity_inputs as gen

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from output_fidelity import output_fidelity  # noqa: E402


def test_documents_whose_image_encodings_differ_are_counted_and_bytes_compared(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pdf" for name in ("png", "png-alone", "jpx", "rotated", "missing-alone")}
    files["png"].write_bytes(gen.png_page())
    files["png-alone"].write_bytes(gen.png_page())
    files["jpx"].write_bytes(gen.jpx_page())
    files["rotated"].write_bytes(gen.rotated_page())
    report = output_fidelity([("a.png", files["png"], files["png-alone"]),   # the same
                              ("b.png", files["jpx"], files["png-alone"]),   # re-encoded
                              ("c.png", files["rotated"], files["png-alone"]),  # /Rotate lost
                              ("d.png", None, files["png-alone"])])          # ocrpipe failed it
    assert (report["documents"], report["missing"], report["imageEncodingsDiffer"], report["geometryDiffers"]) == (
        3, 1, 1, 2)  # the JPEG 2000 page carries no DPI: img2pdf gives it another page size too
    assert [row["document"] for row in report["perDocument"] if row["imagesDiffer"]] == ["b.png"]
    assert report["perDocument"][1]["imageChange"].endswith("became /JPXDecode 600x300 8-bit /DeviceRGB")
    alone = files["png-alone"].stat().st_size
    assert report["bytesAlone"] == 3 * alone
    assert report["bytesVsAlone"] == round(report["bytes"] / (3 * alone), 4)
