/**
 * Device acquisition, the adapter class and its override, binding-size refusal, f16 conversion
 * and the pipeline cache counter.
 */
import { ok as assert, strictEqual, throws } from "node:assert";
import { causal } from "../../dsl/presets.ts";
import {
  adapterClassOf,
  checkBindingSize,
  requestGpu,
  REQUIRED_LIMITS,
} from "../../runtime/gpu/device.ts";
import { ADAPTER_CLASS_ENV, gpuOptionsFromEnv } from "../../runtime/host/gpu_options.ts";
import {
  fromF16Bits,
  PipelineCache,
  readback,
  storageBuffer,
  toF16Bits,
} from "../../runtime/gpu/resources.ts";
import { FlashAttention } from "../../runtime/kernels/attention.ts";

Deno.test("requestGpu raises every required limit to at least the kernels' need", async () => {
  const gpu = await requestGpu();
  assert(gpu.adapterName.length > 0);
  for (const [k, least] of Object.entries(REQUIRED_LIMITS)) {
    const have = gpu.device.limits[k as keyof typeof REQUIRED_LIMITS];
    assert(have >= least, `${k} = ${have}`);
    strictEqual(have, gpu.adapter.limits[k as keyof typeof REQUIRED_LIMITS]);
  }
  const buf = storageBuffer(gpu.device, Float32Array.from([1, 2, 3]));
  const back = new Float32Array(await readback(gpu.device, buf, 12));
  strictEqual(back.join(), "1,2,3");
  gpu.device.destroy();
});

Deno.test("adapter class: CPU rasterizers and fallback adapters are cpu, the rest gpu; overridable", async () => {
  strictEqual(
    adapterClassOf({ vendor: "65541", description: "llvmpipe (LLVM 15.0.6, 256 bits)" }),
    "cpu",
  );
  strictEqual(adapterClassOf({ vendor: "google", architecture: "swiftshader" }), "cpu");
  strictEqual(
    adapterClassOf({ vendor: "microsoft", description: "Microsoft Basic Render Driver" }),
    "cpu",
  );
  strictEqual(
    adapterClassOf({ vendor: "nvidia", architecture: "ampere", isFallbackAdapter: true }),
    "cpu",
  );
  strictEqual(
    adapterClassOf({ vendor: "nvidia", architecture: "ampere", description: "NVIDIA H200" }),
    "gpu",
  );
  strictEqual(adapterClassOf({ vendor: "apple", architecture: "metal-3" }), "gpu");
  const gpu = await requestGpu({ adapterClass: "gpu" });
  strictEqual(gpu.adapterClass, "gpu");
  const own = await requestGpu();
  strictEqual(own.adapterClass, adapterClassOf(own.adapter.info));
  gpu.device.destroy();
  own.device.destroy();
  // PHD_ADAPTER_CLASS: cpu or gpu, anything else one line naming both.
  const before = Deno.env.get(ADAPTER_CLASS_ENV);
  try {
    Deno.env.set(ADAPTER_CLASS_ENV, "gpu");
    strictEqual(gpuOptionsFromEnv().adapterClass, "gpu");
    Deno.env.set(ADAPTER_CLASS_ENV, "tpu");
    throws(
      () => gpuOptionsFromEnv(),
      /PHD_ADAPTER_CLASS=tpu is not an adapter class: set it to cpu or gpu/,
    );
    Deno.env.delete(ADAPTER_CLASS_ENV);
    strictEqual(gpuOptionsFromEnv().adapterClass, undefined);
  } finally {
    if (before === undefined) Deno.env.delete(ADAPTER_CLASS_ENV);
    else Deno.env.set(ADAPTER_CLASS_ENV, before);
  }
});

Deno.test("shapes too big for one storage binding are refused with the size that fits", async () => {
  const gpu = await requestGpu();
  let msg = "";
  try {
    checkBindingSize(gpu, gpu.limits.maxStorageBufferBindingSize * 4, "q [1, 64, 65536, 128] f32");
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(/q \[1, 64, 65536, 128\] f32 needs .* MiB .* allows .* MiB .*0\.25x/.test(msg), msg);
  const fa = new FlashAttention(gpu, new PipelineCache(gpu.device), causal(), { headDim: 128 });
  const empty = new Float32Array(0);
  let msg2 = "";
  try {
    await fa.run({ q: empty, k: empty, v: empty }, { L: 1 << 20, heads: 64 });
  } catch (e) {
    msg2 = (e as Error).message;
  }
  assert(msg2.includes("maxStorageBufferBindingSize"), msg2);
  gpu.device.destroy();
});

Deno.test("f16 conversion rounds to nearest even and round-trips", () => {
  const xs = [0, -0, 1, -2.5, 65504, 1e-8, 6.1e-5, 3.14159, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e6];
  const back = fromF16Bits(toF16Bits(xs));
  assert(Object.is(back[1], -0));
  strictEqual(back[4], 65504);
  strictEqual(back[5], 0);
  strictEqual(back[8], 1); // tie rounds to even
  strictEqual(back[9], 1 + 2 * 2 ** -10);
  strictEqual(back[10], Infinity);
  assert(Math.abs(back[7] - 3.14159) < 2e-3);
  assert(Math.abs(back[6] - 6.1e-5) < 1e-7);
});

Deno.test("pipeline cache builds once per key and counts", async () => {
  const gpu = await requestGpu();
  const cache = new PipelineCache(gpu.device);
  const src = {
    code: "@compute @workgroup_size(1) fn main() {}",
    label: "noop",
  };
  cache.get("a", () => src);
  cache.get("a", () => src);
  cache.get("b", () => src);
  strictEqual(cache.created, 2);
  gpu.device.destroy();
});
