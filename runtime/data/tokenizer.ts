/**
 * Tokenizers behind one small interface, and the `tokenizer` value of a checkpoint's
 * `__metadata__` (docs/DESIGN.md 4) that identifies one. Three kinds:
 * - `bytes` (the default): UTF-8 bytes as ids, vocabulary 256; documents are separated by byte 0
 *   (NUL, which text files do not hold in practice).
 * - a Hugging Face `tokenizer.json` (any model the library supports: BPE, WordPiece, Unigram),
 *   run by `@huggingface/tokenizers`, Hugging Face's pure-JS port of `tokenizers` (no native code,
 *   so the same file decodes in the browser); documents are separated by its first special token.
 * - a byte-level BPE trained on the training text (`trainBpe`), written as a standard
 *   `tokenizer.json` and run by the same library; its separator is `<|endoftext|>` (id 256).
 * Non-byte tokenizers are embedded whole in the checkpoint's metadata, so `eval`, `generate` and
 * the browser decode without the file. Browser-safe.
 */
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";

/** Text to token ids and back. */
export interface Tokenizer {
  /** A short human name (`bytes`, `bpe-1024`, `tokenizer.json gpt2`). */
  readonly name: string;
  /** Number of ids: every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** The id placed between documents when packing (and where a document table starts a segment). */
  readonly separator: number;
  /** Text to ids, without special tokens. */
  encode(text: string): Uint32Array;
  /** Ids to text; invalid sequences (e.g. a cut UTF-8 character) become U+FFFD. */
  decode(ids: ArrayLike<number>): string;
  /** The checkpoint's `__metadata__.tokenizer` string that rebuilds this tokenizer. */
  metadata(): string;
}

/** UTF-8 bytes, vocabulary 256. */
export class ByteTokenizer implements Tokenizer {
  readonly name = "bytes";
  readonly vocabSize = 256;
  readonly separator = 0;
  #enc = new TextEncoder();
  #dec = new TextDecoder("utf-8");

  encode(text: string): Uint32Array {
    return Uint32Array.from(this.#enc.encode(text));
  }

  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (!(Number.isInteger(v) && v >= 0 && v < 256)) {
        throw new RangeError(`byte tokenizer: id ${v} at ${i} is outside [0, 256)`);
      }
      bytes[i] = v;
    }
    return this.#dec.decode(bytes);
  }

  metadata(): string {
    return "bytes";
  }
}

/** Where a `tokenizer.json` came from (kept in the checkpoint's metadata). */
export interface TokenizerOrigin {
  /** `file`: a tokenizer.json given by the user; `bpe`: trained here on the training text. */
  kind: "file" | "bpe";
  /** The file it was read from or written to. */
  path?: string;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: unknown };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

/** A Hugging Face `tokenizer.json`, run by `@huggingface/tokenizers`. */
export class JsonTokenizer implements Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly separator: number;
  #tok: HfTokenizerImpl;

  /** Throws one line when `json` is not a tokenizer.json the library can run. */
  constructor(readonly json: unknown, readonly origin: TokenizerOrigin) {
    const j = json as TokenizerJson;
    if (
      typeof json !== "object" || json === null || typeof j.model !== "object" ||
      j.model === null || typeof j.model.type !== "string"
    ) {
      throw new TypeError("not a tokenizer.json (no model.type)");
    }
    try {
      this.#tok = new HfTokenizerImpl(json, {});
    } catch (e) {
      throw new TypeError(`tokenizer.json cannot be loaded: ${(e as Error).message}`);
    }
    let max = -1;
    for (const id of this.#tok.get_vocab(true).values()) max = Math.max(max, id);
    if (max < 1) throw new TypeError("tokenizer.json has an empty vocabulary");
    this.vocabSize = max + 1;
    const special = (j.added_tokens ?? []).find((t) => t.special);
    const newline = this.#tok.encode("\n", { add_special_tokens: false }).ids;
    if (special) this.separator = special.id;
    else if (newline.length === 1) this.separator = newline[0];
    else {
      throw new TypeError(
        "tokenizer.json has no special token (and no single-token newline) to separate documents",
      );
    }
    this.name = origin.kind === "bpe"
      ? `bpe-${this.vocabSize}`
      : `${origin.path ?? "tokenizer.json"} (${j.model.type})`;
  }

  encode(text: string): Uint32Array {
    return Uint32Array.from(this.#tok.encode(text, { add_special_tokens: false }).ids);
  }

  decode(ids: ArrayLike<number>): string {
    for (let i = 0; i < ids.length; i++) {
      if (!(Number.isInteger(ids[i]) && ids[i] >= 0 && ids[i] < this.vocabSize)) {
        throw new RangeError(
          `${this.name}: id ${ids[i]} at ${i} is outside [0, ${this.vocabSize})`,
        );
      }
    }
    return this.#tok.decode(Array.from(ids), {
      skip_special_tokens: false,
      clean_up_tokenization_spaces: false,
    });
  }

  metadata(): string {
    return JSON.stringify({
      kind: this.origin.kind,
      ...(this.origin.path ? { path: this.origin.path } : {}),
      vocab_size: this.vocabSize,
      json: this.json,
    });
  }
}

/**
 * The tokenizer a checkpoint's `__metadata__.tokenizer` names: `bytes`, or an embedded
 * tokenizer.json. Throws one line when it is neither.
 */
export function tokenizerFromMetadata(meta: string): Tokenizer {
  if (meta === "bytes") return new ByteTokenizer();
  let m: { kind?: unknown; path?: unknown; json?: unknown; vocab_size?: unknown };
  try {
    m = JSON.parse(meta);
  } catch {
    throw new RangeError(`unknown tokenizer "${meta.slice(0, 40)}" (known: bytes, tokenizer.json)`);
  }
  if (typeof m !== "object" || m === null || Array.isArray(m)) {
    throw new RangeError(
      `tokenizer metadata must be "bytes" or a JSON object, got ${meta.slice(0, 40)}`,
    );
  }
  if (m.kind !== "file" && m.kind !== "bpe") {
    throw new RangeError(`tokenizer metadata has kind ${JSON.stringify(m.kind)} (file or bpe)`);
  }
  const t = new JsonTokenizer(m.json, {
    kind: m.kind,
    ...(typeof m.path === "string" ? { path: m.path } : {}),
  });
  if (m.vocab_size !== undefined && m.vocab_size !== t.vocabSize) {
    throw new RangeError(
      `embedded tokenizer has ${t.vocabSize} ids, its metadata says ${m.vocab_size}`,
    );
  }
  return t;
}

// ---- byte-level BPE training ----

/** GPT-2's pre-tokenizer split (the one the ByteLevel pre-tokenizer applies). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte -> printable character map (ByteLevel's alphabet). */
function byteAlphabet(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + extra++);
  }
  return out;
}

/** The separator of trained BPEs. */
export const BPE_SEPARATOR = "<|endoftext|>";

/**
 * Trains a byte-level BPE of `vocabSize` ids on `texts` (256 byte ids, `<|endoftext|>` at 256,
 * then one id per merge) and returns it as a standard `tokenizer.json` object. Merges are learnt
 * greedily: the most frequent adjacent pair within GPT-2 pre-tokenized words, ties broken by the
 * pair's ids, so the result depends only on the text. Stops early when no pair occurs twice.
 */
export function trainBpe(texts: Iterable<string>, vocabSize: number): Record<string, unknown> {
  if (!Number.isInteger(vocabSize) || vocabSize < 258) {
    throw new RangeError(
      `a BPE needs at least 258 ids (256 bytes, separator, a merge), got ${vocabSize}`,
    );
  }
  const alphabet = byteAlphabet(), enc = new TextEncoder();
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_SPLIT)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  }
  const words: number[][] = [], freq: number[] = [];
  for (const [w, n] of counts) {
    words.push(Array.from(enc.encode(w)));
    freq.push(n);
  }
  const symbols = alphabet.slice(); // id -> string of byte-level characters
  symbols.push(BPE_SEPARATOR);
  const merges: string[] = [];
  while (symbols.length < vocabSize) {
    const pairs = new Map<number, number>();
    const key = (a: number, b: number) => a * 65536 + b;
    for (let w = 0; w < words.length; w++) {
      const s = words[w];
      for (let i = 0; i + 1 < s.length; i++) {
        const k = key(s[i], s[i + 1]);
        pairs.set(k, (pairs.get(k) ?? 0) + freq[w]);
      }
    }
    let best = -1, bestN = 1;
    for (const [k, n] of pairs) {
      if (n > bestN || (n === bestN && best >= 0 && k < best)) {
        best = k;
        bestN = n;
      }
    }
    if (best < 0) break;
    const a = Math.floor(best / 65536), b = best % 65536, id = symbols.length;
    symbols.push(symbols[a] + symbols[b]);
    merges.push(`${symbols[a]} ${symbols[b]}`);
    for (const s of words) {
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) s.splice(i, 2, id);
      }
    }
  }
  const vocab: Record<string, number> = {};
  symbols.forEach((s, id) => (vocab[s] = id));
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{
      id: 256,
      content: BPE_SEPARATOR,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", ...byteLevel },
    post_processor: null,
    decoder: { type: "ByteLevel", ...byteLevel },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
