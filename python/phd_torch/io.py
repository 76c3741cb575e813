"""Checkpoint files (docs/DESIGN.md 4), read and written without the `safetensors` package, in
runtime/io/checkpoint.ts's format: the model file (Hugging Face Llama names, F32, `__metadata__`
config, phd, tokenizer, context, step, unit) and its `.state.safetensors` sibling (AdamW moments
`m.<name>`, `v.<name>`; step, data position and the whole config, format `phd-training-state-1`).
A training save is one unit, state first and model second, both tagged with the same unit id and
step, each file written atomically (a temp file named as runtime/host/files.ts names them, then a
rename); periodic saves go to step-numbered units beside the output (`<out>.step-NNNNNNNN.
safetensors`), the newest `keep_last` kept, and `latest_unit` finds the newest complete one, as
runtime/host/checkpoint.ts does, so either engine resumes what the other saved.
"""
import json
import os
import re
import struct
import uuid

import torch

from one_line_errors import UsageError
from phd_torch.config import MODEL_KEYS

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
STATE_FORMAT = "phd-training-state-1"
TEMP = re.compile(r"\.tmp-(\d+)-[0-9a-f]{8}$")


def read_safetensors(path, what="checkpoint"):
    """(metadata strings, {name: float32 tensor}) of a safetensors file, read once into memory
    that the F32 tensors share (no copy per tensor)."""
    try:
        with open(path, "rb") as f:
            data = bytearray(os.fstat(f.fileno()).st_size)
            f.readinto(data)
    except FileNotFoundError:
        raise UsageError(f'{what} "{path}" does not exist') from None
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


def temp_path(path):
    return f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_atomic(path, chunks):
    """Writes byte chunks to path through a temporary file and a rename (never half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            for c in chunks:
                f.write(c)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_safetensors(path, tensors, metadata):
    """Writes finite F32 tensors (in dict order) and string metadata as a safetensors file."""
    header, offset = {"__metadata__": metadata}, 0
    for name, t in tensors.items():
        if not bool(torch.isfinite(t).all()):
            raise UsageError(f'cannot save: "{name}" holds a non-finite value (a diverged run?)')
        n = t.numel() * 4
        header[name] = {
            "dtype": "F32",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)  # the data starts 8-byte aligned
    blobs = (
        t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes() for t in tensors.values()
    )
    write_atomic(path, [struct.pack("<Q", len(js)), js, *blobs])


def checkpoint_meta(path, meta):
    """The parsed config, phd and tokenizer of a checkpoint's metadata (one line when missing)."""
    out = {}
    for key in ("config", "phd", "tokenizer"):
        if key not in meta:
            raise UsageError(
                f'"{path}" has no __metadata__ "{key}" (expected config, phd, tokenizer): '
                "it was not saved by deno task train or phd_torch"
            )
        try:
            out[key] = meta[key] if key == "tokenizer" else json.loads(meta[key])
        except ValueError:
            raise UsageError(f'"{path}": __metadata__ "{key}" is not JSON') from None
    missing = [k for k in MODEL_KEYS if k not in out["config"]]
    if missing:
        raise UsageError(f'"{path}": __metadata__ config lacks {", ".join(missing)}')
    if out["phd"].get("embeddings", "shared") != "shared":
        raise UsageError(
            f'"{path}" has per-copy embedding tables (phd.embeddings "per-copy"), which this '
            "PyTorch port does not build: use deno task generate/eval, or train with shared ones"
        )
    return out


def hf_config(model, phd, tokenizer, context):
    """The Hugging Face config.json object (runtime/io/hf_config.ts writes the same)."""
    K, plain = phd["K"], phd["K"] == 1
    out = {
        "architectures": ["LlamaForCausalLM" if plain else "PhdLlamaForCausalLM"],
        "model_type": "llama" if plain else "phd_llama",
    }
    for k in MODEL_KEYS[:6]:
        out[k] = model[k]
    out["head_dim"] = model["hidden_size"] // model["num_attention_heads"]
    out["hidden_act"] = "silu"
    for k in ("rms_norm_eps", "rope_theta", "tie_word_embeddings"):
        out[k] = model[k]
    out.update(attention_bias=False, mlp_bias=False, torch_dtype="float32")
    if context is not None:
        out["max_position_embeddings"] = context * K if phd["positions"] == "flattened" else context
    out["phd"] = {k: phd[k] for k in ("K", "variant", "W", "C", "positions")}
    out["tokenizer"] = tokenizer
    return out


def state_path(path):
    """`x.safetensors` -> `x.state.safetensors` (runtime/io/checkpoint.ts `statePath`)."""
    return re.sub(r"(\.safetensors)?$", ".state.safetensors", path, count=1)


def series_path(base, step):
    """The periodic unit of `base` at `step`: `x.safetensors` -> `x.step-00000050.safetensors`."""
    return re.sub(r"(\.safetensors)?$", f".step-{step:08d}.safetensors", base, count=1)


def save_unit(path, weights, ck, state):
    """Writes one unit: the training state (config, step, data position, moments m and v by
    name), then the model file (weights; `ck` holds its phd string, tokenizer and context), then
    config.json in its folder."""
    unit = str(uuid.uuid4())
    model_cfg = {k: state["config"]["model"][k] for k in MODEL_KEYS}
    moments = {}
    for name in weights:
        moments[f"m.{name}"] = state["m"][name]
        moments[f"v.{name}"] = state["v"][name]
    smeta = {
        "format": STATE_FORMAT,
        "step": str(state["step"]),
        "data": json.dumps(state["data"]),
        "config": json.dumps(state["config"]),
        "unit": unit,
    }
    write_safetensors(state_path(path), moments, smeta)
    meta = {
        "config": json.dumps(model_cfg, separators=(",", ":")),
        "phd": ck["phd"],
        "tokenizer": ck["tokenizer"],
        "format": "pt",
        "context": str(ck["context"]),
        "step": str(state["step"]),
        "unit": unit,
    }
    write_safetensors(path, weights, meta)
    hf = hf_config(model_cfg, json.loads(ck["phd"]), ck["tokenizer"], ck["context"])
    target = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    write_atomic(target, [(json.dumps(hf, indent=2) + "\n").encode("utf-8")])


def _sorted(o):
    return json.dumps(o, sort_keys=True)


def load_unit(path):
    """A model file and its training state, checked to be one unit (runtime/io/checkpoint.ts
    `checkUnit`): {"path", "meta", "weights", "state": {config, step, data, m, v}}."""
    meta, weights = read_safetensors(path)
    sp = state_path(path)
    smeta, moments = read_safetensors(sp, "training state (needed to resume)")
    if smeta.get("format") != STATE_FORMAT:
        raise UsageError(f'"{sp}" is not a training state (no {STATE_FORMAT} format mark)')
    try:
        config, data = json.loads(smeta["config"]), json.loads(smeta["data"])
        step = int(smeta["step"])
    except (KeyError, ValueError):
        raise UsageError(f'"{sp}": __metadata__ config, data or step is absent or bad') from None
    unit = meta.get("unit")
    if unit is None or unit != smeta.get("unit") or meta.get("step") != str(step):
        raise UsageError(
            f'"{path}": model (step {meta.get("step")}, unit {unit}) and training state (step '
            f'{step}, unit {smeta.get("unit")}) are not one checkpoint: a save was interrupted; '
            "resume from an earlier checkpoint of the run"
        )
    m = checkpoint_meta(path, meta)
    saved_phd = {k: v for k, v in m["phd"].items() if k not in ("source", "mask_spec")}
    same = _sorted(m["config"]) == _sorted(config["model"])
    if not same or _sorted(saved_phd) != _sorted(config["phd"]):
        raise UsageError(f'"{path}": model and training state disagree on the model or phd section')
    state = {"config": config, "step": step, "data": data, "m": {}, "v": {}}
    for name, t in moments.items():
        kind, _, pname = name.partition(".")
        state[kind][pname] = t
    return {"path": path, "meta": meta, "weights": weights, "state": state}


def list_series(base):
    """The periodic model files of `base` on disk, oldest first: [(step, path)]."""
    folder = os.path.dirname(os.path.abspath(base))
    stem = re.sub(r"\.safetensors$", "", os.path.basename(base))
    pat = re.compile(re.escape(stem) + r"\.step-(\d{8,})\.safetensors$")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = [(int(x.group(1)), os.path.join(folder, n)) for n in names if (x := pat.match(n))]
    return sorted(found)


def remove_unit(path):
    """Removes a unit, model first (a half-removed unit is incomplete, never mismatched)."""
    for p in (path, state_path(path)):
        if os.path.exists(p):
            os.remove(p)


def prune_series(base, keep):
    all_units = list_series(base)
    for _, p in all_units[: max(0, len(all_units) - keep)]:
        remove_unit(p)


def remove_series(base):
    """Removes every periodic unit of `base` (a fresh run writing to `base` owns its series);
    returns how many."""
    all_units = list_series(base)
    for _, p in all_units:
        remove_unit(p)
    return len(all_units)


def remove_stale_temps(path):
    """Removes the temp files a killed writer left beside `path` (its series', config.json's)."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix = re.sub(r"\.safetensors$", "", os.path.basename(path))
    removed = []
    for n in os.listdir(folder) if os.path.isdir(folder) else []:
        x = TEMP.search(n)
        if x and (n.startswith(prefix) or n.startswith("config.json")):
            if int(x.group(1)) != os.getpid() and not os.path.exists(f"/proc/{x.group(1)}"):
                os.remove(os.path.join(folder, n))
                removed.append(n)
    return removed


def latest_unit(base):
    """The newest complete, consistent unit among `base` and its periodic series (what `--resume
    base` continues after a kill), and the reasons others were skipped; one line when none is
    usable (runtime/host/checkpoint.ts `latestUnit`)."""
    series = list_series(base)[::-1]
    skipped, best = [], None

    def consider(path):
        nonlocal best
        try:
            u = load_unit(path)
        except UsageError as e:
            if not (path == base and "does not exist" in str(e) and series):
                skipped.append(str(e))
            return False
        if best is None or u["state"]["step"] > best["state"]["step"]:
            best = u
            return True
        return False

    consider(base)
    # newest first: the first that loads wins; none at or below base's step can
    for step, path in series:
        if best is not None and step <= best["state"]["step"]:
            break
        if consider(path):
            break
    if best is None:
        raise UsageError(skipped[0] if skipped else f'checkpoint "{base}" does not exist')
    return best, skipped


def _header_meta(path):
    """The `__metadata__` of a safetensors file's header, or None when it is not one."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 256 << 20:
                return None
            return json.loads(f.read(n).decode("utf-8")).get("__metadata__") or {}
    except (OSError, struct.error, UnicodeDecodeError, ValueError, AttributeError):
        return None


def _ours_checkpoint(path):
    md = _header_meta(path)
    return md is not None and md.get("format") == "pt" and "config" in md and "phd" in md


def _ours_config_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        return isinstance(j.get("phd"), dict) and isinstance(j["phd"].get("K"), int)
    except (OSError, ValueError, AttributeError):
        return False


def guard_checkpoint_output(out, force):
    """As runtime/host/outputs.ts does for deno task train: an --out that is a directory, or an
    existing file there (or a config.json beside it) that is not an earlier output of ours, is
    refused in one line unless --force."""
    if os.path.isdir(out):
        raise UsageError(f'--out "{out}" is a directory: give the checkpoint\'s file path')
    if os.path.exists(out) and not force and not _ours_checkpoint(out):
        raise UsageError(
            f'--out: "{out}" exists and is not a checkpoint written by this tool: pass --force to '
            "replace it, or choose another path"
        )
    cfg = os.path.join(os.path.dirname(os.path.abspath(out)), "config.json")
    if os.path.exists(cfg) and not force and not _ours_config_json(cfg):
        raise UsageError(
            f'--out: "{cfg}" exists and is not a checkpoint\'s config.json written by this tool: '
            "pass --force to replace it, or write the checkpoint into another folder"
        )
