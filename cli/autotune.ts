/**
 * `deno task autotune [--quick] [--kernels matmul,attention] [--layout L] [--config F.json]
 * [--cache F] [--json]`: tunes the kernels of one training step of a config's model (default: the
 * demo's) on this machine's adapter into the autotune cache (runtime/jobs/autotune.ts). Progress
 * goes to stderr; stdout gets per shape the default and the best time, the speedup and the chosen
 * variant (or one JSON object with `--json`).
 */
import { Option } from "commander";
import { DEFAULT_TUNE_CACHE } from "../runtime/host/tune_cache.ts";
import { LAYOUTS } from "../compiler/layout.ts";
import {
  autotune,
  type AutotuneFlags,
  type AutotuneReport,
  TUNABLE,
} from "../runtime/jobs/autotune.ts";
import { newCommand, parseArgv, runCommand } from "./args.ts";

/** The human-readable report. */
function formatReport(r: AutotuneReport): string {
  const head = [
    "kernel",
    "shape",
    "uses",
    "default ms",
    "best ms",
    "speedup",
    "variant",
    "one-pass",
  ];
  const body = r.rows.map((x) => [
    x.kernel,
    x.shape,
    `${x.count}`,
    x.default_ms.toFixed(2),
    x.best_ms.toFixed(2),
    `${x.speedup.toFixed(2)}x`,
    x.variant,
    x.one_pass_variant === x.variant ? "same" : `${x.one_pass_variant} ${x.one_pass_ms.toFixed(2)}`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(w[i])).join("  ").trimEnd();
  const s = r.step_ms, a = r.attention_step_ms;
  const measured = r.rows.filter((x) => x.measured).length;
  const has = (k: string) => r.rows.some((x) => x.kernel === k);
  return [
    `adapter: ${r.adapter} (${r.adapter_class} class) | deno ${r.deno} | cache ${r.cache}`,
    measured === 0
      ? `warm cache: nothing measured (every shape was already tuned)`
      : `tuned ${measured} of ${r.rows.length} shapes (${r.measured_candidates} candidates timed)`,
    line(head),
    ...body.map(line),
    ...(has("matmul")
      ? [
        `matmuls of one training step: default ${s.default.toFixed(1)} ms, tuned ${
          s.best.toFixed(1)
        } ms (${(s.default / s.best).toFixed(2)}x), one-pass only ${s.one_pass.toFixed(1)} ms (${
          (s.default / s.one_pass).toFixed(2)
        }x)`,
      ]
      : []),
    ...(has("attention")
      ? [
        `attention of one training step (forward + backward, every layer): default ${
          a.default.toFixed(1)
        } ms, tuned ${a.best.toFixed(1)} ms (${(a.default / a.best).toFixed(2)}x)`,
      ]
      : []),
  ].join("\n");
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(
      newCommand(
        "deno task autotune",
        "tune the kernels of a config's training step on this adapter; the winners go to the " +
          "cache. The variant space follows the adapter class (cpu: llvmpipe-like CPU " +
          "rasterizers, gpu: the rest); PHD_ADAPTER_CLASS=cpu|gpu overrides it",
      )
        .option("--quick", "fewer candidates and runs (the variants that matter most)")
        .option(
          "--kernels <list>",
          `comma-separated kernels to tune (${TUNABLE.join(", ")})`,
          TUNABLE.join(","),
        )
        .option(
          "--layout <list>",
          `attention layouts to tune (${LAYOUTS.join(", ")}; train's default is grouped)`,
          "grouped",
        )
        .option("--config <file>", "JSON config whose shapes are tuned (default: the demo model)")
        .addOption(
          new Option("--cache <file>", "the autotune cache file").default(DEFAULT_TUNE_CACHE),
        )
        .option("--force", "replace an existing --cache file that is not an autotune cache")
        .option("--json", "print one JSON object"),
    );
    const f = cmd.opts<AutotuneFlags>();
    const report = await autotune(f, (line) => console.error(line));
    console.log(f.json ? JSON.stringify(report) : formatReport(report));
  });
}
