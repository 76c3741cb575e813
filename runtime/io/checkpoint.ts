/**
 * Checkpoints (docs/DESIGN.md 4) as bytes: the model file (Hugging Face Llama tensor names, F32,
 * per-copy embeddings stacked in `model.embed_tokens.weight` `[K·V, C]`; `__metadata__` with
 * config, phd — holding the serialised spec, `phd.mask_spec`, so a reader rebuilds any spec without
 * its source file — and tokenizer: `bytes` or an embedded tokenizer.json,
 * runtime/data/tokenizer.ts) and the training-state sibling (AdamW moments `m.<name>` / `v.<name>`,
 * and in `__metadata__` the step, data position and the whole training config, so a resumed run
 * continues exactly). A training checkpoint is one unit of two files: both carry the same `unit` id
 * and `step`, and `checkUnit` refuses a pair that disagrees (a save interrupted between the two
 * files, or files of two runs). No non-finite value is ever encoded or accepted: a NaN weight names
 * its tensor. Pure: the host layer reads and writes the files.
 */
import { type AttentionSpec } from "../../dsl/spec.ts";
import { specFromJson, specToJson } from "../../dsl/serial.ts";
import {
  type Config,
  configSpec,
  embeddingTables,
  type ModelConfig,
  parseConfig,
  type PhdConfig,
} from "../model/config.ts";
import { fromF16Bits } from "../gpu/resources.ts";
import { paramShapes } from "../model/params.ts";
import {
  checkpointMetadata,
  decodeSafetensors,
  encodeSafetensors,
  parseCheckpointMetadata,
  type Tensor,
} from "./safetensors.ts";
import type { TrainingState } from "../train/trainer.ts";

/** A loaded model checkpoint. */
export interface Checkpoint {
  /** The network's config. */
  model: ModelConfig;
  /** The PHD section it was trained with. */
  phd: PhdConfig;
  /**
   * The mask spec the checkpoint was trained with: rebuilt from `phd.mask_spec`, or for files
   * written before it was stored, the preset of `phd.variant`.
   */
  spec: AttentionSpec;
  /** `__metadata__.tokenizer`: `bytes`, or a tokenizer's `metadata()` (runtime/data/tokenizer.ts). */
  tokenizer: string;
  /** Positions per sequence it was trained on (`__metadata__.context`), when recorded. */
  context?: number;
  /** Weights by Hugging Face Llama tensor name (`paramShapes`). */
  params: Record<string, Float32Array>;
  /** Training steps behind these weights, when written by training (`__metadata__.step`). */
  step?: number;
  /** Id shared with the training-state file of the same save (`__metadata__.unit`). */
  unit?: string;
}

/** What saving needs: a checkpoint whose spec defaults to the preset of `phd`. */
export type CheckpointInput = Omit<Checkpoint, "spec"> & { spec?: AttentionSpec };

/**
 * The first non-finite value of a tensor, as words for an error (`NaN at index 3 of 4096`), or
 * undefined when every value is finite.
 */
export function firstNonFinite(data: ArrayLike<number>): string | undefined {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) return `${data[i]} at index ${i} of ${data.length}`;
  }
  return undefined;
}

/** The parameter shapes of a model and its `phd` section (per-copy tables stack in the embedding). */
function modelShapes(model: ModelConfig, phd: PhdConfig): Map<string, number[]> {
  return paramShapes(model, { embedTables: embeddingTables(phd) });
}

/** The model file's bytes; refuses non-finite weights (a diverged run must not be saved). */
export function encodeCheckpoint(c: CheckpointInput): Uint8Array {
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of modelShapes(c.model, c.phd)) {
    const data = c.params[name];
    if (!data) throw new Error(`cannot save: parameter "${name}" is missing`);
    const bad = firstNonFinite(data);
    if (bad) throw new RangeError(`cannot save: parameter "${name}" holds ${bad}`);
    tensors.set(name, { dtype: "F32", shape, data });
  }
  const spec = c.spec ?? configSpec(c.phd);
  if (spec.K !== c.phd.K) {
    throw new Error(`cannot save: spec "${spec.name}" has K = ${spec.K}, phd.K is ${c.phd.K}`);
  }
  const meta = checkpointMetadata({
    config: c.model,
    phd: { ...c.phd, source: spec.source, mask_spec: specToJson(spec) },
    tokenizer: c.tokenizer,
  });
  // "format": "pt" is what Hugging Face's loader asks of a safetensors file's metadata.
  const extra: Record<string, string> = { format: "pt" };
  if (c.context) extra.context = String(c.context);
  if (c.step !== undefined) extra.step = String(c.step);
  if (c.unit !== undefined) extra.unit = c.unit;
  return encodeSafetensors(tensors, { ...meta, ...extra });
}

/**
 * Parses a model file; throws one line when it is not a checkpoint of this format (bad bytes,
 * missing metadata or tensors, wrong shapes). F16 tensors are widened to f32.
 */
export function decodeCheckpoint(bytes: Uint8Array): Checkpoint {
  const st = decodeSafetensors(bytes);
  const meta = parseCheckpointMetadata(st.metadata);
  const { source: _, mask_spec, ...phdFields } = meta.phd;
  const defaults = parseConfig({ model: meta.config, phd: phdFields });
  const model = defaults.model, phd = defaults.phd;
  const params: Record<string, Float32Array> = {};
  for (const [name, shape] of modelShapes(model, phd)) {
    const t = st.tensors.get(name);
    if (!t) throw new Error(`checkpoint lacks tensor "${name}"`);
    if (t.shape.join(",") !== shape.join(",")) {
      throw new Error(
        `checkpoint tensor "${name}" has shape [${t.shape}], the config needs [${shape}]`,
      );
    }
    params[name] = t.dtype === "F32" ? t.data : fromF16Bits(t.data);
    const bad = firstNonFinite(params[name]);
    if (bad) {
      throw new RangeError(
        `tensor "${name}" holds ${bad} (a diverged run?): use an earlier checkpoint`,
      );
    }
  }
  const md = st.metadata;
  const context = md.context ? metaInt(md.context, "context", 1) : undefined;
  const step = md.step !== undefined ? metaInt(md.step, "step", 0) : undefined;
  let spec: AttentionSpec;
  try {
    spec = mask_spec ? specFromJson(mask_spec) : configSpec(phd);
  } catch (e) {
    throw new Error(`its attention spec cannot be rebuilt: ${(e as Error).message}`);
  }
  const ck: Checkpoint = { model, phd, spec, tokenizer: meta.tokenizer, context, params };
  if (step !== undefined) ck.step = step;
  if (md.unit !== undefined) ck.unit = md.unit;
  return ck;
}

function metaInt(v: string, key: string, min: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min) {
    throw new RangeError(`__metadata__.${key} must be an integer >= ${min}, got "${v}"`);
  }
  return n;
}

/** A decoded training-state file: the config it was made with, the state and its unit id. */
export interface SavedState {
  /** The run's whole config. */
  config: Config;
  /** Step, batch position and AdamW moments. */
  state: TrainingState;
  /** Id shared with the model file of the same save, when written by training. */
  unit?: string;
}

/** The training-state file's bytes; `unit` ties it to the model file of the same save. */
export function encodeTrainingState(config: Config, s: TrainingState, unit?: string): Uint8Array {
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of modelShapes(config.model, config.phd)) {
    for (const [key, data] of [[`m.${name}`, s.m[name]], [`v.${name}`, s.v[name]]] as const) {
      const bad = data && firstNonFinite(data);
      if (bad) throw new RangeError(`cannot save: optimizer moment "${key}" holds ${bad}`);
      tensors.set(key, { dtype: "F32", shape, data });
    }
  }
  const meta: Record<string, string> = {
    format: "phd-training-state-1",
    step: String(s.step),
    data: JSON.stringify(s.data),
    config: JSON.stringify(config),
  };
  if (unit !== undefined) meta.unit = unit;
  return encodeSafetensors(tensors, meta);
}

/** Parses a training-state file: the config it was made with and the state. */
export function decodeTrainingState(bytes: Uint8Array): SavedState {
  const st = decodeSafetensors(bytes), md = st.metadata;
  if (md.format !== "phd-training-state-1") {
    throw new Error("not a training-state file (no phd-training-state-1 format mark)");
  }
  const json = (k: string) => {
    try {
      return JSON.parse(md[k]);
    } catch {
      throw new SyntaxError(`__metadata__.${k} is not JSON`);
    }
  };
  const config = parseConfig(json("config"));
  const data = json("data");
  if (
    typeof data !== "object" || data === null || !Number.isSafeInteger(data.rng) ||
    !Number.isSafeInteger(data.step) || data.step < 0
  ) {
    throw new RangeError(`__metadata__.data must be {"rng": int, "step": int >= 0}`);
  }
  const m: Record<string, Float32Array> = {}, v: Record<string, Float32Array> = {};
  for (const [name, shape] of modelShapes(config.model, config.phd)) {
    for (const [table, prefix] of [[m, "m."], [v, "v."]] as const) {
      const t = st.tensors.get(prefix + name);
      if (!t || t.dtype !== "F32" || t.shape.join(",") !== shape.join(",")) {
        throw new Error(`training state lacks F32 tensor "${prefix}${name}" [${shape}]`);
      }
      const bad = firstNonFinite(t.data);
      if (bad) throw new RangeError(`optimizer moment "${prefix}${name}" holds ${bad}`);
      table[name] = t.data;
    }
  }
  const step = metaInt(md.step ?? "", "step", 0);
  const out: SavedState = {
    config,
    state: { step, data: { rng: data.rng, step: data.step }, m, v },
  };
  if (md.unit !== undefined) out.unit = md.unit;
  return out;
}

/**
 * Checks that a model file and a training-state file are one unit: same unit id, same step, same
 * model and phd sections. Throws one line saying what disagrees (a save interrupted between the
 * two files leaves a new state beside an old model).
 */
export function checkUnit(ck: Checkpoint, st: SavedState): void {
  if (ck.unit === undefined || st.unit === undefined) {
    throw new RangeError(
      "model and training state carry no unit id (not written as one checkpoint by train)",
    );
  }
  if (ck.unit !== st.unit || ck.step !== st.state.step) {
    throw new RangeError(
      `model (step ${ck.step}, unit ${ck.unit}) and training state (step ${st.state.step}, ` +
        `unit ${st.unit}) are not one checkpoint: a save was interrupted; resume from an ` +
        `earlier checkpoint of the run`,
    );
  }
  for (const k of ["model", "phd"] as const) {
    if (JSON.stringify(sorted(ck[k])) !== JSON.stringify(sorted(st.config[k]))) {
      throw new RangeError(`model and training state disagree on the ${k} section`);
    }
  }
}

function sorted(o: object): [string, unknown][] {
  return Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1);
}

/** The sibling path of a checkpoint's training state: `x.safetensors` -> `x.state.safetensors`. */
export function statePath(checkpoint: string): string {
  return checkpoint.replace(/(\.safetensors)?$/, ".state.safetensors");
}
