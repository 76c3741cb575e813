"""What python/phd_torch computes where it must equal the TypeScript, for
tests/torch/parity_test.ts: reads one JSON request from argv and prints one JSON answer with
- "starts": per sampler case {seed, length, batch, seq_len, steps}, the window starts of each
  step's batch (phd_torch.data.Batches) and the state after them;
- "init": per config, the SHA-256 of each initial weight's float32 bytes (phd_torch.model);
- "lr": per (train section, step), learning_rate (phd_torch.config);
- "defaults": phd_torch.config.DEFAULTS;
- "tokens": per token file, its metadata and both streams' lengths and id sums (phd_torch.data).
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from phd_torch.config import DEFAULTS, learning_rate  # noqa: E402
from phd_torch.data import Batches, TokenFile  # noqa: E402
from phd_torch.model import init_weights  # noqa: E402

req = json.loads(sys.argv[1])
out = {"defaults": DEFAULTS, "starts": [], "init": [], "lr": [], "tokens": []}
for c in req["samplers"]:
    b = Batches(range(c["length"]), c["batch"], c["seq_len"], c["seed"])
    starts = [b.draw().tolist() for _ in range(c["steps"])]
    out["starts"].append({"starts": starts, "state": b.state})
for c in req["inits"]:
    w = init_weights(c["model"], c["seed"])
    out["init"].append({k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in w.items()})
out["lr"] = [learning_rate(t, step) for t, step in req["lr"]]
for path in req["tokens"]:
    f = TokenFile(path)
    out["tokens"].append(
        {
            "tokenizer": f.tokenizer,
            "vocab_size": f.vocab_size,
            "separator": f.separator,
            "train": [len(f.train), int(f.train.sum(dtype="uint64"))],
            "val": [len(f.val), int(f.val.sum(dtype="uint64"))],
        }
    )
print(json.dumps(out))
