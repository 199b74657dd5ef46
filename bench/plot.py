"""The benchmark report as a plain SVG (no plotting library): wall time per round for ocrpipe and each
baseline, the ratios against their targets, and the concurrency sweep, so noise and margin show at a glance.

Usage: ``python bench/plot.py REPORT.json OUT.svg`` (``benchmarks.py --plot OUT.svg`` calls it too)."""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any, Sequence

WIDTH, PANEL_HEIGHT, MARGIN = 640, 220, 56
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
Series = tuple[str, Sequence[float | None]]


def _panel(top: float, title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str,
           target: float | None = None) -> list[str]:
    """A line chart (points joined per series) over ``labels``, with an optional dashed target line."""
    values = [v for _, vs in series for v in vs if v is not None] + ([target] if target else [])
    high = max(values, default=1.0) * 1.15 or 1.0
    low = 0.0 if unit == "s" else min(values, default=0.0) * 0.9
    plot_w, plot_h = WIDTH - 2 * MARGIN, PANEL_HEIGHT - 70
    x0, y0 = MARGIN, top + 40

    def x(i: int) -> float:
        return x0 + (plot_w * (i + 0.5) / max(1, len(labels)))

    def y(v: float) -> float:
        return y0 + plot_h - (v - low) / ((high - low) or 1.0) * plot_h

    out = [f'<text x="{x0}" y="{top + 18}" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{x0}" y="{y0}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for frac in (0.0, 0.5, 1.0):
        v = low + (high - low) * frac
        out.append(f'<text x="{x0 - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">{v:.2f}{unit}</text>')
    for i, label in enumerate(labels):
        out.append(f'<text x="{x(i):.1f}" y="{y0 + plot_h + 14}" text-anchor="middle" font-size="10">'
                   f'{escape(label)}</text>')
    if target is not None:
        out.append(f'<line x1="{x0}" x2="{x0 + plot_w}" y1="{y(target):.1f}" y2="{y(target):.1f}" '
                   f'stroke="#555" stroke-dasharray="5,4"/><text x="{x0 + plot_w - 4}" y="{y(target) - 4:.1f}" '
                   f'text-anchor="end" font-size="10">target {target:g}</text>')
    for n, (name, vs) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        points = [(x(i), y(v)) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="'
                       + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"/>' for px, py in points]
        out.append(f'<text x="{x0 + 8 + 150 * n}" y="{top + 34}" font-size="11" fill="{colour}">'
                   f'● {escape(name)}</text>')
    return out


def panels(report: dict[str, Any]) -> list[tuple[str, list[str], list[Series], str, float | None]]:
    """What to draw for this report: (title, x labels, series, unit, target) per panel."""
    drawn = []
    single = report.get("singleDocument")
    if single:
        rounds = single["rounds"]
        labels = [f"round {n + 1}" for n in range(len(rounds))]
        drawn.append((f"One {single['pages']}-page document: wall time per round", labels,
                      [("ocrpipe", [r["ocrpipeWallSeconds"] for r in rounds]),
                       (single["baseline"], [r["baselineWallSeconds"] for r in rounds])], "s", None))
        drawn.append((f"ocrpipe / {single['baseline']} (median {single['medianRatio']}, CPU "
                      f"{single.get('medianCpuRatio')})", labels,
                      [("wall ratio", [r["ratio"] for r in rounds]),
                       ("CPU ratio", [r.get("cpuRatio") for r in rounds])], "×", single["target"]))
    if report.get("rounds"):
        rounds = report["rounds"]
        labels = [f"round {r['round'] + 1}" for r in rounds]
        combos = sorted({(run["prepConcurrency"], run["ocrConcurrency"]) for r in rounds for run in r["runs"]})

        def run_of(rnd: dict[str, Any], combo: tuple[int, int]) -> dict[str, Any] | None:
            return next((run for run in rnd["runs"] if (run["prepConcurrency"], run["ocrConcurrency"]) == combo), None)

        walls: list[Series] = [(f"ocrpipe P{p}/O{o}", [(run_of(r, (p, o)) or {}).get("wallSeconds") for r in rounds])
                               for p, o in combos]
        for key, name in (("sequential", "ocrmypdf sequential"), ("fileParallel", "ocrmypdf file-parallel")):
            walls.append((name, [(r["baselines"] or {}).get(key, {}).get("wallSeconds") for r in rounds]))
        drawn.append(("Mixed workload: wall time per round", labels, walls, "s", None))
        ratios: list[Series] = [(f"P{p}/O{o} vs best baseline",
                                 [((run_of(r, (p, o)) or {}).get("ratios") or {}).get("vsBestBaseline") for r in rounds])
                                for p, o in combos]
        target = next((row.get("target") for row in report.get("summary", []) if row.get("target")), None)
        drawn.append(("Mixed workload: ocrpipe / best baseline", labels, ratios, "×", target))
        if len(combos) > 1:
            summary = {(row["prepConcurrency"], row["ocrConcurrency"]): row for row in report.get("summary", [])}
            drawn.append(("Concurrency sweep: median wall time", [f"P{p}/O{o}" for p, o in combos],
                          [("median wall", [summary[c]["medianWallSeconds"] if c in summary else None
                                            for c in combos])], "s", None))
    return drawn


def render(report: dict[str, Any]) -> str:
    drawn = panels(report)
    height = max(1, len(drawn)) * PANEL_HEIGHT + 10
    body = [line for n, (title, labels, series, unit, target) in enumerate(drawn)
            for line in _panel(n * PANEL_HEIGHT, title, labels, series, unit=unit, target=target)]
    if not drawn:
        body.append('<text x="20" y="30">nothing to draw: the report has no rounds</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


def plot(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report), encoding="utf-8")


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: plot.py REPORT.json OUT.svg", file=sys.stderr)
        return 2
    plot(json.loads(Path(argv[0]).read_text(encoding="utf-8")), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
