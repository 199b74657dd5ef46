"""Document information and XMP of a document cut from a batch, as ocrmypdf alone writes them."""

from __future__ import annotations

import pikepdf

# ocrmypdf's metadata fixup (ocrmypdf/_metadata.py, 17.x) works on the input document itself, so
# its output keeps all of the input's document information and XMP; it then sets these from the
# input again …
FROM_DOCUMENT = ("/Title", "/Author", "/Keywords", "/Subject", "/CreationDate")
# … and these afresh for each output (its name and version, the time): the batch's output has them.
FROM_OCRMYPDF = ("/Creator", "/Producer", "/ModDate")


def _text(value: pikepdf.Object) -> str:
    try:
        return str(value)
    except (TypeError, UnicodeDecodeError):
        return ""


def _copy(part: pikepdf.Pdf, value: pikepdf.Object) -> pikepdf.Object:
    return part.copy_foreign(value) if value.is_indirect else value


def give_own_metadata(part: pikepdf.Pdf, original: pikepdf.Pdf, batch: pikepdf.Pdf) -> None:
    """Write into ``part`` the document information and XMP ocrmypdf would have written, had it
    OCRed ``original`` alone: the document's own, with ocrmypdf's creator, producer and dates, and
    the language. Declaring PDF/A afterwards removes from the XMP what PDF/A does not allow."""
    try:
        for key, value in original.docinfo.items():
            part.docinfo[key] = _copy(part, value)
    except (TypeError, UnicodeDecodeError):  # a malformed information dictionary: ocrmypdf skips it too
        pass
    if "/Metadata" in original.Root:
        part.Root.Metadata = _copy(part, original.Root.Metadata)
    docinfo = {key: _text(part.docinfo[key]) for key in FROM_DOCUMENT if key in part.docinfo}
    docinfo.update({key: _text(batch.docinfo[key]) for key in FROM_OCRMYPDF if key in batch.docinfo})
    lang = original.Root.get("/Lang", batch.Root.get("/Lang"))
    if lang is not None:
        part.Root.Lang = pikepdf.String(_text(lang))
    with part.open_metadata() as meta:
        meta.load_from_docinfo({key: value for key, value in docinfo.items() if value}, delete_missing=False,
                               raise_failure=False)
        modified = meta.get("xmp:ModifyDate")
        if "xmp:CreateDate" not in meta and modified:  # as ocrmypdf does, to agree with Ghostscript
            meta["xmp:CreateDate"] = modified
