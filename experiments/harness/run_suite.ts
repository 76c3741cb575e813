/**
 * Running a suite, what `deno task experiment` calls: every arm of a suite (experiments/<suite>.json,
 * or a path) at several seeds on the Brown corpus or the suite's task, on one of the engines
 * (experiments/harness/engines.ts: WebGPU in this process, or PyTorch processes `jobs` at a time),
 * with progress across runs; each finished run is stored under the results folder (runs/, so a
 * killed suite resumes where it stopped), then results.json, results.md and the pictures
 * (report.ts). `render` writes the summary, table and pictures again from an existing
 * results.json (its runs, command, engine, commit and date kept) and the suite file, training
 * nothing and needing no GPU.
 */
import { dirname, join, resolve } from "node:path";
import { armSections, type Budget, parseSuite, runConfig, seedsOf, type Suite } from "./suite.ts";
import type { RunResult } from "./run.ts";
import { examples, taskCorpus } from "./tasks.ts";
import { clearRuns, gitCommit, hasRuns, loadRun, saveRun } from "./store.ts";
import { METHOD, suiteCosts, type SuiteResults, summarize, writeResults } from "./report.ts";
import { type Engine, type EngineJob, type EngineName, webgpuEngine } from "./engines.ts";
import { checkBlasDir, TorchEngine } from "./torch_engine.ts";
import { COSTS_METHOD } from "./costs.ts";
import { resolveRunConfig, type RunConfig } from "../../runtime/host/config_file.ts";
import { brownCorpus } from "../../runtime/host/corpus.ts";
import { hostContext } from "../../runtime/host/gpu_options.ts";
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
  /** Default `webgpu`. */
  engine?: EngineName;
  /** Runs side by side (torch only; default 1). */
  jobs?: number;
  /** A folder whose libblas.so.3 the torch runs load first (torch only). */
  torchBlas?: string;
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
  const torchBlas = await checkEngine(o, suite, budget, armRuns);
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
    ? taskCorpus(suite.task, { trainBytes: 4 << 20, valExamples: 512 })
    : await brownCorpus();
  const taskExamples = suite.task ? examples(suite.task, 256, 2) : undefined;
  const seeds = seedsOf(suite.seeds);
  const commit = await gitCommit(); // the code the runs are made with, not the code at the end
  const engine = o.engine === "torch"
    ? await TorchEngine.open({ ctx, corpus, layout: o.layout, blas: torchBlas })
    : webgpuEngine(ctx, corpus, o.layout);
  try {
    const e = engine.info;
    log(`engine: ${e.name} (${e.version}; ${e.blas}; ${e.device})`);
    const runs = await runAll(
      engine,
      suite.arms.flatMap((arm) =>
        seeds.map((seed) => ({
          arm: arm.name,
          seed,
          config: runConfig(armRuns.get(arm.name)!.config, seed),
          spec: armRuns.get(arm.name)!.spec,
          budget,
          tokensFactor: arm.tokens_factor,
          evalPoints: suite.eval_points,
          taskExamples,
        }))
      ),
      {
        dir,
        jobs: o.jobs ?? 1,
        resume: !!o.resume,
        engine: o.engine ?? "webgpu",
        layout: o.layout,
        log,
      },
    );
    const results = suiteResults(suite, armRuns, {
      command: o.command,
      adapter: ctx.gpu.adapterName,
      engine: engine.info,
      commit,
      date: new Date().toISOString().slice(0, 10),
      budget,
      seeds,
      runs,
    });
    await writeResults(dir, results);
    return results;
  } finally {
    await engine.close();
  }
}

/**
 * Every run of a suite, in job order: a stored run with the same definition is kept (`resume`),
 * the others train on the engine, `jobs` at a time; each is stored as soon as it finishes. The
 * first failure stops the runs in flight and is thrown.
 */
async function runAll(
  engine: Engine,
  jobs: EngineJob[],
  o: {
    dir: string;
    jobs: number;
    resume: boolean;
    engine: EngineName;
    layout: Layout;
    log: (line: string) => void;
  },
): Promise<RunResult[]> {
  const runs: RunResult[] = new Array(jobs.length), todo: number[] = [];
  const definition = (j: EngineJob) => ({
    config: j.config,
    spec: j.spec.source,
    budget: j.budget,
    tokens_factor: j.tokensFactor,
    eval_points: j.evalPoints,
    layout: o.layout,
    engine: o.engine,
  });
  const tag = (i: number) => `[${i + 1}/${jobs.length}] ${jobs[i].arm} seed ${jobs[i].seed}`;
  for (const [i, j] of jobs.entries()) {
    const done = o.resume ? await loadRun(o.dir, j.arm, j.seed, definition(j), o.log) : undefined;
    if (done) {
      o.log(`${tag(i)}: finished earlier (${done.val_bpb.toFixed(4)} bits/byte), kept`);
      runs[i] = done;
    } else todo.push(i);
  }
  const t0 = performance.now(), stop = new AbortController();
  let next = 0, finished = 0, failure: unknown;
  const eta = () => {
    const s = (performance.now() - t0) / 1000;
    return finished > 0
      ? ` · suite ETA ~${Math.round(s / finished * (todo.length - finished))} s`
      : "";
  };
  const worker = async () => {
    while (next < todo.length && failure === undefined) {
      const i = todo[next++], j = jobs[i];
      let last = 0;
      j.progress = (step, steps, loss) => {
        const now = performance.now();
        if (now - last < 2000 && step < steps) return;
        last = now;
        o.log(`${tag(i)}: step ${step}/${steps} loss ${loss.toFixed(3)}${eta()}`);
      };
      try {
        const r = await engine.run(j, stop.signal);
        await saveRun(o.dir, { definition: definition(j), result: r });
        runs[i] = r;
        finished++;
        o.log(
          `${tag(i)}: ${
            r.val_bpb.toFixed(4)
          } bits/byte after ${r.steps} steps (${r.train_seconds} s)${eta()}`,
        );
      } catch (e) {
        failure ??= e;
        stop.abort();
      }
    }
  };
  const n = Math.min(o.jobs, engine.maxJobs, todo.length);
  await Promise.all(Array.from({ length: n }, worker));
  if (failure !== undefined) throw failure;
  return runs;
}

/**
 * Refuses, before any work, what the engine cannot do: several jobs or a BLAS folder on WebGPU, a
 * wall-time budget or per-copy embedding tables on PyTorch. Returns the BLAS folder, resolved.
 */
async function checkEngine(
  o: SuiteRequest,
  suite: Suite,
  budget: Budget,
  armRuns: ReadonlyMap<string, RunConfig>,
): Promise<string | undefined> {
  if (o.engine !== "torch") {
    if ((o.jobs ?? 1) > 1) {
      throw new Error(
        "--jobs runs several PyTorch processes side by side: add --engine torch (a WebGPU run " +
          "already uses every core through the adapter)",
      );
    }
    if (o.torchBlas) throw new Error("--torch-blas is for --engine torch");
    return undefined;
  }
  if ("seconds" in budget) {
    throw new Error(
      "--minutes times WebGPU steps: with --engine torch give --budget-tokens or --budget-flops",
    );
  }
  for (const [arm, r] of armRuns) {
    if (r.config.phd.embeddings === "per-copy") {
      throw new Error(
        `suite ${suite.name}, arm "${arm}": per-copy embedding tables train only with --engine ` +
          "webgpu (python/phd_torch builds one shared table)",
      );
    }
  }
  return o.torchBlas === undefined ? undefined : await checkBlasDir(o.torchBlas);
}

/** What a suite's runs were made by, and the runs. */
type RunsMade = Pick<
  SuiteResults,
  "command" | "adapter" | "engine" | "commit" | "date" | "budget" | "seeds" | "runs"
>;

/** results.json of a suite's runs: the suite's text, statistics and costs of today's code. */
function suiteResults(
  suite: Suite,
  armRuns: ReadonlyMap<string, RunConfig>,
  made: RunsMade,
): SuiteResults {
  const { command, adapter, engine, commit, date, budget, seeds, runs } = made;
  return {
    suite: suite.name,
    description: suite.description,
    command,
    adapter,
    engine,
    commit,
    date,
    budget,
    seeds,
    baseline: suite.baseline,
    method: METHOD,
    costs_method: COSTS_METHOD,
    ...summarize(suite, runs, suiteCosts(armRuns)),
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
 * suite file's arms, comparisons and today's columns; its runs, command, engine, commit and date
 * are kept.
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
