#!/usr/bin/env python3
"""Why applying AdamW's weight decay to bf16 parameters ends farther from fp32 AdamW than
dropping it, in bench/int8_parity.py's setup: a CPU experiment with no quantized state.

    python3 bench/bf16_decay_drift.py [--drift 0.003] [--steps 100,400,1000] [--seeds 3]

int8_parity.py finds alloy's 8-bit AdamW with bf16 parameters 0.035% (100 steps) to 0.29% (400)
farther from torch.optim.AdamW (fp32) than bitsandbytes' AdamW8bit, whose 16-bit path rounds the
parameter twice and so applies no decay (docs/policies/int8.md). This script keeps the moments in
fp32, so only the parameter's rounding differs between the runs it compares:

  ref      torch's AdamW in fp32 (p *= 1 - lr*wd, then the Adam step), fp32 gradients
  decay    alloy's order: bf16(p * (1 - lr*wd) - update), bf16 gradients
  bnb      bitsandbytes' order: bf16(bf16(p - update) * (1 - lr*wd)), bf16 gradients
  nodecay  bf16(p - update), bf16 gradients

It prints rel_l2 = ||p - p_ref|| / ||p_ref - p0|| of each, and splits the difference between
'bnb' and 'decay' into ||E_bnb||^2 - ||E_decay||^2 = 2<E_decay, D> + ||D||^2, with
E = p - p_ref and D = p_bnb - p_decay (both over ||p_ref - p0||^2): the cross term is negative
where the decay that bnb drops cancels the error both runs share. The sum is also split over the
elements that moved away from zero (sign(p_ref - p0) == sign(p_ref)) and the rest.
Gradients are 0.01*N(0,1) + drift*dir, dir a fixed N(0,1) vector (int8_parity.py's, drift 0.003).
"""
import argparse

import numpy as np

LR, B1, B2, EPS, WD = 1e-3, 0.9, 0.999, 1e-8, 0.01


def bf16(x):
    """Round float32 to the nearest bfloat16, ties to even (finite inputs), returned as float32."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return r.view(np.float32)


class Run:
    def __init__(self, p0, order):
        self.p, self.order = p0.copy(), order
        self.m = np.zeros_like(p0)
        self.v = np.zeros_like(p0)

    def step(self, g, t):
        f = np.float32
        self.m = f(B1) * self.m + f(1 - B1) * g
        self.v = f(B2) * self.v + f(1 - B2) * (g * g)
        denom = np.sqrt(self.v) / f(np.sqrt(1 - B2 ** t)) + f(EPS)
        upd = f(LR / (1 - B1 ** t)) * (self.m / denom)
        decay = f(1) - f(LR) * f(WD)
        if self.order == 'ref':
            self.p = self.p * decay - upd
        elif self.order == 'decay':
            self.p = bf16(self.p * decay - upd)
        elif self.order == 'bnb':
            self.p = bf16(bf16(self.p - upd) * decay)
        else:
            self.p = bf16(self.p - upd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=1 << 20, help='elements')
    ap.add_argument('--drift', type=float, default=0.003)
    ap.add_argument('--steps', default='100,400,1000', help='comma list of steps to report at')
    ap.add_argument('--seeds', type=int, default=3)
    a = ap.parse_args()
    marks = sorted(int(s) for s in a.steps.split(','))
    print(f'n {a.n}, drift {a.drift}, lr {LR}, wd {WD}, betas ({B1}, {B2}); fp32 moments, '
          'rel_l2 = ||p - p_ref|| / ||p_ref - p0||')
    print('seed steps | decay      bnb        nodecay    | bnb/decay-1 | cross      ||D||^2    '
          'sum        | sum(away)  sum(toward) away')
    for seed in range(a.seeds):
        rng = np.random.default_rng(seed)
        p0 = bf16((0.1 * rng.standard_normal(a.n)).astype(np.float32))
        direction = rng.standard_normal(a.n).astype(np.float32)
        runs = {k: Run(p0, k) for k in ('ref', 'decay', 'bnb', 'nodecay')}
        for t in range(1, marks[-1] + 1):
            g = (0.01 * rng.standard_normal(a.n)).astype(np.float32) + np.float32(a.drift) * direction
            gb = bf16(g)
            for k, r in runs.items():
                r.step(g if k == 'ref' else gb, t)
            if t not in marks:
                continue
            ref = runs['ref'].p.astype(np.float64)
            den = float(((ref - p0) ** 2).sum())
            err = {k: runs[k].p.astype(np.float64) - ref for k in ('decay', 'bnb', 'nodecay')}
            rel = {k: np.sqrt((e ** 2).sum() / den) for k, e in err.items()}
            d = err['bnb'] - err['decay']
            cross = 2 * err['decay'] * d / den
            net = cross + d * d / den
            away = np.sign(ref - p0) == np.sign(ref)
            print(f'{seed:4d} {t:5d} | {rel["decay"]:.4e} {rel["bnb"]:.4e} {rel["nodecay"]:.4e} | '
                  f'{rel["bnb"] / rel["decay"] - 1:+.3%}    | {cross.sum():+.3e} {(d * d).sum() / den:.3e} '
                  f'{net.sum():+.3e} | {net[away].sum():+.3e} {net[~away].sum():+.3e}  {away.mean():.3f}',
                  flush=True)


if __name__ == '__main__':
    main()
