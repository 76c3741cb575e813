/**
 * Peers side by side, in one run on one machine (issue 17, item 6; torchrun: issue 25):
 * - training tokens/s of the demo model (runtime/model/config.ts DEFAULT_CONFIG: PHD-CSWA K = 2,
 *   and vanilla K = 1, same batch and sequence length) here on the WebGPU adapter (the Trainer,
 *   default kernels and, where .cache/autotune.json has them, the autotuner's) and in PyTorch on
 *   the CPU (python/bench_peers.py over python/phd_torch: Debian's torch 1.13, dense additive
 *   mask), both from the same starting weights, alternated round by round so the machine's load
 *   hits both alike; medians and ratios. Both are checked to train the same model: the same
 *   parameter count and the same loss on the first batch (to LOSS_RTOL, else an error);
 * - matmul GFLOP/s: this runtime's default and tuned variants on a 1024x512x512 product (the
 *   measured matmul rate) and, without --quick, the demo step's shapes, next to numpy's (the
 *   physical reference: its BLAS on the same cores) and torch.mm's (what the PyTorch steps use);
 * - with --torchrun 1,2: `phd_torch train` jobs under torchrun with that many processes (one
 *   thread each, --torch-blas's BLAS when given) on a token file of the same tokens, from the same
 *   checkpoint (--init), one job per count in every round; their per-step times after the first
 *   step, their tokens/s and how they scale with processes. Their first loss must equal ours.
 *
 * Every Python process runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its
 * environment (the rest is inherited), and reports the BLAS library it really loads: Debian's
 * torch takes whatever `libblas.so.3` the system's alternatives name (the netlib reference BLAS
 * unless an optimised one is installed), so `--torch-blas DIR` adds a second PyTorch peer that
 * loads DIR's `libblas.so.3` first (e.g. Debian's libopenblas0-pthread, unpacked).
 *
 *   deno task bench peers [--json] [--quick] [--write] [--rounds N] [--steps N] [--cache F]
 *     [--torch-python P] [--numpy-python P] [--torch-threads N,..] [--torch-blas DIR]
 *     [--torchrun N,..]
 */

import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";

import { DEFAULT_CONFIG } from "../runtime/model/config.ts";

import { median } from "../runtime/measure/stats.ts";
import { configMatmulShapes } from "../runtime/tune/matmul.ts";
import { DEFAULT_TUNE_CACHE } from "../runtime/host/tune_cache.ts";

import { fail, flag, writeResults } from "./results.ts";
import {
  base,
  HELP,
  LOSS_RTOL,
  machine,
  NUMPY_PYTHON,
  OPENBLAS_DIR,
  Peer,
  PeerError,
  positiveFlag,
  TORCH_PYTHON,
} from "./peers/peer.ts";
import {
  Contender,
  contender,
  models,
  NumpyPeer,
  oursSteps,
  torchrunSteps,
} from "./peers/contenders.ts";
import { matmuls, Shape, shapeKey, tuneReference } from "./peers/matmuls.ts";

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
  /** Process counts of the torchrun jobs (empty: none). */
  torchrun: number[];
}

function countList(args: string[], name: string): number[] {
  const v = flag(args, name);
  if (v === undefined) return [];
  const ns = v.split(",").map(Number);
  if (!ns.every((n) => Number.isInteger(n) && n >= 1)) {
    fail(`${name} needs positive integers separated by commas, got "${v}"`);
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
    "--torchrun",
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
    threads: countList(args, "--torch-threads"),
    torchrun: countList(args, "--torchrun"),
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
  const mfu: Shape = { M: 1024, N: 512, inner: 512, trans: "nt", what: "matmul-rate reference" };
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
        for (const job of c.torchrun) await torchrunSteps(job, o.torchPython, o.steps);
      }
      log(`round ${r + 1}/${o.rounds} done`);
    }
    // torchrun's first step is the first batch from our weights: the same loss, or not our model
    for (const c of contenders) {
      for (const job of c.torchrun) {
        if (!(Math.abs(job.firstLoss! - c.firstLoss) <= LOSS_RTOL * c.firstLoss)) {
          throw new PeerError(
            `${c.name}: first-batch loss ${c.firstLoss} here, ${job.firstLoss} under torchrun ` +
              `(${job.procs} processes): not the same model or batches`,
          );
        }
      }
    }
    // The matmul-rate reference and (without --quick) the demo step's distinct shapes.
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
  const rel = (loss: number) => +(Math.abs(loss - c.firstLoss) / c.firstLoss).toExponential(2);
  const torch = c.torch.map((x) => ({
    name: x.name,
    step_ms: +median(x.ms).toFixed(1),
    tokens_per_s: perS(median(x.ms)),
    first_loss: +x.firstLoss.toFixed(6),
    first_loss_rel_diff: rel(x.firstLoss),
  }));
  const one = c.torchrun.find((j) => j.procs === 1);
  const torchrun = c.torchrun.map((j) => ({
    processes: j.procs,
    step_ms: +median(j.ms).toFixed(1),
    tokens_per_s: perS(median(j.ms)),
    /** tokens/s over the 1-process job's (null without one). */
    scaling: one ? +(median(one.ms) / median(j.ms)).toFixed(2) : null,
    first_loss_rel_diff: rel(j.firstLoss!),
  }));
  return {
    model: c.name,
    params: c.params,
    first_loss: +c.firstLoss.toFixed(6),
    torch,
    torchrun,
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
    "backward, clipping, AdamW; PyTorch: python/phd_torch's model, dense additive mask) from " +
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
  if (r.training.some((t) => t.torchrun.length > 0)) {
    const blas = r.torch.peers.at(-1)!.name.replace(/, \d+ thr\.$/, "");
    lines.push(
      "",
      "Scaling out: `PYTHONPATH=python python3 -m torch.distributed.run --standalone " +
        "--nproc_per_node N -r 1 -t 1 -m phd_torch train --init ckpt --tokens T --threads 1` " +
        `(${blas}, one thread per process, OPENBLAS_NUM_THREADS=1), one job per process count ` +
        `in each of the ${r.rounds} rounds, the batch above split over the processes (DDP, gloo); ` +
        "medians of its per-step times after each job's first step. first loss: its first " +
        "step's loss against this runtime's (the same weights and batch). scaling: tokens/s over " +
        "1 process's; this runtime: its best tokens/s above over the job's.",
      "",
      "| model | processes | step ms | tokens/s | scaling | this runtime / torchrun | first loss diff |",
      "| ----- | --------: | ------: | -------: | ------: | ----------------------: | --------------: |",
    );
    for (const t of r.training) {
      const best = Math.max(...t.ours.map((o) => o.tokens_per_s));
      for (const j of t.torchrun) {
        lines.push(
          `| ${t.model} | ${j.processes} | ${j.step_ms} | ${j.tokens_per_s} | ${
            j.scaling ?? "-"
          } | ${(best / j.tokens_per_s).toFixed(2)} | ${j.first_loss_rel_diff} |`,
        );
      }
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
