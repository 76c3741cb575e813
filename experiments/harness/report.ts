/**
 * A suite's results: per-arm statistics over seeds, the comparisons (every arm against the
 * baseline and the suite's extra pairs, paired by seed, Holm-corrected per metric:
 * runtime/measure/stats.ts), each arm's serving costs (costs.ts), results.md (the engine, the
 * table, one plain line per comparison with its seed spread) and the pictures (validation curves,
 * final bits per byte with the seed spread, task accuracy, and loss against training tokens for
 * arms in a `series`).
 */
import { join } from "node:path";
import type { Budget, Suite } from "./suite.ts";
import type { RunResult } from "./run.ts";
import type { EngineInfo } from "./engines.ts";
import {
  compare,
  type Comparison,
  mean,
  sd,
  type Verdict,
  withHolm,
} from "../../runtime/measure/stats.ts";
import { type ArmCosts, armCosts } from "./costs.ts";
import { writeFileAtomic } from "../../runtime/host/files.ts";
import type { RunConfig } from "../../runtime/host/config_file.ts";
import { barChart, lineChart } from "../../viz/chart.ts";
import { bitsPerToken } from "../../runtime/train/evaluate.ts";

/** The metrics compared: final validation bits per byte, and greedy accuracy on task suites. */
export type Metric = "val_bpb" | "accuracy";

/** One comparison: `arm` minus `against` on a metric, paired by seed. */
export interface ComparisonRow extends Comparison {
  arm: string;
  against: string;
  metric: Metric;
}

/** Per arm: its runs and the seed statistics. */
export interface ArmSummary {
  arm: string;
  note?: string;
  series?: string;
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
  vs_baseline?: ComparisonRow;
  /** Serving costs at the arm's config (experiments/harness/costs.ts). */
  kv_bytes_per_token: number;
  kv_formula: string;
  prefill_rows: number;
  prefill_flops: number;
  /** Task suites: greedy exact-match accuracy over seeds, and against the baseline. */
  accuracy_mean?: number;
  accuracy_sd?: number;
  accuracy_vs_baseline?: ComparisonRow;
}

/** What results.json holds. */
export interface SuiteResults {
  suite: string;
  description: string;
  command: string;
  /** The WebGPU adapter of the process (task accuracy runs there whatever the engine). */
  adapter: string;
  /** What trained the runs (absent in results written before engines were named: WebGPU). */
  engine?: EngineInfo;
  commit: string;
  date: string;
  budget: Budget;
  seeds: number[];
  baseline: string;
  method: string;
  /** How the KV and prefill columns are computed, at which context. */
  costs_method: string;
  arms: ArmSummary[];
  comparisons: ComparisonRow[];
  runs: RunResult[];
}

export const METHOD =
  "final validation loss in bits per byte (task suites also greedy exact-match " +
  "accuracy); per arm the mean and sample standard deviation over seeds; per comparison (every " +
  "arm against the baseline, and the suite's extra pairs) the mean of per-seed differences (same " +
  "seed: same initial weights and batch order), their standard deviation, a 95% paired " +
  "t-interval and the paired t-test's two-sided p; Holm's step-down correction over each " +
  "metric's comparisons in the suite; a difference is beyond seed noise when its Holm-adjusted p " +
  "is below 0.05 (the uncorrected interval's verdict is given beside it)";

/** Per-arm statistics, the comparisons (Holm-corrected per metric) and each arm's costs. */
export function summarize(
  suite: Suite,
  runs: RunResult[],
  costs: ReadonlyMap<string, ArmCosts>,
): { arms: ArmSummary[]; comparisons: ComparisonRow[] } {
  const ran = suite.arms.filter((a) => runs.some((r) => r.arm === a.name));
  const names = new Set(ran.map((a) => a.name));
  const pairs = [
    ...ran.filter((a) => a.name !== suite.baseline).map((a) => ({
      arm: a.name,
      against: suite.baseline,
    })),
    ...suite.comparisons,
  ].filter((p) => names.has(p.arm) && names.has(p.against));
  const comparisons = (["val_bpb", "accuracy"] as const).flatMap((metric) => {
    const higher = metric === "accuracy";
    const by = (arm: string) =>
      new Map(
        runs.filter((r) => r.arm === arm && r[metric] !== undefined).map((
          r,
        ) => [r.seed, r[metric]!]),
      );
    const rows = pairs.map((p) => ({ ...p, metric, ...compare(by(p.arm), by(p.against), higher) }))
      .filter((c) => c.n > 0);
    return withHolm(rows, higher) as ComparisonRow[];
  });
  const vs = (arm: string, metric: Metric) =>
    comparisons.find((c) => c.metric === metric && c.arm === arm && c.against === suite.baseline);
  const arms = ran.map((arm): ArmSummary => {
    const rs = runs.filter((r) => r.arm === arm.name);
    const v = rs.map((r) => r.val_bpb);
    const a = rs.flatMap((r) => r.accuracy === undefined ? [] : [r.accuracy]);
    return {
      arm: arm.name,
      note: arm.note,
      series: arm.series,
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
      vs_baseline: vs(arm.name, "val_bpb"),
      ...(a.length === 0 ? {} : {
        accuracy_mean: mean(a),
        accuracy_sd: sd(a),
        accuracy_vs_baseline: vs(arm.name, "accuracy"),
      }),
      ...costColumns(costs.get(arm.name)!),
    };
  });
  return { arms, comparisons };
}

function costColumns(c: ArmCosts) {
  const { kv_bytes_per_token, kv_formula, prefill_rows, prefill_flops } = c;
  return { kv_bytes_per_token, kv_formula, prefill_rows, prefill_flops };
}

/** Every arm's serving costs, from its resolved config and spec. */
export function suiteCosts(armRuns: ReadonlyMap<string, RunConfig>): Map<string, ArmCosts> {
  return new Map([...armRuns].map(([arm, r]) => [arm, armCosts(r.config.model, r.spec)]));
}

/** How a metric's values are written: bits per byte, or accuracy in percentage points. */
const UNITS: Record<Metric, { fmt: (x: number) => string; unit: string }> = {
  val_bpb: { fmt: (x) => x.toFixed(4), unit: "bits/byte" },
  accuracy: { fmt: (x) => (100 * x).toFixed(1), unit: "points of accuracy" },
};

const signed = (s: string) => (s.startsWith("-") ? s : `+${s}`);
/** `p = 0.0123`, or `p < 0.0001` (`name` is what the p is called). */
const pIs = (
  name: string,
  p: number,
) => (p < 1e-4 ? `${name} < 0.0001` : `${name} = ${p.toFixed(4)}`);

function verdictWords(v: Verdict, against: string): string {
  return v === "within seed noise" || v === "too few seeds"
    ? v
    : `${v} than ${against}, beyond seed noise`;
}

/** One plain line per comparison: effect, interval, p, Holm's verdict, and the seed spread. */
function comparisonLine(c: ComparisonRow, r: SuiteResults): string {
  const { fmt, unit } = UNITS[c.metric];
  const d = `${c.arm} vs ${c.against}: ${signed(fmt(c.diff))} ${unit}`;
  if (!c.ci) return `- ${d} (one seed: no noise estimate).`;
  const spreadOf = (arm: string) => {
    const a = r.arms.find((x) => x.arm === arm)!;
    return fmt(c.metric === "val_bpb" ? a.val_bpb_sd : a.accuracy_sd!);
  };
  const differs = c.verdict !== c.verdict_holm ? ` (uncorrected: ${c.verdict})` : "";
  return `- ${d} (95% CI [${fmt(c.ci[0])}, ${fmt(c.ci[1])}], ${pIs("p", c.p!)}, ` +
    `${pIs("Holm p", c.p_holm!)}): ${
      verdictWords(c.verdict_holm!, c.against)
    }${differs}. Seed spread ` +
    `(sd over ${c.n} seeds): ${fmt(c.sd)} of the differences, ${spreadOf(c.arm)} of ${c.arm}, ` +
    `${spreadOf(c.against)} of ${c.against}.`;
}

function vsCell(c: ComparisonRow | undefined): string {
  if (!c) return "baseline";
  const { fmt } = UNITS[c.metric];
  if (!c.ci) return `${signed(fmt(c.diff))} (${c.verdict})`;
  return `${signed(fmt(c.diff))} [${fmt(c.ci[0])}, ${fmt(c.ci[1])}] ${pIs("Holm p", c.p_holm!)}: ` +
    c.verdict_holm;
}

/** The engine line of results.md. */
function engineLine(r: SuiteResults): string {
  const e = r.engine;
  if (!e) return `Engine: WebGPU on ${r.adapter} (written before engines were recorded).`;
  const extra = [
    e.threads && `${e.threads} thread(s) per run`,
    e.attention && `attention: ${e.attention}`,
  ]
    .filter(Boolean).join("; ");
  return `Engine: ${e.name} (${e.version}); BLAS: ${e.blas}; device: ${e.device}` +
    `${extra ? `; ${extra}` : ""}. Task accuracy and costs are computed on WebGPU (${r.adapter}).`;
}

/** results.md: what ran and on what, the table, and one plain line per comparison. */
export function markdown(r: SuiteResults): string {
  const budget = Object.entries(r.budget).map(([k, v]) => `${v} ${k}`).join("");
  const task = r.arms.some((a) => a.accuracy_mean !== undefined);
  const f4 = (x: number) => x.toFixed(4), pct = (x: number) => (100 * x).toFixed(1);
  const family = (m: Metric) => r.comparisons.filter((c) => c.metric === m);
  return [
    `# Experiment ${r.suite}`,
    "",
    ...(r.description ? [r.description, ""] : []),
    `\`${r.command}\`, commit ${r.commit}, ${r.date}. ${
      engineLine(r)
    } Budget per run: ${budget}; ` +
    `seeds ${r.seeds.join(", ")}. Statistics: ${r.method}. Costs: ${r.costs_method}.`,
    "",
    `| arm | spec | params | steps | tokens | train GFLOP | train s | val bits/byte (mean ± sd) | vs baseline [95% CI], Holm | KV bytes/token | prefill GFLOP |${
      task ? " accuracy % (mean ± sd) | vs baseline [95% CI], Holm |" : ""
    }`,
    `| --- | ---- | -----: | ----: | -----: | ----------: | ------: | ------------------------: | -------------------- | -------------: | ------------: |${
      task ? " ---: | --- |" : ""
    }`,
    ...r.arms.map((a) => {
      const name = a.note ? `${a.arm} (${a.note})` : a.arm;
      const acc = task
        ? ` ${pct(a.accuracy_mean!)} ± ${pct(a.accuracy_sd!)} | ${vsCell(a.accuracy_vs_baseline)} |`
        : "";
      return `| ${name} | ${a.spec} | ${a.params} | ${a.steps} | ${a.tokens} | ` +
        `${(a.flops / 1e9).toPrecision(3)} | ${a.train_seconds} | ${f4(a.val_bpb_mean)} ± ` +
        `${f4(a.val_bpb_sd)} | ${vsCell(a.vs_baseline)} | ${+a.kv_bytes_per_token.toFixed(1)} ` +
        `(${a.kv_formula}) | ${(a.prefill_flops / 1e9).toPrecision(3)} |${acc}`;
    }),
    "",
    ...(["accuracy", "val_bpb"] as const).flatMap((m) =>
      family(m).length === 0 ? [] : [
        `Comparisons of ${
          m === "val_bpb" ? "validation bits per byte (lower is better)" : "accuracy"
        }, Holm-corrected over these ${family(m).length}:`,
        "",
        ...family(m).map((c) => comparisonLine(c, r)),
        "",
      ]
    ),
    `![validation curves](loss_curves.svg) ![final validation bits per byte](bars.svg)${
      task ? " ![accuracy](accuracy.svg)" : ""
    }${r.arms.some((a) => a.series) ? " ![loss against training tokens](series.svg)" : ""}`,
    "",
  ].join("\n");
}

export function pictures(r: SuiteResults): Record<string, string> {
  const curves = r.arms.map((a) => {
    const rs = r.runs.filter((x) => x.arm === a.arm);
    const points = rs[0].curve.map(([tok], i): [number, number] => [
      tok,
      mean(rs.map((x) => bitsPerToken(x.curve[i][1]))),
    ]);
    return { name: a.arm, points };
  });
  const out: Record<string, string> = {
    "loss_curves.svg": lineChart(curves, {
      title: `${r.suite}: validation (mean over seeds)`,
      xLabel: "training tokens (bytes)",
      yLabel: "bits per byte",
      logX: r.arms.some((a) => a.series),
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
  if (r.arms.some((a) => a.accuracy_mean !== undefined)) {
    out["accuracy.svg"] = barChart(
      r.arms.map((a) => ({
        name: a.arm,
        value: 100 * a.accuracy_mean!,
        err: 100 * a.accuracy_sd!,
      })),
      {
        title: `${r.suite}: greedy exact-match accuracy (± sd over seeds)`,
        xLabel: "arm",
        yLabel: "accuracy (%)",
      },
    );
  }
  const series = [...new Set(r.arms.flatMap((a) => a.series ? [a.series] : []))];
  if (series.length > 0) {
    out["series.svg"] = lineChart(
      series.map((name) => ({
        name,
        points: r.arms.filter((a) => a.series === name).map((a): [number, number] => [
          a.tokens,
          a.val_bpb_mean,
        ]),
      })),
      {
        title: `${r.suite}: final validation bits per byte against training tokens (mean)`,
        xLabel: "training tokens per run (bytes, log scale)",
        yLabel: "bits per byte",
        logX: true,
      },
    );
  }
  return out;
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
