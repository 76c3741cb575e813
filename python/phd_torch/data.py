"""Training data: the token file of `deno task tokenize` (runtime/data/token_file.ts, docs/DESIGN.md
4.1) memory-mapped at its data offsets, never read whole; the seeded window sampler of
runtime/data/batches.ts (`Batches`: every sequence starts at `int(len - seq_len)` of mulberry32,
state {rng, step}), so both engines draw the same windows in the same order from the same seed;
and the fixed validation windows of `evalBatches`. A distributed run draws the whole global batch
on every rank and each rank takes its slice, so the windows do not depend on the world size.
"""
import json
import os
import struct

import numpy as np

from one_line_errors import UsageError
from phd_torch import rng

TOKEN_FORMAT = "phd-tokens-1"


class TokenFile:
    """A token file's metadata and its `train` and `val` streams (read-only numpy memmaps)."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                head = f.read(8)
                n = struct.unpack("<Q", head)[0] if len(head) == 8 else size  # refused below
                if 8 + n > size:
                    raise ValueError(f"its header length {n} runs past the end ({size} bytes)")
                header = json.loads(f.read(n).decode("utf-8"))
        except FileNotFoundError:
            raise UsageError(f'token file "{path}" does not exist') from None
        except (ValueError, UnicodeDecodeError) as e:
            raise UsageError(f'token file "{path}" is not a safetensors file ({e})') from None
        meta = header.get("__metadata__") or {}
        if meta.get("format") != TOKEN_FORMAT:
            raise UsageError(
                f'token file "{path}": it is not a token file (__metadata__.format is '
                f'{json.dumps(meta.get("format"))}, not "{TOKEN_FORMAT}"): write one with '
                "deno task tokenize"
            )
        self.tokenizer = meta.get("tokenizer", "")
        self.vocab_size = int(meta.get("vocab_size", "0"))
        self.separator = int(meta["separator"]) if "separator" in meta else None
        start, at = 8 + n, 0
        for name in ("train", "val"):
            e = header.get(name) or {}
            shape, off = e.get("shape"), e.get("data_offsets")
            if e.get("dtype") != "U32" or not isinstance(shape, list) or len(shape) != 1:
                raise UsageError(f'token file "{path}": tensor "{name}" must be 1-D U32')
            if off != [at, at + 4 * shape[0]]:
                raise UsageError(f'token file "{path}": tensor "{name}" has data_offsets {off}')
            at = off[1]
            stream = (
                np.memmap(path, dtype="<u4", mode="r", offset=start + off[0], shape=(shape[0],))
                if shape[0] > 0
                else np.zeros(0, dtype=np.uint32)
            )
            setattr(self, name, stream)
        if start + at != size:
            raise UsageError(
                f'token file "{path}": the header describes {start + at} bytes, the file has {size}'
            )

    def check_tokenizer(self, tokenizer, what):
        """Refuses a token file made with another tokenizer than `what`'s (metadata strings)."""
        if tokenizer != self.tokenizer:
            raise UsageError(
                f'token file "{self.path}" was made with tokenizer '
                f"{tokenizer_name(self.tokenizer)}, {what}'s is {tokenizer_name(tokenizer)}: "
                "tokenize the text again with that "
                "tokenizer (deno task tokenize --tokenizer ...)"
            )


def tokenizer_name(meta):
    """A short name of a tokenizer metadata string (runtime/data/tokenizer.ts `name`)."""
    if meta == "bytes":
        return "bytes"
    try:
        m = json.loads(meta)
        if m["kind"] == "bpe":
            return f'bpe-{m["vocab_size"]}'
        return m.get("path", "tokenizer.json")
    except (ValueError, KeyError, TypeError):
        return repr(meta[:40])


def windows(stream, starts, seq_len):
    """The (len(starts), seq_len + 1) ids at these starts, as int64."""
    return np.stack([np.asarray(stream[s : s + seq_len + 1], dtype=np.int64) for s in starts])


class Batches:
    """runtime/data/batches.ts `Batches`: `draw()` gives the next batch's window starts."""

    def __init__(self, stream, batch, seq_len, seed):
        self.stream, self.batch, self.seq_len = stream, batch, seq_len
        self.rng, self.step = seed & 0xFFFFFFFF, 0

    def draw(self):
        starts, self.rng = rng.ints(self.rng, self.batch, len(self.stream) - self.seq_len)
        self.step += 1
        return starts

    @property
    def state(self):
        """The data position a training-state file saves."""
        return {"rng": self.rng, "step": self.step}

    def restore(self, s):
        self.rng, self.step = s["rng"] & 0xFFFFFFFF, s["step"]


def eval_starts(length, batch, seq_len, count):
    """runtime/data/batches.ts `evalBatches`: consecutive windows from the stream's start, at most
    `count` batches of `batch` (fewer when the stream runs out); the start offsets of each."""
    out = []
    for i in range(count):
        if (i + 1) * batch * seq_len + 1 > length:
            break
        out.append([(i * batch + s) * seq_len for s in range(batch)])
    return out


def read_text(path):
    """A text file's UTF-8 bytes as ids (the bytes tokenizer)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise UsageError(f'text file "{path}" does not exist') from None
    if len(data) < 2:
        raise UsageError("the text must hold at least 2 tokens")
    return np.frombuffer(data, dtype=np.uint8).astype(np.int64)
