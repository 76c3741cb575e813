/**
 * Loading a spec by reference (Deno APIs): a preset name, or the path of a `.ts` file whose
 * default export, or else its only exported spec, is an `AttentionSpec`. Paths resolve against a
 * base folder (the config file's, or the working directory for flags); `resolveSpec` applies the
 * commands' spec flags (`--K --W --C --param --table`). Every failure is one line saying what to
 * do.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { PRESETS } from "../../dsl/presets.ts";
import { type AttentionSpec, respec, specOfModule } from "../../dsl/spec.ts";

/** Where a spec reference points: a file when it looks like a path, else a preset name. */
export function isSpecPath(ref: string): boolean {
  return /[\\/]/.test(ref) || /\.[cm]?[jt]s$/.test(ref);
}

/** Loads a preset or a spec file (relative to `baseDir`, default the working directory). */
export async function loadSpecRef(ref: string, baseDir = "."): Promise<AttentionSpec> {
  if (!isSpecPath(ref)) {
    const preset = PRESETS[ref];
    if (!preset) {
      throw new Error(
        `unknown preset "${ref}" (known: ${Object.keys(PRESETS).join(", ")}); ` +
          `or give the path of a .ts file exporting a spec`,
      );
    }
    return preset();
  }
  const path = resolve(baseDir, ref);
  try {
    if (!Deno.statSync(path).isFile) throw new Error(`spec file "${ref}" is not a file`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`spec file "${ref}" does not exist`);
    throw e;
  }
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(path).href);
  } catch (e) {
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new Error(`cannot load spec file "${ref}": ${msg}`);
  }
  return specOfModule(mod, `spec file "${ref}"`);
}

/** The spec flags after parsing (see `addSpecOptions`). */
export interface SpecFlags {
  /** Copies per position. */
  K?: number;
  /** Window parameter W. */
  W?: number;
  /** Chunk parameter C. */
  C?: number;
  /** Any other parameters, by name. */
  param?: Record<string, number>;
  /** Segment tables (sorted start offsets), by name. */
  table?: Record<string, number[]>;
}

/** Applies the spec flags with `respec`; a flag for a parameter the spec lacks is one line. */
export function applySpecFlags(spec: AttentionSpec, f: SpecFlags): AttentionSpec {
  const params: Record<string, number> = { ...f.param };
  if (f.W !== undefined) params.W = f.W;
  if (f.C !== undefined) params.C = f.C;
  if (f.K === undefined && Object.keys(params).length === 0 && !f.table) return spec;
  return respec(spec, { K: f.K, params, tables: f.table });
}

/** `loadSpecRef` then `applySpecFlags`. */
export async function resolveSpec(ref: string, f: SpecFlags): Promise<AttentionSpec> {
  return applySpecFlags(await loadSpecRef(ref), f);
}
