/**
 * The matmul side of `deno task bench peers`: our default and tuned variants, numpy and torch.mm
 * on the matmul-rate reference product and the demo step's shapes, best of interleaved rounds.
 */

import { destroyDispatches, type Dispatch, type KernelContext } from "../../runtime/gpu/kernel.ts";
import { storageBuffer } from "../../runtime/gpu/resources.ts";

import { gpuLimits } from "../../runtime/gpu/device.ts";
import {
  defaultMatmul,
  matmulDispatches,
  type MatmulShape,
  matmulVariantName,
} from "../../runtime/kernels/matmul.ts";
import { adapterIdOf, Autotuner, type TuneCacheData } from "../../runtime/tune/engine.ts";
import { timeDispatches, timeRounds, timingReps } from "../../runtime/measure/timing.ts";
import { matmulCandidates, matmulTask, tunedMatmulParams } from "../../runtime/tune/matmul.ts";
import { denoVersion, loadTuneCache, saveTuneCache } from "../../runtime/host/tune_cache.ts";
import { NumpyPeer, TorchPeer } from "./contenders.ts";

export interface MatmulRow {
  shape: string;
  what: string;
  tuned_variant: string | null;
  ms: Record<string, number>;
  gflops: Record<string, number>;
}

export type Shape = MatmulShape & { what: string };

export const shapeKey = (s: MatmulShape) => `${s.trans} ${s.M}x${s.N}x${s.inner}`;

/**
 * Tunes the matmul-rate reference product with the quick candidates when the cache lacks it (and saves
 * the cache), as bench/matmul.ts does for its shapes; returns the cache. The step shapes are
 * taken from the cache as they are (`deno task autotune` fills it; ~40 s a shape on a loaded
 * 2-core llvmpipe, too long for this benchmark).
 */
export async function tuneReference(ctx: KernelContext, s: Shape, path: string) {
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
export async function matmuls(
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
    // Round 0 warms up; each peer times itself and replies with its ms.
    const runs = [
      ...[...ours.values()].map((ds) => () => timeDispatches(ctx, ds, reps)),
      ...[...peers.values()].map((peer) => async () => (await peer.ask<{ ms: number }>(req)).ms),
    ];
    const samples = await timeRounds(runs, { rounds: o.rounds });
    const times = new Map([...ours.keys(), ...peers.keys()].map((k, i) => [k, samples[i]]));
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
