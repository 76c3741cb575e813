/**
 * Checkpoint files on disk (Deno APIs): the model file and its training-state sibling, each
 * written atomically (temp file + rename), read back with one clear line when a file is missing
 * or is not a checkpoint.
 *
 * A training save is one unit of the two files (same `unit` id and step, checked on load by
 * `checkUnit`). The state is written first and the model second, so a kill between the two
 * renames leaves a new state beside an old model: a pair `loadUnit` refuses, never one that
 * resumes silently into another run. Periodic saves go to their own step-numbered units
 * (`model.step-00000050.safetensors` + `.state.safetensors`, `seriesPath`), so a kill during a save
 * never touches the previous unit; `latestUnit` picks the newest complete one and `pruneSeries`
 * keeps the last N.
 */
import { basename, dirname, join } from "node:path";
import {
  type Checkpoint,
  type CheckpointInput,
  checkUnit,
  decodeCheckpoint,
  decodeTrainingState,
  encodeCheckpoint,
  encodeTrainingState,
  type SavedState,
  statePath,
} from "../io/checkpoint.ts";
import type { Config } from "../model/config.ts";
import type { TrainingState } from "../train/trainer.ts";
import { hfConfig } from "../io/hf_config.ts";
import { removeStaleTemps, writeFileAtomic } from "./files.ts";

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
 * `state`, its `.state.safetensors` sibling as one unit (state first, then model, both tagged with a
 * fresh unit id and the state's step).
 */
export async function saveCheckpoint(
  path: string,
  c: CheckpointInput,
  state?: { config: Config; state: TrainingState },
): Promise<void> {
  const config = join(dirname(path), "config.json");
  const hf = JSON.stringify(hfConfig(c), null, 2) + "\n";
  if (!state) {
    await writeFileAtomic(path, encodeCheckpoint(c));
    await writeFileAtomic(config, hf);
    return;
  }
  const unit = crypto.randomUUID();
  // Encode both before writing either: a non-finite value refuses the save with nothing written.
  const model = encodeCheckpoint({ ...c, step: state.state.step, unit });
  const st = encodeTrainingState(state.config, state.state, unit);
  await writeFileAtomic(statePath(path), st);
  await writeFileAtomic(path, model);
  await writeFileAtomic(config, hf);
}

/**
 * Removes the temp files a killed save left beside `path`: those of the model and state files
 * (and their `.step-N` series) and of the `config.json` every save rewrites. Returns their paths.
 */
export async function removeStaleSaveTemps(path: string): Promise<string[]> {
  return [
    ...await removeStaleTemps(path),
    ...await removeStaleTemps(join(dirname(path), "config.json")),
  ];
}

/** Reads a model file. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path, "checkpoint");
  } catch (e) {
    // A run killed before its final save leaves its periodic units: name the newest.
    const series = await listSeries(path);
    const newest = series.at(-1);
    if (!newest || !/does not exist/.test((e as Error).message)) throw e;
    throw new Error(
      `checkpoint "${path}" does not exist, but its run saved step ${newest.step}: use --ckpt ` +
        `${newest.path}, or continue the run with deno task train --resume ${path}`,
    );
  }
  try {
    return decodeCheckpoint(bytes);
  } catch (e) {
    throw new Error(`"${path}" is not a usable checkpoint: ${(e as Error).message}`);
  }
}

/** Reads the training-state sibling of a model file. */
export async function loadTrainingState(path: string): Promise<SavedState> {
  const p = statePath(path);
  const bytes = await readFile(p, "training state (needed to resume)");
  try {
    return decodeTrainingState(bytes);
  } catch (e) {
    throw new Error(`"${p}" is not a usable training state: ${(e as Error).message}`);
  }
}

/** A model file and its training state, checked to be one unit. */
export interface TrainingCheckpoint {
  /** The model file's path. */
  path: string;
  /** The model file's contents. */
  checkpoint: Checkpoint;
  /** Its training-state sibling's contents (`statePath`). */
  saved: SavedState;
}

/** Reads a model file and its state and checks they are one unit (one line when not). */
export async function loadUnit(path: string): Promise<TrainingCheckpoint> {
  const checkpoint = await loadCheckpoint(path);
  const saved = await loadTrainingState(path);
  try {
    checkUnit(checkpoint, saved);
  } catch (e) {
    throw new Error(`"${path}": ${(e as Error).message}`);
  }
  return { path, checkpoint, saved };
}

/** The periodic checkpoint of `base` at `step`: `x.safetensors` -> `x.step-00000050.safetensors`. */
export function seriesPath(base: string, step: number): string {
  return base.replace(/(\.safetensors)?$/, `.step-${String(step).padStart(8, "0")}.safetensors`);
}

/** The periodic model files of `base` on disk (not their states), oldest first. */
export async function listSeries(base: string): Promise<{ step: number; path: string }[]> {
  const dir = dirname(base), stem = basename(base).replace(/\.safetensors$/, "");
  const re = new RegExp(`^${escapeRe(stem)}\\.step-(\\d{8,})\\.safetensors$`);
  const out: { step: number; path: string }[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = re.exec(e.name);
      if (e.isFile && m) out.push({ step: Number(m[1]), path: join(dir, e.name) });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.step - b.step);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Removes one unit (model first: a half-removed unit is incomplete, never mismatched). */
async function removeUnit(path: string): Promise<void> {
  for (const p of [path, statePath(path)]) {
    await Deno.remove(p).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}

/** Keeps the `keep` newest periodic units of `base` and removes the older ones. */
export async function pruneSeries(base: string, keep: number): Promise<void> {
  const all = await listSeries(base);
  for (const { path } of all.slice(0, Math.max(0, all.length - keep))) await removeUnit(path);
}

/** Removes every periodic unit of `base` (a fresh run writing to `base` owns its series). */
export async function removeSeries(base: string): Promise<number> {
  const all = await listSeries(base);
  for (const { path } of all) await removeUnit(path);
  return all.length;
}

/**
 * The newest complete, consistent unit among `base` itself and its periodic series (what
 * `--resume base` continues from after a kill). Incomplete or mismatched units are skipped and
 * reported in `skipped`; throws one line when none is usable.
 */
export async function latestUnit(
  base: string,
): Promise<TrainingCheckpoint & { skipped: string[] }> {
  const series = (await listSeries(base)).reverse();
  const skipped: string[] = [];
  let best: TrainingCheckpoint | undefined;
  const consider = async (path: string) => {
    try {
      const u = await loadUnit(path);
      if (!best || u.saved.state.step > best.saved.state.step) best = u;
    } catch (e) {
      const msg = (e as Error).message;
      if (!(path === base && /does not exist/.test(msg) && series.length > 0)) skipped.push(msg);
    }
  };
  await consider(base);
  // Newest first: the first one that loads wins; none at or below `base`'s step can.
  for (const s of series) {
    if (best && s.step <= best.saved.state.step) break;
    const before = best;
    await consider(s.path);
    if (best !== before) break;
  }
  if (!best) {
    throw new Error(skipped[0] ?? `checkpoint "${base}" does not exist`);
  }
  return { ...best, skipped };
}
