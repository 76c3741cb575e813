"""Evaluates modules of `deno task export --to flex` for tests/export/flex_mask_test.ts.

Reads a JSON list of jobs {"module", "L"[, "heads", "scores"]} from the file argv[1] and prints
{"torch", "flex", "block_mask_error", "results"}: per job the module-level mask_mod evaluated by
broadcasting int32 index grids (as FlexAttention passes indices) as a "0"/"1" string in storage
order, whether dense_mask(L) agrees, and with scores the float64 score_mod values over
(heads, N, N). block_mask_error is what block_mask raises on this torch (None when it works).
"""
import importlib.util
import json
import sys

import torch


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
        }
        if "scores" in job:
            H = job["heads"]
            s = torch.tensor(job["scores"], dtype=torch.float64).reshape(H, N, N)
            h = torch.arange(H, dtype=torch.int32)[:, None, None]
            v = mod.score_mod(s, torch.zeros((), dtype=torch.int32), h, t[None, :, None], t[None, None, :])
            res["scores"] = v.flatten().tolist()
        results.append(res)
    error = None
    try:
        first.block_mask(first.L, "cpu")
    except RuntimeError as e:
        error = str(e)
    print(json.dumps({"torch": torch.__version__, "flex": first.flex_available(), "block_mask_error": error,
                      "results": results}))


if __name__ == "__main__":
    main()
