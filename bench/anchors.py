#!/usr/bin/env python3
"""Anchor rows for the alloy benchmark: reference optimizers timed the same way as alloy_bench.

    python3 bench/anchors.py --workloads flat,llama1b --dtypes fp32,bf16 \
        --impls torch_fused,torch_foreach --steps 25 --out anchors.json

Timing, identical for every implementation (and for alloy_bench):
  per step: refill every grad with fresh N(0,1) data (not timed), torch.cuda.synchronize(),
  record event, step(), record event, synchronize, elapsed_time.
  The first step (state allocation included) is reported alone as ms_first; the next
  --warmup - 1 steps are untimed; then --steps timed steps give ms_median / ms_min / ms_max.

An anchor with needs_grads=False (mezo_loop) gets no grads: nothing is refilled, and its
step_fn alone is timed the same way.

Anchors (--impls):
  torch_fused     torch.optim.AdamW(fused=True)              AdamW/<param dtype>(torch)
  torch_foreach   torch.optim.AdamW(foreach=True)            AdamW/<param dtype>(torch)
  bnb_adamw8bit   bitsandbytes.optim.AdamW8bit               AdamW/Int8Blockwise(bnb)
  bnb_adamw32     bitsandbytes.optim.AdamW(optim_bits=32)    AdamW/Fp32(bnb)
  mezo_loop       the official MeZO step loop, no forwards   Sgd/Spsa(MeZO loop)
  adam_mini_official  adam_mini.Adam_mini (official 1.1.1)   AdamW/PerBlock(adam-mini)
The bnb anchors need bitsandbytes (the carried 0.50.2 wheel); it is imported only when one of
them is asked for. bnb calls torch.cuda.synchronize() after every parameter inside step(): that is
part of its measured cost. adam_mini_official needs the carried adam-mini 1.1.1 wheel (pure
Python), likewise imported only when asked for; it partitions by the workload's tensor names
(llama1b: Llama-3.2-1B's dim 2048, 32 heads, 8 kv heads; flat: one whole-tensor block).

To add an anchor: write make_<name>(params, hp) -> Anchor and register it in ANCHORS
(a factory that also declares a `names` parameter gets the workload's tensor names, one that
declares `model` the workload's model facts: dim, n_heads, n_kv_heads).
"""
from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import torch

HERE = Path(__file__).resolve().parent
HP = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
STATE_NAMES = {torch.float32: "Fp32", torch.bfloat16: "Bf16", torch.float16: "Fp16"}


def adamw_bytes_per_param(param_bytes: float, grad_bytes: float, state_bytes_per_moment: float) -> float:
    """Minimal AdamW traffic per parameter: read p, g, m, v; write p, m, v.

    fp32 p/g/moments: 28; bf16 p/g + bf16 moments: 14; bf16 p/g + fp32 moments: 22.
    """
    return 2 * param_bytes + grad_bytes + 4 * state_bytes_per_moment


class Anchor(NamedTuple):
    optimizer: object                  # the optimizer object (kept alive for the row)
    step_fn: Callable[[], None]        # one optimizer step; the only thing timed
    state_bytes_fn: Callable[[], dict]  # {state key: bytes}, summed over all params; call after a step
    composition: str                   # e.g. "AdamW/Fp32(torch)"
    bytes_per_param: float             # minimal traffic floor, see adamw_bytes_per_param
    needs_grads: bool = True           # False: no grads are allocated or refilled (zeroth order)
    extra: dict | None = None          # extra keys copied into the row, e.g. {"passes": 4}


def torch_state_bytes(opt: torch.optim.Optimizer) -> dict:
    """Bytes of every tensor kept in opt.state (moments and 'step' tensors, any device), by key.

    A tensor referenced by several params' states is counted once, under the first key that
    holds it: bitsandbytes stores the same two 256-entry codebooks (qmap1, qmap2) in the state
    of every 8-bit param. torch's own optimizers share nothing, so their counts are unchanged.
    """
    out: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    for st in opt.state.values():
        for key, t in st.items():
            if not torch.is_tensor(t):
                continue
            nbytes = t.numel() * t.element_size()
            if nbytes:
                ident = (str(t.device), t.data_ptr())
                if ident in seen:
                    continue
                seen.add(ident)
            out[key] = out.get(key, 0) + nbytes
    return out


def _make_torch_adamw(params: list[torch.Tensor], hp: dict, **flags) -> Anchor:
    opt = torch.optim.AdamW(params, **hp, **flags)
    # torch allocates moments with zeros_like(param): moment dtype == param dtype.
    pdt = params[0].dtype
    esz = params[0].element_size()
    return Anchor(
        optimizer=opt,
        step_fn=opt.step,
        state_bytes_fn=lambda: torch_state_bytes(opt),
        composition=f"AdamW/{STATE_NAMES.get(pdt, str(pdt))}(torch)",
        bytes_per_param=adamw_bytes_per_param(esz, esz, esz),
    )


def make_torch_fused(params, hp):
    return _make_torch_adamw(params, hp, fused=True)


def make_torch_foreach(params, hp):
    return _make_torch_adamw(params, hp, foreach=True)


# MeZO (princeton-nlp/MeZO large_models/trainer.py): lr and eps of the OPT full-parameter grid,
# weight_decay 0 (its default); projected_grad is a fixed stand-in for (loss1 - loss2) / (2 eps).
MEZO_HP = dict(lr=1e-6, eps=1e-3, weight_decay=0.0, projected_grad=0.37)


def make_mezo_loop(params, hp, names=None):
    """The official MeZO step without its two forward passes: zo_perturb_parameters(+1),
    (-2), (+1), then zo_update, each regenerating z per tensor from torch.manual_seed(seed).

    `hp` (AdamW's) is ignored; MEZO_HP is used. bytes_per_param is the floor of the fused
    (folded) SPSA step alloy is compared against: 2 passes x (read p + write p) = 4 * param bytes.
    """
    if names is None:
        names = [f"param.{i}" for i in range(len(params))]
    if len(names) != len(params):
        raise ValueError(f"mezo_loop: {len(names)} names for {len(params)} params")
    named = list(zip(names, params))
    lr, eps, wd, pg = (MEZO_HP[k] for k in ("lr", "eps", "weight_decay", "projected_grad"))
    seeds = random.Random(1234)  # stands in for the trainer's np.random.randint(1000000000)

    def perturb(seed: int, scaling_factor: int) -> None:  # zo_perturb_parameters
        torch.manual_seed(seed)
        for _, p in named:
            z = torch.normal(mean=0, std=1, size=p.data.size(), device=p.data.device, dtype=p.data.dtype)
            p.data = p.data + scaling_factor * z * eps

    def update(seed: int) -> None:  # zo_update
        torch.manual_seed(seed)
        for name, p in named:
            z = torch.normal(mean=0, std=1, size=p.data.size(), device=p.data.device, dtype=p.data.dtype)
            if "bias" not in name and "layer_norm" not in name and "layernorm" not in name:
                p.data = p.data - lr * (pg * z + wd * p.data)
            else:
                p.data = p.data - lr * (pg * z)

    def step() -> None:  # zo_step with the forwards (and the .item() of projected_grad) left out
        seed = seeds.randrange(1000000000)
        perturb(seed, 1)
        perturb(seed, -2)
        perturb(seed, 1)
        update(seed)

    return Anchor(
        optimizer=None,
        step_fn=step,
        state_bytes_fn=lambda: {},  # MeZO keeps no optimizer state: a seed and a python float
        composition="Sgd/Spsa(MeZO loop)",
        bytes_per_param=4 * params[0].element_size(),
        needs_grads=False,
        extra={"passes": 4},
    )


BNB_WHEEL = "bitsandbytes 0.50.2 (the wheel carried to the GPU machine)"


def import_bnb():
    """bitsandbytes, imported lazily so that the torch anchors run where it is missing."""
    try:
        import bitsandbytes
        import bitsandbytes.optim  # noqa: F401  (the optimizers live in this submodule)
    except Exception as e:  # ImportError, or a failure loading its native library
        raise RuntimeError(f"the bnb anchors need {BNB_WHEEL}; install it with "
                           f"`pip install bitsandbytes-0.50.2-*.whl` (import failed: "
                           f"{type(e).__name__}: {e})") from e
    return bitsandbytes


def _check_bnb_params(params: list[torch.Tensor]) -> None:
    # bnb's CUDA kernels also need g.dtype == p.dtype: run_row's grads (randn_like) satisfy it.
    if not all(p.is_cuda for p in params):
        raise ValueError("bnb anchors: params must be CUDA tensors")


def _make_bnb(params, hp, cls: str, state_bytes_per_moment: int, composition: str, **kw):
    """A bitsandbytes optimizer over the params; its step includes bnb's torch.cuda.synchronize()
    after every param (part of its measured cost)."""
    bnb = import_bnb()
    _check_bnb_params(params)
    opt = getattr(bnb.optim, cls)(params, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
                                  weight_decay=hp["weight_decay"], **kw)
    esz = params[0].element_size()
    return Anchor(
        optimizer=opt,
        step_fn=opt.step,
        state_bytes_fn=lambda: torch_state_bytes(opt),
        composition=composition,
        bytes_per_param=adamw_bytes_per_param(esz, esz, state_bytes_per_moment),
        extra={"bnb_version": getattr(bnb, "__version__", "?")},
    )


def make_bnb_adamw8bit(params, hp):
    """bitsandbytes AdamW8bit: uint8 codes of the dynamic maps, one fp32 absmax per 256 elements.

    Tensors below min_8bit_size (4096) elements keep fp32 moments, as in bnb. bytes_per_param is
    the 8-bit floor (absmax ignored): 2 * param bytes + grad bytes + 4 x 1 (read m, v codes, write
    m, v codes): 16 for fp32 p/g, 10 for bf16. The state's qmap1/qmap2 (shared by every 8-bit
    param) are counted once, under their own keys.
    """
    return _make_bnb(params, hp, "AdamW8bit", 1, "AdamW/Int8Blockwise(bnb)")


def make_bnb_adamw32(params, hp):
    """bitsandbytes AdamW with optim_bits=32. Its Optimizer2State.init_state allocates fp32
    state1/state2 whatever the param dtype (bf16 params included), so the state is Fp32 and the
    floor is 2 * param bytes + grad bytes + 16 (28 for fp32 p/g, 22 for bf16)."""
    return _make_bnb(params, hp, "AdamW", 4, "AdamW/Fp32(bnb)", optim_bits=32)


ADAM_MINI_WHEEL = "adam-mini 1.1.1 (the wheel carried to the GPU machine)"


def import_adam_mini():
    """adam_mini.Adam_mini and its version, imported lazily so that the other anchors run where
    the wheel is missing."""
    try:
        from adam_mini import Adam_mini
    except Exception as e:  # ImportError, or its torch.distributed imports failing
        raise RuntimeError(f"adam_mini_official needs {ADAM_MINI_WHEEL}; install it with "
                           f"`pip install adam_mini-1.1.1-py3-none-any.whl` (import failed: "
                           f"{type(e).__name__}: {e})") from e
    from importlib.metadata import PackageNotFoundError, version
    for dist_name in ("adam_mini", "adam-mini"):
        try:
            return Adam_mini, version(dist_name)
        except PackageNotFoundError:
            continue
    return Adam_mini, "?"


def make_adam_mini_official(params, hp, names=None, model=None):
    """The official Adam-mini (adam-mini 1.1.1, adam_mini.Adam_mini) over the workload's params
    with their names: one second moment per block (rows for embedding / output / V / O / MLP,
    heads for Q / K, the whole tensor for norms and unmatched names, per element for "bias"), m
    per element. It keeps m and vmean in the param dtype (zeros_like), so bytes_per_param is
    2 * param bytes + grad bytes + 2 * param bytes (read and write m; v per block is negligible):
    20 for fp32 p/g, 10 for bf16. Constructed with verbose=False (its log is printed otherwise)
    and model_sharding=False; its whole-tensor branch all-gathers when torch.cuda.device_count()
    > 1, so world_size is set to 1 where no process group is initialized (one process here).
    """
    Adam_mini, ver = import_adam_mini()
    if names is None:
        names = [f"param.{i}" for i in range(len(params))]
    if len(names) != len(params):
        raise ValueError(f"adam_mini_official: {len(names)} names for {len(params)} params")
    if not all(p.is_cuda for p in params):
        raise ValueError("adam_mini_official: params must be CUDA tensors")
    # dim / n_heads / n_kv_heads from the workload's "model" entry (workloads.json); the official
    # code uses them only for query/key tensors, so a workload without them (flat) passes 1s.
    model = model or {}
    dims = {k: int(model.get(k, 1)) for k in ("dim", "n_heads", "n_kv_heads")}
    opt = Adam_mini(named_parameters=list(zip(names, params)), lr=hp["lr"], betas=hp["betas"],
                    eps=hp["eps"], weight_decay=hp["weight_decay"], model_sharding=False,
                    verbose=False, **dims)
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        opt.world_size = 1
    esz = params[0].element_size()
    return Anchor(
        optimizer=opt,
        step_fn=opt.step,
        state_bytes_fn=lambda: torch_state_bytes(opt),
        composition="AdamW/PerBlock(adam-mini)",
        bytes_per_param=2 * esz + esz + 2 * esz,
        extra={"adam_mini_version": ver, "adam_mini_dims": dims},
    )


# Registry: impl name -> factory(params, hp[, names][, model]) -> Anchor.
ANCHORS: dict[str, Callable[..., Anchor]] = {
    "torch_fused": make_torch_fused,
    "torch_foreach": make_torch_foreach,
    "bnb_adamw8bit": make_bnb_adamw8bit,
    "bnb_adamw32": make_bnb_adamw32,
    "mezo_loop": make_mezo_loop,
    "adam_mini_official": make_adam_mini_official,
}


def make_anchor(impl: str, params: list[torch.Tensor], hp: dict, names: list[str],
                model: dict | None = None) -> Anchor:
    """A factory gets the workload's tensor names / model facts if it declares `names` / `model`."""
    factory = ANCHORS[impl]
    declared = inspect.signature(factory).parameters
    extra = {k: v for k, v in (("names", names), ("model", model)) if k in declared}
    return factory(params, hp, **extra)


def load_workloads(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text())
    for name, w in data.items():
        if len(w["names"]) != len(w["shapes"]):
            raise ValueError(f"{path}: workload {name}: names and shapes differ in length")
    return data


def measure_copy_gbs(gib: float = 4.0, reps: int = 20) -> float:
    """Device-to-device copy bandwidth, bytes read + written, median of `reps` (GB/s, 1e9)."""
    n = int(gib * (1 << 30))
    src = torch.empty(n, dtype=torch.uint8, device="cuda").fill_(1)
    dst = torch.empty_like(src)
    for _ in range(2):
        dst.copy_(src)
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n / (statistics.median(times) / 1e3) / 1e9


def time_steps(step_fn, grads: list[torch.Tensor], n: int) -> list[float]:
    """Time n single calls of step_fn (ms); grads (may be empty) are refilled with fresh random
    data before each, untimed."""
    out = []
    for _ in range(n):
        for g in grads:
            g.normal_()
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step_fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b))
    return out


def run_row(impl: str, workload: str, shapes: list, names: list[str], dtype: str, steps: int, warmup: int,
            copy_gbs: float, model: dict | None = None) -> dict:
    dt = DTYPES[dtype]
    params = [torch.randn(s, dtype=dt, device="cuda").requires_grad_(True) for s in shapes]
    nparams = sum(p.numel() for p in params)

    anchor = make_anchor(impl, params, dict(HP), names, model)
    if anchor.needs_grads:
        for p in params:
            p.grad = torch.randn_like(p)
    grads = [p.grad for p in params] if anchor.needs_grads else []
    torch.cuda.reset_peak_memory_stats()
    first = time_steps(anchor.step_fn, grads, 1)[0]
    state = anchor.state_bytes_fn()
    time_steps(anchor.step_fn, grads, max(0, warmup - 1))
    ts = time_steps(anchor.step_fn, grads, steps)
    med = statistics.median(ts)
    bpp = anchor.bytes_per_param
    return {
        "impl": impl,
        "composition": anchor.composition,
        "workload": workload,
        "dtype": dtype,
        "params": nparams,
        "tensors": len(params),
        "steps": steps,
        "ms_median": med,
        "ms_min": min(ts),
        "ms_max": max(ts),
        "ms_first": first,
        "bytes_per_param": bpp,
        "fraction_of_copy": bpp * nparams / (med / 1e3) / (copy_gbs * 1e9),
        "state_bytes_per_param": sum(state.values()) / nparams,
        "state_bytes_by_key": state,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / (1 << 30),
        **(anchor.extra or {}),
    }


def csv_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="flat,llama1b", help="comma list of workload names")
    ap.add_argument("--workloads-file", default=str(HERE / "workloads.json"))
    ap.add_argument("--dtypes", default="fp32,bf16", help=f"comma list of {','.join(DTYPES)}")
    ap.add_argument("--impls", default="torch_fused,torch_foreach", help=f"comma list of {','.join(ANCHORS)}")
    ap.add_argument("--steps", type=int, default=25, help="timed steps per row (>= 20 for reported numbers)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps; the first is reported as ms_first")
    ap.add_argument("--copy-gib", type=float, default=4.0, help="size of the copy-bandwidth buffer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="anchors.json")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print("anchors: CUDA is not available", file=sys.stderr)
        return 2
    workloads = load_workloads(Path(args.workloads_file))
    names, dtypes, impls = csv_list(args.workloads), csv_list(args.dtypes), csv_list(args.impls)
    for kind, given, known in (("workload", names, workloads), ("dtype", dtypes, DTYPES), ("impl", impls, ANCHORS)):
        bad = [x for x in given if x not in known]
        if bad:
            ap.error(f"unknown {kind}(s) {bad}; known: {list(known)}")
    warmup = max(1, args.warmup)
    torch.manual_seed(args.seed)

    copy_gbs = measure_copy_gbs(args.copy_gib)
    print(f"[anchors] {torch.cuda.get_device_name()}: copy {copy_gbs:.1f} GB/s (torch copy_, "
          f"{args.copy_gib:g} GiB, read+write)", file=sys.stderr)
    doc = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "copy_gbs_torch": copy_gbs,
        "steps": args.steps,
        "warmup": warmup,
        "rows": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    for w in names:
        shapes, tnames = workloads[w]["shapes"], workloads[w]["names"]
        for dtype in dtypes:
            for impl in impls:
                try:
                    row = run_row(impl, w, shapes, tnames, dtype, args.steps, warmup, copy_gbs,
                                  workloads[w].get("model"))
                    msg = (f"median {row['ms_median']:.3f} ms (min {row['ms_min']:.3f}, max {row['ms_max']:.3f}, "
                           f"first {row['ms_first']:.3f}), {row['state_bytes_per_param']:.3f} state B/param, "
                           f"{row['fraction_of_copy']:.3f} of copy")
                except Exception as e:  # OOM or anything else: record it and go on
                    row = {"impl": impl, "workload": w, "dtype": dtype,
                           "params": sum(math.prod(s) for s in shapes), "tensors": len(shapes),
                           "error": f"{type(e).__name__}: {e}".strip()[:500]}
                    msg = f"ERROR {row['error'][:200]}"
                # run_row's tensors are gone with its frame; release the cached blocks too.
                gc.collect()
                torch.cuda.empty_cache()
                doc["rows"].append(row)
                print(f"[anchors] {impl:14s} {w:8s} {dtype}: {msg}", file=sys.stderr, flush=True)
                out.write_text(json.dumps(doc, indent=2) + "\n")  # partial results survive a crash

    out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
