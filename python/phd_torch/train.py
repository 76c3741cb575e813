"""`phd_torch train`: the training loop of runtime/train/trainer.ts in PyTorch, on one process or
under torchrun, on the same tokens, from the same weights, with the same steps.

    --config F | --init CKPT | --resume CKPT    a fresh model | a checkpoint's weights | its run
    --init CKPT --config F                      a checkpoint's weights under F's train section
    --tokens F                                  the token file (deno task tokenize)

A step draws the global batch (`train.batch_size` windows) with the mulberry32 sampler from the
saved data position; rank r of W takes windows [r*B/W, (r+1)*B/W), in `--grad-accum` micro-
batches; the loss is the mean next-token cross-entropy over the global batch (each rank's sum
scaled by W/(B*L), which DDP's mean turns into the global mean); gradients are clipped to
`train.grad_clip` by global norm; AdamW (phd_torch.optim) steps at `learning_rate(train, step)`.
So the step does not depend on W or the accumulation, and equals `deno task train`'s up to float32
rounding. Rank 0 saves units (weights, moments, step, sampler state, config; phd_torch.io) every
`train.save_every` steps and at the end; `--resume` continues one exactly, whichever engine wrote
it. Bad input is refused on every rank before the process group forms; rank 0 says why in one
line.
"""
import contextlib
import copy
import json
import math
import os
import sys
import time

import torch

from one_line_errors import UsageError
from phd_torch.config import DEFAULTS, MODEL_KEYS, check, learning_rate, load_config
from phd_torch.data import Batches, TokenFile, eval_starts, windows
from phd_torch.dist import Processes, clean, fsdp_refusal
from phd_torch.engine import describe
from phd_torch.io import (
    checkpoint_meta,
    guard_checkpoint_output,
    latest_unit,
    prune_series,
    read_safetensors,
    remove_series,
    remove_stale_temps,
    save_unit,
    series_path,
)
from phd_torch.model import (
    Block,
    check_finite,
    build_model,
    check_mask,
    init_weights,
    load_mask,
    load_weights,
    next_token_loss,
    param_shapes,
)
from phd_torch.optim import AdamW

# flag -> train field; on --resume a flag must repeat the saved value
FLAGS = (
    ("steps", "steps"),
    ("batch", "batch_size"),
    ("seq_len", "seq_len"),
    ("lr", "lr"),
    ("seed", "seed"),
    ("save_every", "save_every"),
    ("log_every", "log_every"),
)
# A logged loss this many times above the larger of ln V and the first loss: the run exploded
# (runtime/train/trainer.ts EXPLOSION_FACTOR).
EXPLOSION_FACTOR = 3


def _same_file(a, b):
    return a is not None and b is not None and os.path.realpath(a) == os.path.realpath(b)


def prepare(args, say):
    """Reads and checks everything a run needs before any process group or model: the mask,
    the config (fresh, from --init's checkpoint, or the saved one of --resume), the token file
    and its tokenizer, the output, the batch split. Returns the run as a dict."""
    mask = load_mask(args.mask)
    if "docs" in getattr(mask, "TABLES", {}):
        raise UsageError(
            f"mask module {mask.NAME} reads a per-batch document table (docs), which phd_torch "
            "does not fill: train this spec with deno task train"
        )
    given = {f for f in ("config", "init", "resume") if getattr(args, f)}
    if len(given) != 1 and given != {"config", "init"}:
        raise UsageError(
            "give exactly one of --config FILE (a fresh model), --init CKPT (its weights, a new "
            "run; with --config FILE, under that file's train section) or --resume CKPT (continue "
            "its run)"
        )
    run = {"mask": mask, "weights": None, "resume": None}
    if args.resume:
        unit, skipped = latest_unit(args.resume)
        for s in skipped:
            say(f"warning: skipped {s}")
        path, meta = unit["path"], unit["meta"]
        check_mask(mask, checkpoint_meta(path, meta)["phd"], path)
        config, state = unit["state"]["config"], unit["state"]
        for flag, key in FLAGS:
            v = getattr(args, flag)
            if v is not None and v != config["train"][key]:
                raise UsageError(
                    f"--resume continues its run under the saved config (train.{key} "
                    f"{config['train'][key]}): drop --{flag.replace('_', '-')}"
                )
        if config["train"]["steps"] <= state["step"]:
            raise UsageError(
                f'checkpoint "{path}" is already at step {state["step"]} of '
                f'{config["train"]["steps"]}: it has nothing left to train'
            )
        run.update(weights=unit["weights"], resume=state, source=path)
        ck = {"phd": meta["phd"], "tokenizer": meta["tokenizer"]}
    elif args.init:
        meta, run["weights"] = read_safetensors(args.init)
        check_finite(run["weights"], args.init)
        m = checkpoint_meta(args.init, meta)
        check_mask(mask, m["phd"], args.init)
        model = {k: m["config"][k] for k in MODEL_KEYS}
        if args.config:
            # the weights of a run's step 0 written by the other engine, trained under the file
            config = load_config(args.config, m["phd"])
            for k in MODEL_KEYS:
                if config["model"][k] != model[k]:
                    raise UsageError(
                        f"{args.config}: config.model.{k} is {json.dumps(config['model'][k])}, "
                        f'the --init checkpoint "{args.init}" has {json.dumps(model[k])}'
                    )
        else:
            config = copy.deepcopy(DEFAULTS)
            config["model"] = model
            if args.seq_len is None and "context" in meta:
                config["train"]["seq_len"] = int(meta["context"])
        ck = {"phd": meta["phd"], "tokenizer": meta["tokenizer"]}
        run["source"] = args.init
    else:
        if mask.CHECKPOINT_PHD is None:
            raise UsageError(
                f"mask module {mask.NAME} names no checkpoint spec (CHECKPOINT_PHD is None): "
                "export it again with deno task export, or continue a checkpoint with --init"
            )
        config = load_config(args.config, json.loads(mask.CHECKPOINT_PHD))
        ck = {"phd": mask.CHECKPOINT_PHD, "tokenizer": None}
    phd = json.loads(ck["phd"])
    if phd.get("embeddings", "shared") != "shared":
        raise UsageError("per-copy embedding tables are trained only by deno task train")
    config["phd"] = {k: v for k, v in phd.items() if k not in ("source", "mask_spec")}
    for flag, key in FLAGS:
        if getattr(args, flag) is not None:
            config["train"][key] = getattr(args, flag)
    t = config["train"]

    path = args.tokens or config["data"].get("tokens")
    if not path:
        raise UsageError("give --tokens F, a token file of deno task tokenize")
    tokens = TokenFile(path)
    if ck["tokenizer"] is None:
        ck["tokenizer"] = tokens.tokenizer
        config["model"]["vocab_size"] = tokens.vocab_size
    else:
        tokens.check_tokenizer(ck["tokenizer"], f'checkpoint "{run["source"]}"')
    config["data"]["tokens"] = tokens.path
    check(config)
    B, L = t["batch_size"], t["seq_len"]
    if len(tokens.train) < B * L + 1:
        raise UsageError(
            f"the training text holds {len(tokens.train)} ids, fewer than one batch (batch_size x "
            f"seq_len + 1 = {B * L + 1}): give more text or lower --batch / --seq-len"
        )
    val_windows = (len(tokens.val) - 1) // L
    if val_windows < 1:
        raise UsageError(
            f"the validation text holds {len(tokens.val)} ids, fewer than one window (seq_len + 1 "
            f"= {L + 1}): tokenize more text or a larger --val-fraction"
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if B % (world * args.grad_accum):
        raise UsageError(
            f"--batch {B} does not split over {world} process(es) x --grad-accum "
            f"{args.grad_accum}: the global batch must be a multiple of {world * args.grad_accum}"
        )
    out = args.out or args.resume
    if not out:
        raise UsageError("give --out F.safetensors, the checkpoint to write")
    for flag in ("tokens", "config", "mask", "init"):
        if _same_file(out, getattr(args, flag) or (path if flag == "tokens" else None)):
            raise UsageError(f"--out {out} is the --{flag} input: write the checkpoint elsewhere")
    guard_checkpoint_output(out, args.force)
    late = [s for s in args.eval_at or () if s >= t["steps"]]
    if late:
        raise UsageError(
            f"--eval-at {late[0]} is not before the last step ({t['steps']}), which always "
            "validates: give steps below it"
        )
    ck["context"] = L
    run.update(
        eval_at=set(args.eval_at or ()),
        config=config,
        ck=ck,
        tokens=tokens,
        out=out,
        accum=args.grad_accum,
        eval_batch=min(B, val_windows),
    )
    return run


def train(args, run, procs, say):
    """Trains `run` on this process's share; returns the report (rank 0's is printed)."""
    t0 = time.time()
    c, mask, dev = run["config"], run["mask"], procs.device
    t = c["train"]
    B, L = t["batch_size"], t["seq_len"]
    per_rank = B // procs.world
    micro = per_rank // run["accum"]
    out = run["out"]
    if procs.rank == 0:
        for p in remove_stale_temps(out):
            say(f"removed stale temp file {p}")
        if run["resume"] is None and remove_series(out):
            say(f"removed the periodic checkpoints of an earlier run into {out}")
    model = build_model(c["model"], mask, c["phd"]["positions"], args.attention, say)
    load_weights(model, run["weights"] or init_weights(c["model"], t["seed"]), run.get("source"))
    model.to(dev)
    net = procs.wrap(model, args.fsdp, Block)
    # weight decay on matrices only, by the parameter's checkpoint shape (FSDP flattens them)
    shapes = param_shapes(c["model"])
    named = list((net if args.fsdp else model).named_parameters())
    decay = [p for n, p in named if len(shapes[clean(n)]) > 1]
    rest = [p for n, p in named if len(shapes[clean(n)]) == 1]
    opt = AdamW(
        [
            {"params": decay, "weight_decay": t["weight_decay"]},
            {"params": rest, "weight_decay": 0.0},
        ],
        t["beta1"],
        t["beta2"],
    )
    batches = Batches(run["tokens"].train, B, L, t["seed"])
    step = 0
    if run["resume"] is not None:
        s = run["resume"]
        procs.load_moments(net, model, opt, s["m"], s["v"])
        batches.restore(s["data"])
        step = s["step"]
        say(f"resuming from {run['source']} at step {step}")
    bf16 = args.dtype == "bf16"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def validate():
        """Mean loss over the fixed validation windows (every rank computes all of them)."""
        total, count = 0.0, 0
        val = run["tokens"].val
        with torch.no_grad():
            for starts in eval_starts(len(val), run["eval_batch"], L, t["eval_batches"]):
                ids = torch.from_numpy(windows(val, starts, L)).to(dev)
                with autocast:
                    total += next_token_loss(net if args.fsdp else model, ids, "sum").item()
                count += len(starts) * L
        return total / count

    saves, last_good = 0, None

    def save(path):
        nonlocal saves, last_good
        full = procs.full_state(net, model, opt)
        if full is not None:
            weights, m, v = full
            state = {"config": c, "step": step, "data": batches.state, "m": m, "v": v}
            save_unit(path, weights, run["ck"], state)
        saves, last_good = saves + 1, (path, step)

    say(
        f"{procs.world} process(es) on {dev}, batch {B} = {procs.world} x {run['accum']} x {micro} "
        f"windows of {L}, steps {step}..{t['steps']}, {mask.NAME}"
    )
    losses, logged, step_ms, val_points = [], [], [], []
    first, ln_v, eval_s = None, math.log(c["model"]["vocab_size"]), 0.0
    start_step, t_train, last_save = step, time.time(), time.time()
    while step < t["steps"]:
        t_step = time.perf_counter()
        lr = learning_rate(t, step)
        mine = batches.draw()[procs.rank * per_rank : (procs.rank + 1) * per_rank]
        ce_sum = torch.zeros((), device=dev)
        for i in range(run["accum"]):
            part = mine[i * micro : (i + 1) * micro]
            ids = torch.from_numpy(windows(run["tokens"].train, part, L))
            with procs.no_sync(net, i == run["accum"] - 1):
                with autocast:
                    ce = next_token_loss(net, ids.to(dev), "sum")
                (ce * (procs.world / (B * L))).backward()
            ce_sum += ce.detach()
        procs.clip(net, model, t["grad_clip"])
        opt.step(lr, step + 1)
        opt.zero_grad(set_to_none=True)
        step += 1
        logged.append(procs.sum(ce_sum) / (B * L))
        step_ms.append((time.perf_counter() - t_step) * 1000)
        if step % t["log_every"] == 0 or step == t["steps"]:
            loss = torch.stack(logged).mean().item()
            logged = []
            first = loss if first is None else first
            if not math.isfinite(loss) or loss > EXPLOSION_FACTOR * max(ln_v, first):
                kept = (
                    f"last good checkpoint kept: {last_good[0]} (step {last_good[1]})"
                    if last_good
                    else "no checkpoint was written"
                )
                raise UsageError(
                    f"training diverged at step {step} (loss {loss:.3f}): lower train.lr (now "
                    f"{t['lr']}); {kept}"
                )
            losses.append([step, loss])
            say(f"step {step}/{t['steps']} loss {loss:.4f} lr {lr:.3g}")
        due = t["save_every"] > 0 and step % t["save_every"] == 0
        if t["save_every_seconds"] > 0:
            due = procs.agree(due or time.time() - last_save >= t["save_every_seconds"])
        if due and step < t["steps"]:
            save(series_path(out, step))
            last_save = time.time()
            if procs.rank == 0:
                prune_series(out, t["keep_last"])
        every = t["eval_every"] > 0 and step % t["eval_every"] == 0
        if (every or step in run["eval_at"]) and step < t["steps"]:
            e0 = time.time()
            val_points.append([step, validate()])
            eval_s += time.time() - e0
            say(f"step {step}: validation loss {val_points[-1][1]:.4f}")
    train_s = time.time() - t_train - eval_s
    val = validate()
    save(out)
    say(f"validation loss after {step} steps: {val:.4f} nats/token; wrote {out} (+ its state)")
    done = step - start_step
    return {
        "steps": step,
        "world_size": procs.world,
        "grad_accum": run["accum"],
        "device": str(dev),
        "losses": losses,
        "loss_first": losses[0][1] if losses else None,
        "loss_last": losses[-1][1] if losses else None,
        "val_loss": val,
        "val_losses": val_points,
        "train_seconds": round(train_s, 3),
        "seconds": round(time.time() - t0, 3),
        "tokens_per_s": round(done * B * L / train_s, 1) if done and train_s > 0 else 0,
        "step_ms": [round(x, 3) for x in step_ms],
        "engine": {
            **describe(dev),
            "attention": "flex_attention" if model.use_flex else "dense additive mask",
        },
        "saves": saves,
        "out": out,
    }


def cmd_train(args):
    """Train a model (fresh, from a checkpoint's weights, or resuming its run) on a token file,
    alone or as one rank of torchrun; saves checkpoints both engines read."""
    procs = Processes(args.device)
    quiet = args.json or procs.rank != 0
    say = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dtype == "bf16" and procs.device.type != "cuda":
        refusal = "--dtype bf16 autocasts on CUDA only: train in fp32 on the CPU"
    else:
        refusal = fsdp_refusal(procs.device) if args.fsdp else None
    try:
        if refusal:
            raise UsageError(refusal)
        run = prepare(args, say)
        procs.join(args.fsdp)
        try:
            report = train(args, run, procs, say)
        finally:
            procs.close()
    except UsageError:
        if procs.rank != 0:
            sys.exit(1)  # every rank refuses the same input; rank 0 says why, once
        raise
    if procs.rank == 0:
        print(
            json.dumps(report)
            if args.json
            else f"wrote {report['out']} ({report['steps']} steps, loss "
            f"{report['loss_first']:.4f} -> {report['loss_last']:.4f}, validation "
            f"{report['val_loss']:.4f}, "
            f"{report['tokens_per_s']:.0f} tokens/s on {report['world_size']} process(es))"
        )
