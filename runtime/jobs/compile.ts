/**
 * Compiling specs to files, what `deno task compile` calls (docs/DESIGN.md 3): per spec
 * `<name>.wgsl` and `<name>.json` as compiler/manifest.ts builds them, written atomically and the
 * manifest last, after every spec has been built (bad input leaves no partial output). No GPU is
 * touched.
 */
import { join } from "node:path";
import { type Compiled, type CompileOptions, compileSpec } from "../../compiler/manifest.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import { writeFileAtomic } from "../host/files.ts";
import { guardOutputs, oursManifest, oursWgsl } from "../host/outputs.ts";
import { isSpecPath } from "../host/spec_file.ts";

/** What `compileToFiles` is asked: the compiler's options and where the files go. */
export interface CompileRequest extends CompileOptions {
  /** Output folder. */
  out: string;
  json?: boolean;
  /** Replace existing files in `out` that are not compiled specs of ours. */
  force?: boolean;
}

/** Output folder when `--out` is not given. */
export const DEFAULT_OUT = "out/compile";

/** One written spec in the `--json` summary. */
export interface WrittenSpec {
  name: string;
  K: number;
  wgsl: string;
  manifest: string;
  kernels: number;
  bytes: number;
}

/**
 * Compiles `specs` (loaded from `refs`) and writes each one's files; returns what `deno task
 * compile` prints (a line per spec, or the JSON summary).
 */
export async function compileToFiles(
  refs: string[],
  specs: AttentionSpec[],
  f: CompileRequest,
): Promise<string> {
  const seen = new Map<string, string>();
  refs.forEach((ref, i) => {
    const prev = seen.get(specs[i].name);
    if (prev !== undefined) {
      throw new Error(
        `"${prev}" and "${ref}" are both spec "${specs[i].name}": each output name must be unique`,
      );
    }
    seen.set(specs[i].name, ref);
  });
  const outputs = specs.flatMap((spec) => [
    { path: join(f.out, `${spec.name}.wgsl`), flag: "--out", what: "kernel file", ours: oursWgsl },
    { path: join(f.out, `${spec.name}.json`), flag: "--out", what: "manifest", ours: oursManifest },
  ]);
  const inputs = refs.filter(isSpecPath).map((path) => ({ path, flag: "<spec>" }));
  await guardOutputs(outputs, inputs, f);
  // Build everything before writing anything: bad input leaves no partial output.
  const compiled: Compiled[] = [];
  for (const spec of specs) compiled.push(await compileSpec(spec, f));
  const written: WrittenSpec[] = [];
  for (const { wgsl, manifest } of compiled) {
    const wgslPath = join(f.out, `${manifest.name}.wgsl`);
    const jsonPath = join(f.out, `${manifest.name}.json`);
    await writeFileAtomic(wgslPath, wgsl);
    await writeFileAtomic(jsonPath, JSON.stringify(manifest, null, 2) + "\n");
    written.push({
      name: manifest.name,
      K: manifest.K,
      wgsl: wgslPath,
      manifest: jsonPath,
      kernels: manifest.kernels.length,
      bytes: manifest.wgsl.bytes,
    });
  }
  if (f.json) return JSON.stringify({ out: f.out, specs: written });
  return written.map((w, i) => {
    const m = compiled[i].manifest,
      t = m.tiles.map((x) => `${x.layout} keeps ${(100 * x.keptFraction).toFixed(1)}%`);
    return `wrote ${w.wgsl} (${w.kernels} kernels, ${w.bytes} bytes) and ${w.manifest}: ` +
      `cache ${m.retention.formula} tokens, prefill x${m.prefill.ratio.toFixed(2)}, ` +
      `tiles at L=${f.L}: ${t.join(", ")}`;
  }).join("\n");
}
