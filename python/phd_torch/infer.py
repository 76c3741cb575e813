"""`phd_torch eval` and `phd_torch generate`: a checkpoint's mean next-token loss on a text, cut
into windows as runtime/train/evaluate.ts cuts them, and its greedy continuation of a prompt
(the whole expanded sequence recomputed per token). Both read text as UTF-8 bytes, so they take
checkpoints of the bytes tokenizer.
"""
import json
import sys

import torch

from one_line_errors import UsageError
from phd_torch.data import read_text
from phd_torch.model import load_mask, load_model


def _bytes_model(args, dtype):
    model, meta, m, context = load_model(args.ckpt, load_mask(args.mask), args.attention, dtype)
    if m["tokenizer"] != "bytes":
        raise UsageError(
            f'"{args.ckpt}" uses tokenizer "{m["tokenizer"][:40]}"; phd_torch eval and generate '
            'read text as "bytes": use deno task eval/generate'
        )
    return model, context


def cmd_eval(args):
    """Mean next-token loss over consecutive windows, as runtime/train/evaluate.ts cuts them."""
    model, ctx = _bytes_model(args, getattr(torch, args.dtype))
    context = args.context or ctx
    if context is None:
        raise UsageError("the checkpoint records no context: give --context N")
    stream = torch.from_numpy(read_text(args.text_file))
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


# The most positions a generation may reach: every step recomputes the whole expanded sequence
# (K * positions rows) through dense attention, so the cost grows with the square of this.
MAX_POSITIONS = 4096


def _too_many(prompt, new):
    return UsageError(
        f"--max-new-tokens {new} with a prompt of {prompt} tokens needs {prompt + new} positions, "
        f"above this greedy loop's limit of {MAX_POSITIONS}: use --max-new-tokens <= "
        f"{max(0, MAX_POSITIONS - prompt)}, or deno task generate (KV-cached)"
    )


def cmd_generate(args):
    """Greedy decoding by recomputing the whole expanded sequence every step."""
    ids = list(args.prompt.encode("utf-8"))
    if not ids:
        raise UsageError("the prompt is empty: give at least one character")
    if 1 + args.max_new_tokens > MAX_POSITIONS:  # before any work: even a 1-token prompt
        raise _too_many(1, args.max_new_tokens)
    model, context = _bytes_model(args, torch.float32)
    if context is not None and len(ids) > context:
        print(
            f"warning: the prompt's {len(ids)} tokens exceed the {context} positions the model "
            f"was trained on: kept its last {context}",
            file=sys.stderr,
        )
        ids = ids[-context:]
    if len(ids) + args.max_new_tokens > MAX_POSITIONS:
        raise _too_many(len(ids), args.max_new_tokens)
    new = []
    with torch.no_grad():
        for _ in range(args.max_new_tokens):
            logits = model(torch.tensor([ids + new]))[0, -1]
            new.append(int(torch.argmax(logits)))
    text = bytes(new).decode("utf-8", errors="replace")
    print(json.dumps({"tokens": new, "text": text}) if args.json else args.prompt + text)
