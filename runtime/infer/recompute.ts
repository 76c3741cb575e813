/**
 * Generation by full recompute: every new token reruns the whole window through a forward-only
 * graph and reads the last copy's logits at the newest position. No KV cache, so it is simple and
 * obviously right; it is the teacher-forced baseline that cached decoding is checked against.
 * The window is the graph's L positions; the text is left-aligned in it (causality makes the
 * unused tail irrelevant), and once it is full the oldest positions slide out. Browser-safe.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import { Rng } from "../data/batches.ts";
import { readback } from "../gpu/resources.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import { ModelGraph, type ModelParams } from "../model/graph.ts";

/** How to pick the next token from logits. */
export interface SamplingOptions {
  /** 0 (default) is greedy. */
  temperature?: number;
  /** Keep the k most likely tokens (0: all). */
  topK?: number;
  /** Keep the smallest set with this much probability (1: all). */
  topP?: number;
  seed?: number;
}

/** Picks a token from one row of logits (host side; greedy ties go to the lowest id). */
export function sampleHost(logits: Float32Array, o: SamplingOptions, rng: Rng): number {
  const t = o.temperature ?? 0;
  if (!(t > 0)) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = o.topK && o.topK > 0 ? Math.min(o.topK, order.length) : order.length;
  const max = logits[order[0]];
  const probs = order.slice(0, k).map((i) => Math.exp((logits[i] - max) / t));
  const total = probs.reduce((a, b) => a + b, 0);
  let keep = probs.length, acc = 0;
  const topP = o.topP ?? 1;
  for (let i = 0; i < probs.length; i++) {
    acc += probs[i] / total;
    if (acc >= topP) {
      keep = i + 1;
      break;
    }
  }
  const mass = probs.slice(0, keep).reduce((a, b) => a + b, 0);
  let u = rng.next() * mass;
  for (let i = 0; i < keep; i++) {
    u -= probs[i];
    if (u <= 0) return order[i];
  }
  return order[keep - 1];
}

/** Generates `maxNew` tokens after `prompt` by recomputing a window of `L` positions each step. */
export async function* generateByRecompute(
  ctx: KernelContext,
  params: ModelParams,
  spec: AttentionSpec,
  o: { prompt: ArrayLike<number>; maxNew: number; L: number; sampling?: SamplingOptions },
): AsyncGenerator<number> {
  if (o.prompt.length < 1) throw new RangeError("the prompt must hold at least one token");
  const graph = new ModelGraph(ctx, params, spec, { batch: 1, L: o.L });
  const V = params.config.vocab_size, rng = new Rng(o.sampling?.seed ?? 0);
  const text = Array.from(o.prompt);
  try {
    for (let n = 0; n < o.maxNew; n++) {
      const window = text.slice(-o.L), ids = new Uint32Array(o.L + 1);
      ids.set(window);
      graph.setBatch(ids);
      const enc = ctx.gpu.device.createCommandEncoder({ label: "recompute" });
      graph.record(enc);
      ctx.gpu.device.queue.submit([enc.finish()]);
      const row = window.length - 1;
      const logits = new Float32Array(
        await readback(ctx.gpu.device, graph.logits, (row + 1) * V * 4),
      ).subarray(row * V);
      const next = sampleHost(logits, o.sampling ?? {}, rng);
      text.push(next);
      yield next;
    }
  } finally {
    graph.destroy();
  }
}
