/**
 * Reading a config file (Deno APIs) and resolving what it names: JSON (a UTF-8 byte-order mark
 * allowed) parsed and checked by `parseConfig`, command-line overrides applied on top, paths (spec
 * file, data, token file, tokenizer) resolved against the config file's folder (flags' paths
 * against the working directory), and the spec loaded (a preset, or a `.ts` file) with `phd.K`,
 * `phd.positions` and `phd.params` applied. Every problem is one line, naming the file where there
 * is one.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import type { AttentionSpec } from "../../dsl/spec.ts";
import {
  type Config,
  configSpec,
  DEFAULT_CONFIG,
  parseConfig,
  type PhdConfig,
  phdOf,
  specWithOverrides,
} from "../model/config.ts";
import { isSpecPath, loadSpecRef } from "./spec_file.ts";
import { parseJson } from "../io/json.ts";

/** What flags may override (paths relative to the working directory). */
export interface RunOverrides {
  /** A preset name or a spec file. */
  spec?: string;
  /** Copies per token (`phd.K`). */
  K?: number;
  /** Spec parameters (numbers) and tables (arrays). */
  params?: Record<string, number | number[]>;
  /** Optimiser steps (`train.steps`). */
  steps?: number;
  /** Peak learning rate (`train.lr`). */
  lr?: number;
  /** Sequences per step (`train.batch_size`). */
  batch_size?: number;
  /** Positions per sequence (`train.seq_len`). */
  seq_len?: number;
  /** Training text: files, folders or globs (replaces `data.train`). */
  data?: string[];
  /** `"bytes"`, a tokenizer.json path or `{ bpe: N }` (replaces `data.tokenizer`). */
  tokenizer?: Config["data"]["tokenizer"];
  /** Seconds a spec file may take to load (not a config field). */
  specTimeout?: number;
  /** A token file (replaces `data.tokens`). */
  tokens?: string;
}

/** A resolved run: the checked config (its `phd` section resolved) and the spec it trains. */
export interface RunConfig {
  /** The checked config, its `phd` section resolved. */
  config: Config;
  /** The attention spec the run trains, overrides applied. */
  spec: AttentionSpec;
  /**
   * The files the run reads, by the flag or field that named them (runtime/host/outputs.ts keeps
   * outputs off them); data entries are patterns (`runInputs` expands them).
   */
  inputs: RunInput[];
}

/** A file (or, for data, a pattern) a run reads. */
export interface RunInput {
  /** The file read, or for data a pattern (see `pattern`). */
  path: string;
  /** The flag or config field that named it, e.g. `--spec` or `data.train`. */
  flag: string;
  /** A data pattern: a file, folder or glob. */
  pattern?: boolean;
}

type Raw = Record<string, Record<string, unknown>>;

async function readRaw(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`config file "${path}" does not exist`);
    throw new Error(`cannot read config file "${path}": ${(e as Error).message}`);
  }
  // Editors on Windows save UTF-8 with a byte-order mark; JSON.parse refuses it.
  return parseJson(text.replace(/^\uFEFF/, ""), `config file "${path}"`);
}

const abs = (base: string, p: string) => isAbsolute(p) ? p : resolve(base, p);

/**
 * Reads a config file (none: the defaults), applies `over`, loads the spec and resolves paths.
 * Throws one line naming the problem.
 */
export async function loadRunConfig(
  path: string | undefined,
  over: RunOverrides = {},
): Promise<RunConfig> {
  const raw = path ? await readRaw(path) : {};
  return await resolveRunConfig(raw, {
    base: path ? dirname(resolve(path)) : Deno.cwd(),
    file: path,
    over,
  });
}

/**
 * A config object (the sections of a config file) resolved as `loadRunConfig` does: `over`
 * applied, paths in it taken relative to `base`, the spec loaded. Errors name `file` when given.
 */
export async function resolveRunConfig(
  raw: unknown,
  o: { base: string; file?: string; over?: RunOverrides },
): Promise<RunConfig> {
  const path = o.file, over = o.over ?? {}, base = o.base;
  const where = (e: unknown) =>
    new Error(path ? `${path}: ${(e as Error).message}` : (e as Error).message);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw where(new Error("config must be a JSON object with sections model, phd, train, data"));
  }
  const r = structuredClone(raw) as Raw;
  for (const s of ["phd", "train", "data"]) {
    if (r[s] !== undefined && (typeof r[s] !== "object" || r[s] === null)) {
      throw where(new Error(`config.${s} must be an object`));
    }
    r[s] = { ...r[s] };
  }
  const phd = r.phd, data = r.data;
  // Paths in the file are relative to it; flags' paths are made absolute against the cwd.
  if (typeof phd.spec === "string" && isSpecPath(phd.spec)) phd.spec = abs(base, phd.spec);
  for (const k of ["train", "val"]) {
    const v = data[k];
    if (typeof v === "string" && v !== "") data[k] = abs(base, v);
    else if (Array.isArray(v)) data[k] = v.map((x) => typeof x === "string" ? abs(base, x) : x);
  }
  if (typeof data.tokens === "string" && data.tokens !== "") data.tokens = abs(base, data.tokens);
  const tokPath = (t: unknown) => typeof t === "string" && t !== "bytes";
  if (tokPath(data.tokenizer)) data.tokenizer = abs(base, data.tokenizer as string);
  const cwd = Deno.cwd();
  if (over.spec !== undefined) phd.spec = isSpecPath(over.spec) ? abs(cwd, over.spec) : over.spec;
  if (over.K !== undefined) phd.K = over.K;
  if (over.params) phd.params = { ...(phd.params as object), ...over.params };
  for (const k of ["steps", "lr", "batch_size", "seq_len"] as const) {
    if (over[k] !== undefined) r.train[k] = over[k];
  }
  if (over.data) data.train = over.data.map((p) => abs(cwd, p));
  if (over.tokens !== undefined) data.tokens = abs(cwd, over.tokens);
  if (over.tokenizer !== undefined) {
    data.tokenizer = tokPath(over.tokenizer) ? abs(cwd, over.tokenizer as string) : over.tokenizer;
  }
  let spec: AttentionSpec | undefined;
  if (phd.spec !== undefined) {
    if (typeof phd.spec !== "string" || phd.spec === "") {
      throw where(new Error("config.phd.spec must be a preset name or a .ts file path"));
    }
    let loaded: AttentionSpec;
    try {
      const K = typeof phd.K === "number" ? phd.K : undefined;
      loaded = await loadSpecRef(phd.spec, base, {
        over: K === undefined ? undefined : { K },
        timeoutS: over.specTimeout,
      });
    } catch (e) {
      throw over.spec === undefined ? where(e) : e; // a flag's spec is not the file's fault
    }
    const params = { ...(phd.params as Record<string, number | number[]> | undefined) };
    // W and C are shorthands of the parameters of that name.
    for (const k of ["W", "C"]) if (phd[k] !== undefined) params[k] = phd[k] as number;
    try {
      spec = specWithOverrides(loaded, {
        K: phd.K as number | undefined,
        positions: phd.positions as "shared" | undefined,
        params,
      });
    } catch (e) {
      throw where(e);
    }
    // phd.embeddings is checked by parseConfig below.
    const embeddings = phd.embeddings as PhdConfig["embeddings"];
    r.phd = phdOf(spec, phd.spec, embeddings) as unknown as Record<string, unknown>;
  }
  let config: Config;
  try {
    config = parseConfig(r);
    spec ??= configSpec(config.phd);
  } catch (e) {
    throw blame(e, over, where);
  }
  const inputs: RunInput[] = path ? [{ path, flag: "--config" }] : [];
  if (typeof phd.spec === "string" && isSpecPath(phd.spec)) {
    inputs.push({ path: phd.spec, flag: over.spec !== undefined ? "--spec" : "phd.spec" });
  }
  const list = (v: unknown) => typeof v === "string" ? (v === "" ? [] : [v]) : v as string[];
  for (const p of list(data.train) ?? []) {
    inputs.push({ path: p, flag: over.data ? "--data" : "data.train", pattern: true });
  }
  for (const p of list(data.val) ?? []) inputs.push({ path: p, flag: "data.val", pattern: true });
  if (typeof data.tokens === "string" && data.tokens !== "") {
    inputs.push({
      path: data.tokens,
      flag: over.tokens !== undefined ? "--tokens" : "data.tokens",
    });
  }
  if (tokPath(data.tokenizer)) {
    inputs.push({
      path: data.tokenizer as string,
      flag: over.tokenizer !== undefined ? "--tokenizer" : "data.tokenizer",
    });
  }
  return { config, spec, inputs };
}

/** The flag that set each config field a flag can set. */
const FLAG_OF: Record<string, string> = {
  "train.steps": "--steps",
  "train.lr": "--lr",
  "train.batch_size": "--batch-size",
  "train.seq_len": "--seq-len",
  "data.tokenizer": "--tokenizer",
  "data.train": "--data",
  "phd.K": "--K",
};

/**
 * A config error blamed where it came from: a field a flag set names the flag (`--lr 5: ...`),
 * anything else the config file (`where`).
 */
function blame(e: unknown, over: RunOverrides, where: (e: unknown) => Error): Error {
  const msg = (e as Error).message, field = /config\.([a-z_]+\.[A-Za-z_]+)/.exec(msg)?.[1];
  const key = field && FLAG_OF[field];
  const set: Record<string, unknown> = {
    "--steps": over.steps,
    "--lr": over.lr,
    "--batch-size": over.batch_size,
    "--seq-len": over.seq_len,
    "--tokenizer": over.tokenizer,
    "--data": over.data,
    "--K": over.K,
  };
  if (!key || set[key] === undefined) return where(e);
  return new Error(`${key} ${msg.replace(/^config\.[a-z_]+\.[A-Za-z_]+ /, "")}`);
}

/** Reads and checks a config file (one line naming the problem); its spec must be a preset. */
export async function readConfig(path: string | undefined): Promise<Config> {
  if (!path) return structuredClone(DEFAULT_CONFIG);
  return (await loadRunConfig(path)).config;
}
