/**
 * The autotuner's cache file (Deno APIs): `.cache/autotune.json` by default, read leniently (a
 * missing file is an empty cache; a corrupt or stale one is ignored with one warning line, never
 * trusted) and written atomically. `loadKernelChoosers(ctx)` reads it once for what a host program
 * hands the model: `GraphOptions.matmul` and `GraphOptions.attentionChooser` (`TrainerOptions`
 * `matmul` and `attention`).
 */
import { adapterIdOf, emptyCache, isTuneCache, type TuneCacheData } from "../tune/engine.ts";
import type { AttentionChooser } from "../kernels/attention.ts";
import { tunedAttentionChooser } from "../tune/attention.ts";
import { tunedMatmulChooser } from "../tune/matmul.ts";
import { gpuLimits } from "../gpu/device.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import type { MatmulChooser } from "../kernels/matmul.ts";
import { writeFileAtomic } from "./files.ts";

/** Where the cache lives unless told otherwise (relative to the working directory; gitignored). */
export const DEFAULT_TUNE_CACHE = ".cache/autotune.json";

/** The Deno version part of tuning keys. */
export function denoVersion(): string {
  return Deno.version.deno;
}

/**
 * Reads a cache file. Missing: an empty cache, silently. Unreadable, not JSON, or not the cache's
 * format (another version): an empty cache and one `warn` line naming the file and the reason.
 */
export async function loadTuneCache(
  path = DEFAULT_TUNE_CACHE,
  warn: (line: string) => void = (l) => console.warn(l),
): Promise<TuneCacheData> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return emptyCache();
    warn(`warning: autotune cache ${path} unreadable (${(e as Error).message}); using defaults`);
    return emptyCache();
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    warn(
      `warning: autotune cache ${path} is not valid JSON; ignoring it (defaults until re-tuned)`,
    );
    return emptyCache();
  }
  if (!isTuneCache(data)) {
    warn(
      `warning: autotune cache ${path} has an unknown or stale format; ignoring it (defaults until re-tuned)`,
    );
    return emptyCache();
  }
  return data;
}

/** Writes the cache atomically (temp file + rename), pretty-printed for inspection. */
export async function saveTuneCache(cache: TuneCacheData, path = DEFAULT_TUNE_CACHE) {
  await writeFileAtomic(path, JSON.stringify(cache, null, 2) + "\n");
}

/** Where and how `loadKernelChoosers` reads the cache. */
export interface ChooserFileOptions {
  /** The cache file. Default `DEFAULT_TUNE_CACHE`. */
  path?: string;
  /** Let the matmul chooser return split-K variants (two dispatches). Default false. */
  allowSplitK?: boolean;
  /** Where the one warning about an unreadable or stale file goes. Default `console.warn`. */
  warn?: (line: string) => void;
}

/**
 * The tuned matmul chooser of a context's adapter from a cache file (see `tunedMatmulChooser`):
 * untuned shapes, other adapters and stale entries get the default.
 */
export async function loadMatmulChooser(
  ctx: KernelContext,
  o: ChooserFileOptions = {},
): Promise<MatmulChooser> {
  return (await loadKernelChoosers(ctx, o)).matmul;
}

/**
 * The tuned matmul and attention choosers of a context's adapter from one read of a cache file
 * (see `tunedMatmulChooser`, `tunedAttentionChooser`): untuned shapes, other adapters and stale
 * entries get the default.
 */
export async function loadKernelChoosers(
  ctx: KernelContext,
  o: ChooserFileOptions = {},
): Promise<{ matmul: MatmulChooser; attention: AttentionChooser }> {
  const cache = await loadTuneCache(o.path, o.warn);
  const on = {
    adapter: adapterIdOf(ctx.gpu),
    deno: denoVersion(),
    limits: gpuLimits(ctx.gpu),
  };
  return {
    matmul: tunedMatmulChooser(cache, { ...on, allowSplitK: o.allowSplitK }),
    attention: tunedAttentionChooser(cache, on),
  };
}

/** The autotuner's choosers of one cache file (`loadKernelChoosers`). */
export type KernelChoosers = Awaited<ReturnType<typeof loadKernelChoosers>>;

/**
 * Wraps a chooser so that it records, per shape asked for (named by `keyOf`), whether it had a
 * tuned answer.
 */
function recording<S, P>(choose: (s: S) => P | undefined, keyOf: (s: S) => string) {
  const asked = new Map<string, boolean>();
  const chooser = (s: S) => {
    const p = choose(s);
    asked.set(keyOf(s), p !== undefined);
    return p;
  };
  const tuned = () => [...asked.values()].filter(Boolean).length;
  return { chooser, asked, tuned };
}

/**
 * Choosers to hand one `Trainer` from the autotuner's variants (they record what the model asked
 * for): `hits()` counts the tuned answers and `summary()` is one line saying how many of the shapes
 * asked for were tuned, per kernel.
 */
export function countedKernels(tuned: KernelChoosers) {
  const mm = recording(tuned.matmul, (s) => `${s.trans} ${s.M}x${s.N}x${s.inner}`);
  const att = recording(
    tuned.attention,
    (s) => `${s.spec.name} ${s.layout} ${s.batch}x${s.heads}/${s.kvHeads}x${s.L} d${s.headDim}`,
  );
  const hits = () => mm.tuned() + att.tuned();
  const summary = () =>
    hits() > 0
      ? `tuned variants (${DEFAULT_TUNE_CACHE}): matmul ${mm.tuned()} of ${mm.asked.size} ` +
        `shapes, attention ${att.tuned()} of ${att.asked.size}`
      : "matmul, attention: default variants (`deno task autotune --config F` tunes them for " +
        "this adapter)";
  return { matmul: mm.chooser, attention: att.chooser, hits, summary };
}

/**
 * The autotuner's matmul and attention variants for this adapter (`.cache/autotune.json`, written
 * by `deno task autotune`), counted (see `countedKernels`).
 */
export async function tunedKernels(ctx: KernelContext, warn: (line: string) => void) {
  return countedKernels(await loadKernelChoosers(ctx, { warn }));
}
