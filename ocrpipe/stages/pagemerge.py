"""A long document in page ranges and back: cut ``raw.pdf`` into ranges, graft the OCRed ranges'
pages into the document's own page objects (so its outline, destinations, links and page labels
still point at them), and check the result. Pure pikepdf, no tools."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pikepdf
from pikepdf.pdfa import check as pdfa_check

from ocrpipe.stages.doclevel import DOCUMENT_LEVEL, holds_something
from ocrpipe.stages.docmeta import give_own_metadata
from ocrpipe.stages.pdfa import save_as_pdfa

# What page mapping cannot carry over (a field's widget, a signature's byte range, a structure tree's
# marked content, an attachment's place): such a document is OCRed whole. Outlines, named
# destinations, links and page labels point at page objects, which the graft keeps.
CARRIED_OVER = {"/Outlines", "/PageLabels", "/Names", "/Dests"}
# Page attributes a /Pages node may hand down; after the graft each page holds its own.
INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
# Kept from the document's own page: its place in the tree and its annotations (links, comments).
KEPT = {"/Parent", "/Annots", "/Type"}
TEXT_SHOWING = {"Tj", "TJ", "'", '"'}
OCR_LAYER_PREFIX = "/OCR-"  # ocrmypdf's text layer: a Form XObject, present on blank pages too
MAX_FORM_DEPTH = 8


def split_blocker(raw: Path) -> str | None:
    """Why this document must not be split (its form fields, say), or None. ``/Names`` may hold
    destinations (carried over) or attachments and scripts (not)."""
    with pikepdf.open(raw) as pdf:
        for key, what in DOCUMENT_LEVEL.items():
            if key in CARRIED_OVER or key not in pdf.Root or not holds_something(key, pdf.Root[key]):
                continue
            return what
        names = pdf.Root.get("/Names")
        if isinstance(names, pikepdf.Dictionary):
            other = sorted(str(k) for k in names.keys() if k not in ("/Dests", "/Type"))
            if other:
                return f"named {', '.join(other)} (attachments or scripts)"
        for page in pdf.pages:
            for annot in page.obj.get("/Annots", ()):
                if isinstance(annot, pikepdf.Dictionary) and annot.get("/Subtype") == "/Widget":
                    return "form widgets"
    return None


def cut_range(raw: Path, pages: Sequence[int], out: Path) -> None:
    """Pages ``pages`` (indices, ascending) of ``raw`` as a document of their own, without what points
    at other pages (annotations, outline, destinations): the merge takes those from ``raw`` itself."""
    keep = set(pages)
    with pikepdf.open(raw) as pdf:
        for key in (*CARRIED_OVER, "/OpenAction"):
            if key in pdf.Root:
                del pdf.Root[key]
        for page in pdf.pages:
            if "/Annots" in page.obj:
                del page.obj["/Annots"]
        for index in reversed(range(len(pdf.pages))):
            if index not in keep:
                del pdf.pages[index]
        pdf.save(out, compress_streams=False)  # a temp file: spend no time compressing it


def _effective(page: pikepdf.Object, key: str) -> pikepdf.Object | None:
    node: pikepdf.Object | None = page
    depth = 0
    while isinstance(node, pikepdf.Dictionary) and depth < 64:
        if key in node:
            return node[key]
        node, depth = node.get("/Parent"), depth + 1
    return None


def graft(raw: Path, outputs: Sequence[Path], ranges: Sequence[Sequence[int]], out: Path, flavour: str | None) -> bool:
    """``raw`` with each page's content, resources and geometry replaced by the same page OCRed in its
    range (``outputs[n]`` holds the pages ``ranges[n]``, in that order); document information and XMP
    as ocrmypdf alone writes them; PDF/A when the ranges were. True when pikepdf's PDF/A check passed
    on the file written (see save_as_pdfa)."""
    with pikepdf.open(raw) as doc, pikepdf.open(raw) as original:
        sources = [pikepdf.open(path) for path in outputs]
        try:
            ocred: dict[int, pikepdf.Page] = {}
            for source, pages in zip(sources, ranges, strict=True):
                if len(source.pages) != len(pages):
                    raise ValueError(f"a range holds {len(source.pages)} pages instead of {len(pages)}")
                ocred.update(zip(pages, source.pages, strict=False))
            if sorted(ocred) != list(range(len(doc.pages))):
                raise ValueError(f"the ranges hold {len(ocred)} of the document's {len(doc.pages)} pages")
            for index, own in enumerate(doc.pages):
                _replace_page(doc, own.obj, ocred[index].obj)
            for node in _page_tree_nodes(doc.Root.Pages):
                for key in INHERITED:
                    if key in node:
                        del node[key]
            give_own_metadata(doc, original, sources[0])
            return save_as_pdfa(doc, sources[0], out, flavour)
        finally:
            for source in sources:
                source.close()


def _replace_page(doc: pikepdf.Pdf, own: pikepdf.Dictionary, new: pikepdf.Dictionary) -> None:
    for key in list(own.keys()):
        if key not in KEPT:
            del own[key]
    for key, value in new.items():
        if key not in KEPT:
            own[key] = _copy(doc, value)
    for key in INHERITED:
        if key not in own and key != "/Rotate":
            inherited = _effective(new, key)
            if inherited is not None:
                own[key] = _copy(doc, inherited)
    if "/Rotate" not in own:
        rotate = _effective(new, "/Rotate")
        own.Rotate = int(rotate) if rotate is not None else 0


def _copy(doc: pikepdf.Pdf, value: pikepdf.Object) -> pikepdf.Object:
    """Into ``doc``: an indirect object by qpdf's foreign copy, a direct one (which may hold
    references to the other file's objects) item by item."""
    if not isinstance(value, pikepdf.Object):
        return value  # pikepdf hands numbers and booleans over as Python's own
    if value.is_indirect:
        return doc.copy_foreign(value)
    if isinstance(value, pikepdf.Dictionary):
        return pikepdf.Dictionary({key: _copy(doc, item) for key, item in value.items()})
    if isinstance(value, pikepdf.Array):
        return pikepdf.Array([_copy(doc, item) for item in value])
    return value


def _page_tree_nodes(node: pikepdf.Object, depth: int = 0) -> Iterator[pikepdf.Dictionary]:
    if not isinstance(node, pikepdf.Dictionary) or node.get("/Type") != "/Pages" or depth > 64:
        return
    yield node
    for kid in node.get("/Kids", ()):
        yield from _page_tree_nodes(kid, depth + 1)


def has_text_layer(page: pikepdf.Page) -> bool:
    """ocrmypdf's text layer (a Form XObject it names /OCR-…, on a blank page too) or text shown
    by the page itself (a page --skip-text left as it was)."""
    resources: pikepdf.Object | dict[str, pikepdf.Object] = page.obj.get("/Resources", {})
    xobjects: pikepdf.Object | dict[str, pikepdf.Object] = resources.get("/XObject", {})
    if any(str(name).startswith(OCR_LAYER_PREFIX) for name in xobjects.keys()):
        return True
    return _shows_text(page.obj, 0)


def _shows_text(holder: pikepdf.Object, depth: int) -> bool:
    try:
        if any(str(instruction.operator) in TEXT_SHOWING for instruction in pikepdf.parse_content_stream(holder)):
            return True
    except pikepdf.PdfError:
        return False
    resources: pikepdf.Object | dict[str, pikepdf.Object] = holder.get("/Resources", {})
    xobjects: pikepdf.Object | dict[str, pikepdf.Object] = resources.get("/XObject", {})
    forms = [x for _, x in xobjects.items()
             if isinstance(x, pikepdf.Stream) and x.get("/Subtype") == "/Form"]
    return depth < MAX_FORM_DEPTH and any(_shows_text(form, depth + 1) for form in forms)


def check_merged(merged: Path, *, pages: int, flavour: str | None, pdfa_checked: bool = False) -> str | None:
    """What is wrong with the merged document, or None: its page count, a text layer on every page,
    and, when the ranges were PDF/A, the XMP claim, the OutputIntent and pikepdf's PDF/A check (run
    here unless ``pdfa_checked``: the save already ran it on these bytes; twice cost 0.2 s on 19 pages)."""
    with pikepdf.open(merged) as pdf:
        if len(pdf.pages) != pages:
            return f"the merged document has {len(pdf.pages)} pages instead of {pages}"
        bare = [n for n, page in enumerate(pdf.pages, start=1) if not has_text_layer(page)]
        if bare:
            return f"page(s) {', '.join(map(str, bare[:10]))} lost their text layer in the merge"
        if flavour is None:
            return None
        claimed = (pdf.open_metadata().pdfa_status or "").lower()
        if claimed != flavour:
            return f"the merged document claims PDF/A {claimed or 'nothing'} instead of {flavour}"
        if "/OutputIntents" not in pdf.Root or not len(pdf.Root.OutputIntents):
            return "the merged document lacks the PDF/A OutputIntent"
        if pdfa_checked:
            return None
        report = pdfa_check(pdf, flavour)
        if not report.passed:
            findings = report.findings
            return f"pikepdf's PDF/A check fails: {findings[0].message if findings else 'no reason given'}"
    return None
