"""OCR_LANG=auto: which language a document (or each of its pages) is in, read from the text of its
first reading (in OCR_LANG_DEFAULT) by py3langid, restricted to the candidates; and what it is read in
again. Pure decisions here; the readings themselves are run by stages/autolang.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.model import normalise_languages
from ocrpipe.tools.tesseract import LANGUAGES, languages_of_script, script_of_language

log = logging.getLogger("ocrpipe.ocr")

# Below this many characters (spaces collapsed) a text says too little about its language: a page of
# 20 characters (a stamp, a page number) is never read again. 200 is about three lines of a letter; the
# generated test pages (about 340 characters) came out at probabilities within 1e-10 of 1.
MIN_CHARS = 200
# The identifier's probability, among the candidates, that the text is in its most likely language.
MIN_PROBABILITY = 0.95
# Tesseract's script confidence (not a probability: 0 to about 10) a non-Latin page needs.
MIN_SCRIPT_CONFIDENCE = 1.0
PLAN_FILE = "language.json"  # a batch's finding, for the document's own reading alone


@dataclass(frozen=True)
class PageReading:
    """What the first reading of one page says about its language."""

    chars: int
    language: str | None = None  # a Tesseract code ("fra"), or a script's candidates ("rus+ukr")
    probability: float = 0.0
    script: str | None = None  # named by Tesseract's orientation data, when it was asked

    def sure(self) -> bool:
        if self.script is not None:
            return self.language is not None
        return self.language is not None and self.chars >= MIN_CHARS and self.probability >= MIN_PROBABILITY


@dataclass(frozen=True)
class Plan:
    """The decision for one document: its language, and the pages to read again in which languages."""

    default: str
    language: str | None  # the document's own, when it is sure of it
    probability: float
    pages: list[PageReading] = field(default_factory=list)
    reread: dict[str, list[int]] = field(default_factory=dict)  # reading ("eng+fra") -> page indices

    @property
    def whole(self) -> bool:
        """One reading for every page: the document is read again as a whole."""
        return len(self.reread) == 1 and sorted(next(iter(self.reread.values()))) == list(range(len(self.pages)))

    def whole_reading(self) -> str:
        """One reading for the whole document: its own language, or every language found, with the default."""
        return normalise_languages("+".join([*self.reread, self.default]))

    def fields(self, *, second: bool, reading: str | None = None) -> dict[str, Any]:
        """What state.json, the index and /jobs keep: the language(s) found, how sure, whether a
        second reading ran, and the languages the kept reading used."""
        found = sorted({part for page in self.pages if page.sure() for part in (page.language or "").split("+")}
                       | ({self.language} if self.language else set()))
        sure = [page.probability for page in self.pages if page.sure()]
        probability = self.probability if self.language else (min(sure) if sure else 0.0)
        fields: dict[str, Any] = {"languages": [lang for lang in found if lang],
                                  "languageProbability": round(probability, 4), "secondReading": second,
                                  "ocrLang": reading or (self.whole_reading() if second else self.default)}
        if second and not self.whole and reading is None:
            fields["ocrLang"] = ", ".join(f"{lang} (pages {_pages(idx)})" for lang, idx in sorted(self.reread.items()))
            fields["pageLanguages"] = {str(n + 1): page.language for n, page in enumerate(self.pages)
                                       if page.sure()}
        return fields


def _pages(indices: Sequence[int]) -> str:
    return ", ".join(str(i + 1) for i in indices)


# ----- the identifier --------------------------------------------------------------------------------

_lock = threading.Lock()
_identifier: Any = None
_restricted: tuple[str, ...] | None = None


def classify(text: str, isos: Sequence[str]) -> tuple[str, float]:
    """The most likely of ``isos`` (ISO 639-1 codes) and its probability among them. The model (1.1 s to
    load) is loaded once per worker process, on the first document that asks."""
    global _identifier, _restricted
    wanted = tuple(sorted(set(isos)))
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if _restricted != wanted:
            _identifier.set_languages(list(wanted))
            _restricted = wanted
        language, probability = _identifier.classify(text)
    return str(language), float(probability)


def identifiable(candidates: Sequence[str]) -> dict[str, str]:
    """ISO 639-1 code -> Tesseract code of the Latin-script candidates the identifier knows (the first
    of two that share one: frk and deu are both German)."""
    isos: dict[str, str] = {}
    for code in sorted(candidates):
        known = LANGUAGES.get(code)
        if known and known[1] == "Latin":
            isos.setdefault(known[0], code)
    return isos


def chars_of(text: str | None) -> int:
    return len(" ".join((text or "").split()))


# ----- the decision ----------------------------------------------------------------------------------


def identify(texts: Sequence[str | None], candidates: Sequence[str], default: str,
             scripts: Mapping[int, tuple[str, float]] | None = None) -> Plan:
    """The plan for a document whose first reading gave ``texts`` (one per page; None: not OCRed).
    ``scripts``: the script Tesseract named on some pages (only asked when a candidate is not Latin).

    Per document when its pages agree; per page where pages sure of their language differ. A page not
    sure of its own (short) follows the document when all agree, and stays as read when they differ."""
    isos = identifiable([*candidates, default])
    scripts = scripts or {}
    pages = []
    for n, text in enumerate(texts):
        chars = chars_of(text)
        found = scripts.get(n)
        if found and _non_latin(found[0]):
            pages.append(_script_page(chars, found, candidates))
        elif chars >= MIN_CHARS and len(isos) > 1:
            iso, probability = classify(text or "", list(isos))
            pages.append(PageReading(chars, isos[iso], probability))
        else:
            pages.append(PageReading(chars))
    whole_text = "\n".join(t for t in texts if t)
    language, probability = None, 0.0
    if chars_of(whole_text) >= MIN_CHARS and len(isos) > 1:
        iso, probability = classify(whole_text, list(isos))
        if probability >= MIN_PROBABILITY:
            language = isos[iso]
    sure = {page.language for page in pages if page.sure()}
    if len(sure) > 1:  # the pages differ: each sure page in its own language, the rest as read
        own = {n: page.language for n, page in enumerate(pages) if page.sure() and page.language != default}
        return Plan(default, None, probability, pages, _grouped(own, default))
    if sure and language is None:
        language = next(iter(sure))  # sure pages agree though the whole is unsure (a long text in one page)
    if language is None or language == default:
        return Plan(default, language, probability, pages)
    return Plan(default, language, probability, pages, _grouped(dict.fromkeys(range(len(pages)), language),
                                                                default))


def _non_latin(script: str) -> bool:
    return script not in ("Latin", "Fraktur")


def _script_page(chars: int, found: tuple[str, float], candidates: Sequence[str]) -> PageReading:
    """A page Tesseract names a non-Latin script on: the candidates of that script, when it is sure."""
    script, confidence = found
    langs = languages_of_script(script, candidates)
    if not langs or confidence < MIN_SCRIPT_CONFIDENCE:
        return PageReading(chars, None, 0.0, script)
    return PageReading(chars, "+".join(langs), min(1.0, confidence / 10), script)


def _grouped(own: Mapping[int, str | None], default: str) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for n, language in sorted(own.items()):
        if language and language != default:
            groups.setdefault(normalise_languages(f"{language}+{default}"), []).append(n)
    return groups


def needs_script_check(candidates: Sequence[str], default: str) -> bool:
    """Tesseract's script detection costs about a second a page: asked only when some candidate is
    written in another script than the first reading's language."""
    first = script_of_language(default) or "Latin"
    return any((script_of_language(code) or first) != first for code in candidates)


def describe(plan: Plan) -> str:
    if plan.language:
        return f"{plan.language} (probability {plan.probability:.3f})"
    return ", ".join(f"{lang} on page(s) {_pages(idx)}" for lang, idx in sorted(plan.reread.items())) or "unknown"


# ----- a batch's finding, kept for the document's reading alone -----------------------------------------


def save_plan(job_dir: Path, plan: Plan, raw: Path) -> None:
    stat = raw.stat()
    atomic_write_json(job_dir / PLAN_FILE, {
        "raw": [stat.st_size, stat.st_mtime_ns], "reading": plan.whole_reading(),
        "fields": plan.fields(second=True, reading=plan.whole_reading())})


def load_plan(job_dir: Path, raw: Path, allowed: Sequence[str]) -> tuple[str, dict[str, Any]] | None:
    """The reading a batch chose for this document, and the fields it found; None when there is none,
    it is for another raw.pdf, or names a language not allowed (the work folder may be written by others)."""
    try:
        saved = read_json(job_dir / PLAN_FILE)
        stat = raw.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("raw") != [stat.st_size, stat.st_mtime_ns]:
        return None
    reading, fields = saved.get("reading"), saved.get("fields")
    if not isinstance(reading, str) or not isinstance(fields, dict):
        return None
    langs = reading.split("+")
    if not reading or any(lang not in allowed for lang in langs):
        return None
    clean = {"languages": [x for x in fields.get("languages") or [] if isinstance(x, str) and x in allowed],
             "languageProbability": _number(fields.get("languageProbability")), "secondReading": True,
             "ocrLang": reading, "readAlone": True}
    return reading, clean


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else 0.0
