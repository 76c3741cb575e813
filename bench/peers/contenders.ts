/**
 * The models of `deno task bench peers` in both runtimes: our trainer's step times (default and
 * tuned kernels), the PyTorch peer's, and `phd_torch train` under torchrun, all from the same
 * weights and batches.
 */
import { flexModule } from "../../compiler/codegen/flex.ts";

import { type KernelContext } from "../../runtime/gpu/kernel.ts";

import { Batches } from "../../runtime/data/batches.ts";
import { Rng } from "../../runtime/data/rng.ts";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { type Config, DEFAULT_CONFIG } from "../../runtime/model/config.ts";

import { countedKernels, loadKernelChoosers } from "../../runtime/host/tune_cache.ts";
import { writeFileAtomic } from "../../runtime/host/files.ts";
import { writeTokenFile } from "../../runtime/host/token_file.ts";
import { Trainer } from "../../runtime/train/trainer.ts";
import { base, LOSS_RTOL, OPENBLAS_VARS, Peer, PeerError, PYTHON_DIR } from "./peer.ts";
import { timeRuns } from "../../runtime/measure/timing.ts";

/** The two models: the demo config as it is (PHD-CSWA K = 2) and its vanilla K = 1. */
export function models(): { name: string; config: Config }[] {
  const phd = structuredClone(DEFAULT_CONFIG);
  const vanilla = structuredClone(DEFAULT_CONFIG);
  vanilla.phd = { ...vanilla.phd, K: 1, variant: "causal" };
  return [{ name: "phd-cswa K=2", config: phd }, { name: "vanilla K=1", config: vanilla }];
}

/** One model in both runtimes: our trainers (default, tuned) and its PyTorch peer. */
export interface Contender {
  name: string;
  config: Config;
  /** Our trainers: default kernels, and the autotuner's where the cache has any. */
  ours: { kernels: string; trainer: Trainer; ms: number[] }[];
  /** PyTorch peers: the system's BLAS, and --torch-blas's. */
  torch: TorchPeer[];
  /** torchrun jobs of `phd_torch train`, one per --torchrun process count. */
  torchrun: TorchrunJob[];
  params: number;
  /** Loss of the first training batch here. */
  firstLoss: number;
}

/** `phd_torch train` under torchrun with `procs` processes: how to start it, its step times. */
export interface TorchrunJob {
  procs: number;
  args: string[];
  env: Record<string, string>;
  ms: number[];
  firstLoss?: number;
}

/** One numpy process, named by its BLAS thread count (OPENBLAS_NUM_THREADS). */
export interface NumpyPeer {
  name: string;
  peer: Peer;
}

/** One PyTorch process of a model, named by the BLAS library it loaded and its threads. */
export interface TorchPeer {
  name: string;
  /** The BLAS, LAPACK and oneDNN libraries it loaded. */
  blas: string[];
  threads: number;
  peer: Peer;
  ms: number[];
  firstLoss: number;
}

/** What a BLAS library is, from its path (the first BLAS among a process's libraries). */
export function blasName(paths: string[]): string {
  const p = paths.find((x) => /blas/i.test(base(x)) && !/lapack/i.test(base(x)));
  if (!p) return "no BLAS library";
  if (/openblas/i.test(p)) return "OpenBLAS";
  if (/\/blas\/libblas\.so/.test(p)) return "reference BLAS";
  return base(p);
}

/** Milliseconds of `n` training steps (the caller has warmed the trainer up). */
export function oursSteps(trainer: Trainer, n: number): Promise<number[]> {
  const queue = trainer.ctx.gpu.device.queue;
  return timeRuns(() => {
    trainer.trainStep();
    return queue.onSubmittedWorkDone();
  }, { rounds: n, warmup: 0 });
}

/**
 * Builds a model's trainers and its PyTorch peer from the same weights (our initialisation,
 * saved as a checkpoint that python/phd_torch loads), checks the parameter counts and the
 * loss of the first training batch on both sides, and warms both up.
 */
export async function contender(
  ctx: KernelContext,
  name: string,
  config: Config,
  o: {
    dir: string;
    cache: string;
    python: string;
    threads: number[];
    torchBlas?: string;
    torchrun: number[];
  },
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
  const tokens = `${o.dir}/${tag}_tokens.safetensors`;
  if (o.torchrun.length > 0) {
    const source = { train: [], val: [], field: "text" };
    const meta = { tokenizer: "bytes", vocabSize: 256, separator: 0, source };
    await writeTokenFile(tokens, { train: stream, val: stream }, meta);
  }
  const env: Record<string, string> = { PYTHONPATH: PYTHON_DIR, OPENBLAS_NUM_THREADS: "1" };
  if (o.torchBlas) env.LD_LIBRARY_PATH = o.torchBlas;
  const torchrun = o.torchrun.map((procs) => ({
    procs,
    env,
    ms: [],
    args: [
      ...["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", `${procs}`],
      ...["-r", "1", "-t", "1", "--monitor_interval", "0.2", "-m", "phd_torch", "train"],
      ...["--mask", mask, "--init", ckpt, "--tokens", tokens, "--attention", "dense"],
      ...["--threads", "1", "--save-every", "0", "--log-every", "1", "--json"],
      ...["--out", `${o.dir}/${tag}_torchrun${procs}.safetensors`],
    ],
  }));
  return { name, config, ours, torch, torchrun, params: first.params.count, firstLoss };
}

/**
 * One torchrun job of `steps` + 1 training steps: the times of all but the first (which builds
 * the mask and warms up), and its first loss (the first batch's, from our weights).
 */
export async function torchrunSteps(job: TorchrunJob, python: string, steps: number) {
  const env = { ...Deno.env.toObject(), ...job.env };
  for (const v of OPENBLAS_VARS) delete env[v];
  const out = await new Deno.Command(python, {
    args: [...job.args, "--steps", `${steps + 1}`],
    env,
    clearEnv: true,
  }).output();
  const dec = new TextDecoder();
  const line = dec.decode(out.stdout).split("\n").find((l) => l.startsWith("[default0]:{"));
  if (out.code !== 0 || !line) {
    const err = dec.decode(out.stderr).split("\n").filter((l) => l.startsWith("error:"));
    throw new PeerError(`torchrun of ${job.procs} process(es) failed: ${err.at(-1) ?? out.code}`);
  }
  const report = JSON.parse(line.slice("[default0]:".length));
  job.firstLoss ??= report.losses[0][1];
  job.ms.push(...report.step_ms.slice(1));
}

/**
 * One matmul shape's figures: best ms and GFLOP/s per side ("default", "tuned" (absent where the
 * cache lacks the shape), "numpy, <n> thr." per numpy peer, "torch.mm <BLAS>, <n> thr." per
 * PyTorch peer).
 */
