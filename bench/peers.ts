/**
 * Peers side by side, in one run on one machine (issue 17, item 6):
 * - training tokens/s of the demo model (runtime/model/config.ts DEFAULT_CONFIG: PHD-CSWA K = 2,
 *   and vanilla K = 1, same batch and sequence length) here on the WebGPU adapter (the Trainer,
 *   default kernels and, where .cache/autotune.json has them, the autotuner's) and in PyTorch on
 *   the CPU (python/bench_peers.py over python/phd_torch.py: Debian's torch 1.13, dense additive
 *   mask), both from the same starting weights, alternated round by round so the machine's load
 *   hits both alike; medians and ratios. Both are checked to train the same model: the same
 *   parameter count and the same loss on the first batch;
 * - matmul GFLOP/s: this runtime's default and tuned variants on a 1024x512x512 product (the
 *   Trainer's MFU denominator) and, without --quick, the demo step's shapes, next to numpy's (the
 *   physical reference: its BLAS on the same cores) and torch.mm's (what the PyTorch steps use).
 *
 * Both Python processes run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from their
 * environment (the rest is inherited), and report the BLAS library they really load.
 *
 *   deno task bench peers [--json] [--quick] [--write] [--rounds N] [--steps N] [--cache F]
 *     [--torch-python P] [--numpy-python P] [--torch-threads N]
 */
import { flexModule } from "../compiler/codegen/flex.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { destroyDispatches, type Dispatch, type KernelContext } from "../runtime/gpu/kernel.ts";
import { storageBuffer } from "../runtime/gpu/resources.ts";
import { Batches, Rng } from "../runtime/data/batches.ts";
import { encodeCheckpoint } from "../runtime/io/checkpoint.ts";
import { type Config, DEFAULT_CONFIG } from "../runtime/model/config.ts";
import {
  DEFAULT_MATMUL,
  deviceMatmulLimits,
  type MatmulBlocking,
  matmulDispatches,
  type MatmulShape,
  matmulVariantName,
} from "../runtime/kernels/matmul.ts";
import {
  adapterIdOf,
  Autotuner,
  configMatmulShapes,
  matmulCandidates,
  matmulTask,
  median,
  timeDispatches,
  timingReps,
  type TuneCacheData,
  tunedMatmulParams,
} from "../runtime/tune/autotune.ts";
import {
  countedKernels,
  DEFAULT_TUNE_CACHE,
  denoVersion,
  loadKernelChoosers,
  loadTuneCache,
  saveTuneCache,
} from "../runtime/host/tune_cache.ts";
import { writeFileAtomic } from "../runtime/host/files.ts";
import { Trainer } from "../runtime/train/trainer.ts";
import { writeResults } from "./results.ts";

/** Debian's interpreter, whose python3-torch .ci/run installs (tests/fixtures/python.ts). */
const TORCH_PYTHON = "/usr/bin/python3";
/** The interpreter on PATH: numpy's BLAS there is what a user's numpy gets. */
const NUMPY_PYTHON = "python3";
/** Variables that tune OpenBLAS for one machine; set aside so every peer runs as shipped. */
const OPENBLAS_VARS = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];
const PEERS_SCRIPT = new URL("../python/bench_peers.py", import.meta.url).pathname;

const HELP = `usage: deno task bench peers [--json] [--quick] [--write] [--rounds N] [--steps N]
  [--cache F] [--torch-python P] [--numpy-python P] [--torch-threads N]

Training tokens/s of the demo model (PHD-CSWA K=2, vanilla K=1) on this adapter and in PyTorch on
the CPU, alternated round by round; matmul GFLOP/s next to numpy's and torch.mm's.
  --rounds N         rounds of the round-robin (default 5, --quick 3)
  --steps N          training steps per runtime and round (default 3, --quick 2)
  --cache F          autotune cache (default ${DEFAULT_TUNE_CACHE}); missing matmul shapes are tuned
  --torch-python P   interpreter with torch (default ${TORCH_PYTHON})
  --numpy-python P   interpreter with numpy (default ${NUMPY_PYTHON} on PATH)
  --torch-threads N  torch's threads (default: one per core, as llvmpipe runs)
  --quick            the 1024x512x512 matmul only, fewer rounds
  --write            replace the "Peers" section of bench/RESULTS.md`;

function fail(msg: string): never {
  console.error(`error: ${msg}`);
  Deno.exit(1);
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--")) fail(`${name} needs a value`);
  return v;
}

function positiveFlag(args: string[], name: string, fallback?: number): number | undefined {
  const v = flag(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`${name} needs a positive integer, got "${v}"`);
  return n;
}

/** A peer that could not start or stopped: its `error:` line, or why it is missing. */
export class PeerError extends Error {}

/**
 * One Python peer: a process of python/bench_peers.py that answers one JSON line per request.
 * Its stderr is kept to explain a failure.
 */
export class Peer {
  #proc: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #stderr: Promise<string>;
  header: Record<string, unknown> = {};

  private constructor(readonly what: string, python: string, args: string[]) {
    const env = Deno.env.toObject();
    for (const v of OPENBLAS_VARS) delete env[v];
    this.#proc = new Deno.Command(python, {
      args: [PEERS_SCRIPT, ...args],
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#proc.stdin.getWriter();
    this.#reader = this.#proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.#proc.stderr).text();
  }

  /** Starts the process and reads its header line. */
  static async start(what: string, python: string, args: string[]): Promise<Peer> {
    let peer: Peer;
    try {
      peer = new Peer(what, python, args);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new PeerError(
          `${what}: no interpreter "${python}" (install it, or pass --${what}-python P)`,
        );
      }
      throw e;
    }
    peer.header = await peer.#line();
    return peer;
  }

  async #line(): Promise<Record<string, unknown>> {
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) {
        const err = (await this.#stderr).trim().split("\n").filter((l) => l.startsWith("error:"));
        throw new PeerError(
          `${this.what} peer (python/bench_peers.py) stopped: ${err.at(-1) ?? "no reply"}`,
        );
      }
      this.#buffered += value;
    }
    const at = this.#buffered.indexOf("\n"), line = this.#buffered.slice(0, at);
    this.#buffered = this.#buffered.slice(at + 1);
    return JSON.parse(line);
  }

  /** Sends one request and waits for its reply. */
  async ask<T>(request: Record<string, unknown>): Promise<T> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(request) + "\n"));
    return await this.#line() as T;
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {}); // a peer that stopped has closed its end
    await this.#proc.status;
    await this.#reader.cancel().catch(() => {});
    await this.#stderr;
  }
}

/** The CPU model (first "model name" of /proc/cpuinfo) and the 1-minute load average. */
async function machine(): Promise<{ cpu: string; cores: number; load: () => Promise<number> }> {
  const read = (p: string) => Deno.readTextFile(p).catch(() => "");
  const info = await read("/proc/cpuinfo");
  const cpu = info.match(/^model name\s*:\s*(.*)$/m)?.[1]?.trim() ?? "unknown CPU";
  const load = async () => Number((await read("/proc/loadavg")).split(" ")[0]) || 0;
  return { cpu, cores: navigator.hardwareConcurrency, load };
}

/** The two models: the demo config as it is (PHD-CSWA K = 2) and its vanilla K = 1. */
function models(): { name: string; config: Config }[] {
  const phd = structuredClone(DEFAULT_CONFIG);
  const vanilla = structuredClone(DEFAULT_CONFIG);
  vanilla.phd = { ...vanilla.phd, K: 1, variant: "causal" };
  return [{ name: "phd-cswa K=2", config: phd }, { name: "vanilla K=1", config: vanilla }];
}

/** One model in both runtimes: our trainers (default, tuned) and its PyTorch peer. */
interface Contender {
  name: string;
  config: Config;
  /** Our trainers: default kernels, and the autotuner's where the cache has any. */
  ours: { kernels: string; trainer: Trainer; ms: number[] }[];
  torch: Peer;
  torchMs: number[];
  params: { ours: number; torch: number };
  firstLoss: { ours: number; torch: number };
}

async function oursSteps(trainer: Trainer, n: number): Promise<number[]> {
  const queue = trainer.ctx.gpu.device.queue, ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    trainer.trainStep();
    await queue.onSubmittedWorkDone();
    ms.push(performance.now() - t0);
  }
  return ms;
}

/**
 * Builds a model's trainers and its PyTorch peer from the same weights (our initialisation,
 * saved as a checkpoint that python/phd_torch.py loads), checks the parameter counts and the
 * loss of the first training batch on both sides, and warms both up.
 */
async function contender(
  ctx: KernelContext,
  name: string,
  config: Config,
  o: { dir: string; cache: string; python: string; threads?: number },
): Promise<Contender> {
  const r = new Rng(1);
  const stream = Uint32Array.from({ length: 1 << 16 }, () => r.int(256));
  const corpus = { train: stream, val: stream };
  const choosers = countedKernels(
    await loadKernelChoosers(ctx, { path: o.cache, warn: (l) => console.error(l) }),
  );
  const first = new Trainer(ctx, config, corpus);
  const ours: Contender["ours"] = [{ kernels: "default", trainer: first, ms: [] }];
  const tuned = new Trainer(ctx, config, corpus, {
    matmul: choosers.matmul,
    attention: choosers.attention,
  });
  // "tuned variants (F): matmul 10 of 12 shapes, attention 0 of 1" -> "tuned: matmul 10 of 12 ..."
  const summary = choosers.summary().replace(/^tuned variants \([^)]*\)/, "tuned");
  if (choosers.hits() > 0) ours.push({ kernels: summary, trainer: tuned, ms: [] });
  else tuned.destroy();

  const tag = `k${config.phd.K}`, t = config.train;
  const ckpt = `${o.dir}/${tag}.safetensors`, mask = `${o.dir}/${tag}_mask.py`;
  await writeFileAtomic(
    ckpt,
    encodeCheckpoint({
      model: config.model,
      phd: config.phd,
      tokenizer: "bytes",
      context: t.seq_len,
      params: await first.params.download(),
    }),
  );
  await writeFileAtomic(
    mask,
    flexModule(first.spec, {
      layout: first.graph.layout,
      L: t.seq_len,
      analysis: "(the mask of bench/peers.ts's PyTorch peer)",
      command: "deno task bench peers",
    }),
  );
  const args = ["torch", "--ckpt", ckpt, "--mask", mask, "--batch", `${t.batch_size}`];
  args.push("--seq-len", `${t.seq_len}`, "--lr", `${t.lr}`, "--attention", "dense");
  if (o.threads) args.push("--threads", `${o.threads}`);
  const torch = await Peer.start("torch", o.python, args);
  // The first training batch, as the Trainer draws it (its Batches, same stream and seed).
  const batch = new Batches(corpus.train, { batch: t.batch_size, seqLen: t.seq_len }, t.seed)
    .next();
  const windows = Array.from(
    { length: t.batch_size },
    (_, b) => Array.from(batch.subarray(b * (t.seq_len + 1), (b + 1) * (t.seq_len + 1))),
  );
  const torchLoss = (await torch.ask<{ loss: number }>({ loss: windows })).loss;
  // Warm-up: our first step (pipelines, uploads; its loss is the first batch's), torch's first.
  for (const x of ours) await oursSteps(x.trainer, 1);
  const oursLoss = (await first.takeLoss()).loss;
  await torch.ask({ steps: 1 });
  return {
    name,
    config,
    ours,
    torch,
    torchMs: [],
    params: { ours: first.params.count, torch: torch.header.params as number },
    firstLoss: { ours: oursLoss, torch: torchLoss },
  };
}

/** The timed sides of the matmul table. */
const SIDES = ["default", "tuned", "numpy", "torch"] as const;
type Side = typeof SIDES[number];

/** One matmul shape's medians: ms and GFLOP/s per side (tuned: null where the cache lacks it). */
interface MatmulRow {
  shape: string;
  what: string;
  tuned_variant: string | null;
  ms: Record<Side, number | null>;
  gflops: Record<Side, number | null>;
}

type Shape = MatmulShape & { what: string };

const shapeKey = (s: MatmulShape) => `${s.trans} ${s.M}x${s.N}x${s.K}`;

/**
 * Tunes the MFU reference product with the quick candidates when the cache lacks it (and saves
 * the cache), as bench/matmul.ts does for its shapes; returns the cache. The step shapes are
 * taken from the cache as they are (`deno task autotune` fills it; ~40 s a shape on a loaded
 * 2-core llvmpipe, too long for this benchmark).
 */
async function tuneReference(ctx: KernelContext, s: Shape, path: string) {
  const adapter = adapterIdOf(ctx.gpu), deno = denoVersion(), log = (l: string) => console.error(l);
  const cache = await loadTuneCache(path, log);
  const limits = deviceMatmulLimits(ctx.gpu.device);
  if (tunedMatmulParams(cache, { adapter, deno, limits, allowSplitK: true }, s)) return cache;
  log(`tuning matmul ${shapeKey(s)} (not in ${path})`);
  const task = matmulTask(ctx, s, { candidates: matmulCandidates({ quick: true }) });
  try {
    await new Autotuner(cache, { adapter, deno, warmup: 1, runs: 3 }).tune(task);
  } finally {
    task.destroy();
  }
  await saveTuneCache(cache, path);
  return cache;
}

/** Our default and tuned variants, numpy and torch.mm on each shape, interleaved over rounds. */
async function matmuls(
  ctx: KernelContext,
  shapes: Shape[],
  o: { cache: TuneCacheData; rounds: number; numpy: Peer; torch: Peer },
): Promise<MatmulRow[]> {
  const dev = ctx.gpu.device, log = (s: string) => console.error(s);
  const chooser = {
    adapter: adapterIdOf(ctx.gpu),
    deno: denoVersion(),
    limits: deviceMatmulLimits(dev),
    allowSplitK: true,
  };
  const rows: MatmulRow[] = [];
  for (const s of shapes) {
    const { M, N, K, trans } = s, flops = 2 * M * N * K, reps = timingReps(flops);
    const a = storageBuffer(dev, M * K * 4), b = storageBuffer(dev, N * K * 4);
    const c = storageBuffer(dev, M * N * 4);
    const tuned = tunedMatmulParams(o.cache, chooser, s);
    const ours = new Map<Side, Dispatch[]>(
      [["default", DEFAULT_MATMUL], ["tuned", tuned]]
        .filter((x): x is [Side, MatmulBlocking] => x[1] !== undefined)
        .map((
          [side, params],
        ) => [side, matmulDispatches(ctx, { a, b, c, M, N, K, trans, params })]),
    );
    const req = { matmul: [M, N, K], trans };
    const times = new Map<Side, number[]>(SIDES.map((k) => [k, []]));
    for (let r = 0; r <= o.rounds; r++) { // round 0 warms up
      const t = new Map<Side, number>();
      for (const [side, ds] of ours) t.set(side, await timeDispatches(ctx, ds, reps));
      t.set("numpy", (await o.numpy.ask<{ ms: number }>(req)).ms);
      t.set("torch", (await o.torch.ask<{ ms: number }>(req)).ms);
      if (r > 0) { for (const [side, ms] of t) times.get(side)!.push(ms); }
    }
    destroyDispatches([...ours.values()].flat());
    for (const x of [a, b, c]) x.destroy();
    const ms = (k: Side) => times.get(k)!.length ? median(times.get(k)!) : null;
    const row: MatmulRow = {
      shape: shapeKey(s),
      what: s.what,
      tuned_variant: tuned ? matmulVariantName(tuned) : null,
      ms: Object.fromEntries(SIDES.map((k) => [k, ms(k) && +ms(k)!.toFixed(3)])) as MatmulRow["ms"],
      gflops: Object.fromEntries(
        SIDES.map((k) => [k, ms(k) && +(flops / ms(k)! / 1e6).toFixed(2)]),
      ) as MatmulRow["gflops"],
    };
    log(JSON.stringify(row));
    rows.push(row);
  }
  return rows;
}

/** Parsed flags. */
interface Options {
  quick: boolean;
  rounds: number;
  steps: number;
  threads?: number;
  cache: string;
  torchPython: string;
  numpyPython: string;
}

function parseFlags(args: string[]): Options {
  const known = [
    "--json",
    "--quick",
    "--write",
    "--rounds",
    "--steps",
    "--cache",
    "--torch-python",
    "--numpy-python",
    "--torch-threads",
  ];
  for (const a of args) if (a.startsWith("--") && !known.includes(a)) fail(`unknown flag ${a}`);
  const quick = args.includes("--quick");
  return {
    quick,
    rounds: positiveFlag(args, "--rounds", quick ? 3 : 5)!,
    steps: positiveFlag(args, "--steps", quick ? 2 : 3)!,
    threads: positiveFlag(args, "--torch-threads"),
    cache: flag(args, "--cache") ?? DEFAULT_TUNE_CACHE,
    torchPython: flag(args, "--torch-python") ?? TORCH_PYTHON,
    numpyPython: flag(args, "--numpy-python") ?? NUMPY_PYTHON,
  };
}

export async function main(args: string[]) {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return;
  }
  const o = parseFlags(args);
  const result = await measure(o).catch((e) => {
    if (e instanceof PeerError) fail(e.message);
    throw e;
  });
  if (args.includes("--json")) {
    console.log(JSON.stringify(result));
    return;
  }
  const md = markdown(result, args);
  console.log(md);
  if (args.includes("--write")) {
    console.error(`wrote ${(await writeResults("Peers", md)).join(", ")}`);
  }
}

/** The whole measurement: the result object that --json prints. */
async function measure(o: Options) {
  const t0 = performance.now(), log = (s: string) => console.error(s);
  const host = await machine(), loadBefore = await host.load();
  const numpy = await Peer.start("numpy", o.numpyPython, ["numpy"]);
  const ctx = await createContext();
  const mfu: Shape = { M: 1024, N: 512, K: 512, trans: "nt", what: "MFU reference" };
  const dir = await Deno.makeTempDir({ prefix: "bench_peers_" });
  const contenders: Contender[] = [];
  try {
    for (const { name, config } of models()) {
      const c = await contender(ctx, name, config, {
        ...o,
        dir,
        python: o.torchPython,
        threads: o.threads ?? host.cores,
      });
      contenders.push(c);
      log(JSON.stringify({ model: name, params: c.params, first_loss: c.firstLoss }));
      if (c.params.ours !== c.params.torch) {
        throw new PeerError(
          `${name}: ${c.params.ours} parameters here, ${c.params.torch} in PyTorch`,
        );
      }
    }
    // After the peers started (a missing torch fails before this): tuned trainers do not use it.
    const cache = await tuneReference(ctx, mfu, o.cache);
    // Round-robin: each round runs every model's steps here and in PyTorch, in turn.
    for (let r = 0; r < o.rounds; r++) {
      for (const c of contenders) {
        for (const x of c.ours) x.ms.push(...await oursSteps(x.trainer, o.steps));
        c.torchMs.push(...(await c.torch.ask<{ ms: number[] }>({ steps: o.steps })).ms);
      }
      log(`round ${r + 1}/${o.rounds} done`);
    }
    // The MFU reference and (without --quick) the demo step's distinct shapes.
    const seen = new Set([shapeKey(mfu)]);
    const step = configMatmulShapes(DEFAULT_CONFIG).filter((s) =>
      !seen.has(shapeKey(s)) && seen.add(shapeKey(s))
    );
    const shapes = [mfu, ...(o.quick ? [] : step)];
    const mm = await matmuls(ctx, shapes, {
      cache,
      rounds: o.rounds,
      numpy,
      torch: contenders[0].torch,
    });
    const t = DEFAULT_CONFIG.train, tokens = t.batch_size * t.seq_len;
    const th = contenders[0].torch.header, nh = numpy.header;
    return {
      adapter: ctx.gpu.adapterName,
      cpu: host.cpu,
      cores: host.cores,
      load: { before: loadBefore, after: await host.load() },
      seconds: Math.round((performance.now() - t0) / 1000),
      rounds: o.rounds,
      steps_per_round: o.steps,
      batch: t.batch_size,
      seq_len: t.seq_len,
      torch: {
        python: th.python as string,
        version: th.torch as string,
        threads: th.threads as number,
        default_threads: th.default_threads as number,
        blas_loaded: th.blas_loaded as string[],
      },
      numpy: {
        python: nh.python as string,
        version: nh.numpy as string,
        blas: nh.blas_build as string,
        blas_loaded: nh.blas_loaded as string[],
        openblas: nh.openblas_config as string | null,
        threads: nh.threads as number | null,
      },
      training: contenders.map((c) => trainingRow(c, tokens)),
      matmul: mm,
    };
  } finally {
    for (const c of contenders) {
      for (const x of c.ours) x.trainer.destroy();
      await c.torch.close();
    }
    await numpy.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** One model's medians, ratios and first-batch losses. */
function trainingRow(c: Contender, tokens: number) {
  const torchMs = median(c.torchMs), { ours, torch } = c.firstLoss;
  return {
    model: c.name,
    params: c.params.ours,
    first_loss: {
      ours: +ours.toFixed(6),
      torch: +torch.toFixed(6),
      rel_diff: +(Math.abs(ours - torch) / torch).toExponential(2),
    },
    torch: { step_ms: +torchMs.toFixed(1), tokens_per_s: Math.round(tokens / torchMs * 1000) },
    ours: c.ours.map((x) => {
      const ms = median(x.ms);
      return {
        kernels: x.kernels,
        step_ms: +ms.toFixed(1),
        tokens_per_s: Math.round(tokens / ms * 1000),
        vs_torch: +(torchMs / ms).toFixed(2),
      };
    }),
  };
}

type Result = Awaited<ReturnType<typeof measure>>;

const base = (p: string) => p.split("/").at(-1);

function markdown(r: Result, args: string[]): string {
  const flags = args.filter((a) => a !== "--write").join(" ");
  const torchBlas = r.torch.blas_loaded.map(base).join(", ") || "none found";
  const numpyBlas = `${r.numpy.blas} (${r.numpy.blas_loaded.map(base).join(", ") || "none found"}${
    r.numpy.threads ? `, ${r.numpy.threads} threads` : ""
  })`;
  const lines = [
    "## Peers",
    "",
    `\`npx --yes deno@2.9.6 task bench peers${flags ? " " + flags : ""}\` (${r.seconds} s) on ` +
    `${r.adapter}, CPU ${r.cpu} (${r.cores} cores), shared with other jobs: load average ` +
    `${r.load.before} before, ${r.load.after} after, so absolute figures are low and noisy; the ` +
    "ratios come from runs alternated in one process pair. PyTorch: " +
    `${r.torch.version} (${r.torch.python}), ${r.torch.threads} threads (one per core, as ` +
    `llvmpipe runs; torch's own default here: ${r.torch.default_threads}), BLAS ${torchBlas}; ` +
    `numpy ${r.numpy.version} (${r.numpy.python}), ${numpyBlas}; both with ` +
    "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from their environment.",
    "",
    `Training: the demo model (batch ${r.batch} x ${r.seq_len} positions), whole steps (forward, ` +
    "backward, clipping, AdamW; PyTorch: python/phd_torch.py's model, dense additive mask) from " +
    `the same weights on random tokens, ${r.rounds} rounds of ${r.steps_per_round} steps each, ` +
    "here and in PyTorch in turn, after a warm-up step; medians. first loss: the loss of the " +
    "first training batch on each side (same weights, same tokens).",
    "",
    "| model | params | runtime | kernels | step ms | tokens/s | x PyTorch | first loss (rel. diff) |",
    "| ----- | -----: | ------- | ------- | ------: | -------: | --------: | ---------------------- |",
  ];
  for (const t of r.training) {
    const fl = `${t.first_loss.ours} vs ${t.first_loss.torch} (${t.first_loss.rel_diff})`;
    lines.push(
      `| ${t.model} | ${t.params} | PyTorch CPU | - | ${t.torch.step_ms} | ` +
        `${t.torch.tokens_per_s} | 1.00 | ${fl} |`,
    );
    for (const o of t.ours) {
      lines.push(
        `| ${t.model} | ${t.params} | this, WebGPU | ${o.kernels} | ${o.step_ms} | ` +
          `${o.tokens_per_s} | ${o.vs_torch.toFixed(2)} | |`,
      );
    }
  }
  lines.push(
    "",
    `Matmul (float32, C = A'B'): median of ${r.rounds} interleaved rounds. numpy is the physical ` +
      "reference (its BLAS on the same cores); torch.mm is what the PyTorch steps run on.",
    "",
    "| shape | use | default GF/s | tuned GF/s | tuned variant | numpy GF/s | torch.mm GF/s | best / numpy |",
    "| ----- | --- | -----------: | ---------: | ------------- | ---------: | ------------: | -----------: |",
    ...r.matmul.map((m) =>
      `| ${m.shape} | ${m.what} | ${m.gflops.default} | ${m.gflops.tuned ?? "-"} | ` +
      `${m.tuned_variant ?? "not in the cache"} | ${m.gflops.numpy} | ${m.gflops.torch} | ` +
      `${(Math.max(m.gflops.default!, m.gflops.tuned ?? 0) / m.gflops.numpy!).toFixed(3)} |`
    ),
  );
  return lines.join("\n");
}
