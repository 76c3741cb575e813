/**
 * A suite's results: per-arm statistics over seeds against the baseline (experiments/harness/
 * stats.ts), each arm's serving costs (costs.ts), results.md (the table and one plain line per
 * comparison) and the two pictures (validation curves, final bits per byte with the seed spread).
 */
import { join } from "node:path";
import type { Budget, Suite } from "./suite.ts";
import type { RunResult } from "./run.ts";
import { compare, type Comparison, mean, sd } from "./stats.ts";
import { type ArmCosts, armCosts } from "./costs.ts";
import { writeFileAtomic } from "../../runtime/host/files.ts";
import type { RunConfig } from "../../runtime/host/config_file.ts";
import { barChart, lineChart } from "../../viz/chart.ts";

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
  /** Serving costs at the arm's config (experiments/harness/costs.ts). */
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

export const METHOD =
  "final validation loss in bits per byte; per arm the mean and sample standard " +
  "deviation over seeds; against the baseline the mean of per-seed differences (arm - baseline, " +
  "same seed: same initial-weight stream and batch order) with a 95% paired t-interval; a " +
  "difference is beyond seed noise when the interval excludes 0";

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
export function suiteCosts(armRuns: ReadonlyMap<string, RunConfig>): Map<string, ArmCosts> {
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

export function pictures(r: SuiteResults): Record<string, string> {
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

/** Writes results.json, results.md and the pictures into `dir` (each atomically). */
export async function writeResults(dir: string, results: SuiteResults): Promise<void> {
  const enc = new TextEncoder();
  await writeFileAtomic(
    join(dir, "results.json"),
    enc.encode(JSON.stringify(results, null, 1) + "\n"),
  );
  await writeFileAtomic(join(dir, "results.md"), enc.encode(markdown(results)));
  for (const [name, svg] of Object.entries(pictures(results))) {
    await writeFileAtomic(join(dir, name), enc.encode(svg));
  }
}
