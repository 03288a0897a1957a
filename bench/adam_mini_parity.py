#!/usr/bin/env python3
"""Parity of alloy's Adam-mini (AdamW + share::PerBlock) with the official Adam-mini (GPU).

    python3 bench/adam_mini_parity.py --lib build-gpu/bench/liballoy_capi.so \
        --compositions adam_mini_fp32 --out adam_mini_parity.json

With --device cpu everything runs on the CPU: the official optimizer on CPU tensors, alloy's host
executor through build/.../bench/liballoy_capi_host.so (cmake -DALLOY_BUILD_HOST_CAPI=ON); the
CUDA executor equals the host executor bit for bit for PerBlock (tests/cuda/test_per_block.cu).

alloy is driven through the ctypes shim bench/alloy_capi.cu (alloy_capi_create_adam_mini, target
alloy_capi); the official optimizer is adam_mini.Adam_mini from the carried wheel adam-mini 1.1.1
(pure Python: pip install adam_mini-1.1.1-py3-none-any.whl).

Model: a small Llama-shaped parameter set with Hugging Face names (dim 256, 8 heads, 2 kv heads,
head_dim 32, MLP 688, vocab 1000, 2 layers, untied lm_head): 21 fp32 CUDA tensors, 1,897,728
elements, covering every branch of the official partition that a Llama model reaches: embedding
and lm_head (one block per row / token), q_proj and k_proj (one block per head of
dim * dim / n_heads elements; k_proj has n_kv_heads of them), v_proj, o_proj and the MLP (one block
per row), RMSNorm weights (the whole tensor, no weight decay).

For each seed (0 .. --seeds - 1) three or more optimizers start from the same params (randn * 0.02,
norm weights 1) and get the same gradients for --steps steps (generator seed * 1000 + step:
0.01 * randn + 0.003 * a fixed per-tensor direction, as int8_parity.py):
    official     adam_mini.Adam_mini(named_parameters, lr, betas, eps, weight_decay,
                 model_sharding=False, dim, n_heads, n_kv_heads): the reference
    alloy        each --compositions entry (adam_mini_fp32 by default; adam_mini_bf16 and
                 adam_mini_int8 keep bf16 / 8-bit first moments and are reported, not judged).
                 Params are fp32 for every composition.
    adamw        torch.optim.AdamW(foreach=False), same hyperparameters and the same no-decay
                 names: context only (how far Adam-mini is from AdamW).
Hyperparameters: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.1; weight decay is off
for names containing "norm", "ln" or "bias" on every side (the official rule).

Metrics after the last step, alloy against the official, per tensor, per partition group and over
all tensors (distances in fp64):
    max_rel  max |p_alloy - p_official| / (max |p_official - p0| + 1e-30)
    rel_l2   ||p_alloy - p_official|| / ||p_official - p0||   (relative to the distance travelled)
    max_abs  max |p_alloy - p_official|
State bytes of both: alloy_capi_state_bytes (moments, per-block v, per-tensor step counts); the
official's tensors in opt.state (m, vmean, v for bias), a tensor shared by several states counted
once (its int step counters are Python ints, not counted).

Partition check: for each tensor, the number of shared second moments (blocks) of
  - the official optimizer: opt.state[p]["vmean"].numel() (Q/K heads, rows, or 1 for the whole
    tensor; "bias" tensors keep an elementwise opt.state[p]["v"] instead),
  - alloy: numel / the block size that share::adam_mini_partition assigns, asked from the .so
    (alloy_capi_adam_mini_block: the same function the optimizer uses).
A tensor whose alloy count differs from the official is flagged as MISMATCH.

Verdict, for adam_mini_fp32: "alloy matches official Adam-mini within fp32 tolerance: YES" when,
in every seed and for every tensor (hence for all tensors together too),
    rel_l2 <= 1e-4  and  max_rel <= 1e-3,
no value is non-finite, and no tensor's block count differs. Bitwise equality is not expected:
the official code computes in the parameter dtype with torch's reductions (torch.mean over a
row / head, torch.sum / numel for a whole tensor, in torch's own summation order) and its own op
order (p -= lr * (m * ((1 / bc1) / (sqrt(vmean) / sqrt(bc2) + eps)))), while alloy sums a block in
its fixed 256-lane order and fuses the element update. Each step then differs by a few fp32
ulps; the gradients do not depend on the params here, so nothing amplifies those differences
and after 100 steps they should stay orders of magnitude below 1e-4 of the distance travelled
(an error in the partition, the bias correction, eps or weight decay shows up at 1e-2 or more).

The official Adam_mini prints (its constructor, and its first step's block count); everything
it writes to stdout is captured and kept in the JSON ("official_stdout"), and only its summary
line is shown. Its whole-tensor branch all-gathers across torch.cuda.device_count() GPUs;
without an initialized torch.distributed process group that would fail on a machine with more
than one GPU, so the script sets opt.world_size = 1 then (a single-process run, as here).

Exit code: 0 when everything ran (whatever the verdict), 1 when alloy failed (create/step error),
2 for a missing .so / adam_mini / GPU. Results go to --out as JSON (rewritten after every seed).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

try:
    import torch
except ImportError:  # keep the exit-2 contract even without torch
    print("adam_mini_parity: torch is not installed", file=sys.stderr)
    sys.exit(2)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anchors import torch_state_bytes  # noqa: E402  (bench/anchors.py: counts shared tensors once)
from parity_common import (AlloyFailed, AlloyLib, AlloyOptimizer, Missing, check_seeds_steps,  # noqa: E402
                           mean_std, parse_choices)

OFFICIAL_VERSION = "1.1.1"
OFFICIAL_WHEEL = "adam-mini 1.1.1 (the wheel carried to the GPU machine)"
HP = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
MODEL = dict(dim=256, n_heads=8, n_kv_heads=2, hidden=688, vocab=1000, layers=2)
NO_DECAY = ("norm", "ln", "bias")  # the official weight-decay mask (substrings of the lower-cased name)
COMPOSITIONS = ("adam_mini_fp32", "adam_mini_bf16", "adam_mini_int8")  # all on fp32 params
JUDGED = "adam_mini_fp32"
TOL_REL_L2, TOL_MAX_REL = 1e-4, 1e-3
TINY = 1e-30
GRAD_NOISE, GRAD_BIAS = 0.01, 0.003  # g = 0.01 * randn + 0.003 * fixed per-tensor direction
METRICS = ("rel_l2", "max_rel", "max_abs")


# ----------------------------------------------------------------------------- the model

def llama_params() -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the small Llama, in the order of a Hugging Face LlamaForCausalLM."""
    d, h, v = MODEL["dim"], MODEL["hidden"], MODEL["vocab"]
    head_dim = d // MODEL["n_heads"]
    kv = MODEL["n_kv_heads"] * head_dim
    out = [("model.embed_tokens.weight", (v, d))]
    for i in range(MODEL["layers"]):
        pre = f"model.layers.{i}."
        out += [
            (pre + "self_attn.q_proj.weight", (d, d)),
            (pre + "self_attn.k_proj.weight", (kv, d)),
            (pre + "self_attn.v_proj.weight", (kv, d)),
            (pre + "self_attn.o_proj.weight", (d, d)),
            (pre + "mlp.gate_proj.weight", (h, d)),
            (pre + "mlp.up_proj.weight", (h, d)),
            (pre + "mlp.down_proj.weight", (d, h)),
            (pre + "input_layernorm.weight", (d,)),
            (pre + "post_attention_layernorm.weight", (d,)),
        ]
    out += [("model.norm.weight", (d,)), ("lm_head.weight", (v, d))]
    return out


def decays(name: str) -> bool:
    n = name.lower()
    return not any(s in n for s in NO_DECAY)


# ----------------------------------------------------------------------------- the official

def import_adam_mini():
    """adam_mini.Adam_mini and the installed version."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from adam_mini import Adam_mini
    except Exception as e:  # ImportError, or its torch.distributed imports failing
        raise Missing(f"adam_mini cannot be imported ({type(e).__name__}: {e}); install "
                      f"{OFFICIAL_WHEEL}: pip install adam_mini-1.1.1-py3-none-any.whl") from e
    from importlib.metadata import PackageNotFoundError, version
    ver = "?"  # stays so where metadata is missing (e.g. a source checkout on sys.path)
    for dist_name in ("adam_mini", "adam-mini"):  # the wheel's metadata spells it adam_mini
        try:
            ver = version(dist_name)
            break
        except PackageNotFoundError:
            continue
    if ver != OFFICIAL_VERSION:
        print(f"[adam_mini_parity] WARNING: adam-mini {ver} installed; this script was written "
              f"against {OFFICIAL_VERSION}", file=sys.stderr)
    return Adam_mini, ver


class Official:
    """adam_mini.Adam_mini with its stdout captured."""

    def __init__(self, Adam_mini, named: list[tuple[str, torch.Tensor]]):
        self.out = io.StringIO()
        with contextlib.redirect_stdout(self.out):
            self.opt = Adam_mini(named_parameters=named, lr=HP["lr"], betas=HP["betas"], eps=HP["eps"],
                                 weight_decay=HP["weight_decay"], model_sharding=False,
                                 dim=MODEL["dim"], n_heads=MODEL["n_heads"],
                                 n_kv_heads=MODEL["n_kv_heads"], verbose=True)
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            # world_size = torch.cuda.device_count() makes its whole-tensor branch all_gather,
            # which needs a process group; this is one process on one GPU.
            self.opt.world_size = 1

    def step(self) -> None:
        with contextlib.redirect_stdout(self.out):
            self.opt.step()

    def stdout(self) -> str:
        return self.out.getvalue()


def official_blocks(opt, p: torch.Tensor) -> int | None:
    st = opt.state.get(p, {})
    if torch.is_tensor(st.get("vmean")):
        return st["vmean"].numel()
    if torch.is_tensor(st.get("v")):  # the "bias" branch: plain AdamW, one v per element
        return st["v"].numel()
    return None


def storage_bytes(opt) -> int:
    """Bytes of the distinct storages behind opt.state's tensors (a cross-check of
    torch_state_bytes: views such as the Q/K m.view(-1, head_numel) count their storage once)."""
    seen, total = set(), 0
    for st in opt.state.values():
        for t in st.values():
            if torch.is_tensor(t):
                s = t.untyped_storage()
                key = (str(t.device), s.data_ptr())
                if key not in seen:
                    seen.add(key)
                    total += s.nbytes()
    return total


# ----------------------------------------------------------------------------- distances

def compare(ps: list[torch.Tensor], refs: list[torch.Tensor], p0s: list[torch.Tensor],
            names: list[str], groups: list[str]) -> dict:
    """ps against refs, relative to how far refs moved from p0s: per tensor, per group, overall."""
    per_tensor = []
    for name, grp, p, r, p0 in zip(names, groups, ps, refs, p0s):
        d = p.double() - r.double()
        mv = r.double() - p0.double()
        sq, move = (d * d).sum().item(), (mv * mv).sum().item()
        mx, mxmove = d.abs().max().item(), mv.abs().max().item()
        per_tensor.append({
            "name": name, "group": grp, "sq": sq, "move_sq": move, "max_abs": mx, "max_move": mxmove,
            "rel_l2": math.sqrt(sq / move) if move > 0 else float("nan"),
            "max_rel": mx / (mxmove + TINY),
            "nonfinite": int((~torch.isfinite(d)).sum().item()),
        })

    def pool(rows: list[dict]) -> dict:
        sq, move = sum(r["sq"] for r in rows), sum(r["move_sq"] for r in rows)
        mx, mxmove = max(r["max_abs"] for r in rows), max(r["max_move"] for r in rows)
        worst = max(rows, key=lambda r: nan_last(r["rel_l2"]))
        return {
            "rel_l2": math.sqrt(sq / move) if move > 0 else float("nan"),
            "max_rel": mx / (mxmove + TINY),
            "max_abs": mx,
            "nonfinite": sum(r["nonfinite"] for r in rows),
            "worst_tensor": worst["name"],
            "worst_tensor_rel_l2": worst["rel_l2"],
            "worst_tensor_max_rel": max(r["max_rel"] for r in rows),
        }

    by_group: dict[str, list[dict]] = {}
    for r in per_tensor:
        by_group.setdefault(r["group"], []).append(r)
    return {"overall": pool(per_tensor), "groups": {g: pool(rs) for g, rs in by_group.items()},
            "per_tensor": [{k: r[k] for k in ("name", "group", "rel_l2", "max_rel", "max_abs", "nonfinite")}
                           for r in per_tensor]}


def nan_last(x: float) -> float:
    """Sort key that ranks NaN as the worst (largest) value."""
    return x if not math.isnan(x) else math.inf


def within_tolerance(cmp: dict) -> bool:
    """Every tensor within TOL_REL_L2 / TOL_MAX_REL and nothing non-finite (implies the pooled
    numbers are within too)."""
    return all(t["nonfinite"] == 0 and math.isfinite(t["rel_l2"]) and t["rel_l2"] <= TOL_REL_L2
               and t["max_rel"] <= TOL_MAX_REL for t in cmp["per_tensor"])


# ----------------------------------------------------------------------------- one seed

DEVICE = "cuda"  # --device


def run_seed(lib: AlloyLib, Adam_mini, seed: int, comps: list[str], steps: int, specs) -> dict:
    names = [n for n, _ in specs]
    shapes = [s for _, s in specs]
    groups = [lib.adam_mini_block(n, s, MODEL)[0] for n, s in specs]
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    p0 = []
    for name, s in specs:
        x = torch.randn(s, generator=gen, device=DEVICE) * 0.02
        p0.append(torch.ones(s, device=DEVICE) if "norm" in name.lower() else x)
    dirs = [torch.randn(s, generator=gen, device=DEVICE) for s in shapes]  # fixed gradient bias

    # official Adam-mini on fp32 params that require grad (it skips the others)
    op = [x.clone().requires_grad_(True) for x in p0]
    for p in op:
        p.grad = torch.zeros_like(p)
    official = Official(Adam_mini, list(zip(names, op)))
    # context: torch AdamW with the same no-decay mask
    wp = [x.clone().requires_grad_(True) for x in p0]
    for p in wp:
        p.grad = torch.zeros_like(p)
    adamw = torch.optim.AdamW(
        [{"params": [p for n, p in zip(names, wp) if decays(n)]},
         {"params": [p for n, p in zip(names, wp) if not decays(n)], "weight_decay": 0.0}],
        foreach=False, **HP)
    alloys: dict[str, AlloyOptimizer] = {}
    try:
        for c in comps:
            alloys[c] = AlloyOptimizer(lib, c, [x.clone() for x in p0], names, 0, HP, MODEL)

        t0 = time.perf_counter()
        for step in range(1, steps + 1):
            gg = torch.Generator(device=DEVICE).manual_seed(seed * 1000 + step)
            with torch.no_grad():
                for i, s in enumerate(shapes):
                    g = GRAD_NOISE * torch.randn(s, generator=gg, device=DEVICE) + GRAD_BIAS * dirs[i]
                    op[i].grad.copy_(g)
                    wp[i].grad.copy_(g)
                    for a in alloys.values():
                        a.grads[i].copy_(g)
            official.step()
            adamw.step()
            for a in alloys.values():
                a.step()  # synchronizes before and after
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0

        refs = [p.detach() for p in op]
        wref = [p.detach() for p in wp]
        dist = {c: compare(a.params, refs, p0, names, groups) for c, a in alloys.items()}
        context = {
            "official_vs_adamw": compare(refs, wref, p0, names, groups)["overall"],
            **{f"{c}_vs_adamw": compare(a.params, wref, p0, names, groups)["overall"]
               for c, a in alloys.items()},
        }
        off_by_key = torch_state_bytes(official.opt)
        state = {
            "official": sum(off_by_key.values()),
            "official_by_key": off_by_key,
            "official_storage": storage_bytes(official.opt),
            "adamw": sum(torch_state_bytes(adamw).values()),
            **{c: a.state_bytes() for c, a in alloys.items()},
        }
        off_blocks = [official_blocks(official.opt, p) for p in op]
        state_keys = sorted({k for st in official.opt.state.values() for k in st})
    finally:
        for a in alloys.values():
            a.close()
    return {"seed": seed, "seconds": secs, "distance": dist, "context": context, "state_bytes": state,
            "official_moved_l2": math.sqrt(sum(((r.double() - q.double()) ** 2).sum().item()
                                               for r, q in zip(refs, p0))),
            "official_blocks": off_blocks, "official_state_keys": state_keys,
            "official_stdout": official.stdout()}


# ----------------------------------------------------------------------------- aggregate, print

def aggregate(rows: list[dict], comp: str) -> dict:
    ds = [r["distance"][comp] for r in rows]
    agg = {m: mean_std([d["overall"][m] for d in ds]) for m in METRICS}
    groups = {}
    for g in ds[0]["groups"]:
        gs = [d["groups"][g] for d in ds]
        worst = max(gs, key=lambda x: nan_last(x["worst_tensor_rel_l2"]))
        groups[g] = {**{m: mean_std([x[m] for x in gs]) for m in METRICS},
                     "worst_tensor": worst["worst_tensor"],
                     "worst_tensor_rel_l2": worst["worst_tensor_rel_l2"],
                     "worst_tensor_max_rel": max(x["worst_tensor_max_rel"] for x in gs)}
    agg["groups"] = groups
    worst = max((t for d in ds for t in d["per_tensor"]),
                key=lambda t: nan_last(t["rel_l2"]))
    agg["worst_tensor"] = {"name": worst["name"], "rel_l2": worst["rel_l2"],
                           "max_rel": max(t["max_rel"] for d in ds for t in d["per_tensor"])}
    agg["within_tolerance_seeds"] = sum(within_tolerance(d) for d in ds)
    agg["within_tolerance"] = agg["within_tolerance_seeds"] == len(ds)
    agg["state_bytes"] = rows[0]["state_bytes"][comp]
    return agg


def partition_check(lib: AlloyLib, specs, off_blocks: list[int | None]) -> dict:
    """Per tensor: alloy's block count (numel / the block size share::adam_mini_partition gives,
    asked from the .so) against the official optimizer's vmean.numel()."""
    rows, mismatches = [], 0
    for (name, shape), ob in zip(specs, off_blocks):
        rule, block = lib.adam_mini_block(name, shape, MODEL)
        alloy = math.prod(shape) // block
        ok = ob is not None and alloy == ob
        mismatches += not ok
        rows.append({"name": name, "shape": list(shape), "rule": rule, "official_vmean_numel": ob,
                     "alloy_blocks": alloy, "match": ok})
    return {"tensors": rows, "mismatches": mismatches}


def fmt(ms: dict) -> str:
    return f"{ms['mean']:.3e} +- {ms['std']:.1e}"


def print_table(doc: dict) -> None:
    nparams = doc["params"]
    print(f"\nAdam-mini parity after {doc['steps']} steps, {len(doc['seeds'])} seeds (alloy vs official "
          f"adam-mini {doc['adam_mini']}; mean +- std over seeds)")
    hdr = (f"{'composition':15s} {'rel_l2':>21s} {'max_rel':>21s} {'max|dp|':>21s} "
           f"{'state B/param':>13s}  worst tensor (rel_l2, max_rel over seeds)")
    print(hdr)
    print("-" * len(hdr))
    for c, agg in doc["aggregate"].items():
        w = agg["worst_tensor"]
        print(f"{c:15s} {fmt(agg['rel_l2']):>21s} {fmt(agg['max_rel']):>21s} {fmt(agg['max_abs']):>21s} "
              f"{agg['state_bytes'] / nparams:13.3f}  {w['name']} ({w['rel_l2']:.2e}, {w['max_rel']:.2e})")
    sb = doc["per_seed"][0]["state_bytes"]
    print(f"{'official':15s} {'':>21s} {'':>21s} {'':>21s} {sb['official'] / nparams:13.3f}  "
          f"(by key {sb['official_by_key']}; torch AdamW {sb['adamw'] / nparams:.3f})")
    for c, agg in doc["aggregate"].items():
        print(f"\n{c} by partition group (rel_l2 / max_rel mean over seeds; worst tensor over seeds):")
        for g, x in agg["groups"].items():
            print(f"  {g:17s} rel_l2 {fmt(x['rel_l2'])}  max_rel {fmt(x['max_rel'])}  "
                  f"max|dp| {x['max_abs']['max']:.2e}  worst {x['worst_tensor']} "
                  f"({x['worst_tensor_rel_l2']:.2e}, {x['worst_tensor_max_rel']:.2e})")
    pc = doc["partition"]
    print("\npartition (blocks per tensor: alloy's share::adam_mini_partition vs official vmean numel):")
    for t in pc["tensors"]:
        flag = "" if t["match"] else "   <-- MISMATCH"
        print(f"  {t['name']:45s} {str(tuple(t['shape'])):12s} {t['rule']:17s} alloy "
              f"{t['alloy_blocks']} official {t['official_vmean_numel']}{flag}")
    print(f"  ({pc['mismatches']} mismatches)")
    ctx = doc["context_mean"]
    print("\ncontext, distance from torch AdamW (rel_l2 over AdamW's travel, mean over seeds): "
          + ", ".join(f"{k.replace('_vs_adamw', '')} {v:.3e}" for k, v in ctx.items()))
    v = doc["verdict"]
    if v is None:
        print(f"alloy matches official Adam-mini within fp32 tolerance: not judged ({JUDGED} not run)")
    else:
        print(f"rule: every tensor, every seed: rel_l2 <= {TOL_REL_L2:g}, max_rel <= {TOL_MAX_REL:g}, "
              f"finite, same block count ({doc['aggregate'][JUDGED]['within_tolerance_seeds']}/"
              f"{len(doc['seeds'])} seeds within; {pc['mismatches']} partition mismatches)")
        print(f"alloy matches official Adam-mini within fp32 tolerance: {'YES' if v else 'NO'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default="build-gpu/bench/liballoy_capi.so", help="path of liballoy_capi.so")
    ap.add_argument("--compositions", default=JUDGED, help=f"comma list of {','.join(COMPOSITIONS)}")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--out", default="adam_mini_parity.json")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: CPU tensors and the host-executor shim (liballoy_capi_host.so)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    comps = parse_choices(ap, args.compositions, COMPOSITIONS, "composition")
    check_seeds_steps(ap, args)

    try:
        if DEVICE == "cuda" and not torch.cuda.is_available():
            raise Missing("CUDA is not available")
        lib = AlloyLib(Path(args.lib))
        Adam_mini, ver = import_adam_mini()
    except Missing as e:
        print(f"adam_mini_parity: {e}", file=sys.stderr)
        return 2

    specs = llama_params()
    doc = {
        "device": torch.cuda.get_device_name() if DEVICE == "cuda" else f"CPU ({platform.processor() or platform.machine()}), alloy host executor",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "adam_mini": ver,
        "lib": str(Path(args.lib).resolve()),
        "hp": HP,
        "model": MODEL,
        "shapes": {n: list(s) for n, s in specs},
        "params": sum(math.prod(s) for _, s in specs),
        "grad": f"{GRAD_NOISE} * randn + {GRAD_BIAS} * fixed_dir (randn per tensor), generator seed*1000+step",
        "tolerance": {"rel_l2": TOL_REL_L2, "max_rel": TOL_MAX_REL, "applies_to": JUDGED,
                      "scope": "every tensor, every seed; finite; same block counts"},
        "compositions": comps,
        "steps": args.steps,
        "seeds": list(range(args.seeds)),
        "per_seed": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out.write_text(json.dumps(doc, indent=2) + "\n")

    try:
        for seed in doc["seeds"]:
            r = run_seed(lib, Adam_mini, seed, comps, args.steps, specs)
            if seed == doc["seeds"][0]:
                found = [ln for ln in r["official_stdout"].splitlines() if "embedding layers" in ln]
                warns = [ln for ln in r["official_stdout"].splitlines() if "Warning" in ln]
                print(f"[adam_mini_parity] official says: {found[0].strip() if found else '(no block summary)'}"
                      f" ({len(warns)} warning line(s); its stdout is kept in the JSON)", flush=True)
                doc["official_stdout"] = r["official_stdout"][:20000]
                doc["official_state_keys"] = r["official_state_keys"]
                doc["partition"] = partition_check(lib, specs, r["official_blocks"])
            del r["official_stdout"]
            doc["per_seed"].append(r)
            parts = " | ".join(f"{c} rel_l2 {d['overall']['rel_l2']:.3e} max_rel {d['overall']['max_rel']:.3e}"
                               for c, d in r["distance"].items())
            print(f"[adam_mini_parity] seed {seed}: {parts} | official vs AdamW "
                  f"{r['context']['official_vs_adamw']['rel_l2']:.3e} | state B official "
                  f"{r['state_bytes']['official']} alloy "
                  f"{', '.join(str(r['state_bytes'][c]) for c in comps)} | {r['seconds']:.1f} s", flush=True)
            save()  # partial results survive a crash
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
    except AlloyFailed as e:
        doc["error"] = str(e)
        save()
        print(f"adam_mini_parity: {e}", file=sys.stderr)
        return 1

    rows = doc["per_seed"]
    doc["aggregate"] = {c: aggregate(rows, c) for c in comps}
    doc["context_mean"] = {k: statistics.fmean(r["context"][k]["rel_l2"] for r in rows)
                           for k in rows[0]["context"]}
    if JUDGED in comps:
        doc["verdict"] = bool(doc["aggregate"][JUDGED]["within_tolerance"]
                              and doc["partition"]["mismatches"] == 0)
    else:
        doc["verdict"] = None
    save()
    print_table(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
