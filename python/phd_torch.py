#!/usr/bin/env python3
"""The PHD Llama of docs/DESIGN.md 1.3 in plain PyTorch, for carrying this project's checkpoints
to PyTorch (FlexAttention, FSDP, torchtitan) and back.

The model: token embedding, pre-norm blocks (RMSNorm -> attention with RoPE, HF rotate_half ->
residual; RMSNorm -> SwiGLU -> residual), final RMSNorm, LM head (tied or not), no biases,
grouped-query attention, Hugging Face Llama parameter names (a K = 1 state dict is a plain
LlamaForCausalLM's). PHD: every copy of position p reads embed(x_p), position ids are `shared`
(p) or `flattened` (p*K + c), the loss is copy K-1 at p predicting x_{p+1}. Tokens are stored in
the layout of the mask module (`deno task export ... --to flex`), whose `token_coords` gives each
flat index its (copy, pos); attention is `flex_attention` with the module's BlockMask when torch
has it (>= 2.5), otherwise a dense additive mask built from the module's mask_mod.

Checkpoints are safetensors files with this project's `__metadata__` (docs/DESIGN.md 4), read and
written here without the `safetensors` package; a Hugging Face `config.json` is written beside
each one saved.

    python3 python/phd_torch.py eval --ckpt m.safetensors --mask mask.py --text-file t.txt --json
    python3 python/phd_torch.py generate --ckpt m.safetensors --mask mask.py --prompt "The" \\
        --max-new-tokens 20 --json
    python3 python/phd_torch.py train --mask mask.py (--init m.safetensors | --config config.json) \\
        --text-file t.txt --steps 50 --out out/torch.safetensors --json

Bad input (a missing file, a checkpoint without metadata, a mask module of another spec) gets one
`error:` line and exit status 1; set PHD_DEBUG=1 for a traceback.
"""
import argparse
import importlib.util
import json
import math
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from one_line_errors import Parser, UsageError, positive, run  # noqa: E402

import torch
import torch.nn.functional as F
from torch import nn


# ---- safetensors (docs/DESIGN.md 4) --------------------------------------------------------

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
CONFIG_KEYS = (
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


def read_safetensors(path):
    """(metadata strings, {name: float32 tensor}) of a safetensors file, read once into memory
    that the F32 tensors share (no copy per tensor)."""
    try:
        with open(path, "rb") as f:
            data = bytearray(os.fstat(f.fileno()).st_size)
            f.readinto(data)
    except FileNotFoundError:
        raise UsageError(f'checkpoint "{path}" does not exist') from None
    if len(data) < 8:
        raise UsageError(f'"{path}" is not a safetensors file ({len(data)} bytes)')
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UsageError(f'"{path}" is not a safetensors file (its header is not JSON)') from None
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, e in header.items():
        dtype = DTYPES.get(e.get("dtype"))
        if dtype is None:
            raise UsageError(
                f'"{path}": tensor {name} has dtype {e.get("dtype")} (F32, F16, BF16 read)'
            )
        a, b = (8 + n + x for x in e["data_offsets"])
        if b > len(data) or a > b:
            raise UsageError(f'"{path}": tensor {name} runs past the end of the file')
        size = torch.tensor([], dtype=dtype).element_size()
        # an unaligned tensor (after F16 ones) is copied; aligned ones are views of `data`
        buf = data if a % size == 0 else bytearray(data[a:b])
        at = a if buf is data else 0
        if b == a:  # frombuffer refuses empty ranges
            raw = torch.empty(0, dtype=dtype)
        else:
            raw = torch.frombuffer(buf, dtype=dtype, offset=at, count=(b - a) // size)
        tensors[name] = raw.reshape(e["shape"]).to(torch.float32)
    return meta, tensors


def write_atomic(path, data):
    """Writes bytes to path through a temporary file and a rename (never half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_safetensors(path, tensors, metadata):
    """Writes F32 tensors (in dict order) and string metadata as a safetensors file."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        blob = t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)  # the data starts 8-byte aligned
    write_atomic(path, struct.pack("<Q", len(js)) + js + b"".join(blobs))


def checkpoint_meta(path, meta):
    """The parsed config, phd and tokenizer of a checkpoint's metadata (one line when missing)."""
    out = {}
    for key in ("config", "phd", "tokenizer"):
        if key not in meta:
            raise UsageError(
                f'"{path}" has no __metadata__ "{key}" (expected config, phd, tokenizer): '
                "it was not saved by deno task train or phd_torch.py"
            )
        try:
            out[key] = meta[key] if key == "tokenizer" else json.loads(meta[key])
        except ValueError:
            raise UsageError(f'"{path}": __metadata__ "{key}" is not JSON') from None
    missing = [k for k in CONFIG_KEYS if k not in out["config"]]
    if missing:
        raise UsageError(f'"{path}": __metadata__ config lacks {", ".join(missing)}')
    if out["tokenizer"] != "bytes":
        raise UsageError(
            f'"{path}" uses tokenizer "{out["tokenizer"]}"; phd_torch.py knows "bytes"'
        )
    return out


def hf_config(config, phd, tokenizer, context):
    """The Hugging Face config.json object (runtime/io/hf_config.ts writes the same)."""
    K, plain = phd["K"], phd["K"] == 1
    out = {
        "architectures": ["LlamaForCausalLM" if plain else "PhdLlamaForCausalLM"],
        "model_type": "llama" if plain else "phd_llama",
    }
    for k in CONFIG_KEYS[:6]:
        out[k] = config[k]
    out["head_dim"] = config["hidden_size"] // config["num_attention_heads"]
    out["hidden_act"] = "silu"
    for k in ("rms_norm_eps", "rope_theta", "tie_word_embeddings"):
        out[k] = config[k]
    out.update(attention_bias=False, mlp_bias=False, torch_dtype="float32")
    if context is not None:
        out["max_position_embeddings"] = context * K if phd["positions"] == "flattened" else context
    out["phd"] = {k: phd[k] for k in ("K", "variant", "W", "C", "positions")}
    out["tokenizer"] = tokenizer
    return out


# ---- the mask module ------------------------------------------------------------------------


def load_mask(path):
    """Imports a module written by `deno task export ... --to flex`."""
    if not os.path.isfile(path):
        raise UsageError(
            f'mask module "{path}" does not exist (deno task export SPEC --to flex --out {path})'
        )
    spec = importlib.util.spec_from_file_location(f"phd_mask_{abs(hash(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in ("K", "SOURCE", "token_coords", "mask_mod_for", "dense_mask", "block_mask"):
        if not hasattr(mod, name):
            raise UsageError(
                f'"{path}" is not a mask module of deno task export (it has no {name})'
            )
    return mod


def check_mask(mask, phd, ckpt):
    """Refuses a mask module of another spec than the checkpoint was trained with."""
    if mask.K != phd["K"] or mask.SOURCE != phd.get("source"):
        raise UsageError(
            f'"{ckpt}" was trained with K={phd["K"]} and mask {phd.get("source")!r}, the module has '
            f"K={mask.K} and {mask.SOURCE!r}: export the checkpoint's own, deno task export {ckpt} --to flex"
        )


# ---- the model (docs/DESIGN.md 1.3) ---------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    """HF rotate_half RoPE: dims i and i + d/2 form a pair. x (B, H, N, d); cos, sin (N, d)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.H, self.HKV = c["num_attention_heads"], c["num_key_value_heads"]
        self.d = c["hidden_size"] // self.H
        C = c["hidden_size"]
        self.q_proj = nn.Linear(C, self.H * self.d, bias=False)
        self.k_proj = nn.Linear(C, self.HKV * self.d, bias=False)
        self.v_proj = nn.Linear(C, self.HKV * self.d, bias=False)
        self.o_proj = nn.Linear(self.H * self.d, C, bias=False)

    def forward(self, x, cos, sin, attend):
        B, N, _ = x.shape
        q = self.q_proj(x).view(B, N, self.H, self.d).transpose(1, 2)
        k = self.k_proj(x).view(B, N, self.HKV, self.d).transpose(1, 2)
        v = self.v_proj(x).view(B, N, self.HKV, self.d).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        # query head h reads KV head h // (H / HKV), as HF's repeat_kv
        k = k.repeat_interleave(self.H // self.HKV, dim=1)
        v = v.repeat_interleave(self.H // self.HKV, dim=1)
        o = attend(q, k, v)  # (B, H, N, d)
        return self.o_proj(o.transpose(1, 2).reshape(B, N, self.H * self.d))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, I = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(C, I, bias=False)
        self.up_proj = nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, attend):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attend)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


def flex_note(mask):
    """Why the dense path runs, or None when flex_attention is there."""
    if mask.flex_available():
        return None
    return (
        f"flex_attention needs torch >= 2.5, this torch is {torch.__version__}: dense additive mask"
    )


class Attender:
    """Attention of one sequence length: flex_attention with the BlockMask, or dense."""

    def __init__(self, mask, L, device, dtype, heads, use_flex):
        N = mask.K * L
        self.score_mod = mask.score_mod_for(L) if mask.score_mod_for else None
        if use_flex:
            from torch.nn.attention.flex_attention import flex_attention

            self.block = mask.block_mask(L, device)
            # compiled kernels on CUDA; eager (a reference implementation) elsewhere
            self.flex = torch.compile(flex_attention) if device.type == "cuda" else flex_attention
            return
        self.flex = None
        mask.move_to(device)
        allowed = mask.dense_mask(L, device)
        self.additive = torch.zeros(N, N, dtype=dtype, device=device).masked_fill(
            ~allowed, -math.inf
        )
        t = torch.arange(N, device=device)
        self.grid = (
            torch.arange(heads, device=device)[None, :, None, None],
            t[:, None],
            t[None, :],
        )

    def __call__(self, q, k, v):
        if self.flex is not None:
            return self.flex(q, k, v, score_mod=self.score_mod, block_mask=self.block)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        if self.score_mod is not None:
            h, qi, ki = self.grid
            s = self.score_mod(s, torch.zeros_like(h), h, qi, ki)
        s = s + self.additive
        # softmax that gives a fully masked row zeros (and zero gradients), as the kernels do
        m = s.amax(-1, keepdim=True).detach()
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        e = torch.exp(s - m)
        den = e.sum(-1, keepdim=True)
        return (e / torch.where(den > 0, den, torch.ones_like(den))) @ v


class PhdLlama(nn.Module):
    """The PHD transformer; `forward(ids)` gives copy K-1's logits at every position."""

    def __init__(self, config, mask, positions, use_flex):
        super().__init__()
        self.config, self.mask, self.positions, self.use_flex = config, mask, positions, use_flex
        self.model = Backbone(config)
        self.lm_head = None
        if not config["tie_word_embeddings"]:
            self.lm_head = nn.Linear(config["hidden_size"], config["vocab_size"], bias=False)
        self._attenders = {}

    def head_weight(self):
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def forward(self, ids):
        """ids (B, L) -> logits (B, L, V) of the last copy of every position."""
        B, L = ids.shape
        K, dev, dtype = self.mask.K, ids.device, self.model.norm.weight.dtype
        t = torch.arange(K * L, device=dev)
        c, p = self.mask.token_coords(t, L)
        x = self.model.embed_tokens(ids[:, p])  # (B, N, C): every copy of p reads x_p
        pos = p if self.positions == "shared" else p * K + c
        d = self.config["hidden_size"] // self.config["num_attention_heads"]
        inv = self.config["rope_theta"] ** (
            -torch.arange(0, d, 2, dtype=torch.float64, device=dev) / d
        )
        ang = pos.to(torch.float64)[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), dim=-1)
        cos, sin = ang.cos().to(dtype), ang.sin().to(dtype)
        key = (L, dev, dtype)
        if key not in self._attenders:
            H = self.config["num_attention_heads"]
            self._attenders[key] = Attender(self.mask, L, dev, dtype, H, self.use_flex)
        attend = self._attenders[key]
        for layer in self.model.layers:
            x = layer(x, cos, sin, attend)
        x = self.model.norm(x)
        rows = t[c == K - 1]  # copy K-1 of positions 0..L-1, in position order in both layouts
        return x[:, rows] @ self.head_weight().t()

    def loss(self, windows, reduction="mean"):
        """Next-token cross-entropy of (B, L+1) ids: copy K-1 at p predicts x_{p+1}."""
        logits = self(windows[:, :-1])
        V = logits.shape[-1]
        return F.cross_entropy(
            logits.reshape(-1, V), windows[:, 1:].reshape(-1), reduction=reduction
        )

    def tensors(self):
        """The parameters by checkpoint name (Hugging Face Llama's; no lm_head when tied)."""
        return self.state_dict()


def build_model(config, mask, positions, attention):
    flex = attention == "flex" or (attention == "auto" and mask.flex_available())
    if flex and not mask.flex_available():
        raise UsageError(f"--attention flex: {flex_note(mask)}")
    note = (
        f"flex_attention (torch {torch.__version__})"
        if flex
        else flex_note(mask) or "dense additive mask"
    )
    print(f"attention: {note}", file=sys.stderr)
    return PhdLlama(config, mask, positions, flex)


def load_model(args, ckpt, dtype):
    """A checkpoint as a model, checked against the --mask module."""
    meta, tensors = read_safetensors(ckpt)
    m = checkpoint_meta(ckpt, meta)
    if m["phd"].get("embeddings", "shared") != "shared":
        raise UsageError(
            f'"{ckpt}" has per-copy embedding tables (phd.embeddings "per-copy"), which this '
            "PyTorch port does not build: use deno task generate/eval, or train with shared ones"
        )
    mask = load_mask(args.mask)
    check_mask(mask, m["phd"], ckpt)
    model = build_model(m["config"], mask, m["phd"]["positions"], args.attention)
    want = model.tensors()
    missing = [k for k in want if k not in tensors]
    if missing:
        raise UsageError(f'"{ckpt}" lacks tensor "{missing[0]}"')
    for k, v in want.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise UsageError(
                f'"{ckpt}": tensor {k} is {list(tensors[k].shape)}, the config needs {list(v.shape)}'
            )
    model.load_state_dict({k: tensors[k] for k in want})
    context = int(meta["context"]) if "context" in meta else None
    return model.to(dtype), meta, m, context


def save_checkpoint(path, model, phd, tokenizer, context):
    """Writes the checkpoint (metadata of docs/DESIGN.md 4) and config.json in its folder."""
    config = {k: model.config[k] for k in CONFIG_KEYS}
    meta = {
        "config": json.dumps(config, separators=(",", ":")),
        "phd": phd,
        "tokenizer": tokenizer,
        "format": "pt",
        "context": str(context),
    }
    write_safetensors(path, model.tensors(), meta)
    hf = hf_config(config, json.loads(phd), tokenizer, context)
    target = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    write_atomic(target, (json.dumps(hf, indent=2) + "\n").encode("utf-8"))


# ---- commands -------------------------------------------------------------------------------


def read_text(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UsageError(f'text file "{path}" does not exist') from None
    if len(data) < 2:
        raise UsageError("the text must hold at least 2 tokens")
    return torch.tensor(list(data), dtype=torch.long)  # the bytes tokenizer: UTF-8 bytes


def cmd_eval(args):
    """Mean next-token loss over consecutive windows, as runtime/train/evaluate.ts cuts them."""
    dtype = getattr(torch, args.dtype)
    model, _, _, ctx = load_model(args, args.ckpt, dtype)
    context = args.context or ctx
    if context is None:
        raise UsageError("the checkpoint records no context: give --context N")
    stream = read_text(args.text_file)
    n = len(stream)
    windows = [(s, min(context, n - 1 - s)) for s in range(0, n - 1, context)]
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), args.batch):
            for length in sorted({w[1] for w in windows[i : i + args.batch]}):
                group = [s for s, ln in windows[i : i + args.batch] if ln == length]
                ids = torch.stack([stream[s : s + length + 1] for s in group])
                total += model.loss(ids, reduction="sum").item()
                count += length * len(group)
    out = {"loss": total / count, "tokens": count, "context": context}
    print(
        json.dumps(out) if args.json else f"loss {out['loss']:.6f} nats/token over {count} tokens"
    )


def cmd_generate(args):
    """Greedy decoding by recomputing the whole expanded sequence every step."""
    model, _, _, _ = load_model(args, args.ckpt, torch.float32)
    ids = list(args.prompt.encode("utf-8"))
    if not ids:
        raise UsageError("the prompt is empty: give at least one character")
    new = []
    with torch.no_grad():
        for _ in range(args.max_new_tokens):
            logits = model(torch.tensor([ids + new]))[0, -1]
            new.append(int(torch.argmax(logits)))
    text = bytes(new).decode("utf-8", errors="replace")
    print(json.dumps({"tokens": new, "text": text}) if args.json else args.prompt + text)


def fresh_config(path):
    try:
        with open(path) as f:
            c = json.load(f)
    except FileNotFoundError:
        raise UsageError(f'config "{path}" does not exist') from None
    except ValueError:
        raise UsageError(f'config "{path}" is not JSON') from None
    missing = [k for k in CONFIG_KEYS if k not in c]
    if missing:
        raise UsageError(
            f'config "{path}" lacks {", ".join(missing)} (a Hugging Face Llama config.json)'
        )
    return {k: c[k] for k in CONFIG_KEYS}


def cmd_train(args):
    """AdamW on random windows of a text; saves a checkpoint this project loads."""
    if (args.init is None) == (args.config is None):
        raise UsageError(
            "give exactly one of --init CKPT (continue it) or --config config.json (fresh)"
        )
    torch.manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    if args.init:
        model, meta, m, ctx = load_model(args, args.init, dtype)
        phd, tokenizer = meta["phd"], m["tokenizer"]
    else:
        mask = load_mask(args.mask)
        if mask.CHECKPOINT_PHD is None:
            raise UsageError(
                f"mask module {mask.NAME} names no checkpoint spec (CHECKPOINT_PHD is None): "
                "export it again with deno task export, or continue a checkpoint with --init"
            )
        phd, tokenizer, ctx = mask.CHECKPOINT_PHD, "bytes", None
        model = build_model(
            fresh_config(args.config), mask, json.loads(phd)["positions"], args.attention
        )
        for name, p in model.named_parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)
        model = model.to(dtype)
    seq = args.seq_len or ctx
    if seq is None:
        raise UsageError("give --seq-len N (positions per training window)")
    stream = read_text(args.text_file)
    if len(stream) < seq + 1:
        raise UsageError(f"the text has {len(stream)} tokens, fewer than --seq-len + 1 = {seq + 1}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    losses, t0 = [], time.time()
    for step in range(args.steps):
        starts = torch.randint(0, len(stream) - seq, (args.batch,), generator=gen)
        loss = model.loss(torch.stack([stream[s : s + seq + 1] for s in starts.tolist()]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if not args.json:
            print(f"step {step + 1}/{args.steps} loss {losses[-1]:.4f}", file=sys.stderr)
    save_checkpoint(args.out, model, phd, tokenizer, seq)
    out = {
        "steps": args.steps,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "out": args.out,
        "seconds": round(time.time() - t0, 3),
    }
    print(
        json.dumps(out)
        if args.json
        else f"wrote {args.out} (loss {losses[0]:.4f} -> {losses[-1]:.4f})"
    )


def main(argv):
    p = Parser(prog="phd_torch.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, fn, help):
        s = sub.add_parser(name, help=help, description=fn.__doc__)
        s.set_defaults(fn=fn)
        s.add_argument("--mask", required=True, help="module of deno task export SPEC --to flex")
        s.add_argument(
            "--attention",
            choices=("auto", "flex", "dense"),
            default="auto",
            help="flex_attention (torch >= 2.5) or the dense mask; auto picks flex when there",
        )
        s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return s

    e = command("eval", cmd_eval, "mean next-token loss of a checkpoint on a text")
    e.add_argument("--ckpt", required=True)
    e.add_argument("--text-file", required=True)
    e.add_argument(
        "--context", type=positive, help="predictions per window (default: the checkpoint's)"
    )
    e.add_argument("--batch", type=positive, default=8)
    e.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g = command("generate", cmd_generate, "greedy continuation of a prompt")
    g.add_argument("--ckpt", required=True)
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-new-tokens", type=positive, required=True)
    t = command("train", cmd_train, "train a few steps and save a checkpoint")
    t.add_argument("--init", help="checkpoint to continue")
    t.add_argument("--config", help="Hugging Face Llama config.json of a fresh model")
    t.add_argument("--text-file", required=True)
    t.add_argument("--steps", type=positive, required=True)
    t.add_argument(
        "--seq-len", type=positive, help="positions per window (default: --init's context)"
    )
    t.add_argument("--batch", type=positive, default=8)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    t.add_argument("--out", required=True)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    run(main)
