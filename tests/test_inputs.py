"""The generators of tests/inputs.py make what they say: structure a batch would drop, encryption, damage."""

from __future__ import annotations

from pathlib import Path

import pikepdf
import pytest
from PIL import Image

import inputs
from inputs import InputSet
from ocrpipe.stages.batch import batch_would_drop


@pytest.mark.parametrize("structure, dropped", [
    ({"outline": "Chapter 1"}, "bookmarks"),
    ({"form_field": "name"}, "form fields"),
    ({"page_labels": "A-"}, "page labels"),
    ({"link": "https://example.org/"}, "page annotations (links, comments or form widgets)"),
])
def test_structure_is_what_a_batch_would_drop(tmp_path: Path, made_inputs: InputSet,
                                              structure: dict[str, str], dropped: str) -> None:
    plain = made_inputs["fox.pdf"]
    assert batch_would_drop(plain) is None
    assert batch_would_drop(inputs.with_structure(plain, tmp_path / "s.pdf", **structure)) == dropped


def test_encrypted_pdfs_need_their_password_or_none(tmp_path: Path, made_inputs: InputSet) -> None:
    locked = inputs.encrypted(made_inputs["fox.pdf"], tmp_path / "locked.pdf", user="open-sesame")
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(locked)
    with pikepdf.open(locked, password="open-sesame") as pdf:
        assert len(pdf.pages) == 1
    owner_only = inputs.encrypted(made_inputs["fox.pdf"], tmp_path / "owner.pdf", user="")
    with pikepdf.open(owner_only) as pdf:
        assert pdf.is_encrypted and not pdf.allow.print_highres


def test_truncated_pdf_has_lost_its_end(tmp_path: Path, made_inputs: InputSet) -> None:
    whole = made_inputs["fox.pdf"].read_bytes()
    cut = inputs.truncated(made_inputs["fox.pdf"], tmp_path / "cut.pdf").read_bytes()
    assert whole.startswith(cut) and len(cut) == len(whole) // 2
    assert not cut.rstrip().endswith(b"%%EOF")


def test_images_carry_the_dpi_mode_and_frames_asked_for(made_inputs: InputSet) -> None:
    with Image.open(made_inputs["no-dpi.png"]) as image:
        assert "dpi" not in image.info
    with Image.open(made_inputs["fax.tif"]) as image:
        assert (image.mode, image.info["compression"], round(image.info["dpi"][0])) == ("1", "group4", 300)
    with Image.open(made_inputs["cmyk.jpg"]) as image:
        assert image.mode == "CMYK"
    with Image.open(made_inputs["alpha.png"]) as image:
        assert image.mode == "RGBA" and image.getextrema()[3] == (0, 255)
    with Image.open(made_inputs["multi-page.tiff"]) as image:
        assert image.n_frames == 3
