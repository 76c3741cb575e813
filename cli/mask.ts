/**
 * `deno task mask <spec.ts | preset> --L N`: a spec's mask and what the compiler derives from it
 * (runtime/jobs/mask.ts): a summary (source, causality, KV retention, prefill set, an ASCII
 * tile-class picture), or with `--json` the dense mask in canonical order, and SVG/PNG pictures.
 */
import { type Command, Option } from "commander";
import { LAYOUTS } from "../compiler/layout.ts";
import { DENSE_LIMIT, maskReport, type MaskRequest } from "../runtime/jobs/mask.ts";
import { isSpecPath } from "../runtime/host/spec_file.ts";
import {
  addSpecOptions,
  newCommand,
  parseArgv,
  positiveInt,
  resolveSpec,
  runCommand,
  type SpecFlags,
} from "./args.ts";

/** The command line of `deno task mask`. */
function maskProgram(): Command {
  return addSpecOptions(
    newCommand("deno task mask", "print a mask, its tile classes and its analysis; draw or dump it")
      .argument("<spec>", `a preset name or the path of a .ts file exporting an AttentionSpec`)
      .requiredOption("--L <n>", "sequence length in positions", positiveInt("--L")),
  )
    .option(
      "--tile <t>",
      "tile edge of the tile classes (default: the smallest power of two giving at most 32 tiles a side, capped at 64)",
      positiveInt("--tile"),
    )
    .addOption(
      new Option("--layout <layout>", "storage layout the tiles are cut from")
        .choices(LAYOUTS).default("grouped"),
    )
    .option("--json", `print {"K","L","tokens","allowed"} (dense, K*L <= ${DENSE_LIMIT})`)
    .option("--svg <file>", "write an SVG picture (dense mask and tile classes)")
    .option("--png <file>", "write a PNG picture (dense mask and tile classes)")
    .option("--tiles-only", "pictures show the tile classes only (any L)")
    .option("--force", "replace existing --svg/--png files that are not pictures of this tool")
    .option(
      "--max-cache <n>",
      "refuse a spec whose KV cache may exceed n tokens",
      positiveInt("--max-cache"),
    );
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(maskProgram());
    const f = cmd.opts<MaskRequest & SpecFlags>();
    const ref = cmd.args[0], specFile = isSpecPath(ref) ? ref : undefined;
    const log = (l: string) => console.error(l);
    console.log(await maskReport(await resolveSpec(ref, f), { ...f, specFile, log }));
  });
}
