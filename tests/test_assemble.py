"""Sniffing by content and assembling pages into raw.pdf, images of every awkward kind included."""

from __future__ import annotations

from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from conftest import make_pdf
from ocrpipe.errors import PermanentError
from ocrpipe.stages.assemble import assemble, natural_key
from ocrpipe.stages.sniff import Kind, sniff


def page_size_inches(pdf_path: Path, index: int = 0) -> tuple[float, float]:
    with pikepdf.open(pdf_path) as pdf:
        box = [float(v) for v in pdf.pages[index].mediabox]
        return (box[2] - box[0]) / 72, (box[3] - box[1]) / 72


def test_natural_order() -> None:
    names = ["page10.tif", "page2.tif", "Page1.tif", "page2b.tif"]
    assert sorted(names, key=natural_key) == ["Page1.tif", "page2.tif", "page2b.tif", "page10.tif"]


def test_sniff_ignores_the_extension(tmp_path: Path) -> None:
    (tmp_path / "scan.jpg").write_bytes(make_pdf())
    Image.new("L", (10, 10)).save(tmp_path / "scan.pdf", format="PNG")
    (tmp_path / "notes.pdf").write_text("hello")
    assert sniff(tmp_path / "scan.jpg") is Kind.PDF
    assert sniff(tmp_path / "scan.pdf") is Kind.IMAGE
    assert sniff(tmp_path / "notes.pdf") is None


@pytest.mark.parametrize(("mode", "fmt", "dpi"), [
    ("RGBA", "PNG", None), ("LA", "PNG", (150, 150)), ("I;16", "PNG", None), ("CMYK", "JPEG", (200, 200)),
    ("P", "GIF", None), ("1", "TIFF", (300, 300)), ("RGB", "BMP", (200, 200)), ("RGB", "WEBP", None),
])
def test_awkward_images_become_one_page_at_their_dpi(tmp_path: Path, mode: str, fmt: str, dpi) -> None:
    source = tmp_path / f"img.{fmt.lower()}"
    image = Image.new(mode, (600, 300))
    image.save(source, format=fmt, **({"dpi": dpi} if dpi else {}))
    assert assemble([source], tmp_path / "raw.pdf", default_dpi=300) == 1
    width, height = page_size_inches(tmp_path / "raw.pdf")
    expected = 600 / (dpi[0] if dpi else 300)
    assert width == pytest.approx(expected, rel=0.02) and height == pytest.approx(expected / 2, rel=0.02)


def test_multi_frame_tiff_gives_one_page_per_frame(tmp_path: Path) -> None:
    frames = [Image.new("L", (100, 100), color) for color in (0, 128, 255)]
    frames[0].save(tmp_path / "multi.tif", save_all=True, append_images=frames[1:])
    assert assemble([tmp_path / "multi.tif"], tmp_path / "raw.pdf", default_dpi=300) == 3


def test_pdfs_and_images_are_merged_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(make_pdf(2))
    Image.new("RGB", (300, 300)).save(tmp_path / "b.png")
    assert assemble([tmp_path / "a.pdf", tmp_path / "b.png"], tmp_path / "raw.pdf", default_dpi=300) == 3


def test_owner_password_pdf_is_saved_decrypted(tmp_path: Path) -> None:
    with pikepdf.open(__import__("io").BytesIO(make_pdf())) as pdf:
        pdf.save(tmp_path / "locked.pdf", encryption=pikepdf.Encryption(owner="secret", user=""))
    assert assemble([tmp_path / "locked.pdf"], tmp_path / "raw.pdf", default_dpi=300) == 1
    with pikepdf.open(tmp_path / "raw.pdf") as pdf:
        assert not pdf.is_encrypted


@pytest.mark.parametrize(("content", "reason"), [
    (b"%PDF-1.4\n%%EOF\n", "damaged"),
    (b"\x89PNG\r\n\x1a\nnot really", "image"),
])
def test_damaged_input_is_a_permanent_error(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(PermanentError, match=reason):
        assemble([tmp_path / "bad"], tmp_path / "raw.pdf", default_dpi=300)


def test_user_password_pdf_is_a_permanent_error(tmp_path: Path) -> None:
    with pikepdf.open(__import__("io").BytesIO(make_pdf())) as pdf:
        pdf.save(tmp_path / "locked.pdf", encryption=pikepdf.Encryption(owner="a", user="b"))
    with pytest.raises(PermanentError, match="encrypted and needs a password"):
        assemble([tmp_path / "locked.pdf"], tmp_path / "raw.pdf", default_dpi=300)


def test_zip_holding_a_pdf_is_an_archive(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "scans.pdf", "w") as zf:  # stored, so "%PDF-" sits in the first KiB
        zf.writestr("a.pdf", make_pdf())
    assert sniff(tmp_path / "scans.pdf") is Kind.ARCHIVE
    (tmp_path / "junk.pdf").write_bytes(b"\r\n\x00garbage " + make_pdf())
    assert sniff(tmp_path / "junk.pdf") is Kind.PDF


def test_an_image_with_its_own_dpi_is_embedded_as_it_is(tmp_path: Path) -> None:
    """img2pdf embeds a JPEG without decoding it (lossless, and little memory for big pages); Pillow is only
    the fallback for what img2pdf refuses."""
    source = tmp_path / "photo.jpg"
    Image.new("L", (600, 300), 200).save(source, format="JPEG", dpi=(200, 200))
    assert assemble([source], tmp_path / "raw.pdf", default_dpi=300) == 1
    with pikepdf.open(tmp_path / "raw.pdf") as pdf:
        (_, xobject), = dict(pdf.pages[0].get_images()).items()
        assert xobject.Filter == pikepdf.Name.DCTDecode
        assert xobject.read_raw_bytes() == source.read_bytes()
