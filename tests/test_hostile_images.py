"""Images that explode or need converting: declared sizes over the limit, Pillow's bomb error, alpha, HEIC."""

from __future__ import annotations

from pathlib import Path

import pikepdf
import pytest
from PIL import Image

import inputs
from ocrpipe.errors import Code, PermanentError
from ocrpipe.stages import heic
from ocrpipe.stages.assemble import assemble
from ocrpipe.stages.sniff import Kind, sniff


def refusal(path: Path, **limits: float) -> PermanentError:
    with pytest.raises(PermanentError) as info:
        assemble([path], path.with_name("raw.pdf"), default_dpi=300, **limits)
    return info.value


@pytest.mark.parametrize("make", [inputs.lying_png, inputs.lying_jpeg])
def test_an_image_declaring_too_many_pixels_is_refused_before_it_is_decoded(tmp_path: Path, make) -> None:
    bomb = make(tmp_path / "bomb.img", 20_000, 20_000)  # 400 megapixels; a few hundred bytes on disk
    error = refusal(bomb)
    assert error.code is Code.IMAGE_TOO_LARGE and not error.transient
    assert "image too large (20000 × 20000, 400 megapixels; the limit is MAX_IMAGE_MPIXELS=300)" in error.reason
    assert not (tmp_path / "raw.pdf").exists()


def test_every_frame_of_a_tiff_is_measured(tmp_path: Path) -> None:
    small, big = Image.new("1", (500, 500), 1), Image.new("1", (1500, 1000), 1)
    path = tmp_path / "frames.tif"
    small.save(path, save_all=True, append_images=[big], compression="group4", dpi=(300, 300))
    assert assemble([path], tmp_path / "ok.pdf", default_dpi=300, max_image_mpixels=2) == 2
    error = refusal(path, max_image_mpixels=1)
    assert error.code is Code.IMAGE_TOO_LARGE and "(1500 × 1000, 2 megapixels" in error.reason


def test_pillows_own_bomb_error_never_escapes(tmp_path: Path) -> None:
    """210 megapixels: over Pillow's built-in limit (2 × 89 M, an exception), under ours (300 M). Its data is
    missing, so it fails as damaged; what matters is that it fails as a refusal, not a crash."""
    path = inputs.lying_png(tmp_path / "big.png", 15_000, 14_000)
    try:
        assemble([path], tmp_path / "raw.pdf", default_dpi=300)
    except PermanentError as error:
        assert error.code is Code.IMAGE_DAMAGED
    with pytest.raises(PermanentError) as info:
        assemble([path], tmp_path / "raw.pdf", default_dpi=300, max_image_mpixels=200)
    assert info.value.code is Code.IMAGE_TOO_LARGE
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's limit is given back


def test_transparency_is_flattened_onto_white(tmp_path: Path) -> None:
    """img2pdf would keep the alpha channel as a soft mask; viewers and Tesseract then see black on black."""
    path = inputs.alpha_png(tmp_path / "alpha.png", inputs.FOX)
    assert assemble([path], tmp_path / "raw.pdf", default_dpi=300) == 1
    with pikepdf.open(tmp_path / "raw.pdf") as pdf:
        (name, xobject), = dict(pdf.pages[0].get_images()).items()
        assert "/SMask" not in xobject
        image = pikepdf.PdfImage(xobject).as_pil_image()
    assert image.mode in ("RGB", "L") and image.getpixel((5, 5)) in (255, (255, 255, 255))


def test_a_heic_photo_becomes_an_upright_page(tmp_path: Path) -> None:
    photo = inputs.heic_photo(tmp_path / "IMG_0001.HEIC", inputs.FOX, orientation=6)
    assert sniff(photo) is Kind.IMAGE
    assert assemble([photo], tmp_path / "raw.pdf", default_dpi=300) == 1
    with pikepdf.open(tmp_path / "raw.pdf") as pdf:
        box = [float(v) for v in pdf.pages[0].mediabox]
    width, height = box[2] - box[0], box[3] - box[1]
    assert height > width  # the page was portrait; the phone was held sideways


def test_heic_without_pillow_heif_gets_a_clear_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = inputs.heic_photo(tmp_path / "IMG_0002.HEIC", inputs.FOX)
    monkeypatch.setattr(heic, "heif_available", lambda: False)
    error = refusal(photo)
    assert error.code is Code.IMAGE_UNSUPPORTED
    assert "HEIC/HEIF photos are unsupported on this machine: install pillow-heif" in error.reason
