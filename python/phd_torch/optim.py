"""The optimizer of runtime/kernels/adamw.ts, so both engines take the same steps: AdamW with
PyTorch's semantics (decoupled weight decay, bias-corrected moments) in the kernel's order of
float32 operations, its per-step values rounded to float32 as its uniform buffer holds them:

    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + ((1 - beta2) * g) * g
    p = p * (1 - lr * wd)
    p = p - lr * (m / bc1) / (sqrt(v / bc2) + eps)      bc1 = 1 - beta1^t, bc2 = 1 - beta2^t

with t the 1-based step, weight decay on matrices only (norm gains undecayed) and g already
scaled by global-norm clipping (`clip_grad_norm_`: min(1, max / (norm + 1e-6)), as
runtime/kernels/grad_norm.ts). A torch.optim.Optimizer, so FSDP's state-dict helpers gather its
moments; `state[p]["m"]` and `["v"]` are the `m.<name>` and `v.<name>` of a training-state file.
"""
import numpy as np
import torch

EPS = 1e-8


def f32(x):
    """x rounded to float32, as a Python float (torch casts it back exactly)."""
    return float(np.float32(x))


class AdamW(torch.optim.Optimizer):
    """`step(lr, t)` updates every parameter; groups carry their weight decay."""

    def __init__(self, groups, beta1, beta2):
        super().__init__(groups, {"weight_decay": 0.0})
        self.beta1, self.beta2 = beta1, beta2

    @torch.no_grad()
    def step(self, lr, t):
        one = np.float32(1)
        b1, b2, eps = np.float32(self.beta1), np.float32(self.beta2), np.float32(EPS)
        lr32 = np.float32(lr)
        bc1, bc2 = f32(1 - self.beta1**t), f32(1 - self.beta2**t)
        for group in self.param_groups:
            decay = float(one - lr32 * np.float32(group["weight_decay"]))
            for p in group["params"]:
                if p.grad is None:
                    continue
                s = self.state[p]
                if not s:
                    s["m"], s["v"] = torch.zeros_like(p), torch.zeros_like(p)
                g, m, v = p.grad, s["m"], s["v"]
                m.mul_(float(b1)).add_(g * float(one - b1))
                v.mul_(float(b2)).add_(g.mul(float(one - b2)).mul_(g))
                p.mul_(decay)
                p.sub_(m.div(bc1).mul_(float(lr32)).div_(v.div(bc2).sqrt_().add_(float(eps))))
