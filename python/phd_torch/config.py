"""Training configs as `deno task train` reads them (runtime/model/config.ts, docs/DESIGN.md 3).

A run's config has the sections model, phd, train and data. The defaults of model, train and data
are DEFAULT_CONFIG's (tests/torch/parity_test.ts compares them); phd comes from the mask module.
A config file is this project's (those sections) or a Hugging Face Llama config.json (its model
fields); flags override it. `check` refuses what runtime/model/config.ts `checkConfig` refuses of
the fields this engine reads, with the same words, so a config saved here loads there. The
learning rate is `learning_rate`, the same pure function of the train section and the step.
"""
import copy
import json
import math
import os

from one_line_errors import UsageError

MODEL_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "rope_theta",
    "rms_norm_eps",
    "tie_word_embeddings",
)

DEFAULTS = {
    "model": {
        "vocab_size": 256,
        "hidden_size": 64,
        "intermediate_size": 192,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rope_theta": 10000,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    },
    "train": {
        "steps": 150,
        "batch_size": 16,
        "seq_len": 64,
        "lr": 1e-2,
        "warmup": 10,
        "schedule": "cosine",
        "min_lr_ratio": 0.1,
        "weight_decay": 0.1,
        "beta1": 0.9,
        "beta2": 0.95,
        "grad_clip": 1.0,
        "seed": 1,
        "eval_every": 75,
        "eval_batches": 8,
        "log_every": 10,
        "save_every": 50,
        "save_every_seconds": 600,
        "keep_last": 3,
    },
    "data": {
        "train": "",
        "val": "",
        "val_fraction": 0.05,
        "field": "text",
        "tokenizer": "bytes",
    },
}

# phd fields a config file may state; each must agree with the mask module's.
PHD_KEYS = ("K", "variant", "W", "C", "positions")


def read_json(path, what):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f'{what} "{path}" does not exist') from None
    except ValueError as e:
        raise UsageError(f'{what} "{path}" is not JSON: {" ".join(str(e).split())}') from None


def _kind(x):
    """JavaScript's `typeof` of a JSON value (a bool is no number here, unlike Python's int)."""
    if isinstance(x, bool):
        return "boolean"
    return {int: "number", float: "number", str: "string"}.get(type(x), "object")


def _typed(path, want, v):
    if _kind(v) != _kind(want):
        raise UsageError(f"config.{path} must be a {_kind(want)}, got {json.dumps(v)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise UsageError(f"config.{path} must be a finite number, got {v}")
    return v


def load_config(path, mask_phd):
    """The config of a file (this project's sections, or a Hugging Face config.json) over the
    defaults; its phd section, if any, must be the mask module's `mask_phd`."""
    raw = read_json(path, "config")
    if not isinstance(raw, dict):
        raise UsageError(f'config "{path}" must be a JSON object')
    c = copy.deepcopy(DEFAULTS)
    if any(k in raw for k in MODEL_KEYS):
        # a Hugging Face Llama config.json (one written beside a checkpoint, say): its model
        # fields only (its phd names the checkpoint's, not the spec trained now)
        missing = [k for k in MODEL_KEYS if k not in raw]
        if missing:
            raise UsageError(
                f'config "{path}" lacks {", ".join(missing)} (a Hugging Face Llama config.json, '
                "or this project's config with sections model, phd, train, data)"
            )
        c["model"] = {k: _typed(f"model.{k}", DEFAULTS["model"][k], raw[k]) for k in MODEL_KEYS}
        return c
    for section, fields in raw.items():
        if section not in ("model", "phd", "train", "data"):
            raise UsageError(
                f'{path}: config has an unknown section "{section}" '
                "(expected model, phd, train, data)"
            )
        if not isinstance(fields, dict):
            raise UsageError(f"{path}: config.{section} must be an object")
        if section == "phd":
            for k, v in fields.items():
                if k in PHD_KEYS and mask_phd.get(k) != v:
                    raise UsageError(
                        f"{path}: config.phd.{k} is {json.dumps(v)}, the mask module's spec has "
                        f"{json.dumps(mask_phd.get(k))}: export the config's spec "
                        "(deno task export)"
                    )
            continue
        for k, v in fields.items():
            if section == "data" and k == "tokens":  # optional, absent from the defaults
                if not isinstance(v, str) or v == "":
                    what = f"{path}: config.data.tokens"
                    raise UsageError(f"{what} must be a token file's path, got {json.dumps(v)}")
                c["data"]["tokens"] = os.path.join(os.path.dirname(os.path.abspath(path)), v)
                continue
            if k not in c[section]:
                known = ", ".join(c[section])
                raise UsageError(
                    f'{path}: config.{section} has an unknown field "{k}" (known: {known})'
                )
            want = DEFAULTS[section][k]
            c[section][k] = v if section == "data" and k in ("train", "val", "tokenizer") else (
                _typed(f"{section}.{k}", want, v)
            )
    d = c["data"]
    if d["train"] != "" or d["val"] != "":
        raise UsageError(
            f"{path}: config.data.train: phd_torch trains from a token file (deno task tokenize "
            "--data ... --out F, then data.tokens or --tokens F)"
        )
    return c


def _int(path, v, lo):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < lo:
        raise UsageError(f"config.{path} must be an integer >= {lo}, got {v}")


def _range(path, v, lo, hi, lo_open, hi_open):
    ok_lo = v > lo if lo_open else v >= lo
    ok_hi = v < hi if hi_open else v <= hi
    if not (math.isfinite(v) and ok_lo and ok_hi):
        a, b = "(" if lo_open else "[", ")" if hi_open else "]"
        raise UsageError(f"config.{path} must be in {a}{lo}, {hi}{b}, got {v}")


def check(c):
    """Refuses, in runtime/model/config.ts's words, a config the other engine would refuse."""
    m, t = c["model"], c["train"]
    for k in MODEL_KEYS[:6]:
        _int(f"model.{k}", m[k], 1)
    if m["hidden_size"] % m["num_attention_heads"]:
        raise UsageError(
            f"config.model.hidden_size ({m['hidden_size']}) must be a multiple of "
            f"num_attention_heads ({m['num_attention_heads']})"
        )
    d = m["hidden_size"] // m["num_attention_heads"]
    if d % 4:
        raise UsageError(f"head dim hidden_size/num_attention_heads = {d} must be a multiple of 4")
    if m["num_attention_heads"] % m["num_key_value_heads"]:
        raise UsageError(
            f"config.model.num_key_value_heads ({m['num_key_value_heads']}) must divide "
            f"num_attention_heads ({m['num_attention_heads']})"
        )
    _range("model.rms_norm_eps", m["rms_norm_eps"], 0, 1, True, True)
    _range("model.rope_theta", m["rope_theta"], 1, math.inf, True, True)
    for k in ("steps", "batch_size", "seq_len", "eval_batches", "log_every", "keep_last"):
        _int(f"train.{k}", t[k], 1)
    for k in ("seed", "warmup", "eval_every", "save_every"):
        _int(f"train.{k}", t[k], 0)
    _range("train.save_every_seconds", t["save_every_seconds"], 0, math.inf, False, True)
    _range("train.lr", t["lr"], 0, 1, True, False)
    if t["schedule"] not in ("cosine", "constant"):
        raise UsageError(
            f'config.train.schedule must be "cosine" or "constant", got "{t["schedule"]}"'
        )
    for k in ("beta1", "beta2"):
        _range(f"train.{k}", t[k], 0, 1, False, True)
    for k in ("min_lr_ratio", "weight_decay"):
        _range(f"train.{k}", t[k], 0, 1, False, False)
    _range("train.grad_clip", t["grad_clip"], 0, math.inf, False, True)
    _range("data.val_fraction", c["data"]["val_fraction"], 0, 1, True, True)


def learning_rate(t, step):
    """runtime/model/config.ts `learningRate`: linear warm-up, then cosine decay to
    min_lr_ratio * lr (or constant), in float64 in the same order of operations."""
    if step < t["warmup"]:
        return t["lr"] * (step + 1) / t["warmup"]
    if t["schedule"] == "constant":
        return t["lr"]
    span = max(1, t["steps"] - t["warmup"])
    progress = min(1, (step - t["warmup"]) / span)
    floor = t["lr"] * t["min_lr_ratio"]
    return floor + (t["lr"] - floor) * 0.5 * (1 + math.cos(math.pi * progress))
