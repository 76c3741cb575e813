/**
 * One home for measurement (browser-safe): wall-clock rounds after a warm-up (`timeRuns`, what the
 * benchmarks and the experiments time), GPU-side timing of prepared dispatches with timestamp
 * queries where the device has them (`timeDispatches`, what the autotuner times), and how many
 * runs one timed submit should hold (`timingReps`). Statistics of the samples: ./stats.ts.
 */
import { type Dispatch, type KernelContext, record, submit } from "../gpu/kernel.ts";
import { readback } from "../gpu/resources.ts";

/**
 * Milliseconds of each of `rounds` runs of `run` after `warmup` untimed ones (default 1: the first
 * run builds pipelines and uploads). Wall clock: work that waits for the GPU awaits its queue in
 * `run` itself.
 */
export async function timeRuns(
  run: () => unknown,
  o: { rounds: number; warmup?: number },
): Promise<number[]> {
  for (let i = 0; i < (o.warmup ?? 1); i++) await run();
  const ms: number[] = [];
  for (let i = 0; i < o.rounds; i++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return ms;
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
