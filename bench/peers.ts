/**
 * Peers side by side, in one run on one machine (issue 17, item 6):
 * - training tokens/s of the demo model (runtime/model/config.ts DEFAULT_CONFIG: PHD-CSWA K = 2,
 *   and vanilla K = 1, same batch and sequence length) here on the WebGPU adapter (the Trainer,
 *   default kernels and, where .cache/autotune.json has them, the autotuner's) and in PyTorch on
 *   the CPU (python/bench_peers.py over python/phd_torch.py: Debian's torch 1.13, dense additive
 *   mask), both from the same starting weights, alternated round by round so the machine's load
 *   hits both alike; medians and ratios. Both are checked to train the same model: the same
 *   parameter count and the same loss on the first batch (to LOSS_RTOL, else an error);
 * - matmul GFLOP/s: this runtime's default and tuned variants on a 1024x512x512 product (the
 *   Trainer's MFU denominator) and, without --quick, the demo step's shapes, next to numpy's (the
 *   physical reference: its BLAS on the same cores) and torch.mm's (what the PyTorch steps use).
 *
 * Every Python process runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its
 * environment (the rest is inherited), and reports the BLAS library it really loads: Debian's
 * torch takes whatever `libblas.so.3` the system's alternatives name (the netlib reference BLAS
 * unless an optimised one is installed), so `--torch-blas DIR` adds a second PyTorch peer that
 * loads DIR's `libblas.so.3` first (e.g. Debian's libopenblas0-pthread, unpacked).
 *
 *   deno task bench peers [--json] [--quick] [--write] [--rounds N] [--steps N] [--cache F]
 *     [--torch-python P] [--numpy-python P] [--torch-threads N,..] [--torch-blas DIR]
 */
import { flexModule } from "../compiler/codegen/flex.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import { destroyDispatches, type Dispatch, type KernelContext } from "../runtime/gpu/kernel.ts";
import { storageBuffer } from "../runtime/gpu/resources.ts";
import { Batches } from "../runtime/data/batches.ts";
import { Rng } from "../runtime/data/rng.ts";
import { encodeCheckpoint } from "../runtime/io/checkpoint.ts";
import { type Config, DEFAULT_CONFIG } from "../runtime/model/config.ts";
import { gpuLimits } from "../runtime/gpu/device.ts";
import {
  defaultMatmul,
  matmulDispatches,
  type MatmulShape,
  matmulVariantName,
} from "../runtime/kernels/matmul.ts";
import {
  adapterIdOf,
  Autotuner,
  median,
  timeDispatches,
  timingReps,
  type TuneCacheData,
} from "../runtime/tune/engine.ts";
import {
  configMatmulShapes,
  matmulCandidates,
  matmulTask,
  tunedMatmulParams,
} from "../runtime/tune/matmul.ts";
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
import { fail, flag, writeResults } from "./results.ts";

const base = (p: string) => p.split("/").at(-1)!;

/** Debian's interpreter, whose python3-torch .ci/run installs (tests/fixtures/python.ts). */
const TORCH_PYTHON = "/usr/bin/python3";
/** The interpreter on PATH: numpy's BLAS there is what a user's numpy gets. */
const NUMPY_PYTHON = "python3";
/** Variables that tune OpenBLAS for one machine; set aside so every peer runs as shipped. */
const OPENBLAS_VARS = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];
/** Relative difference allowed between the two sides' first-batch losses. */
const LOSS_RTOL = 1e-5;
/** Where HELP's recipe unpacks Debian's libopenblas0-pthread. */
const OPENBLAS_DIR = ".cache/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread";
const PEERS_SCRIPT = new URL("../python/bench_peers.py", import.meta.url).pathname;

const HELP = `usage: deno task bench peers [--json] [--quick] [--write] [--rounds N] [--steps N]
  [--cache F] [--torch-python P] [--numpy-python P] [--torch-threads N,..] [--torch-blas DIR]

Training tokens/s of the demo model (PHD-CSWA K=2, vanilla K=1) on this adapter and in PyTorch on
the CPU, alternated round by round; matmul GFLOP/s next to numpy's and torch.mm's.
  --rounds N         rounds of the round-robin (default 5, --quick 3)
  --steps N          training steps per runtime and round (default 3, --quick 2)
  --cache F          autotune cache (default ${DEFAULT_TUNE_CACHE}); the tuned kernels come
                     from it (deno task autotune); 1024x512x512 is tuned here when missing
  --torch-python P   interpreter with torch (default ${TORCH_PYTHON})
  --numpy-python P   interpreter with numpy (default ${NUMPY_PYTHON} on PATH)
  --torch-threads L  torch's thread counts, one PyTorch peer each (e.g. 1,2; default: torch's)
  --torch-blas DIR   PyTorch peers with DIR/libblas.so.3 loaded first (LD_LIBRARY_PATH) as well;
                     Debian's OpenBLAS without installing it: apt-get download
                     libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb .cache/openblas,
                     then --torch-blas ${OPENBLAS_DIR}
  --quick            the 1024x512x512 matmul only, fewer rounds
  --write            replace the "Peers" section of bench/RESULTS.md`;

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

  private constructor(
    readonly what: string,
    python: string,
    args: string[],
    extraEnv: Record<string, string>,
  ) {
    const env = { ...Deno.env.toObject(), ...extraEnv };
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
  static async start(
    what: string,
    python: string,
    args: string[],
    extraEnv: Record<string, string> = {},
  ): Promise<Peer> {
    let peer: Peer;
    try {
      peer = new Peer(what, python, args, extraEnv);
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
  /** PyTorch peers: the system's BLAS, and --torch-blas's. */
  torch: TorchPeer[];
  params: number;
  /** Loss of the first training batch here. */
  firstLoss: number;
}

/** One numpy process, named by its BLAS thread count (OPENBLAS_NUM_THREADS). */
interface NumpyPeer {
  name: string;
  peer: Peer;
}

/** One PyTorch process of a model, named by the BLAS library it loaded and its threads. */
interface TorchPeer {
  name: string;
  /** The BLAS, LAPACK and oneDNN libraries it loaded. */
  blas: string[];
  threads: number;
  peer: Peer;
  ms: number[];
  firstLoss: number;
}

/** What a BLAS library is, from its path (the first BLAS among a process's libraries). */
function blasName(paths: string[]): string {
  const p = paths.find((x) => /blas/i.test(base(x)) && !/lapack/i.test(base(x)));
  if (!p) return "no BLAS library";
  if (/openblas/i.test(p)) return "OpenBLAS";
  if (/\/blas\/libblas\.so/.test(p)) return "reference BLAS";
  return base(p);
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
  o: { dir: string; cache: string; python: string; threads: number[]; torchBlas?: string },
): Promise<Contender> {
  const r = new Rng(1);
  const stream = Uint32Array.from({ length: 1 << 16 }, () => r.int(256));
  const corpus = { train: stream, val: stream };
  const choosers = countedKernels(
    await loadKernelChoosers(ctx, { path: o.cache, warn: (l) => console.error(l) }),
  );
  const first = new Trainer(ctx, config, corpus);
  const ours: Contender["ours"] = [{ kernels: "default kernels", trainer: first, ms: [] }];
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
  // One peer per BLAS (the system's, --torch-blas's) and thread count (0: torch's default).
  const envs: Record<string, string>[] = [{}];
  if (o.torchBlas) envs.push({ LD_LIBRARY_PATH: o.torchBlas });
  const peers = [];
  for (const env of envs) {
    for (const n of o.threads.length ? o.threads : [0]) {
      const threads = n ? ["--threads", `${n}`] : [];
      peers.push(await Peer.start("torch", o.python, [...args, ...threads], env));
    }
  }
  // The first training batch, as the Trainer draws it (its Batches, same stream and seed).
  const batch = new Batches(corpus.train, { batch: t.batch_size, seqLen: t.seq_len }, t.seed)
    .next();
  const windows = Array.from(
    { length: t.batch_size },
    (_, b) => Array.from(batch.subarray(b * (t.seq_len + 1), (b + 1) * (t.seq_len + 1))),
  );
  const torch: TorchPeer[] = [];
  for (const peer of peers) {
    if (peer.header.params !== first.params.count) {
      throw new PeerError(
        `${name}: ${first.params.count} parameters here, ${peer.header.params} in PyTorch`,
      );
    }
    const { loss } = await peer.ask<{ loss: number }>({ loss: windows });
    torch.push({
      name: `${blasName(peer.header.blas_loaded as string[])}, ${peer.header.threads} thr.`,
      blas: peer.header.blas_loaded as string[],
      threads: peer.header.threads as number,
      peer,
      ms: [],
      firstLoss: loss,
    });
  }
  // Warm-up: our first step (pipelines, uploads; its loss is the first batch's), torch's first.
  for (const x of ours) await oursSteps(x.trainer, 1);
  const firstLoss = (await first.takeLoss()).loss;
  // Same weights, same tokens, float32 on both sides: measured ~1e-7 apart; a different model
  // (mask, positions, initialisation read wrongly) would be far off.
  for (const x of torch) {
    if (!(Math.abs(x.firstLoss - firstLoss) <= LOSS_RTOL * firstLoss)) {
      throw new PeerError(
        `${name}: first-batch loss ${firstLoss} here, ${x.firstLoss} in PyTorch (${x.name}): ` +
          "not the same model",
      );
    }
  }
  for (const x of torch) await x.peer.ask({ steps: 1 });
  return { name, config, ours, torch, params: first.params.count, firstLoss };
}

/**
 * One matmul shape's figures: best ms and GFLOP/s per side ("default", "tuned" (absent where the
 * cache lacks the shape), "numpy, <n> thr." per numpy peer, "torch.mm <BLAS>, <n> thr." per
 * PyTorch peer).
 */
interface MatmulRow {
  shape: string;
  what: string;
  tuned_variant: string | null;
  ms: Record<string, number>;
  gflops: Record<string, number>;
}

type Shape = MatmulShape & { what: string };

const shapeKey = (s: MatmulShape) => `${s.trans} ${s.M}x${s.N}x${s.inner}`;

/**
 * Tunes the MFU reference product with the quick candidates when the cache lacks it (and saves
 * the cache), as bench/matmul.ts does for its shapes; returns the cache. The step shapes are
 * taken from the cache as they are (`deno task autotune` fills it; ~40 s a shape on a loaded
 * 2-core llvmpipe, too long for this benchmark).
 */
async function tuneReference(ctx: KernelContext, s: Shape, path: string) {
  const adapter = adapterIdOf(ctx.gpu), deno = denoVersion(), log = (l: string) => console.error(l);
  const cache = await loadTuneCache(path, log);
  const limits = gpuLimits(ctx.gpu);
  if (tunedMatmulParams(cache, { adapter, deno, limits, allowSplitK: true }, s)) return cache;
  log(`tuning matmul ${shapeKey(s)} (not in ${path})`);
  const task = matmulTask(ctx, s, {
    candidates: matmulCandidates({
      adapterClass: ctx.gpu.adapterClass,
      quick: true,
      shape: s,
      limits,
    }),
  });
  try {
    await new Autotuner(cache, { adapter, deno, warmup: 1, runs: 3 }).tune(task);
  } finally {
    task.destroy();
  }
  await saveTuneCache(cache, path);
  return cache;
}

/** Our default and tuned variants, numpy and torch.mm on each shape: best of interleaved rounds. */
async function matmuls(
  ctx: KernelContext,
  shapes: Shape[],
  o: { cache: TuneCacheData; rounds: number; numpy: NumpyPeer[]; torch: TorchPeer[] },
): Promise<MatmulRow[]> {
  const dev = ctx.gpu.device, log = (s: string) => console.error(s);
  const chooser = {
    adapter: adapterIdOf(ctx.gpu),
    deno: denoVersion(),
    limits: gpuLimits(ctx.gpu),
    allowSplitK: true,
  };
  const rows: MatmulRow[] = [];
  for (const s of shapes) {
    const { M, N, inner, trans } = s, flops = 2 * M * N * inner, reps = timingReps(flops);
    const a = storageBuffer(dev, M * inner * 4), b = storageBuffer(dev, N * inner * 4);
    const c = storageBuffer(dev, M * N * 4);
    const tuned = tunedMatmulParams(o.cache, chooser, s);
    const ours = new Map<string, Dispatch[]>();
    const byDefault = defaultMatmul(ctx.gpu.adapterClass, s, chooser.limits);
    for (const [side, params] of [["default", byDefault], ["tuned", tuned]] as const) {
      if (params) ours.set(side, matmulDispatches(ctx, { a, b, c, M, N, inner, trans, params }));
    }
    const peers = new Map(o.numpy.map((n) => [n.name, n.peer]));
    for (const t of o.torch) peers.set(`torch.mm ${t.name}`, t.peer);
    const req = { matmul: [M, N, inner], trans };
    const times = new Map<string, number[]>([...ours.keys(), ...peers.keys()].map((k) => [k, []]));
    for (let r = 0; r <= o.rounds; r++) { // round 0 warms up
      const t = new Map<string, number>();
      for (const [side, ds] of ours) t.set(side, await timeDispatches(ctx, ds, reps));
      for (const [side, peer] of peers) t.set(side, (await peer.ask<{ ms: number }>(req)).ms);
      if (r > 0) { for (const [side, ms] of t) times.get(side)!.push(ms); }
    }
    destroyDispatches([...ours.values()].flat());
    for (const x of [a, b, c]) x.destroy();
    // Best of the rounds: what each side can reach on these cores (a BLAS's threads stall when
    // another job takes a core, which a median on a loaded machine would show instead).
    const ms = [...times].map(([k, v]) => [k, Math.min(...v)] as const);
    const row: MatmulRow = {
      shape: shapeKey(s),
      what: s.what,
      tuned_variant: tuned ? matmulVariantName(tuned) : null,
      ms: Object.fromEntries(ms.map(([k, v]) => [k, +v.toFixed(3)])),
      gflops: Object.fromEntries(ms.map(([k, v]) => [k, +(flops / v / 1e6).toFixed(2)])),
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
  /** torch's thread counts (empty: its default). */
  threads: number[];
  cache: string;
  torchPython: string;
  numpyPython: string;
  torchBlas?: string;
}

function threadList(v: string | undefined): number[] {
  if (v === undefined) return [];
  const ns = v.split(",").map(Number);
  if (!ns.every((n) => Number.isInteger(n) && n >= 1)) {
    fail(`--torch-threads needs positive integers separated by commas, got "${v}"`);
  }
  return ns;
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
    "--torch-blas",
  ];
  for (const a of args) if (a.startsWith("--") && !known.includes(a)) fail(`unknown flag ${a}`);
  const quick = args.includes("--quick"), torchBlas = flag(args, "--torch-blas");
  if (torchBlas !== undefined) {
    try {
      Deno.statSync(`${torchBlas}/libblas.so.3`);
    } catch {
      fail(
        `--torch-blas: no ${torchBlas}/libblas.so.3 (e.g. apt-get download libopenblas0-pthread ` +
          `&& dpkg -x libopenblas0-pthread_*.deb .cache/openblas, then --torch-blas ${OPENBLAS_DIR})`,
      );
    }
  }
  return {
    quick,
    rounds: positiveFlag(args, "--rounds", quick ? 3 : 5)!,
    steps: positiveFlag(args, "--steps", quick ? 2 : 3)!,
    threads: threadList(flag(args, "--torch-threads")),
    cache: flag(args, "--cache") ?? DEFAULT_TUNE_CACHE,
    torchPython: flag(args, "--torch-python") ?? TORCH_PYTHON,
    numpyPython: flag(args, "--numpy-python") ?? NUMPY_PYTHON,
    torchBlas,
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
  // numpy on one thread and on every core: a BLAS's threads stall when another job takes a core.
  const numpy: NumpyPeer[] = [];
  for (const n of new Set([1, host.cores])) {
    const env = { OPENBLAS_NUM_THREADS: `${n}` };
    numpy.push({
      name: `numpy, ${n} thr.`,
      peer: await Peer.start("numpy", o.numpyPython, ["numpy"], env),
    });
  }
  const ctx = await createContext(gpuOptionsFromEnv());
  const mfu: Shape = { M: 1024, N: 512, inner: 512, trans: "nt", what: "MFU reference" };
  const dir = await Deno.makeTempDir({ prefix: "bench_peers_" });
  const contenders: Contender[] = [];
  try {
    for (const { name, config } of models()) {
      const c = await contender(ctx, name, config, {
        ...o,
        dir,
        python: o.torchPython,
      });
      contenders.push(c);
      const torchLoss = c.torch.map((x) => x.firstLoss);
      log(
        JSON.stringify({ model: name, params: c.params, first_loss: [c.firstLoss, ...torchLoss] }),
      );
    }
    // After the peers started (a missing torch fails before this): tuned trainers do not use it.
    const cache = await tuneReference(ctx, mfu, o.cache);
    // Round-robin: each round runs every model's steps here and in PyTorch, in turn.
    for (let r = 0; r < o.rounds; r++) {
      for (const c of contenders) {
        for (const x of c.ours) x.ms.push(...await oursSteps(x.trainer, o.steps));
        for (const x of c.torch) {
          x.ms.push(...(await x.peer.ask<{ ms: number[] }>({ steps: o.steps })).ms);
        }
      }
      log(`round ${r + 1}/${o.rounds} done`);
    }
    // The MFU reference and (without --quick) the demo step's distinct shapes.
    const seen = new Set([shapeKey(mfu)]);
    const step = configMatmulShapes(ctx, DEFAULT_CONFIG).filter((s) =>
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
    const th = contenders[0].torch[0].peer.header, nh = numpy[0].peer.header;
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
        default_threads: th.default_threads as number,
        peers: contenders[0].torch.map((x) => ({ name: x.name, blas: x.blas, threads: x.threads })),
      },
      numpy: {
        python: nh.python as string,
        version: nh.numpy as string,
        blas: nh.blas_build as string,
        blas_loaded: nh.blas_loaded as string[],
        openblas: nh.openblas_config as string | null,
        /** Threads each numpy peer's BLAS reports (null: not an OpenBLAS). */
        threads: numpy.map((x) => x.peer.header.threads as number | null),
      },
      training: contenders.map((c) => trainingRow(c, tokens)),
      matmul: mm,
    };
  } finally {
    for (const c of contenders) {
      for (const x of c.ours) x.trainer.destroy();
      for (const x of c.torch) await x.peer.close();
    }
    for (const x of numpy) await x.peer.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** One model's medians, ratios (ours over each PyTorch peer) and first-batch losses. */
function trainingRow(c: Contender, tokens: number) {
  const perS = (ms: number) => Math.round(tokens / ms * 1000);
  const torch = c.torch.map((x) => ({
    name: x.name,
    step_ms: +median(x.ms).toFixed(1),
    tokens_per_s: perS(median(x.ms)),
    first_loss: +x.firstLoss.toFixed(6),
    first_loss_rel_diff: +(Math.abs(x.firstLoss - c.firstLoss) / c.firstLoss).toExponential(2),
  }));
  return {
    model: c.name,
    params: c.params,
    first_loss: +c.firstLoss.toFixed(6),
    torch,
    ours: c.ours.map((x) => {
      const ms = median(x.ms);
      return {
        kernels: x.kernels,
        step_ms: +ms.toFixed(1),
        tokens_per_s: perS(ms),
        vs_torch: torch.map((t) => +(t.step_ms / ms).toFixed(2)),
      };
    }),
  };
}

type Result = Awaited<ReturnType<typeof measure>>;

function markdown(r: Result, args: string[]): string {
  const flags = args.filter((a) => a !== "--write").join(" ");
  const peers = r.training[0].torch.map((t) => t.name);
  const libs = r.torch.peers.map((p) =>
    `${p.name}: ${p.blas.filter((x) => /blas/i.test(base(x))).map(base).join(", ") || "none"}`
  );
  const numpyBlas = `${r.numpy.blas} (${r.numpy.blas_loaded.map(base).join(", ") || "none found"}` +
    `; one process with OPENBLAS_NUM_THREADS=1, one with ${r.cores}; threads reported: ` +
    `${r.numpy.threads.map((n) => n ?? "?").join(", ")})`;
  const lines = [
    "## Peers",
    "",
    `\`npx --yes deno@2.9.6 task bench peers${flags ? " " + flags : ""}\` (${r.seconds} s) on ` +
    `${r.adapter}, CPU ${r.cpu} (${r.cores} cores), shared with other jobs: load average ` +
    `${r.load.before} before, ${r.load.after} after, so absolute figures are low and noisy; the ` +
    "ratios come from runs alternated in one process group. PyTorch: " +
    `${r.torch.version} (${r.torch.python}; its default here: ${r.torch.default_threads} ` +
    `thread(s); llvmpipe runs one per core), one process per BLAS and thread count ` +
    `(${libs.join("; ")}); numpy ${r.numpy.version} ` +
    `(${r.numpy.python}), ${numpyBlas}. Every Python process runs with OPENBLAS_CORETYPE and ` +
    "OPENBLAS_L2_SIZE removed from its environment. Debian's torch uses the `libblas.so.3` the " +
    "system's alternatives name (the reference BLAS unless an optimised one is installed); " +
    "`--torch-blas DIR` adds peers that load DIR's first (`deno task bench peers --help`: " +
    "Debian's OpenBLAS unpacked, not installed).",
    "",
    `Training: the demo model (batch ${r.batch} x ${r.seq_len} positions), whole steps (forward, ` +
    "backward, clipping, AdamW; PyTorch: python/phd_torch.py's model, dense additive mask) from " +
    `the same weights on random tokens, ${r.rounds} rounds of ${r.steps_per_round} steps of each ` +
    "side in turn after a warm-up step; medians. first loss: the loss of the first training " +
    "batch (same weights, same tokens) and its relative difference from this runtime's. " +
    "x PyTorch (...): this runtime's tokens/s over that PyTorch process's.",
    "",
    `| model | params | runtime | step ms | tokens/s | ${
      peers.map((b) => `x PyTorch (${b})`).join(" | ")
    } | first loss |`,
    `| ----- | -----: | ------- | ------: | -------: | ${
      peers.map(() => "----:").join(" | ")
    } | ---------- |`,
  ];
  for (const t of r.training) {
    for (const x of t.torch) {
      lines.push(
        `| ${t.model} | ${t.params} | PyTorch CPU (${x.name}) | ${x.step_ms} | ${x.tokens_per_s} | ` +
          `${t.torch.map(() => "").join(" | ")} | ` +
          `${x.first_loss} (${x.first_loss_rel_diff}) |`,
      );
    }
    for (const [i, o] of t.ours.entries()) {
      lines.push(
        `| ${t.model} | ${t.params} | this, WebGPU (${o.kernels}) | ${o.step_ms} | ` +
          `${o.tokens_per_s} | ${o.vs_torch.map((v) => v.toFixed(2)).join(" | ")} | ` +
          `${i === 0 ? t.first_loss : ""} |`,
      );
    }
  }
  const sides = [...new Set(r.matmul.flatMap((m) => Object.keys(m.gflops)))];
  lines.push(
    "",
    `Matmul GFLOP/s (float32, C = A'B'): best of ${r.rounds} interleaved rounds (each the median of ` +
      "3 timed batches). numpy is the physical reference (its BLAS on the same cores; the better " +
      "of its thread counts in the last column); torch.mm is what the PyTorch steps run on. " +
      "tuned: the autotuner's variant of the shape (- where the cache has none).",
    "",
    `| shape | use | ${sides.join(" | ")} | tuned variant | best here / numpy |`,
    `| ----- | --- | ${sides.map(() => "---:").join(" | ")} | ------------- | ----------------: |`,
    ...r.matmul.map((m) => {
      const best = Math.max(m.gflops.default, m.gflops.tuned ?? 0);
      const numpyBest = Math.max(
        ...sides.filter((k) => k.startsWith("numpy")).map((k) => m.gflops[k]),
      );
      return `| ${m.shape} | ${m.what} | ${sides.map((k) => m.gflops[k] ?? "-").join(" | ")} | ` +
        `${m.tuned_variant ?? "-"} | ${(best / numpyBest).toFixed(3)} |`;
    }),
  );
  return lines.join("\n");
}
