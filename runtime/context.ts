/**
 * The device plus the pipeline cache every kernel builds through: what scripts create first.
 * Browser-safe.
 */
import { type GpuOptions, requestGpu } from "./device.ts";
import { PipelineCache } from "./gpu.ts";
import type { KernelContext } from "./kernels/kernel.ts";

/** Requests the adapter and device (limits raised to what the kernels need) and a cache. */
export async function createContext(o: GpuOptions = {}): Promise<KernelContext> {
  const gpu = await requestGpu(o);
  return { gpu, cache: new PipelineCache(gpu.device) };
}
