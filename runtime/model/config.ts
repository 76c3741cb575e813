/**
 * Training configuration: the `model` (Hugging Face Llama names), `phd` and `train` sections of a
 * config file, their defaults, and validation that names the bad field and what it expects.
 */
import { PRESETS } from "../../dsl/presets.ts";
import { type AttentionSpec, respec } from "../../dsl/spec.ts";

/** The network (DESIGN.md 1.3), with Hugging Face Llama field names. */
export interface ModelConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rope_theta: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
}

/** The PHD expansion: K copies, the mask variant (a preset name) and its parameters. */
export interface PhdConfig {
  K: number;
  variant: string;
  W: number;
  C: number;
  positions: "shared" | "flattened";
}

/** Optimisation and schedule. */
export interface TrainConfig {
  steps: number;
  batch_size: number;
  /** Positions per sequence (the expanded sequence has K times as many tokens). */
  seq_len: number;
  lr: number;
  warmup: number;
  schedule: "cosine" | "constant";
  /** Final learning rate of the cosine schedule as a fraction of lr. */
  min_lr_ratio: number;
  weight_decay: number;
  beta1: number;
  beta2: number;
  grad_clip: number;
  seed: number;
  /** Validation every this many steps (0: only before and after). */
  eval_every: number;
  /** Validation batches per evaluation. */
  eval_batches: number;
  /** Loss read back from the GPU every this many steps (each readback costs ~10 ms in Deno). */
  log_every: number;
}

/** A whole config file. */
export interface Config {
  model: ModelConfig;
  phd: PhdConfig;
  train: TrainConfig;
}

/** Defaults: the demo model, sized to train in minutes on a 2-core machine without a GPU. */
export const DEFAULT_CONFIG: Config = {
  model: {
    vocab_size: 256,
    hidden_size: 64,
    intermediate_size: 192,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rope_theta: 10000,
    rms_norm_eps: 1e-5,
    // Untied: an output table learns the bigram statistics much sooner than a tied one
    // (validation 2.79 vs 3.11 nats after 50 steps of the demo; bench/RESULTS.md).
    tie_word_embeddings: false,
  },
  phd: { K: 2, variant: "phd-cswa", W: 16, C: 32, positions: "shared" },
  train: {
    steps: 150,
    batch_size: 16,
    seq_len: 64,
    lr: 1e-2,
    warmup: 10,
    schedule: "cosine",
    min_lr_ratio: 0.1,
    weight_decay: 0.1,
    beta1: 0.9,
    beta2: 0.95,
    grad_clip: 1.0,
    seed: 1,
    eval_every: 75,
    eval_batches: 8,
    log_every: 10,
  },
};

type Section = keyof Config;

/**
 * Merges a parsed config file over the defaults and checks every field. Throws one line naming
 * the field, what it expects and what came.
 */
export function parseConfig(raw: unknown): Config {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TypeError("config must be a JSON object with sections model, phd, train");
  }
  const out = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    Section,
    Record<string, unknown>
  >;
  for (const [section, value] of Object.entries(raw)) {
    if (!(section in out)) {
      throw new TypeError(
        `config has an unknown section "${section}" (expected model, phd, train)`,
      );
    }
    if (typeof value !== "object" || value === null) {
      throw new TypeError(`config.${section} must be an object`);
    }
    for (const [k, v] of Object.entries(value)) {
      const want = out[section as Section][k];
      if (want === undefined) {
        const known = Object.keys(out[section as Section]).join(", ");
        throw new TypeError(`config.${section} has an unknown field "${k}" (known: ${known})`);
      }
      if (typeof v !== typeof want) {
        throw new TypeError(
          `config.${section}.${k} must be a ${typeof want}, got ${JSON.stringify(v)}`,
        );
      }
      out[section as Section][k] = v;
    }
  }
  const c = out as unknown as Config;
  checkConfig(c);
  return c;
}

function positiveInt(path: string, v: number, min = 1) {
  if (!Number.isInteger(v) || v < min) {
    throw new RangeError(`${path} must be an integer >= ${min}, got ${v}`);
  }
}

/** Checks the relations between fields (head sizes, GQA, schedule). */
export function checkConfig(c: Config): void {
  const m = c.model, t = c.train, p = c.phd;
  for (
    const k of [
      "vocab_size",
      "hidden_size",
      "intermediate_size",
      "num_hidden_layers",
      "num_attention_heads",
      "num_key_value_heads",
    ] as const
  ) {
    positiveInt(`config.model.${k}`, m[k]);
  }
  if (m.hidden_size % m.num_attention_heads !== 0) {
    throw new RangeError(
      `config.model.hidden_size (${m.hidden_size}) must be a multiple of num_attention_heads (${m.num_attention_heads})`,
    );
  }
  const headDim = m.hidden_size / m.num_attention_heads;
  if (headDim % 4 !== 0) {
    throw new RangeError(
      `head dim hidden_size/num_attention_heads = ${headDim} must be a multiple of 4`,
    );
  }
  if (m.num_attention_heads % m.num_key_value_heads !== 0) {
    throw new RangeError(
      `config.model.num_key_value_heads (${m.num_key_value_heads}) must divide num_attention_heads (${m.num_attention_heads})`,
    );
  }
  if (!(m.rms_norm_eps > 0) || !(m.rope_theta > 0)) {
    throw new RangeError("rms_norm_eps and rope_theta must be > 0");
  }
  positiveInt("config.phd.K", p.K);
  positiveInt("config.phd.W", p.W);
  positiveInt("config.phd.C", p.C);
  if (!(p.variant in PRESETS)) {
    throw new RangeError(
      `config.phd.variant "${p.variant}" is not a preset (known: ${
        Object.keys(PRESETS).join(", ")
      })`,
    );
  }
  if (p.positions !== "shared" && p.positions !== "flattened") {
    throw new RangeError(
      `config.phd.positions must be "shared" or "flattened", got "${p.positions}"`,
    );
  }
  for (
    const k of ["steps", "batch_size", "seq_len", "seed", "eval_batches", "log_every"] as const
  ) {
    positiveInt(`config.train.${k}`, t[k], k === "seed" ? 0 : 1);
  }
  positiveInt("config.train.warmup", t.warmup, 0);
  positiveInt("config.train.eval_every", t.eval_every, 0);
  if (!(t.lr > 0)) throw new RangeError(`config.train.lr must be > 0, got ${t.lr}`);
  if (t.schedule !== "cosine" && t.schedule !== "constant") {
    throw new RangeError(
      `config.train.schedule must be "cosine" or "constant", got "${t.schedule}"`,
    );
  }
  for (const k of ["beta1", "beta2"] as const) {
    if (!(t[k] >= 0 && t[k] < 1)) {
      throw new RangeError(`config.train.${k} must be in [0, 1), got ${t[k]}`);
    }
  }
  if (!(t.min_lr_ratio >= 0 && t.min_lr_ratio <= 1)) {
    throw new RangeError(`config.train.min_lr_ratio must be in [0, 1], got ${t.min_lr_ratio}`);
  }
  if (!(t.weight_decay >= 0) || !(t.grad_clip >= 0)) {
    throw new RangeError("weight_decay and grad_clip must be >= 0");
  }
}

/** The attention spec a config trains with: the preset with K, W, C and positions applied. */
export function configSpec(p: PhdConfig): AttentionSpec {
  const base = PRESETS[p.variant]();
  const params: Record<string, number> = {};
  if ("W" in base.params) params.W = p.W;
  if ("C" in base.params) params.C = p.C;
  const spec = respec(base, { K: p.K, params });
  return { ...spec, positions: p.positions };
}

/** Learning rate at a step: linear warm-up, then cosine decay to `min_lr_ratio * lr` (or constant). */
export function learningRate(t: TrainConfig, step: number): number {
  if (step < t.warmup) return t.lr * (step + 1) / t.warmup;
  if (t.schedule === "constant") return t.lr;
  const span = Math.max(1, t.steps - t.warmup);
  const progress = Math.min(1, (step - t.warmup) / span);
  const floor = t.lr * t.min_lr_ratio;
  return floor + (t.lr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
