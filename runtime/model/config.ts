/**
 * Training configuration: the `model` (Hugging Face Llama names), `phd`, `train` and `data`
 * sections of a config file, their defaults, validation that names the bad field and what it
 * expects, and how a spec and its overrides (`phd.K`, `phd.params`, `phd.positions`) become the
 * spec a run trains (`specWithOverrides`, `phdOf`). Loading a spec file is the host's job
 * (runtime/host/config_file.ts).
 */
import { PRESETS } from "../../dsl/presets.ts";
import { type AttentionSpec, respec } from "../../dsl/spec.ts";

/** The network (docs/DESIGN.md 1.3), with Hugging Face Llama field names. */
export interface ModelConfig {
  /** Token ids the model embeds and predicts (the tokenizer's vocabulary). */
  vocab_size: number;
  /** Residual stream width: `num_attention_heads` x head dim, the head dim a multiple of 4. */
  hidden_size: number;
  /** Width of the SwiGLU MLP's hidden layer. */
  intermediate_size: number;
  /** Decoder layers. */
  num_hidden_layers: number;
  /** Query heads. */
  num_attention_heads: number;
  /** Key/value heads; divides `num_attention_heads` (grouped-query attention). */
  num_key_value_heads: number;
  /** RoPE base (> 1; default 10000). */
  rope_theta: number;
  /** RMSNorm epsilon, in (0, 1) (default 1e-5). */
  rms_norm_eps: number;
  /** Whether the LM head reuses the token embedding table (default false). */
  tie_word_embeddings: boolean;
}

/** The vocabulary sizes a trained BPE may have: 256 bytes, the separator and at least one merge. */
export const BPE_MIN = 258;
export const BPE_MAX = 65536;

/**
 * The PHD expansion and its mask. Without `spec`: the preset `variant` with K, W, C and positions
 * (the config's defaults where not given). With `spec` (a preset name or a `.ts` file exporting an
 * AttentionSpec, relative to the config file): that spec with its own K, parameters and positions,
 * overridden only by what the section states (`K`, `positions`, `params`, and `W`/`C` as
 * shorthands of `params`); once resolved, every field holds the spec's value (`phdOf`).
 */
export interface PhdConfig {
  /** Copies per token (1 = vanilla). */
  K: number;
  /** A preset name; for a spec file, the spec's base name (informative). */
  variant: string;
  /** Window in hidden tokens (the `W` parameter of the windowed presets; default 16). */
  W: number;
  /** Chunk in positions (the `C` parameter of `phd-cswa`; default 32). */
  C: number;
  /** Position ids of the copies: `shared` (p) or `flattened` (p*K + c). */
  positions: "shared" | "flattened";
  /** A preset name or the path of a `.ts` spec file. */
  spec?: string;
  /** Spec parameters (numbers) and tables (arrays of starts), overriding the spec's. */
  params?: Record<string, number | number[]>;
  /**
   * Input embedding tables. `shared` (default, the paper): every copy of position p reads
   * embed(x_p). `per-copy` (Sequential Hidden Decoding style): copy c reads its own table, rows
   * `c·V .. (c+1)·V - 1` of `model.embed_tokens.weight` (copy 0 is the original table, the one a
   * tied head shares); K times the embedding parameters, no other cost (docs/DESIGN.md 1.3).
   * Absent means shared, and stays absent, so configs, checkpoints and stored experiment runs of
   * shared-table models read as before the option existed.
   */
  embeddings?: "shared" | "per-copy";
}

/** Tokenizer choice: UTF-8 bytes, a `tokenizer.json` file, or a byte-level BPE trained on the text. */
export type TokenizerChoice = "bytes" | string | { bpe: number };

/**
 * Training text. `train` empty: the Brown corpus (its fixed split, runtime/data/batches.ts).
 * Otherwise `train` (and `val`) are files, folders or globs (or lists of them) of UTF-8 text (one
 * document per file) or JSONL (`.jsonl`: one document per line, its `field` string). Without
 * `val`, the last `val_fraction` of the training tokens (files in sorted path order) is validation.
 * `tokens` names a token file instead (`deno task tokenize`, runtime/data/token_file.ts), which
 * holds both splits and its tokenizer, so `train`, `val` and `tokenizer` must stay unset.
 */
export interface DataConfig {
  /**
   * A token file (`deno task tokenize`). Absent unless given, so configs, checkpoints and stored
   * experiment runs read as before the option existed.
   */
  tokens?: string;
  /** Training text: files, folders or globs, or a list of them; empty: the Brown corpus. */
  train: string | string[];
  /** Validation text, as `train`; empty: the last `val_fraction` of the training tokens. */
  val: string | string[];
  /** Share of the training tokens held out for validation when `val` is empty, in (0, 1). */
  val_fraction: number;
  /** The JSONL field holding a document's text. */
  field: string;
  /** The tokenizer (default `"bytes"`). */
  tokenizer: TokenizerChoice;
}

/** Optimisation and schedule. */
export interface TrainConfig {
  /** Optimiser steps of the run. */
  steps: number;
  /** Sequences per step. */
  batch_size: number;
  /** Positions per sequence (the expanded sequence has K times as many tokens). */
  seq_len: number;
  /** Peak AdamW learning rate, in (0, 1]. */
  lr: number;
  /** Steps of linear warmup to `lr`. */
  warmup: number;
  /** After warmup: cosine decay to `lr * min_lr_ratio` at `steps`, or constant `lr`. */
  schedule: "cosine" | "constant";
  /** Final learning rate of the cosine schedule as a fraction of lr. */
  min_lr_ratio: number;
  /** AdamW decoupled weight decay, in [0, 1]; applied to matrices only (not RMSNorm weights). */
  weight_decay: number;
  /** AdamW first-moment decay, in [0, 1). */
  beta1: number;
  /** AdamW second-moment decay, in [0, 1). */
  beta2: number;
  /** Largest global L2 norm of the gradients (they are scaled down beyond it); 0: no clipping. */
  grad_clip: number;
  /** Seed of the parameter initialisation and the training batches. */
  seed: number;
  /** Validation every this many steps (0: only before and after). */
  eval_every: number;
  /** Validation batches per evaluation. */
  eval_batches: number;
  /** Loss read back from the GPU every this many steps (each readback costs ~10 ms in Deno). */
  log_every: number;
  /** A checkpoint (model + state, one unit) every this many steps (0: only at the end). */
  save_every: number;
  /** A checkpoint also when this many seconds passed since the last one (0: no time trigger). */
  save_every_seconds: number;
  /** Periodic checkpoints kept (the oldest beyond this are removed after each save). */
  keep_last: number;
}

/** A whole config file. */
export interface Config {
  /** The network. */
  model: ModelConfig;
  /** The PHD expansion and its attention spec. */
  phd: PhdConfig;
  /** Optimisation, schedule, evaluation and checkpoints. */
  train: TrainConfig;
  /** Training text and tokenizer. */
  data: DataConfig;
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
    save_every: 50,
    save_every_seconds: 600,
    keep_last: 3,
  },
  data: { train: "", val: "", val_fraction: 0.05, field: "text", tokenizer: "bytes" },
};

/**
 * The demo's recipe (`deno task demo`), chosen by measurement (bench/demo_recipe.ts; table in
 * bench/RESULTS.md, Demo): trained to a time budget, so `train.steps` is only what `--steps`
 * replaces. Kept apart from `DEFAULT_CONFIG`, which experiments and tests build on.
 */
export const DEMO_CONFIG: Config = {
  ...DEFAULT_CONFIG,
  model: { ...DEFAULT_CONFIG.model },
  phd: { ...DEFAULT_CONFIG.phd },
  // 8 x 128 rather than 16 x 64 bytes a step: a little higher validation loss in the same time
  // (2.02 vs 1.96) for a context that holds the prompt and most of the continuation, whose words
  // then stay words (74% vs 62% found in Brown). No periodic checkpoints or validations: minutes
  // of training need neither, and both cost steps.
  train: { ...DEFAULT_CONFIG.train, batch_size: 8, seq_len: 128, eval_every: 0, save_every: 0 },
  data: { ...DEFAULT_CONFIG.data },
};

/** Fields whose type is checked by `checkConfig` rather than by the default's type. */
const FREE_FIELDS = new Set([
  "phd.spec",
  "phd.embeddings",
  "phd.params",
  "data.train",
  "data.val",
  "data.tokenizer",
  "data.tokens",
]);

type Section = keyof Config;

/**
 * Merges a parsed config file over the defaults and checks every field. Throws one line naming
 * the field, what it expects and what came.
 */
export function parseConfig(raw: unknown): Config {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TypeError("config must be a JSON object with sections model, phd, train, data");
  }
  const out = structuredClone(DEFAULT_CONFIG) as unknown as Record<
    Section,
    Record<string, unknown>
  >;
  for (const [section, value] of Object.entries(raw)) {
    // Own keys only: "__proto__" or "constructor" must not reach Object.prototype.
    if (!Object.hasOwn(out, section)) {
      throw new TypeError(
        `config has an unknown section "${section}" (expected model, phd, train, data)`,
      );
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new TypeError(`config.${section} must be an object`);
    }
    for (const [k, v] of Object.entries(value)) {
      if (FREE_FIELDS.has(`${section}.${k}`)) {
        out[section as Section][k] = structuredClone(v);
        continue;
      }
      const fields = out[section as Section];
      const want = Object.hasOwn(fields, k) ? fields[k] : undefined;
      if (want === undefined) {
        const known = Object.keys(out[section as Section]).join(", ");
        throw new TypeError(`config.${section} has an unknown field "${k}" (known: ${known})`);
      }
      if (typeof v !== typeof want) {
        throw new TypeError(
          `config.${section}.${k} must be a ${typeof want}, got ${JSON.stringify(v)}`,
        );
      }
      // JSON has no NaN or Infinity, but 1e400 parses to Infinity.
      if (typeof v === "number" && !Number.isFinite(v)) {
        throw new RangeError(`config.${section}.${k} must be a finite number, got ${v}`);
      }
      fields[k] = v;
    }
  }
  const c = out as unknown as Config;
  checkConfig(c);
  return c;
}

function positiveInt(path: string, v: number, min = 1) {
  if (!Number.isSafeInteger(v) || v < min) {
    throw new RangeError(`${path} must be an integer >= ${min}, got ${v}`);
  }
}

/** A number in `[lo, hi]` (ends excluded where `open` says); NaN and infinities fail. */
function inRange(path: string, v: number, lo: number, hi: number, open: "" | "lo" | "hi" | "both") {
  const okLo = open === "lo" || open === "both" ? v > lo : v >= lo;
  const okHi = open === "hi" || open === "both" ? v < hi : v <= hi;
  if (!(Number.isFinite(v) && okLo && okHi)) {
    const l = open === "lo" || open === "both" ? "(" : "[";
    const h = open === "hi" || open === "both" ? ")" : "]";
    throw new RangeError(`${path} must be in ${l}${lo}, ${hi}${h}, got ${v}`);
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
  inRange("config.model.rms_norm_eps", m.rms_norm_eps, 0, 1, "both");
  // theta <= 1 makes every RoPE frequency >= 1 rad per position: no slow channels.
  inRange("config.model.rope_theta", m.rope_theta, 1, Number.MAX_VALUE, "lo");
  positiveInt("config.phd.K", p.K);
  positiveInt("config.phd.W", p.W);
  positiveInt("config.phd.C", p.C);
  if (p.spec !== undefined && (typeof p.spec !== "string" || p.spec === "")) {
    throw new TypeError(
      `config.phd.spec must be a preset name or a .ts file path, got ${JSON.stringify(p.spec)}`,
    );
  }
  if (p.params !== undefined) checkParams(p.params);
  if (p.spec === undefined && !(p.variant in PRESETS)) {
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
  if (p.embeddings !== undefined && p.embeddings !== "shared" && p.embeddings !== "per-copy") {
    throw new RangeError(
      `config.phd.embeddings must be "shared" or "per-copy", got ${JSON.stringify(p.embeddings)}`,
    );
  }
  for (
    const k of ["steps", "batch_size", "seq_len", "eval_batches", "log_every", "keep_last"] as const
  ) {
    positiveInt(`config.train.${k}`, t[k]);
  }
  for (const k of ["seed", "warmup", "eval_every", "save_every"] as const) {
    positiveInt(`config.train.${k}`, t[k], 0);
  }
  inRange("config.train.save_every_seconds", t.save_every_seconds, 0, Number.MAX_VALUE, "");
  // AdamW moves each weight by about lr per step: above 1 every step overshoots.
  inRange("config.train.lr", t.lr, 0, 1, "lo");
  if (t.schedule !== "cosine" && t.schedule !== "constant") {
    throw new RangeError(
      `config.train.schedule must be "cosine" or "constant", got "${t.schedule}"`,
    );
  }
  for (const k of ["beta1", "beta2"] as const) inRange(`config.train.${k}`, t[k], 0, 1, "hi");
  inRange("config.train.min_lr_ratio", t.min_lr_ratio, 0, 1, "");
  inRange("config.train.weight_decay", t.weight_decay, 0, 1, "");
  inRange("config.train.grad_clip", t.grad_clip, 0, Number.MAX_VALUE, "");
  checkData(c.data);
}

function checkParams(params: unknown): void {
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new TypeError(`config.phd.params must be an object like {"W": 8}`);
  }
  for (const [k, v] of Object.entries(params)) {
    const ok = Array.isArray(v)
      ? v.length > 0 && v.every((x) => Number.isInteger(x) && x >= 0)
      : Number.isInteger(v) && (v as number) >= 0;
    if (!ok) {
      throw new TypeError(
        `config.phd.params.${k} must be an integer >= 0 or an array of them (a table), got ${
          JSON.stringify(v)
        }`,
      );
    }
  }
}

function checkData(d: DataConfig): void {
  for (const k of ["train", "val"] as const) {
    const v = d[k];
    const ok = typeof v === "string" ||
      (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string" && x !== ""));
    if (!ok) {
      throw new TypeError(
        `config.data.${k} must be a path, folder or glob, or a list of them, got ${
          JSON.stringify(v)
        }`,
      );
    }
  }
  if (!(d.val_fraction > 0 && d.val_fraction < 1)) {
    throw new RangeError(`config.data.val_fraction must be in (0, 1), got ${d.val_fraction}`);
  }
  if (d.field === "") throw new TypeError("config.data.field must name a JSONL field");
  if (d.tokens !== undefined && (typeof d.tokens !== "string" || d.tokens === "")) {
    throw new TypeError(
      `config.data.tokens must be a token file's path, got ${JSON.stringify(d.tokens)}`,
    );
  }
  if (d.tokens !== undefined && (d.train !== "" || d.val !== "" || d.tokenizer !== "bytes")) {
    throw new TypeError(
      "config.data.tokens (a token file) holds the text and its tokenizer: drop data.train, " +
        "data.val and data.tokenizer (--data, --tokenizer)",
    );
  }
  const t = d.tokenizer as unknown;
  const bpe = typeof t === "object" && t !== null && !Array.isArray(t) &&
    Object.keys(t).join() === "bpe";
  if (bpe) {
    const n = (t as { bpe: unknown }).bpe;
    if (!Number.isInteger(n) || (n as number) < BPE_MIN || (n as number) > BPE_MAX) {
      throw new RangeError(
        `config.data.tokenizer {"bpe": N} needs an integer N in [${BPE_MIN}, ${BPE_MAX}] (256 ` +
          `bytes, the separator and at least one merge), got ${JSON.stringify(n)}`,
      );
    }
  } else if (typeof t !== "string" || t === "") {
    throw new TypeError(
      `config.data.tokenizer must be "bytes", a tokenizer.json path or {"bpe": N}, got ${
        JSON.stringify(t)
      }`,
    );
  }
}

/** What a run may state about its spec beyond choosing it: K, positions, parameters, tables. */
export interface SpecOverridesConfig {
  /** Copies per token. Default: the spec's. */
  K?: number;
  /** Position-id scheme. Default: the spec's. */
  positions?: PhdConfig["positions"];
  /** Numbers are parameters; arrays are tables (sorted starts). */
  params?: Record<string, number | number[]>;
}

/**
 * A spec with a config's overrides applied. A parameter or table the spec does not have is one
 * line naming the spec's own.
 */
export function specWithOverrides(base: AttentionSpec, o: SpecOverridesConfig): AttentionSpec {
  const params: Record<string, number> = {}, tables: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(o.params ?? {})) {
    if (Array.isArray(v)) tables[k] = v;
    else params[k] = v;
  }
  for (const k of [...Object.keys(params), ...Object.keys(tables)]) {
    if (!(k in base.params) && !(k in base.tables)) {
      const known = [...Object.keys(base.params), ...Object.keys(base.tables)].join(", ");
      throw new RangeError(
        `spec "${base.baseName}" has no parameter ${k} (it has: ${known || "none"})`,
      );
    }
  }
  const same = (o.K === undefined || o.K === base.K) && Object.keys(params).length === 0 &&
    Object.keys(tables).length === 0;
  const spec = same ? base : respec(base, { K: o.K, params, tables });
  return o.positions && o.positions !== spec.positions ? { ...spec, positions: o.positions } : spec;
}

/** Input embedding tables of a model: K with per-copy embeddings, else 1. */
export function embeddingTables(p: Pick<PhdConfig, "K" | "embeddings">): number {
  return p.embeddings === "per-copy" ? p.K : 1;
}

/**
 * The resolved `phd` section of a spec: every field holds the spec's value (and `embeddings`,
 * which is the model's, not the spec's, the given one when given).
 */
export function phdOf(
  spec: AttentionSpec,
  ref: string,
  embeddings?: PhdConfig["embeddings"],
): PhdConfig {
  return {
    K: spec.K,
    variant: ref in PRESETS ? ref : spec.baseName,
    W: spec.params.W ?? DEFAULT_CONFIG.phd.W,
    C: spec.params.C ?? DEFAULT_CONFIG.phd.C,
    positions: spec.positions,
    spec: ref,
    params: { ...spec.params, ...structuredClone(spec.tables) as Record<string, number[]> },
    ...(embeddings === undefined ? {} : { embeddings }),
  };
}

/**
 * The attention spec of a `phd` section whose spec is a preset: the preset with K, W, C,
 * `params` and positions applied. A spec file must be loaded by the host
 * (runtime/host/config_file.ts `loadRunConfig`), which hands the spec object to the trainer.
 */
export function configSpec(p: PhdConfig): AttentionSpec {
  const ref = p.spec ?? p.variant;
  const preset = PRESETS[ref];
  if (!preset) {
    throw new RangeError(
      `phd.spec "${ref}" is not a preset: load the spec file (runtime/host/config_file.ts) and ` +
        `pass the spec object`,
    );
  }
  const base = preset();
  const params: Record<string, number | number[]> = {};
  if ("W" in base.params) params.W = p.W;
  if ("C" in base.params) params.C = p.C;
  return specWithOverrides(base, {
    K: p.K,
    positions: p.positions,
    params: { ...params, ...p.params },
  });
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
