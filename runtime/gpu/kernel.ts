/**
 * What every non-attention kernel family shares: a built kernel (WGSL, cache key, binding names,
 * workgroup size), a prepared dispatch (pipeline + bind group + grid, made once and replayed every
 * step), recording many dispatches into one compute pass, and the uniform packing. Browser-safe.
 *
 * Invariant: a kernel's `key` covers everything baked into its WGSL (tile sizes, workgroup size,
 * transposition); shapes and per-step values (lr, step) travel in uniforms, never in the source.
 */
import type { GpuContext } from "./device.ts";
import { type PipelineCache, uniformBuffer } from "./resources.ts";

/** A device and the pipeline cache every kernel family builds through. */
export interface KernelContext {
  gpu: GpuContext;
  cache: PipelineCache;
}

/** A kernel ready for a pipeline. */
export interface Kernel {
  /** Cache key: the family and every parameter baked into the code. */
  key: string;
  label: string;
  code: string;
  /** Names of the resources bound at 0, 1, ... (in binding order). */
  bindings: readonly string[];
}

/** One recorded-ready dispatch: replay it every step with `record`. */
export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
  /** Uniform buffers this dispatch owns (freed by `destroyDispatches`). */
  owned: GPUBuffer[];
}

/**
 * Builds (or reuses) the pipeline of `kernel` and binds `buffers` by name. `owned` lists buffers
 * created for this dispatch alone (its uniforms), destroyed with it.
 */
export function prepare(
  ctx: KernelContext,
  kernel: Kernel,
  o: { buffers: Record<string, GPUBuffer>; grid: [number, number, number]; owned?: GPUBuffer[] },
): Dispatch {
  const { pipeline } = ctx.cache.get(
    kernel.key,
    () => ({ code: kernel.code, label: kernel.label }),
  );
  const max = ctx.gpu.device.limits.maxComputeWorkgroupsPerDimension;
  for (const g of o.grid) {
    if (!Number.isInteger(g) || g < 0 || g > max) {
      throw new RangeError(
        `${kernel.label}: grid ${
          o.grid.join("x")
        } exceeds maxComputeWorkgroupsPerDimension ${max}: ` +
          `use larger tiles or split the call`,
      );
    }
  }
  const entries = kernel.bindings.map((name, binding): GPUBindGroupEntry => {
    const buffer = o.buffers[name];
    if (!buffer) throw new Error(`kernel ${kernel.label} binds "${name}" but none was given`);
    return { binding, resource: { buffer } };
  });
  const bindGroup = ctx.gpu.device.createBindGroup({
    label: kernel.label,
    layout: pipeline.getBindGroupLayout(0),
    entries,
  });
  return { label: kernel.label, pipeline, bindGroup, grid: o.grid, owned: o.owned ?? [] };
}

/** Records dispatches, in order, into one compute pass (each sees the previous ones' writes). */
export function record(enc: GPUCommandEncoder, dispatches: readonly Dispatch[]): void {
  const pass = enc.beginComputePass();
  for (const d of dispatches) {
    if (d.grid.some((g) => g === 0)) continue;
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(...d.grid);
  }
  pass.end();
}

/** Records and submits dispatches in one command buffer. */
export function submit(ctx: KernelContext, dispatches: readonly Dispatch[]): void {
  const enc = ctx.gpu.device.createCommandEncoder();
  record(enc, dispatches);
  ctx.gpu.device.queue.submit([enc.finish()]);
}

/** Frees the uniform buffers the dispatches own. */
export function destroyDispatches(dispatches: readonly Dispatch[]): void {
  for (const d of dispatches) for (const b of d.owned) b.destroy();
}

/** A uniform field: `u32` (shapes, offsets, flags) or `f32` (scales, hyper-parameters). */
export type UniformValue = { u32: number } | { f32: number };

/**
 * A uniform buffer of 4-byte fields in the given order (the WGSL struct declares them in the
 * same order, all `u32`/`f32`, so there is no padding to mirror).
 */
export function uniforms(ctx: KernelContext, fields: readonly UniformValue[], label: string) {
  const data = new ArrayBuffer(Math.max(16, Math.ceil(fields.length / 4) * 16));
  const view = new DataView(data);
  fields.forEach((f, i) => {
    if ("u32" in f) {
      if (!Number.isInteger(f.u32) || f.u32 < 0 || f.u32 > 0xffffffff) {
        throw new RangeError(`${label}: uniform field ${i} = ${f.u32} is not a u32`);
      }
      view.setUint32(i * 4, f.u32, true);
    } else view.setFloat32(i * 4, f.f32, true);
  });
  return uniformBuffer(ctx.gpu.device, new Uint8Array(data), label);
}

/** Throws unless every dimension is a positive integer (names it otherwise). */
export function checkDims(label: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${label}: ${k} must be an integer >= 1, got ${v}`);
    }
  }
}

/**
 * A grid of workgroups covering `n` items, `per` per workgroup, folded into y when x would pass
 * 65535 (WebGPU's guaranteed per-dimension maximum). The WGSL side is `linearIndex`.
 */
export function grid1d(n: number, per: number): [number, number, number] {
  const g = Math.ceil(n / per);
  if (g <= 65535) return [g, 1, 1];
  return [65535, Math.ceil(g / 65535), 1];
}

/** WGSL helper matching `grid1d`: the item index of an invocation (may be >= n: guard it). */
export const LINEAR_INDEX_WGSL = `
fn linear_index(wg: vec3u, nwg: vec3u, lid: u32, per: u32) -> u32 {
  return (wg.y * nwg.x + wg.x) * per + lid;
}`;
