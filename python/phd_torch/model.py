"""The PHD Llama of docs/DESIGN.md 1.3 in plain PyTorch, and the mask module it attends with.

The model: token embedding, pre-norm blocks (RMSNorm -> attention with RoPE, HF rotate_half ->
residual; RMSNorm -> SwiGLU -> residual), final RMSNorm, LM head (tied or not), no biases,
grouped-query attention, Hugging Face Llama parameter names (a K = 1 state dict is a plain
LlamaForCausalLM's). PHD: every copy of position p reads embed(x_p), position ids are `shared`
(p) or `flattened` (p*K + c), the loss is copy K-1 at p predicting x_{p+1}. Tokens are stored in
the layout of the mask module (`deno task export ... --to flex`), whose `token_coords` gives each
flat index its (copy, pos); attention is `flex_attention` with the module's BlockMask when torch
has it (>= 2.5), otherwise a dense additive mask built from the module's mask_mod. A fresh model
starts from runtime/model/params.ts `initParams` (norms 1, matrices normal(0, 0.02) from
mulberry32 in parameter order), so a seed gives the same weights in both engines and on any
number of processes.
"""
import importlib.util
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from one_line_errors import UsageError
from phd_torch import rng
from phd_torch.io import checkpoint_meta, read_safetensors


def load_mask(path):
    """Imports a module written by `deno task export ... --to flex`."""
    if not os.path.isfile(path):
        raise UsageError(
            f'mask module "{path}" does not exist (deno task export SPEC --to flex --out {path})'
        )
    spec = importlib.util.spec_from_file_location(f"phd_mask_{abs(hash(path))}", path)
    if spec is None:
        raise UsageError(f'"{path}" is not a Python module (deno task export SPEC --to flex)')
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # a file that is not Python, or another module that fails
        first = str(e).split("\n")[0]
        raise UsageError(
            f'"{path}" is not a mask module of deno task export ({type(e).__name__}: {first})'
        ) from None
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
            f'"{ckpt}" was trained with K={phd["K"]} and mask {phd.get("source")!r}, the module '
            f"has K={mask.K} and {mask.SOURCE!r}: export the checkpoint's own, "
            f"deno task export {ckpt} --to flex"
        )


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

    def forward(self, x, cos, sin, attend, rows=None):
        """x (B, N, C) -> (B, M, C): every row's attention (M = N), or only the query rows `rows`
        (M = len(rows)), which still read every row's keys and values."""
        B, N, _ = x.shape
        xq, cq, sq = (x, cos, sin) if rows is None else (x[:, rows], cos[rows], sin[rows])
        M = xq.shape[1]
        q = self.q_proj(xq).view(B, M, self.H, self.d).transpose(1, 2)
        k = self.k_proj(x).view(B, N, self.HKV, self.d).transpose(1, 2)
        v = self.v_proj(x).view(B, N, self.HKV, self.d).transpose(1, 2)
        q, k = rope(q, cq, sq), rope(k, cos, sin)
        # query head h reads KV head h // (H / HKV), as HF's repeat_kv
        k = k.repeat_interleave(self.H // self.HKV, dim=1)
        v = v.repeat_interleave(self.H // self.HKV, dim=1)
        o = attend(q, k, v, rows)  # (B, H, M, d)
        return self.o_proj(o.transpose(1, 2).reshape(B, M, self.H * self.d))


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

    def forward(self, x, cos, sin, attend, rows=None):
        """x (B, N, C) -> (B, N, C), or (B, len(rows), C): only the rows `rows` go on."""
        a = self.self_attn(self.input_layernorm(x), cos, sin, attend, rows)
        x = (x if rows is None else x[:, rows]) + a
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
        # No score modifier and no fully masked row (every preset): the scale and the mask fuse
        # into one baddbmm and torch's softmax, whose backward is one kernel; about twice as fast
        # as the general path below on the CPU at K = 5 and the same sums up to rounding.
        self.fused = self.score_mod is None and bool(allowed.any(-1).all())

    def __call__(self, q, k, v, rows=None):
        """q (B, H, M, d) of every row (M = N) or of the rows `rows` (dense path only); k, v
        (B, H, N, d) -> (B, H, M, d)."""
        if self.flex is not None:
            return self.flex(q, k, v, score_mod=self.score_mod, block_mask=self.block)
        additive = self.additive if rows is None else self.additive[rows]
        if self.fused:
            B, H, M, d = q.shape
            N = k.shape[2]
            kt = k.reshape(B * H, N, d).transpose(-2, -1)
            s = torch.baddbmm(additive, q.reshape(B * H, M, d), kt, alpha=1 / math.sqrt(d))
            return (torch.softmax(s, -1) @ v.reshape(B * H, N, d)).view(B, H, M, d)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        if self.score_mod is not None:
            h, qi, ki = self.grid
            qi = qi if rows is None else rows[:, None]
            s = self.score_mod(s, torch.zeros_like(h), h, qi, ki)
        s = s + additive
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
        rows = t[c == K - 1]  # copy K-1 of positions 0..L-1, in position order in both layouts
        # Only copy K-1's rows reach the logits, so the last layer computes only theirs (their
        # keys and values are every row's): (K-1)/K of its queries, MLP and output projection
        # saved, the logits unchanged. Flex's BlockMask is built for every query row.
        only = None if self.use_flex or K == 1 else rows
        last = len(self.model.layers) - 1
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, attend, only if i == last else None)
        if only is None:
            x = x[:, rows]
        return self.model.norm(x) @ self.head_weight().t()

    def loss(self, windows, reduction="mean"):
        return next_token_loss(self, windows, reduction)


def next_token_loss(net, windows, reduction="mean"):
    """Cross-entropy of (B, L+1) ids: copy K-1 at p predicts x_{p+1}. `net` is the model or its
    DistributedDataParallel / FSDP wrapper (whose forward must run for the gradients to sync)."""
    logits = net(windows[:, :-1])
    V = logits.shape[-1]
    return F.cross_entropy(
        logits.float().reshape(-1, V), windows[:, 1:].reshape(-1), reduction=reduction
    )


def build_model(config, mask, positions, attention, say=lambda line: print(line, file=sys.stderr)):
    """The model of a config; `say` gets the line naming the attention path (flex or dense)."""
    flex = attention == "flex" or (attention == "auto" and mask.flex_available())
    if flex and not mask.flex_available():
        raise UsageError(f"--attention flex: {flex_note(mask)}")
    note = (
        f"flex_attention (torch {torch.__version__})"
        if flex
        else flex_note(mask) or "dense additive mask"
    )
    say(f"attention: {note}")
    return PhdLlama(config, mask, positions, flex)




def param_shapes(config):
    """Every parameter's name and shape in checkpoint order (runtime/model/params.ts
    `paramShapes`, one embedding table): the order `init_weights` draws them in."""
    C, H, HKV = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    d, I = C // H, config["intermediate_size"]
    out = {"model.embed_tokens.weight": (config["vocab_size"], C)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = (C,)
        out[p + "self_attn.q_proj.weight"] = (H * d, C)
        out[p + "self_attn.k_proj.weight"] = (HKV * d, C)
        out[p + "self_attn.v_proj.weight"] = (HKV * d, C)
        out[p + "self_attn.o_proj.weight"] = (C, H * d)
        out[p + "post_attention_layernorm.weight"] = (C,)
        out[p + "mlp.gate_proj.weight"] = (I, C)
        out[p + "mlp.up_proj.weight"] = (I, C)
        out[p + "mlp.down_proj.weight"] = (C, I)
    out["model.norm.weight"] = (C,)
    if not config["tie_word_embeddings"]:
        out["lm_head.weight"] = (config["vocab_size"], C)
    return out


def init_weights(config, seed, std=0.02):
    """runtime/model/params.ts `initParams`: norms 1, matrices std * normal() of mulberry32(seed),
    drawn in float64 in checkpoint order and rounded to float32 (a million values a slice)."""
    state, out = seed & 0xFFFFFFFF, {}
    for name, shape in param_shapes(config).items():
        n = math.prod(shape)
        if len(shape) == 1:
            out[name] = torch.ones(shape)
            continue
        parts = []
        for at in range(0, n, 1 << 20):
            z, state = rng.normals(state, min(1 << 20, n - at))
            parts.append((std * z).astype(np.float32))
        out[name] = torch.from_numpy(np.concatenate(parts).reshape(shape))
    return out


def check_finite(tensors, path):
    """Refuses a checkpoint holding a NaN or an infinity, as the Deno side does."""
    for k, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UsageError(
                f'"{path}": tensor {k} holds a non-finite value (a diverged run?): '
                "use an earlier checkpoint"
            )


def load_weights(model, tensors, path):
    """Copies a checkpoint's tensors into the model, refusing a missing tensor or a wrong shape."""
    want = model.state_dict()
    for k, v in want.items():
        if k not in tensors:
            raise UsageError(f'"{path}" lacks tensor "{k}"')
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise UsageError(
                f'"{path}": tensor {k} is {list(tensors[k].shape)}, '
                f"the config needs {list(v.shape)}"
            )
    model.load_state_dict({k: tensors[k] for k in want})


def load_model(ckpt, mask, attention, dtype=torch.float32):
    """A checkpoint as a model, checked against the mask module: (model, metadata strings,
    parsed metadata, context or None)."""
    meta, tensors = read_safetensors(ckpt)
    m = checkpoint_meta(ckpt, meta)
    check_mask(mask, m["phd"], ckpt)
    check_finite(tensors, ckpt)
    model = build_model(m["config"], mask, m["phd"]["positions"], attention)
    load_weights(model, tensors, ckpt)
    context = int(meta["context"]) if "context" in meta else None
    return model.to(dtype), meta, m, context
