/**
 * `deno task demo [--minutes M] [--steps N] [--config F.json] [--no-tune] [--json]`: the main job
 * (runtime/jobs/demo.ts): tunes, trains the demo recipe on the Brown corpus and continues a prompt
 * through the PHD KV cache, all within a wall-clock budget counted from process start. Streams the
 * continuation to stdout, then prints the losses, the budget and where the files went.
 */
import { utilizationText } from "../runtime/gpu/peak.ts";
import { DEFAULT_TUNE_CACHE } from "../runtime/host/tune_cache.ts";
import { terminalProgress } from "../runtime/host/progress.ts";
import { DEMO_PROMPT, runDemo, TUNE_SHARE } from "../runtime/jobs/demo.ts";
import { newCommand, parseArgv, positiveInt, runCommand, UsageError } from "./args.ts";

/** The longest demo budget: a day (longer runs are `deno task train`'s, with checkpoints). */
const MAX_MINUTES = 1440;

function minutesFlag(v: string): number {
  const x = Number(v);
  if (v.trim() === "" || !(x > 0) || !(x <= MAX_MINUTES)) {
    throw new UsageError(
      `--minutes must be a number in (0, ${MAX_MINUTES}] (the whole demo's budget), got "${v}": ` +
        "for longer runs use deno task train",
    );
  }
  return x;
}

async function main() {
  const cmd = newCommand(
    "demo",
    "Train a small PHD-CSWA transformer on the Brown corpus and generate text, all within a time budget.",
  )
    .option(
      "--minutes <m>",
      "the whole demo's budget from process start (tuning, training, evaluation, generation), at most 1440",
      minutesFlag,
      4.5,
    )
    .option("--steps <n>", "train exactly N steps instead of to the budget", positiveInt("--steps"))
    .option("--config <file>", "JSON config to train instead of the demo recipe")
    .option("--no-tune", "use the autotune cache as it is (tune no new shapes)")
    .option("--out <dir>", "where the checkpoint and pictures go", "out/demo")
    .option("--force", "replace files in --out that are not earlier outputs of this tool")
    .option("--prompt <text>", "text to continue", DEMO_PROMPT)
    .option("--max-new-tokens <n>", "bytes to generate", positiveInt("--max-new-tokens"), 200)
    .option(
      "--json",
      "end with one JSON object (val_loss_before, val_loss_after, seconds, budget_seconds, ...)",
    )
    .option("--quiet", "no progress output")
    .addHelpText(
      "after",
      "\nThe budget counts from process start. Tuning gets at most " +
        `${100 * TUNE_SHARE}% of it (the winners go to ${DEFAULT_TUNE_CACHE},` +
        "\nso the next run measures nothing); the step count is planned from the first steps'" +
        "\ntimes so the cosine schedule ends when the final validation and the continuation" +
        "\nstill fit, and re-planned if the machine's load changes. --steps N fixes the count" +
        "\n(a reproducible run; the budget then bounds only the tuning).",
    );
  const o = parseArgv(cmd).opts();
  const enc = new TextEncoder(), dec = new TextDecoder();
  let started = false;
  const report = await runDemo({
    minutes: o.minutes,
    steps: o.steps,
    config: o.config,
    tune: o.tune,
    out: o.out,
    force: o.force,
    prompt: o.prompt,
    maxNewTokens: o.maxNewTokens,
    log: (l) => o.quiet || console.error(l),
    progress: o.quiet ? undefined : terminalProgress,
    onText: o.json ? undefined : (bytes) => {
      if (!started) Deno.stdout.writeSync(enc.encode(`\n${o.prompt}`));
      started = true;
      Deno.stdout.writeSync(enc.encode(dec.decode(bytes, { stream: true })));
    },
  });
  if (o.json) {
    console.log(JSON.stringify(report));
  } else {
    console.log(
      `\n\nvalidation loss ${report.val_loss_before!.toFixed(3)} -> ${
        report.val_loss_after.toFixed(3)
      } nats/byte after ${report.steps} steps; ${report.seconds.toFixed(0)} s of a ${
        report.budget_seconds.toFixed(0)
      } s budget (${report.tokens_per_s.toFixed(0)} tok/s, ${utilizationText(report)} on ` +
        `${report.adapter})\n` +
        `checkpoint ${report.checkpoint}, loss curve ${report.plot}`,
    );
  }
}

if (import.meta.main) await runCommand(main);
