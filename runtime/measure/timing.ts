/**
 * One home for measurement (browser-safe): wall-clock rounds after a warm-up, one run or several
 * round-robin (`timeRounds`, `timeRuns`: what the benchmarks and the experiments time), GPU-side timing of prepared dispatches with timestamp
 * queries where the device has them (`timeDispatches`, what the autotuner times), and how many
 * runs one timed submit should hold (`timingReps`). Statistics of the samples: ./stats.ts.
 */
import { type Dispatch, type KernelContext, record, submit } from "../gpu/kernel.ts";
import { readback } from "../gpu/resources.ts";

/**
 * A unit of timed work. Where it resolves to a number, that is its sample in ms (work that times
 * only part of itself, e.g. the submit and not the encoding); else the wall clock around it.
 */
export type Timed = () => unknown;

/** Options of `timeRounds`. */
export interface RoundOptions {
  /** Timed rounds. */
  rounds: number;
  /** Untimed rounds first (default 1: the first run builds pipelines and uploads). */
  warmup?: number;
  /**
   * Round-robin order: round r starts at run `r mod n`, so no run always comes first (the first
   * timing after another's host-side work can run slower). Default false: always in order.
   */
  rotate?: boolean;
  /** Called after each round (0-based, warm-up rounds included), e.g. for progress. */
  onRound?: (round: number, samples: readonly number[][]) => void;
}

/**
 * Samples in ms of each of `runs`, taken round by round (every run once per round) after the
 * warm-up rounds, so a slow spell of a shared machine hits every run alike. Work that waits for
 * the GPU awaits its queue in the run itself.
 */
export async function timeRounds(runs: readonly Timed[], o: RoundOptions): Promise<number[][]> {
  const warmup = o.warmup ?? 1, samples = runs.map(() => [] as number[]);
  for (let r = 0; r < warmup + o.rounds; r++) {
    for (let i = 0; i < runs.length; i++) {
      const k = o.rotate ? (r + i) % runs.length : i;
      const t0 = performance.now();
      const got = await runs[k]();
      const ms = typeof got === "number" ? got : performance.now() - t0;
      if (r >= warmup) samples[k].push(ms);
    }
    o.onRound?.(r, samples);
  }
  return samples;
}

/** `timeRounds` of one run: its `rounds` samples in ms after `warmup` untimed runs. */
export async function timeRuns(
  run: Timed,
  o: Omit<RoundOptions, "rotate" | "onRound">,
): Promise<number[]> {
  return (await timeRounds([run], o))[0];
}

/**
 * Runs per timed submit for work of `flops`: about 3e8 FLOP (~150 ms on llvmpipe, whose
 * submit-to-`onSubmittedWorkDone` fence alone costs ~12 ms in Deno), at most 64.
 */
export function timingReps(flops: number): number {
  return Math.max(1, Math.min(64, Math.round(3e8 / flops)));
}

/**
 * Milliseconds per run of `ds` (each run: every dispatch in order), `reps` runs in one compute
 * pass: GPU timestamps at the pass's start and end when the device has `timestamp-query`, else
 * the wall clock from submit to `onSubmittedWorkDone`.
 */
export async function timeDispatches(
  ctx: KernelContext,
  ds: readonly Dispatch[],
  reps = 1,
): Promise<number> {
  const dev = ctx.gpu.device;
  const runs = Array.from({ length: reps }, () => ds).flat();
  if (!ctx.gpu.timestamps) {
    const t0 = performance.now();
    submit(ctx, runs);
    await dev.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  }
  const qs = dev.createQuerySet({ type: "timestamp", count: 2 });
  const res = dev.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  try {
    const enc = dev.createCommandEncoder();
    record(enc, runs, {
      timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    enc.resolveQuerySet(qs, 0, 2, res, 0);
    dev.queue.submit([enc.finish()]);
    const t = new BigUint64Array(await readback(dev, res, 16));
    return Number(t[1] - t[0]) / 1e6 / reps;
  } finally {
    qs.destroy();
    res.destroy();
  }
}
