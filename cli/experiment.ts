/**
 * `deno task experiment <suite> [--engine webgpu|torch] [--jobs N] [--torch-blas DIR]
 * [--budget-tokens N | --budget-flops F | --minutes M] [--seeds S] [--json] [--resume | --fresh |
 * --render-only] [--out DIR]`: trains every arm of a suite at several seeds on one engine and
 * compares them (experiments/harness/run_suite.ts); prints results.md (or results.json with
 * `--json`). `deno task experiment --figures` draws the figures across suites
 * (experiments/harness/figures.ts).
 */
import { join } from "node:path";
import { LAYOUTS } from "../compiler/layout.ts";
import { runSuite } from "../experiments/harness/run_suite.ts";
import { markdown, METHOD } from "../experiments/harness/report.ts";
import { type EngineName, ENGINES } from "../experiments/harness/engines.ts";
import { drawFigures } from "../experiments/harness/figures.ts";
import { COSTS_METHOD } from "../experiments/harness/costs.ts";
import {
  newCommand,
  parseArgv,
  positiveInt,
  positiveNumber,
  runCommand,
  UsageError,
} from "./args.ts";

async function main() {
  const cmd = newCommand("experiment", "Train every arm of a suite at several seeds and compare.")
    .argument("[suite]", "a suite name (experiments/<name>.json) or a suite file")
    .option(
      "--budget-tokens <n>",
      "training tokens (bytes) per run",
      positiveInt("--budget-tokens"),
    )
    .option(
      "--budget-flops <f>",
      "model training FLOPs per run (equal for every arm)",
      positiveNumber("--budget-flops"),
    )
    .option(
      "--minutes <m>",
      "wall time for the whole suite, shared equally by its runs",
      positiveNumber("--minutes"),
    )
    .option(
      "--engine <engine>",
      `what trains the runs: ${ENGINES.join(" | ")} (python/phd_torch, one process and one ` +
        "BLAS thread per run, from this runtime's initial weights on the same batches)",
      "webgpu",
    )
    .option(
      "--jobs <n>",
      "runs side by side (--engine torch; e.g. one per core)",
      positiveInt("--jobs"),
      1,
    )
    .option(
      "--torch-blas <dir>",
      "--engine torch: load DIR/libblas.so.3 first, e.g. Debian's OpenBLAS unpacked as deno task " +
        "bench peers --help says (about 5x torch's default reference BLAS here)",
    )
    .option("--seeds <s>", "seeds per arm (default: the suite's)", positiveInt("--seeds"))
    .option("--resume", "keep the finished runs in the results folder and run the rest")
    .option("--fresh", "delete the finished runs in the results folder first")
    .option(
      "--render-only",
      "write results.md, the pictures and results.json's summary again from results.json " +
        "(training nothing)",
    )
    .option(
      "--figures",
      "draw the figures across suites (fig1.svg: loss and task accuracy against K) from their " +
        "results.json, training nothing; give no suite",
    )
    .option(
      "--out <dir>",
      "results folder (default experiments/results/<suite>; with --figures, the folder of the " +
        "suites' folders, default experiments/results)",
    )
    .option("--layout <layout>", `attention storage layout: ${LAYOUTS.join(" | ")}`, "grouped")
    .option("--json", "print results.json on stdout")
    .addHelpText(
      "after",
      `\nSuites (experiments/*.json): budget, k-sweep, window, chunk, reasoning, ` +
        `reasoning-parity, reasoning-copy; positions and follow-ups (the old budget). Statistics: ` +
        `${METHOD}. Costs: ${COSTS_METHOD}.`,
    );
  const p = parseArgv(cmd), o = p.opts();
  if (o.figures) {
    if (p.args.length > 0) throw new UsageError("--figures draws from results: give no suite");
    const { wrote, missing } = await drawFigures(o.out ?? join("experiments", "results"));
    const left = missing.length ? ` (no results yet, left out: ${missing.join(", ")})` : "";
    console.error(`wrote ${wrote}${left}`);
    return;
  }
  if (p.args.length === 0) throw new UsageError("give a suite, or --figures");
  if (!LAYOUTS.includes(o.layout)) {
    throw new UsageError(`--layout must be one of ${LAYOUTS.join(", ")}, got "${o.layout}"`);
  }
  if (!ENGINES.includes(o.engine)) {
    throw new UsageError(`--engine must be one of ${ENGINES.join(", ")}, got "${o.engine}"`);
  }
  const results = await runSuite({
    suite: p.args[0],
    budgetTokens: o.budgetTokens,
    budgetFlops: o.budgetFlops,
    minutes: o.minutes,
    seeds: o.seeds,
    resume: o.resume,
    fresh: o.fresh,
    renderOnly: o.renderOnly,
    out: o.out,
    layout: o.layout,
    engine: o.engine as EngineName,
    jobs: o.jobs,
    torchBlas: o.torchBlas,
    command: `npx --yes deno@2.9.6 task experiment ${
      Deno.args.filter((a) => !["--resume", "--fresh", "--json"].includes(a)).join(" ")
    }`,
    log: (l) => console.error(l),
  });
  console.error(`wrote results.json, results.md and the pictures`);
  if (o.json) console.log(JSON.stringify(results));
  else console.log(markdown(results));
}

if (import.meta.main) await runCommand(main);
