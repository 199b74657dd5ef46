"""Which tools are there, in which version, and how to install the missing ones."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import PureWindowsPath
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.errors import MissingToolError, TransientError
from ocrpipe.model import canonical_profile, normalise_languages
from ocrpipe.tools.htmlpdf import weasyprint_version
from ocrpipe.tools.ocrmypdf import profile_args
from ocrpipe.tools.probecache import ProbeCache
from ocrpipe.tools.run import probe_version, run_tool
from ocrpipe.tools.soffice import VERSION_FILES, soffice_version

INSTALL = {
    "7z": ("sudo apt-get install -y p7zip-full", "winget install --id 7zip.7zip"),
    "ocrmypdf": ("pip install ocrmypdf  (in ocrpipe's virtualenv)", "pip install ocrmypdf  (in ocrpipe's virtualenv)"),
    "tesseract": ("sudo apt-get install -y tesseract-ocr", "winget install --id UB-Mannheim.TesseractOCR"),
    "ghostscript": ("sudo apt-get install -y ghostscript", "winget install --id ArtifexSoftware.GhostScript"),
}


@dataclass(frozen=True)
class ToolStatus:
    name: str
    command: tuple[str, ...]
    version: str | None

    @property
    def ok(self) -> bool:
        return self.version is not None


def probe_tools(settings: Settings, cache: ProbeCache | None = None) -> list[ToolStatus]:
    """Each tool's version, asked in parallel: every start of ocrpipe waits for the slowest only; with a
    ``cache``, asked only of the tools it has no answer for (``ocrpipe doctor`` asks them all)."""
    cache = cache or ProbeCache()
    env = dict(settings.tool_env)
    tools = [("7z", settings.seven_zip, ()), ("ocrmypdf", settings.ocrmypdf, ("--version",)),
             ("tesseract", settings.tesseract, ("--version",)), ("ghostscript", settings.ghostscript, ("--version",))]

    def version_of(name: str, command: tuple[str, ...], args: tuple[str, ...]) -> str | None:
        if name == "ocrmypdf" and command == (sys.executable, "-m", "ocrmypdf"):
            return own_ocrmypdf_version()
        return cache.version(command, args, env, lambda: probe_version(command, args, env=env))

    with ThreadPoolExecutor(max_workers=len(tools)) as pool:
        versions = list(pool.map(lambda t: version_of(*t), tools))
    return [ToolStatus(name, command, version) for (name, command, _), version in zip(tools, versions, strict=False)]


def own_ocrmypdf_version() -> str | None:
    """The version of the ocrmypdf installed beside ocrpipe, which the default OCRMYPDF command runs:
    read from its package metadata, since ``python -m ocrmypdf --version`` costs 0.6 s of imports at
    every start (a scheduled ``run --once`` pays it every few minutes)."""
    if importlib.util.find_spec("ocrmypdf") is None:
        return None
    try:
        return importlib.metadata.version("ocrmypdf")
    except importlib.metadata.PackageNotFoundError:
        return None


def tesseract_languages(settings: Settings, cache: ProbeCache | None = None) -> set[str] | None:
    """Installed Tesseract languages, or None when Tesseract does not run."""
    env = dict(settings.tool_env)
    return (cache or ProbeCache()).languages(settings.tesseract, env, lambda: list_languages(settings.tesseract, env))


_TESSDATA = re.compile(r'List of available languages in "([^"]+)"')


def list_languages(command: tuple[str, ...], env: dict[str, str]) -> tuple[set[str] | None, list[str]]:
    """``tesseract --list-langs``: the languages (None when it does not run) and the tessdata folder(s)
    it names (Tesseract 5 does: ``List of available languages in "/usr/share/…/tessdata/" (4):``)."""
    try:
        result = run_tool([*command, "--list-langs"], timeout=30, env=env)
    except TransientError:
        return None, []
    if result.returncode != 0:
        return None, []
    text = result.stdout + "\n" + result.stderr_tail
    langs = {line.strip() for line in text.splitlines() if re.fullmatch(r"[A-Za-z_]+", line.strip())}
    return langs, _TESSDATA.findall(text)


def requested_languages(settings: Settings) -> list[str]:
    """The languages the operator asked for: OCR_LANG's, or under auto the default and the candidates
    named (unnamed, the candidates are what is installed)."""
    if settings.ocr_lang == "auto":
        return sorted({settings.ocr_lang_default, *settings.ocr_lang_candidates})
    return normalise_languages(settings.ocr_lang).split("+")


def lang_candidates(settings: Settings, installed: set[str] | None) -> list[str]:
    """OCR_LANG=auto's candidates: OCR_LANG_CANDIDATES, or the installed languages less 'osd' (Tesseract's
    orientation data, no language); the first reading's language is always one."""
    listed = settings.ocr_lang_candidates or sorted((installed or set()) - {"osd"})
    return sorted(set(listed) | {settings.ocr_lang_default})


def missing_languages(settings: Settings, cache: ProbeCache | None = None) -> list[str]:
    """OCR_LANG's languages Tesseract lacks, and its orientation data ('osd') unless ROTATE_PAGES=off."""
    installed = tesseract_languages(settings, cache)
    wanted = requested_languages(settings) + (["osd"] if settings.rotate_pages != "off" else [])
    return wanted if installed is None else [lang for lang in wanted if lang not in installed]


WINDOWS_TESSERACT_HOME = PureWindowsPath(r"C:\Program Files\Tesseract-OCR")
TESSDATA_URL = "https://github.com/tesseract-ocr/tessdata_fast/raw/main"


def windows_tessdata(tesseract: tuple[str, ...], environ: Mapping[str, str]) -> PureWindowsPath:
    """Where Tesseract on Windows reads its languages: TESSDATA_PREFIX if set, else the tessdata folder
    beside tesseract.exe (the UB-Mannheim installer's layout)."""
    if environ.get("TESSDATA_PREFIX"):
        return PureWindowsPath(environ["TESSDATA_PREFIX"])
    exe = PureWindowsPath(tesseract[0]) if tesseract else PureWindowsPath("tesseract")
    return (exe.parent if exe.is_absolute() else WINDOWS_TESSERACT_HOME) / "tessdata"


def language_install_hint(lang: str,
                          tessdata: PureWindowsPath = WINDOWS_TESSERACT_HOME / "tessdata") -> tuple[str, str]:
    return (f"sudo apt-get install -y tesseract-ocr-{lang.replace('_', '-').lower()}",
            f"save {TESSDATA_URL}/{lang}.traineddata as {tessdata / (lang + '.traineddata')} "
            "(or run the UB-Mannheim installer again and tick the language)")


def osd_install_hint(tessdata: PureWindowsPath = WINDOWS_TESSERACT_HOME / "tessdata") -> tuple[str, str]:
    """Tesseract's orientation data (``osd``), which ROTATE_PAGES auto and always need."""
    return ("sudo apt-get install -y tesseract-ocr-osd",
            f"part of the UB-Mannheim Tesseract installer (run it again); or save {TESSDATA_URL}/osd.traineddata "
            f"as {tessdata / 'osd.traineddata'}")


def build_profile(settings: Settings, tools: list[ToolStatus],
                  converters: dict[str, str] | None = None) -> dict[str, Any]:
    """The job profile; under OCR_LANG=auto, with the candidates resolved (``with_candidates``)."""
    return canonical_profile(
        ocr_lang=settings.ocr_lang,
        ocrmypdf_args=profile_args(settings.ocr_args, settings.pdfa, rotate_pages=settings.rotate_pages,
                                    deskew=settings.deskew),
        tool_versions={**{t.name: t.version or "missing" for t in tools}, **(converters or {})},
        image_dpi=settings.image_dpi,
        lang_candidates=settings.ocr_lang_candidates, lang_default=settings.ocr_lang_default,
    )


def with_candidates(settings: Settings, cache: ProbeCache | None = None) -> Settings:
    """Under OCR_LANG=auto without OCR_LANG_CANDIDATES: the settings with the installed languages as
    the candidates, found once here, so the job key and every worker (a cluster's too) use one list."""
    if settings.ocr_lang != "auto":
        return settings
    installed = tesseract_languages(settings, cache)
    return replace(settings, ocr_lang_candidates=tuple(lang_candidates(settings, installed)))


def converter_versions(settings: Settings, cache: ProbeCache | None = None) -> dict[str, str]:
    """The CONVERT stage's converters that this run uses, with their versions (they go into the job
    profile: a new LibreOffice gives new job keys, as a new Tesseract does): LibreOffice unless
    OFFICE_INPUT=off (with auto, only when it answers), WeasyPrint (e-mail) when installed. OFFICE_INPUT=on
    without a LibreOffice that answers is a MissingToolError."""
    found: dict[str, str] = {}
    if settings.office_input != "off":
        env = dict(settings.tool_env)
        version = (cache or ProbeCache()).version(settings.soffice, ("--version",), env,
                                                  lambda: soffice_version(settings.soffice, env),
                                                  companions=VERSION_FILES)
        if version:
            found["soffice"] = version
        elif settings.office_input == "on":
            raise MissingToolError(f"OFFICE_INPUT=on, but LibreOffice ({' '.join(settings.soffice)}) does not run; "
                                   "run 'ocrpipe doctor' for the install command, or set OFFICE_INPUT=auto")
    version = weasyprint_version()
    if version:
        found["weasyprint"] = version
    return found


def check_tools(settings: Settings, cache: ProbeCache | None = None) -> dict[str, object]:
    """The job profile, once every tool answers; otherwise a MissingToolError naming what to install.
    Tesseract's languages and LibreOffice are asked beside the other tools, not after them."""
    cache = cache or ProbeCache()
    with ThreadPoolExecutor(max_workers=2) as pool:
        languages = pool.submit(tesseract_languages, settings, cache)
        converters = pool.submit(converter_versions, settings, cache)
        tools = probe_tools(settings, cache)
        languages.result()  # remembered for this run: missing_languages and with_candidates find it there
        try:
            converted: dict[str, str] | MissingToolError = converters.result()
        except MissingToolError as exc:  # OFFICE_INPUT=on without LibreOffice: said after the tools' own errors
            converted = exc
    missing = [t.name for t in tools if not t.ok]
    if missing:
        raise MissingToolError(f"missing tool(s): {', '.join(missing)}; run 'ocrpipe doctor' for install commands")
    langs = missing_languages(settings, cache)
    if "osd" in langs:
        raise MissingToolError(f"Tesseract has no orientation data ('osd'), which ROTATE_PAGES={settings.rotate_pages} "
                               "needs; run 'ocrpipe doctor' for the install command, or set ROTATE_PAGES=off")
    if langs:
        named = "OCR_LANG_DEFAULT/OCR_LANG_CANDIDATES" if settings.ocr_lang == "auto" else "OCR_LANG"
        raise MissingToolError(f"Tesseract has no data for {named} language(s) {', '.join(langs)}; "
                               "run 'ocrpipe doctor' for install commands")
    if isinstance(converted, MissingToolError):
        raise converted
    return build_profile(with_candidates(settings, cache), tools, converted)
