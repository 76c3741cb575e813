/**
 * safetensors encoding and decoding (docs/DESIGN.md 4), pure bytes in and out (no Deno APIs: the host
 * layer writes the file atomically). Layout: an 8-byte little-endian header length n, n bytes of
 * JSON header padded with spaces so the data starts 8-byte aligned, then the tensors' bytes
 * back to back in header order. The header maps each name to `{dtype, shape, data_offsets}`
 * (offsets relative to the data start) and `__metadata__` to string values: `config` (JSON of the
 * Hugging Face Llama fields), `phd` (JSON: K, variant, W, C, positions, mask source) and
 * `tokenizer` (`bytes`).
 */
import type { ModelConfig, PhdConfig } from "../model/config.ts";
import type { SpecJson } from "../../dsl/serial.ts";
import { parseJson } from "./json.ts";

/** Element types this runtime stores. F16 data travels as raw IEEE half bits. */
export type Dtype = "F32" | "F16";

/** One tensor: F32 values, or F16 bits. */
export type Tensor =
  | { dtype: "F32"; shape: number[]; data: Float32Array }
  | { dtype: "F16"; shape: number[]; data: Uint16Array };

const BYTES: Record<Dtype, number> = { F32: 4, F16: 2 };

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Encodes tensors (in the map's order) and string metadata. Throws when a tensor's data length
 * does not match its shape.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, Tensor>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") throw new RangeError(`"__metadata__" is not a tensor name`);
    if (!(t.dtype in BYTES)) {
      throw new RangeError(`tensor ${name}: dtype ${t.dtype} is not F32 or F16`);
    }
    if (t.shape.some((d) => !Number.isInteger(d) || d < 0) || count(t.shape) !== t.data.length) {
      throw new RangeError(
        `tensor ${name}: shape [${t.shape}] holds ${
          count(t.shape)
        } values but data has ${t.data.length}`,
      );
    }
    const bytes = t.data.length * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors.values()) {
    const view = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(view, at);
    at += view.length;
  }
  return out;
}

/** A decoded file: string metadata and tensors in file order. */
export interface Safetensors {
  metadata: Record<string, string>;
  tensors: Map<string, Tensor>;
}

/** The start of every message about a header that cannot be what a writer wrote. */
const DAMAGED = "safetensors: the header is damaged";

/** The dtypes of the safetensors format (this runtime reads F32 and F16 of them). */
const SAFETENSORS_DTYPES = new Set([
  "BOOL",
  "U8",
  "I8",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "F64",
  "I64",
  "U64",
  "F8_E4M3",
  "F8_E5M2",
]);

/**
 * Decodes a safetensors file. Throws one line naming what is wrong (truncated file, bad header,
 * unsupported dtype, offsets that do not tile the data).
 */
export function decodeSafetensors(bytes: Uint8Array): Safetensors {
  if (bytes.length < 8) {
    throw new RangeError(`safetensors: ${bytes.length} bytes, too short for a header`);
  }
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > bytes.length) {
    throw new RangeError(
      `safetensors: the file is truncated or its header is damaged: a header of ${n} bytes ` +
        `runs past the end (${bytes.length} bytes)`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SyntaxError(`${DAMAGED}: it is not UTF-8`);
  }
  const header = parseJson(text, DAMAGED) as Record<string, unknown>;
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SyntaxError(`${DAMAGED}: it is not a JSON object`);
  }
  const metadata: Record<string, string> = {};
  const raw = header.__metadata__ ?? {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== "string") {
      throw new TypeError(`safetensors: __metadata__.${k} is not a string`);
    }
    metadata[k] = v;
  }
  const data = bytes.subarray(8 + n);
  const entries: [string, { dtype: Dtype; shape: number[]; begin: number; end: number }][] = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (typeof e !== "object" || e === null || Array.isArray(e)) {
      throw new RangeError(`${DAMAGED}: entry ${JSON.stringify(name)} is not a tensor`);
    }
    const { dtype, shape, data_offsets: off } = e as {
      dtype: unknown;
      shape: unknown;
      data_offsets: unknown;
    };
    if (typeof dtype !== "string" || !SAFETENSORS_DTYPES.has(dtype)) {
      throw new RangeError(
        `${DAMAGED}: tensor ${JSON.stringify(name)} has no safetensors dtype (${
          JSON.stringify(dtype)
        })`,
      );
    }
    if (dtype !== "F32" && dtype !== "F16") {
      throw new RangeError(
        `safetensors: tensor ${name} has dtype ${dtype} (this runtime reads F32 and F16)`,
      );
    }
    if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new RangeError(
        `${DAMAGED}: tensor ${name} has a bad shape ${JSON.stringify(shape)}`,
      );
    }
    if (!Array.isArray(off) || off.length !== 2 || !(off[0] <= off[1]) || off[1] > data.length) {
      throw new RangeError(
        `${DAMAGED}: tensor ${name} has bad data_offsets ${JSON.stringify(off)}`,
      );
    }
    if (off[1] - off[0] !== count(shape) * BYTES[dtype]) {
      throw new RangeError(
        `${DAMAGED}: tensor ${name} [${shape}] ${dtype} needs ${
          count(shape) * BYTES[dtype]
        } bytes, ` +
          `offsets give ${off[1] - off[0]}`,
      );
    }
    entries.push([name, { dtype, shape, begin: off[0], end: off[1] }]);
  }
  // The spec forbids holes and overlaps: sorted by offset, the tensors must tile the data.
  const sorted = [...entries].sort((a, b) => a[1].begin - b[1].begin);
  let at = 0;
  for (const [name, e] of sorted) {
    if (e.begin !== at) {
      throw new RangeError(`${DAMAGED}: tensor ${name} starts at ${e.begin}, expected ${at}`);
    }
    at = e.end;
  }
  if (at !== data.length) {
    throw new RangeError(`${DAMAGED}: ${data.length - at} bytes after the last tensor`);
  }
  const tensors = new Map<string, Tensor>();
  for (const [name, e] of sorted) {
    // slice copies, so the typed array is aligned whatever the file's offsets
    const buf = data.slice(e.begin, e.end).buffer;
    tensors.set(
      name,
      e.dtype === "F32"
        ? { dtype: "F32", shape: e.shape, data: new Float32Array(buf) }
        : { dtype: "F16", shape: e.shape, data: new Uint16Array(buf) },
    );
  }
  return { metadata, tensors };
}

/** The `phd` metadata: the PHD config plus the mask spec's source text and serialised form. */
export interface PhdMetadata extends PhdConfig {
  /** The spec's mask (and score) as readable text (`AttentionSpec.source`). */
  source: string;
  /** The spec itself (dsl/serial.ts `specToJson`), so any reader rebuilds it. */
  mask_spec?: SpecJson;
}

/** What a checkpoint's `__metadata__` holds, parsed. */
export interface CheckpointMetadata {
  config: ModelConfig;
  phd: PhdMetadata;
  tokenizer: string;
}

/** The `__metadata__` strings of docs/DESIGN.md 4. */
export function checkpointMetadata(m: CheckpointMetadata): Record<string, string> {
  const c = m.config, p = m.phd;
  const config = {
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    rope_theta: c.rope_theta,
    rms_norm_eps: c.rms_norm_eps,
    tie_word_embeddings: c.tie_word_embeddings,
  };
  const phd = {
    K: p.K,
    variant: p.variant,
    W: p.W,
    C: p.C,
    positions: p.positions,
    ...(p.spec !== undefined ? { spec: p.spec } : {}),
    ...(p.params !== undefined ? { params: p.params } : {}),
    // Only when stated (absent is shared), so such files stay byte-identical to earlier ones.
    ...(p.embeddings !== undefined ? { embeddings: p.embeddings } : {}),
    source: p.source,
    ...(p.mask_spec ? { mask_spec: p.mask_spec } : {}),
  };
  return { config: JSON.stringify(config), phd: JSON.stringify(phd), tokenizer: m.tokenizer };
}

/** Parses `__metadata__`; throws one line naming a missing or non-JSON field. */
export function parseCheckpointMetadata(
  meta: Readonly<Record<string, string>>,
): CheckpointMetadata {
  const field = (k: string) => {
    if (meta[k] === undefined) {
      throw new RangeError(
        `checkpoint __metadata__ has no "${k}" (expected config, phd, tokenizer)`,
      );
    }
    return meta[k];
  };
  const json = (k: string) => parseJson(field(k), `checkpoint __metadata__.${k}`);
  return {
    config: json("config") as ModelConfig,
    phd: json("phd") as PhdMetadata,
    tokenizer: field("tokenizer"),
  };
}
