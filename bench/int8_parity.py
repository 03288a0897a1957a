#!/usr/bin/env python3
"""Parity of alloy's 8-bit AdamW with bitsandbytes' AdamW8bit, both against fp32 AdamW (GPU).

    python3 bench/int8_parity.py --lib build-gpu/bench/liballoy_capi.so --dtypes fp32,bf16 \
        --out int8_parity.json

alloy is driven through the ctypes shim bench/alloy_capi.cu (target alloy_capi); bitsandbytes is
the carried 0.50.2 wheel.

a) Codebooks: alloy's signed / unsigned maps against bitsandbytes.functional.create_dynamic_map
   and against the qmap1 / qmap2 an AdamW8bit actually stores, bit for bit (int32 views).
b) Trajectories: for each seed and param dtype, four optimizers start from the same params and
   get the same gradients for --steps steps:
     ref         torch.optim.AdamW(foreach=False) on fp32 copies (the reference)
     bnb_int8    bitsandbytes.optim.AdamW8bit
     alloy_int8  alloy adamw_int8 (state::Int8Blockwise)
     alloy_fp32  alloy adamw_fp32 on fp32 params (sanity: must track the reference to ~1e-6)
   and, for bf16 params, a fifth:
     alloy_int8_sr  alloy adamw_int8_sr: the same 8-bit state, bf16 parameters rounded
                    stochastically (Options::param_rounding) instead of to nearest
   Distances from the reference after the last step: mean |p - p_ref|, max |p - p_ref|, and
   rel_l2 = ||p - p_ref|| / ||p_ref - p0|| (relative to how far the reference moved).
c) Verdict (reported, not asserted): mean over seeds of alloy_int8's rel_l2 <= bnb_int8's, no
   slack; the per-seed count is printed too; for bf16 the same for alloy_int8_sr, reported apart
   (the verdict is alloy's default rounding). Everything goes to --out as JSON.

Diagnostics (docs/policies/int8.md): --weight-decay sets every optimizer's decay, --alloy-weight-decay
alloy's 8-bit runs' only, --grad-bias the weight of the fixed direction in the gradients.

Exit code: 0 when everything ran (whatever the verdict), 2 for a missing .so / bitsandbytes / GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity_common import (AlloyLib, AlloyOptimizer, Missing, check_seeds_steps,  # noqa: E402
                           mean_std, parse_choices)
from anchors import torch_state_bytes  # noqa: E402  (bench/anchors.py: counts bnb's shared qmaps once)

HP = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
DTYPES = {"fp32": (torch.float32, 0), "bf16": (torch.bfloat16, 1)}  # name -> (torch dtype, capi code)
# ~6.07M elements. w_odd's numel (1,027,000) is not a multiple of 256 (partial last block);
# bias (1000 elements) is below both libraries' 4096-element threshold, so it keeps fp32 moments.
SHAPES = {
    "w_square": (1024, 1024),
    "w_tall": (4096, 1024),
    "w_odd": (1000, 1027),
    "bias": (1000,),
}
GRAD_NOISE, GRAD_BIAS = 0.01, 0.003  # g = 0.01 * randn + 0.003 * fixed per-tensor direction
IMPLS = ("bnb_int8", "alloy_int8", "alloy_fp32", "alloy_int8_sr")  # the last: bf16 runs only
METRICS = ("mean_abs", "max_abs", "rel_l2")


# ----------------------------------------------------------------------------- bitsandbytes

def import_bnb():
    try:
        import bitsandbytes
        import bitsandbytes.functional  # noqa: F401
        import bitsandbytes.optim  # noqa: F401
    except Exception as e:  # ImportError, or its native library failing to load
        raise Missing(f"bitsandbytes cannot be imported ({type(e).__name__}: {e}); install the carried "
                      f"wheel: pip install bitsandbytes-0.50.2-*.whl") from e
    return bitsandbytes


# ----------------------------------------------------------------------------- a) codebooks

def compare_bits(name: str, alloy: torch.Tensor, other: torch.Tensor | None, show: int = 5) -> dict:
    """Bit-for-bit comparison of two 256-entry fp32 maps through their int32 views."""
    if other is None:
        print(f"  {name}: absent, not compared")
        return {"present": False}
    if other.dtype != torch.float32:  # a cast could hide differences: report it, compare the cast
        print(f"  {name}: bnb's map is {other.dtype}, compared after a cast to float32")
    src_dtype = str(other.dtype)
    other = other.detach().to("cpu", torch.float32).contiguous().flatten()
    if other.numel() != alloy.numel():
        print(f"  {name}: {other.numel()} entries vs alloy's {alloy.numel()}")
        return {"present": True, "dtype": src_dtype, "numel": other.numel(), "differing": None}
    a, b = alloy.view(torch.int32), other.view(torch.int32)
    idx = (a != b).nonzero().flatten().tolist()
    first = [{"index": i, "alloy_hex": f"{a[i].item() & 0xFFFFFFFF:08x}",
              "bnb_hex": f"{b[i].item() & 0xFFFFFFFF:08x}",
              "alloy": alloy[i].item(), "bnb": other[i].item()} for i in idx[:show]]
    print(f"  {name}: {len(idx)} of 256 entries differ"
          + "".join(f"\n    [{d['index']}] alloy {d['alloy_hex']} ({d['alloy']:.9g})"
                    f"  bnb {d['bnb_hex']} ({d['bnb']:.9g})" for d in first))
    return {"present": True, "dtype": src_dtype, "differing": len(idx), "first_differing": first}


def check_codebooks(lib: AlloyLib, bnb) -> dict:
    print("[int8_parity] codebooks (alloy vs bitsandbytes, int32 views):")
    alloy = {"signed": torch.tensor(lib.codebook(0), dtype=torch.float32),
             "unsigned": torch.tensor(lib.codebook(1), dtype=torch.float32)}
    F = bnb.functional
    out = {
        "signed_vs_create_dynamic_map": compare_bits(
            "signed   vs create_dynamic_map(signed=True) ", alloy["signed"], F.create_dynamic_map(signed=True)),
        "unsigned_vs_create_dynamic_map": compare_bits(
            "unsigned vs create_dynamic_map(signed=False)", alloy["unsigned"], F.create_dynamic_map(signed=False)),
    }
    # The maps an AdamW8bit really uses: one step on a tensor large enough to be quantized.
    p = torch.randn(8192, device="cuda", requires_grad=True)
    p.grad = torch.randn_like(p)
    opt = bnb.optim.AdamW8bit([p], **HP)
    opt.step()
    st = opt.state[p]
    out["signed_vs_state_qmap1"] = compare_bits("signed   vs AdamW8bit state['qmap1']    ",
                                                alloy["signed"], st.get("qmap1"))
    out["unsigned_vs_state_qmap2"] = compare_bits("unsigned vs AdamW8bit state['qmap2']    ",
                                                  alloy["unsigned"], st.get("qmap2"))
    out["bnb_state_keys"] = sorted(st.keys())
    return out


# ----------------------------------------------------------------------------- b) trajectories

def distance(ps: list[torch.Tensor], refs: list[torch.Tensor], p0s: list[torch.Tensor],
             moved: list[torch.Tensor] | None = None) -> dict:
    """Distance of ps from refs over all tensors together, accumulated in fp64; rel_l2 divides by
    how far `moved` (default refs) went from p0s. Per-tensor rel_l2 too."""
    moved = refs if moved is None else moved
    n, s_abs, s_sq, s_move, s_ref, mx, nonfinite = 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0
    per_tensor = []
    for p, r, p0, mv in zip(ps, refs, p0s, moved):
        d = p.double() - r.double()
        nonfinite += int((~torch.isfinite(d)).sum().item())
        sq = (d * d).sum().item()
        move = ((mv.double() - p0.double()) ** 2).sum().item()
        n += d.numel()
        s_abs += d.abs().sum().item()
        s_sq += sq
        s_move += move
        s_ref += (r.double() ** 2).sum().item()
        mx = max(mx, d.abs().max().item())
        per_tensor.append(math.sqrt(sq / move) if move > 0 else float("nan"))
    return {
        "mean_abs": s_abs / n,
        "max_abs": mx,
        "rel_l2": math.sqrt(s_sq / s_move) if s_move > 0 else float("nan"),
        "rel_l2_of_param": math.sqrt(s_sq / s_ref) if s_ref > 0 else float("nan"),  # ||p - p_ref|| / ||p_ref||
        "rel_l2_per_tensor": per_tensor,
        "nonfinite": nonfinite,
    }


def run_seed(lib: AlloyLib, bnb, seed: int, dtype_name: str, steps: int, alloy_wd=None,
             grad_bias: float = GRAD_BIAS) -> dict:
    dt, dcode = DTYPES[dtype_name]
    names = list(SHAPES)
    shapes = [SHAPES[k] for k in names]
    gen = torch.Generator(device="cuda").manual_seed(seed)
    init = [(torch.randn(s, generator=gen, device="cuda") * 0.1).to(dt) for s in shapes]
    dirs = [torch.randn(s, generator=gen, device="cuda") for s in shapes]  # fixed gradient bias
    p0 = [x.float() for x in init]  # every optimizer starts from these values

    # reference: torch fp32 AdamW, unfused single-tensor path
    ref = [x.clone().requires_grad_(True) for x in p0]
    for p in ref:
        p.grad = torch.zeros_like(p)
    ref_opt = torch.optim.AdamW(ref, foreach=False, **HP)
    # bitsandbytes AdamW8bit: params and grads of the same dtype (bnb requires it)
    bp = [x.clone().requires_grad_(True) for x in init]
    for p in bp:
        p.grad = torch.zeros_like(p)
    bnb_opt = bnb.optim.AdamW8bit(bp, **HP)
    # alloy: int8 on the run's dtype, fp32 (sanity) on fp32 params; --alloy-weight-decay changes
    # the 8-bit runs' decay only (a diagnostic: the reference and bitsandbytes keep HP's)
    h8 = HP if alloy_wd is None else dict(HP, weight_decay=alloy_wd)
    a8 = AlloyOptimizer(lib, "adamw_int8", [x.clone() for x in init], names, dcode, h8)
    a32 = AlloyOptimizer(lib, "adamw_fp32", [x.clone() for x in p0], names, 0, HP)
    asr = (AlloyOptimizer(lib, "adamw_int8_sr", [x.clone() for x in init], names, dcode, h8)
           if dt == torch.bfloat16 else None)

    t0 = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            gg = torch.Generator(device="cuda").manual_seed(seed * 1000 + step)
            with torch.no_grad():
                for i, s in enumerate(shapes):
                    g = GRAD_NOISE * torch.randn(s, generator=gg, device="cuda") + grad_bias * dirs[i]
                    g_dt = g.to(dt)
                    g32 = g_dt.float()  # the fp32 optimizers see exactly the dtype-rounded gradient
                    ref[i].grad.copy_(g32)
                    bp[i].grad.copy_(g_dt)
                    a8.grads[i].copy_(g_dt)
                    a32.grads[i].copy_(g32)
                    if asr:
                        asr.grads[i].copy_(g_dt)
            ref_opt.step()
            bnb_opt.step()  # synchronizes after every param itself
            a8.step()
            a32.step()
            if asr:
                asr.step()
        torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        refs = [p.detach() for p in ref]
        dist = {
            "bnb_int8": distance([p.detach().float() for p in bp], refs, p0),
            "alloy_int8": distance([p.float() for p in a8.params], refs, p0),
            "alloy_fp32": distance(a32.params, refs, p0),
        }
        if asr:
            dist["alloy_int8_sr"] = distance([p.float() for p in asr.params], refs, p0)
        # JSON only: alloy int8 against bnb int8 directly (rel_l2 still over the reference's move)
        dist["alloy_int8_vs_bnb_int8"] = distance([p.float() for p in a8.params],
                                                  [p.detach().float() for p in bp], p0, moved=refs)
        state = {
            "ref": sum(torch_state_bytes(ref_opt).values()),
            "bnb_int8": sum(torch_state_bytes(bnb_opt).values()),
            "bnb_int8_by_key": torch_state_bytes(bnb_opt),
            "alloy_int8": a8.state_bytes(),
            "alloy_fp32": a32.state_bytes(),
        }
        if asr:
            state["alloy_int8_sr"] = asr.state_bytes()
    finally:
        a8.close()
        a32.close()
        if asr:
            asr.close()
    return {"seed": seed, "dtype": dtype_name, "seconds": secs, "distance": dist, "state_bytes": state,
            "ref_moved_l2": math.sqrt(sum(((r.double() - q.double()) ** 2).sum().item()
                                          for r, q in zip(refs, p0)))}


def aggregate(rows: list[dict]) -> dict:
    agg = {impl: {m: mean_std([r["distance"][impl][m] for r in rows]) for m in METRICS}
           for impl in IMPLS if impl in rows[0]["distance"]}
    agg["alloy_fp32"]["rel_l2_of_param"] = mean_std([r["distance"]["alloy_fp32"]["rel_l2_of_param"]
                                                     for r in rows])
    a = [r["distance"]["alloy_int8"]["rel_l2"] for r in rows]
    b = [r["distance"]["bnb_int8"]["rel_l2"] for r in rows]
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    agg["verdict"] = {
        "alloy_no_farther": bool(ma <= mb),  # means compared as they are: no slack
        "alloy_rel_l2_mean": ma,
        "bnb_rel_l2_mean": mb,
        "seeds_alloy_no_farther": sum(x <= y for x, y in zip(a, b)),
        "seeds": len(rows),
    }
    if "alloy_int8_sr" in agg:
        s = [r["distance"]["alloy_int8_sr"]["rel_l2"] for r in rows]
        agg["verdict_sr"] = {
            "alloy_no_farther": bool(statistics.fmean(s) <= mb),
            "alloy_rel_l2_mean": statistics.fmean(s),
            "bnb_rel_l2_mean": mb,
            "seeds_alloy_no_farther": sum(x <= y for x, y in zip(s, b)),
            "seeds": len(rows),
        }
    fp32_sanity = max(r["distance"]["alloy_fp32"]["rel_l2_of_param"] for r in rows)
    agg["alloy_fp32_sanity"] = {"max_rel_l2_of_param": fp32_sanity, "ok": bool(fp32_sanity <= 1e-5)}
    return agg


# ----------------------------------------------------------------------------- main

def print_table(doc: dict) -> None:
    print("\nint8 parity after {} steps, {} seeds (mean +- std over seeds; distance from torch fp32 "
          "AdamW)".format(doc["steps"], len(doc["seeds"])))
    hdr = (f"{'dtype':5s} {'impl':13s} " + " ".join(f"{m:>21s}" for m in ("mean|dp|", "max|dp|", "rel_l2"))
           + f" {'state B/param':>13s}")  # the order of METRICS
    print(hdr)
    print("-" * len(hdr))
    nparams = doc["params"]
    for dname, run in doc["runs"].items():
        agg, rows = run["aggregate"], run["per_seed"]
        for impl in (i for i in IMPLS if i in agg):
            cells = [f"{agg[impl][m]['mean']:.3e} +- {agg[impl][m]['std']:.1e}" for m in METRICS]
            sb = rows[0]["state_bytes"][impl] / nparams
            print(f"{dname:5s} {impl:13s} {cells[0]:>21s} {cells[1]:>21s} {cells[2]:>21s} {sb:13.3f}")
        v = agg["verdict"]
        print(f"{dname:5s} alloy no farther than bitsandbytes: {'YES' if v['alloy_no_farther'] else 'NO'} "
              f"(mean rel_l2 {v['alloy_rel_l2_mean']:.4e} vs {v['bnb_rel_l2_mean']:.4e}; alloy <= bnb in "
              f"{v['seeds_alloy_no_farther']}/{v['seeds']} seeds); alloy fp32 sanity "
              f"{'OK' if agg['alloy_fp32_sanity']['ok'] else 'CHECK'} "
              f"(max ||p-p_ref||/||p_ref|| {agg['alloy_fp32_sanity']['max_rel_l2_of_param']:.2e})")
        if "verdict_sr" in agg:
            v = agg["verdict_sr"]
            print(f"{dname:5s} with stochastic rounding of the bf16 parameters: alloy no farther: "
                  f"{'YES' if v['alloy_no_farther'] else 'NO'} (mean rel_l2 {v['alloy_rel_l2_mean']:.4e} "
                  f"vs {v['bnb_rel_l2_mean']:.4e}; {v['seeds_alloy_no_farther']}/{v['seeds']} seeds)")
    cb = doc["codebooks"]
    diffs = [v.get("differing") for k, v in cb.items() if isinstance(v, dict) and v.get("present")]
    print(f"codebooks: differing entries per comparison {diffs}")
    print(f"alloy no farther than bitsandbytes (default rounding): {'YES' if doc['verdict'] else 'NO'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default="build-gpu/bench/liballoy_capi.so", help="path of liballoy_capi.so")
    ap.add_argument("--dtypes", default="fp32", help=f"comma list of {','.join(DTYPES)}")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--out", default="int8_parity.json")
    ap.add_argument("--alloy-weight-decay", type=float, default=None,
                    help="diagnostic: weight decay of alloy's 8-bit runs only (default: the same as the others)")
    ap.add_argument("--weight-decay", type=float, default=HP["weight_decay"],
                    help=f"weight decay of every optimizer (default {HP['weight_decay']})")
    ap.add_argument("--grad-bias", type=float, default=GRAD_BIAS,
                    help=f"diagnostic: the fixed direction's weight in every gradient (default {GRAD_BIAS})")
    args = ap.parse_args()
    HP["weight_decay"] = args.weight_decay
    dtypes = parse_choices(ap, args.dtypes, DTYPES, "dtype")
    check_seeds_steps(ap, args)

    try:
        if not torch.cuda.is_available():
            raise Missing("CUDA is not available")
        lib = AlloyLib(Path(args.lib))
        bnb = import_bnb()
    except Missing as e:
        print(f"int8_parity: {e}", file=sys.stderr)
        return 2

    doc = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "bitsandbytes": getattr(bnb, "__version__", "?"),
        "lib": str(Path(args.lib).resolve()),
        "hp": HP,
        "alloy_weight_decay": args.alloy_weight_decay,
        "shapes": SHAPES,
        "params": sum(math.prod(s) for s in SHAPES.values()),
        "grad": f"{GRAD_NOISE} * randn + {args.grad_bias} * fixed_dir (randn per tensor), generator seed*1000+step",
        "steps": args.steps,
        "seeds": list(range(args.seeds)),
        "codebooks": check_codebooks(lib, bnb),
        "runs": {},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    for dname in dtypes:
        rows = []
        for seed in doc["seeds"]:
            r = run_seed(lib, bnb, seed, dname, args.steps, args.alloy_weight_decay, args.grad_bias)
            rows.append(r)
            d = r["distance"]
            print(f"[int8_parity] {dname} seed {seed}: rel_l2 bnb {d['bnb_int8']['rel_l2']:.4e} "
                  f"alloy {d['alloy_int8']['rel_l2']:.4e}"
                  + (f" alloy_sr {d['alloy_int8_sr']['rel_l2']:.4e}" if "alloy_int8_sr" in d else "")
                  + f" | alloy_fp32 {d['alloy_fp32']['rel_l2']:.2e} | "
                  f"state B bnb {r['state_bytes']['bnb_int8']} alloy {r['state_bytes']['alloy_int8']} | "
                  f"{r['seconds']:.1f} s", flush=True)
            torch.cuda.empty_cache()
        doc["runs"][dname] = {"per_seed": rows, "aggregate": aggregate(rows)}
        out.write_text(json.dumps(doc, indent=2) + "\n")  # partial results survive a crash

    doc["verdict"] = all(run["aggregate"]["verdict"]["alloy_no_farther"] for run in doc["runs"].values())
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
