/**
 * The device plus the pipeline cache every kernel builds through: what scripts create first.
 * WebGPU reports validation errors asynchronously (a wrong binding does not throw), so the
 * context forwards every uncaptured error to `onError` (default: one line on the console) rather
 * than letting a step silently compute nothing. Browser-safe.
 */
import { type GpuOptions, requestGpu } from "./device.ts";
import { PipelineCache } from "./resources.ts";
import type { KernelContext } from "./kernel.ts";

/** Options of `createContext`. */
export interface ContextOptions extends GpuOptions {
  /** Called with each uncaptured WebGPU error's first line. */
  onError?: (message: string) => void;
}

/** Requests the adapter and device (limits raised to what the kernels need) and a cache. */
export async function createContext(o: ContextOptions = {}): Promise<KernelContext> {
  const gpu = await requestGpu(o);
  const onError = o.onError ?? ((m: string) => console.error(`WebGPU error: ${m}`));
  gpu.device.addEventListener("uncapturederror", (e) => {
    onError((e as GPUUncapturedErrorEvent).error.message.split("\n")[0]);
  });
  return { gpu, cache: new PipelineCache(gpu.device) };
}
