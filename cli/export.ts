/**
 * `deno task export <spec.ts | preset | ckpt.safetensors> --to flex [--layout L] [--L N]
 * [--out F.py] [--json]`: a spec as a Python module for PyTorch FlexAttention
 * (runtime/jobs/export.ts), written to `--out` or stdout.
 */
import { type Command, Option } from "commander";
import { LAYOUTS } from "../compiler/layout.ts";
import { exportCommand, type ExportFlags, TARGETS } from "../runtime/jobs/export.ts";
import {
  addSpecOptions,
  newCommand,
  parseArgv,
  positiveInt,
  runCommand,
  UsageError,
} from "./args.ts";

/** The command line of `deno task export`. */
export function exportProgram(): Command {
  return addSpecOptions(
    newCommand(
      "deno task export",
      "write a spec as a Python module for PyTorch FlexAttention (mask_mod, score_mod, block_mask)",
    ).argument(
      "<spec>",
      "a preset name, the path of a .ts file exporting an AttentionSpec, or a .safetensors " +
        "checkpoint (its mask)",
    ),
  )
    .addOption(new Option("--to <target>", "export target").choices(TARGETS).makeOptionMandatory())
    .addOption(
      new Option("--layout <layout>", "storage layout of the flat token index")
        .choices(LAYOUTS).default("interleaved"),
    )
    .option(
      "--L <n>",
      "positions of the docstring's analysis and of the module-level mask_mod",
      positiveInt("--L"),
      1024,
    )
    .option("--out <file>", "write the module here (default: stdout)")
    .option("--force", "replace an existing --out file that is not a module of this tool")
    .option("--json", "print a JSON report (target, layout, out, bytes, analysis) on stdout");
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(exportProgram());
    const f = cmd.opts<ExportFlags>();
    if (f.json && !f.out) throw new UsageError("--json needs --out FILE for the module");
    const { module, report } = await exportCommand(cmd.args[0], f, Deno.args);
    if (f.json) console.log(JSON.stringify(report));
    else if (f.out) console.log(`wrote ${f.out} (${report.bytes} bytes, ${f.layout} layout)`);
    else Deno.stdout.writeSync(new TextEncoder().encode(module));
  });
}
