/**
 * What an arm costs to serve, from the plans cached decoding runs on (docs/DESIGN.md 1.4), so a
 * suite reports loss, KV bytes and prefill cost together:
 *
 * - KV bytes per token: the retention plan's most keys cached over a context of `context`
 *   positions (compiler/analysis/retention.ts, what runtime/infer/kv_cache.ts sizes its slots by)
 *   times the bytes of one key (`kvBytesPerKey`: K and V of every layer and KV head, f32), per
 *   position of the context.
 * - Prefill FLOPs of a `context`-token prompt: the rows of its prefill plan
 *   (runtime/infer/prefill_plan.ts, what the decoder computes) through every linear layer, the
 *   attention of each query tile over its planned key ranges (tile-granular, as the kernel reads
 *   them: 4·H·d FLOPs per query-key pair and layer), and the LM head of the one row that gives
 *   the first token. Forward only; planned work, not a timing.
 *
 * Pure host work (no GPU), so results computed before these columns existed can be re-rendered.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import { specBindings } from "../../dsl/eval.ts";
import { planRetention } from "../../compiler/analysis/retention.ts";
import type { ModelConfig } from "../../runtime/model/config.ts";
import { headDim } from "../../runtime/model/params.ts";
import { kvBytesPerKey } from "../../runtime/infer/kv_cache.ts";
import { planPrefill } from "../../runtime/infer/prefill_plan.ts";

/** Context (prompt positions) the costs are given at. */
export const COST_CONTEXT = 1024;

/** The serving costs of one arm. */
export interface ArmCosts {
  /** Positions of the context (the prompt of the prefill figure). */
  context: number;
  /** KV-cache bytes per position of the context. */
  kv_bytes_per_token: number;
  /** The retention plan's capacity formula, e.g. `L + 15`. */
  kv_formula: string;
  /** Rows (tokens of the expanded sequence) a prefill of the context computes. */
  prefill_rows: number;
  /** Forward FLOPs of that prefill. */
  prefill_flops: number;
}

/** How the cost columns are computed (results.json `costs_method`). */
export const COSTS_METHOD = "KV bytes per token: the retention plan's most keys cached over a " +
  `${COST_CONTEXT}-position context times the bytes of one key (K and V, every layer, f32), per ` +
  `position; prefill: forward FLOPs of a ${COST_CONTEXT}-token prompt from the decoder's prefill ` +
  "plan (its rows through the linear layers, attention over the planned key ranges per query " +
  "tile, the LM head of the last row), planned work, not a timing";

/** The costs of a model and spec at `context` positions (tiles of `tile` rows, the decoder's). */
export function armCosts(
  model: ModelConfig,
  spec: AttentionSpec,
  o: { context?: number; tile?: number } = {},
): ArmCosts {
  const P = o.context ?? COST_CONTEXT, tile = o.tile ?? 32, bindings = specBindings(spec);
  const retention = planRetention(spec, { L: P, bindings });
  const pre = planPrefill(spec, { P, retention, bindings, tile });
  const C = model.hidden_size, I = model.intermediate_size, d = headDim(model);
  const H = model.num_attention_heads, HKV = model.num_key_value_heads;
  const linear = 2 * (C * (H * d + 2 * HKV * d) + H * d * C + 3 * C * I);
  let pairs = 0;
  for (const [t, ranges] of pre.ranges.entries()) {
    const queries = Math.min(tile, pre.count - t * tile);
    for (const r of ranges) pairs += queries * (Math.min(r.end, pre.count) - r.start);
  }
  const layers = model.num_hidden_layers;
  return {
    context: P,
    kv_bytes_per_token: retention.maxCachedTokens * kvBytesPerKey(model) / P,
    kv_formula: retention.formula,
    prefill_rows: pre.count,
    prefill_flops: layers * (pre.count * linear + 4 * H * d * pairs) +
      2 * C * model.vocab_size,
  };
}
