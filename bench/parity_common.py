"""What the parity scripts (int8_parity.py, adam_mini_parity.py) share: alloy's C shim
(liballoy_capi.so, bench/alloy_capi.cu) through ctypes, an alloy optimizer over torch tensors,
the exceptions that set their exit codes, and mean/std over seeds."""
from __future__ import annotations

import ctypes
import statistics
from pathlib import Path


class Missing(Exception):
    """A dependency (the .so, a carried wheel, CUDA) is not there: exit 2 with this message."""


class AlloyFailed(RuntimeError):
    """alloy returned an error from create or step."""


class AlloyLib:
    """The C functions of liballoy_capi.so, with their exact signatures."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise Missing(f"{path}: not found; build it with `cmake --build <build dir> --target "
                          f"alloy_capi` (bench/alloy_capi.cu) and pass --lib")
        try:
            lib = ctypes.CDLL(str(path.resolve()))
        except OSError as e:
            raise Missing(f"{path}: cannot load: {e}") from e
        c = ctypes
        ptrs, longs, names = c.POINTER(c.c_void_p), c.POINTER(c.c_longlong), c.POINTER(c.c_char_p)
        hyper = [c.c_float] * 5  # lr, beta1, beta2, eps, weight_decay
        signatures = {
            "alloy_capi_create": ([c.c_char_p, c.c_int, ptrs, ptrs, longs, names, c.c_int] + hyper,
                                  c.c_void_p),
            "alloy_capi_create_adam_mini": (
                [c.c_char_p, c.c_int, ptrs, ptrs, longs, longs, names, c.c_int] + hyper +
                [c.c_int] * 3, c.c_void_p),
            "alloy_capi_adam_mini_block": (
                [c.c_char_p, c.c_longlong, c.c_longlong, c.c_int, c.c_int, c.c_int, longs,
                 c.POINTER(c.c_char_p)], c.c_int),
            "alloy_capi_step": ([c.c_void_p], c.c_int),
            "alloy_capi_error": ([], c.c_char_p),
            "alloy_capi_state_bytes": ([c.c_void_p], c.c_longlong),
            "alloy_capi_codebook": ([c.c_int, c.POINTER(c.c_float)], None),
            "alloy_capi_destroy": ([c.c_void_p], None),
        }
        try:
            for fn, (args, res) in signatures.items():
                getattr(lib, fn).argtypes = args
                getattr(lib, fn).restype = res
        except AttributeError as e:  # an older build of the shim
            raise Missing(f"{path}: lacks a function ({e}); rebuild the alloy_capi target from the "
                          f"current bench/alloy_capi.cu") from e
        self.lib, self.path = lib, path

    def error(self) -> str:
        msg = self.lib.alloy_capi_error()
        return msg.decode(errors="replace") if msg else "(no message)"

    def codebook(self, k: int) -> list[float]:
        """Codebook k (0: signed map for m, 1: unsigned map for v), 256 fp32 values."""
        buf = (ctypes.c_float * 256)()
        self.lib.alloy_capi_codebook(k, buf)
        return list(buf)

    def adam_mini_block(self, name: str, shape: tuple[int, ...], model: dict) -> tuple[str, int]:
        """(rule, block size) that share::adam_mini_partition assigns to a tensor."""
        numel = 1
        for d in shape:
            numel *= d
        block, rule = ctypes.c_longlong(0), ctypes.c_char_p()
        if self.lib.alloy_capi_adam_mini_block(name.encode(), shape[0] if shape else 1, numel,
                                               model["dim"], model["n_heads"], model["n_kv_heads"],
                                               ctypes.byref(block), ctypes.byref(rule)) != 0:
            raise AlloyFailed(f"adam_mini_partition({name}): {self.error()}")
        return rule.value.decode(), block.value


class AlloyOptimizer:
    """One alloy composition over torch tensors. Keeps the params and grads alive: alloy holds
    raw pointers to them. Write gradients into .grads, then step(). With `model` (a dict of dim,
    n_heads, n_kv_heads) it is created by alloy_capi_create_adam_mini, else alloy_capi_create."""

    def __init__(self, lib: AlloyLib, composition: str, params: list, names: list[str],
                 dtype_code: int, hp: dict, model: dict | None = None):
        import torch
        self._torch = torch
        self._cuda = params[0].is_cuda  # liballoy_capi.so: CUDA tensors; _host.so: CPU ones
        for p in params:
            if not (p.is_cuda == self._cuda and p.is_contiguous()):
                raise ValueError("alloy: params must be contiguous tensors, all CUDA or all CPU")
        self.lib, self.params, self.composition = lib, params, composition
        self.grads = [torch.zeros_like(p) for p in params]
        n = len(params)
        self._p = (ctypes.c_void_p * n)(*[p.data_ptr() for p in params])
        self._g = (ctypes.c_void_p * n)(*[g.data_ptr() for g in self.grads])
        self._numels = (ctypes.c_longlong * n)(*[p.numel() for p in params])
        self._rows = (ctypes.c_longlong * n)(*[p.shape[0] if p.dim() else 1 for p in params])
        self._names = (ctypes.c_char_p * n)(*[s.encode() for s in names])
        self._sync()  # the params' initial values are written before alloy sees them
        b1, b2 = hp["betas"]
        hyper = (hp["lr"], b1, b2, hp["eps"], hp["weight_decay"])
        if model is None:
            self.handle = lib.lib.alloy_capi_create(composition.encode(), n, self._p, self._g,
                                                    self._numels, self._names, dtype_code, *hyper)
        else:
            self.handle = lib.lib.alloy_capi_create_adam_mini(
                composition.encode(), n, self._p, self._g, self._numels, self._rows, self._names,
                dtype_code, *hyper, model["dim"], model["n_heads"], model["n_kv_heads"])
        if not self.handle:
            raise AlloyFailed(f"alloy create({composition}): {lib.error()}")

    def step(self) -> None:
        # alloy enqueues on the legacy default stream; synchronize on both sides so that the
        # torch-side grad copies are done before and the params are final after.
        self._sync()
        if self.lib.lib.alloy_capi_step(self.handle) != 0:
            raise AlloyFailed(f"alloy step({self.composition}): {self.lib.error()}")
        self._sync()

    def _sync(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize()

    def state_bytes(self) -> int:
        return int(self.lib.lib.alloy_capi_state_bytes(self.handle))

    def close(self) -> None:
        if self.handle:
            self.lib.lib.alloy_capi_destroy(self.handle)
            self.handle = None


def mean_std(xs: list[float]) -> dict:
    """Mean, (sample) standard deviation, min and max over seeds."""
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs)}


def parse_choices(ap, text: str, known, what: str) -> list[str]:
    """A comma list of names from `known` (argparse error otherwise)."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in known]
    if bad or not names:
        ap.error(f"unknown {what}(s) {bad}; known: {list(known)}")
    return names


def check_seeds_steps(ap, args) -> None:
    if args.seeds < 1 or args.steps < 1:
        ap.error("--seeds and --steps must be >= 1")
