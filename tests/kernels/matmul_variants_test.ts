/**
 * The matmul variant space: a sample covering every code path of the generator (register blocks,
 * one-row/one-column workgroups, vec4 loads in each form, workgroup-memory staging with scalar and
 * vec4 loads, in-workgroup split-K, two-pass split-K, alpha/beta) matches the float64 reference on
 * awkward shapes (not multiples of any tile, inner not a multiple of 4); so do the gpu class's
 * defaults (run here through a gpu-class view of this adapter) and the f16-arithmetic variants
 * (with an f16 tolerance, where the adapter has shader-f16); every candidate of both classes' full
 * spaces is valid WGSL; variants that break limits or a shape's divisibility are refused before
 * compiling. Small blocks keep llvmpipe's compiles short (the large ones are checked by
 * `deno task autotune` before they are timed).
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import {
  gpuAsClass,
  gpuOnce,
  maxAbsErr,
  needsFeature,
  randomArray,
  rng,
} from "../fixtures/attention.ts";
import { readback, storageBuffer } from "../../runtime/gpu/resources.ts";
import { destroyDispatches, submit } from "../../runtime/gpu/kernel.ts";
import { deviceLimits } from "../../runtime/gpu/device.ts";
import {
  DEFAULT_MATMUL,
  defaultMatmul,
  GPU_MATMUL,
  matmul,
  type MatmulBlocking,
  matmulDispatches,
  matmulKernel,
  matmulKey,
  matmulLimitsProblem,
  matmulShapeProblem,
  type MatmulTrans,
  matmulVariantName,
} from "../../runtime/kernels/matmul.ts";
import { matmulRef } from "../../reference/kernels.ts";
import { matmulCandidates, matmulPrune } from "../../runtime/tune/matmul.ts";

/** One variant per code path (small blocks: fast llvmpipe compiles). */
const SAMPLE: MatmulBlocking[] = [
  DEFAULT_MATMUL,
  { tm: 3, tn: 5, wgx: 4, wgy: 8 },
  { tm: 8, tn: 16, wgx: 8, wgy: 1 },
  { tm: 4, tn: 8, wgx: 1, wgy: 8 },
  { tm: 4, tn: 8, wgx: 8, wgy: 1, vec: 4 },
  { tm: 4, tn: 4, wgx: 8, wgy: 2, bk: 8 },
  { tm: 4, tn: 4, wgx: 4, wgy: 4, vec: 4, bk: 8 },
  { tm: 4, tn: 4, wgx: 4, wgy: 2, vec: 4, bk: 4, splitK: 2 },
  { tm: 2, tn: 4, wgx: 4, wgy: 4, kz: 3 },
  { tm: 4, tn: 4, wgx: 8, wgy: 1, vec: 4, kz: 2 },
  { tm: 4, tn: 4, wgx: 8, wgy: 1, splitK: 3 },
  { tm: 4, tn: 8, wgx: 8, wgy: 1, vec: 4, splitK: 2 },
];

/** Awkward shapes [M, N, inner]: the first two have inner % 4 != 0 (vec4 must be refused there). */
const SHAPES = [[37, 29, 53], [5, 70, 3], [36, 44, 52], [68, 12, 132]];

Deno.test("every sampled variant matches float64 on awkward shapes, with alpha and beta", async () => {
  const ctx = await gpuOnce(), dev = ctx.gpu.device, r = rng(11);
  let ran = 0, refused = 0;
  for (const [M, N, inner] of SHAPES) {
    for (const trans of ["nt", "nn", "tn"] as MatmulTrans[]) {
      const a = randomArray(r, M * inner),
        b = randomArray(r, N * inner),
        c0 = randomArray(r, M * N);
      const ref = matmulRef(a, b, { M, N, inner, trans });
      const naive = matmulRef(a, b, { M, N, inner, trans, precision: "f32" });
      const ab = storageBuffer(dev, a), bb = storageBuffer(dev, b);
      const tol = 2 * maxAbsErr(naive, ref) + 1e-6;
      for (const params of SAMPLE) {
        const what = `${trans} ${M}x${N}x${inner} ${matmulVariantName(params)}`;
        const problem = matmulShapeProblem({ ...params, trans }, { trans, M, N, inner });
        if (problem) {
          throws(() => matmulDispatches(ctx, { a: ab, b: bb, c: ab, M, N, inner, trans, params }));
          refused++;
          continue;
        }
        // alpha = 0.5, beta = 2 over a random C: checks the scaling and the read of old C.
        const cb = storageBuffer(dev, c0);
        const ds = matmulDispatches(ctx, {
          a: ab,
          b: bb,
          c: cb,
          M,
          N,
          inner,
          trans,
          params,
          alpha: 0.5,
          beta: 2,
        });
        submit(ctx, ds);
        const got = new Float32Array(await readback(dev, cb, M * N * 4));
        const want = ref.map((x, i) => 0.5 * x + 2 * c0[i]);
        const e = maxAbsErr(got, want);
        assert(e <= tol, `${what}: error ${e} > ${tol}`);
        destroyDispatches(ds);
        cb.destroy();
        ran++;
      }
      ab.destroy();
      bb.destroy();
    }
  }
  assert(refused > 0 && ran > 80, `ran ${ran}, refused ${refused}`);
});

/** Runs `matmul` with the context's default blocking (no params) and returns C. */
async function runDefault(
  ctx: Awaited<ReturnType<typeof gpuOnce>>,
  a: Float32Array,
  b: Float32Array,
  s: { M: number; N: number; inner: number; trans: MatmulTrans },
): Promise<Float32Array> {
  const dev = ctx.gpu.device;
  const ab = storageBuffer(dev, a), bb = storageBuffer(dev, b);
  const cb = storageBuffer(dev, new Float32Array(s.M * s.N).fill(NaN));
  const d = matmul(ctx, { a: ab, b: bb, c: cb, ...s });
  submit(ctx, [d]);
  const got = new Float32Array(await readback(dev, cb, s.M * s.N * 4));
  destroyDispatches([d]);
  for (const x of [ab, bb, cb]) x.destroy();
  return got;
}

Deno.test("the gpu class's defaults (staged, vec4 where the shape allows) match float64", async () => {
  const ctx = await gpuAsClass("gpu"), r = rng(5), limits = deviceLimits(ctx.gpu.device);
  // The vec4 default in every form on a shape that allows it; on the others (a one-row product
  // with an odd reduction; neither a multiple of 4 nor of 16) its scalar fallback, whose staging
  // code the cpu sample's `bk` variant checks in every form, in one form: llvmpipe's GL backend
  // compiles each 256-invocation staged kernel in seconds.
  const cases: [number, number, number, MatmulTrans[]][] = [
    [68, 72, 132, ["nt", "nn", "tn"]],
    [1, 33, 7, ["nt"]],
    [37, 29, 53, ["nt"]],
  ];
  const used = new Set<string>();
  for (const [M, N, inner, forms] of cases) {
    for (const trans of forms) {
      const s = { M, N, inner, trans };
      const p = defaultMatmul("gpu", s, limits);
      assert(GPU_MATMUL.includes(p));
      used.add(matmulVariantName(p));
      const a = randomArray(r, M * inner), b = randomArray(r, N * inner);
      const ref = matmulRef(a, b, s);
      const tol = 2 * maxAbsErr(matmulRef(a, b, { ...s, precision: "f32" }), ref) + 1e-6;
      const e = maxAbsErr(await runDefault(ctx, a, b, s), ref);
      assert(
        e <= tol,
        `gpu default ${matmulVariantName(p)} ${trans} ${M}x${N}x${inner}: ${e} > ${tol}`,
      );
    }
  }
  assertEquals([...used].sort(), ["4x4 wg16x16 bk8", "4x4 wg16x16 v4 bk8"]);
  // The cpu class keeps llvmpipe's default; a device of 64 invocations gets the 8 x 8 fallback.
  const s = { M: 64, N: 64, inner: 64, trans: "nt" as const };
  assertEquals(defaultMatmul("cpu", s, limits), DEFAULT_MATMUL);
  const small = { ...limits, maxComputeInvocationsPerWorkgroup: 64 };
  assertEquals(defaultMatmul("gpu", s, small), GPU_MATMUL[2]);
});

Deno.test("without shader-f16, an f16 matmul is refused naming the feature", async () => {
  const ctx = await gpuOnce(), ab = storageBuffer(ctx.gpu.device, 64);
  throws(
    () =>
      matmul({ ...ctx, gpu: { ...ctx.gpu, f16: false } }, {
        a: ab,
        b: ab,
        c: ab,
        M: 2,
        N: 2,
        inner: 2,
        trans: "nt",
        params: { ...DEFAULT_MATMUL, f16: "products" },
      }),
    /shader-f16/,
  );
  ab.destroy();
});

Deno.test(
  await needsFeature(
    "f16",
    "f16 arithmetic (f16 products, f32 or f16 sums) matches float64 within f16 tolerances",
    async (t) => {
      const ctx = await gpuOnce(), dev = ctx.gpu.device, r = rng(17);
      // f16 has 11 significant bits to f32's 24: rounding the operands and products to f16 costs
      // up to 2^13 times the naive f32 error, and f16 sums as much again; the floor covers inner = 1,
      // where the naive f32 product is exact. Each tolerance is a factor over the naive f32 error.
      const F16 = 2 ** 13;
      const variants: [MatmulBlocking, number][] = [
        [{ tm: 4, tn: 4, wgx: 8, wgy: 2, f16: "products" }, F16],
        [{ tm: 4, tn: 8, wgx: 8, wgy: 1, vec: 4, f16: "products" }, F16],
        [{ tm: 4, tn: 4, wgx: 4, wgy: 4, vec: 4, bk: 8, f16: "products" }, F16],
        [{ tm: 4, tn: 4, wgx: 8, wgy: 2, bk: 8, f16: "accumulate" }, 2 * F16],
      ];
      // Awkward shapes: not multiples of 4 or 16, one row, odd inner; the third allows vec4.
      const shapes = [[37, 29, 53], [1, 70, 3], [36, 44, 52], [5, 1, 1]];
      for (const [params, factor] of variants) {
        await t.step(matmulVariantName(params), async () => {
          for (const [M, N, inner] of shapes) {
            for (const trans of ["nt", "nn", "tn"] as MatmulTrans[]) {
              const s = { M, N, inner, trans };
              if (matmulShapeProblem({ ...params, trans }, s)) continue;
              const a = randomArray(r, M * inner), b = randomArray(r, N * inner);
              const ref = matmulRef(a, b, s);
              const naive = maxAbsErr(matmulRef(a, b, { ...s, precision: "f32" }), ref);
              const tol = factor * (2 * naive + 1e-7);
              const ab = storageBuffer(dev, a), bb = storageBuffer(dev, b);
              const cb = storageBuffer(dev, M * N * 4);
              const d = matmul(ctx, { a: ab, b: bb, c: cb, ...s, params });
              submit(ctx, [d]);
              const got = new Float32Array(await readback(dev, cb, M * N * 4));
              const e = maxAbsErr(got, ref);
              assert(e <= tol, `${trans} ${M}x${N}x${inner}: ${e} > ${tol}`);
              destroyDispatches([d]);
              for (const x of [ab, bb, cb]) {
                x.destroy();
              }
            }
          }
        });
      }
    },
  ),
);

Deno.test("beta = 0 never reads C (NaN in a reused buffer does not leak), split-K included", async () => {
  const ctx = await gpuOnce(), dev = ctx.gpu.device, r = rng(3);
  const M = 19, N = 23, inner = 300, trans = "tn";
  const a = randomArray(r, M * inner), b = randomArray(r, N * inner);
  const ref = matmulRef(a, b, { M, N, inner, trans });
  const ab = storageBuffer(dev, a), bb = storageBuffer(dev, b);
  for (const params of [DEFAULT_MATMUL, { tm: 4, tn: 4, wgx: 8, wgy: 1, splitK: 5 }]) {
    const cb = storageBuffer(dev, new Float32Array(M * N).fill(NaN));
    const ds = matmulDispatches(ctx, { a: ab, b: bb, c: cb, M, N, inner, trans, params });
    submit(ctx, ds);
    const got = new Float32Array(await readback(dev, cb, M * N * 4));
    assert(maxAbsErr(got, ref) < 1e-4, matmulVariantName(params));
    destroyDispatches(ds);
    cb.destroy();
  }
  throws(
    () =>
      matmul(ctx, {
        a: ab,
        b: bb,
        c: ab,
        M,
        N,
        inner,
        trans,
        params: { ...DEFAULT_MATMUL, splitK: 2 },
      }),
    /matmulDispatches/,
  );
  ab.destroy();
  bb.destroy();
});

Deno.test("every candidate of both classes' full spaces is valid WGSL within this adapter's limits", async () => {
  const ctx = await gpuOnce(), dev = ctx.gpu.device, limits = deviceLimits(dev);
  for (const trans of ["nt", "nn", "tn"] as MatmulTrans[]) {
    for (const c of matmulCandidates({ adapterClass: "gpu", splitK: true })) {
      const k = matmulKernel({ ...c.params, trans }, limits);
      const info = await dev.createShaderModule({ code: k.code }).getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === "error").map((m) => m.message);
      assertEquals(errors, [], `${k.key}`);
    }
  }
  const keys = new Set<string>();
  for (const trans of ["nt", "nn", "tn"] as MatmulTrans[]) {
    for (const c of matmulCandidates({ adapterClass: "cpu", splitK: true })) {
      const p = { ...c.params, trans };
      assertEquals(matmulLimitsProblem(p, limits), undefined, c.name);
      const k = matmulKernel(p, limits);
      keys.add(k.key);
      const info = await dev.createShaderModule({ code: k.code }).getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === "error").map((m) => m.message);
      assertEquals(errors, [], `${k.key}`);
    }
  }
  // The split-K factor travels in uniforms (one kernel for every factor); all else is baked in.
  const baked = new Set(
    matmulCandidates({ adapterClass: "cpu", splitK: true }).map((c) =>
      c.name.replace(/ sk\d+/, " sk")
    ),
  );
  assertEquals(keys.size, 3 * baked.size, "keys are distinct");
  assertEquals(matmulKey({ ...DEFAULT_MATMUL, trans: "nt" }), "matmul:nt:tm8:tn8:wg8x8");
  const quick = matmulCandidates({ adapterClass: "cpu", quick: true, splitK: false });
  assertEquals(quick[0].params, DEFAULT_MATMUL, "the default comes first");
  assert(quick.every((c) => (c.params.splitK ?? 1) === 1));
  // The gpu class's quick space: 64-256 invocations, staged tiles and vec4 loads, its default
  // for the shape first (the scalar one where inner % 4 != 0).
  const odd = { trans: "nt" as const, M: 64, N: 64, inner: 63 };
  const gpu = matmulCandidates({ adapterClass: "gpu", quick: true, shape: odd, limits });
  assertEquals(gpu[0].params, defaultMatmul("gpu", odd, limits));
  assertEquals(gpu[0].params.vec ?? 1, 1);
  for (const c of gpu) {
    const inv = c.params.wgx * c.params.wgy * (c.params.kz ?? 1);
    assert(inv >= 64 && inv <= 256, `${c.name}: ${inv} invocations`);
  }
  assert(gpu.filter((c) => (c.params.bk ?? 0) > 0).length >= gpu.length / 2, "mostly staged");
  assert(gpu.some((c) => c.params.vec === 4 && (c.params.bk ?? 0) > 0), "staged vec4");
});

Deno.test("variants that break limits or a shape are pruned before any compile", () => {
  const small = {
    maxComputeInvocationsPerWorkgroup: 64,
    maxComputeWorkgroupSizeX: 64,
    maxComputeWorkgroupSizeY: 64,
    maxComputeWorkgroupSizeZ: 4,
    maxComputeWorkgroupStorageSize: 4096,
  };
  const s = { trans: "nt" as const, M: 100, N: 100, inner: 250 };
  const prune = (p: MatmulBlocking) => matmulPrune(p, s, small);
  assertEquals(prune(DEFAULT_MATMUL), undefined);
  assert(prune({ tm: 4, tn: 4, wgx: 16, wgy: 16 })?.includes("invocations"));
  assert(prune({ tm: 8, tn: 8, wgx: 8, wgy: 8, bk: 16 })?.includes("workgroup memory"));
  assert(prune({ tm: 8, tn: 8, wgx: 8, wgy: 1, kz: 8 })?.includes("maxComputeWorkgroupSizeZ"));
  assert(prune({ tm: 16, tn: 32, wgx: 8, wgy: 1 })?.includes("accumulators"));
  assert(prune({ tm: 8, tn: 8, wgx: 8, wgy: 1, vec: 4 })?.includes("inner=250"));
  assert(prune({ tm: 8, tn: 8, wgx: 8, wgy: 1, splitK: 8 })?.includes("split-K"));
  assertEquals(prune({ tm: 8, tn: 8, wgx: 8, wgy: 1, splitK: 2 }), undefined);
  const tn = { trans: "tn" as const, M: 64, N: 64, inner: 64 };
  assert(matmulShapeProblem({ tm: 6, tn: 8, wgx: 8, wgy: 1, vec: 4, trans: "tn" }, tn));
  throws(() => matmulKernel({ tm: 4, tn: 4, wgx: 16, wgy: 16, trans: "nt" }, small), /invocations/);
  throws(() => matmulKernel({ tm: 4, tn: 4, wgx: 8, wgy: 1, bk: 8, kz: 2, trans: "nt" }), /kz/);
  throws(
    () => matmulKernel({ tm: 4, tn: 4, wgx: 8, wgy: 1, bk: 6, vec: 4, trans: "nt" }),
    /bk % 4/,
  );
  throws(
    () => matmulKernel({ tm: 4, tn: 4, wgx: 8, wgy: 1, splitK: 2, f16: "products", trans: "nt" }),
    /f16/,
  );
});
