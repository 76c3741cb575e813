/**
 * The token file (docs/DESIGN.md 4.1): a tokenised corpus that both engines read, written once by
 * `deno task tokenize`. It is a safetensors file with two 1-D U32 tensors, `train` then `val` (the
 * streams of the split `deno task train --data` makes, runtime/host/token_cache.ts), and string
 * `__metadata__`: `format` `phd-tokens-1`, `tokenizer` exactly as a checkpoint's
 * `__metadata__.tokenizer` (so the two compare as strings), `vocab_size`, `separator` (the id
 * between documents, absent when there is none) and `source` (JSON: the files, their bytes and
 * SHA-256, the JSONL field and the validation rule). This module encodes and checks the header
 * only: the ids follow it little-endian, so a reader seeks to a range instead of loading the file
 * (runtime/host/token_file.ts; python/phd_torch/data.py memory-maps it). Browser-safe.
 */
import { parseJson } from "../io/json.ts";

/** The `format` mark of a token file's metadata. */
export const TOKEN_FORMAT = "phd-tokens-1";

/** One file a token file was made from. */
export interface SourceFile {
  path: string;
  bytes: number;
  sha256: string;
}

/** What a token file was made from (`__metadata__.source`, JSON). */
export interface TokenSourceInfo {
  train: SourceFile[];
  /** Validation files; empty when validation is the last `val_fraction` of the training ids. */
  val: SourceFile[];
  val_fraction?: number;
  /** The JSONL field read. */
  field: string;
}

/** A token file's metadata. */
export interface TokenFileMeta {
  /** A checkpoint's `__metadata__.tokenizer` string (runtime/data/tokenizer.ts `metadata()`). */
  tokenizer: string;
  vocabSize: number;
  /** The id between packed documents, when the corpus separates documents. */
  separator?: number;
  source: TokenSourceInfo;
}

/** Where a stream's ids lie: a byte offset from the start of the file and an id count. */
export interface IdRange {
  offset: number;
  length: number;
}

/** A decoded header: the metadata and where each split's ids lie. */
export interface TokenFileLayout {
  meta: TokenFileMeta;
  train: IdRange;
  val: IdRange;
}

/** Bytes per id (U32). */
const ID_BYTES = 4;

/** The header bytes (length, JSON padded to 8 bytes) of a file of `counts` ids; ids follow. */
export function encodeTokenFileHeader(
  meta: TokenFileMeta,
  counts: { train: number; val: number },
): Uint8Array {
  const metadata: Record<string, string> = {
    format: TOKEN_FORMAT,
    tokenizer: meta.tokenizer,
    vocab_size: String(meta.vocabSize),
    source: JSON.stringify(meta.source),
  };
  if (meta.separator !== undefined) metadata.separator = String(meta.separator);
  const tb = counts.train * ID_BYTES, vb = counts.val * ID_BYTES;
  const header = {
    __metadata__: metadata,
    train: { dtype: "U32", shape: [counts.train], data_offsets: [0, tb] },
    val: { dtype: "U32", shape: [counts.val], data_offsets: [tb, tb + vb] },
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8; // the ids start 8-byte aligned
  const out = new Uint8Array(8 + n).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  return out;
}

/** Headers larger than this are refused (safetensors' own limit is 100 MB). */
const MAX_HEADER = 100 << 20;

/** The JSON header's byte count from a file's first 8 bytes; one line when implausible. */
export function tokenFileHeaderLength(first: Uint8Array, fileSize: number): number {
  if (first.length < 8 || fileSize < 8) {
    throw new RangeError(`${fileSize} bytes, too short for a safetensors header`);
  }
  const n = Number(new DataView(first.buffer, first.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > fileSize) {
    throw new RangeError(`its header length ${n} runs past the end (${fileSize} bytes)`);
  }
  return n;
}

function intField(v: string | undefined, key: string, min: number): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min) {
    throw new RangeError(`__metadata__.${key} must be an integer >= ${min}, got ${v}`);
  }
  return n;
}

/**
 * The layout of a token file from its JSON header bytes and its size. Throws one line naming what
 * is wrong: not a token file (no format mark), a missing field, a tensor that is not 1-D U32,
 * offsets that do not tile the ids, a size that disagrees.
 */
export function decodeTokenFileHeader(json: Uint8Array, fileSize: number): TokenFileLayout {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  } catch {
    throw new SyntaxError("its safetensors header is not UTF-8");
  }
  const h = parseJson(text, "its safetensors header") as Record<string, unknown>;
  if (typeof h !== "object" || h === null || Array.isArray(h)) {
    throw new SyntaxError("its safetensors header is not a JSON object");
  }
  const md = (h.__metadata__ ?? {}) as Record<string, string>;
  if (md.format !== TOKEN_FORMAT) {
    throw new RangeError(
      `it is not a token file (__metadata__.format is ${
        JSON.stringify(md.format)
      }, not "${TOKEN_FORMAT}"): write one with deno task tokenize`,
    );
  }
  if (typeof md.tokenizer !== "string" || md.tokenizer === "") {
    throw new RangeError("__metadata__ has no tokenizer");
  }
  const vocabSize = intField(md.vocab_size, "vocab_size", 1);
  const separator = md.separator === undefined ? undefined : intField(md.separator, "separator", 0);
  if (separator !== undefined && separator >= vocabSize) {
    throw new RangeError(`__metadata__.separator ${separator} is outside the vocabulary`);
  }
  const source = parseJson(md.source ?? "", "__metadata__.source") as TokenSourceInfo;
  const start = 8 + json.length;
  let at = 0;
  const range = (name: "train" | "val"): IdRange => {
    const e = h[name] as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | undefined;
    const shape = e?.shape as number[], off = e?.data_offsets as number[];
    if (
      e?.dtype !== "U32" || !Array.isArray(shape) || shape.length !== 1 ||
      !Number.isSafeInteger(shape[0]) || shape[0] < 0
    ) {
      throw new RangeError(`tensor "${name}" must be 1-D U32, got ${JSON.stringify(e ?? null)}`);
    }
    if (!Array.isArray(off) || off[0] !== at || off[1] !== at + shape[0] * ID_BYTES) {
      throw new RangeError(`tensor "${name}" has data_offsets ${JSON.stringify(off)}`);
    }
    at = off[1];
    return { offset: start + off[0], length: shape[0] };
  };
  const train = range("train"), val = range("val");
  const extra = Object.keys(h).filter((k) => !["__metadata__", "train", "val"].includes(k));
  if (extra.length > 0) throw new RangeError(`unexpected tensor "${extra[0]}"`);
  if (start + at !== fileSize) {
    throw new RangeError(`the header describes ${start + at} bytes, the file has ${fileSize}`);
  }
  const meta: TokenFileMeta = { tokenizer: md.tokenizer, vocabSize, source };
  if (separator !== undefined) meta.separator = separator;
  return { meta, train, val };
}
