/**
 * The adapter as this runtime sees it, as one JSON line on stdout: what `gpu-check`'s first part
 * records (offline/parts.ts). Run as its own process, once per backend asked for through
 * `DENO_WEBGPU_BACKEND`, so a driver that crashes or hangs takes only this probe with it.
 *
 *   deno run -A offline/adapter_probe.ts
 *
 * The device is requested as every command requests it (`requestGpu` with the environment's
 * options): limits raised to the adapter's maxima, shader-f16, timestamp-query and subgroups
 * where granted, the adapter class and the fp32 peak of runtime/gpu/peak.ts.
 */
import { adapterClassOf, requestGpu } from "../runtime/gpu/device.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";

/** What the probe prints. */
export interface AdapterProbe {
  name: string;
  info: Record<string, string | number | boolean>;
  /** The adapter's class from its info (the kernel defaults'), and the one in force. */
  own_class: string;
  adapter_class: string;
  adapter_features: string[];
  adapter_limits: Record<string, number>;
  device: {
    f16: boolean;
    timestamps: boolean;
    subgroups: { min_size: number; max_size: number | null; enable_directive: boolean } | null;
  };
  peak_tflops: number | null;
  peak_source: string | null;
}

/** A WebGPU object's enumerable fields (info and limits are class instances with getters). */
function fields<T>(o: object): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k in o) out[k] = (o as Record<string, T>)[k];
  return out;
}

if (import.meta.main) {
  const gpu = await requestGpu(gpuOptionsFromEnv());
  const info = fields<string | number | boolean>(gpu.adapter.info);
  const probe: AdapterProbe = {
    name: gpu.adapterName,
    info,
    own_class: adapterClassOf(gpu.adapter.info),
    adapter_class: gpu.adapterClass,
    adapter_features: [...gpu.adapter.features].sort(),
    adapter_limits: fields<number>(gpu.adapter.limits),
    device: {
      f16: gpu.f16,
      timestamps: gpu.timestamps,
      subgroups: gpu.subgroups
        ? {
          min_size: gpu.subgroups.minSize,
          max_size: typeof info.subgroupMaxSize === "number" ? info.subgroupMaxSize : null,
          enable_directive: gpu.subgroups.enable,
        }
        : null,
    },
    peak_tflops: gpu.peak?.tflops ?? null,
    peak_source: gpu.peak?.source ?? null,
  };
  gpu.device.destroy();
  console.log(JSON.stringify(probe));
}
