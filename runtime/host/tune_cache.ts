/**
 * The autotuner's cache file (Deno APIs): `.cache/autotune.json` by default, read leniently (a
 * missing file is an empty cache; a corrupt or stale one is ignored with one warning line, never
 * trusted) and written atomically. `loadKernelChoosers(ctx)` reads it once for what a host program
 * hands the model: `GraphOptions.matmul` and `GraphOptions.attentionChooser` (`TrainerOptions`
 * `matmul` and `attention`).
 */
import {
  adapterIdOf,
  type AttentionChooser,
  deviceAttentionLimits,
  emptyCache,
  isTuneCache,
  type TuneCacheData,
  tunedAttentionChooser,
  tunedMatmulChooser,
} from "../tune/autotune.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import { deviceMatmulLimits, type MatmulChooser } from "../kernels/matmul.ts";
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

/**
 * The tuned matmul chooser of a context's adapter from a cache file (see `tunedMatmulChooser`):
 * untuned shapes, other adapters and stale entries get the default.
 */
export async function loadMatmulChooser(
  ctx: KernelContext,
  o: { path?: string; allowSplitK?: boolean; warn?: (line: string) => void } = {},
): Promise<MatmulChooser> {
  const cache = await loadTuneCache(o.path, o.warn);
  return tunedMatmulChooser(cache, {
    adapter: adapterIdOf(ctx.gpu),
    deno: denoVersion(),
    limits: deviceMatmulLimits(ctx.gpu.device),
    allowSplitK: o.allowSplitK,
  });
}

/**
 * The tuned matmul and attention choosers of a context's adapter from one read of a cache file
 * (see `tunedMatmulChooser`, `tunedAttentionChooser`): untuned shapes, other adapters and stale
 * entries get the default.
 */
export async function loadKernelChoosers(
  ctx: KernelContext,
  o: { path?: string; allowSplitK?: boolean; warn?: (line: string) => void } = {},
): Promise<{ matmul: MatmulChooser; attention: AttentionChooser }> {
  const cache = await loadTuneCache(o.path, o.warn);
  const id = { adapter: adapterIdOf(ctx.gpu), deno: denoVersion() };
  return {
    matmul: tunedMatmulChooser(cache, {
      ...id,
      limits: deviceMatmulLimits(ctx.gpu.device),
      allowSplitK: o.allowSplitK,
    }),
    attention: tunedAttentionChooser(cache, {
      ...id,
      limits: deviceAttentionLimits(ctx.gpu.device),
    }),
  };
}
