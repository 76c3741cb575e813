"""The processes of a run: one, or the ones torchrun starts (its RANK, WORLD_SIZE, LOCAL_RANK in
the environment), joined by DistributedDataParallel over gloo on the CPU or NCCL on CUDA, or with
`--fsdp` (CUDA, torch >= 2.2) by FullyShardedDataParallel around each block. Every rank holds the
same optimizer state under DDP, so rank 0 saves alone; under FSDP the weights and moments are
gathered to rank 0 first (`torch.distributed.checkpoint.state_dict`). Debian's torch 1.13 on
Python 3.11 cannot import `torch.distributed.fsdp`: `fsdp_refusal` says so in one line.
"""
import contextlib
import os
import sys

import torch
import torch.distributed as dist

from one_line_errors import UsageError


def fsdp_refusal(device):
    """Why --fsdp cannot run here, or None."""
    try:
        from torch.distributed.checkpoint.state_dict import get_state_dict  # noqa: F401 (>= 2.2)
        from torch.distributed.fsdp import FullyShardedDataParallel  # noqa: F401
    except Exception as e:  # 1.13 on Python 3.11 raises ValueError inside a dataclass
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        v = sys.version_info
        return (
            f"--fsdp: torch {torch.__version__} on Python {v.major}.{v.minor} cannot import "
            f"torch.distributed.fsdp with its state-dict helpers ({type(e).__name__}: {why}); "
            "FSDP runs on torch >= 2.2: drop --fsdp (DDP) or use a newer torch"
        )
    if device.type != "cuda":
        return "--fsdp shards the blocks across GPUs and needs CUDA: drop it (DDP runs on the CPU)"
    if "WORLD_SIZE" not in os.environ:
        return "--fsdp shards across torchrun's processes: launch it with torchrun"
    return None


def clean(name):
    """A parameter's checkpoint name from a wrapped model's (DDP and FSDP add prefixes)."""
    return name.replace("_fsdp_wrapped_module.", "").removeprefix("module.")


class Processes:
    """This process's rank and device, and the collectives a run needs (none when alone)."""

    def __init__(self, device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda: this torch sees no CUDA device")
        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda", local) if cuda else torch.device("cpu")
        self.fsdp = False
        self.joined = False

    def join(self, fsdp):
        """Joins torchrun's process group (gloo on the CPU, NCCL on CUDA), if there are several
        processes or FSDP (which needs a group even of one)."""
        if self.world > 1 or fsdp:
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.joined = True

    def close(self):
        if self.joined:
            dist.destroy_process_group()

    def sum(self, x):
        """The sum of a tensor over the ranks."""
        if self.joined:
            dist.all_reduce(x)
        return x

    def agree(self, flag):
        """Rank 0's boolean, on every rank."""
        if not self.joined:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())

    def wrap(self, model, fsdp, block):
        """The model as the ranks train it: itself alone, DDP, or FSDP around each `block`."""
        self.fsdp = fsdp
        if fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel
            from torch.distributed.fsdp.wrap import ModuleWrapPolicy

            return FullyShardedDataParallel(
                model,
                auto_wrap_policy=ModuleWrapPolicy({block}),
                device_id=self.device,
                use_orig_params=True,
            )
        if not self.joined:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, broadcast_buffers=False
        )

    def no_sync(self, net, last):
        """Gradients of a micro-batch that is not the step's last stay local (forward and
        backward both run inside)."""
        return contextlib.nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync()

    def clip(self, net, model, max_norm):
        """Global-norm clipping of the gradients (FSDP's own across shards)."""
        if max_norm <= 0:
            return
        if self.fsdp:
            net.clip_grad_norm_(max_norm)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    def full_state(self, net, model, opt):
        """(weights, m, v) by checkpoint name on rank 0, None on the others; a collective under
        FSDP (every rank must call it)."""
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

            o = StateDictOptions(full_state_dict=True, cpu_offload=True)
            weights, osd = get_state_dict(net, opt, options=o)
            if self.rank != 0:
                return None
            moments = {clean(k): s for k, s in osd["state"].items()}
            return (
                {clean(k): w for k, w in weights.items()},
                {k: s["m"] for k, s in moments.items()},
                {k: s["v"] for k, s in moments.items()},
            )
        if self.rank != 0:
            return None
        named = list(model.named_parameters())
        return (
            model.state_dict(),
            {n: opt.state[p]["m"] for n, p in named},
            {n: opt.state[p]["v"] for n, p in named},
        )

    def load_moments(self, net, model, opt, m, v):
        """Puts saved moments into the optimizer (every rank; FSDP scatters its shards)."""
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_optimizer_state_dict,
            )

            names = {p: clean(n) for n, p in net.named_parameters()}
            groups = [
                {**{k: g[k] for k in g if k != "params"}, "params": [names[p] for p in g["params"]]}
                for g in opt.param_groups
            ]
            osd = {"state": {n: {"m": m[n], "v": v[n]} for n in m}, "param_groups": groups}
            o = StateDictOptions(full_state_dict=True)
            set_optimizer_state_dict(net, opt, optim_state_dict=osd, options=o)
            return
        for n, p in model.named_parameters():
            opt.state[p] = {"m": m[n].to(p.device).clone(), "v": v[n].to(p.device).clone()}
