#!/usr/bin/env python3
"""The peers of `deno task bench peers` (bench/peers.ts): PyTorch training steps of the PHD Llama
of python/phd_torch, and numpy (or torch) matmuls, timed in a long-lived process that answers
one JSON line per request on stdin, so the benchmark can alternate them with this runtime's steps
round by round without an interpreter start per round.

    /usr/bin/python3 python/bench_peers.py torch --ckpt m.safetensors --mask m.py --batch 16 \\
        --seq-len 64 [--threads N]
    python3 python/bench_peers.py numpy

The first line written is a header: interpreter, versions, threads, the BLAS library loaded into
the process (from /proc/self/maps, so it names the library that really runs, whatever numpy's
build config says) and, for torch, the parameter count. Requests and replies, one JSON object a
line:
    {"steps": n}                          n training steps (forward, backward, clipping at 1.0,
                                          AdamW of phd_torch.optim) on random byte windows
                                          -> {"ms": [...], "loss": [...]}
    {"loss": [[ids], ...]}                mean next-token loss of these (L+1)-token windows, no
                                          update -> {"loss": x}
    {"matmul": [M, N, K], "trans": "nt"}  C = A'B' in float32 (nt: B stored N x K, tn: A stored
                                          K x M), median of 3 timed batches -> {"ms": x}
Bad input gets one `error:` line and exit status 1.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from one_line_errors import Parser, UsageError, positive, run  # noqa: E402
from phd_torch.engine import blas_libraries, openblas_info  # noqa: E402


def timed_matmul(make, mul, M, N, K, trans):
    """Median ms of one product over 3 batches of runs (each batch about 0.2 s)."""
    a = make((K, M) if trans == "tn" else (M, K))
    b = make((N, K) if trans == "nt" else (K, N))
    run = (lambda: mul(a.T, b)) if trans == "tn" else (lambda: mul(a, b.T if trans == "nt" else b))
    run()  # warm-up
    reps = max(1, min(64, round(3e8 / (2 * M * N * K))))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        times.append((time.perf_counter() - t0) * 1000 / reps)
    return sorted(times)[1]


def matmul_request(req, make, mul):
    dims = req["matmul"]
    if len(dims) != 3 or not all(isinstance(x, int) and x > 0 for x in dims):
        raise UsageError(f"matmul needs [M, N, K] of positive integers, got {dims!r}")
    trans = req.get("trans", "nt")
    if trans not in ("nt", "nn", "tn"):
        raise UsageError(f'trans must be nt, nn or tn, got "{trans}"')
    return {"ms": timed_matmul(make, mul, *dims, trans)}


def serve(header, handlers):
    """Writes the header, then answers each request line with one reply line until EOF."""
    print(json.dumps(header), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        kind = next((k for k in handlers if k in req), None)
        if kind is None:
            raise UsageError(
                f"unknown request {line.strip()[:80]} (expected {', '.join(handlers)})"
            )
        print(json.dumps(handlers[kind](req)), flush=True)


def cmd_numpy(args):
    import numpy as np

    rng = np.random.default_rng(7)
    paths = blas_libraries()
    info = np.show_config(mode="dicts") if np.lib.NumpyVersion(np.__version__) >= "1.25.0" else {}
    blas = info.get("Build Dependencies", {}).get("blas", {})
    ob = openblas_info(paths)
    header = {
        "python": sys.executable,
        "numpy": np.__version__,
        "blas_build": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "blas_loaded": paths,
        "openblas_config": ob[0] if ob else None,
        "threads": ob[1] if ob else None,
    }
    make = lambda shape: rng.standard_normal(shape, dtype=np.float32)
    serve(header, {"matmul": lambda r: matmul_request(r, make, np.matmul)})


def cmd_torch(args):
    import torch
    from phd_torch.model import load_mask, load_model
    from phd_torch.optim import AdamW

    default_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, meta, m, _ = load_model(args.ckpt, load_mask(args.mask), args.attention)
    t = json.loads(meta["phd"])
    # as runtime/train/trainer.ts: weight decay on matrices only, clipping at 1.0, betas 0.9, 0.95
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    opt = AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], 0.9, 0.95
    )
    V, B, L = m["config"]["vocab_size"], args.batch, args.seq_len
    gen = torch.Generator().manual_seed(args.seed)
    done = 0  # AdamW steps so far (its bias correction counts them)

    def steps(req):
        nonlocal done
        ms, losses = [], []
        for _ in range(int(req["steps"])):
            done += 1
            t0 = time.perf_counter()
            windows = torch.randint(0, V, (B, L + 1), generator=gen)
            loss = model.loss(windows)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(args.lr, done)
            losses.append(loss.item())  # read every step (eager CPU ops have finished by now)
            ms.append((time.perf_counter() - t0) * 1000)
        return {"ms": ms, "loss": losses}

    def loss(req):
        with torch.no_grad():
            return {"loss": model.loss(torch.tensor(req["loss"], dtype=torch.long)).item()}

    make = lambda shape: torch.randn(shape, dtype=torch.float32, generator=gen)
    header = {
        "python": sys.executable,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "default_threads": default_threads,
        "blas_loaded": blas_libraries(),
        "params": sum(p.numel() for p in model.parameters()),
        "K": t["K"],
        "variant": t["variant"],
    }
    serve(
        header,
        {"steps": steps, "loss": loss, "matmul": lambda r: matmul_request(r, make, torch.mm)},
    )


def main(argv):
    p = Parser(prog="bench_peers.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    n = sub.add_parser("numpy", help="numpy matmuls")
    n.set_defaults(fn=cmd_numpy)
    t = sub.add_parser("torch", help="PyTorch training steps (and torch.mm matmuls)")
    t.set_defaults(fn=cmd_torch)
    t.add_argument("--ckpt", required=True, help="the model's starting weights (safetensors)")
    t.add_argument("--mask", required=True, help="module of deno task export SPEC --to flex")
    t.add_argument("--attention", choices=("auto", "flex", "dense"), default="auto")
    t.add_argument("--batch", type=positive, required=True)
    t.add_argument("--seq-len", type=positive, required=True)
    t.add_argument("--lr", type=float, default=1e-2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=positive, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    run(main)
