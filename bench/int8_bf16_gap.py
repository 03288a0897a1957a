#!/usr/bin/env python3
"""Why alloy's 8-bit AdamW with bf16 parameters ends 0.035% farther from fp32 AdamW than
bitsandbytes' AdamW8bit (bench/int8_parity.py, GPU): a CPU emulation.

    python3 bench/int8_bf16_gap.py [seeds] [path of liballoy_capi_host.so]

The int8_parity setup (four tensors, 6.07 M bf16 parameters, lr 1e-3, wd 0.01, 100 steps; CPU
generators, so other random numbers than the GPU run) with: the fp32 reference
(torch.optim.AdamW), alloy's host executor (adamw_int8 through liballoy_capi_host.so), and a torch
emulation of blockwise 8-bit AdamW in several variants of where the weight decay goes and how
often the bf16 parameter is rounded: 'alloy' (p*decay - update, one rounding: torch's AdamW
formula), 'bnb' (bf16(p - update), then bf16(p * decay): bitsandbytes' kernel), 'after_single',
'before_double', 'nodecay', and 'bnb_signfix' (with bitsandbytes' sign fix of the first
moment's code). Prints rel_l2 = ||p - p_ref|| / ||p_ref - p0|| of each.
"""
import ctypes
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity_common import AlloyLib, AlloyOptimizer  # noqa: E402

torch.set_num_threads(2)
lib = AlloyLib(Path(sys.argv[2] if len(sys.argv) > 2 else 'build/capi-host/bench/liballoy_capi_host.so'))
def codebook(k):
    out = (ctypes.c_float * 256)()
    lib.lib.alloy_capi_codebook(k, out)
    return torch.tensor(list(out), dtype=torch.float32)
Q = [codebook(0), codebook(1)]
MIDS = [((q[1:].double() + q[:-1].double()) / 2) for q in Q]
HP = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
SHAPES = [(1024, 1024), (4096, 1024), (1000, 1027), (1000,)]
B = 256

def encode(x, k):
    # nearest code; ties to the smaller magnitude (approximately: right=False puts a tie at the lower index)
    return torch.bucketize(x.double(), MIDS[k], right=False)

class Emu:
    """8-bit blockwise AdamW on bf16 params. variant: 'alloy' (decay before, one rounding) or 'bnb'
    (decay after, two roundings) ; signfix: bnb's sign fix on the first moment."""
    def __init__(self, params, variant, signfix=False, fastdiv=False):
        self.p = [x.clone() for x in params]
        self.variant, self.signfix = variant, signfix
        self.t = 0
        self.st = []
        for x in self.p:
            n = x.numel()
            if n < 4096:
                self.st.append(dict(small=True, m=torch.zeros(n), v=torch.zeros(n)))
            else:
                nb = (n + B - 1) // B
                self.st.append(dict(small=False, c1=torch.full((n,), 127, dtype=torch.long),
                                    c2=torch.zeros(n, dtype=torch.long), a1=torch.zeros(nb), a2=torch.zeros(nb)))
    def step(self, grads):
        self.t += 1
        lr, (b1, b2), eps, wd = HP['lr'], HP['betas'], HP['eps'], HP['weight_decay']
        bc1 = 1 - b1 ** self.t; bc2 = 1 - b2 ** self.t
        step_size = torch.tensor(lr / bc1, dtype=torch.float32); sbc2 = torch.tensor(math.sqrt(bc2), dtype=torch.float32)
        decay = torch.tensor(1.0, dtype=torch.float32) - torch.tensor(lr, dtype=torch.float32) * torch.tensor(wd, dtype=torch.float32)
        for i, (x, g) in enumerate(zip(self.p, grads)):
            st = self.st[i]
            pf = x.float().flatten(); gf = g.float().flatten(); n = pf.numel()
            if st['small']:
                m, v = st['m'], st['v']
            else:
                blk = torch.arange(n) // B
                m = Q[0][st['c1']] * st['a1'][blk]
                v = Q[1][st['c2']] * st['a2'][blk]
            m = b1 * m + (1 - b1) * gf
            v = b2 * v + (1 - b2) * (gf * gf)
            denom = torch.sqrt(v) / sbc2 + eps
            upd = step_size * (m / denom)
            if self.variant == 'alloy':
                pn = (pf * decay - upd).to(torch.bfloat16)
            elif self.variant == 'after_single':
                pn = ((pf - upd) * decay).to(torch.bfloat16)
            elif self.variant == 'before_double':
                pn = ((pf * decay).to(torch.bfloat16).float() - upd).to(torch.bfloat16)
            elif self.variant == 'nodecay':
                pn = (pf - upd).to(torch.bfloat16)
            else:
                p1 = (pf - upd).to(torch.bfloat16).float()
                pn = (p1 * decay).to(torch.bfloat16)
            self.p[i] = pn.view(x.shape)
            if st['small']:
                st['m'], st['v'] = m, v
                continue
            nb = st['a1'].numel()
            pad = nb * B - n
            def absmax(y):
                yy = torch.cat([y.abs(), torch.zeros(pad)]) if pad else y.abs()
                return yy.view(nb, B).max(dim=1).values
            a1, a2 = absmax(m), absmax(v)
            inv1 = torch.where(a1 > 0, 1 / a1, torch.zeros_like(a1)); inv2 = torch.where(a2 > 0, 1 / a2, torch.zeros_like(a2))
            c1 = encode(m * inv1[blk], 0); c2 = encode(v * inv2[blk], 1)
            if self.signfix:
                wrong = (torch.signbit(Q[0][c1]) != torch.signbit(m)) & (m != 0)
                c1 = torch.where(wrong, c1 + torch.where(m > 0, 1, -1), c1)
            st.update(c1=c1, c2=c2, a1=a1, a2=a2)

def rel_l2(ps, refs, p0s):
    num = sum(((a.double() - r.double()) ** 2).sum() for a, r in zip(ps, refs))
    den = sum(((r.double() - q.double()) ** 2).sum() for r, q in zip(refs, p0s))
    return float(torch.sqrt(num / den))

for seed in range(int(sys.argv[1]) if len(sys.argv) > 1 else 2):
    gen = torch.Generator().manual_seed(seed)
    init = [(torch.randn(s, generator=gen) * 0.1).to(torch.bfloat16) for s in SHAPES]
    dirs = [torch.randn(s, generator=gen) for s in SHAPES]
    p0 = [x.float() for x in init]
    ref = [x.clone().requires_grad_(True) for x in p0]
    ropt = torch.optim.AdamW(ref, foreach=False, **HP)
    alloy = AlloyOptimizer(lib, 'adamw_int8', [x.clone().contiguous() for x in init], [f't{i}' for i in range(4)], 1, HP)
    emus = {'emu_alloy': Emu(init, 'alloy'), 'emu_bnb_decay': Emu(init, 'bnb'),
            'after_single': Emu(init, 'after_single'), 'before_double': Emu(init, 'before_double'),
            'nodecay': Emu(init, 'nodecay'), 'bnb_signfix': Emu(init, 'bnb', signfix=True)}
    t0 = time.time()
    for step in range(1, 101):
        gg = torch.Generator().manual_seed(seed * 1000 + step)
        grads = [0.01 * torch.randn(s, generator=gg) + 0.003 * dirs[i] for i, s in enumerate(SHAPES)]
        for r, g in zip(ref, grads): r.grad = g.clone()
        ropt.step()
        for a, g in zip(alloy.grads, grads): a.copy_(g.to(torch.bfloat16))
        alloy.step()
        gb = [g.to(torch.bfloat16) for g in grads]
        for e in emus.values(): e.step(gb)
    refs = [r.detach() for r in ref]
    out = {'alloy(host executor)': rel_l2([x.float() for x in alloy.params], refs, p0)}
    for k, e in emus.items(): out[k] = rel_l2([x.float() for x in e.p], refs, p0)
    # emulation vs alloy exactly
    diff = sum(int((a.float() != e.float()).sum()) for a, e in zip(alloy.params, emus['emu_alloy'].p))
    print(f'seed {seed} ({time.time()-t0:.0f} s): ' + ', '.join(f'{k} {v:.6e}' for k, v in out.items()) + f' | emu_alloy elements != alloy: {diff}', flush=True)
