#!/usr/bin/env python3
"""Merge alloy_bench rows and anchor rows into one results file and print a table (last).

    python3 bench/merge.py --alloy alloy.json --anchors anchors.json \
        --out bench/results/latest.json [--commit SHA --command "..."]

fraction_of_copy is recomputed for every row from one denominator: alloy.json's copy_gbs
(cudaMemcpyAsync D2D) when present, else anchors.json's copy_gbs_torch.
Every alloy row gets speedup_vs_<anchor impl> = anchor ms_median / alloy ms_median
(same workload and dtype), e.g. speedup_vs_torch_fused, speedup_vs_torch_foreach, against the
anchors of its own family only: zeroth-order rows (composition containing "/Spsa", e.g.
Sgd/Fp32/PerParameter/Spsa) against zeroth-order anchors (mezo_loop, "Sgd/Spsa(MeZO loop)"),
every other row against every other anchor.
Standard library only; either input may be missing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path


def load(path: str | None) -> dict | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        print(f"merge: {path} not found, skipping", file=sys.stderr)
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        print(f"merge: {path} is not valid JSON ({e}), skipping", file=sys.stderr)
        return None


def nvidia_smi() -> tuple[str | None, str | None]:
    """(device name, driver version) of GPU 0, or Nones if nvidia-smi is absent or fails."""
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        first = r.stdout.strip().splitlines()[0]
        name, driver = (x.strip() for x in first.split(",", 1))
        return name, driver
    except Exception:
        return None, None


def ok(row: dict) -> bool:
    """A row with a usable timing."""
    return "error" not in row and isinstance(row.get("ms_median"), (int, float)) and row["ms_median"] > 0


def is_spsa(row: dict) -> bool:
    """A zeroth-order (SPSA) row: compared only with zeroth-order anchors, and vice versa."""
    return "/Spsa" in str(row.get("composition", ""))


def fraction_of_copy(row: dict, copy_gbs: float | None) -> float | None:
    try:
        return row["bytes_per_param"] * row["params"] / (row["ms_median"] / 1e3) / (copy_gbs * 1e9)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def merge(alloy: dict | None, anchors: dict | None, commit: str, command: str | None) -> dict:
    alloy, anchors = alloy or {}, anchors or {}
    alloy_rows = [dict(r, source="alloy") for r in alloy.get("rows", [])]
    anchor_rows = [dict(r, source="anchors") for r in anchors.get("rows", [])]
    rows = alloy_rows + anchor_rows

    copy_gbs, copy_src = alloy.get("copy_gbs"), "alloy_bench cudaMemcpyAsync"
    if not copy_gbs:
        copy_gbs, copy_src = anchors.get("copy_gbs_torch"), "torch copy_ (alloy_bench absent)"
    for r in rows:
        if ok(r):
            r["fraction_of_copy"] = fraction_of_copy(r, copy_gbs)

    # Speedups of alloy rows against every anchor impl present of the same family (is_spsa).
    anchor_ms = {(r["impl"], r["workload"], r["dtype"]): r["ms_median"] for r in anchor_rows if ok(r)}
    anchor_spsa = {r["impl"]: is_spsa(r) for r in anchor_rows if ok(r)}
    ratios = []
    for r in alloy_rows:
        if not ok(r):
            continue
        entry = {k: r.get(k) for k in ("impl", "composition", "workload", "dtype")}
        for a, spsa in anchor_spsa.items():
            if spsa != is_spsa(r):
                continue
            ms = anchor_ms.get((a, r["workload"], r["dtype"]))
            if ms is not None:
                r[f"speedup_vs_{a}"] = entry[f"speedup_vs_{a}"] = ms / r["ms_median"]
        ratios.append(entry)

    device, driver = alloy.get("device"), alloy.get("driver")
    if not device or not driver:
        smi_dev, smi_drv = nvidia_smi()
        device = device or smi_dev or anchors.get("device")
        driver = driver or smi_drv
    return {
        "device": device,
        "driver": driver,
        "cuda": alloy.get("cuda") or anchors.get("cuda"),
        "torch": anchors.get("torch"),
        "copy_gbs": copy_gbs,
        "copy_gbs_source": copy_src if copy_gbs else None,
        "copy_gbs_torch": anchors.get("copy_gbs_torch"),
        "commit": commit,
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "command": command,
        "rows": rows,
        "ratios": ratios,
    }


def fmt(v, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def table(doc: dict) -> str:
    # Group rows by (workload, dtype) in first-seen order; keep row order inside a group.
    order: dict[tuple, int] = {}
    for r in doc["rows"]:
        order.setdefault((r.get("workload"), r.get("dtype")), len(order))
    rows = sorted(enumerate(doc["rows"]), key=lambda ir: (order[(ir[1].get("workload"), ir[1].get("dtype"))], ir[0]))

    # "vs <anchor>" columns: the two torch ones always, the others only when some row has them.
    vs = ["torch_fused", "torch_foreach"] + [a for a in ("mezo_loop", "bnb_adamw8bit", "bnb_adamw32",
                                                       "adam_mini_official")
                                              if any(f"speedup_vs_{a}" in r for r in doc["rows"])]
    head = ["impl", "composition", "workload", "dtype", "ms_median", "frac_copy", "state B/param"] + \
           [f"vs {a}" for a in vs]
    lines = []
    for _, r in rows:
        base = [str(r.get("impl", "?")), str(r.get("composition", "-")), str(r.get("workload", "?")),
                str(r.get("dtype", "?"))]
        if not ok(r):
            lines.append(base + ["ERROR: " + str(r.get("error", "no timing"))[:60]])
            continue
        lines.append(base + [fmt(r["ms_median"], ".3f"), fmt(r.get("fraction_of_copy"), ".3f"),
                             fmt(r.get("state_bytes_per_param"), ".2f")] +
                     [fmt(r.get(f"speedup_vs_{a}"), ".2f") + ("x" if f"speedup_vs_{a}" in r else "") for a in vs])
    widths = [max([len(head[i])] + [len(l[i]) for l in lines if len(l) > i and not l[i].startswith("ERROR")])
              for i in range(len(head))]
    left = 4  # the first 4 columns are text, left-aligned; numbers right-aligned

    def render(cells):
        out = []
        for i, c in enumerate(cells):
            if c.startswith("ERROR"):
                out.append(c)
                break
            out.append(c.ljust(widths[i]) if i < left else c.rjust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([render(head), sep] + [render(l) for l in lines])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alloy", help="alloy_bench output JSON")
    ap.add_argument("--anchors", help="anchors.py output JSON")
    ap.add_argument("--out", default="bench/results/latest.json")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--command", default=None, help="the command that produced the results")
    args = ap.parse_args()

    alloy, anchors = load(args.alloy), load(args.anchors)
    if alloy is None and anchors is None:
        print("merge: no input found", file=sys.stderr)
        return 1
    doc = merge(alloy, anchors, args.commit, args.command)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")

    print(f"device {doc['device']}  driver {doc['driver']}  cuda {doc['cuda']}  torch {doc['torch']}")
    cg, ct = doc["copy_gbs"], doc["copy_gbs_torch"]
    print(f"copy {fmt(cg, '.1f')} GB/s ({doc['copy_gbs_source']}), torch copy_ {fmt(ct, '.1f')} GB/s")
    print(f"commit {doc['commit']}  date {doc['date']}  -> {out}")
    print()
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
