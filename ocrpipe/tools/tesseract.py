"""Tesseract on its own: its language codes (with the ISO 639-1 code and script of each), and its
orientation-and-script detection (``--psm 0``), which names the script a page is written in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ocrpipe.errors import TransientError
from ocrpipe.tools.run import run_tool

# Tesseract language code -> (ISO 639-1 code of the language identifier, script as Tesseract's
# orientation detection names it). Languages missing here can still be OCRed, but not identified.
LANGUAGES: dict[str, tuple[str, str]] = {
    **{code: (iso, "Latin") for code, iso in (
        ("afr", "af"), ("aze", "az"), ("bos", "bs"), ("bre", "br"), ("cat", "ca"), ("ces", "cs"), ("cym", "cy"),
        ("dan", "da"), ("deu", "de"), ("eng", "en"), ("epo", "eo"), ("est", "et"), ("eus", "eu"), ("fao", "fo"),
        ("fin", "fi"), ("fra", "fr"), ("frk", "de"), ("fry", "fy"), ("gla", "gd"), ("gle", "ga"), ("glg", "gl"),
        ("hat", "ht"), ("hrv", "hr"), ("hun", "hu"), ("ind", "id"), ("isl", "is"), ("ita", "it"), ("jav", "jv"),
        ("lat", "la"), ("lav", "lv"), ("lit", "lt"), ("ltz", "lb"), ("msa", "ms"), ("mlt", "mt"), ("nld", "nl"),
        ("nor", "no"), ("oci", "oc"), ("pol", "pl"), ("por", "pt"), ("que", "qu"), ("ron", "ro"), ("slk", "sk"),
        ("slv", "sl"), ("spa", "es"), ("sqi", "sq"), ("swa", "sw"), ("swe", "sv"), ("tgl", "tl"), ("tur", "tr"),
        ("uzb", "uz"), ("vie", "vi"), ("yor", "yo"))},
    **{code: (iso, "Cyrillic") for code, iso in (
        ("bel", "be"), ("bul", "bg"), ("kaz", "kk"), ("kir", "ky"), ("mkd", "mk"), ("mon", "mn"), ("rus", "ru"),
        ("srp", "sr"), ("tat", "tt"), ("tgk", "tg"), ("ukr", "uk"))},
    "ell": ("el", "Greek"), "ara": ("ar", "Arabic"), "fas": ("fa", "Arabic"), "urd": ("ur", "Arabic"),
    "pus": ("ps", "Arabic"), "uig": ("ug", "Arabic"), "heb": ("he", "Hebrew"), "chi_sim": ("zh", "Han"),
    "chi_tra": ("zh", "Han"), "jpn": ("ja", "Japanese"), "kor": ("ko", "Hangul"), "hin": ("hi", "Devanagari"),
    "mar": ("mr", "Devanagari"), "nep": ("ne", "Devanagari"), "san": ("sa", "Devanagari"), "ben": ("bn", "Bengali"),
    "asm": ("as", "Bengali"), "tha": ("th", "Thai"), "kat": ("ka", "Georgian"), "hye": ("hy", "Armenian"),
    "tam": ("ta", "Tamil"), "tel": ("te", "Telugu"), "kan": ("kn", "Kannada"), "mal": ("ml", "Malayalam"),
    "guj": ("gu", "Gujarati"), "pan": ("pa", "Gurmukhi"), "ori": ("or", "Oriya"), "sin": ("si", "Sinhala"),
    "khm": ("km", "Khmer"), "lao": ("lo", "Lao"), "mya": ("my", "Myanmar"), "amh": ("am", "Ethiopic"),
}
# Names Tesseract's detection gives that mean one of the scripts above (Fraktur is Latin letters; a
# Japanese page may be named by its kana or, mostly kanji, as Han, which Japanese shares).
SCRIPT_ALIASES = {"Fraktur": "Latin", "Hiragana": "Japanese", "Katakana": "Japanese", "Korean": "Hangul"}
SHARED_SCRIPTS = {"Han": ("Han", "Japanese")}
_SCRIPT = re.compile(r"^Script:\s*(\S+)\s*$", re.M)
_SCRIPT_CONFIDENCE = re.compile(r"^Script confidence:\s*([\d.]+)", re.M)


def script_of_language(code: str) -> str | None:
    known = LANGUAGES.get(code)
    return known[1] if known else None


def languages_of_script(script: str, candidates: Iterable[str]) -> list[str]:
    """The candidates written in ``script`` (a name Tesseract's detection gives), sorted."""
    script = SCRIPT_ALIASES.get(script, script)
    scripts = SHARED_SCRIPTS.get(script, (script,))
    return sorted(code for code in candidates if script_of_language(code) in scripts)


def parse_script(output: str) -> tuple[str, float] | None:
    """``Script: Cyrillic`` and ``Script confidence: 4.2`` of ``tesseract … --psm 0``, or None."""
    script, confidence = _SCRIPT.search(output), _SCRIPT_CONFIDENCE.search(output)
    if not script:
        return None
    return script.group(1), float(confidence.group(1)) if confidence else 0.0


def detect_script(command: Sequence[str], image: Path, *, env: Mapping[str, str],
                  timeout: float = 60.0) -> tuple[str, float] | None:
    """The script Tesseract's orientation data reads on a page image, with its confidence; None when
    it cannot tell (too few letters, no ``osd`` data, the tool failed)."""
    try:
        result = run_tool([*command, str(image), "stdout", "--psm", "0", "-l", "osd"], timeout=timeout, env=dict(env))
    except TransientError:
        return None
    if result.returncode != 0:
        return None
    return parse_script(result.stdout)
