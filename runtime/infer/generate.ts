/**
 * Generation in one call: sizes a `Decoder` (runtime/infer/decoder.ts) for the prompts, runs it to
 * completion and returns the new tokens with the run's figures; `onTokens` sees every chunk as it
 * reaches the host (streaming), with the cache's figures. The commands, the page and the examples
 * all generate through it; for repeated requests of one shape, keep a `Decoder` instead.
 * Browser-safe.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import type { ModelParams } from "../model/params.ts";
import type { KvStats } from "./kv_cache.ts";
import {
  Decoder,
  type DecoderOptions,
  type GenerateRequest,
  type GenerationStats,
  type TokenChunk,
} from "./decoder.ts";

/** A generation run to completion. */
export interface GenerationResult {
  /** New tokens per sequence. */
  tokens: number[][];
  /** Timings and KV-cache figures of the run. */
  stats: GenerationStats;
}

/** Generates after each prompt in one batch; the decoder holds exactly what the request needs. */
export async function generate(
  ctx: KernelContext,
  params: ModelParams,
  spec: AttentionSpec,
  req: GenerateRequest & Omit<DecoderOptions, "batch" | "maxPositions"> & {
    /** Sees every chunk as it reaches the host, with the KV cache's figures at that point. */
    onTokens?: (chunk: TokenChunk, kv: KvStats) => void;
  },
): Promise<GenerationResult> {
  const longest = Math.max(...req.prompts.map((p) => p.length));
  const dec = new Decoder(ctx, params, spec, {
    ...req,
    batch: req.prompts.length,
    maxPositions: Math.max(1, longest + req.maxNewTokens - 1),
  });
  try {
    const tokens: number[][] = req.prompts.map(() => []);
    for await (const chunk of dec.generate(req)) {
      chunk.tokens.forEach((t, b) => tokens[b].push(...t));
      req.onTokens?.(chunk, dec.cache.stats());
    }
    return { tokens, stats: dec.stats };
  } finally {
    dec.destroy();
  }
}
