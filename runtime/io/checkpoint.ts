/**
 * Checkpoints (DESIGN.md 4) as bytes: the model file (Hugging Face Llama tensor names, F32,
 * `__metadata__` with config, phd — holding the serialised spec, `phd.mask_spec`, so a reader
 * rebuilds any spec without its source file — and tokenizer: `bytes` or an embedded
 * tokenizer.json, runtime/data/tokenizer.ts) and the training-state sibling (AdamW moments
 * `m.<name>` / `v.<name>`, and in `__metadata__` the step, data position and the whole training
 * config, so a resumed run continues exactly). Pure: the host layer reads and writes the files.
 */
import { type AttentionSpec } from "../../dsl/spec.ts";
import { specFromJson, specToJson } from "../../dsl/serial.ts";
import {
  type Config,
  configSpec,
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
  model: ModelConfig;
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
  params: Record<string, Float32Array>;
}

/** What saving needs: a checkpoint whose spec defaults to the preset of `phd`. */
export type CheckpointInput = Omit<Checkpoint, "spec"> & { spec?: AttentionSpec };

/** The model file's bytes. */
export function encodeCheckpoint(c: CheckpointInput): Uint8Array {
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of paramShapes(c.model)) {
    const data = c.params[name];
    if (!data) throw new Error(`cannot save: parameter "${name}" is missing`);
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
  const all = { ...meta, format: "pt", ...(c.context ? { context: String(c.context) } : {}) };
  return encodeSafetensors(tensors, all);
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
  for (const [name, shape] of paramShapes(model)) {
    const t = st.tensors.get(name);
    if (!t) throw new Error(`checkpoint lacks tensor "${name}"`);
    if (t.shape.join(",") !== shape.join(",")) {
      throw new Error(
        `checkpoint tensor "${name}" has shape [${t.shape}], the config needs [${shape}]`,
      );
    }
    params[name] = t.dtype === "F32" ? t.data : fromF16Bits(t.data);
  }
  const context = st.metadata.context ? Number(st.metadata.context) : undefined;
  let spec: AttentionSpec;
  try {
    spec = mask_spec ? specFromJson(mask_spec) : configSpec(phd);
  } catch (e) {
    throw new Error(`its attention spec cannot be rebuilt: ${(e as Error).message}`);
  }
  return { model, phd, spec, tokenizer: meta.tokenizer, context, params };
}

/** The training-state file's bytes. */
export function encodeTrainingState(config: Config, s: TrainingState): Uint8Array {
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of paramShapes(config.model)) {
    tensors.set(`m.${name}`, { dtype: "F32", shape, data: s.m[name] });
    tensors.set(`v.${name}`, { dtype: "F32", shape, data: s.v[name] });
  }
  return encodeSafetensors(tensors, {
    format: "phd-training-state-1",
    step: String(s.step),
    data: JSON.stringify(s.data),
    config: JSON.stringify(config),
  });
}

/** Parses a training-state file: the config it was made with and the state. */
export function decodeTrainingState(bytes: Uint8Array): { config: Config; state: TrainingState } {
  const st = decodeSafetensors(bytes);
  if (st.metadata.format !== "phd-training-state-1") {
    throw new Error("not a training-state file (no phd-training-state-1 format mark)");
  }
  const config = parseConfig(JSON.parse(st.metadata.config));
  const m: Record<string, Float32Array> = {}, v: Record<string, Float32Array> = {};
  for (const name of paramShapes(config.model).keys()) {
    for (const [table, prefix] of [[m, "m."], [v, "v."]] as const) {
      const t = st.tensors.get(prefix + name);
      if (!t || t.dtype !== "F32") {
        throw new Error(`training state lacks F32 tensor "${prefix}${name}"`);
      }
      table[name] = t.data;
    }
  }
  return {
    config,
    state: { step: Number(st.metadata.step), data: JSON.parse(st.metadata.data), m, v },
  };
}

/** The sibling path of a checkpoint's training state: `x.safetensors` -> `x.state.safetensors`. */
export function statePath(checkpoint: string): string {
  return checkpoint.replace(/(\.safetensors)?$/, ".state.safetensors");
}
