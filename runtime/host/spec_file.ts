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
import { type AttentionSpec, respec, specOfModule, type SpecOverrides } from "../../dsl/spec.ts";

/** Where a spec reference points: a file when it looks like a path, else a preset name. */
export function isSpecPath(ref: string): boolean {
  return /[\\/]/.test(ref) || /\.[cm]?[jt]s$/.test(ref);
}

/** Seconds a spec file may take to load and build its mask before it is refused. */
export const SPEC_TIMEOUT_S = 10;

/** How a spec file is loaded: the overrides it will get, and its deadline. */
export interface SpecLoad {
  /** K, parameters and tables the run will rebuild it with (their mask runs under the deadline too). */
  over?: SpecOverrides;
  /** Seconds to wait (default `SPEC_TIMEOUT_S`; the commands' `--spec-timeout`). */
  timeoutS?: number;
}

/**
 * Runs the spec file's module and mask function in a worker first, so one that never returns is
 * refused in one line after the deadline instead of hanging the command.
 */
async function loadsInTime(url: string, ref: string, o: SpecLoad): Promise<void> {
  const s = o.timeoutS ?? SPEC_TIMEOUT_S;
  const worker = new Worker(new URL("./spec_worker.ts", import.meta.url), { type: "module" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((ok, fail) => {
      worker.onmessage = () => ok();
      worker.onerror = (e) => {
        e.preventDefault();
        ok(); // the caller's own load reports it
      };
      timer = setTimeout(() =>
        fail(
          new Error(
            `spec file "${ref}" did not finish loading within ${s} s (its module or its mask ` +
              `function does not return): fix it, or give --spec-timeout S to wait longer`,
          ),
        ), s * 1000);
      worker.postMessage({ url, ref, over: o.over });
    });
  } finally {
    clearTimeout(timer);
    worker.terminate();
  }
}

/**
 * Loads a preset or a spec file (relative to `baseDir`, default the working directory); a file
 * must load and build its mask within the deadline (`SpecLoad`).
 */
export async function loadSpecRef(
  ref: string,
  baseDir = ".",
  o: SpecLoad = {},
): Promise<AttentionSpec> {
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
  const url = pathToFileURL(path).href;
  await loadsInTime(url, ref, o);
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
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
  /** Seconds a spec file may take to load (`SPEC_TIMEOUT_S` by default). */
  specTimeout?: number;
}

/** The overrides the spec flags ask for, or undefined when none. */
function flagOverrides(f: SpecFlags): SpecOverrides | undefined {
  const params: Record<string, number> = { ...f.param };
  if (f.W !== undefined) params.W = f.W;
  if (f.C !== undefined) params.C = f.C;
  if (f.K === undefined && Object.keys(params).length === 0 && !f.table) return undefined;
  return { K: f.K, params, tables: f.table };
}

/** Applies the spec flags with `respec`; a flag for a parameter the spec lacks is one line. */
export function applySpecFlags(spec: AttentionSpec, f: SpecFlags): AttentionSpec {
  const over = flagOverrides(f);
  return over ? respec(spec, over) : spec;
}

/** `loadSpecRef` (under the deadline, with the flags' overrides) then `applySpecFlags`. */
export async function resolveSpec(ref: string, f: SpecFlags): Promise<AttentionSpec> {
  const spec = await loadSpecRef(ref, ".", { over: flagOverrides(f), timeoutS: f.specTimeout });
  return applySpecFlags(spec, f);
}
