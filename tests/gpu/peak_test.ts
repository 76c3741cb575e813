/**
 * MFU only against a hardware peak (runtime/gpu/peak.ts): the table matches real adapter names,
 * a CPU rasterizer has no peak, `PHD_PEAK_TFLOPS` states one (and a bad value is one line), and
 * the report names a figure without a peak for what it is.
 */
import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { peakOf, utilization, utilizationText } from "../../runtime/gpu/peak.ts";
import { gpuOptionsFromEnv, PEAK_ENV } from "../../runtime/host/gpu_options.ts";

Deno.test("fp32 peaks by adapter name; none for CPU rasterizers", () => {
  const cases: [string, number | undefined][] = [
    ["NVIDIA H100 80GB HBM3", 66.9],
    ["NVIDIA H100 PCIe", 51.2],
    ["NVIDIA H200", 66.9],
    ["NVIDIA A100-SXM4-80GB", 19.5],
    ["NVIDIA L4", 30.3],
    ["NVIDIA L40S", 91.6],
    ["NVIDIA GeForce RTX 4090", 82.6],
    ["Tesla T4", 8.1],
    ["llvmpipe (LLVM 15.0.6, 256 bits)", undefined],
    ["lavapipe (LLVM 15.0.6, 256 bits)", undefined],
    ["SwiftShader Device (Subzero)", undefined],
    ["Some Future GPU", undefined],
  ];
  for (const [name, tflops] of cases) assertEquals(peakOf(name)?.tflops, tflops, name);
  assertEquals(peakOf("llvmpipe", 1.5), { tflops: 1.5, source: "stated" });
});

Deno.test("no peak: no MFU, the share of the measured matmul rate, named so", () => {
  const u = utilization(6.6e9, 9.9, undefined);
  assertEquals(u.mfu, null);
  ok(Math.abs(u.matmul_share - 6.6 / 9.9) < 1e-12);
  const text = utilizationText(u);
  assertEquals(text, "67% of the best measured matmul rate (9.90 GFLOP/s)");
  ok(!/MFU/.test(text) && !/MFU/.test(utilizationText(u, true)));
  const h = utilization(13.38e12, 9.9, peakOf("NVIDIA H100 80GB HBM3"));
  assertEquals(utilizationText(h), "MFU 20% of 66.9 TFLOP/s (fp32 peak, table: NVIDIA H100 SXM)");
  assertEquals(utilizationText(h, true), "MFU 20%");
});

Deno.test("PHD_PEAK_TFLOPS states a peak; a bad one is one line", () => {
  const before = Deno.env.get(PEAK_ENV);
  try {
    Deno.env.set(PEAK_ENV, "12.5");
    assertEquals(gpuOptionsFromEnv().peakTflops, 12.5);
    for (const bad of ["abc", "0", "-3", "1e9", "Infinity"]) {
      Deno.env.set(PEAK_ENV, bad);
      throws(() => gpuOptionsFromEnv(), (e: Error) => {
        ok(/^PHD_PEAK_TFLOPS=.* is not a peak: /.test(e.message) && !e.message.includes("\n"));
        return true;
      });
    }
  } finally {
    if (before === undefined) Deno.env.delete(PEAK_ENV);
    else Deno.env.set(PEAK_ENV, before);
  }
});
