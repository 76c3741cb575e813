/**
 * `deno task compile <spec.ts | preset>... [--out DIR]` (docs/DESIGN.md 3): the flags and the help;
 * runtime/jobs/compile.ts writes each spec's `<name>.wgsl` and `<name>.json`.
 */
import { type Command, Option } from "commander";
import { COMPILE_DEFAULTS } from "../compiler/manifest.ts";
import { LAYOUTS } from "../compiler/layout.ts";
import { type CompileRequest, compileToFiles, DEFAULT_OUT } from "../runtime/jobs/compile.ts";
import {
  addSpecOptions,
  newCommand,
  parseArgv,
  positiveInt,
  resolveSpec,
  runCommand,
  type SpecFlags,
  UsageError,
} from "./args.ts";

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
    .option("--force", "replace files in --out that are not compiled specs of this tool")
    .option("--json", "print a JSON summary of the files written");
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(compileProgram());
    const f = cmd.opts<CompileRequest & SpecFlags>();
    const specs = [];
    for (const ref of cmd.args) specs.push(await resolveSpec(ref, f));
    console.log(await compileToFiles(cmd.args, specs, f));
  });
}
