/**
 * Tokenizers from disk (Deno APIs): `data.tokenizer` resolved to a `Tokenizer` (runtime/data/
 * tokenizer.ts): `"bytes"`; a `tokenizer.json` file, checked by loading it; or `{"bpe": N}`, a
 * byte-level BPE trained on the start of the training text (`BPE_SAMPLE_CHARS`) and written as
 * `tokenizer.json` beside the checkpoint. Every problem is one line naming the file.
 */
import { basename } from "node:path";
import {
  ByteTokenizer,
  JsonTokenizer,
  type Tokenizer,
  tokenizerFromMetadata,
  trainBpe,
} from "../data/tokenizer.ts";
import type { Checkpoint } from "../io/checkpoint.ts";
import { BPE_MAX, BPE_MIN, type TokenizerChoice } from "../model/config.ts";
import { writeFileAtomic } from "./files.ts";
import { resolveTextFiles, sampleText } from "./text_files.ts";

/** Characters of training text a BPE learns its merges from (the start of the sorted files). */
export const BPE_SAMPLE_CHARS = 4 << 20;

/** Reads a tokenizer.json file. */
export async function loadTokenizerFile(path: string): Promise<JsonTokenizer> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`tokenizer file "${path}" does not exist`);
    }
    throw new Error(`cannot read tokenizer file "${path}": ${(e as Error).message}`);
  }
  try {
    return new JsonTokenizer(JSON.parse(text), { kind: "file", path: basename(path) });
  } catch (e) {
    const why = e instanceof SyntaxError ? "it is not JSON" : (e as Error).message;
    throw new Error(`tokenizer file "${path}" is not a tokenizer.json: ${why}`);
  }
}

/** Where a trained BPE is written: `m.safetensors` -> `m.tokenizer.json`. */
export function bpePath(checkpoint: string): string {
  return checkpoint.replace(/(\.safetensors)?$/, ".tokenizer.json");
}

/**
 * The tokenizer of a run. `{bpe: N}` trains on `train` (patterns of data.train, JSONL `field`)
 * and writes the result to `bpePath(out)`.
 */
export async function resolveTokenizer(
  choice: TokenizerChoice,
  o: { train: string | string[]; field: string; out: string; log?: (line: string) => void },
): Promise<Tokenizer> {
  if (choice === "bytes") return new ByteTokenizer();
  if (typeof choice === "string") return await loadTokenizerFile(choice);
  if (o.train === "") {
    throw new Error(`data.tokenizer {"bpe": N} needs training text: set data.train (or --data)`);
  }
  const files = await resolveTextFiles(o.train, "data.train");
  const sample = await sampleText(files, o.field, BPE_SAMPLE_CHARS);
  if (sample.length > 1 << 19) {
    o.log?.(
      `training a byte-level BPE of ${choice.bpe} ids on ${
        (sample.length / (1 << 20)).toFixed(1)
      } ` +
        `Mi characters (about 15 s for 1024 ids on 4 Mi on 2 cores) ...`,
    );
  }
  const json = trainBpe(sample, choice.bpe);
  const path = bpePath(o.out);
  await writeFileAtomic(path, JSON.stringify(json));
  return new JsonTokenizer(json, { kind: "bpe", path: basename(path) });
}

/**
 * The tokenizer of a checkpoint: the one its metadata embeds, or the tokenizer.json `file` instead.
 * Either must have the model's vocabulary size; one line when not.
 */
export async function checkpointTokenizer(ck: Checkpoint, file?: string): Promise<Tokenizer> {
  let tok: Tokenizer;
  try {
    tok = file ? await loadTokenizerFile(file) : tokenizerFromMetadata(ck.tokenizer);
  } catch (e) {
    throw new Error(
      file ? (e as Error).message : `the checkpoint's tokenizer: ${(e as Error).message}`,
    );
  }
  if (tok.vocabSize !== ck.model.vocab_size) {
    throw new RangeError(
      `tokenizer ${tok.name} has ${tok.vocabSize} ids but the checkpoint's vocabulary is ` +
        `${ck.model.vocab_size}: use the tokenizer it was trained with`,
    );
  }
  return tok;
}

/**
 * A `--tokenizer` value: `bytes`, `bpe:N` (a BPE of N ids to train) or a tokenizer.json path.
 * A `bpe:` value that is not an integer in range is one line saying what N may be.
 */
export function parseTokenizerFlag(v: string, flag = "--tokenizer"): TokenizerChoice {
  const m = /^bpe:(.*)$/.exec(v);
  if (!m) return v;
  const n = Number(m[1]);
  if (!/^\d+$/.test(m[1]) || n < BPE_MIN || n > BPE_MAX) {
    throw new RangeError(
      `${flag} bpe:N needs an integer N in [${BPE_MIN}, ${BPE_MAX}] (the vocabulary of the BPE ` +
        `to train: 256 bytes, the separator and at least one merge), got "${m[1]}"`,
    );
  }
  return { bpe: n };
}
