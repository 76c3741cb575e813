/**
 * Mean next-token loss of a token stream under a model (docs/DESIGN.md 3 `eval`): a stream that
 * fits the context is one sequence; a longer one is cut into consecutive windows of `context`
 * predictions (each window's inputs start where the previous one's ended, so every token but the
 * first is predicted exactly once), batched; a shorter last window runs on its own graph. Per-row
 * losses are read back and summed on the host in float64. `bitsPerByte` turns a loss in nats per
 * token into bits per UTF-8 byte, the unit every report compares tokenizers in. Browser-safe.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Layout } from "../../compiler/layout.ts";
import { readback } from "../gpu/resources.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import { ModelGraph } from "../model/graph.ts";
import type { ModelParams } from "../model/params.ts";
import { documentBindings } from "../data/batches.ts";
import type { Tokenizer } from "../data/tokenizer.ts";

/** Bits per token of a loss in nats per token (with the byte tokenizer, bits per byte). */
export function bitsPerToken(natsPerToken: number): number {
  return natsPerToken / Math.LN2;
}

/**
 * Bits per UTF-8 byte of a mean loss in nats per token over `targets`: the nats of the predicted
 * tokens over the bytes of the text they decode to (for bytes, one token is one byte).
 */
export function bitsPerByte(
  loss: number,
  tokenizer: Pick<Tokenizer, "name" | "decode">,
  targets: Iterable<ArrayLike<number>>,
): number {
  let tokens = 0, bytes = 0;
  const enc = new TextEncoder();
  for (const t of targets) {
    tokens += t.length;
    bytes += tokenizer.name === "bytes" ? t.length : enc.encode(tokenizer.decode(t)).length;
  }
  return bitsPerToken(loss) * (tokens / bytes);
}

/** Options of `evaluateStream`. */
export interface EvalOptions {
  /** Predictions per window (positions L of the graph). */
  context: number;
  /** Windows per batch. Default 8. */
  batch?: number;
  /** Stop after this many windows (default: the whole stream). */
  maxWindows?: number;
  /** Storage layout of the graph's token rows. Default `interleaved`. */
  layout?: Layout;
  /**
   * The id separating packed documents: a spec reading the `docs` table gets each batch's
   * document starts (as in training). Default: the spec's own table.
   */
  separator?: number;
  /** Called after each batch with windows done and total. */
  progress?: (done: number, total: number) => void;
  /**
   * The positions of a window of `len` whose predictions are scored (default all): a spec whose
   * predictions can see their targets is scored on the others (compiler/analysis/leaks.ts).
   */
  scored?: (len: number) => readonly number[] | undefined;
}

/** Mean loss in nats per predicted token, the number of predicted tokens, and those tokens. */
export async function evaluateStream(
  ctx: KernelContext,
  params: ModelParams,
  spec: AttentionSpec,
  stream: Uint32Array,
  o: EvalOptions,
): Promise<{ loss: number; tokens: number; targets: Uint32Array }> {
  if (stream.length < 2) {
    throw new RangeError("the text must hold at least 2 tokens to predict one");
  }
  const L = o.context, B = o.batch ?? 8;
  let windows = Math.ceil((stream.length - 1) / L);
  if (o.maxWindows !== undefined) windows = Math.min(windows, o.maxWindows);
  const lengths = Array.from({ length: windows }, (_, w) => Math.min(L, stream.length - 1 - w * L));
  let sum = 0;
  const targets: number[] = [];
  const graphs = new Map<string, ModelGraph>();
  const graph = (batch: number, len: number) => {
    const key = `${batch}x${len}`;
    let g = graphs.get(key);
    if (!g) {
      g = new ModelGraph(ctx, params, spec, {
        batch,
        L: len,
        attention: { layout: o.layout },
        lossPositions: o.scored?.(len),
      });
      graphs.set(key, g);
    }
    return g;
  };
  try {
    for (let w = 0; w < windows;) {
      const len = lengths[w];
      let n = 1;
      while (n < B && w + n < windows && lengths[w + n] === len) n++;
      const g = graph(n === B ? B : n, len);
      const ids = new Uint32Array(n * (len + 1));
      for (let i = 0; i < n; i++) {
        const start = (w + i) * L;
        ids.set(stream.subarray(start, start + len + 1), i * (len + 1));
      }
      g.setBindings(documentBindings(spec, ids, { batch: n, seqLen: len, separator: o.separator }));
      g.setBatch(ids);
      const enc = ctx.gpu.device.createCommandEncoder({ label: "eval" });
      g.record(enc);
      ctx.gpu.device.queue.submit([enc.finish()]);
      const losses = new Float32Array(await readback(ctx.gpu.device, g.losses, g.M * 4));
      for (const x of losses) sum += x;
      for (let i = 0; i < n; i++) {
        for (const p of g.positions) targets.push(ids[i * (len + 1) + p + 1]);
      }
      w += n;
      o.progress?.(w, windows);
    }
  } finally {
    for (const g of graphs.values()) g.destroy();
  }
  return { loss: sum / targets.length, tokens: targets.length, targets: Uint32Array.from(targets) };
}
