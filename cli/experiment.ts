/**
 * `deno task experiment <suite> [--budget-tokens N | --budget-flops F | --minutes M] [--seeds S]
 * [--json] [--resume | --fresh | --render-only] [--out DIR]`: trains every arm of a suite
 * (experiments/<suite>.json, or a path) at several seeds on the Brown corpus, one run after another
 * with progress across runs, and writes under experiments/results/<suite>/ each finished run
 * (runs/, so a killed suite resumes where it stopped), results.json, results.md (table, paired
 * statistics against the baseline, each arm's KV bytes per token and prefill cost
 * (runtime/experiment/costs.ts), the command, adapter and commit) and two pictures (validation
 * curves, final bits per byte with the seed spread). `--render-only` writes the summary, table and
 * pictures again from an existing results.json (its runs, command, adapter, commit and date kept)
 * and the suite file, training nothing and needing no GPU.
 */
import { dirname, join, resolve } from "node:path";
import {
  type Arm,
  armSections,
  type Budget,
  parseSuite,
  runConfig,
  seedsOf,
  type Suite,
} from "../runtime/experiment/suite.ts";
import { runArm, type RunResult } from "../runtime/experiment/run.ts";
import { compare, type Comparison, mean, sd } from "../runtime/experiment/stats.ts";
import { type ArmCosts, armCosts, COSTS_METHOD } from "../runtime/experiment/costs.ts";
import { type Example, examples, taskCorpus } from "../runtime/experiment/tasks.ts";
import {
  clearRuns,
  gitCommit,
  hasRuns,
  loadRun,
  saveRun,
} from "../runtime/host/experiment_store.ts";
import { writeFileAtomic } from "../runtime/host/files.ts";
import { resolveRunConfig, type RunConfig } from "../runtime/host/config_file.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import { barChart, lineChart } from "../viz/chart.ts";
import { type Layout, LAYOUTS } from "../compiler/layout.ts";
import type { Corpus } from "../runtime/data/batches.ts";
import { newCommand, parseArgv, positiveInt, runCommand, UsageError } from "./args.ts";
import { brownCorpus, kernelContext } from "./train.ts";

const SUITES_DIR = new URL("../experiments/", import.meta.url);

/** Per arm: its runs and the seed statistics. */
export interface ArmSummary {
  arm: string;
  note?: string;
  spec: string;
  K: number;
  params: number;
  seeds: number;
  steps: number;
  tokens: number;
  flops: number;
  train_seconds: number;
  val_bpb_mean: number;
  val_bpb_sd: number;
  vs_baseline?: Comparison;
  /** Serving costs at the arm's config (runtime/experiment/costs.ts). */
  kv_bytes_per_token: number;
  kv_formula: string;
  prefill_rows: number;
  prefill_flops: number;
  /** Task suites: greedy exact-match accuracy over seeds, and against the baseline. */
  accuracy_mean?: number;
  accuracy_sd?: number;
  accuracy_vs_baseline?: Comparison;
}

/** What results.json holds. */
export interface SuiteResults {
  suite: string;
  description: string;
  command: string;
  adapter: string;
  commit: string;
  date: string;
  budget: Budget;
  seeds: number[];
  baseline: string;
  method: string;
  /** How the KV and prefill columns are computed, at which context. */
  costs_method: string;
  arms: ArmSummary[];
  runs: RunResult[];
}

const METHOD = "final validation loss in bits per byte; per arm the mean and sample standard " +
  "deviation over seeds; against the baseline the mean of per-seed differences (arm - baseline, " +
  "same seed: same initial-weight stream and batch order) with a 95% paired t-interval; a " +
  "difference is beyond seed noise when the interval excludes 0";

async function readSuite(ref: string): Promise<{ suite: Suite; file: string }> {
  const file = ref.endsWith(".json") ? resolve(ref) : new URL(`${ref}.json`, SUITES_DIR).pathname;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    const names = [];
    for await (const e of Deno.readDir(SUITES_DIR)) {
      if (e.name.endsWith(".json")) names.push(e.name.slice(0, -5));
    }
    throw new UsageError(
      `no suite "${ref}": give a suite file or one of ${names.sort().join(", ")}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (e) {
    throw new UsageError(`${file} is not JSON: ${(e as Error).message}`);
  }
  try {
    return { suite: parseSuite(raw, ref), file };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Per-arm statistics, the baseline comparison included, and each arm's serving costs. */
export function summarize(
  suite: Suite,
  runs: RunResult[],
  costs: ReadonlyMap<string, ArmCosts>,
): ArmSummary[] {
  const by = (arm: string, f: (r: RunResult) => number | undefined) =>
    new Map(runs.filter((r) => r.arm === arm && f(r) !== undefined).map((r) => [r.seed, f(r)!]));
  const bpb = (arm: string) => by(arm, (r) => r.val_bpb);
  const acc = (arm: string) => by(arm, (r) => r.accuracy);
  const base = bpb(suite.baseline), baseAcc = acc(suite.baseline);
  return suite.arms.flatMap((arm) => {
    const rs = runs.filter((r) => r.arm === arm.name);
    if (rs.length === 0) return [];
    const v = rs.map((r) => r.val_bpb), a = [...acc(arm.name).values()];
    const accuracy = a.length === 0 ? {} : {
      accuracy_mean: mean(a),
      accuracy_sd: sd(a),
      accuracy_vs_baseline: arm.name === suite.baseline
        ? undefined
        : compare(acc(arm.name), baseAcc, true),
    };
    return [{
      arm: arm.name,
      note: arm.note,
      spec: rs[0].spec,
      K: rs[0].K,
      params: rs[0].params,
      seeds: rs.length,
      steps: rs[0].steps,
      tokens: rs[0].tokens,
      flops: rs[0].flops,
      train_seconds: +mean(rs.map((r) => r.train_seconds)).toFixed(1),
      val_bpb_mean: mean(v),
      val_bpb_sd: sd(v),
      vs_baseline: arm.name === suite.baseline ? undefined : compare(bpb(arm.name), base),
      ...accuracy,
      ...costColumns(costs.get(arm.name)!),
    }];
  });
}

function costColumns(c: ArmCosts) {
  const { kv_bytes_per_token, kv_formula, prefill_rows, prefill_flops } = c;
  return { kv_bytes_per_token, kv_formula, prefill_rows, prefill_flops };
}

/** Every arm's serving costs, from its resolved config and spec. */
function suiteCosts(armRuns: ReadonlyMap<string, RunConfig>): Map<string, ArmCosts> {
  return new Map([...armRuns].map(([arm, r]) => [arm, armCosts(r.config.model, r.spec)]));
}

const f4 = (x: number) => x.toFixed(4);

function verdictLine(arm: string, c: Comparison, baseline: string, unit: string): string {
  const d = `${c.diff >= 0 ? "+" : ""}${f4(c.diff)} ${unit} vs ${baseline}`;
  if (c.verdict === "too few seeds") return `- ${arm}: ${d} (one seed: no noise estimate).`;
  const ci = `95% CI [${f4(c.ci![0])}, ${f4(c.ci![1])}]`;
  const what = c.verdict === "within seed noise"
    ? "within seed noise"
    : `${c.verdict} than ${baseline}, beyond seed noise`;
  return `- ${arm}: ${d} (${ci}): ${what}.`;
}

function vsCell(c: Comparison | undefined): string {
  if (!c) return "baseline";
  if (!c.ci) return `${f4(c.diff)} (${c.verdict})`;
  return `${c.diff >= 0 ? "+" : ""}${f4(c.diff)} [${f4(c.ci[0])}, ${f4(c.ci[1])}] ${c.verdict}`;
}

/** results.md: what ran, the table, and one plain line per comparison. */
export function markdown(r: SuiteResults): string {
  const budget = Object.entries(r.budget).map(([k, v]) => `${v} ${k}`).join("");
  const task = r.arms.some((a) => a.accuracy_mean !== undefined);
  return [
    `# Experiment ${r.suite}`,
    "",
    ...(r.description ? [r.description, ""] : []),
    `\`${r.command}\` on ${r.adapter}, commit ${r.commit}, ${r.date}. Budget per run: ${budget}; ` +
    `seeds ${r.seeds.join(", ")}. Statistics: ${r.method}. Costs: ${r.costs_method}.`,
    "",
    `| arm | spec | params | steps | tokens | train GFLOP | train s | val bits/byte (mean ± sd) | vs baseline [95% CI] | KV bytes/token | prefill GFLOP |${
      task ? " accuracy (mean ± sd) | vs baseline [95% CI] |" : ""
    }`,
    `| --- | ---- | -----: | ----: | -----: | ----------: | ------: | ------------------------: | -------------------- | -------------: | ------------: |${
      task ? " ---: | --- |" : ""
    }`,
    ...r.arms.map((a) => {
      const name = a.note ? `${a.arm} (${a.note})` : a.arm;
      const acc = task
        ? ` ${f4(a.accuracy_mean!)} ± ${f4(a.accuracy_sd!)} | ${vsCell(a.accuracy_vs_baseline)} |`
        : "";
      return `| ${name} | ${a.spec} | ${a.params} | ${a.steps} | ${a.tokens} | ` +
        `${(a.flops / 1e9).toPrecision(3)} | ${a.train_seconds} | ${f4(a.val_bpb_mean)} ± ` +
        `${f4(a.val_bpb_sd)} | ${vsCell(a.vs_baseline)} | ${+a.kv_bytes_per_token.toFixed(1)} ` +
        `(${a.kv_formula}) | ${(a.prefill_flops / 1e9).toPrecision(3)} |${acc}`;
    }),
    "",
    ...r.arms.filter((a) => a.vs_baseline).flatMap((a) => [
      verdictLine(a.arm, a.vs_baseline!, r.baseline, "bits/byte"),
      ...(a.accuracy_vs_baseline
        ? [verdictLine(a.arm, a.accuracy_vs_baseline, r.baseline, "accuracy")]
        : []),
    ]),
    "",
    "![validation curves](loss_curves.svg) ![final validation bits per byte](bars.svg)",
    "",
  ].join("\n");
}

function pictures(r: SuiteResults): Record<string, string> {
  const curves = r.arms.map((a) => {
    const rs = r.runs.filter((x) => x.arm === a.arm);
    const points = rs[0].curve.map(([tok], i): [number, number] => [
      tok,
      mean(rs.map((x) => x.curve[i][1] / Math.LN2)),
    ]);
    return { name: a.arm, points };
  });
  return {
    "loss_curves.svg": lineChart(curves, {
      title: `${r.suite}: validation (mean over seeds)`,
      xLabel: "training tokens (bytes)",
      yLabel: "bits per byte",
    }),
    "bars.svg": barChart(
      r.arms.map((a) => ({ name: a.arm, value: a.val_bpb_mean, err: a.val_bpb_sd })),
      {
        title: `${r.suite}: final validation bits per byte (± sd over seeds)`,
        xLabel: "arm",
        yLabel: "bits per byte",
      },
    ),
  };
}

function budgetOf(o: Record<string, unknown>, suite: Suite): Budget {
  const given = ["budgetTokens", "budgetFlops", "minutes"].filter((k) => o[k] !== undefined);
  if (given.length > 1) {
    throw new UsageError("give one of --budget-tokens, --budget-flops, --minutes");
  }
  if (o.budgetTokens !== undefined) return { tokens: o.budgetTokens as number };
  if (o.budgetFlops !== undefined) return { flops: o.budgetFlops as number };
  if (o.minutes !== undefined) {
    // Equal wall time per run: the suite's minutes shared by its runs.
    const runs = suite.arms.length * suite.seeds;
    return { seconds: +((o.minutes as number) * 60 / runs).toFixed(1) };
  }
  return suite.budget;
}

function positiveNumber(flag: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) {
      throw new UsageError(`${flag} needs a positive number, got "${v}"`);
    }
    return n;
  };
}

async function main() {
  const cmd = newCommand("experiment", "Train every arm of a suite at several seeds and compare.")
    .argument("<suite>", "a suite name (experiments/<name>.json) or a suite file")
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
    .option("--seeds <s>", "seeds per arm (default: the suite's)", positiveInt("--seeds"))
    .option("--resume", "keep the finished runs in the results folder and run the rest")
    .option("--fresh", "delete the finished runs in the results folder first")
    .option(
      "--render-only",
      "write results.md, the pictures and results.json's summary again from results.json " +
        "(training nothing)",
    )
    .option("--out <dir>", "results folder (default experiments/results/<suite>)")
    .option("--layout <layout>", `attention storage layout: ${LAYOUTS.join(" | ")}`, "grouped")
    .option("--json", "print results.json on stdout")
    .addHelpText(
      "after",
      `\nSuites (experiments/*.json): k-sweep, window, chunk, positions, follow-ups, reasoning, ` +
        `reasoning-parity, reasoning-copy. Statistics: ${METHOD}. Costs: ${COSTS_METHOD}.`,
    );
  const p = parseArgv(cmd), o = p.opts();
  if (!LAYOUTS.includes(o.layout)) {
    throw new UsageError(`--layout must be one of ${LAYOUTS.join(", ")}, got "${o.layout}"`);
  }
  const modes = ["resume", "fresh", "renderOnly"].filter((k) => o[k]);
  if (modes.length > 1) throw new UsageError("give one of --resume, --fresh, --render-only");
  const { suite, file } = await readSuite(p.args[0]);
  if (o.seeds) suite.seeds = o.seeds;
  const budget = budgetOf(o, suite);
  const dir = o.out ?? join("experiments", "results", suite.name);
  const armRuns = await resolveArms(suite, file);
  if (o.renderOnly) return await render(dir, suite, armRuns, o.json);
  if (o.fresh) await clearRuns(dir);
  else if (!o.resume && await hasRuns(dir)) {
    throw new UsageError(
      `${dir} holds finished runs: pass --resume to keep them and run the rest, or --fresh to start over`,
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  const log = (s: string) => console.error(s);
  const ctx = await kernelContext();
  // A task suite trains on its generated lines; its accuracy is measured on validation lines.
  const corpus = suite.task
    ? taskCorpus(suite.task, { trainBytes: 1 << 20, valExamples: 512 })
    : await brownCorpus();
  const taskExamples = suite.task ? examples(suite.task, 256, 2) : undefined;
  const seeds = seedsOf(suite.seeds);
  const jobs = suite.arms.flatMap((arm) => seeds.map((seed) => ({ arm, seed })));
  const runs: RunResult[] = [];
  const t0 = performance.now();
  let fresh = 0;
  for (const [i, { arm, seed }] of jobs.entries()) {
    const { spec } = armRuns.get(arm.name)!,
      config = runConfig(armRuns.get(arm.name)!.config, seed);
    const definition = {
      config,
      spec: spec.source,
      budget,
      tokens_factor: arm.tokens_factor,
      eval_points: suite.eval_points,
      layout: o.layout,
    };
    const tag = `[${i + 1}/${jobs.length}] ${arm.name} seed ${seed}`;
    const done = o.resume ? await loadRun(dir, arm.name, seed, definition, log) : undefined;
    if (done) {
      log(`${tag}: finished earlier (${done.val_bpb.toFixed(4)} bits/byte), kept`);
      runs.push(done);
      continue;
    }
    const result = await runOne(ctx, corpus, {
      arm,
      seed,
      config,
      budget,
      suite,
      layout: o.layout,
      tag,
      t0,
      left: jobs.length - i,
      fresh,
      taskExamples,
      spec,
    });
    fresh++;
    await saveRun(dir, { definition, result });
    log(
      `${tag}: ${
        result.val_bpb.toFixed(4)
      } bits/byte after ${result.steps} steps (${result.train_seconds} s)`,
    );
    runs.push(result);
  }
  const results = suiteResults(suite, armRuns, {
    command: `npx --yes deno@2.9.6 task experiment ${
      Deno.args.filter((a) => !["--resume", "--fresh", "--json"].includes(a)).join(" ")
    }`,
    adapter: ctx.gpu.adapterName,
    commit: await gitCommit(),
    date: new Date().toISOString().slice(0, 10),
    budget,
    seeds,
    runs,
  });
  await writeResults(dir, results, o.json);
}

/** What a suite's runs were made by, and the runs. */
type RunsMade = Pick<
  SuiteResults,
  "command" | "adapter" | "commit" | "date" | "budget" | "seeds" | "runs"
>;

/** results.json of a suite's runs: the suite's text, statistics and costs of today's code. */
function suiteResults(
  suite: Suite,
  armRuns: ReadonlyMap<string, RunConfig>,
  made: RunsMade,
): SuiteResults {
  const { command, adapter, commit, date, budget, seeds, runs } = made;
  return {
    suite: suite.name,
    description: suite.description,
    command,
    adapter,
    commit,
    date,
    budget,
    seeds,
    baseline: suite.baseline,
    method: METHOD,
    costs_method: COSTS_METHOD,
    arms: summarize(suite, runs, suiteCosts(armRuns)),
    runs,
  };
}

/** Every arm's config and spec (spec files relative to the suite file), before any work. */
async function resolveArms(suite: Suite, file: string): Promise<Map<string, RunConfig>> {
  const armRuns = new Map<string, RunConfig>();
  for (const arm of suite.arms) {
    try {
      armRuns.set(
        arm.name,
        await resolveRunConfig(armSections(suite, arm), { base: dirname(file) }),
      );
    } catch (e) {
      throw new UsageError(`suite ${suite.name}, arm "${arm.name}": ${(e as Error).message}`);
    }
  }
  return armRuns;
}

/**
 * `--render-only`: the summary, table and pictures of an existing results.json again, with the
 * suite file's arms and today's columns; its runs, command, adapter, commit and date are kept.
 */
async function render(
  dir: string,
  suite: Suite,
  armRuns: ReadonlyMap<string, RunConfig>,
  json: boolean | undefined,
) {
  const path = join(dir, "results.json");
  let old: SuiteResults;
  try {
    old = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new UsageError(
      `--render-only needs ${path} from a finished suite (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const known = new Set(suite.arms.map((a) => a.name));
  const stray = old.runs.find((r) => !known.has(r.arm));
  if (stray) {
    throw new UsageError(
      `${path} holds runs of arm "${stray.arm}", which suite ${suite.name} lacks`,
    );
  }
  await writeResults(dir, suiteResults(suite, armRuns, old), json);
}

async function writeResults(dir: string, results: SuiteResults, json: boolean | undefined) {
  const enc = new TextEncoder();
  await writeFileAtomic(
    join(dir, "results.json"),
    enc.encode(JSON.stringify(results, null, 1) + "\n"),
  );
  await writeFileAtomic(join(dir, "results.md"), enc.encode(markdown(results)));
  for (const [name, svg] of Object.entries(pictures(results))) {
    await writeFileAtomic(join(dir, name), enc.encode(svg));
  }
  console.error(`wrote ${dir}/results.{json,md}, loss_curves.svg, bars.svg`);
  if (json) console.log(JSON.stringify(results));
  else console.log(markdown(results));
}

async function runOne(
  ctx: Awaited<ReturnType<typeof kernelContext>>,
  corpus: Corpus,
  j: {
    arm: Arm;
    seed: number;
    config: ReturnType<typeof runConfig>;
    budget: Budget;
    suite: Suite;
    layout: Layout;
    tag: string;
    t0: number;
    left: number;
    fresh: number;
    taskExamples?: Example[];
    spec: AttentionSpec;
  },
): Promise<RunResult> {
  let last = 0;
  return await runArm(ctx, j.config, corpus, {
    arm: j.arm.name,
    seed: j.seed,
    budget: j.budget,
    tokensFactor: j.arm.tokens_factor,
    evalPoints: j.suite.eval_points,
    taskExamples: j.taskExamples,
    layout: j.layout,
    spec: j.spec,
    progress: (step, steps, loss) => {
      const now = performance.now();
      if (now - last < 2000 && step < steps) return;
      last = now;
      const elapsed = (now - j.t0) / 1000;
      const eta = j.fresh > 0 ? ` · suite ETA ~${Math.round(elapsed / j.fresh * j.left)} s` : "";
      console.error(`${j.tag}: step ${step}/${steps} loss ${loss.toFixed(3)}${eta}`);
    },
  });
}

if (import.meta.main) await runCommand(main);
