"""`phd_torch eval` and `phd_torch generate`: a checkpoint's mean next-token loss on a text, cut
into windows as runtime/train/evaluate.ts cuts them, and its greedy continuation of a prompt
(the whole expanded sequence recomputed per token). Both read text as UTF-8 bytes, so they take
checkpoints of the bytes tokenizer.
"""
import json

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


def cmd_generate(args):
    """Greedy decoding by recomputing the whole expanded sequence every step."""
    model, _ = _bytes_model(args, torch.float32)
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
