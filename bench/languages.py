"""OCR_LANG=auto benchmark: accented-word recall and CPU seconds on a generated trilingual set, against one
fixed language (eng) and all three at once (deu+eng+fra).

The set: one page each in French, German and English (tests/inputs.py: real sentences with their accents,
300 DPI). Each variant OCRs every page with ocrmypdf and the options ocrpipe gives it, one call at a time with
``--jobs 1``; ``auto`` runs ocrpipe's own decision (stages/language.py) on the first reading's sidecar text
and reads a page again in ``<detected>+eng`` when it says so. The variants run interleaved, round after
round (the machine's speed drifts); the median over rounds is reported.

Usage::

    python bench/languages.py --rounds 3 --out /tmp/languages.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import inputs  # noqa: E402
from pdfminer.high_level import extract_text  # noqa: E402
from sampling import children_cpu_seconds  # noqa: E402

from ocrpipe.stages.language import identify  # noqa: E402
from ocrpipe.stages.ocrtext import sidecar_pages  # noqa: E402
from ocrpipe.tools.ocrmypdf import build_argv  # noqa: E402

LANGS = ("deu", "eng", "fra")
DEFAULT = "eng"
VARIANTS = ("auto", "eng", "deu+eng+fra")
OCRMYPDF = (sys.executable, "-m", "ocrmypdf")


def ocr(source: Path, output: Path, lang: str, sidecar: Path | None = None) -> None:
    argv = build_argv(OCRMYPDF, source, output, lang=lang, jobs=1, sidecar=sidecar)
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def read_page(variant: str, source: Path, folder: Path) -> tuple[Path, int, str]:
    """The output, the ocrmypdf calls it took, and the languages of the reading kept."""
    output = folder / f"{source.stem}.{variant}.pdf"
    if variant != "auto":
        ocr(source, output, variant)
        return output, 1, variant
    sidecar = folder / f"{source.stem}.txt"
    ocr(source, output, DEFAULT, sidecar)
    plan = identify(sidecar_pages(sidecar, 1), LANGS, DEFAULT)
    if not plan.reread:
        return output, 1, DEFAULT
    ocr(source, output, plan.whole_reading())
    return output, 2, plan.whole_reading()


def recall(pdf: Path, lang: str) -> tuple[int, int]:
    words = set(re.findall(r"\w+", extract_text(str(pdf)).lower()))
    wanted = inputs.accented_words(lang)
    return sum(w in words for w in wanted), len(wanted)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pages = {lang: inputs.pages_pdf(folder / f"{lang}.pdf", [inputs.language_page(lang)]) for lang in LANGS}
        rounds: list[dict[str, Any]] = []
        for n in range(args.rounds):
            result: dict[str, Any] = {}
            order = VARIANTS[n % len(VARIANTS):] + VARIANTS[:n % len(VARIANTS)]  # interleaved, rotating
            for variant in order:
                cpu0, t0 = children_cpu_seconds() or 0.0, time.monotonic()
                found, total, calls, readings = 0, 0, 0, {}
                for lang, source in pages.items():
                    output, used, reading = read_page(variant, source, folder)
                    right, wanted = recall(output, lang)
                    found, total, calls = found + right, total + wanted, calls + used
                    readings[lang] = {"reading": reading, "accented": f"{right}/{wanted}"}
                result[variant] = {"cpuSeconds": round((children_cpu_seconds() or 0.0) - cpu0, 2),
                                   "wallSeconds": round(time.monotonic() - t0, 2), "recall": round(found / total, 3),
                                   "accentedRight": f"{found}/{total}", "ocrmypdfCalls": calls, "pages": readings}
            rounds.append(result)
            print(f"round {n + 1}: " + ", ".join(f"{v} {r['accentedRight']} in {r['cpuSeconds']} s CPU"
                                                 for v, r in result.items()), flush=True)
    summary = {variant: {"recall": rounds[0][variant]["recall"], "accentedRight": rounds[0][variant]["accentedRight"],
                         "cpuSecondsMedian": statistics.median(r[variant]["cpuSeconds"] for r in rounds),
                         "ocrmypdfCalls": rounds[0][variant]["ocrmypdfCalls"],
                         "pages": rounds[0][variant]["pages"]} for variant in VARIANTS}
    report = {"rounds": rounds, "summary": summary}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
