"""Evaluates modules of `deno task export --to flex` for tests/export/flex_mask_test.ts.

Reads a JSON list of jobs {"module", "L"[, "heads", "scores"]} from the file argv[1] and prints
{"torch", "flex", "block_mask_error", "results"}: per job the module-level mask_mod evaluated by
broadcasting int32 index grids (as FlexAttention passes indices) as a "0"/"1" string in storage
order, whether dense_mask(L) agrees, whether mask_mod under nested vmap over (b, h, q, kv) agrees
(the way create_block_mask and eager flex_attention call it: scalar tensors, no data-dependent
Python), and with scores the float64 score_mod values over (heads, N, N) and the same check under
vmap. block_mask_error is what block_mask raises on this torch (None when it works).
"""
import importlib.util
import json
import sys

import torch

try:
    vmap = torch.vmap
except AttributeError:  # torch < 2.0 ships vmap in functorch
    from functorch import vmap


def vmap_bhqkv(fn, prefix=()):
    """fn vmapped over kv, q, h, b in turn, as torch.nn.attention.flex_attention does."""
    for dims in (
        (None, None, None, 0),
        (None, None, 0, None),
        (None, 0, None, None),
        (0, None, None, None),
    ):
        fn = vmap(fn, in_dims=prefix + dims, out_dims=0)
    return fn


def load(path, i):
    spec = importlib.util.spec_from_file_location(f"exported_{i}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    results, first = [], None
    for i, job in enumerate(jobs):
        mod = load(job["module"], i)
        first = first or mod
        L, N = job["L"], mod.K * job["L"]
        t = torch.arange(N, dtype=torch.int32)
        m = mod.mask_mod(0, 0, t[:, None], t[None, :]).expand(N, N)
        res = {
            "mask": "".join("1" if x else "0" for x in m.flatten().tolist()),
            "dense_agrees": bool(torch.equal(m, mod.dense_mask(L))),
            "vmap_agrees": bool(torch.equal(vmap_bhqkv(mod.mask_mod)(t[:1], t[:1], t, t)[0, 0], m)),
        }
        if "scores" in job:
            H = job["heads"]
            s = torch.tensor(job["scores"], dtype=torch.float64).reshape(H, N, N)
            h = torch.arange(H, dtype=torch.int32)[:, None, None]
            v = mod.score_mod(
                s, torch.zeros((), dtype=torch.int32), h, t[None, :, None], t[None, None, :]
            )
            res["scores"] = v.flatten().tolist()
            b = torch.zeros(1, dtype=torch.int32)
            w = vmap_bhqkv(mod.score_mod, prefix=(0,))(s[None], b, h.flatten(), t, t)[0]
            res["vmap_scores_agree"] = bool(torch.allclose(w, v, rtol=1e-12, atol=1e-12))
        results.append(res)
    error = None
    try:
        first.block_mask(first.L, "cpu")
    except RuntimeError as e:
        error = str(e)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "flex": first.flex_available(),
                "block_mask_error": error,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
