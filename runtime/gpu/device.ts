/**
 * The WebGPU device: finds an adapter, requests a device with the limits and features the
 * attention kernels need (the adapter's own maxima, not WebGPU's small defaults), and turns a
 * missing adapter or a too-small limit into one clear error line. Browser-safe: only
 * `navigator.gpu`, no Deno APIs.
 */
import { type Peak, peakOf } from "./peak.ts";
import { readback, storageBuffer } from "./resources.ts";

/**
 * The WebGPU limits the runtime depends on, in one table. `webgpu` is the value every WebGPU
 * device guarantees (the spec's default): what code assumes when it has no device's limits (the
 * tuner's choosers reading a cache, a kernel built without limits). `least`, on the limits
 * `requestGpu` raises to the adapter's maximum, is the smallest value the kernels work with.
 */
export const LIMITS = {
  /** Shared K/V (or Q/dO) tiles: the default tiles fit 16 KiB; larger tiles need more. */
  maxComputeWorkgroupStorageSize: { webgpu: 16384, least: 16384 },
  /** One invocation per query row (or key row) of a tile. */
  maxComputeInvocationsPerWorkgroup: { webgpu: 256, least: 64 },
  maxComputeWorkgroupSizeX: { webgpu: 256, least: 64 },
  maxComputeWorkgroupSizeY: { webgpu: 256 },
  maxComputeWorkgroupSizeZ: { webgpu: 64 },
  maxComputeWorkgroupsPerDimension: { webgpu: 65535 },
  /** The dQ pass binds q, k, v, o, dO, lse, delta, dq, the tile list and the tables. */
  maxStorageBuffersPerShaderStage: { webgpu: 8, least: 10 },
  maxStorageBufferBindingSize: { webgpu: 1 << 27, least: 1 << 20 },
  maxBufferSize: { webgpu: 1 << 28, least: 1 << 20 },
} as const satisfies Record<string, { webgpu: number; least?: number }>;

/** Names of the limits in the table. */
export type LimitName = keyof typeof LIMITS;

/** Names of the limits requested at their adapter maximum (those with a `least`). */
export type RequestedLimit = {
  [K in LimitName]: (typeof LIMITS)[K] extends { least: number } ? K : never;
}[LimitName];

/** Values of the table's limits: WebGPU's defaults, or a device's (`deviceLimits`). */
export type DeviceLimits = Readonly<Record<LimitName, number>>;

const names = Object.keys(LIMITS) as LimitName[];

/** WebGPU's guaranteed limits: what a caller without a device's limits assumes. */
export const WEBGPU_DEFAULT_LIMITS: DeviceLimits = Object.fromEntries(
  names.map((k) => [k, LIMITS[k].webgpu]),
) as DeviceLimits;

/** The least value of each limit the kernels need (`requestGpu` refuses an adapter below it). */
export const REQUIRED_LIMITS: Readonly<Record<RequestedLimit, number>> = Object.fromEntries(
  names.flatMap((k) => {
    const row: { webgpu: number; least?: number } = LIMITS[k];
    return row.least === undefined ? [] : [[k, row.least]];
  }),
) as Record<RequestedLimit, number>;

/** A device's values of the table's limits (a plain object: variants are checked against it). */
export function deviceLimits(device: GPUDevice): DeviceLimits {
  return Object.fromEntries(names.map((k) => [k, device.limits[k]])) as DeviceLimits;
}

/** What kernel variants are checked against on a context: its device's limits and loop budget. */
export type GpuLimits = DeviceLimits & { loopBudget?: number };

/** The limits of a context's device, with its loop budget (`GpuContext.loopBudget`). */
export function gpuLimits(gpu: Pick<GpuContext, "device" | "loopBudget">): GpuLimits {
  return { ...deviceLimits(gpu.device), loopBudget: gpu.loopBudget };
}

/**
 * What the kernel defaults are shaped for (docs/DESIGN.md 6, docs/INTERNALS.md "Autotuning"): `cpu`, a
 * software rasterizer (Mesa's llvmpipe and lavapipe, SwiftShader, WARP, any fallback adapter),
 * which runs a workgroup as SIMD loops on CPU cores and rewards large register blocks in one SIMD
 * row of invocations; `gpu`, anything else (64-256 invocations, tiles staged in workgroup memory).
 */
export type AdapterClass = "cpu" | "gpu";

/** The adapter classes, in the order `--help` texts list them. */
export const ADAPTER_CLASSES: readonly AdapterClass[] = ["cpu", "gpu"];

/** Names in an adapter's info that mark a CPU rasterizer. */
const CPU_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|basic render|\bwarp\b/i;

/**
 * The class of an adapter from its `GPUAdapterInfo`: `cpu` for a fallback adapter or one whose
 * vendor, architecture, device or description names a CPU rasterizer, else `gpu`.
 */
export function adapterClassOf(info: {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}): AdapterClass {
  if (info.isFallbackAdapter) return "cpu";
  const names = [info.vendor, info.architecture, info.device, info.description].join(" ");
  return CPU_ADAPTER.test(names) ? "cpu" : "gpu";
}

/** What a device's `subgroups` feature offers the kernels (`GpuContext.subgroups`). */
export interface Subgroups {
  /** The adapter's least subgroup size: a workgroup of at most this many is one subgroup. */
  minSize: number;
  /** Whether a subgroup kernel's WGSL starts with `enable subgroups;`. */
  enable: boolean;
}

/** A device plus what the runtime needs to know about it. */
export interface GpuContext {
  /** The adapter the device came from. */
  adapter: GPUAdapter;
  /** The device, created with `limits` and the enabled features. */
  device: GPUDevice;
  /** Human-readable adapter name (for errors, logs and tuning keys). */
  adapterName: string;
  /**
   * The class the kernel defaults and the tuner's space follow: `adapterClassOf` the adapter's
   * info unless `GpuOptions.adapterClass` overrode it.
   */
  adapterClass: AdapterClass;
  /**
   * The `subgroups` feature when enabled: the adapter's least subgroup size (a workgroup of at
   * most that many invocations is one subgroup) and whether WGSL must say `enable subgroups;`
   * (Dawn requires it, Deno 2.9.6's naga refuses it). Undefined without the feature.
   */
  subgroups?: Subgroups;
  /** Whether `shader-f16` was enabled (f16 storage kernels). */
  f16: boolean;
  /** Whether `timestamp-query` was enabled (GPU-side timing in benchmarks). */
  timestamps: boolean;
  /** The limits the device was created with. */
  limits: Readonly<Record<RequestedLimit, number>>;
  /** The adapter's fp32 peak, stated or from the table of known GPUs (MFU's denominator). */
  peak?: Peak;
  /**
   * Loop passes one shader invocation may make, all its loops together, before the driver leaves
   * them (`measureLoopBudget`): 65535 on Mesa's llvmpipe and lavapipe; undefined where none was
   * found. Kernels whose loops scale with the problem refuse a run that would need more.
   */
  loopBudget?: number;
}

/** Options of `requestGpu`. */
export interface GpuOptions {
  /** Power preference passed to `requestAdapter`. Default: unset (the platform's choice). */
  powerPreference?: GPUPowerPreference;
  /** Enable `shader-f16` when the adapter has it. Default true; absent feature is not an error. */
  f16?: boolean;
  /** Enable `timestamp-query` when the adapter has it. Default true. */
  timestamps?: boolean;
  /** Enable `subgroups` when the adapter grants it. Default true. */
  subgroups?: boolean;
  /**
   * The class the kernel defaults follow instead of the adapter's own (`adapterClassOf`): `gpu`
   * runs the GPU-shaped defaults on llvmpipe (tests; the host reads `PHD_ADAPTER_CLASS`).
   */
  adapterClass?: AdapterClass;
  /** The adapter's fp32 peak in TFLOP/s, where the table does not know it (the host reads `PHD_PEAK_TFLOPS`). */
  peakTflops?: number;
}

const FIX = "install a Vulkan driver (apt-get install mesa-vulkan-drivers) and set " +
  "DENO_WEBGPU_BACKEND=vulkan, or run on a machine with a GPU";

function adapterLabel(adapter: GPUAdapter): string {
  const i = adapter.info;
  return i.description || [i.vendor, i.architecture, i.device].filter((x) => x).join(" ") ||
    "unknown adapter";
}

/**
 * Requests an adapter and a device with every limit of `REQUIRED_LIMITS` raised to the adapter's
 * maximum. Throws one line naming the adapter and the fix when there is no adapter or a limit is
 * below what the kernels need.
 */
export async function requestGpu(o: GpuOptions = {}): Promise<GpuContext> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new Error(`WebGPU is not available here (no navigator.gpu): ${FIX}`);
  const adapter = await gpu.requestAdapter({ powerPreference: o.powerPreference });
  if (!adapter) throw new Error(`no WebGPU adapter found: ${FIX}`);
  const name = adapterLabel(adapter);
  const limits = {} as Record<RequestedLimit, number>;
  for (const [key, least] of Object.entries(REQUIRED_LIMITS) as [RequestedLimit, number][]) {
    const have = adapter.limits[key];
    if (have < least) {
      throw new Error(
        `WebGPU adapter "${name}" has ${key} = ${have} but the attention kernels need >= ${least}: ${FIX}`,
      );
    }
    limits[key] = have;
  }
  const features: GPUFeatureName[] = [];
  const f16 = (o.f16 ?? true) && adapter.features.has("shader-f16");
  const timestamps = (o.timestamps ?? true) && adapter.features.has("timestamp-query");
  if (f16) features.push("shader-f16");
  if (timestamps) features.push("timestamp-query");
  const request = (extra: GPUFeatureName[]) =>
    adapter.requestDevice({ requiredLimits: limits, requiredFeatures: [...features, ...extra] });
  // Deno 2.9.6 grants `subgroups` on lavapipe (Vulkan) without listing it among the adapter's
  // features, so it is asked for and the refusal (a TypeError, adapter untouched) taken as "no".
  let device: GPUDevice | undefined;
  if (o.subgroups ?? true) {
    device = await request(["subgroups" as GPUFeatureName]).catch(() => undefined);
  }
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number };
  const subgroups = device?.features.has("subgroups") && info.subgroupMinSize
    ? { minSize: info.subgroupMinSize, enable: await needsEnable(device) }
    : undefined;
  device ??= await request([]);
  return {
    adapter,
    device,
    adapterName: name,
    adapterClass: o.adapterClass ?? adapterClassOf(adapter.info),
    subgroups,
    f16,
    timestamps,
    limits,
    peak: peakOf(name, o.peakTflops),
    loopBudget: await measureLoopBudget(device),
  };
}

/** Iterations of the loop `measureLoopBudget` runs: twice gallivm's budget. */
const LOOP_PROBE = 1 << 17;

/**
 * The loop budget of a device's shader compiler: one invocation counts the iterations of a loop
 * of `LOOP_PROBE` and returns the count when it fell short, else undefined. Mesa's llvmpipe and
 * lavapipe (gallivm) give an invocation 65535 loop passes in all, every iteration of every loop and
 * each loop's final exit test counting one (LP_MAX_TGSI_LOOP_ITERATIONS, a guard against endless
 * loops), and then end every loop after its current pass without any error: a kernel whose loops
 * run longer silently skips the rest of its work (at 4096 tokens, the attention kernels' last keys
 * when the driver left a head-dim loop rolled). Both backends, GL and Vulkan, have it.
 */
async function measureLoopBudget(device: GPUDevice): Promise<number | undefined> {
  const module = device.createShaderModule({
    label: "loop budget probe",
    code: `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn main() {
  var n = 0u;
  for (var i = 0u; i < out[0]; i++) {
    n += 1u;
  }
  out[0] = n;
}`,
  });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const buf = storageBuffer(device, Uint32Array.of(LOOP_PROBE), "loop budget probe");
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: buf } }],
    }),
  );
  pass.dispatchWorkgroups(1);
  pass.end();
  device.queue.submit([enc.finish()]);
  const n = new Uint32Array(await readback(device, buf, 4))[0];
  buf.destroy();
  return n < LOOP_PROBE ? n : undefined;
}

/** Whether this device's WGSL compiler wants `enable subgroups;` before subgroup builtins. */
async function needsEnable(device: GPUDevice): Promise<boolean> {
  // A subgroup builtin without the directive: where it compiles, the directive is not wanted.
  device.pushErrorScope("validation");
  const info = await device.createShaderModule({
    code: `@compute @workgroup_size(1)
fn main(@builtin(subgroup_size) n: u32) { _ = subgroupAdd(n); }`,
  }).getCompilationInfo();
  await device.popErrorScope();
  return info.messages.some((m) => m.type === "error");
}

/**
 * Refuses a buffer that would not fit one storage binding, saying how much fits. `what` names the
 * tensor and its shape (e.g. `Q [2, 8, 4096, 64] f32`).
 */
export function checkBindingSize(gpu: GpuContext, bytes: number, what: string): void {
  const max = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  if (bytes > max) {
    throw new RangeError(
      `${what} needs ${
        mib(bytes)
      } in one storage binding but adapter "${gpu.adapterName}" allows ` +
        `${mib(max)} (maxStorageBufferBindingSize): use at most ${
          Math.floor(max / bytes * 100) / 100
        }x this size (fewer tokens, heads or batch), or split the batch`,
    );
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(bytes < 1 << 20 ? 3 : 1)} MiB`;
}
