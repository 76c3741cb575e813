"""phd_torch: the PHD Llama of docs/DESIGN.md 1.3 in PyTorch, trained on this project's token
files alone or under torchrun (DDP, FSDP on CUDA), reading and writing this project's checkpoints
and training states, so a run moves between `deno task train` and PyTorch.

    PYTHONPATH=python python3 -m phd_torch train --mask mask.py --config config.json \\
        --tokens tokens.safetensors --steps 200 --out out/torch.safetensors
    PYTHONPATH=python python3 -m torch.distributed.run --standalone --nproc_per_node 2 -r 1 -t 1 \\
        -m phd_torch train ... (the same flags; --batch is the global batch)
    PYTHONPATH=python python3 -m phd_torch train --mask mask.py --resume out/m.safetensors
    PYTHONPATH=python python3 -m phd_torch eval --ckpt m.safetensors --mask mask.py \\
        --text-file t.txt
    PYTHONPATH=python python3 -m phd_torch generate --ckpt m.safetensors --mask mask.py \\
        --prompt The --max-new-tokens 20

Modules: model (the network, the mask module, the shared initialisation), rng (mulberry32),
data (token files, the batch sampler), config (sections, defaults, schedule), optim (AdamW as the
WGSL kernel computes it), io (checkpoint units), dist (processes, DDP, FSDP), engine (the torch,
BLAS and device a run reports), train, infer.
"""
