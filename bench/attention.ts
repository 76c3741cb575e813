/**
 * Attention on the current adapter, side by side in one run: vanilla causal; PHD, PHD-SWA(16) and
 * PHD-CSWA(16, 32) for each K with the fused kernel in both storage layouts and with the
 * dense-masked kernel; and the same attention written with `@tensorflow/tfjs-backend-webgpu` ops
 * (matMul, additive mask, softmax, matMul; the backward in the same ops), what a TypeScript user would
 * write today. Forward, and forward + backward (all three gradients), one head of d = 64.
 *
 *   deno task bench attention [--json] [--quick] [--write] [--L 256,1024,2048] [--K 1,2,3,4]
 *     [--reps 3] [--max-dense-tokens 4096]
 *
 * Times are the median of `--reps` runs taken round-robin over every case of one L (so slow spells
 * of a shared machine hit all alike) after a warm-up round that builds every pipeline; each run is
 * one submit timed to `onSubmittedWorkDone`. The dense kernel and tfjs compute every pair whatever
 * the mask, so they run for vanilla and PHD-CSWA only (the table compares every variant of a K
 * against those), and only where K*L <= --max-dense-tokens. The tfjs output is checked against the fused
 * kernel's before its times count. `--write` replaces the "Attention" section of bench/RESULTS.md
 * and its plot.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import "@tensorflow/tfjs-backend-webgpu";
import type { Layout } from "../compiler/layout.ts";
import { classifyTiles } from "../compiler/analysis/tiles.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import type { GpuContext } from "../runtime/gpu/device.ts";
import { PipelineCache, readback, storageBuffer } from "../runtime/gpu/resources.ts";
import { FlashAttention } from "../runtime/kernels/attention.ts";
import { storageMask } from "../reference/attention.ts";
import { Rng } from "../runtime/data/rng.ts";
import { lineChart, type Series } from "../viz/chart.ts";
import { median } from "../runtime/measure/stats.ts";
import { maxErr } from "./matmul.ts";
import { writeResults } from "./results.ts";
import { C, specOf, W } from "./inference.ts";
import { timeRounds } from "../runtime/measure/timing.ts";

/** Head dim of every case (one head). */
export const D = 64;
const VARIANTS = ["phd", "phd-swa", "phd-cswa"] as const;
type Variant = "vanilla" | typeof VARIANTS[number];
type Impl = "fused" | "dense" | "tfjs";
type Pass = "forward" | "forward+backward";
const PASSES: Pass[] = ["forward", "forward+backward"];

const HELP = `usage: deno task bench attention [--json] [--quick] [--write] [--L 256,1024,2048]
  [--K 1,2,3,4] [--reps 3] [--max-dense-tokens 4096]

Attention forward and forward+backward on this adapter: vanilla causal, PHD, PHD-SWA and
PHD-CSWA for each K with the fused kernel (interleaved and grouped layouts), the dense-masked
kernel and @tensorflow/tfjs-backend-webgpu ops, medians of round-robin runs.
  --quick                 L 1024, K 1 and 3, PHD-CSWA only, 2 reps
  --max-dense-tokens N    run the dense kernel and tfjs only where K*L <= N (default 4096)
  --write                 replace the Attention section of bench/RESULTS.md and its plot`;

interface Options {
  json: boolean;
  quick: boolean;
  write: boolean;
  L: number[];
  K: number[];
  reps: number;
  maxDense: number;
  variants: readonly Variant[];
}

function parseFlags(args: string[]): Options {
  const quick = args.includes("--quick");
  const o: Options = {
    json: false,
    quick,
    write: false,
    L: quick ? [1024] : [256, 1024, 2048],
    K: quick ? [1, 3] : [1, 2, 3, 4],
    reps: quick ? 2 : 3,
    maxDense: 4096,
    variants: quick ? ["phd-cswa"] : VARIANTS,
  };
  const ints = (flag: string, v: string | undefined) => {
    const xs = (v ?? "").split(",").map(Number);
    if (!v || xs.some((x) => !Number.isInteger(x) || x < 1)) {
      throw new Error(`${flag} needs positive integers separated by commas, got "${v ?? ""}"`);
    }
    return xs;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help" || a === "-h") {
      console.log(HELP);
      Deno.exit(0);
    } else if (a === "--json") o.json = true;
    else if (a === "--write") o.write = true;
    else if (a === "--quick") continue;
    else if (a === "--L") o.L = ints(a, args[++i]);
    else if (a === "--K") o.K = ints(a, args[++i]);
    else if (a === "--reps") o.reps = ints(a, args[++i])[0];
    else if (a === "--max-dense-tokens") o.maxDense = ints(a, args[++i])[0];
    else throw new Error(`unknown flag ${a} (see --help)`);
  }
  return o;
}

/** One result row (the `--json` contract: name, variant, layout, K, L, pass, median_ms). */
interface AttentionRow {
  name: string;
  variant: Variant;
  impl: Impl;
  layout: Layout;
  K: number;
  L: number;
  pass: Pass;
  median_ms: number;
  /** Fraction of the K*L x K*L tiles the kernel visits (1 for dense and tfjs). */
  kept_fraction: number;
}

/** A case: records or runs one pass; `destroy` frees what it holds. */
interface Case {
  name: string;
  variant: Variant;
  impl: Impl;
  layout: Layout;
  K: number;
  keptFraction: number;
  run(pass: Pass): Promise<number>;
  destroy(): void;
}

function randomData(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/** Our kernel (fused or dense): q, k, v, dO of one head; o and lse saved by a first forward. */
function kernelCase(
  gpu: GpuContext,
  cache: PipelineCache,
  variant: Variant,
  K: number,
  L: number,
  layout: Layout,
  impl: "fused" | "dense",
  host: Record<"q" | "k" | "v" | "dO", Float32Array>,
): Case & { output(): Promise<Float32Array> } {
  const spec = specOf(variant, K);
  const fa = new FlashAttention(gpu, cache, spec, { headDim: D, layout, variant: impl });
  const { device } = gpu;
  const N = K * L, n = N * D;
  const io = {
    q: storageBuffer(device, host.q),
    k: storageBuffer(device, host.k),
    v: storageBuffer(device, host.v),
    dout: storageBuffer(device, host.dO),
    o: storageBuffer(device, n * 4),
    lse: storageBuffer(device, N * 4),
    delta: storageBuffer(device, N * 4),
    dq: storageBuffer(device, n * 4),
    dk: storageBuffer(device, n * 4),
    dv: storageBuffer(device, n * 4),
  };
  const run = { L };
  const { tileQ, tileK } = fa.params;
  return {
    name: `${variant}_${impl}_${layout}`,
    variant,
    impl,
    layout,
    K,
    keptFraction: impl === "dense"
      ? 1
      : classifyTiles(spec, { L, tileQ, tileK, layout }).keptFraction,
    async run(pass) {
      const enc = device.createCommandEncoder();
      fa.forward(enc, io, run);
      if (pass === "forward+backward") fa.backward(enc, io, run);
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      return performance.now() - t0;
    },
    async output() {
      const enc = device.createCommandEncoder();
      fa.forward(enc, io, run);
      device.queue.submit([enc.finish()]);
      return new Float32Array(await readback(device, io.o, n * 4));
    },
    destroy() {
      for (const b of Object.values(io)) b.destroy();
    },
  };
}

/** The same attention with tfjs-backend-webgpu ops on the storage-order mask as an additive bias. */
function tfjsCase(
  variant: Variant,
  K: number,
  L: number,
  host: Record<"q" | "k" | "v" | "dO", Float32Array>,
): Case & { output(): Promise<Float32Array> } {
  const spec = specOf(variant, K), N = K * L, layout: Layout = "grouped";
  const allowed = storageMask({ spec, L, layout, batch: 1, heads: 1, kvHeads: 1, headDim: D });
  const biasHost = new Float32Array(N * N);
  for (let i = 0; i < biasHost.length; i++) biasHost[i] = allowed[i] ? 0 : -1e30;
  const backend = tf.backend() as WebGPUBackend;
  const [q, k, v, dO] = (["q", "k", "v", "dO"] as const).map((x) => tf.tensor2d(host[x], [N, D]));
  const bias = tf.tensor2d(biasHost, [N, N]);
  const scale = tf.scalar(1 / Math.sqrt(D));
  const probs = () => tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), scale), bias));
  const forward = () => tf.matMul(probs(), v);
  // tfjs-core's node bundle registers no gradients (tf.grads fails on BatchMatMul), so the
  // backward is written out in tfjs ops from the saved probabilities P:
  // dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)), dQ = s dS K, dK = s dS^T Q.
  const forwardBackward = () => {
    const p = probs(), o = tf.matMul(p, v);
    const dp = tf.matMul(dO, v, false, true);
    const ds = tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), 1, true)));
    return [
      o,
      tf.mul(tf.matMul(ds, k), scale),
      tf.mul(tf.matMul(ds, q, true), scale),
      tf.matMul(p, dO, true),
    ];
  };
  return {
    name: `${variant}_tfjs_${layout}`,
    variant,
    impl: "tfjs",
    layout,
    K,
    keptFraction: 1,
    async run(pass) {
      const t0 = performance.now();
      const outs = tf.tidy(() => pass === "forward" ? [forward()] : forwardBackward());
      // tfjs keeps its compute pass open between ops and submits every few ops on its own: end
      // the pass and submit what is left, or the timed work would not have run yet.
      backend.endComputePassEncoder();
      if ((backend as unknown as { commandEncoder: unknown }).commandEncoder) backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
      const ms = performance.now() - t0;
      tf.dispose(outs);
      return ms;
    },
    async output() {
      const o = forward();
      const data = await o.data() as Float32Array;
      o.dispose();
      return data;
    },
    destroy() {
      tf.dispose([q, k, v, dO, bias, scale]);
    },
  };
}

/** Builds the cases of one L, times them round-robin and returns their rows. */
async function benchLength(
  gpu: GpuContext,
  cache: PipelineCache,
  o: Options,
  L: number,
  log: (s: string) => void,
): Promise<AttentionRow[]> {
  const cases: Case[] = [];
  const configs: [Variant, number][] = [["vanilla", 1]];
  for (const v of o.variants) for (const K of o.K) if (K > 1) configs.push([v, K]);
  for (const [variant, K] of configs) {
    const N = K * L,
      host = {
        q: randomData(N * D, 1),
        k: randomData(N * D, 2),
        v: randomData(N * D, 3),
        dO: randomData(N * D, 4),
      };
    const layouts: Layout[] = K === 1 ? ["interleaved"] : ["interleaved", "grouped"];
    const fused = [];
    for (const layout of layouts) {
      fused.push(kernelCase(gpu, cache, variant, K, L, layout, "fused", host));
    }
    cases.push(...fused);
    // The dense kernel and tfjs compute every pair whatever the mask: their cost depends on K*L
    // only, so they run for vanilla and PHD-CSWA (the other variants' rows compare against those).
    if (N > o.maxDense || (variant !== "vanilla" && variant !== "phd-cswa")) continue;
    const dense = kernelCase(gpu, cache, variant, K, L, "grouped", "dense", host);
    const tfc = tfjsCase(variant, K, L, host);
    // The same numbers, or the times mean nothing: grouped fused output vs dense and tfjs.
    const ref = await fused[fused.length - 1].output();
    for (const c of [dense, tfc]) {
      const diff = maxErr(await c.output(), ref);
      if (!(diff < 1e-3)) throw new Error(`${c.name} K=${K} L=${L} differs from fused by ${diff}`);
    }
    cases.push(dense, tfc);
  }
  // Round 0 warms up (pipelines, tfjs programs); then every case and pass once per round.
  const work = cases.flatMap((c) => PASSES.map((pass) => ({ c, pass })));
  const t0 = performance.now();
  const samples = await timeRounds(work.map(({ c, pass }) => () => c.run(pass)), {
    rounds: o.reps,
    onRound: (r) =>
      log(`L=${L}: round ${r}/${o.reps} done (${((performance.now() - t0) / 1000).toFixed(0)} s)`),
  });
  const times = new Map(work.map(({ c, pass }, i) => [`${c.name}/${c.K}/${pass}`, samples[i]]));
  const rows = cases.flatMap((c) =>
    PASSES.map((pass): AttentionRow => ({
      name: c.name,
      variant: c.variant,
      impl: c.impl,
      layout: c.layout,
      K: c.K,
      L,
      pass,
      median_ms: +median(times.get(`${c.name}/${c.K}/${pass}`)!).toFixed(2),
      kept_fraction: +c.keptFraction.toFixed(4),
    }))
  );
  for (const c of cases) c.destroy();
  return rows;
}

export async function main(args: string[]) {
  let o: Options;
  try {
    o = parseFlags(args);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
  const log = (s: string) => o.json || console.error(s);
  const ctx = await createContext(gpuOptionsFromEnv());
  const gpu = ctx.gpu, cache = new PipelineCache(gpu.device);
  await tf.setBackend("webgpu");
  await tf.ready();
  const t0 = performance.now();
  const results: AttentionRow[] = [];
  for (const L of o.L) results.push(...await benchLength(gpu, cache, o, L, log));
  const seconds = (performance.now() - t0) / 1000;
  const info = gpu.adapter.info;
  const adapter = {
    name: gpu.adapterName,
    vendor: info.vendor,
    architecture: info.architecture,
    description: info.description,
  };
  const tfjs = `@tensorflow/tfjs-backend-webgpu ${tf.version_core}`;
  if (o.json) console.log(JSON.stringify({ adapter, tfjs, head_dim: D, W, C, seconds, results }));
  const flags = args.filter((a) => a !== "--json" && a !== "--write").join(" ");
  const command = `npx --yes deno@2.9.6 task bench attention${flags ? " " + flags : ""}`;
  const md = report(results, adapter.name, tfjs, command, seconds);
  if (!o.json) console.log(md);
  if (o.write) {
    const written = await writeResults("Attention", md, chart(results, adapter.name));
    log(`wrote ${written.join(", ")}`);
  }
}

const find = (rows: AttentionRow[], q: Partial<AttentionRow>) =>
  rows.find((r) => Object.entries(q).every(([k, v]) => r[k as keyof AttentionRow] === v));

/** Forward time vs K at the largest L, per variant's fused grouped kernel, relative to vanilla. */
function chart(rows: AttentionRow[], adapter: string): Record<string, string> {
  const L = Math.max(...rows.map((r) => r.L));
  const base = find(rows, { variant: "vanilla", L, pass: "forward" })?.median_ms ?? NaN;
  const series: Series[] = VARIANTS.flatMap((v) =>
    (["fused", "dense"] as const).map((impl) => ({
      name: `${v} ${impl}`,
      points: rows.filter((r) =>
        r.L === L && r.pass === "forward" &&
        (r.variant === "vanilla" ||
          (r.variant === v && r.impl === impl && (impl === "dense" || r.layout === "grouped")))
      ).map((r) => [r.K, r.median_ms / base] as [number, number]),
    }))
  ).filter((s) => s.points.length > 1);
  series.push({ name: "K x (ideal)", points: [1, 2, 3, 4].map((k) => [k, k]) });
  return {
    "attention_k.svg": lineChart(series, {
      title: `Attention forward vs K, L = ${L} (grouped layout), ${adapter}`,
      xLabel: "K (copies per token); K = 1 is vanilla causal",
      yLabel: "time / vanilla causal",
    }),
  };
}

/** The "Attention" section of bench/RESULTS.md. */
function report(
  rows: AttentionRow[],
  adapter: string,
  tfjs: string,
  command: string,
  seconds: number,
): string {
  const lines = [
    "## Attention (fused kernels vs dense-masked vs tfjs)",
    "",
    `\`${command}\` on ${adapter} (${seconds.toFixed(0)} s), one head of d = ${D}, ` +
    `PHD-SWA W = ${W}, PHD-CSWA W = ${W} C = ${C}; median ms of round-robin runs. ` +
    `fwd+bwd is the forward and all three gradients; tfjs is ${tfjs} ops (matMul, additive ` +
    "mask, softmax, matMul; backward written in the same ops). Dense and tfjs compute every pair whatever the mask, so they run on PHD-CSWA; other variants' ratios use those times. Kept: fraction of tiles the fused kernel visits.",
    "",
  ];
  for (const L of [...new Set(rows.map((r) => r.L))]) {
    const van = (pass: Pass) => find(rows, { variant: "vanilla", L, pass })?.median_ms ?? NaN;
    lines.push(
      `### L = ${L}`,
      "",
      "| variant | K | kept (grouped) | fused interleaved fwd / fwd+bwd | fused grouped fwd / fwd+bwd | dense fwd / fwd+bwd | tfjs fwd / fwd+bwd | grouped / vanilla fwd | dense / grouped fwd | tfjs / grouped fwd |",
      "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    );
    const keys = [...new Set(rows.filter((r) => r.L === L).map((r) => `${r.variant}|${r.K}`))];
    for (const key of keys) {
      const [variant, Ks] = key.split("|"), K = Number(Ks);
      const get = (impl: Impl, layout: Layout, pass: Pass) =>
        find(rows, {
          variant: (impl === "fused" || K === 1 ? variant : "phd-cswa") as Variant,
          K,
          L,
          impl,
          layout,
          pass,
        })?.median_ms;
      const pair = (impl: Impl, layout: Layout) => {
        const f = get(impl, layout, "forward"), b = get(impl, layout, "forward+backward");
        return f === undefined ? "-" : `${f.toFixed(1)} / ${b!.toFixed(1)}`;
      };
      const glay: Layout = K === 1 ? "interleaved" : "grouped";
      const g = get("fused", glay, "forward")!;
      const ratio = (x: number | undefined) => x === undefined ? "-" : `${(x / g).toFixed(2)}x`;
      const kept = find(rows, { variant: variant as Variant, K, L, impl: "fused", layout: glay })!;
      lines.push(
        `| ${variant} | ${K} | ${(kept.kept_fraction * 100).toFixed(1)}% | ${
          pair("fused", "interleaved")
        } | ${K === 1 ? "-" : pair("fused", "grouped")} | ${pair("dense", "grouped")} | ${
          pair("tfjs", "grouped")
        } | ${(g / van("forward")).toFixed(2)}x | ${ratio(get("dense", "grouped", "forward"))} | ${
          ratio(get("tfjs", "grouped", "forward"))
        } |`,
      );
    }
    lines.push("");
  }
  lines.push("![attention forward vs K](attention_k.svg)");
  return lines.join("\n");
}

if (import.meta.main) await main(Deno.args);
