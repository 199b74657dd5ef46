"""Test inputs made on the spot: text pages with known words, images, PDFs, encrypted, damaged and hostile files.

Everything here is built from Pillow's built-in font, img2pdf, pikepdf, zipfile and tarfile, so the tests and
the benchmark need nothing from outside the repository. Each function writes one file and returns its path.
"""

from __future__ import annotations

import io
import random
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import img2pdf
import pikepdf
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DPI = 300
FONT_PX = 56  # about 13 pt at 300 DPI, an ordinary letter's type size: Tesseract reads it without a slip
PAGE_PX = (1275, 1650)  # 4.25 x 5.5 inches at 300 DPI: a quarter of a Letter page, so OCR stays quick
MARGIN_PX = 100
LINE_GAP = 1.6  # line pitch as a multiple of the font size


# ----- text pages ---------------------------------------------------------------------------------


def text_page(lines: Sequence[str], *, size: tuple[int, int] = PAGE_PX, font_px: int = FONT_PX,
              grey: int = 255, noise: float = 0.0, skew: float = 0.0, seed: int = 0) -> Image.Image:
    """A greyscale page with ``lines`` in black; ``grey`` < 255 tints the paper, ``noise`` (0–1) speckles it
    like a scanner, ``skew`` rotates it by that many degrees."""
    font = ImageFont.load_default(size=font_px)
    page = Image.new("L", size, grey)
    draw = ImageDraw.Draw(page)
    y = MARGIN_PX
    for line in lines:
        draw.text((MARGIN_PX, y), line, fill=0, font=font)
        y += int(font_px * LINE_GAP)
    if noise:
        page = _speckle(page, noise, seed)
    if skew:
        page = page.rotate(skew, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=grey)
    return page


def _speckle(page: Image.Image, amount: float, seed: int) -> Image.Image:
    """Salt-and-pepper dots and a slight blur: what a cheap scanner adds."""
    rng = random.Random(seed)
    pixels = page.load()
    width, height = page.size
    for _ in range(int(width * height * amount * 0.01)):
        pixels[rng.randrange(width), rng.randrange(height)] = rng.choice((0, 255))
    return page.filter(ImageFilter.GaussianBlur(0.6))


def save_image(image: Image.Image, path: Path, *, dpi: int | None = DPI, **options: object) -> Path:
    """Save in the format of ``path``'s suffix; ``dpi=None`` leaves the resolution out of the file."""
    if dpi is not None:
        options["dpi"] = (dpi, dpi)
    image.save(path, **options)
    return path


def text_page_png(path: Path, lines: Sequence[str], *, dpi: int | None = DPI, **page: object) -> Path:
    return save_image(text_page(lines, **page), path, dpi=dpi)  # type: ignore[arg-type]


def text_page_tiff(path: Path, lines: Sequence[str], *, dpi: int | None = DPI, **page: object) -> Path:
    return save_image(text_page(lines, **page), path, dpi=dpi, compression="tiff_lzw")  # type: ignore[arg-type]


def multipage_tiff(path: Path, pages: Sequence[Sequence[str]], *, dpi: int | None = None) -> Path:
    """One frame per entry of ``pages``; no DPI by default, as many fax and scanner TIFFs have none."""
    frames = [text_page(lines) for lines in pages]
    return save_image(frames[0], path, dpi=dpi, save_all=True, append_images=frames[1:], compression="tiff_lzw")


def turned(page: Image.Image, degrees: int) -> Image.Image:
    """``page`` as fed into a scanner the wrong way round: turned ``degrees`` counter-clockwise (a
    viewer shows it upright once the page's /Rotate turns it that many degrees clockwise)."""
    return page.rotate(degrees, expand=True, fillcolor=255) if degrees % 360 else page


def photo_page(seed: int = 0, *, size: tuple[int, int] = PAGE_PX) -> Image.Image:
    """A colour picture without text: a sky-like gradient with blurred discs."""
    rng = random.Random(seed)
    width, height = size
    page = Image.new("RGB", size)
    draw = ImageDraw.Draw(page)
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=(40 + y * 150 // height, 90 + y * 80 // height, 160 - y * 100 // height))
    for _ in range(40):
        x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(20, 200)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    return page.filter(ImageFilter.GaussianBlur(3))


def pages_pdf(path: Path, pages: Sequence[Image.Image]) -> Path:
    """A scanned-looking PDF of these page images, in order."""
    images = [save_image(page, path.with_name(f".{path.stem}-{n}.png")) for n, page in enumerate(pages)]
    image_pdf(path, images)
    for image in images:
        image.unlink()
    return path


def bilevel(page: Image.Image) -> Image.Image:
    return page.point(lambda v: 255 if v > 128 else 0).convert("1")


def transparent(page: Image.Image) -> Image.Image:
    """Black ink on a fully transparent background: unreadable unless flattened onto white."""
    rgba = Image.new("RGBA", page.size, (0, 0, 0, 0))
    rgba.putalpha(page.point(lambda v: 255 - v))  # ink opaque, paper transparent
    return rgba


def g4_tiff(path: Path, lines: Sequence[str], *, dpi: int = DPI) -> Path:
    """A bilevel page, CCITT Group 4 compressed (what office scanners send)."""
    return save_image(bilevel(text_page(lines)), path, dpi=dpi, compression="group4")


def alpha_png(path: Path, lines: Sequence[str], *, dpi: int | None = DPI) -> Path:
    return save_image(transparent(text_page(lines)), path, dpi=dpi)


def cmyk_jpeg(path: Path, lines: Sequence[str], *, dpi: int | None = DPI) -> Path:
    return save_image(text_page(lines).convert("CMYK"), path, dpi=dpi, quality=90)


def colour_jpeg(path: Path, lines: Sequence[str], *, dpi: int | None = None) -> Path:
    """Dark blue text on cream paper, like a photo of a page; no DPI (phones write none that matters)."""
    grey = text_page(lines)
    colour = Image.merge("RGB", [grey.point(lambda v, lo=lo: lo + v * (255 - lo) // 255) for lo in (20, 20, 90)])
    cream = Image.new("RGB", grey.size, (250, 243, 225))
    return save_image(Image.composite(colour, cream, grey.point(lambda v: 255 - v)), path, dpi=dpi, quality=90)


def jpeg2000(path: Path, lines: Sequence[str]) -> Path:
    """A JPEG 2000 codestream file (``.jp2``); it has no DPI of its own."""
    return save_image(text_page(lines).convert("RGB"), path, dpi=None, irreversible=False)


def lying_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG whose header declares ``width`` × ``height`` but whose data is a few bytes: what a
    decompression bomb looks like to a reader of headers, built without the memory of the real thing."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))
                     + chunk(b"IEND", b""))
    return path


def lying_jpeg(path: Path, width: int, height: int) -> Path:
    """A small JPEG whose frame header (SOF0) is patched to declare ``width`` × ``height``."""
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 255).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path


def heic_photo(path: Path, lines: Sequence[str], *, orientation: int = 1) -> Path:
    """A phone photo of a page as HEIC (pillow-heif); ``orientation`` is the EXIF tag a phone writes when it
    was held sideways (6: the picture must be turned 90° clockwise)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    page = text_page(lines).convert("RGB")
    if orientation == 6:
        page = page.transpose(Image.Transpose.ROTATE_90)  # what the sensor saw; the tag says how to undo it
    exif = Image.Exif()
    exif[0x0112] = orientation
    page.save(path, format="HEIF", exif=exif.tobytes(), quality=90)
    return path


# ----- PDFs ---------------------------------------------------------------------------------------


def image_pdf(path: Path, images: Iterable[Path], *, dpi: int = DPI) -> Path:
    """A scanned-looking PDF: one page per image, embedded as is by img2pdf."""
    layout = img2pdf.get_fixed_dpi_layout_fun((dpi, dpi))
    path.write_bytes(img2pdf.convert([str(p) for p in images], layout_fun=layout))
    return path


def scanned_pdf(path: Path, pages: Sequence[Sequence[str]], **page: object) -> Path:
    """A PDF of text pages rendered as PNG images (one per entry of ``pages``)."""
    images = []
    for n, lines in enumerate(pages):
        image = path.with_name(f".{path.stem}-{n}.png")
        images.append(text_page_png(image, lines, **page))
    image_pdf(path, images)
    for image in images:
        image.unlink()
    return path


def text_pdf(path: Path, lines: Sequence[str], *, title: str | None = None) -> Path:
    """A born-digital page: real text in Helvetica, nothing to OCR."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(612, 792))
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    shown = b" ".join(b"(%s) Tj 0 -20 Td" % _pdf_string(line) for line in lines)
    page.Contents = pdf.make_stream(b"BT /F1 14 Tf 72 720 Td " + shown + b" ET")
    if title:
        pdf.docinfo["/Title"] = title
    pdf.save(path, static_id=True)
    return path


def _pdf_string(text: str) -> bytes:
    return text.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def with_title(src: Path, path: Path, title: str) -> Path:
    with pikepdf.open(src) as pdf:
        pdf.docinfo["/Title"] = title
        pdf.save(path, static_id=True)
    return path


def with_structure(src: Path, path: Path, *, outline: str | None = None, link: str | None = None,
                   form_field: str | None = None, page_labels: str | None = None) -> Path:
    """``src`` plus what lives outside the page images: a bookmark to page 1, a link annotation to
    ``link`` (a URI), a text form field, and page labels starting at ``page_labels`` (e.g. 'A-')."""
    with pikepdf.open(src) as pdf:
        page = pdf.pages[0]
        if outline:
            with pdf.open_outline() as tree:
                tree.root.append(pikepdf.OutlineItem(outline, 0))
        if link:
            annot = pdf.make_indirect(pikepdf.Dictionary(
                Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 0, 100, 20], Border=[0, 0, 0],
                A=pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String(link))))
            page.Annots = pdf.make_indirect(pikepdf.Array([annot]))
        if form_field:
            field = pdf.make_indirect(pikepdf.Dictionary(
                Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, FT=pikepdf.Name.Tx,
                T=pikepdf.String(form_field), Rect=[0, 30, 200, 50], P=page.obj))
            annots = page.obj.get("/Annots", pdf.make_indirect(pikepdf.Array()))
            annots.append(field)
            page.Annots = annots
            pdf.Root.AcroForm = pdf.make_indirect(pikepdf.Dictionary(Fields=[field]))
        if page_labels:
            pdf.Root.PageLabels = pikepdf.Dictionary(Nums=[0, pikepdf.Dictionary(
                S=pikepdf.Name.D, P=pikepdf.String(page_labels))])
        pdf.save(path, static_id=True)
    return path


def encrypted(src: Path, path: Path, *, user: str = "", owner: str = "owner-secret") -> Path:
    """``src`` encrypted with AES-256; ``user=''`` opens without a password (only the owner's is set)."""
    with pikepdf.open(src) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(user=user, owner=owner, allow=pikepdf.Permissions(
            print_lowres=False, print_highres=False, modify_other=False)))
    return path


def signed(src: Path, path: Path) -> Path:
    """``src`` with a signature field and AcroForm's SigFlags set, as a signing tool leaves it (the
    signature's bytes are a placeholder: ocrmypdf and ocrpipe look at the flags, not the certificate)."""
    with pikepdf.open(src) as pdf:
        value = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Sig, Filter=pikepdf.Name("/Adobe.PPKLite"),
            SubFilter=pikepdf.Name("/adbe.pkcs7.detached"),
            ByteRange=[0, 0, 0, 0], Contents=pikepdf.String(bytes(64)), Reason=pikepdf.String("approved")))
        field = pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, FT=pikepdf.Name.Sig, T=pikepdf.String("Signature1"),
            V=value, Rect=[0, 0, 0, 0], F=132, P=pdf.pages[0].obj))
        pdf.pages[0].Annots = pdf.make_indirect(pikepdf.Array([field]))
        pdf.Root.AcroForm = pdf.make_indirect(pikepdf.Dictionary(Fields=[field], SigFlags=3))
        pdf.save(path, static_id=True)
    return path


def dynamic_xfa(src: Path, path: Path) -> Path:
    """``src`` marked as a LiveCycle dynamic XFA form: NeedsRendering, an XFA packet in the AcroForm."""
    with pikepdf.open(src) as pdf:
        pdf.Root.NeedsRendering = True
        pdf.Root.AcroForm = pdf.make_indirect(pikepdf.Dictionary(
            Fields=[], XFA=pdf.make_stream(b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'/>")))
        pdf.save(path, static_id=True)
    return path


def truncated(src: Path, path: Path, *, keep: float = 0.5) -> Path:
    """The first ``keep`` of ``src``'s bytes: a download or copy that stopped half-way."""
    data = src.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


# ----- archives -----------------------------------------------------------------------------------


def zip_of(path: Path, members: dict[str, Path | bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Members are written in the order given, under their archive names (which may be anything)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content if isinstance(content, bytes) else content.read_bytes())
    return path


def tar_of(path: Path, members: dict[str, Path | bytes], *, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, content in members.items():
            data = content if isinstance(content, bytes) else content.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def zip_slip(path: Path, *, target: str = "tmp/evil.txt", depth: int = 20) -> Path:
    """A zip whose one entry climbs out of any folder it is unpacked in (``../`` × ``depth``)."""
    return zip_of(path, {"../" * depth + target: b"written outside the archive's folder\n"})


def tar_slip(path: Path, *, target: str = "tmp/evil.txt", depth: int = 20) -> Path:
    return tar_of(path, {"../" * depth + target: b"written outside the archive's folder\n"})


def zip_bomb(path: Path, *, megabytes: int) -> Path:
    """One member of ``megabytes`` MB of zeros: a few hundred kB packed, far more unpacked."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("zeros.pdf", "w", force_zip64=True) as member:
            block = bytes(1024 * 1024)
            for _ in range(megabytes):
                member.write(block)
    return path


def encrypted_zip(path: Path, members: dict[str, Path | bytes]) -> Path:
    """A stored zip whose members carry the "encrypted" flag (ZipCrypto), as a password-protected zip does:
    7-Zip lists them as encrypted and asks for the password."""
    zip_of(path, members, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            data[at + flag_offset] |= 1
            start = at + 4
    path.write_bytes(bytes(data))
    return path


def lying_gzip(path: Path, *, megabytes: int, declared: int = 1000) -> Path:
    """A .gz of ``megabytes`` MB of zeros whose trailer declares ``declared`` bytes: 7-Zip's listing
    believes it, and extraction writes every byte."""
    import gzip
    import struct

    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as out:
        block = bytes(2**20)
        for _ in range(megabytes):
            out.write(block)
    with open(path, "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(struct.pack("<I", declared))
    return path


def nested_zips(path: Path, levels: int, content: bytes, *, name: str = "page.pdf") -> Path:
    """``content`` wrapped in ``levels`` zips, one inside the other."""
    data, inner_name = content, name
    for level in range(levels, 0, -1):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(inner_name, data)
        data, inner_name = buffer.getvalue(), f"level{level}.zip"
    path.write_bytes(data)
    return path


def office_zip(path: Path) -> Path:
    """What an .odt is to 7-Zip: a zip with a mimetype and a manifest, and a thumbnail image."""
    thumb = io.BytesIO()
    Image.new("L", (20, 20), 255).save(thumb, format="PNG")
    return zip_of(path, {"mimetype": b"application/vnd.oasis.opendocument.text",
                         "META-INF/manifest.xml": b"<manifest/>", "content.xml": b"<office:document-content/>",
                         "Thumbnails/thumbnail.png": thumb.getvalue()}, compression=zipfile.ZIP_STORED)


# ----- the named inputs the tests and the benchmark share -----------------------------------------

# Ground truth: the lines drawn on each kind of page, and words of them that OCR must find.
LETTER = ("Dear customer, thank you", "for your order of seven", "blue widgets. Invoice 2024")
LETTER_WORDS = ("customer", "widgets", "invoice")
FOX = ("The quick brown fox", "jumped over the lazy dog")
FOX_WORDS = ("quick", "brown", "jumped")
GOOSE = ("A goose ate my spam", "and the cat was lazy")
GOOSE_WORDS = ("goose", "spam", "cat")
MIDI = ("The sequencer records", "every midi track in", "one sequence")
MIDI_WORDS = ("sequencer", "midi", "track")
LOREM = ("Lorem ipsum dolor sit amet,", "consectetur adipiscing elit.")
LOREM_WORDS = ("lorem", "ipsum")


def numbered(page: int, of: int) -> tuple[str, ...]:
    return (f"Page {page} of a multi page document", f"This is sheet number {page} of {of}")


def _scan_pdf(folder: Path) -> Path:
    return scanned_pdf(folder / "scan.pdf", [LETTER], grey=215, noise=0.4, skew=1.0)


def _three_pages_pdf(folder: Path) -> Path:
    return scanned_pdf(folder / "three-pages.pdf", [numbered(n, 3) for n in (1, 2, 3)])


def _jpeg2000_pdf(folder: Path) -> Path:
    return image_pdf(folder / "jpeg2000.pdf", [jpeg2000(folder / "fox.jp2", FOX)])


RECIPES: dict[str, Callable[[Path], Path]] = {
    "scan.pdf": _scan_pdf,  # grey, speckled and skewed, like a real scan
    "midi.pdf": lambda d: scanned_pdf(d / "midi.pdf", [MIDI]),
    "fox.pdf": lambda d: scanned_pdf(d / "fox.pdf", [FOX]),
    "three-pages.pdf": _three_pages_pdf,
    "born-digital.pdf": lambda d: text_pdf(d / "born-digital.pdf", LOREM),
    "jpeg2000.pdf": _jpeg2000_pdf,
    "multi-page.tiff": lambda d: multipage_tiff(d / "multi-page.tiff", [numbered(n, 3) for n in (1, 2, 3)]),
    "no-dpi.png": lambda d: text_page_png(d / "no-dpi.png", ("This is a test document",), dpi=None),
    "fox.tif": lambda d: text_page_tiff(d / "fox.tif", FOX),
    "goose.tif": lambda d: text_page_tiff(d / "goose.tif", GOOSE),
    "photo.jpg": lambda d: colour_jpeg(d / "photo.jpg", LETTER),
    "cmyk.jpg": lambda d: cmyk_jpeg(d / "cmyk.jpg", GOOSE),
    "alpha.png": lambda d: alpha_png(d / "alpha.png", MIDI),
    "fax.tif": lambda d: g4_tiff(d / "fax.tif", FOX),
}


class InputSet:
    """The named inputs, each built the first time it is asked for and then reused (by path).
    Callers copy what they drop: the files here are shared by every test of a session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def __getitem__(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            made = RECIPES[name](self.folder)
            assert made == path, f"recipe {name} wrote {made}"
        return path


# ----- pages of prose, for the benchmark --------------------------------------------------------------

WORDS = ("invoice order customer account payment delivery address number total amount date signature "
         "please find attached the a of to and for with on by from this that report meeting office "
         "project budget quarter review contract service request balance statement notice letter "
         "department manager copy record receipt tax insurance policy claim schedule").split()
LETTER_PX = (2550, 3300)  # US Letter at 300 DPI: a whole scanned page


def prose(seed: int, lines: int, *, width: int = 6) -> list[str]:
    """``lines`` lines of ``width`` office words each, the same for the same seed."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(width)).capitalize() for _ in range(lines)]


def partly_blurred_page(seed: int = 5) -> Image.Image:
    """A page Tesseract reads poorly on the whole (confidence about 50) but well in part: a clean
    heading over a body of prose blurred past reading, like a real page with a map or a smudge."""
    heading = text_page(LETTER + FOX, size=(PAGE_PX[0], 550))
    body = text_page(prose(seed, 12), size=(PAGE_PX[0], PAGE_PX[1] - heading.height), font_px=40)
    page = Image.new("L", PAGE_PX, 255)
    page.paste(heading, (0, 0))
    page.paste(body.filter(ImageFilter.GaussianBlur(5)), (0, heading.height))
    return page


def poor_print_page(seed: int = 1) -> Image.Image:
    """Prose as a photocopy of a copy gives it (blurred, then black and white: letters swollen and run
    together): Tesseract reads it poorly all over (confidence under 20, no word read well), yet its
    strokes still show which way up it is."""
    page = text_page(prose(seed, 22), font_px=40).filter(ImageFilter.GaussianBlur(3.2))
    return page.point(lambda level: 0 if level < 150 else 255)


def prose_page(seed: int, *, lines: int = 24, **page: object) -> Image.Image:
    """A full Letter page of prose at 300 DPI, with scanner-like noise on some seeds."""
    noisy = {"grey": 225, "noise": 0.3, "skew": 0.8, "seed": seed} if seed % 3 == 0 else {}
    return text_page(prose(seed, lines), size=LETTER_PX, font_px=44, **{**noisy, **page})  # type: ignore[arg-type]


# Page sizes and rotations a long document may mix (points), cycled over its pages.
BOOK_PAGES = (((612, 792), 0), ((595, 842), 90), ((420, 595), 180), ((792, 612), 270), ((612, 1008), 0))


def book_pdf(path: Path, pages: int, *, marker: str = "", images: Sequence[Path] = ()) -> Path:
    """A document with what a split must carry over: mixed page sizes and rotations, an outline (nested,
    to pages 2 and the last), a named destination (page 3), links between pages (page 1 to the last,
    by page; page 2 to the named destination) and page labels (i, ii, then 1, 2, …). Each page shows
    ``% page N <marker>`` in its content, or ``images[N]`` (cycled) scaled to the page."""
    with pikepdf.new() as pdf:
        for n in range(pages):
            (width, height), rotate = BOOK_PAGES[n % len(BOOK_PAGES)]
            pdf.add_blank_page(page_size=(width, height))
            page = pdf.pages[n]
            page.Rotate = rotate
            content = f"% page {n + 1} {marker}\n".encode()
            if images:
                scratch = image_pdf(path.with_name(f".{path.stem}-{n}.pdf"), [images[n % len(images)]])
                with pikepdf.open(scratch) as one:
                    image = pdf.copy_foreign(one.pages[0].Resources.XObject["/Im0"])
                scratch.unlink()
                page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
                content += f"q {width} 0 0 {height} 0 0 cm /Im0 Do Q\n".encode()
            page.Contents = pdf.make_stream(content)
        last = pdf.pages[pages - 1].obj
        with pdf.open_outline() as outline:
            chapter = pikepdf.OutlineItem("Chapter 1", 1)
            chapter.children.append(pikepdf.OutlineItem("The end", pages - 1))
            outline.root.append(chapter)
        pdf.Root.Names = pdf.make_indirect(pikepdf.Dictionary(Dests=pikepdf.Dictionary(
            Names=pikepdf.Array([pikepdf.String("third"), pikepdf.Array([pdf.pages[2].obj, pikepdf.Name.Fit])]))))
        to_last = pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 0, 50, 50],
                                     Dest=pikepdf.Array([last, pikepdf.Name.Fit]))
        to_named = pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 0, 50, 50],
                                      A=pikepdf.Dictionary(S=pikepdf.Name.GoTo, D=pikepdf.String("third")))
        pdf.pages[0].obj.Annots = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(to_last)]))
        pdf.pages[1].obj.Annots = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(to_named)]))
        pdf.Root.PageLabels = pikepdf.Dictionary(Nums=[0, pikepdf.Dictionary(S=pikepdf.Name.r),
                                                       2, pikepdf.Dictionary(S=pikepdf.Name.D)])
        pdf.save(path, compress_streams=False, static_id=True)
    return path


# ----- pages in French, German and English, for OCR_LANG=auto -------------------------------------------------

# Pillow's built-in font draws no accented letters (a box instead): a font with them, from Ghostscript's URW
# fonts (Debian installs them with Ghostscript, which ocrpipe needs), or Windows' own, or DejaVu.
ACCENT_FONTS = ("/usr/share/fonts/opentype/urw-base35/NimbusSans-Regular.otf",
                "/usr/share/fonts/type1/urw-base35/NimbusSans-Regular.t1",
                "C:/Windows/Fonts/arial.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
LANGUAGE_LINES = {
    "fra": ("Madame, nous avons bien reçu votre lettre du mois dernier.",
            "Le château près de la rivière sera fermé pendant l'été.",
            "Les élèves ont déjà préparé une fête très réussie à l'école.",
            "La réunion aura lieu à la mairie après le déjeuner de Noël.",
            "Nous espérons que cette décision vous conviendra.",
            "Veuillez agréer nos salutations les plus distinguées."),
    "deu": ("Sehr geehrte Damen und Herren, vielen Dank für Ihre Anfrage.",
            "Die Straße vor dem Gebäude wird nächste Woche gesperrt.",
            "Wir möchten Sie herzlich zur Eröffnung des Geschäfts einladen.",
            "Die Gebühren müssen bis Ende März überwiesen werden.",
            "Bitte schicken Sie uns die Unterlagen über die Prüfung.",
            "Mit freundlichen Grüßen aus München und Köln."),
    "eng": ("Dear Sir or Madam, thank you for your letter of last month.",
            "The meeting will take place at the town hall after lunch.",
            "Please find attached the invoice for the café renovation.",
            "Our manager will review your application before the interview.",
            "We hope that this decision will suit you and your family.",
            "Yours faithfully, the customer service department."),
}
LANGUAGE_PAGE_PX = (2550, 1300)  # a Letter page's width at 300 DPI, six lines of a letter


def accented_words(lang: str) -> list[str]:
    """The words of a language page that carry an accent (or ß), lower-cased: what a reading must get right."""
    words = {w.strip(".,'").lower() for line in LANGUAGE_LINES[lang] for w in line.replace("'", " ").split()}
    return sorted(w for w in words if any(ord(c) > 127 for c in w))


def accent_font(size: int) -> ImageFont.FreeTypeFont:
    for candidate in ACCENT_FONTS:
        if Path(candidate).is_file():
            return ImageFont.truetype(candidate, size)
    raise FileNotFoundError(f"no font with accented letters: install Ghostscript's fonts (fonts-urw-base35); "
                            f"looked for {', '.join(ACCENT_FONTS)}")


def language_page(lang: str, *, lines: Sequence[str] | None = None, font_px: int = FONT_PX) -> Image.Image:
    """A page of real sentences in ``lang`` (fra, deu, eng) with their accents, at 300 DPI."""
    font = accent_font(font_px)
    page = Image.new("L", LANGUAGE_PAGE_PX, 255)
    draw = ImageDraw.Draw(page)
    y = MARGIN_PX
    for line in LANGUAGE_LINES[lang] if lines is None else lines:
        draw.text((MARGIN_PX, y), line, fill=0, font=font)
        y += int(font_px * LINE_GAP)
    return page
