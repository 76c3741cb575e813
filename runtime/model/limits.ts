/**
 * Pre-flight checks of a model shape against an adapter's limits, run by the commands before any
 * long work (corpus, tuning, allocation): every buffer `ModelGraph` and the decoder allocate must
 * fit one storage binding, and the whole set must fit the memory the host says it has. A refusal
 * is one line naming the buffer, its size, the limit and the largest value of each config field
 * that would fit, instead of a hang or "Array buffer allocation failed" minutes later. The buffer
 * list mirrors runtime/model/graph.ts (tests/model/limits_test.ts checks it against a real
 * graph's allocations). Browser-safe.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { RetentionPlan } from "../../compiler/analysis/retention.ts";
import { embeddingTables, type ModelConfig, type PhdConfig } from "./config.ts";
import { headDim } from "./params.ts";

/** The adapter limits that bound one buffer (a `GpuContext` has them). */
export interface BufferLimits {
  adapterName: string;
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
}

/** One buffer: its name, f32 count and the config fields whose product it is. */
export interface PlannedBuffer {
  name: string;
  /** Number of f32 values. */
  values: number;
  /** Config fields (`train.seq_len`, ...) and their values whose product (times `scale`) it is. */
  factors: [string, number][];
  /** How many such buffers the graph allocates. */
  count: number;
}

/** The shape a graph is built for. */
export interface GraphShape {
  batch: number;
  /** Positions per sequence. */
  L: number;
  /** Copies per position (the spec's K). */
  K: number;
  training: boolean;
  /** Input embedding tables (K with per-copy embeddings). Default 1. */
  embedTables?: number;
  /** Config-field names for batch and L in messages (default `train.batch_size`, `train.seq_len`). */
  names?: { batch?: string; L?: string };
}

function buffer(name: string, factors: [string, number][], count = 1, scale = 1): PlannedBuffer {
  return { name, values: scale * factors.reduce((a, [, v]) => a * v, 1), factors, count };
}

/** The buffers of a model's parameters and of one graph of `shape` (graph.ts's allocations). */
export function graphBuffers(m: ModelConfig, shape: GraphShape): PlannedBuffer[] {
  const nb = shape.names?.batch ?? "train.batch_size", nl = shape.names?.L ?? "train.seq_len";
  const B: [string, number] = [nb, shape.batch], L: [string, number] = [nl, shape.L];
  const K: [string, number] = ["phd.K", shape.K];
  const C: [string, number] = ["model.hidden_size", m.hidden_size];
  const I: [string, number] = ["model.intermediate_size", m.intermediate_size];
  const V: [string, number] = ["model.vocab_size", m.vocab_size];
  const layers = m.num_hidden_layers, d = headDim(m);
  const kvC: [string, number] = ["model.num_key_value_heads", m.num_key_value_heads];
  const heads = m.num_attention_heads;
  // Parameters, and in training their gradient and two AdamW moments.
  const copies = shape.training ? 4 : 1, tables = shape.embedTables ?? 1;
  const out = [
    // the (stacked) input tables, and an untied head of one table's size
    buffer("parameter model.embed_tokens.weight", tables > 1 ? [K, V, C] : [V, C], copies),
    buffer("parameter lm_head.weight", [V, C], m.tie_word_embeddings ? 0 : copies),
    buffer("parameter mlp weights", [I, C], copies * 3 * layers),
    buffer("parameter attention weights", [C, C], copies * 2 * layers),
    buffer("parameter k/v weights", [kvC, C], copies * 2 * layers, d),
    // Activations per layer: rows are batch·K·L tokens.
    buffer("activation hidden [batch·K·L, hidden]", [B, K, L, C], 8 * layers + 6),
    buffer("activation mlp [batch·K·L, intermediate]", [B, K, L, I], 3 * layers),
    buffer("activation k/v heads", [B, K, L, kvC], 2 * layers + 2, d),
    buffer("activation lse", [B, K, L], (2 + heads) * layers),
    buffer("logits [batch·L, vocab]", [B, L, V], shape.training ? 2 : 1),
  ];
  // The backward pass keeps gradients of about the forward activations.
  if (shape.training) {
    for (const b of out.slice(5, 9)) out.push({ ...b, name: `gradient of ${b.name}` });
  }
  return out;
}

function human(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 1)} MiB`;
}

/**
 * Throws one line when a planned buffer exceeds one storage binding (naming the largest value of
 * each of its fields that fits) or the whole set exceeds `memoryBytes` (the host's memory, when
 * known). Runs in microseconds: call it before loading data or allocating anything.
 */
export function checkBuffers(
  gpu: BufferLimits,
  buffers: readonly PlannedBuffer[],
  o: { memoryBytes?: number } = {},
): void {
  const max = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  // The largest first: it is the one to name, and what fits it fits the rest of its fields.
  for (const b of [...buffers].sort((x, y) => y.values - x.values)) {
    const bytes = b.values * 4;
    if (bytes <= max) continue;
    // A field may appear more than once (hidden x hidden): it fits at v * (max/bytes)^(1/power).
    const power = new Map<string, [number, number]>();
    for (const [field, v] of b.factors) power.set(field, [v, (power.get(field)?.[1] ?? 0) + 1]);
    const fits = [...power]
      .map(([field, [v, n]]) => [field, Math.floor(v * (max / bytes) ** (1 / n))] as const)
      .filter(([, n]) => n >= 1)
      .map(([field, n]) => `${field} <= ${n}`);
    throw new RangeError(
      `${b.name} (${b.factors.map(([f, v]) => `${f.split(".").pop()} ${v}`).join(" x ")}) needs ` +
        `${human(bytes)} in one storage binding but adapter "${gpu.adapterName}" allows ` +
        `${human(max)}: ${fits.length ? `use ${fits.join(" or ")}` : "use a smaller model"}`,
    );
  }
  if (o.memoryBytes !== undefined) {
    const total = buffers.reduce((a, b) => a + b.values * 4 * b.count, 0);
    if (total > o.memoryBytes) {
      const big = [...buffers].sort((a, b) => b.values * b.count - a.values * a.count)[0];
      throw new RangeError(
        `the model needs about ${human(total)} of buffers but this machine has ` +
          `${human(o.memoryBytes)}: shrink ${
            big.factors.map(([f]) => f).join(", ")
          } (the largest share: ${big.name}) or model.num_hidden_layers`,
      );
    }
  }
}

/** `checkBuffers` of a model's parameters and one graph (train, eval). */
export function checkModelFits(
  gpu: BufferLimits,
  model: ModelConfig,
  shape: GraphShape,
  o: { memoryBytes?: number } = {},
): void {
  checkBuffers(gpu, graphBuffers(model, shape), o);
}

/** `checkModelFits` of a loaded model's forward pass (eval, generate): `batch` x `L` positions. */
export function checkForwardFits(
  gpu: BufferLimits,
  m: { model: ModelConfig; phd: PhdConfig; spec: AttentionSpec },
  shape: { batch: number; L: number; names: { batch: string; L: string } },
): void {
  checkModelFits(gpu, m.model, {
    ...shape,
    K: m.spec.K,
    training: false,
    embedTables: embeddingTables(m.phd),
  });
}

/**
 * The most positions (prompt plus new tokens) one sequence of a batch of `seqs` can decode with
 * the KV cache in one storage binding per layer, from the decode's retention plan (`plan`): the
 * copies kept for the whole sequence cost a slot per position each, the windowed copies at most
 * their `positions`, and a step admits K keys before freeing; the cache grows by doubling.
 */
export function maxDecodePositions(
  gpu: BufferLimits,
  model: ModelConfig,
  plan: RetentionPlan,
  seqs: number,
): number {
  const max = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const width = model.num_key_value_heads * headDim(model);
  // Slots grow by doubling, so only a power of two below the binding is sure to be allocatable.
  const slots = 2 ** Math.floor(Math.log2(Math.max(1, max / (seqs * width * 4))));
  const kept = plan.perCopy.filter((c) => c.kind === "all").length;
  const window = plan.perCopy.reduce((a, c) => a + (c.kind === "all" ? 0 : c.positions), plan.K);
  if (kept === 0) return window <= slots ? Number.MAX_SAFE_INTEGER : 0;
  return Math.max(0, Math.floor((slots - window) / kept));
}
