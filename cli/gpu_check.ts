/**
 * `deno task gpu-check [--out DIR] [--budget-s N] [--parts a,b] [--force] [--json]` (`./phd
 * gpu-check` in the offline bundle): everything worth knowing about this runtime on this adapter
 * within one time budget (offline/gpu_check.ts, parts in offline/gpu_check_parts.ts), written to
 * DIR as summary.md and one JSON per part. Exit status 0 once the check has run, whatever its
 * parts' statuses (summary.md has them); 1 on bad input.
 */
import type { Command } from "commander";
import { runGpuCheck } from "../offline/gpu_check.ts";
import { GPU_CHECK_PARTS } from "../offline/gpu_check_parts.ts";
import { newCommand, parseArgv, positiveInt, runCommand } from "./args.ts";

const NAMES = GPU_CHECK_PARTS.map((p) => p.name);

function program(): Command {
  return newCommand(
    "deno task gpu-check",
    "prove and measure this runtime on this adapter in one time budget: adapter, correctness, " +
      "matmul, attention, a 25 M model's training, the paper's Fig. 9, the PyTorch peer",
  )
    .option("--out <dir>", "folder for summary.md and the parts' JSON", "out/gpu-check")
    .option("--budget-s <n>", "seconds for the whole check", positiveInt("--budget-s"), 540)
    .option("--parts <list>", `parts to run, comma-separated (default all: ${NAMES.join(",")})`)
    .option("--force", "replace files in --out that gpu-check did not write")
    .option("--json", "print {summary, files, seconds, parts} instead of the summary");
}

if (import.meta.main) {
  await runCommand(async () => {
    const o = parseArgv(program()).opts<
      { out: string; budgetS: number; parts?: string; force?: boolean; json?: boolean }
    >();
    const report = await runGpuCheck(GPU_CHECK_PARTS, {
      out: o.out,
      budgetS: o.budgetS,
      parts: o.parts?.split(","),
      force: o.force,
      log: (line) => console.error(line),
    });
    if (o.json) {
      const { summary: _, ...rest } = report;
      console.log(JSON.stringify({ summary: `${o.out}/summary.md`, ...rest }));
    } else console.log(report.summary);
  });
}
