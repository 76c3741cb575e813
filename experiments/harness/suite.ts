/**
 * Experiment suites (`experiments/<name>.json`): arms that differ by a spec and config overrides,
 * trained on the same budget with several seeds. This file owns the suite format, its validation
 * (one line naming the bad field) and how an arm, a seed and a budget become one training config.
 *
 * A suite:
 *
 * ```json
 * { "name": "k-sweep", "description": "...", "baseline": "vanilla", "seeds": 3,
 *   "budget": { "tokens": 200000 }, "eval_points": 4,
 *   "base": { "train": { "batch_size": 16, "seq_len": 64 } },
 *   "arms": [
 *     { "name": "vanilla", "config": { "phd": { "K": 1, "variant": "causal" } } },
 *     { "name": "vanilla 3x tokens", "config": { "phd": { "K": 1, "variant": "causal" } },
 *       "tokens_factor": 3, "note": "equal-FLOPs control" } ],
 *   "comparisons": [{ "arm": "phd-cswa K=3", "against": "vanilla 3x tokens" }] }
 * ```
 *
 * Every arm is compared with the baseline; `comparisons` adds pairs the suite's question needs
 * (all of them corrected together, runtime/measure/stats.ts). Arms that share a `series` are
 * drawn as one line of final loss against their training tokens (the `budget` suite).
 *
 * Budgets (docs/DESIGN.md 3): `tokens` (training input positions per run; an arm's
 * `tokens_factor` multiplies it), `flops` (model training FLOPs per run: steps are chosen so every
 * arm spends the same), or `seconds` (wall time per run: steps are estimated from timed steps).
 */
import { type Config, parseConfig } from "../../runtime/model/config.ts";
import { parseTask, type Task } from "./tasks.ts";

/** One arm: a name, config overrides (sections of a config file) and budget factors. */
export interface Arm {
  name: string;
  config: Record<string, unknown>;
  /** Multiplies the suite's token budget (the "vanilla with K x the tokens" control). */
  tokens_factor: number;
  /** What the arm is for, shown in the results (e.g. "equal-FLOPs control"). */
  note?: string;
  /** The line the arm belongs to in the picture of loss against training tokens. */
  series?: string;
}

/** A comparison a suite asks for besides every arm against the baseline. */
export interface Pair {
  arm: string;
  against: string;
}

/** How much each run trains. */
export type Budget = { tokens: number } | { flops: number } | { seconds: number };

/** A parsed suite. */
export interface Suite {
  name: string;
  description: string;
  /** The arm every other is compared with. */
  baseline: string;
  seeds: number;
  budget: Budget;
  /** Validation points along each run (plus the final one). */
  eval_points: number;
  base: Record<string, unknown>;
  /** A synthetic task instead of the Brown corpus; runs then also report its accuracy. */
  task?: Task;
  arms: Arm[];
  /** Extra comparisons (each arm against the baseline is always made). */
  comparisons: Pair[];
}

/** An object of `fields` only, with a non-empty string `name`. */
function checkNamed(
  o: Record<string, unknown>,
  fields: readonly string[],
  where: string,
): asserts o is Record<string, unknown> & { name: string } {
  for (const k of Object.keys(o)) {
    if (!fields.includes(k)) fail(`${where}.${k}`, `unknown field (fields: ${fields})`);
  }
  if (typeof o.name !== "string" || !o.name) fail(`${where}.name`, "must be a non-empty string");
}

function fail(where: string, msg: string): never {
  throw new Error(`suite ${where}: ${msg}`);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function positive(where: string, x: unknown, integer: boolean): number {
  if (typeof x !== "number" || !Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x))) {
    fail(where, `must be a positive ${integer ? "integer" : "number"}, got ${JSON.stringify(x)}`);
  }
  return x;
}

/** Parses and checks a budget object (`{"tokens": N}`, `{"flops": F}` or `{"seconds": S}`). */
export function parseBudget(where: string, raw: unknown): Budget {
  if (!isObject(raw)) fail(where, `must be an object like {"tokens": 200000}`);
  const keys = Object.keys(raw);
  if (keys.length !== 1 || !["tokens", "flops", "seconds"].includes(keys[0])) {
    fail(where, `needs exactly one of "tokens", "flops", "seconds", got ${JSON.stringify(raw)}`);
  }
  const k = keys[0] as "tokens" | "flops" | "seconds";
  return { [k]: positive(`${where}.${k}`, raw[k], k === "tokens") } as Budget;
}

const SUITE_FIELDS = [
  "name",
  "description",
  "baseline",
  "seeds",
  "budget",
  "eval_points",
  "base",
  "task",
  "arms",
  "comparisons",
];
const ARM_FIELDS = ["name", "config", "tokens_factor", "note", "series"];

/**
 * Parses a suite file's JSON and checks it: every arm's config must parse (so a typo fails before
 * any training), names must be unique and the baseline must be one of them.
 */
export function parseSuite(raw: unknown, file = "suite"): Suite {
  if (!isObject(raw)) fail(file, "must be a JSON object");
  checkNamed(raw, SUITE_FIELDS, file);
  const base = raw.base ?? {};
  if (!isObject(base)) fail(`${file}.base`, "must be an object of config sections");
  if (!Array.isArray(raw.arms) || raw.arms.length === 0) {
    fail(`${file}.arms`, "must be a non-empty list");
  }
  const arms = raw.arms.map((a, i): Arm => {
    const where = `${file}.arms[${i}]`;
    if (!isObject(a)) fail(where, "must be an object");
    checkNamed(a, ARM_FIELDS, where);
    const config = a.config ?? {};
    if (!isObject(config)) fail(`${where}.config`, "must be an object of config sections");
    try {
      parseConfig(mergeSections(base, config)); // spec files are loaded by the host
    } catch (e) {
      fail(`${where} "${a.name}"`, (e as Error).message);
    }
    if (a.note !== undefined && typeof a.note !== "string") fail(`${where}.note`, "must be text");
    if (a.series !== undefined && (typeof a.series !== "string" || !a.series)) {
      fail(`${where}.series`, "must be a non-empty string");
    }
    return {
      name: a.name,
      config,
      tokens_factor: a.tokens_factor === undefined
        ? 1
        : positive(`${where}.tokens_factor`, a.tokens_factor, false),
      note: a.note as string | undefined,
      series: a.series as string | undefined,
    };
  });
  const names = new Set<string>(), files = new Set<string>();
  for (const a of arms) {
    if (names.has(a.name)) fail(`${file}.arms`, `two arms are named "${a.name}"`);
    if (files.has(slug(a.name))) {
      fail(`${file}.arms`, `arm "${a.name}" has the file name of another (${slug(a.name)})`);
    }
    names.add(a.name);
    files.add(slug(a.name));
  }
  const baseline = raw.baseline ?? arms[0].name;
  if (typeof baseline !== "string" || !names.has(baseline)) {
    fail(`${file}.baseline`, `must name an arm (${[...names].join(", ")})`);
  }
  return {
    name: raw.name,
    comparisons: parsePairs(`${file}.comparisons`, raw.comparisons ?? [], names, baseline),
    description: typeof raw.description === "string" ? raw.description : "",
    baseline,
    seeds: raw.seeds === undefined ? 3 : positive(`${file}.seeds`, raw.seeds, true),
    budget: parseBudget(`${file}.budget`, raw.budget ?? { tokens: 100_000 }),
    eval_points: raw.eval_points === undefined
      ? 4
      : positive(`${file}.eval_points`, raw.eval_points, true),
    base,
    task: raw.task === undefined ? undefined : parseTaskAt(`${file}.task`, raw.task),
    arms,
  };
}

/** The extra comparisons: pairs of two different arms, none repeated or against the baseline. */
function parsePairs(where: string, raw: unknown, names: Set<string>, baseline: string): Pair[] {
  if (!Array.isArray(raw)) fail(where, `must be a list like [{"arm": "a", "against": "b"}]`);
  const seen = new Set<string>();
  return raw.map((p, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(p) || Object.keys(p).sort().join() !== "against,arm") {
      fail(at, `must be {"arm": ..., "against": ...}, got ${JSON.stringify(p)}`);
    }
    for (const k of ["arm", "against"] as const) {
      if (typeof p[k] !== "string" || !names.has(p[k] as string)) {
        fail(`${at}.${k}`, `must name an arm (${[...names].join(", ")})`);
      }
    }
    const pair = { arm: p.arm as string, against: p.against as string };
    const key = [pair.arm, pair.against].sort().join("\n");
    if (pair.arm === pair.against) fail(at, `compares "${pair.arm}" with itself`);
    if (pair.against === baseline || pair.arm === baseline) {
      fail(at, `every arm is compared with the baseline "${baseline}" already`);
    }
    if (seen.has(key)) fail(at, `compares "${pair.arm}" and "${pair.against}" twice`);
    seen.add(key);
    return pair;
  });
}

function parseTaskAt(where: string, raw: unknown): Task {
  try {
    return parseTask(raw);
  } catch (e) {
    fail(where, (e as Error).message);
  }
}

/** Config sections of `over` merged into those of `base` (one level deep: field by field). */
export function mergeSections(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObject(v) && isObject(out[k]) ? { ...out[k] as object, ...v } : v;
  }
  return out;
}

/** The seeds of a suite run: 1, 2, ... (the seed sets both the initial weights and the batches). */
export function seedsOf(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** An arm's config sections: the suite's base, then the arm's overrides. */
export function armSections(suite: Suite, arm: Arm): Record<string, unknown> {
  return mergeSections(suite.base, arm.config);
}

/**
 * The training config of one run before its step count is set: an arm's resolved config with the
 * seed. Validation is every run's fixed windows.
 */
export function runConfig(armConfig: Config, seed: number): Config {
  const c = structuredClone(armConfig);
  c.train.seed = seed;
  c.train.eval_every = 0;
  return c;
}

/** Steps that spend a token budget with a config's batch shape (at least 1). */
export function stepsForTokens(c: Config, tokens: number): number {
  return Math.max(1, Math.round(tokens / (c.train.batch_size * c.train.seq_len)));
}

/** A file-name-safe form of an arm's name (`phd-cswa K=2` -> `phd-cswa_K-2`). */
export function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, (m) => (m.includes("=") ? "-" : "_")).replace(
    /^_+|_+$/g,
    "",
  );
}
