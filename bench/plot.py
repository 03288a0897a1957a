#!/usr/bin/env python3
"""Grouped bar chart of fraction_of_copy per row, as a hand-written SVG (standard library only).

    python3 bench/plot.py bench/results/latest.json docs/benchmarks.svg

Groups are workload/dtype; one bar per (impl, composition) series; dashed target lines at 0.90 and 0.85.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.sax.saxutils import escape

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
TARGETS = [(0.90, "#2e7d32"), (0.85, "#ef6c00")]

BAR_W, BAR_GAP, GROUP_GAP = 26, 4, 36
PLOT_H, TOP, LEFT, RIGHT = 320, 64, 64, 96
FONT = "font-family='Helvetica,Arial,sans-serif'"


def text(x, y, s, size=12, anchor="start", extra=""):
    return f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' {FONT} {extra}>{escape(str(s))}</text>"


def render(doc: dict) -> str:
    rows = [r for r in doc.get("rows", []) if isinstance(r.get("fraction_of_copy"), (int, float))]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(f"{r.get('workload')}/{r.get('dtype')}", []).append(r)
    series = list(dict.fromkeys(f"{r.get('impl')} {r.get('composition', '')}".strip() for r in rows))
    color = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}

    ymax = max([1.0] + [r["fraction_of_copy"] * 1.08 for r in rows])
    ymax = -(-ymax * 10 // 1) / 10  # round up to 0.1
    y = lambda v: TOP + PLOT_H * (1 - v / ymax)

    plot_w = sum(len(g) * (BAR_W + BAR_GAP) - BAR_GAP for g in groups.values()) + GROUP_GAP * (len(groups) + 1)
    plot_w = max(plot_w, 360)
    legend_cols = max(1, int((LEFT + plot_w + RIGHT - 40) // 260))
    legend_rows = -(-len(series) // legend_cols)
    width = LEFT + plot_w + RIGHT
    height = TOP + PLOT_H + 56 + 22 * legend_rows + 16

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}'>",
           f"<rect width='{width}' height='{height}' fill='white'/>"]
    title = "Optimizer step throughput as a fraction of device-to-device copy bandwidth"
    sub = " | ".join(str(x) for x in (
        doc.get("device"),
        f"copy {doc['copy_gbs']:.0f} GB/s" if isinstance(doc.get("copy_gbs"), (int, float)) else None,
        f"commit {str(doc['commit'])[:10]}" if doc.get("commit") else None,
        doc.get("date")) if x)
    out.append(text(LEFT, 24, title, 15, extra="font-weight='bold'"))
    out.append(text(LEFT, 44, sub, 11, extra="fill='#555'"))

    # Y grid and axis labels.
    step = 0.1 if ymax <= 1.2 else 0.2
    v = 0.0
    while v <= ymax + 1e-9:
        out.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#e5e5e5'/>")
        out.append(text(LEFT - 6, y(v) + 4, f"{v:.1f}", 11, "end"))
        v += step
    out.append(text(16, TOP + PLOT_H / 2, "fraction of copy bandwidth", 12, "middle",
                    f"transform='rotate(-90 16 {TOP + PLOT_H / 2:.1f})'"))

    # Bars.
    x = LEFT + GROUP_GAP
    for gname, grows in groups.items():
        gx0 = x
        for r in grows:
            f = r["fraction_of_copy"]
            s = f"{r.get('impl')} {r.get('composition', '')}".strip()
            out.append(f"<rect x='{x}' y='{y(f):.1f}' width='{BAR_W}' height='{y(0) - y(f):.1f}' fill='{color[s]}'>"
                       f"<title>{escape(s)} {escape(gname)}: {f:.3f} of copy, {r.get('ms_median', 0):.3f} ms</title></rect>")
            out.append(text(x + BAR_W / 2, y(f) - 4, f"{f:.2f}", 10, "middle"))
            x += BAR_W + BAR_GAP
        x += GROUP_GAP - BAR_GAP
        out.append(text((gx0 + x - GROUP_GAP) / 2, y(0) + 18, gname, 12, "middle"))

    # Target lines, drawn over the bars, labelled at the right edge.
    for t, c in TARGETS:
        out.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y(t):.1f}' y2='{y(t):.1f}' stroke='{c}' "
                   f"stroke-width='1.5' stroke-dasharray='6 4'/>")
    (t_hi, c_hi), (t_lo, c_lo) = TARGETS  # 0.90 label above its line, 0.85 below, so they never overlap
    out.append(text(LEFT + plot_w + 6, y(t_hi) - 2, f"target {t_hi:.2f}", 11, extra=f"fill='{c_hi}'"))
    out.append(text(LEFT + plot_w + 6, y(t_lo) + 11, f"target {t_lo:.2f}", 11, extra=f"fill='{c_lo}'"))
    out.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y(0):.1f}' y2='{y(0):.1f}' stroke='#333'/>")
    out.append(f"<line x1='{LEFT}' x2='{LEFT}' y1='{TOP}' y2='{y(0):.1f}' stroke='#333'/>")

    # Legend.
    ly0 = TOP + PLOT_H + 48
    for i, s in enumerate(series):
        lx = LEFT + (i % legend_cols) * 260
        ly = ly0 + (i // legend_cols) * 22
        out.append(f"<rect x='{lx}' y='{ly - 10}' width='12' height='12' fill='{color[s]}'/>")
        out.append(text(lx + 18, ly, s, 12))
    if not rows:
        out.append(text(LEFT + plot_w / 2, TOP + PLOT_H / 2, "no rows with fraction_of_copy", 14, "middle"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    doc = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(doc))
    print(f"plot: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
