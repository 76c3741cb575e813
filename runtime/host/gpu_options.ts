/**
 * The device options a host process takes from its environment (Deno APIs): `PHD_ADAPTER_CLASS`
 * (`cpu` or `gpu`) overrides the adapter class the kernel defaults and the tuner's space follow
 * (runtime/gpu/device.ts `adapterClassOf`), so the GPU-shaped defaults can be run and tested on
 * llvmpipe; `PHD_PEAK_TFLOPS` states the adapter's fp32 peak where the table of known GPUs
 * (runtime/gpu/peak.ts) lacks it, so throughput is reported as MFU. Every command, benchmark and
 * test fixture creates its device with these options. An unset `XDG_RUNTIME_DIR` is set to /tmp
 * for the process (Mesa would print a warning line).
 */
import { ADAPTER_CLASSES, type AdapterClass, type GpuOptions } from "../gpu/device.ts";
import { type ContextOptions, createContext } from "../gpu/context.ts";
import type { KernelContext } from "../gpu/kernel.ts";

/** The environment variable that overrides the adapter class. */
export const ADAPTER_CLASS_ENV = "PHD_ADAPTER_CLASS";

/** The environment variable that states the adapter's fp32 peak in TFLOP/s. */
export const PEAK_ENV = "PHD_PEAK_TFLOPS";

/**
 * `GpuOptions` from the environment: `adapterClass` when `PHD_ADAPTER_CLASS` is set, `peakTflops`
 * when `PHD_PEAK_TFLOPS` is. Throws one line naming the accepted values when either holds
 * anything else.
 */
export function gpuOptionsFromEnv(): GpuOptions {
  // Mesa's drivers print a line when XDG_RUNTIME_DIR is unset (a plain ssh or sudo session):
  // set it for this process, so a command's output stays its own.
  if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  const o: GpuOptions = {};
  const v = Deno.env.get(ADAPTER_CLASS_ENV);
  if (v !== undefined && v !== "") {
    if (!(ADAPTER_CLASSES as readonly string[]).includes(v)) {
      throw new Error(
        `${ADAPTER_CLASS_ENV}=${v} is not an adapter class: set it to ${
          ADAPTER_CLASSES.join(" or ")
        }, or unset it to classify the adapter from its info`,
      );
    }
    o.adapterClass = v as AdapterClass;
  }
  const p = Deno.env.get(PEAK_ENV);
  if (p !== undefined && p !== "") {
    const t = Number(p);
    if (!Number.isFinite(t) || t <= 0 || t > 1e4) {
      throw new Error(
        `${PEAK_ENV}=${p} is not a peak: set it to the adapter's fp32 TFLOP/s (a number in ` +
          "(0, 10000]), or unset it to use the table of known GPUs",
      );
    }
    o.peakTflops = t;
  }
  return o;
}

/** A device and pipeline cache with the environment's options (`o` overrides them). */
export function hostContext(o: ContextOptions = {}): Promise<KernelContext> {
  return createContext({ ...gpuOptionsFromEnv(), ...o });
}
