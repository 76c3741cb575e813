/**
 * The matmul variant space: a sample covering every code path of the generator (register blocks,
 * one-row/one-column workgroups, vec4 loads in each form, workgroup-memory staging, in-workgroup
 * split-K, two-pass split-K, alpha/beta) matches the float64 reference on awkward shapes (not
 * multiples of any tile, inner not a multiple of 4); every candidate of the tuner's full space is
 * valid WGSL; variants that break limits or a shape's divisibility are refused before compiling.
 * Small blocks keep llvmpipe's compiles short (the large ones are checked by `deno task autotune`
 * before they are timed).
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { gpuOnce, maxAbsErr, randomArray, rng } from "../fixtures/attention.ts";
import { readback, storageBuffer } from "../../runtime/gpu/resources.ts";
import { destroyDispatches, submit } from "../../runtime/gpu/kernel.ts";
import { deviceLimits } from "../../runtime/gpu/device.ts";
import {
  DEFAULT_MATMUL,
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

Deno.test("every candidate of the full space is valid WGSL within this adapter's limits", async () => {
  const ctx = await gpuOnce(), dev = ctx.gpu.device, limits = deviceLimits(dev);
  const keys = new Set<string>();
  for (const trans of ["nt", "nn", "tn"] as MatmulTrans[]) {
    for (const c of matmulCandidates({ splitK: true })) {
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
    matmulCandidates({ splitK: true }).map((c) => c.name.replace(/ sk\d+/, " sk")),
  );
  assertEquals(keys.size, 3 * baked.size, "keys are distinct");
  assertEquals(matmulKey({ ...DEFAULT_MATMUL, trans: "nt" }), "matmul:nt:tm8:tn8:wg8x8");
  const quick = matmulCandidates({ quick: true, splitK: false });
  assertEquals(quick[0].params, DEFAULT_MATMUL, "the default comes first");
  assert(quick.every((c) => (c.params.splitK ?? 1) === 1));
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
  throws(
    () => matmulKernel({ tm: 4, tn: 4, wgx: 8, wgy: 1, bk: 8, vec: 4, trans: "nt" }),
    /staging/,
  );
});
