/**
 * The tuning engine, which knows no kernel: a family (runtime/tune/matmul.ts,
 * runtime/tune/attention.ts) hands it a `TuneTask` (a kernel name, a shape bucket, a hash of the
 * kernel source and named candidates with the safe default first), and the `Autotuner` prunes,
 * checks, times and remembers the winner in an inspectable JSON cache. Browser-safe: reading and
 * writing the cache file is the host layer's job (runtime/host/tune_cache.ts).
 *
 * ```ts
 * const tuner = new Autotuner(await loadTuneCache(), { adapter: adapterIdOf(ctx.gpu), deno });
 * const task = matmulTask(ctx, { trans: "nt", M: 2048, N: 64, inner: 64 });
 * const entry = await tuner.tune(task); // measured once, then a cache hit
 * task.destroy();
 * ```
 *
 * Implementation details (docs/DESIGN.md 6):
 * - The tuning key (`tuneKey`) is `kernel|bucket|source hash|deno version|adapter`. A bucket
 *   rounds each dimension up to a power of two (`shapeBucket`), so nearby shapes share a result;
 *   the source hash covers every candidate's WGSL, so a changed generator makes old entries
 *   misses instead of wrong answers.
 * - Candidates that break the adapter's limits are pruned before anything is built; one that
 *   throws or gives wrong numbers is disqualified; the survivors are timed in rounds (one run of
 *   each per round, after warm-up rounds) and the median counts.
 * - The cache file carries `version`; a file of another version, or whose entries lack the
 *   fields read here, is ignored with one warning (the host layer's), never trusted.
 */
import { Rng } from "../data/rng.ts";
import { median } from "../measure/stats.ts";
import type { AdapterClass, GpuContext } from "../gpu/device.ts";

/**
 * Identity of an adapter, as part of a tuning key: vendor, architecture and description name it
 * in the key; its class picks the variant space, which the families' source hashes cover
 * (`matmulKeyParts`), so a result tuned as the other class is a miss too.
 */
export interface AdapterId {
  /** `GPUAdapterInfo.vendor`, `unknown` when empty. */
  vendor: string;
  /** `GPUAdapterInfo.architecture`, possibly empty. */
  architecture: string;
  /** `GPUAdapterInfo.description`, else the context's adapter name. */
  description: string;
  /** The class whose variant space is tuned (not in the key itself: the source hashes cover it). */
  adapterClass: AdapterClass;
}

/** The identity of a context's adapter (the tuning key's adapter part). */
export function adapterIdOf(
  gpu: Pick<GpuContext, "adapter" | "adapterName" | "adapterClass">,
): AdapterId {
  const i = gpu.adapter.info;
  return {
    vendor: i.vendor || "unknown",
    architecture: i.architecture || "",
    description: i.description || gpu.adapterName,
    adapterClass: gpu.adapterClass,
  };
}

/** One variant of a kernel: a name (shown to users) and the parameters that build it. */
export interface Candidate<P> {
  /** Unique within a task; what a cache entry's `variant` names. */
  name: string;
  /** What the family builds the variant from. */
  params: P;
}

/** Named candidates of a list of parameters, the first of each name kept (the default first). */
export function uniqueCandidates<P>(list: readonly P[], name: (p: P) => string): Candidate<P>[] {
  const seen = new Set<string>();
  return list.flatMap((params) => {
    const n = name(params);
    if (seen.has(n)) return [];
    seen.add(n);
    return [{ name: n, params }];
  });
}

/** What a tuning run found for one key. */
export interface TuneEntry {
  /** The task's kernel name, e.g. `matmul:nt` or `attention:interleaved`. */
  kernel: string;
  /** The task's shape bucket (`shapeBucket`). */
  bucket: string;
  /** Name of the chosen candidate. */
  variant: string;
  /** Parameters of the chosen candidate (checked by the family before use, never trusted). */
  params: unknown;
  /** Median ms of the default (first) candidate; NaN (null in the file) if it did not run. */
  default_ms: number;
  /** Median ms of the chosen candidate. */
  best_ms: number;
  /** Every candidate: its parameters and median time, or why it was pruned or disqualified. */
  trials: { name: string; params?: unknown; ms?: number; skipped?: string }[];
  /** When it was tuned (ISO 8601). */
  at: string;
}

/**
 * The cache format's version. 2: matmul buckets name the reduction length `inner` (was `k`);
 * files of version 1 are ignored with a warning.
 */
export const TUNE_CACHE_VERSION = 2;

/** The cache file's content. */
export interface TuneCacheData {
  /** The format's version (`TUNE_CACHE_VERSION`). */
  version: typeof TUNE_CACHE_VERSION;
  /** Results by tuning key (`tuneKey`). */
  entries: Record<string, TuneEntry>;
}

/** An empty cache. */
export function emptyCache(): TuneCacheData {
  return { version: TUNE_CACHE_VERSION, entries: {} };
}

/** True if `x` has the cache's shape (anything else is ignored with a warning, never trusted). */
export function isTuneCache(x: unknown): x is TuneCacheData {
  if (typeof x !== "object" || x === null) return false;
  const c = x as TuneCacheData;
  if (c.version !== TUNE_CACHE_VERSION || typeof c.entries !== "object" || c.entries === null) {
    return false;
  }
  return Object.values(c.entries).every((e) =>
    typeof e === "object" && e !== null && typeof e.variant === "string" &&
    typeof e.best_ms === "number" && typeof e.kernel === "string"
  );
}

/** A 53-bit FNV-1a style hash of a string, in hex (kernel sources, keys). */
export function hashText(s: string): string {
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return (h2 & 0x1fffff).toString(16).padStart(6, "0") + h1.toString(16).padStart(8, "0");
}

const sourceHashes = new Map<string, string>();

/**
 * Hash of a kernel family's generated sources for one problem class `id` (e.g. a matmul form):
 * `codes` (every candidate's WGSL and whatever else is baked in) is built once per process.
 */
export function sourceHash(id: string, codes: () => readonly string[]): string {
  let h = sourceHashes.get(id);
  if (!h) {
    h = hashText(codes().join("\n//\n"));
    sourceHashes.set(id, h);
  }
  return h;
}

/** A shape bucket: each dimension rounded up to a power of two, e.g. `inner64_m1024_n256`. */
export function shapeBucket(dims: Record<string, number>): string {
  return Object.keys(dims).sort().map((k) =>
    `${k}${2 ** Math.ceil(Math.log2(Math.max(1, dims[k])))}`
  ).join("_");
}

/** What identifies a tuning result apart from the adapter and the Deno version. */
export interface TuneKeyParts {
  /** Kernel family and form, e.g. `matmul:nt` or `attention:interleaved`. */
  kernel: string;
  /** The problem's shape bucket (`shapeBucket`). */
  bucket: string;
  /** Hash of the kernel family's source (e.g. of every candidate's WGSL). */
  sourceHash: string;
}

/** Where a result was measured: the adapter and the Deno version (part of every key). */
export interface TunedOn {
  /** The adapter's identity (`adapterIdOf`). */
  adapter: AdapterId;
  /** The Deno version, e.g. `2.9.6`. */
  deno: string;
}

/** The cache key of a tuning result. */
export function tuneKey(o: TuneKeyParts & TunedOn): string {
  const a = o.adapter;
  return [
    o.kernel,
    o.bucket,
    o.sourceHash,
    `deno${o.deno}`,
    `${a.vendor}/${a.architecture}/${a.description}`,
  ].join("|");
}

/** How one tuning run measures and checks candidates. */
export interface TuneTask<P> extends TuneKeyParts {
  /** Candidates, the safe default first. */
  candidates: Candidate<P>[];
  /** Why a candidate cannot run on this adapter (limits), or undefined if it can. */
  prune?: (p: P) => string | undefined;
  /** Builds the candidate, runs it once on scratch buffers and compares with the reference. */
  check: (p: P) => Promise<boolean>;
  /** Runs the candidate once and returns milliseconds (GPU timestamps when available). */
  time: (p: P) => Promise<number>;
}

/** Options of an `Autotuner`. */
export interface TunerOptions extends TunedOn {
  /** Untimed runs before timing. Default 2. */
  warmup?: number;
  /** Timed runs; the median counts. Default 5. */
  runs?: number;
  /** Progress lines (e.g. `matmul:nt inner64_m1024_n256: 3/8 16x8 wg8x1`). */
  progress?: (line: string) => void;
}

/** Chooses and remembers the fastest correct variant per kernel, shape bucket and adapter. */
export class Autotuner {
  /** Candidates measured since creation (0 on a warm cache). */
  measured = 0;

  /** A tuner reading and adding to `cache` (in memory: saving it is the caller's job). */
  constructor(readonly cache: TuneCacheData, readonly o: TunerOptions) {}

  /** The key of a task on this adapter. */
  key(task: TuneKeyParts): string {
    return tuneKey({ ...task, adapter: this.o.adapter, deno: this.o.deno });
  }

  /** The tuned entry for a task, if any (no measuring). */
  lookup(task: TuneKeyParts): TuneEntry | undefined {
    return this.cache.entries[this.key(task)];
  }

  /** The parameters to use: the tuned candidate if known, else the default (never measures). */
  choose<P>(task: TuneKeyParts & Pick<TuneTask<P>, "candidates">): P {
    const e = this.lookup(task);
    return (e && task.candidates.find((c) => c.name === e.variant)?.params) ??
      task.candidates[0].params;
  }

  /**
   * Tunes a task unless the cache has it; returns its entry. Every candidate is pruned or checked
   * first; the survivors are then warmed up and timed in rounds (one run of each per round), so
   * a burst of load from another process slows every candidate alike rather than one.
   */
  async tune<P>(task: TuneTask<P>): Promise<TuneEntry> {
    const cached = this.lookup(task);
    if (cached) return cached;
    const warmup = this.o.warmup ?? 2, runs = this.o.runs ?? 5;
    const verdict: (string | number[])[] = [];
    const n = task.candidates.length;
    const why = (e: unknown) => `disqualified: ${(e as Error).message.split("\n")[0]}`;
    for (const [i, c] of task.candidates.entries()) {
      this.o.progress?.(`${task.kernel} ${task.bucket}: ${i + 1}/${n} ${c.name}`);
      const pruned = task.prune?.(c.params);
      if (pruned) {
        verdict.push(`pruned: ${pruned}`);
        continue;
      }
      try {
        verdict.push((await task.check(c.params)) ? [] : "disqualified: wrong numbers");
      } catch (e) {
        verdict.push(why(e));
      }
    }
    const live = () => task.candidates.flatMap((_, i) => (Array.isArray(verdict[i]) ? [i] : []));
    for (let round = 0; round < warmup + runs; round++) {
      for (const i of live()) {
        try {
          const ms = await task.time(task.candidates[i].params);
          if (round >= warmup) (verdict[i] as number[]).push(ms);
        } catch (e) {
          verdict[i] = why(e);
        }
      }
    }
    const trials: TuneEntry["trials"] = [];
    let best: { c: Candidate<P>; ms: number } | undefined;
    let defaultMs = NaN;
    for (const [i, c] of task.candidates.entries()) {
      const v = verdict[i];
      if (typeof v === "string") {
        trials.push({ name: c.name, skipped: v });
        continue;
      }
      const ms = median(v);
      this.measured++;
      trials.push({ name: c.name, params: c.params, ms });
      if (i === 0) defaultMs = ms;
      if (!best || ms < best.ms) best = { c, ms };
    }
    if (!best) {
      throw new Error(`autotune ${task.kernel} ${task.bucket}: no candidate ran correctly`);
    }
    const entry: TuneEntry = {
      kernel: task.kernel,
      bucket: task.bucket,
      variant: best.c.name,
      params: best.c.params,
      default_ms: defaultMs,
      best_ms: best.ms,
      trials,
      at: new Date().toISOString(),
    };
    this.cache.entries[this.key(task)] = entry;
    return entry;
  }
}

/**
 * The timed trials of a task's cache entry on an adapter, fastest first (what a chooser picks
 * from); parameters from the file are checked (`valid`), never trusted. Empty when not tuned.
 */
export function timedTrials<P>(
  cache: TuneCacheData,
  key: TuneKeyParts & TunedOn,
  valid: (params: unknown) => params is P,
): P[] {
  const entry = cache.entries[tuneKey(key)];
  if (!entry || !Array.isArray(entry.trials)) return [];
  return entry.trials
    .filter((t) => typeof t.ms === "number" && valid(t.params))
    .sort((x, y) => x.ms! - y.ms!)
    .map((t) => t.params as P);
}

/**
 * A seeded source of a tuning task's random operands: each call returns the next `n` values,
 * uniform in [-1, 1).
 */
export function randomOperands(seed: number): (n: number) => Float32Array {
  const rng = new Rng(seed);
  return (n) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}
