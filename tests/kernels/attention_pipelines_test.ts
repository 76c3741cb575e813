/**
 * Pipelines: runtime parameters (W, C, L, tables, heads) never create a pipeline, K does; every
 * kernel the generator emits compiles without errors; each adapter class's default configuration
 * (the gpu class's staged tiles sized from the device's limits) matches float64; f16 storage
 * where the adapter has it.
 */
import { ok as assert, strictEqual } from "node:assert";
import { documentMask, phdCswa, PRESETS } from "../../dsl/presets.ts";
import { respec } from "../../dsl/spec.ts";
import {
  ATTENTION_KINDS,
  attentionDefaults,
  buildAttentionKernel,
  defaultTiles,
} from "../../compiler/codegen/attention_kernels.ts";
import { LAYOUTS } from "../../compiler/layout.ts";
import { FlashAttention } from "../../runtime/kernels/attention.ts";
import { compilationErrors, PipelineCache } from "../../runtime/gpu/resources.ts";
import { referenceAttention } from "../../reference/attention.ts";
import {
  checkCase,
  ERROR_FLOOR,
  gpuAsClass,
  gpuOnce,
  maxAbsErr,
  needsFeature,
  randomArray,
  rng,
} from "../fixtures/attention.ts";

Deno.test("changing W, C, L, tables or heads creates no pipeline; changing K does", async () => {
  const { gpu } = await gpuOnce();
  const cache = new PipelineCache(gpu.device);
  const spec = phdCswa({ K: 3, W: 3, C: 4 });
  const fa = new FlashAttention(gpu, cache, spec, { headDim: 32, layout: "grouped" });
  const runs = [
    { L: 9, W: 3, C: 4, heads: 1 },
    { L: 13, W: 5, C: 2, heads: 2 },
    { L: 20, W: 2, C: 7, heads: 1 },
  ];
  let after = -1;
  for (const r of runs) {
    const N = 3 * r.L * 32 * r.heads, x = rng(r.L);
    const b = { params: { W: r.W, C: r.C }, tables: {} };
    const q = randomArray(x, N), k = randomArray(x, N), v = randomArray(x, N);
    const got = await fa.run({ q, k, v, dO: randomArray(x, N) }, {
      L: r.L,
      heads: r.heads,
      bindings: b,
    });
    const ref = referenceAttention(
      {
        spec,
        L: r.L,
        layout: "grouped",
        batch: 1,
        heads: r.heads,
        kvHeads: r.heads,
        headDim: 32,
        bindings: b,
      },
      { q, k, v },
    );
    assert(maxAbsErr(got.o, ref.o) < 1e-5, `W=${r.W} C=${r.C} L=${r.L}: wrong output`);
    if (after < 0) after = cache.created;
    strictEqual(cache.created, after, `run ${JSON.stringify(r)} created a pipeline`);
  }
  strictEqual(after, 3);
  const docs = new FlashAttention(gpu, cache, documentMask({ docs: [0, 4] }), { headDim: 32 });
  await checkCase({ spec: documentMask({ docs: [0, 4] }), L: 10, heads: 1 });
  const base = cache.created;
  for (const t of [[0, 4], [0, 2, 7], [0]]) {
    const x = rng(t.length), n = 10 * 32;
    await docs.run({ q: randomArray(x, n), k: randomArray(x, n), v: randomArray(x, n) }, {
      L: 10,
      bindings: { params: {}, tables: { docs: t } },
    });
  }
  strictEqual(cache.created, base + 1, "new tables created pipelines beyond the first forward");
  const k2 = new FlashAttention(gpu, cache, respec(spec, { K: 2 }), {
    headDim: 32,
    layout: "grouped",
  });
  await k2.run({
    q: randomArray(rng(1), 2 * 9 * 32),
    k: randomArray(rng(2), 2 * 9 * 32),
    v: randomArray(rng(3), 2 * 9 * 32),
  }, { L: 9 });
  strictEqual(cache.created, base + 2, "K = 2 must build its own forward kernel");
});

Deno.test("every emitted f32 kernel compiles (getCompilationInfo has no errors)", async () => {
  const { gpu } = await gpuOnce();
  const errors: string[] = [];
  let n = 0;
  for (const make of Object.values(PRESETS)) {
    const spec = make();
    for (const layout of LAYOUTS) {
      for (const variant of ["fused", "dense"] as const) {
        for (const staging of ["direct", "workgroup"] as const) {
          for (const headDim of [32, 48, 128]) {
            for (const kind of ATTENTION_KINDS) {
              const k = buildAttentionKernel(kind, {
                spec,
                headDim,
                ...defaultTiles(headDim, staging),
                layout,
                dtype: "f32",
                variant,
                staging,
              }, gpu.limits);
              const module = gpu.device.createShaderModule({ label: k.label, code: k.code });
              const info = await module.getCompilationInfo();
              for (const m of info.messages) {
                if (m.type === "error") errors.push(`${spec.name} ${k.label}: ${m.message}`);
              }
              n++;
            }
          }
        }
      }
    }
  }
  assert(errors.length === 0, errors.slice(0, 5).join("\n"));
  assert(n === Object.keys(PRESETS).length * 2 * 2 * 2 * 3 * 3);
  // And the pipelines the other tests built in this file.
  for (const p of (await gpuOnce()).cache.entries()) {
    strictEqual((await compilationErrors(p)).length, 0);
  }
});

Deno.test("each adapter class's default configuration matches float64", async () => {
  const spec = phdCswa({ K: 3, W: 3, C: 4 });
  // cpu: today's llvmpipe default (direct, 32 x 32 tiles, register blocks), whatever the limits.
  const cpu = await gpuAsClass("cpu");
  const fc = new FlashAttention(cpu.gpu, cpu.cache, spec, { headDim: 8, layout: "grouped" });
  strictEqual(
    JSON.stringify(fc.params),
    JSON.stringify({ spec, headDim: 8, ...attentionDefaults(8, { layout: "grouped" }) }),
  );
  // gpu: staged, one row per invocation, the largest tile (<= 64, <= the invocation limit) whose
  // shared tiles fit this device's workgroup memory.
  const { gpu, cache } = await gpuAsClass("gpu");
  const fg = new FlashAttention(gpu, cache, spec, { headDim: 8, layout: "grouped" });
  strictEqual(fg.params.staging, "workgroup");
  const t = fg.params.tileQ;
  assert(t <= 64 && t <= gpu.limits.maxComputeInvocationsPerWorkgroup);
  assert(2 * t * 8 * 4 + 16 * t <= gpu.limits.maxComputeWorkgroupStorageSize);
  assert(t === 64 || 2 * (2 * t) * 8 * 4 + 32 * t > gpu.limits.maxComputeWorkgroupStorageSize);
  // Several tiles per sequence (N = 3 x 50 = 150 tokens), grouped KV heads; one case only (the
  // model's in tests/model/model_test.ts, same kernels): llvmpipe's GL backend compiles each
  // 64-invocation staged pass in seconds.
  await checkCase({
    spec,
    L: 50,
    layout: "grouped",
    headDim: 8,
    heads: 2,
    kvHeads: 1,
    adapterClass: "gpu",
  });
});

Deno.test("kernel builder asserts tile arithmetic", () => {
  const p = {
    spec: phdCswa(),
    headDim: 128,
    tileQ: 64,
    tileK: 64,
    layout: "grouped" as const,
    dtype: "f32" as const,
    variant: "fused" as const,
    staging: "workgroup" as const,
  };
  const limits = { maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256 };
  let msg = "";
  try {
    buildAttentionKernel("forward", p, limits);
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(/needs 66048 bytes of workgroup memory.*use smaller tiles/.test(msg), msg);
  assert(buildAttentionKernel("forward", { ...p, staging: "direct" }, limits).workgroupBytes === 0);
  let bad = "";
  try {
    buildAttentionKernel("forward", { ...p, headDim: 30 });
  } catch (e) {
    bad = (e as Error).message;
  }
  assert(bad.includes("multiple of 4"), bad);
});

Deno.test("without shader-f16, f16 storage is refused naming the feature", async () => {
  const { gpu, cache } = await gpuOnce();
  let msg = "";
  try {
    new FlashAttention({ ...gpu, f16: false }, cache, phdCswa(), { headDim: 32, dtype: "f16" });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(msg.includes("shader-f16"), msg);
});

Deno.test(
  await needsFeature("f16", "f16 storage (needs shader-f16)", async (t) => {
    const { gpu, cache } = await gpuOnce();
    await t.step("phd-cswa grouped, f16 in memory", async () => {
      const spec = phdCswa({ K: 3, W: 3, C: 4 }), L = 9, N = 3 * L, d = 32, r = rng(9);
      const q16 = (a: Float32Array) => a.map((x) => Math.round(x * 1024) / 1024); // exact in f16
      const x = {
        q: q16(randomArray(r, 2 * N * d)),
        k: q16(randomArray(r, 2 * N * d)),
        v: q16(randomArray(r, 2 * N * d)),
        dO: q16(randomArray(r, 2 * N * d)),
      };
      const fa = new FlashAttention(gpu, cache, spec, {
        headDim: d,
        layout: "grouped",
        dtype: "f16",
      });
      const got = await fa.run(x, { L, heads: 2 });
      const p = { spec, L, layout: "grouped" as const, batch: 1, heads: 2, kvHeads: 2, headDim: d };
      const ref = referenceAttention(p, x), naive = referenceAttention(p, x, "f32");
      for (const k of ["o", "dq", "dk", "dv"] as const) {
        const big = Math.max(...ref[k]!.map(Math.abs));
        const e = maxAbsErr(got[k]!, ref[k]!), base = maxAbsErr(naive[k]!, ref[k]!);
        // f16 outputs: add half an f16 ulp of the largest value to the f32 tolerance.
        assert(e <= 2 * base + big * 2 ** -11 + ERROR_FLOOR, `f16 ${k}: ${e}`);
      }
    });
  }),
);
