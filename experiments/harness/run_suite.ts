/**
 * Running a suite, what `deno task experiment` calls: every arm of a suite (experiments/<suite>.json,
 * or a path) at several seeds on the Brown corpus or the suite's task, one run after another with
 * progress across runs; each finished run is stored under the results folder (runs/, so a killed
 * suite resumes where it stopped), then results.json, results.md and the pictures (report.ts).
 * `render` writes the summary, table and pictures again from an existing results.json (its runs,
 * command, adapter, commit and date kept) and the suite file, training nothing and needing no GPU.
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
} from "./suite.ts";
import { runArm, type RunResult } from "./run.ts";
import { type Example, examples, taskCorpus } from "./tasks.ts";
import { clearRuns, gitCommit, hasRuns, loadRun, saveRun } from "./store.ts";
import { METHOD, suiteCosts, type SuiteResults, summarize, writeResults } from "./report.ts";
import { COSTS_METHOD } from "./costs.ts";
import { resolveRunConfig, type RunConfig } from "../../runtime/host/config_file.ts";
import { brownCorpus } from "../../runtime/host/corpus.ts";
import { hostContext } from "../../runtime/host/gpu_options.ts";
import type { KernelContext } from "../../runtime/gpu/kernel.ts";
import type { Corpus } from "../../runtime/data/batches.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Layout } from "../../compiler/layout.ts";
import { scoredPositions } from "../../compiler/analysis/leaks.ts";

const SUITES_DIR = new URL("../", import.meta.url);

/** The budget flags of `deno task experiment`. */
export interface BudgetFlags {
  budgetTokens?: number;
  budgetFlops?: number;
  minutes?: number;
}

/** What `runSuite` is asked. */
export interface SuiteRequest extends BudgetFlags {
  /** A suite name (experiments/<name>.json) or a suite file. */
  suite: string;
  seeds?: number;
  resume?: boolean;
  fresh?: boolean;
  renderOnly?: boolean;
  /** Results folder (default experiments/results/<suite>). */
  out?: string;
  layout: Layout;
  /** The command line recorded in results.json. */
  command: string;
  log?: (line: string) => void;
}

export async function readSuite(ref: string): Promise<{ suite: Suite; file: string }> {
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
    throw new Error(
      `no suite "${ref}": give a suite file or one of ${names.sort().join(", ")}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (e) {
    throw new Error(`${file} is not JSON: ${(e as Error).message}`);
  }
  try {
    return { suite: parseSuite(raw, ref), file };
  } catch (e) {
    throw new Error((e as Error).message);
  }
}

/** The budget flags: at most one of them, else the suite's own budget. */
export function budgetOf(o: BudgetFlags, suite: Suite): Budget {
  const given = [o.budgetTokens, o.budgetFlops, o.minutes].filter((x) => x !== undefined);
  if (given.length > 1) {
    throw new Error("give one of --budget-tokens, --budget-flops, --minutes");
  }
  if (o.budgetTokens !== undefined) return { tokens: o.budgetTokens };
  if (o.budgetFlops !== undefined) return { flops: o.budgetFlops };
  if (o.minutes !== undefined) {
    // Equal wall time per run: the suite's minutes shared by its runs.
    const runs = suite.arms.length * suite.seeds;
    return { seconds: +(o.minutes * 60 / runs).toFixed(1) };
  }
  return suite.budget;
}

/** Runs (or, with `renderOnly`, re-renders) a suite; returns what results.json holds. */
export async function runSuite(o: SuiteRequest): Promise<SuiteResults> {
  const modes = [o.resume, o.fresh, o.renderOnly].filter((x) => x);
  if (modes.length > 1) throw new Error("give one of --resume, --fresh, --render-only");
  const { suite, file } = await readSuite(o.suite);
  if (o.seeds) suite.seeds = o.seeds;
  const budget = budgetOf(o, suite);
  const dir = o.out ?? join("experiments", "results", suite.name);
  const armRuns = await resolveArms(suite, file);
  if (o.renderOnly) return await render(dir, suite, armRuns);
  if (o.fresh) await clearRuns(dir);
  else if (!o.resume && await hasRuns(dir)) {
    throw new Error(
      `${dir} holds finished runs: pass --resume to keep them and run the rest, or --fresh to start over`,
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  const log = o.log ?? (() => {});
  const ctx = await hostContext();
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
      log,
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
    command: o.command,
    adapter: ctx.gpu.adapterName,
    commit: await gitCommit(),
    date: new Date().toISOString().slice(0, 10),
    budget,
    seeds,
    runs,
  });
  await writeResults(dir, results);
  return results;
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
      const r = await resolveRunConfig(armSections(suite, arm), { base: dirname(file) });
      scoredPositions(r.spec, r.config.train.seq_len, { what: "train" });
      armRuns.set(arm.name, r);
    } catch (e) {
      throw new Error(`suite ${suite.name}, arm "${arm.name}": ${(e as Error).message}`);
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
): Promise<SuiteResults> {
  const path = join(dir, "results.json");
  let old: SuiteResults;
  try {
    old = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new Error(
      `--render-only needs ${path} from a finished suite (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const known = new Set(suite.arms.map((a) => a.name));
  const stray = old.runs.find((r) => !known.has(r.arm));
  if (stray) {
    throw new Error(
      `${path} holds runs of arm "${stray.arm}", which suite ${suite.name} lacks`,
    );
  }
  const results = suiteResults(suite, armRuns, old);
  await writeResults(dir, results);
  return results;
}

async function runOne(
  ctx: KernelContext,
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
    log: (line: string) => void;
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
      j.log(`${j.tag}: step ${step}/${steps} loss ${loss.toFixed(3)}${eta}`);
    },
  });
}
