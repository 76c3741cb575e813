/**
 * Autotuning of kernel variants. A kernel family offers a named list of candidates with its safe
 * default first; candidates that break the adapter's limits are pruned before they are built, one
 * that fails to build or gives wrong numbers is disqualified, the rest are timed (warm-up, then the
 * median of several runs). Results live in an inspectable JSON cache keyed by the adapter, the Deno
 * version, a hash of the kernel source and a shape bucket; a hit does no measuring. Browser-safe:
 * reading and writing the cache file is the host layer's job (runtime/host/tune_cache.ts).
 */

/** Identity of an adapter, as part of a tuning key. */
export interface AdapterId {
  vendor: string;
  architecture: string;
  description: string;
}

/** One variant of a kernel: a name (shown to users) and the parameters that build it. */
export interface Candidate<P> {
  name: string;
  params: P;
}

/** What a tuning run found for one key. */
export interface TuneEntry {
  kernel: string;
  bucket: string;
  /** Name of the chosen candidate. */
  variant: string;
  params: unknown;
  default_ms: number;
  best_ms: number;
  /** Every candidate: its median time, or why it was pruned or disqualified. */
  trials: { name: string; ms?: number; skipped?: string }[];
  at: string;
}

/** The cache file's content. */
export interface TuneCacheData {
  version: 1;
  entries: Record<string, TuneEntry>;
}

/** An empty cache. */
export function emptyCache(): TuneCacheData {
  return { version: 1, entries: {} };
}

/** True if `x` has the cache's shape (anything else is ignored with a warning, never trusted). */
export function isTuneCache(x: unknown): x is TuneCacheData {
  if (typeof x !== "object" || x === null) return false;
  const c = x as TuneCacheData;
  if (c.version !== 1 || typeof c.entries !== "object" || c.entries === null) return false;
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

/** A shape bucket: each dimension rounded up to a power of two, e.g. `k64_m1024_n256`. */
export function shapeBucket(dims: Record<string, number>): string {
  return Object.keys(dims).sort().map((k) =>
    `${k}${2 ** Math.ceil(Math.log2(Math.max(1, dims[k])))}`
  )
    .join("_");
}

/** The cache key of a tuning result. */
export function tuneKey(
  o: { adapter: AdapterId; deno: string; kernel: string; sourceHash: string; bucket: string },
): string {
  const a = o.adapter;
  return [
    o.kernel,
    o.bucket,
    o.sourceHash,
    `deno${o.deno}`,
    `${a.vendor}/${a.architecture}/${a.description}`,
  ]
    .join("|");
}

/** How one tuning run measures and checks candidates. */
export interface TuneTask<P> {
  kernel: string;
  bucket: string;
  /** Hash of the kernel family's source (e.g. of the default candidate's WGSL). */
  sourceHash: string;
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
export interface TunerOptions {
  adapter: AdapterId;
  deno: string;
  /** Untimed runs before timing. Default 2. */
  warmup?: number;
  /** Timed runs; the median counts. Default 5. */
  runs?: number;
  /** Progress lines (e.g. `matmul k64_m1024_n256: 3/8 tile16x4`). */
  progress?: (line: string) => void;
}

/** Chooses and remembers the fastest correct variant per kernel, shape bucket and adapter. */
export class Autotuner {
  /** Candidates measured since creation (0 on a warm cache). */
  measured = 0;

  constructor(readonly cache: TuneCacheData, readonly o: TunerOptions) {}

  /** The key of a task on this adapter. */
  key(task: { kernel: string; bucket: string; sourceHash: string }): string {
    return tuneKey({ ...task, adapter: this.o.adapter, deno: this.o.deno });
  }

  /** The tuned entry for a task, if any (no measuring). */
  lookup(task: { kernel: string; bucket: string; sourceHash: string }): TuneEntry | undefined {
    return this.cache.entries[this.key(task)];
  }

  /** The parameters to use: the tuned candidate if known, else the default (never measures). */
  choose<P>(task: Pick<TuneTask<P>, "kernel" | "bucket" | "sourceHash" | "candidates">): P {
    const e = this.lookup(task);
    return (e && task.candidates.find((c) => c.name === e.variant)?.params) ??
      task.candidates[0].params;
  }

  /** Tunes a task unless the cache has it; returns its entry. */
  async tune<P>(task: TuneTask<P>): Promise<TuneEntry> {
    const cached = this.lookup(task);
    if (cached) return cached;
    const trials: TuneEntry["trials"] = [];
    const warmup = this.o.warmup ?? 2, runs = this.o.runs ?? 5;
    let best: { c: Candidate<P>; ms: number } | undefined;
    let defaultMs = NaN;
    for (const [i, c] of task.candidates.entries()) {
      this.o.progress?.(
        `${task.kernel} ${task.bucket}: ${i + 1}/${task.candidates.length} ${c.name}`,
      );
      const why = task.prune?.(c.params);
      if (why) {
        trials.push({ name: c.name, skipped: `pruned: ${why}` });
        continue;
      }
      let ms: number;
      try {
        if (!(await task.check(c.params))) {
          trials.push({ name: c.name, skipped: "disqualified: wrong numbers" });
          continue;
        }
        for (let w = 0; w < warmup; w++) await task.time(c.params);
        const times: number[] = [];
        for (let r = 0; r < runs; r++) times.push(await task.time(c.params));
        ms = median(times);
      } catch (e) {
        trials.push({
          name: c.name,
          skipped: `disqualified: ${(e as Error).message.split("\n")[0]}`,
        });
        continue;
      }
      this.measured++;
      trials.push({ name: c.name, ms });
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

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
