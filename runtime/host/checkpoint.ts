/**
 * Checkpoint files on disk (Deno APIs): the model file and its training-state sibling, each
 * written atomically (temp file + rename), read back with one clear line when a file is missing
 * or is not a checkpoint.
 */
import { dirname, join } from "node:path";
import {
  type Checkpoint,
  type CheckpointInput,
  decodeCheckpoint,
  decodeTrainingState,
  encodeCheckpoint,
  encodeTrainingState,
  statePath,
} from "../io/checkpoint.ts";
import type { Config } from "../model/config.ts";
import type { TrainingState } from "../train/trainer.ts";
import { hfConfig } from "../io/hf_config.ts";
import { writeFileAtomic } from "./files.ts";

async function readFile(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${what} "${path}" does not exist`);
    throw new Error(`cannot read ${what} "${path}": ${(e as Error).message}`);
  }
}

/**
 * Writes the model file, the Hugging Face `config.json` in its folder (docs/DESIGN.md 4) and, with
 * `state`, its `.state.safetensors` sibling.
 */
export async function saveCheckpoint(
  path: string,
  c: CheckpointInput,
  state?: { config: Config; state: TrainingState },
): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(c));
  const config = join(dirname(path), "config.json");
  await writeFileAtomic(config, JSON.stringify(hfConfig(c), null, 2) + "\n");
  if (state) await writeFileAtomic(statePath(path), encodeTrainingState(state.config, state.state));
}

/** Reads a model file. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const bytes = await readFile(path, "checkpoint");
  try {
    return decodeCheckpoint(bytes);
  } catch (e) {
    throw new Error(`"${path}" is not a usable checkpoint: ${(e as Error).message}`);
  }
}

/** Reads the training-state sibling of a model file. */
export async function loadTrainingState(
  path: string,
): Promise<{ config: Config; state: TrainingState }> {
  const p = statePath(path);
  const bytes = await readFile(p, "training state (needed to resume)");
  try {
    return decodeTrainingState(bytes);
  } catch (e) {
    throw new Error(`"${p}" is not a usable training state: ${(e as Error).message}`);
  }
}
