/**
 * Size stress: every kernel variant the tuner can choose, of both adapter classes, run on this
 * adapter at the largest sizes the benchmarks and the demo use, against float64. A kernel can be
 * right at the tests' small shapes and wrong at a realistic one (the dense attention kernel was off
 * by 0.011 at 4096 tokens on lavapipe: runtime/gpu/device.ts `loopBudget`), so every candidate is
 * checked where it will run.
 *
 *   deno task bench stress [--quick] [--json] [--class cpu|gpu] [--kernel attention|matmul]
 *
 * Attention (forward + backward, o, lse, dq, dk, dv), the candidates of `attentionCandidates`:
 * - bench attention's largest case: PHD-CSWA(16, 32), K = 4, L = 2048, grouped, d = 64, one head
 *   (8192 tokens; its dense and tfjs rows stop at 4096, the tuner's dense candidate does not);
 * - bench scaling's longest timed training attention: vanilla causal at 8192 positions in the
 *   default model (d = 16, 4 heads, 2 KV heads);
 * - the demo's training attention (`DEMO_CONFIG`: batch 8, 128 positions, PHD-CSWA K = 2).
 * Each is judged by the kernel tests' rule (reference/attention.ts `attentionErrors`): every
 * output within twice the naive float32 error of float64 plus the floor.
 *
 * Matmul, the candidates of `matmulCandidates` for each shape: the training steps of the demo, of
 * bench matmul's default config and of bench scaling's 8192-token vanilla row (read from their
 * graphs), checked as the tuner checks them (`matmulTask`: twice the naive float32 error of
 * float64, plus 1e-6).
 *
 * Candidates are pruned as the tuner prunes them on this device (limits, and the loop budget on
 * llvmpipe and lavapipe); every other one is built and run. `--quick`: the classes' quick spaces,
 * the attention case at 4096 tokens (K = 4, L = 1024: where the dense kernel failed) and the
 * demo's problems. Exit status 1 when any candidate is wrong or fails to run.
 */
import type { AdapterClass, GpuContext } from "../runtime/gpu/device.ts";
import { ADAPTER_CLASSES, gpuLimits } from "../runtime/gpu/device.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import type { KernelContext } from "../runtime/gpu/kernel.ts";
import {
  type AttentionShape,
  FlashAttention,
  type HostInputs,
} from "../runtime/kernels/attention.ts";
import { type Config, DEFAULT_CONFIG, DEMO_CONFIG } from "../runtime/model/config.ts";
import {
  attentionCandidates,
  attentionPrune,
  configAttentionShape,
} from "../runtime/tune/attention.ts";
import { configMatmulShapes, matmulCandidates, matmulTask } from "../runtime/tune/matmul.ts";
import { randomOperands } from "../runtime/tune/engine.ts";
import type { MatmulShape } from "../runtime/kernels/matmul.ts";
import { attentionErrors, referenceAttention } from "../reference/attention.ts";
import { D } from "./attention.ts";
import { C, specOf, W } from "./inference.ts";
import { trainConfig } from "./scaling.ts";
import { fail, flag } from "./results.ts";

const HELP = `usage: deno task bench stress [--quick] [--json] [--class cpu|gpu]
  [--kernel attention|matmul]

Runs every attention and matmul variant the tuner can choose, for both adapter classes (or the
one given), on this adapter at the largest sizes the benchmarks and the demo use, and checks each
against float64. Exit status 1 when any is wrong.
  --quick     the classes' quick spaces; attention at 4096 tokens and the demo's problems
  --json      one JSON object: the adapter and a row per candidate and problem`;

/** One candidate on one problem. */
interface StressRow {
  adapter_class: AdapterClass;
  kernel: "attention" | "matmul";
  problem: string;
  variant: string;
  /** `ok`, `wrong` (past the tolerance), `failed` (threw), or `pruned` (not run on this device). */
  status: "ok" | "wrong" | "failed" | "pruned";
  /** Largest error / allowed error over the outputs (ok below 1); the reason when not run. */
  worst?: number;
  detail?: string;
  /** Wall time of the run, pipelines included. */
  ms?: number;
}

/** An attention problem of the sweep: a name and the shape it is run at. */
interface AttentionProblem {
  name: string;
  shape: AttentionShape;
}

/** The attention problems (see the header). */
function attentionProblems(quick: boolean): AttentionProblem[] {
  const L = quick ? 1024 : 2048;
  const bench: AttentionProblem = {
    name: `bench attention: PHD-CSWA(${W}, ${C}) K 4 L ${L} grouped d ${D}`,
    shape: {
      spec: specOf("phd-cswa", 4),
      headDim: D,
      layout: "grouped",
      L,
      batch: 1,
      heads: 1,
      kvHeads: 1,
    },
  };
  const config = (name: string, c: Config): AttentionProblem => {
    const s = configAttentionShape(c, "grouped");
    return {
      name: `${name}: ${s.spec.name} ${s.batch}x${s.heads}/${s.kvHeads} L ${s.L} d ${s.headDim}`,
      shape: s,
    };
  };
  const demo = config("demo training", DEMO_CONFIG);
  return quick ? [bench, demo] : [
    bench,
    config("bench scaling training", trainConfig("vanilla", 1, 8192)),
    demo,
  ];
}

/** The matmul shapes of the sweep: each training step's products, merged. */
function matmulShapes(ctx: KernelContext, quick: boolean): (MatmulShape & { what: string })[] {
  const configs: [string, Config][] = [["demo", DEMO_CONFIG], ["bench matmul", DEFAULT_CONFIG]];
  if (!quick) configs.push(["bench scaling 8192", trainConfig("vanilla", 1, 8192)]);
  const out: (MatmulShape & { what: string })[] = [];
  for (const [name, c] of configs) {
    for (const s of configMatmulShapes(ctx, c)) {
      const same = out.find((o) =>
        o.trans === s.trans && o.M === s.M && o.N === s.N && o.inner === s.inner
      );
      if (same) same.what += `; ${name}`;
      else out.push({ trans: s.trans, M: s.M, N: s.N, inner: s.inner, what: name });
    }
  }
  return out;
}

/** The rows of one attention problem: float64 once, then every candidate of each class. */
async function stressAttention(
  ctx: KernelContext,
  classes: AdapterClass[],
  p: AttentionProblem,
  o: { quick: boolean; log: (s: string) => void },
): Promise<StressRow[]> {
  const s = p.shape, d = s.headDim, N = s.spec.K * s.L;
  const rand = randomOperands(1);
  const qn = s.batch * s.heads * N * d, kvn = s.batch * s.kvHeads * N * d;
  const x = { q: rand(qn), k: rand(kvn), v: rand(kvn), dO: rand(qn) };
  const problem = {
    spec: s.spec,
    L: s.L,
    layout: s.layout,
    batch: s.batch,
    heads: s.heads,
    kvHeads: s.kvHeads,
    headDim: d,
  };
  const t0 = performance.now();
  const ref = referenceAttention(problem, x), naive = referenceAttention(problem, x, "f32");
  o.log(
    `  float64 and naive float32 references: ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  const rows: StressRow[] = [];
  for (const cls of classes) {
    rows.push(...await attentionCandidatesRows(ctx, cls, p, { ...o, x, ref, naive }));
  }
  return rows;
}

/** Every candidate of a class on an attention problem, against its references. */
async function attentionCandidatesRows(
  ctx: KernelContext,
  cls: AdapterClass,
  p: AttentionProblem,
  o: {
    quick: boolean;
    log: (s: string) => void;
    x: HostInputs & { dO: Float32Array };
    ref: ReturnType<typeof referenceAttention>;
    naive: ReturnType<typeof referenceAttention>;
  },
): Promise<StressRow[]> {
  const s = p.shape, d = s.headDim;
  const gpu: GpuContext = { ...ctx.gpu, adapterClass: cls }, limits = gpuLimits(gpu);
  const rows: StressRow[] = [];
  const candidates = attentionCandidates(d, { adapterClass: cls, quick: o.quick, limits });
  for (const c of candidates) {
    const row: StressRow = {
      adapter_class: cls,
      kernel: "attention",
      problem: p.name,
      variant: c.name,
      status: "ok",
    };
    const pruned = attentionPrune(c.params, s, limits);
    if (pruned) {
      rows.push({ ...row, status: "pruned", detail: pruned });
      continue;
    }
    const t = performance.now();
    try {
      const fa = new FlashAttention(gpu, ctx.cache, s.spec, {
        headDim: d,
        layout: s.layout,
        ...c.params,
      });
      const got = await fa.run(o.x, {
        L: s.L,
        batch: s.batch,
        heads: s.heads,
        kvHeads: s.kvHeads,
      });
      const errs = attentionErrors(got, o.ref, o.naive);
      row.ms = Math.round(performance.now() - t);
      row.worst = Math.max(...Object.values(errs).map((e) => e.err / e.allowed));
      const bad = Object.entries(errs).filter(([, e]) => !e.ok);
      if (bad.length) {
        row.status = "wrong";
        row.detail = bad.map(([k, e]) =>
          `${k} ${e.err.toExponential(2)} (naive ${e.naive.toExponential(2)})`
        )
          .join(", ");
      }
    } catch (e) {
      row.status = "failed";
      row.detail = (e as Error).message.split("\n")[0];
    }
    o.log(
      `  ${cls} ${c.name}: ${row.status}${row.ms ? ` ${row.ms} ms` : ""}${
        row.detail ? ` (${row.detail})` : ""
      }`,
    );
    rows.push(row);
  }
  return rows;
}

/** The rows of one matmul shape for one class, checked by the tuner's own task. */
async function stressMatmul(
  ctx: KernelContext,
  cls: AdapterClass,
  s: MatmulShape & { what: string },
  o: { quick: boolean; log: (s: string) => void },
): Promise<StressRow[]> {
  const view: KernelContext = { gpu: { ...ctx.gpu, adapterClass: cls }, cache: ctx.cache };
  const limits = gpuLimits(view.gpu);
  const task = matmulTask(view, s, {
    candidates: matmulCandidates({ adapterClass: cls, quick: o.quick, shape: s, limits }),
  });
  const problem = `${s.trans} ${s.M}x${s.N}x${s.inner} (${s.what})`;
  const rows: StressRow[] = [];
  try {
    for (const c of task.candidates) {
      const row: StressRow = {
        adapter_class: cls,
        kernel: "matmul",
        problem,
        variant: c.name,
        status: "ok",
      };
      const pruned = task.prune?.(c.params);
      if (pruned) {
        rows.push({ ...row, status: "pruned", detail: pruned });
        continue;
      }
      const t = performance.now();
      try {
        if (!(await task.check(c.params))) row.status = "wrong";
      } catch (e) {
        row.status = "failed";
        row.detail = (e as Error).message.split("\n")[0];
      }
      row.ms = Math.round(performance.now() - t);
      if (row.status !== "ok") {
        o.log(`  ${cls} ${problem} ${c.name}: ${row.status} ${row.detail ?? ""}`);
      }
      rows.push(row);
    }
  } finally {
    task.destroy();
  }
  return rows;
}

/** The report: per class, kernel and problem, how many candidates passed, and every failure. */
function report(rows: StressRow[], adapter: string, command: string, seconds: number): string {
  const lines = [
    `\`${command}\` on ${adapter} (${seconds.toFixed(0)} s).`,
    "",
    "| class | kernel | problem | ok | wrong or failed | pruned | worst error / allowed |",
    "|---|---|---|--:|--:|--:|--:|",
  ];
  const groups = new Map<string, StressRow[]>();
  for (const r of rows) {
    const k = `${r.adapter_class}|${r.kernel}|${r.problem}`;
    groups.set(k, [...groups.get(k) ?? [], r]);
  }
  for (const [k, g] of groups) {
    const [cls, kernel, problem] = k.split("|");
    const count = (st: StressRow["status"][]) => g.filter((r) => st.includes(r.status)).length;
    const worst = Math.max(0, ...g.flatMap((r) => r.worst === undefined ? [] : [r.worst]));
    lines.push(
      `| ${cls} | ${kernel} | ${problem} | ${count(["ok"])} | ${count(["wrong", "failed"])} | ${
        count(["pruned"])
      } | ${kernel === "attention" ? worst.toFixed(2) : "-"} |`,
    );
  }
  const bad = rows.filter((r) => r.status === "wrong" || r.status === "failed");
  if (bad.length) {
    lines.push("", "Wrong or failed:", "");
    for (const r of bad) {
      lines.push(
        `- ${r.adapter_class} ${r.kernel} ${r.problem} ${r.variant}: ${r.status} ${r.detail ?? ""}`,
      );
    }
  }
  // What this device cannot run (a matmul split too short for its shape says nothing of it).
  const pruned = rows.filter((r) => r.status === "pruned" && !/^(split-K|kz) /.test(r.detail!));
  if (pruned.length) {
    lines.push("", "Pruned on this device (not run):", "");
    for (const r of pruned) {
      lines.push(`- ${r.adapter_class} ${r.kernel} ${r.problem} ${r.variant}: ${r.detail}`);
    }
  }
  return lines.join("\n");
}

export async function main(args: string[]) {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return;
  }
  const valued = ["--class", "--kernel"];
  for (const [i, a] of args.entries()) {
    const known = ["--quick", "--json", ...valued].includes(a) || valued.includes(args[i - 1]);
    if (!known) fail(`unknown argument ${a} (see --help)`);
  }
  const quick = args.includes("--quick"), json = args.includes("--json");
  const cls = flag(args, "--class"), kernel = flag(args, "--kernel");
  if (cls !== undefined && !(ADAPTER_CLASSES as readonly string[]).includes(cls)) {
    fail(`--class must be ${ADAPTER_CLASSES.join(" or ")}, got ${cls}`);
  }
  if (kernel !== undefined && kernel !== "attention" && kernel !== "matmul") {
    fail(`--kernel must be attention or matmul, got ${kernel}`);
  }
  const classes = cls ? [cls as AdapterClass] : [...ADAPTER_CLASSES];
  const log = (s: string) => json || console.error(s);
  const ctx = await createContext(gpuOptionsFromEnv());
  const t0 = performance.now();
  const rows: StressRow[] = [];
  if (kernel !== "matmul") {
    for (const p of attentionProblems(quick)) {
      log(`attention ${p.name}`);
      rows.push(...await stressAttention(ctx, classes, p, { quick, log }));
    }
  }
  if (kernel !== "attention") {
    for (const s of matmulShapes(ctx, quick)) {
      log(`matmul ${s.trans} ${s.M}x${s.N}x${s.inner} (${s.what})`);
      for (const c of classes) rows.push(...await stressMatmul(ctx, c, s, { quick, log }));
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const adapter = ctx.gpu.adapterName;
  const backend = Deno.env.get("DENO_WEBGPU_BACKEND");
  const name = backend ? `${adapter} (DENO_WEBGPU_BACKEND=${backend})` : adapter;
  const failed = rows.filter((r) => r.status === "wrong" || r.status === "failed").length;
  if (json) {
    console.log(JSON.stringify({ adapter: name, quick, seconds, failed, rows }));
  } else {
    const flags = args.filter((a) => a !== "--json").join(" ");
    console.log(report(rows, name, `deno task bench stress${flags ? " " + flags : ""}`, seconds));
  }
  ctx.gpu.device.destroy();
  if (failed) Deno.exit(1);
}

if (import.meta.main) await main(Deno.args);
