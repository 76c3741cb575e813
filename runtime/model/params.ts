/**
 * The model's parameters as named tensors (llm.c's parameter table): every name and shape in
 * checkpoint order (Hugging Face Llama names, linear layers `[out, in]`, docs/DESIGN.md 4), the
 * seeded initialisation that the GPU trainer and the float64 reference both start from, and
 * `ModelParams`, the same table as one GPU buffer per tensor. Browser-safe.
 */
import { embeddingTables, type ModelConfig, type PhdConfig } from "./config.ts";
import { Rng } from "../data/rng.ts";
import { readback, storageBuffer, upload } from "../gpu/resources.ts";
import type { KernelContext } from "../gpu/kernel.ts";

/** Named parameters (or gradients), Hugging Face Llama names. */
export type Params = Record<string, Float64Array>;

/** Head dim of a config. */
export function headDim(c: ModelConfig): number {
  return c.hidden_size / c.num_attention_heads;
}

/** Number of values of a tensor shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * How many input embedding tables a model has: 1, or K with per-copy embeddings (`phd.embeddings`,
 * config.ts `embeddingTables`). The tables are stacked in `model.embed_tokens.weight`
 * `[tables·V, C]`, copy c's rows from `c·V`, so one gather with a row offset serves every copy.
 */
export interface EmbeddingOptions {
  /** Input embedding tables (1, or K for per-copy embeddings). Default 1. */
  embedTables?: number;
}

/** Every parameter's name and shape (`[out, in]` for linear layers), in checkpoint order. */
export function paramShapes(c: ModelConfig, o: EmbeddingOptions = {}): Map<string, number[]> {
  const C = c.hidden_size, d = headDim(c), H = c.num_attention_heads;
  const HKV = c.num_key_value_heads, I = c.intermediate_size, T = embedTables(o);
  const s = new Map<string, number[]>([["model.embed_tokens.weight", [T * c.vocab_size, C]]]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    s.set(p + "input_layernorm.weight", [C]);
    s.set(p + "self_attn.q_proj.weight", [H * d, C]);
    s.set(p + "self_attn.k_proj.weight", [HKV * d, C]);
    s.set(p + "self_attn.v_proj.weight", [HKV * d, C]);
    s.set(p + "self_attn.o_proj.weight", [C, H * d]);
    s.set(p + "post_attention_layernorm.weight", [C]);
    s.set(p + "mlp.gate_proj.weight", [I, C]);
    s.set(p + "mlp.up_proj.weight", [I, C]);
    s.set(p + "mlp.down_proj.weight", [C, I]);
  }
  s.set("model.norm.weight", [C]);
  if (!c.tie_word_embeddings) s.set("lm_head.weight", [c.vocab_size, C]);
  return s;
}

function embedTables(o: EmbeddingOptions): number {
  const T = o.embedTables ?? 1;
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`embedTables must be >= 1, got ${T}`);
  return T;
}

/** Initial parameters: norms 1, matrices normal(0, std) (default 0.02), from a seed. */
export function initParams(
  c: ModelConfig,
  o: { seed: number; std?: number } & EmbeddingOptions,
): Params {
  const rng = new Rng(o.seed), std = o.std ?? 0.02, out: Params = {};
  for (const [name, shape] of paramShapes(c, o)) {
    const a = new Float64Array(numel(shape));
    if (shape.length === 1) a.fill(1);
    else for (let i = 0; i < a.length; i++) a[i] = std * rng.normal();
    out[name] = a;
  }
  return out;
}

/** The parameters of a model on the device, one buffer per tensor; shared by its graphs. */
export class ModelParams {
  /** Every parameter's shape by name, in checkpoint order (`paramShapes`). */
  readonly shapes: Map<string, number[]>;
  /** One f32 storage buffer per parameter, by name. */
  readonly buffers = new Map<string, GPUBuffer>();
  /** Input embedding tables stacked in `model.embed_tokens.weight` (1, or K: per-copy). */
  readonly embedTables: number;

  /** Allocates one buffer per parameter of `config`; fill them with `upload`. */
  constructor(readonly ctx: KernelContext, readonly config: ModelConfig, o: EmbeddingOptions = {}) {
    this.embedTables = embedTables(o);
    this.shapes = paramShapes(config, o);
    for (const [name, shape] of this.shapes) {
      this.buffers.set(name, storageBuffer(ctx.gpu.device, numel(shape) * 4, name));
    }
  }

  /**
   * A saved model's parameters on the device (a decoded checkpoint has all three fields): buffers
   * of its shapes, per-copy embedding tables included, with its weights uploaded.
   */
  static loaded(
    ctx: KernelContext,
    m: {
      model: ModelConfig;
      phd: Pick<PhdConfig, "K" | "embeddings">;
      params: Record<string, ArrayLike<number>>;
    },
  ): ModelParams {
    const p = new ModelParams(ctx, m.model, { embedTables: embeddingTables(m.phd) });
    p.upload(m.params);
    return p;
  }

  /** The buffer of one parameter. */
  get(name: string): GPUBuffer {
    const b = this.buffers.get(name);
    if (!b) throw new Error(`model has no parameter "${name}"`);
    return b;
  }

  /**
   * The LM head's weight `[vocab, hidden]`: the embedding table when tied (with per-copy tables,
   * its first V rows: copy 0's).
   */
  get head(): GPUBuffer {
    return this.get(
      this.config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight",
    );
  }

  /**
   * Per-copy tables: the first table row (c·V) of each row's copy, for a spec of K copies
   * (`copyOf[r]` is row r's copy); undefined with one shared table. Throws when the tables are
   * not K.
   */
  embedRowBase(K: number, copyOf: ArrayLike<number>): Uint32Array | undefined {
    if (this.embedTables === 1) return undefined;
    if (this.embedTables !== K) {
      throw new RangeError(
        `the model has ${this.embedTables} embedding tables (per-copy): the spec must have ` +
          `K = ${this.embedTables}, not ${K}`,
      );
    }
    return Uint32Array.from(copyOf, (c) => c * this.config.vocab_size);
  }

  /** Number of parameter values. */
  get count(): number {
    let n = 0;
    for (const s of this.shapes.values()) n += numel(s);
    return n;
  }

  /**
   * Uploads every parameter as f32 (f32 or f64 host arrays, e.g. `initParams`'s; names and sizes
   * must match).
   */
  upload(params: Record<string, ArrayLike<number>>): void {
    for (const [name, shape] of this.shapes) {
      const a = params[name];
      if (!a) throw new Error(`checkpoint lacks parameter "${name}"`);
      if (a.length !== numel(shape)) {
        throw new RangeError(
          `parameter "${name}" has ${a.length} values, the config needs [${shape.join(", ")}]`,
        );
      }
      upload(this.ctx.gpu.device, this.get(name), Float32Array.from(a));
    }
  }

  /** Reads every parameter back. */
  async download(): Promise<Record<string, Float32Array>> {
    const out: Record<string, Float32Array> = {};
    for (const [name, shape] of this.shapes) {
      out[name] = new Float32Array(
        await readback(this.ctx.gpu.device, this.get(name), numel(shape) * 4),
      );
    }
    return out;
  }

  /** Frees the parameter buffers. */
  destroy(): void {
    for (const b of this.buffers.values()) b.destroy();
  }
}
