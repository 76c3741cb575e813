"""gpu-check part 7 (offline/gpu_check_parts.ts): each module of `deno task export P --to flex`
through compiled flex_attention with its BlockMask against the dense path of python/phd_torch
(an additive mask built from the module's mask_mod), forward and all three gradients, in fp32 on
CUDA with TF32 off.

    PYTHONPATH=python python3 offline/flex_check.py L MODULE.py...

Prints one JSON line per module as it finishes ({"module", "K", "L", "out_err", "grad_err", "ok"},
or {"module", "error"}), errors relative to the largest value of the dense result, and exits 1
when any module differs by more than TOLERANCE or fails.
"""
import json
import os
import sys
import time

import torch

from phd_torch.model import Attender, load_mask

TOLERANCE = 1e-4
HEADS, HEAD_DIM = 2, 64


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()


def check(path, L, device):
    mask = load_mask(path)
    N = mask.K * L
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v, do = (
        torch.randn(1, HEADS, N, HEAD_DIM, device=device, generator=gen) for _ in range(4)
    )
    results = []
    for use_flex in (True, False):
        attend = Attender(mask, L, device, torch.float32, HEADS, use_flex)
        leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]
        out = attend(*leaves)
        results.append((out.detach(), torch.autograd.grad(out, leaves, do)))
    (flex_out, flex_grads), (dense_out, dense_grads) = results
    out_err = relative(flex_out, dense_out)
    grad_err = max(relative(a, b) for a, b in zip(flex_grads, dense_grads))
    return {
        "K": mask.K,
        "L": L,
        "out_err": out_err,
        "grad_err": grad_err,
        "ok": out_err <= TOLERANCE and grad_err <= TOLERANCE,
    }


def main(argv):
    L, paths = int(argv[0]), argv[1:]
    import torch._dynamo  # torch >= 2.5 (gpu-check runs this only there)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # one compiled flex_attention per module: more than dynamo's default of 8 recompilations
    torch._dynamo.config.cache_size_limit = max(64, 2 * len(paths))
    device = torch.device("cuda")
    failed = False
    for path in paths:
        t0 = time.time()
        try:
            line = check(path, L, device)
        except Exception as e:  # one module's failure is its line; the others still run
            line = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        line = {"module": os.path.basename(path), **line, "seconds": round(time.time() - t0, 1)}
        failed = failed or not line.get("ok", False)
        print(json.dumps(line), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
