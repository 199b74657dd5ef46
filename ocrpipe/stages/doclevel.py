"""What a document keeps outside its pages (bookmarks, form fields, …), which OCR in a batch or in page
ranges must not drop: the batch, the split and OCR_LANG=auto's pages read apart all ask."""

from __future__ import annotations

import pikepdf

# What a document keeps outside its pages, which a merge page by page and the split after it would drop:
# bookmarks, form fields, page labels, named destinations and attachments, tags, layers, articles,
# signature permissions, a portfolio. ocrmypdf alone keeps them. (An open action is a viewer's hint, not
# content: it does not keep a document out of a batch.)
DOCUMENT_LEVEL = {"/Outlines": "bookmarks", "/AcroForm": "form fields", "/PageLabels": "page labels",
                   "/Names": "named destinations or attachments", "/Dests": "named destinations",
                   "/StructTreeRoot": "tags (structure tree)", "/OCProperties": "layers", "/Threads": "articles",
                   "/Perms": "signature permissions", "/Collection": "portfolio"}


def holds_something(key: str, value: pikepdf.Object) -> bool:
    """Scanners and converters often write empty ones: an outline without items, a form without fields."""
    if key == "/Outlines":
        return isinstance(value, pikepdf.Dictionary) and "/First" in value
    if key == "/AcroForm":
        return isinstance(value, pikepdf.Dictionary) and len(value.get("/Fields", ())) > 0
    if isinstance(value, pikepdf.Dictionary):
        return any(name != "/Type" for name in value.keys())
    if isinstance(value, pikepdf.Array):
        return len(value) > 0
    return True
