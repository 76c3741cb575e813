/**
 * The device options a host process takes from its environment (Deno APIs): `PHD_ADAPTER_CLASS`
 * (`cpu` or `gpu`) overrides the adapter class the kernel defaults and the tuner's space follow
 * (runtime/gpu/device.ts `adapterClassOf`), so the GPU-shaped defaults can be run and tested on
 * llvmpipe. Every command, benchmark and test fixture creates its device with these options.
 */
import { ADAPTER_CLASSES, type AdapterClass, type GpuOptions } from "../gpu/device.ts";

/** The environment variable that overrides the adapter class. */
export const ADAPTER_CLASS_ENV = "PHD_ADAPTER_CLASS";

/**
 * `GpuOptions` from the environment: `{ adapterClass }` when `PHD_ADAPTER_CLASS` is set. Throws
 * one line naming the accepted values when it holds anything else.
 */
export function gpuOptionsFromEnv(): GpuOptions {
  const v = Deno.env.get(ADAPTER_CLASS_ENV);
  if (v === undefined || v === "") return {};
  if (!(ADAPTER_CLASSES as readonly string[]).includes(v)) {
    throw new Error(
      `${ADAPTER_CLASS_ENV}=${v} is not an adapter class: set it to ${
        ADAPTER_CLASSES.join(" or ")
      }, or unset it to classify the adapter from its info`,
    );
  }
  return { adapterClass: v as AdapterClass };
}
