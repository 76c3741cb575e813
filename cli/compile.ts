/**
 * `deno task compile <spec.ts | preset>... [--out DIR]` (docs/DESIGN.md 3): the flags, the files
 * and the help. Per spec it writes `<name>.wgsl` and `<name>.json` as compiler/manifest.ts builds
 * them, atomically and the manifest last, after every spec has been built (bad input leaves no
 * partial output). No GPU is touched.
 */
import { type Command, Option } from "commander";
import { join } from "node:path";
import {
  COMPILE_DEFAULTS,
  type Compiled,
  type CompileOptions,
  compileSpec,
} from "../compiler/manifest.ts";
import { LAYOUTS } from "../compiler/layout.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import {
  addSpecOptions,
  newCommand,
  parseArgv,
  positiveInt,
  resolveSpec,
  runCommand,
  type SpecFlags,
  UsageError,
  writeFileAtomic,
} from "./args.ts";

/** Parsed flags of `deno task compile`. */
interface CompileFlags extends SpecFlags, CompileOptions {
  /** Output folder. */
  out: string;
  json?: boolean;
}

/** Output folder when `--out` is not given. */
const DEFAULT_OUT = "out/compile";

/** One written spec in the `--json` summary. */
export interface WrittenSpec {
  name: string;
  K: number;
  wgsl: string;
  manifest: string;
  kernels: number;
  bytes: number;
}

/** Runs the command on parsed flags; returns what goes to stdout. */
async function compileCommand(refs: string[], f: CompileFlags): Promise<string> {
  const specs: AttentionSpec[] = [];
  for (const ref of refs) specs.push(await resolveSpec(ref, f));
  const seen = new Map<string, string>();
  refs.forEach((ref, i) => {
    const prev = seen.get(specs[i].name);
    if (prev !== undefined) {
      throw new UsageError(
        `"${prev}" and "${ref}" are both spec "${specs[i].name}": each output name must be unique`,
      );
    }
    seen.set(specs[i].name, ref);
  });
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

/** The command line of `deno task compile`. */
function compileProgram(): Command {
  const d = COMPILE_DEFAULTS;
  return addSpecOptions(
    newCommand(
      "deno task compile",
      "write each spec's WGSL kernels (<name>.wgsl) and manifest (<name>.json)",
    )
      .argument("<spec...>", "preset names or paths of .ts files exporting an AttentionSpec")
      .option("--out <dir>", "output folder", DEFAULT_OUT),
  )
    .option(
      "--head-dim <d>",
      "head dimension, a multiple of 4 in [4, 256]",
      (v: string) => {
        const n = positiveInt("--head-dim")(v);
        if (n < 4 || n > 256 || n % 4 !== 0) {
          throw new UsageError(`--head-dim must be a multiple of 4 in [4, 256], got "${v}"`);
        }
        return n;
      },
      d.headDim,
    )
    .addOption(
      new Option("--layout <layout>", "token storage layout(s) of the kernels")
        .choices([...LAYOUTS, "both"]).default(d.layout),
    )
    .addOption(
      new Option("--variant <variant>", "fused (skips empty tiles) and/or dense kernels")
        .choices(["fused", "dense", "both"]).default(d.variant),
    )
    .addOption(
      new Option("--dtype <dtype>", "storage type of q, k, v, o and gradients")
        .choices(["f32", "f16"]).default(d.dtype),
    )
    .addOption(
      new Option("--staging <staging>", "stream rows from storage or through workgroup memory")
        .choices(["direct", "workgroup"]).default(d.staging),
    )
    .option(
      "--tile <t>",
      "tile edge (query rows = key rows), at most 256 (default: the runtime's, 32 for direct staging)",
      (v: string) => {
        const t = positiveInt("--tile")(v);
        if (t > 256) throw new UsageError(`--tile must be at most 256, got "${v}"`);
        return t;
      },
    )
    .option(
      "--L <n>",
      "sequence length (positions) of the manifest's tile classes, retention and prefill set",
      positiveInt("--L"),
      d.L,
    )
    .option("--json", "print a JSON summary of the files written");
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(compileProgram());
    console.log(await compileCommand(cmd.args, cmd.opts<CompileFlags>()));
  });
}
