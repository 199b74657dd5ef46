"""Office documents and e-mails made on the spot, with known words: minimal OpenDocument and Office Open XML
files built with zipfile, a binary-format stand-in built as an OLE file, and messages built with the
standard library's ``email``. No binary fixture: each function writes one file and returns its path."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr
from html import escape
from pathlib import Path

_ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
           'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
           'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
           'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
           'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
           'xmlns:xlink="http://www.w3.org/1999/xlink" office:version="1.2"')
_ODF_MIME = {"text": "application/vnd.oasis.opendocument.text",
             "spreadsheet": "application/vnd.oasis.opendocument.spreadsheet",
             "presentation": "application/vnd.oasis.opendocument.presentation"}


def _odf(path: Path, kind: str, body: str, *, encrypted: bool = False) -> Path:
    encryption = ('<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="AAAA">'
                  '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" manifest:initialisation-vector="AAAA"/>'
                  '<manifest:key-derivation manifest:key-derivation-name="PBKDF2" manifest:iteration-count="1024" '
                  'manifest:salt="AAAA"/></manifest:encryption-data>') if encrypted else ""
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{_ODF_MIME[kind]}"/>'
                f'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">{encryption}'
                '</manifest:file-entry></manifest:manifest>')
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODF_NS}>'
               f"<office:body><office:{kind}>{body}</office:{kind}></office:body></office:document-content>")
    with zipfile.ZipFile(path, "w") as archive:
        # The mimetype first and stored: what the OpenDocument standard asks, and what tells one apart.
        archive.writestr(zipfile.ZipInfo("mimetype"), _ODF_MIME[kind], compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", b"\x8a\x01garbled" if encrypted else content.encode(),
                         compress_type=zipfile.ZIP_DEFLATED)
    return path


def odt(path: Path, lines: Sequence[str], *, image_url: str | None = None, encrypted: bool = False) -> Path:
    """A text document; ``image_url``: a linked (not embedded) image, which LibreOffice would fetch."""
    body = "".join(f"<text:p>{escape(line)}</text:p>" for line in lines)
    if image_url:
        body += ('<text:p><draw:frame svg:width="2cm" svg:height="2cm" text:anchor-type="as-char">'
                 f'<draw:image xlink:href="{escape(image_url)}" xlink:type="simple" xlink:show="embed" '
                 'xlink:actuate="onLoad"/></draw:frame></text:p>')
    return _odf(path, "text", body, encrypted=encrypted)


def ods(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    body = "<table:table table:name='Sheet1'>" + "".join(
        "<table:table-row>" + "".join(f'<table:table-cell office:value-type="string"><text:p>{escape(cell)}'
                                      "</text:p></table:table-cell>" for cell in row) + "</table:table-row>"
        for row in rows) + "</table:table>"
    return _odf(path, "spreadsheet", body)


def odp(path: Path, slides: Sequence[str]) -> Path:
    body = "".join(
        f'<draw:page draw:name="p{n}"><draw:frame svg:x="2cm" svg:y="2cm" svg:width="20cm" svg:height="5cm">'
        f"<draw:text-box><text:p>{escape(text)}</text:p></draw:text-box></draw:frame></draw:page>"
        for n, text in enumerate(slides, start=1))
    return _odf(path, "presentation", body)


_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def docx(path: Path, lines: Sequence[str]) -> Path:
    paragraphs = "".join(f"<w:p><w:r><w:t>{escape(line)}</w:t></w:r></w:p>" for line in lines)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/'
            'document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.'
            'main+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            f'2006/relationships"><Relationship Id="rId1" Type="{_REL}/officeDocument" Target="word/document.xml"/>'
            "</Relationships>"))
        archive.writestr("word/document.xml", (f'<?xml version="1.0" encoding="UTF-8"?><w:document {_W}><w:body>'
                                               f"{paragraphs}</w:body></w:document>"))
    return path


def xlsx(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    sheet_rows = "".join(
        f'<row r="{r}">' + "".join(f'<c r="{chr(65 + c)}{r}" t="inlineStr"><is><t>{escape(cell)}</t></is></c>'
                                  for c, cell in enumerate(row)) + "</row>"
        for r, row in enumerate(rows, start=1))
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
            'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.worksheet+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            f'2006/relationships"><Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"))
        archive.writestr("xl/workbook.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{_REL}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        archive.writestr("xl/_rels/workbook.xml.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            f'2006/relationships"><Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            "</Relationships>"))
        archive.writestr("xl/worksheets/sheet1.xml", (f'<?xml version="1.0" encoding="UTF-8"?><worksheet '
                                                      f'xmlns="{main}"><sheetData>{sheet_rows}</sheetData></worksheet>'))
    return path


def rtf(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Helvetica;}}\\f0\\fs24 " + "\\par ".join(lines) + "}",
                    encoding="ascii")
    return path


def ole(path: Path, streams: Sequence[str], *, first_sector: bytes = b"") -> Path:
    """A minimal Compound File (MS-CFB, 512-byte sectors) whose directory names ``streams``: how the old
    binary formats (.doc, .xls, .ppt), an encrypted OOXML file and an Outlook .msg are told apart.
    Each stream's first sector holds ``first_sector`` (a Word FIB, an Excel BOF…)."""
    end, free, fat_mark = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    names = ["Root Entry", *streams]
    # sectors: 0 = FAT, 1 = directory (4 entries each), then one data sector per stream
    dir_sectors = (len(names) + 3) // 4
    first_data = 1 + dir_sectors
    fat = [fat_mark] + [1 + n + 1 if n + 1 < dir_sectors else end for n in range(dir_sectors)]
    fat += [end] * len(streams)
    fat += [free] * (128 - len(fat))
    entries = b""
    for n, name in enumerate(names):
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        kind = 5 if n == 0 else 2
        child = 1 if n == 0 and streams else free
        right = n + 1 if 0 < n < len(names) - 1 else free
        start = first_data + n - 1 if n else end
        entry = encoded.ljust(64, b"\x00") + struct.pack("<HBB", len(encoded), kind, 1)
        entry += struct.pack("<III", free, right, child) + b"\x00" * 36 + struct.pack("<IQ", start, 4096 if n else 0)
        entries += entry.ljust(128, b"\x00")
    entries = entries.ljust(512 * dir_sectors, b"\x00")
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9)
    struct.pack_into("<H", header, 0x20, 6)
    struct.pack_into("<III", header, 0x2C, 1, 1, 0)
    struct.pack_into("<IIIII", header, 0x38, 4096, end, 0, end, 0)
    difat = [0] + [free] * 108
    struct.pack_into("<109I", header, 0x4C, *difat)
    data = bytes(header) + struct.pack("<128I", *fat) + entries
    data += b"".join(first_sector.ljust(512, b"\x00") for _ in streams)
    path.write_bytes(data)
    return path


def eml(path: Path, *, subject: str, sender: tuple[str, str], to: Sequence[tuple[str, str]],
        text: str | None = None, html: str | None = None,
        inline: Sequence[tuple[str, bytes, str]] = (),
        attachments: Sequence[tuple[str, bytes, str]] = (), charset: str = "utf-8",
        cc: Sequence[tuple[str, str]] = ()) -> Path:
    """A message as a mail program writes it: the body (``text`` and/or ``html``, in ``charset``), inline
    images (``(content id, bytes, subtype)``, referred to as ``cid:`` from the HTML) and attachments
    (``(file name, bytes, MIME type)``). Non-ASCII names and subjects come out as encoded words."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = formataddr(sender)
    message["To"] = ", ".join(formataddr(t) for t in to)
    if cc:
        message["Cc"] = ", ".join(formataddr(c) for c in cc)
    message["Date"] = "Tue, 03 Dec 2024 10:15:00 +0100"
    message["Message-ID"] = "<test.1@example.com>"
    if text is not None:
        message.set_content(text, charset=charset)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html", charset=charset)
        else:
            message.add_alternative(html, subtype="html", charset=charset)
        body = message.get_body(("html",))
        assert body is not None
        for cid, data, subtype in inline:
            body.add_related(data, maintype="image", subtype=subtype, cid=f"<{cid}>")
    for name, data, mime in attachments:
        maintype, subtype = mime.split("/", 1)
        if mime == "message/rfc822":
            from email import message_from_bytes, policy

            message.add_attachment(message_from_bytes(data, policy=policy.default), filename=name)
        else:
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    path.write_bytes(bytes(message))
    return path
