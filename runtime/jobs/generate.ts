/**
 * Generating from a checkpoint, what `deno task generate` calls: its spec and tokenizer rebuilt
 * from the file's metadata (a spec that is not causal is refused with a witness pair), the
 * prompts encoded, the positions checked against the KV cache the adapter can hold before any
 * allocation, then one `generate` (runtime/infer/generate.ts): prefill of the compiler's prefill
 * set, K query rows per decode step, sampling on the GPU, several steps per submit. `onTokens`
 * sees each chunk as it reaches the host.
 */
import { MAX_ANALYSIS_L } from "../../compiler/analysis/analyze.ts";
import { requireCausal } from "../../compiler/analysis/causality.ts";
import { planRetention } from "../../compiler/analysis/retention.ts";
import { loadCheckpoint } from "../host/checkpoint.ts";
import { checkpointTokenizer } from "../host/tokenizer_file.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import { hostContext } from "../host/gpu_options.ts";
import type { SamplingOptions, TokenChunk } from "../infer/decoder.ts";
import { generate } from "../infer/generate.ts";
import { ModelParams } from "../model/params.ts";
import { checkForwardFits, maxDecodePositions } from "../model/limits.ts";

/** What `generateFromCheckpoint` is asked. */
export interface GenerateFromCheckpoint {
  ckpt: string;
  prompts: string[];
  maxNewTokens: number;
  sampling: SamplingOptions;
  stepsPerSubmit?: number;
  /** A tokenizer.json to use instead of the checkpoint's. */
  tokenizer?: string;
  /** Where warnings go (a prompt longer than the trained context is cut). */
  warn?: (line: string) => void;
  /** Sees every chunk of new tokens as it reaches the host, with the tokenizer. */
  onTokens?: (chunk: TokenChunk, tokenizer: Tokenizer) => void;
}

/** `deno task generate --json`'s object. */
export interface GenerateReport {
  tokens: number[];
  text: string;
  prompt: string;
  kv_cache_bytes: number;
  prefill_ms: number;
  decode_tokens_per_s: number;
  kv_cache: Record<string, unknown>;
  prefill_plan_ms: number;
  prefill_rows: number[];
  decode_ms: number;
  decode_steps: number;
  submits: number;
  spec: string;
  tokenizer: string;
  sampling: SamplingOptions;
  adapter: string;
  /** With several prompts: each one's tokens and text. */
  batch?: { prompt: string; tokens: number[]; text: string }[];
}

/** Loads, checks and generates (see the file's header). */
export async function generateFromCheckpoint(r: GenerateFromCheckpoint): Promise<GenerateReport> {
  if (r.prompts.some((p) => p.length === 0)) {
    throw new Error("the prompt is empty: give at least one character");
  }
  const ck = await loadCheckpoint(r.ckpt);
  const tokenizer = await checkpointTokenizer(ck, r.tokenizer);
  let ids = r.prompts.map((p) => tokenizer.encode(p));
  if (ids.some((p) => p.length === 0)) {
    throw new Error(`the prompt encodes to no ${tokenizer.name} token: give more text`);
  }
  const trained = ck.context;
  if (trained !== undefined && ids.some((p) => p.length > trained)) {
    const most = Math.max(...ids.map((p) => p.length));
    r.warn?.(
      `warning: a prompt of ${most} tokens exceeds the ${trained} positions the model was ` +
        `trained on: kept its last ${trained}`,
    );
    ids = ids.map((p) => p.length > trained ? p.subarray(p.length - trained) : p);
  }
  const maxNew = r.maxNewTokens, longest = Math.max(...ids.map((p) => p.length));
  requireCausal(
    ck.spec,
    longest + maxNew,
    "it cannot decode token by token (train and eval it; generate needs a causal mask)",
  );
  const positions = Math.max(1, longest + maxNew - 1);
  if (positions > MAX_ANALYSIS_L) {
    throw new RangeError(
      `--max-new-tokens ${maxNew} with a prompt of ${longest} tokens needs ${positions} ` +
        `positions, past the ${MAX_ANALYSIS_L} a retention plan covers: use --max-new-tokens <= ` +
        `${MAX_ANALYSIS_L - longest + 1}`,
    );
  }
  const ctx = await hostContext();
  // Before any allocation: the positions must fit the KV cache the adapter can hold. The plan
  // sized here is the one the decoder keeps.
  const plan = planRetention(ck.spec, { L: positions });
  const most = maxDecodePositions(ctx.gpu, ck.model, plan, ids.length);
  if (positions > most) {
    throw new RangeError(
      `--max-new-tokens ${maxNew} with a prompt of ${longest} tokens needs ${positions} ` +
        `positions but the KV cache on adapter "${ctx.gpu.adapterName}" holds at most ${most}: ` +
        `use --max-new-tokens <= ${Math.max(0, most - longest + 1)}`,
    );
  }
  checkForwardFits(ctx.gpu, ck, {
    batch: ids.length,
    L: longest,
    names: { batch: "prompts", L: "prompt tokens" },
  });
  const params = ModelParams.loaded(ctx, ck);
  const decode = (t: number[]) => tokenizer.decode(t);
  const { tokens, stats: s } = await generate(ctx, params, ck.spec, {
    prompts: ids,
    maxNewTokens: maxNew,
    sampling: r.sampling,
    stepsPerSubmit: r.stepsPerSubmit,
    plan,
    onTokens: (chunk) => r.onTokens?.(chunk, tokenizer),
  });
  params.destroy();
  const kv = s.kv, texts = tokens.map(decode);
  return {
    tokens: tokens[0],
    text: texts[0],
    prompt: r.prompts[0],
    kv_cache_bytes: kv.bytes,
    prefill_ms: +s.prefillMs.toFixed(3),
    decode_tokens_per_s: +s.decodeTokensPerS.toFixed(3),
    kv_cache: {
      originals: kv.originals,
      hidden_window: kv.hiddenWindow,
      tokens: kv.retainedTokens,
      bytes_per_token: kv.bytesPerToken,
      formula: kv.formula,
      peak_tokens: kv.peakTokens,
      allocated_bytes: kv.allocatedBytes,
    },
    prefill_plan_ms: +s.prefillPlanMs.toFixed(3),
    prefill_rows: s.prefillRows,
    decode_ms: +s.decodeMs.toFixed(3),
    decode_steps: s.decodeSteps,
    submits: s.submits,
    spec: ck.spec.name,
    tokenizer: tokenizer.name,
    sampling: r.sampling,
    adapter: ctx.gpu.adapterName,
    ...(ids.length > 1
      ? { batch: tokens.map((t, b) => ({ prompt: r.prompts[b], tokens: t, text: texts[b] })) }
      : {}),
  };
}
