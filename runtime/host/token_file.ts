/**
 * Token files on disk (Deno APIs; the format is runtime/data/token_file.ts): `tokenize` writes
 * one from text files, tokenised and split exactly as `deno task train --data` does (through the
 * token cache, runtime/host/token_cache.ts), streaming the ids into a temp file that is renamed
 * into place; `loadTokenCorpus` opens one for training, reading only its header: each split is a
 * `TokenFile` that reads the ids of a window with seek + read, so the corpus is never loaded
 * whole. A token file of another tokenizer than a checkpoint's is refused in one line.
 */
import { createHash } from "node:crypto";
import type { Corpus, TokenSource } from "../data/batches.ts";
import {
  decodeTokenFileHeader,
  encodeTokenFileHeader,
  type SourceFile,
  tokenFileHeaderLength,
  type TokenFileMeta,
} from "../data/token_file.ts";
import { type Tokenizer, tokenizerFromMetadata } from "../data/tokenizer.ts";
import { DEFAULT_CONFIG, type TokenizerChoice } from "../model/config.ts";
import { writeAll, writeStreamAtomic } from "./files.ts";
import { guardOutputs, oursSafetensors, sidecar } from "./outputs.ts";
import { chunks, resolveTextFiles } from "./text_files.ts";
import { loadTextCorpus, TokenFile } from "./token_cache.ts";
import { bpePath, resolveTokenizer } from "./tokenizer_file.ts";

/** Ids copied per read and write when streaming a split into a token file. */
const COPY = 1 << 16;

/** The path a token file is written to: `out`, with `.safetensors` added when it lacks it. */
export function tokenFilePath(out: string): string {
  return out.endsWith(".safetensors") ? out : `${out}.safetensors`;
}

/** An open token file: its two splits (read from disk), its metadata and tokenizer. */
export interface TokenCorpus extends Corpus {
  path: string;
  train: TokenFile;
  val: TokenFile;
  meta: TokenFileMeta;
  tokenizer: Tokenizer;
}

/**
 * Opens a token file, reading only its header. With `tokenizer` (a checkpoint's
 * `__metadata__.tokenizer`), a file made with another tokenizer is refused. Throws one line.
 */
export async function loadTokenCorpus(
  path: string,
  o: { tokenizer?: string } = {},
): Promise<TokenCorpus> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`token file "${path}" does not exist`);
    throw new Error(`cannot read token file "${path}": ${(e as Error).message}`);
  }
  try {
    const size = (await file.stat()).size;
    const first = new Uint8Array(8);
    const n = tokenFileHeaderLength(first.subarray(0, await readAt(file, 0, first)), size);
    const json = new Uint8Array(n);
    if (await readAt(file, 8, json) !== n) throw new Error("its header ends early");
    const layout = decodeTokenFileHeader(json, size);
    const tokenizer = tokenizerFromMetadata(layout.meta.tokenizer);
    if (tokenizer.vocabSize !== layout.meta.vocabSize) {
      throw new Error(
        `its tokenizer has ${tokenizer.vocabSize} ids, __metadata__.vocab_size says ` +
          `${layout.meta.vocabSize}`,
      );
    }
    if (o.tokenizer !== undefined && o.tokenizer !== layout.meta.tokenizer) {
      throw new Error(
        `it was made with tokenizer ${tokenizer.name}, the checkpoint's is ${
          tokenizerFromMetadata(o.tokenizer).name
        }: tokenize the text again with the checkpoint's tokenizer (deno task tokenize ` +
          `--tokenizer ...)`,
      );
    }
    return {
      path,
      train: TokenFile.at(file, layout.train.offset, layout.train.length),
      val: TokenFile.at(file, layout.val.offset, layout.val.length),
      separator: layout.meta.separator,
      meta: layout.meta,
      tokenizer,
    };
  } catch (e) {
    file.close();
    throw new Error(`token file "${path}": ${(e as Error).message}`);
  }
}

async function readAt(f: Deno.FsFile, at: number, out: Uint8Array): Promise<number> {
  await f.seek(at, Deno.SeekMode.Start);
  let n = 0;
  while (n < out.length) {
    const r = await f.read(out.subarray(n));
    if (r === null) break;
    n += r;
  }
  return n;
}

/**
 * Writes a token file atomically (a temp file beside `path`, then a rename): the header, then
 * each split's ids copied from its source a slice at a time.
 */
export async function writeTokenFile(
  path: string,
  splits: { train: TokenSource; val: TokenSource },
  meta: TokenFileMeta,
): Promise<void> {
  const { train, val } = splits;
  await writeStreamAtomic(path, async (f) => {
    await writeAll(f, encodeTokenFileHeader(meta, { train: train.length, val: val.length }));
    for (const s of [train, val]) {
      for (let at = 0; at < s.length; at += COPY) {
        const ids = s.subarray(at, Math.min(at + COPY, s.length)); // may be a view
        await writeAll(f, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
      }
    }
  });
}

/** Each file's size and SHA-256, one file open at a time. */
async function describeAll(paths: string[]): Promise<SourceFile[]> {
  const out: SourceFile[] = [];
  for (const path of paths) {
    const h = createHash("sha256");
    let bytes = 0;
    for await (const c of chunks(path)) {
      h.update(c);
      bytes += c.length;
    }
    out.push({ path, bytes, sha256: h.digest("hex") });
  }
  return out;
}

/** What `tokenize` reads and writes. */
export interface TokenizeOptions {
  /** Training text: files, folders or globs of .txt/.jsonl (data.train). */
  data: string[];
  /** Validation text (data.val); without it the last `valFraction` of the training ids. */
  val?: string[];
  /** Default `"bytes"`; `{bpe: N}` trains one and writes it beside the output. */
  tokenizer?: TokenizerChoice;
  /** Default `DEFAULT_CONFIG.data.val_fraction` (0.05). */
  valFraction?: number;
  /** The JSONL field of a document's text. Default `text`. */
  field?: string;
  /** The token file (`.safetensors` is added when missing). */
  out: string;
  /** Where the token cache lives (its `tokens/` folder). */
  cacheDir: string;
  warn?: (line: string) => void;
  /** Progress of long work (training a BPE, tokenising). */
  log?: (line: string) => void;
  /** Replace an existing `out` that is not a token file of ours. */
  force?: boolean;
}

/** What `tokenize` wrote. */
export interface TokenizeReport {
  out: string;
  train_tokens: number;
  val_tokens: number;
  tokenizer: string;
  vocab_size: number;
  separator: number | null;
  files: number;
  seconds: number;
}

/**
 * Tokenises text files into a token file: the tokenizer resolved as `deno task train` resolves
 * `data.tokenizer`, the split `loadTextCorpus` makes (so `train --tokens` and `train --data` see
 * the same streams), each file's size and SHA-256 in the metadata. Refuses an output that is one
 * of the inputs. Throws one line.
 */
export async function tokenize(o: TokenizeOptions): Promise<TokenizeReport> {
  const t0 = performance.now(), out = tokenFilePath(o.out);
  const field = o.field ?? DEFAULT_CONFIG.data.field;
  const valFraction = o.valFraction ?? DEFAULT_CONFIG.data.val_fraction;
  if (!(valFraction > 0 && valFraction < 1)) {
    throw new RangeError(`the validation fraction must be in (0, 1), got ${valFraction}`);
  }
  const train = await resolveTextFiles(o.data, "--data");
  const val = o.val?.length ? await resolveTextFiles(o.val, "--val") : [];
  const choice = o.tokenizer ?? "bytes";
  const side = (path: string, what: string) => ({ path, flag: "--out", what, ours: sidecar });
  await guardOutputs(
    [
      { path: out, flag: "--out", what: "token file", ours: oursSafetensors },
      ...(typeof choice === "object" ? [side(bpePath(out), "tokenizer")] : []),
    ],
    [
      ...train.map((path) => ({ path, flag: "--data" })),
      ...val.map((path) => ({ path, flag: "--val" })),
      ...(typeof choice === "string" && choice !== "bytes"
        ? [{ path: choice, flag: "--tokenizer" }]
        : []),
    ],
    o,
  );
  const tokenizer = await resolveTokenizer(choice, { train: o.data, field, out, log: o.log });
  const corpus = await loadTextCorpus(
    {
      ...DEFAULT_CONFIG.data,
      train: o.data,
      val: o.val?.length ? o.val : "",
      val_fraction: valFraction,
      field,
      tokenizer: choice,
    },
    tokenizer,
    { cacheDir: o.cacheDir, warn: o.warn, log: o.log },
  );
  const meta: TokenFileMeta = {
    tokenizer: tokenizer.metadata(),
    vocabSize: tokenizer.vocabSize,
    separator: corpus.separator,
    source: {
      train: await describeAll(train),
      val: await describeAll(val),
      ...(val.length ? {} : { val_fraction: valFraction }),
      field,
    },
  };
  await writeTokenFile(out, corpus, meta);
  return {
    out,
    train_tokens: corpus.train.length,
    val_tokens: corpus.val.length,
    tokenizer: tokenizer.name,
    vocab_size: tokenizer.vocabSize,
    separator: corpus.separator ?? null,
    files: train.length + val.length,
    seconds: (performance.now() - t0) / 1000,
  };
}
