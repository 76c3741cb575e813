/**
 * Length scaling, the paper's subject: how training and prefill grow with the sequence length
 * for vanilla and PHD / PHD-SWA(16) / PHD-CSWA(16, 32) at K = 2, 3, 4.
 *
 * - Training (the demo model, batch 1, grouped layout): peak GPU memory vs positions (256 ..
 *   8192) and, where the step is affordable on this adapter, the step time and the share of it
 *   spent in attention (the layers' fused attention forward + backward timed alone for the same
 *   problem). Memory must grow linearly in K x L: bytes per expanded token stay flat as L grows
 *   (no K·L x K·L buffer anywhere).
 * - Prefill (the bench/inference.ts model): time and peak memory of prompts up to 16384.
 *
 *   deno task bench scaling [--json] [--quick] [--max-train-tokens N] [--max-prefill-rows N] [--write]
 *
 * Peak memory is measured, not estimated: every buffer the device creates is counted while it
 * lives (`createBuffer` and `destroy` are wrapped on this bench's device), from building the
 * trainer or decoder through the run. Timed work runs after a warm-up; each figure is the median
 * of `reps` runs (1 for the biggest problems). On CPU rasterizers (llvmpipe, lavapipe,
 * SwiftShader) steps above `--max-train-tokens` (default 8192 expanded tokens there, unbounded on
 * a GPU) are built and measured for memory but not timed.
 */
import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import type { KernelContext } from "../runtime/gpu/kernel.ts";
import { storageBuffer } from "../runtime/gpu/resources.ts";
import { type Config, DEFAULT_CONFIG } from "../runtime/model/config.ts";
import { headDim, initParams, ModelParams } from "../runtime/model/params.ts";
import { Rng } from "../runtime/data/rng.ts";
import { Trainer } from "../runtime/train/trainer.ts";
import { Decoder } from "../runtime/infer/decoder.ts";
import { FlashAttention } from "../runtime/kernels/attention.ts";
import { lineChart, type Series } from "../viz/chart.ts";
import { BENCH_MODEL, C, specOf, type Variant, VARIANTS, W } from "./inference.ts";
import { writeResults } from "./results.ts";
import { median } from "../runtime/measure/stats.ts";
import { timeRuns } from "../runtime/measure/timing.ts";

/** Live and peak bytes of the buffers a device creates (wraps `createBuffer` and `destroy`). */
class MemoryMeter {
  live = 0;
  peak = 0;
  constructor(device: GPUDevice) {
    const create = device.createBuffer.bind(device);
    device.createBuffer = (d: GPUBufferDescriptor) => {
      const b = create(d), size = b.size, destroy = b.destroy.bind(b);
      let alive = true;
      this.live += size;
      this.peak = Math.max(this.peak, this.live);
      b.destroy = () => {
        if (alive) this.live -= size;
        alive = false;
        destroy();
      };
      return b;
    };
  }
  /** Starts a measurement: the peak from now on, above what is live now. */
  start(): () => number {
    const base = this.live;
    this.peak = this.live;
    return () => this.peak - base;
  }
}

/** Whether the adapter is a CPU rasterizer (time-bounded defaults). */
function cpuAdapter(name: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|software/i.test(name);
}

interface TrainRow {
  variant: Variant;
  K: number;
  L: number;
  tokens: number;
  peak_bytes: number;
  bytes_per_token: number;
  step_ms?: number;
  attention_ms?: number;
  attention_share?: number;
}

interface PrefillRow {
  variant: Variant;
  K: number;
  P: number;
  rows: number;
  peak_bytes: number;
  prefill_ms: number;
}

/** The training config of a row: the default model, batch 1, `L` positions of variant `v`. */
export function trainConfig(v: Variant, K: number, L: number): Config {
  const c = structuredClone(DEFAULT_CONFIG);
  c.train = { ...c.train, batch_size: 1, seq_len: L };
  c.phd = { ...c.phd, K: v === "vanilla" ? 1 : K, variant: v === "vanilla" ? "causal" : v, W, C };
  return c;
}

/** The layers' attention forward + backward of one training step, alone (ms, median). */
async function attentionMs(ctx: KernelContext, config: Config, reps: number): Promise<number> {
  const m = config.model, spec = specOf(config.phd.variant as Variant, config.phd.K);
  const d = headDim(m), L = config.train.seq_len, N = spec.K * L, dev = ctx.gpu.device;
  const fa = new FlashAttention(ctx.gpu, ctx.cache, spec, { headDim: d, layout: "grouped" });
  const q = N * m.num_attention_heads * d * 4, kv = N * m.num_key_value_heads * d * 4;
  const io = {
    q: storageBuffer(dev, q),
    k: storageBuffer(dev, kv),
    v: storageBuffer(dev, kv),
    o: storageBuffer(dev, q),
    lse: storageBuffer(dev, N * m.num_attention_heads * 4),
    dout: storageBuffer(dev, q),
    delta: storageBuffer(dev, N * m.num_attention_heads * 4),
    dq: storageBuffer(dev, q),
    dk: storageBuffer(dev, kv),
    dv: storageBuffer(dev, kv),
  };
  const run = { L, heads: m.num_attention_heads, kvHeads: m.num_key_value_heads };
  const once = async () => {
    const enc = dev.createCommandEncoder();
    for (let l = 0; l < m.num_hidden_layers; l++) {
      fa.forward(enc, io, run);
      fa.backward(enc, io, run);
    }
    const t0 = performance.now();
    dev.queue.submit([enc.finish()]);
    await dev.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  try {
    return median(await timeRuns(once, { rounds: reps }), { even: "upper" });
  } finally {
    for (const b of Object.values(io)) b.destroy();
  }
}

async function trainRow(
  ctx: KernelContext,
  meter: MemoryMeter,
  o: { variant: Variant; K: number; L: number; timed: boolean; reps: number },
): Promise<TrainRow> {
  const config = trainConfig(o.variant, o.K, o.L), K = config.phd.K;
  const r = new Rng(o.L);
  const stream = Uint32Array.from({ length: 2 * o.L + 2 }, () => r.int(256));
  const stop = meter.start();
  const trainer = new Trainer(ctx, config, { train: stream, val: stream }, { layout: "grouped" });
  const queue = ctx.gpu.device.queue;
  const row: TrainRow = {
    variant: o.variant,
    K,
    L: o.L,
    tokens: K * o.L,
    peak_bytes: 0,
    bytes_per_token: 0,
  };
  try {
    if (o.timed) {
      const times = await timeRuns(() => {
        trainer.trainStep();
        return queue.onSubmittedWorkDone();
      }, { rounds: o.reps });
      row.step_ms = +median(times, { even: "upper" }).toFixed(1);
    }
    row.peak_bytes = stop();
    row.bytes_per_token = Math.round(row.peak_bytes / row.tokens);
  } finally {
    trainer.destroy();
  }
  if (o.timed) {
    row.attention_ms = +(await attentionMs(ctx, config, o.reps)).toFixed(1);
    row.attention_share = +(row.attention_ms / row.step_ms!).toFixed(3);
  }
  return row;
}

async function prefillRow(
  ctx: KernelContext,
  meter: MemoryMeter,
  params: ModelParams,
  o: { variant: Variant; K: number; P: number; reps: number },
): Promise<PrefillRow> {
  const spec = specOf(o.variant, o.K), r = new Rng(o.P);
  const prompt = Array.from({ length: o.P }, () => r.int(256));
  const stop = meter.start();
  const dec = new Decoder(ctx, params, spec, { maxPositions: o.P, initialSlots: o.P + 2 * o.K });
  try {
    const times = [];
    for (let i = 0; i < o.reps; i++) {
      for await (const _ of dec.generate({ prompts: [prompt], maxNewTokens: 1 })) { /* drain */ }
      times.push(dec.stats.prefillMs);
    }
    return {
      variant: o.variant,
      K: spec.K,
      P: o.P,
      rows: dec.stats.prefillRows[0],
      peak_bytes: stop(),
      prefill_ms: +median(times, { even: "upper" }).toFixed(1),
    };
  } finally {
    dec.destroy();
  }
}

function flagValue(args: string[], flag: string): number | undefined {
  const at = args.indexOf(flag);
  if (at < 0) return undefined;
  const n = Number(args[at + 1]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`error: ${flag} needs a positive integer`);
    Deno.exit(1);
  }
  return n;
}

const HELP = `usage: deno task bench scaling [--json] [--quick] [--max-train-tokens N]
       [--max-prefill-rows N] [--write]

Training step time, attention share and peak GPU memory vs sequence length (256..8192) for
vanilla and PHD/SWA/CSWA at K = 2, 3, 4; prefill time and memory of prompts up to 16384.
  --quick                 K = 3 only, fewer lengths, 1 rep
  --max-train-tokens N    time steps only up to N expanded tokens (default 8192 on CPU adapters)
  --max-prefill-rows N    time prefills only up to N prefill rows (default 32768 on CPU adapters)
  --write                 replace the "Length scaling" section of bench/RESULTS.md and its plot`;

export async function main(args: string[]) {
  if (args.includes("--help")) {
    console.log(HELP);
    return;
  }
  const known = ["--json", "--quick", "--write", "--max-train-tokens", "--max-prefill-rows"];
  const unknown = args.filter((a, i) =>
    a.startsWith("--") && !known.includes(a) ||
    !a.startsWith("--") && !["--max-train-tokens", "--max-prefill-rows"].includes(args[i - 1])
  );
  if (unknown.length) {
    console.error(`error: unknown argument ${unknown[0]} (see --help)`);
    Deno.exit(1);
  }
  const json = args.includes("--json"), quick = args.includes("--quick");
  const write = args.includes("--write");
  const log = (s: string) => json || console.error(s);
  const t0 = performance.now();
  const ctx = await createContext(gpuOptionsFromEnv());
  const meter = new MemoryMeter(ctx.gpu.device);
  const adapter = ctx.gpu.adapterName, cpu = cpuAdapter(adapter);
  const maxTrain = flagValue(args, "--max-train-tokens") ??
    (cpu ? (quick ? 4096 : 8192) : Infinity);
  const maxPrefill = flagValue(args, "--max-prefill-rows") ?? (cpu ? 32768 : Infinity);
  const reps = quick ? 1 : 3;
  const lengths = quick ? [256, 1024, 4096, 8192] : [256, 512, 1024, 2048, 4096, 8192];
  const Ks = quick ? [3] : [2, 3, 4];

  const train: TrainRow[] = [];
  for (const L of lengths) {
    for (const variant of VARIANTS) {
      for (const K of variant === "vanilla" ? [1] : Ks) {
        const timed = K * L <= maxTrain;
        const row = await trainRow(ctx, meter, {
          variant,
          K,
          L,
          timed,
          reps: K * L > 8192 ? 1 : reps,
        });
        train.push(row);
        log(JSON.stringify(row));
      }
    }
  }

  const params = new ModelParams(ctx, BENCH_MODEL);
  params.upload(initParams(BENCH_MODEL, { seed: 1 }));
  const prefill: PrefillRow[] = [];
  try {
    for (const P of quick ? [1024, 4096, 16384] : [1024, 2048, 4096, 8192, 16384]) {
      for (const variant of VARIANTS) {
        const K = variant === "vanilla" ? 1 : 3;
        // SWA prefills every hidden token: K·P rows; the others about P.
        const rows = variant === "phd-swa" ? K * P : P + K;
        if (rows > maxPrefill) continue;
        const row = await prefillRow(ctx, meter, params, {
          variant,
          K,
          P,
          reps: P > 4096 ? 1 : reps,
        });
        prefill.push(row);
        log(JSON.stringify(row));
      }
    }
  } finally {
    params.destroy();
  }
  const seconds = +((performance.now() - t0) / 1000).toFixed(1);
  const linear = linearity(train);
  if (json) {
    console.log(JSON.stringify({ adapter, quick, seconds, linear, train, prefill }));
    return;
  }
  const md = report({ adapter, quick, seconds, args, linear, train, prefill });
  console.log(md);
  if (write) {
    const written = await writeResults("Length scaling", md, { "scaling_memory.svg": plot(train) });
    console.error(`wrote ${written.join(", ")}`);
  }
}

/**
 * Per spec and K: the marginal bytes per expanded token between the two longest lengths over that
 * between the two shortest. 1 means memory linear in K x L; a K·L x K·L buffer would make it grow
 * with the length (about 32x from 256 to 8192).
 */
function linearity(rows: TrainRow[]): { spec: string; ratio: number }[] {
  const groups = new Map<string, TrainRow[]>();
  for (const r of rows) {
    const key = r.variant === "vanilla" ? "vanilla" : `${r.variant} K=${r.K}`;
    groups.set(key, [...groups.get(key) ?? [], r]);
  }
  const slope = (a: TrainRow, b: TrainRow) => (b.peak_bytes - a.peak_bytes) / (b.tokens - a.tokens);
  return [...groups].filter(([, rs]) => rs.length >= 3).map(([spec, rs]) => {
    const s = [...rs].sort((a, b) => a.L - b.L), n = s.length;
    return { spec, ratio: +(slope(s[n - 2], s[n - 1]) / slope(s[0], s[1])).toFixed(3) };
  });
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

function report(o: {
  adapter: string;
  quick: boolean;
  seconds: number;
  args: string[];
  linear: { spec: string; ratio: number }[];
  train: TrainRow[];
  prefill: PrefillRow[];
}): string {
  const flags = o.args.filter((a) => a !== "--write").join(" ");
  return [
    "## Length scaling",
    "",
    `\`npx --yes deno@2.9.6 task bench scaling${flags ? " " + flags : ""}\` on ${o.adapter} ` +
    `(${o.seconds.toFixed(0)} s). Training: the demo model (${DEFAULT_CONFIG.model.hidden_size} ` +
    `hidden, ${DEFAULT_CONFIG.model.num_hidden_layers} layers), batch 1, grouped layout, W ${W}, ` +
    `C ${C}. Peak = the most bytes of GPU buffers alive at once from building the trainer through ` +
    "the timed steps (counted at `createBuffer`/`destroy`). Attention = the layers' fused " +
    "forward + backward timed alone; the rest of the step is matmuls, norms, embedding, loss and " +
    "AdamW. Steps without a time were built and measured for memory only (CPU adapter bound).",
    "",
    "Marginal bytes per expanded token between the two longest lengths over that between the two " +
    "shortest (1.0 = memory linear in K x L; a K·L x K·L buffer would grow it with L): " +
    o.linear.map((x) => `${x.spec} ${x.ratio}`).join(", ") + ".",
    "",
    "| spec | K | L | K·L | peak MiB | bytes/token | step ms | attention ms | attention share |",
    "| ---- | -: | -: | --: | -------: | ----------: | ------: | -----------: | --------------: |",
    ...o.train.map((r) =>
      `| ${r.variant} | ${r.K} | ${r.L} | ${r.tokens} | ${mib(r.peak_bytes)} | ` +
      `${r.bytes_per_token} | ${r.step_ms ?? "-"} | ${r.attention_ms ?? "-"} | ` +
      `${r.attention_share === undefined ? "-" : (100 * r.attention_share).toFixed(0) + "%"} |`
    ),
    "",
    "![peak training memory vs K x L](scaling_memory.svg)",
    "",
    `Prefill (the bench/inference.ts model, K = 3 for the PHD variants): time from request to ` +
    "first token and peak memory.",
    "",
    "| spec | K | prompt | prefill rows | peak MiB | prefill ms |",
    "| ---- | -: | -----: | -----------: | -------: | ---------: |",
    ...o.prefill.map((r) =>
      `| ${r.variant} | ${r.K} | ${r.P} | ${r.rows} | ${mib(r.peak_bytes)} | ${r.prefill_ms} |`
    ),
  ].join("\n");
}

function plot(rows: TrainRow[]): string {
  const series = new Map<string, Series>();
  for (const r of rows) {
    const name = r.variant === "vanilla" ? "vanilla" : `${r.variant} K=${r.K}`;
    const s = series.get(name) ?? { name, points: [] };
    s.points.push([r.tokens, r.peak_bytes / 2 ** 20]);
    series.set(name, s);
  }
  return lineChart([...series.values()], {
    title: "Peak training memory vs expanded tokens",
    xLabel: "K x L (expanded tokens)",
    yLabel: "peak MiB",
    logX: true,
  });
}
