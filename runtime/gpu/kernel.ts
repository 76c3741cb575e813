/**
 * What every non-attention kernel family shares: a built kernel (WGSL, cache key, binding names),
 * `makeKernel`, which writes a kernel's uniform structs, bindings and (for elementwise ops) entry
 * point so that a kernel file is mostly its body, a prepared dispatch (pipeline + bind group +
 * grid, made once and replayed every step), recording many dispatches into one compute pass, and
 * the uniform packing. Browser-safe.
 *
 * Invariant: a kernel's `key` covers everything baked into its WGSL (tile sizes, workgroup size,
 * transposition); shapes and per-step values (lr, step) travel in uniforms, never in the source.
 */
import { type GpuContext, WEBGPU_DEFAULT_LIMITS } from "./device.ts";
import { type PipelineCache, uniformBuffer } from "./resources.ts";

/** A device and the pipeline cache every kernel family builds through. */
export interface KernelContext {
  /** The device and what was learned about it. */
  gpu: GpuContext;
  /** Pipelines by cache key, shared by every kernel family. */
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

/** Element type of a storage array a kernel binds. */
export type ElementType = "f32" | "u32" | "i32" | "vec4f";

/** Invocations per workgroup of an elementwise kernel (one item each; `grid1d` covers n items). */
const ELEMENTWISE_WG = 64;

/** What `makeKernel` writes a kernel from (tfjs-backend-webgpu's `makeShader`, smaller). */
export interface KernelSpec {
  /** Cache key and label: the family and every parameter baked into the code. */
  key: string;
  /** WGSL extensions the code enables (`f16`), written first; the device must have them. */
  enable?: readonly string[];
  /**
   * Uniform structs by binding name, bound first and in order: `{ u: "rows: u32, eps: f32" }`
   * declares `struct U { rows: u32, eps: f32 }` and `var<uniform> u: U`. Fields are 4-byte
   * `u32`/`f32` values, packed by `uniforms` in the same order.
   */
  uniforms: Record<string, string>;
  /** Storage arrays read, bound after the uniforms in order: name -> element type. */
  reads?: Record<string, ElementType>;
  /** Storage arrays written (`read_write`), bound after the reads in order. */
  writes?: Record<string, ElementType>;
  /** WGSL between the bindings and the entry point: workgroup arrays, helper functions. */
  helpers?: string;
  /**
   * The entry point `main`: WGSL written as is, or for an elementwise kernel `{ count, body }`:
   * `ELEMENTWISE_WG` invocations per workgroup over a `grid1d` grid, the body sees its item index
   * `i` and runs only while `i < count` (a WGSL expression over the uniforms).
   */
  main: string | { count: string; body: string };
}

/** The kernel of a spec: its WGSL, with bindings numbered uniforms, reads, writes. */
export function makeKernel(spec: KernelSpec): Kernel {
  const lines: string[] = [];
  const bindings: string[] = [];
  const bind = (decl: string, name: string, type: string) => {
    lines.push(`@group(0) @binding(${bindings.length}) var${decl} ${name}: ${type};`);
    bindings.push(name);
  };
  const structs = Object.entries(spec.uniforms).map(([name, fields]) => {
    const type = name.toUpperCase();
    return { name, type, decl: `struct ${type} { ${fields} }` };
  });
  for (const u of structs) bind("<uniform>", u.name, u.type);
  for (const [name, t] of Object.entries(spec.reads ?? {})) {
    bind("<storage, read>", name, `array<${t}>`);
  }
  for (const [name, t] of Object.entries(spec.writes ?? {})) {
    bind("<storage, read_write>", name, `array<${t}>`);
  }
  const main = typeof spec.main === "string" ? spec.main : `${LINEAR_INDEX_WGSL}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let i = linear_index(wg, nwg, l, ${ELEMENTWISE_WG}u);
  if (i >= ${spec.main.count}) { return; }
  ${spec.main.body.trim()}
}`;
  const code = [
    ...(spec.enable ?? []).map((e) => `enable ${e};`),
    "",
    ...structs.map((u) => u.decl),
    ...lines,
    ...(spec.helpers ? [spec.helpers.trim()] : []),
    main.trim(),
  ].join("\n");
  return { key: spec.key, label: spec.key, code, bindings };
}

/** One recorded-ready dispatch: replay it every step with `record`. */
export interface Dispatch {
  /** The kernel's label, for errors and captures. */
  label: string;
  /** The compute pipeline, from the pipeline cache. */
  pipeline: GPUComputePipeline;
  /** Group 0's bindings. */
  bindGroup: GPUBindGroup;
  /** Workgroups dispatched in x, y and z. */
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

/**
 * Prepares `kernel` with a uniform buffer `u` of its own (freed with the dispatch) and `buffers`,
 * after checking that every one of `dims` is a positive integer (`checkDims`, named after the
 * kernel). `grid` is the workgroup grid, or for an elementwise kernel the number of items it
 * covers.
 */
export function dispatchKernel(
  ctx: KernelContext,
  kernel: Kernel,
  o: {
    dims?: Record<string, number>;
    u: readonly UniformValue[];
    buffers: Record<string, GPUBuffer>;
    grid: [number, number, number] | number;
  },
): Dispatch {
  if (o.dims) checkDims(kernel.label, o.dims);
  const u = uniforms(ctx, o.u, kernel.label);
  const grid = typeof o.grid === "number" ? grid1d(o.grid, ELEMENTWISE_WG) : o.grid;
  return prepare(ctx, kernel, { buffers: { u, ...o.buffers }, grid, owned: [u] });
}

/**
 * Records dispatches, in order, into one compute pass (each sees the previous ones' writes);
 * `pass` describes the pass (e.g. its timestamp writes).
 */
export function record(
  enc: GPUCommandEncoder,
  dispatches: readonly Dispatch[],
  pass?: GPUComputePassDescriptor,
): void {
  const p = enc.beginComputePass(pass);
  for (const d of dispatches) {
    if (d.grid.some((g) => g === 0)) continue;
    p.setPipeline(d.pipeline);
    p.setBindGroup(0, d.bindGroup);
    p.dispatchWorkgroups(...d.grid);
  }
  p.end();
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
 * WebGPU's guaranteed per-dimension maximum. The WGSL side is `linear_index`.
 */
function grid1d(n: number, per: number): [number, number, number] {
  const g = Math.ceil(n / per), max = WEBGPU_DEFAULT_LIMITS.maxComputeWorkgroupsPerDimension;
  if (g <= max) return [g, 1, 1];
  return [max, Math.ceil(g / max), 1];
}

/** WGSL helper matching `grid1d`: the item index of an invocation (may be >= n: guard it). */
const LINEAR_INDEX_WGSL = `
fn linear_index(wg: vec3u, nwg: vec3u, lid: u32, per: u32) -> u32 {
  return (wg.y * nwg.x + wg.x) * per + lid;
}`;
