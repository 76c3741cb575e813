"""The dense attention of python/phd_torch (the path torch < 2.5 runs) against a plain
per-row float64 softmax over the allowed keys only, for each exported module given in argv.

Prints {"worst": max |difference| over all modules, "finite_grads": bool}: a fully masked row
must give zeros and finite gradients, as the WGSL kernels and dsl semantics require.
"""
import importlib.util
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from phd_torch.model import Attender  # noqa: E402


def load(path, i):
    spec = importlib.util.spec_from_file_location(f"module_{i}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference(mod, L, q, k, v):
    """Row by row: modified scores of the allowed keys, softmax, weighted values (0 if none)."""
    B, H, N, _ = q.shape
    allowed = mod.dense_mask(L)
    out = torch.zeros_like(q)
    t = torch.arange(N)
    for h in range(H):
        s = (q[0, h] @ k[0, h].T) / math.sqrt(q.shape[-1])
        if mod.score_mod is not None:
            s = mod.score_mod_for(L)(s, torch.tensor(0), torch.tensor(h), t[:, None], t[None, :])
        for i in range(N):
            keys = allowed[i].nonzero().flatten()
            if len(keys) == 0:
                continue
            w = torch.softmax(s[i, keys], dim=0)
            out[0, h, i] = w @ v[0, h, keys]
    return out


def main():
    torch.manual_seed(0)
    worst, finite = 0.0, True
    for i, (path, L) in enumerate(json.loads(sys.argv[1])):
        mod = load(path, i)
        N, H = mod.K * L, 2
        attend = Attender(mod, L, torch.device("cpu"), torch.float64, H, False)
        q, k, v = (torch.randn(1, H, N, 4, dtype=torch.float64) * 6 for _ in range(3))
        q.requires_grad_(True)
        o = attend(q, k, v)
        worst = max(worst, (o - reference(mod, L, q.detach(), k, v)).abs().max().item())
        o.sum().backward()
        finite = finite and bool(torch.isfinite(q.grad).all())
    print(json.dumps({"worst": worst, "finite_grads": finite}))


if __name__ == "__main__":
    main()
