/**
 * Loading a spec by reference (Deno APIs): a preset name, or the path of a `.ts` file whose
 * default export, or else its only exported spec, is an `AttentionSpec`. Paths resolve against a
 * base folder (the config file's, or the working directory for flags). Every failure is one line
 * saying what to do.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { PRESETS } from "../../dsl/presets.ts";
import { type AttentionSpec, specOfModule } from "../../dsl/spec.ts";

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
