/**
 * Evaluating a checkpoint, what `deno task eval` calls: the mean next-token loss on a text or a
 * Brown split (docs/DESIGN.md 3), in nats per token and bits per UTF-8 byte (so runs with different
 * tokenizers compare); the spec and the tokenizer are rebuilt from the checkpoint. A checkpoint
 * with a non-finite weight, or a context/batch the adapter cannot hold, is refused with one line
 * before any text is read.
 */
import type { Layout } from "../../compiler/layout.ts";
import { loadCheckpoint } from "../host/checkpoint.ts";
import { checkpointTokenizer } from "../host/tokenizer_file.ts";
import { brownCorpus } from "../host/corpus.ts";
import { hostContext } from "../host/gpu_options.ts";
import { bitsPerByte, evaluateStream } from "../train/evaluate.ts";
import { ModelParams } from "../model/params.ts";
import { checkForwardFits } from "../model/limits.ts";
import { scoredPositions } from "../../compiler/analysis/leaks.ts";

/** Context when a checkpoint does not record the one it was trained with. */
export const DEFAULT_CONTEXT = 128;

/** What `evaluateCheckpoint` is asked: a checkpoint and a text file or a Brown split. */
export interface EvalRequest {
  ckpt: string;
  textFile?: string;
  split?: "val" | "train";
  /** Predictions per window (default: the checkpoint's training context). */
  context?: number;
  batch: number;
  maxWindows?: number;
  layout: Layout;
  /** A tokenizer.json to use instead of the checkpoint's. */
  tokenizer?: string;
  /** Called after each batch with windows done and total. */
  progress?: (done: number, total: number) => void;
  /** Evaluate a spec whose predictions can see their targets, scoring only those that cannot. */
  allowLeak?: boolean;
  /** Where warnings go (a mask with rows that see nothing). */
  warn?: (line: string) => void;
}

/** `deno task eval --json`'s object. */
export interface EvalReport {
  loss: number;
  bits_per_byte: number;
  tokens: number;
  bytes: number;
  context: number;
  spec: string;
  tokenizer: string;
  seconds: number;
}

/** The tokens to evaluate on: the text file's, or a Brown split's (bytes only). */
async function evalStream(
  r: EvalRequest,
  tokenizer: { name: string; encode(s: string): Uint32Array },
): Promise<Uint32Array> {
  if (r.textFile) {
    let text: string;
    try {
      text = await Deno.readTextFile(r.textFile);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(`text file "${r.textFile}" does not exist`);
      }
      throw e;
    }
    return tokenizer.encode(text);
  }
  if (tokenizer.name !== "bytes") {
    throw new Error(`--split needs the bytes tokenizer, checkpoint has ${tokenizer.name}`);
  }
  return (await brownCorpus())[r.split ?? "val"];
}

/** Loads, checks, evaluates (see the file's header). */
export async function evaluateCheckpoint(r: EvalRequest): Promise<EvalReport> {
  if (!r.textFile === !r.split) {
    throw new Error("give exactly one of --text-file FILE or --split val");
  }
  const ck = await loadCheckpoint(r.ckpt);
  const tokenizer = await checkpointTokenizer(ck, r.tokenizer);
  const context = r.context ?? ck.context ?? DEFAULT_CONTEXT;
  const ctx = await hostContext();
  // Before reading any text: a context or batch the adapter cannot hold is refused now.
  checkForwardFits(ctx.gpu, ck, {
    batch: r.batch,
    L: context,
    names: { batch: "--batch", L: "--context" },
  });
  const scored = new Map<number, readonly number[] | undefined>();
  const scoredAt = (len: number) => {
    if (!scored.has(len)) {
      const warn = scored.size === 0 ? r.warn : undefined;
      scored.set(
        len,
        scoredPositions(ck.spec, len, { allowLeak: r.allowLeak, warn, what: "be scored" }),
      );
    }
    return scored.get(len);
  };
  scoredAt(context); // refused before any text is read
  const stream = await evalStream(r, tokenizer);
  if (stream.length < 2) throw new Error("the text must hold at least 2 tokens");
  const params = ModelParams.loaded(ctx, ck);
  const t0 = performance.now();
  const e = await evaluateStream(ctx, params, ck.spec, stream, {
    context,
    batch: r.batch,
    maxWindows: r.maxWindows,
    layout: r.layout,
    separator: tokenizer.separator,
    progress: r.progress,
    scored: scoredAt,
  });
  params.destroy();
  const bytes = tokenizer.name === "bytes"
    ? e.targets.length
    : new TextEncoder().encode(tokenizer.decode(e.targets)).length;
  return {
    loss: e.loss,
    bits_per_byte: bitsPerByte(e.loss, tokenizer, [e.targets]),
    tokens: e.tokens,
    bytes,
    context,
    spec: ck.spec.name,
    tokenizer: tokenizer.name,
    seconds: (performance.now() - t0) / 1000,
  };
}
