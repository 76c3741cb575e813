/**
 * Non-attention WGSL kernels vs reference/kernels.ts on small, awkward shapes (not
 * multiples of any tile): GPU error against the float64 reference at most 2x the naive float32
 * CPU error plus a tiny floor (FlashAttention-test style); gathers and transposes must be exact.
 */
import { deepStrictEqual, fail, ok as assert, strictEqual } from "node:assert";
import { gpuOnce, maxAbsErr, needsFeature, randomArray, rng } from "../fixtures/attention.ts";
import { readback, storageBuffer } from "../../runtime/gpu/resources.ts";
import {
  destroyDispatches,
  type Dispatch,
  type KernelContext,
  makeKernel,
  submit,
} from "../../runtime/gpu/kernel.ts";
import { matmul, type MatmulParams, type MatmulTrans } from "../../runtime/kernels/matmul.ts";
import { gather, rowIndex, scatterAdd } from "../../runtime/kernels/embedding.ts";
import {
  rmsnormBackward,
  rmsnormForward,
  rmsnormSubgroupLanes,
} from "../../runtime/kernels/rmsnorm.ts";
import { ropeBackward, ropeForward, ropeTable } from "../../runtime/kernels/rope.ts";
import { swigluBackward, swigluForward } from "../../runtime/kernels/swiglu.ts";
import { crossEntropy } from "../../runtime/kernels/cross_entropy.ts";
import { adamw, AdamWHyper } from "../../runtime/kernels/adamw.ts";
import { gradNorm } from "../../runtime/kernels/grad_norm.ts";
import * as oracle from "../../reference/kernels.ts";

const FLOOR = 1e-6;

async function context(): Promise<KernelContext> {
  return await gpuOnce();
}

function buf(ctx: KernelContext, data: Float32Array | Uint32Array | number, label = "t") {
  return storageBuffer(ctx.gpu.device, data, label);
}

async function read(ctx: KernelContext, b: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await readback(ctx.gpu.device, b, n * 4));
}

async function run(ctx: KernelContext, ds: Dispatch[]) {
  submit(ctx, ds);
  await ctx.gpu.device.queue.onSubmittedWorkDone();
  destroyDispatches(ds);
}

/** GPU error <= 2 x naive f32 error + floor (both against float64). */
function near(
  what: string,
  got: ArrayLike<number>,
  ref: ArrayLike<number>,
  naive: ArrayLike<number>,
  floor = FLOOR,
) {
  strictEqual(got.length, ref.length, `${what}: length`);
  const e = maxAbsErr(got, ref), base = maxAbsErr(naive, ref);
  assert(e <= 2 * base + floor, `${what}: error ${e} > 2 x ${base} + ${floor}`);
}

function exact(what: string, got: ArrayLike<number>, ref: ArrayLike<number>) {
  strictEqual(got.length, ref.length, `${what}: length`);
  for (let i = 0; i < ref.length; i++) {
    if (got[i] !== Math.fround(ref[i])) fail(`${what}[${i}]: ${got[i]} != ${ref[i]}`);
  }
}

Deno.test("makeKernel binds uniforms, reads and writes in order and guards elementwise items", async () => {
  const k = makeKernel({
    key: "test_scale",
    uniforms: { u: "n: u32, s: f32" },
    reads: { x: "f32", ids: "u32" },
    writes: { y: "f32" },
    main: { count: "u.n", body: "y[i] = u.s * x[ids[i]];" },
  });
  deepStrictEqual(k.bindings, ["u", "x", "ids", "y"]);
  strictEqual(k.label, "test_scale");
  for (
    const line of [
      "struct U { n: u32, s: f32 }",
      "@group(0) @binding(0) var<uniform> u: U;",
      "@group(0) @binding(1) var<storage, read> x: array<f32>;",
      "@group(0) @binding(2) var<storage, read> ids: array<u32>;",
      "@group(0) @binding(3) var<storage, read_write> y: array<f32>;",
      "if (i >= u.n) { return; }",
    ]
  ) assert(k.code.includes(line), `${line}\n${k.code}`);
  const ctx = await context(), dev = ctx.gpu.device;
  const info = await dev.createShaderModule({ code: k.code }).getCompilationInfo();
  deepStrictEqual(info.messages.filter((m) => m.type === "error").map((m) => m.message), []);
});

Deno.test("matmul nt/nn/tn on awkward shapes and blockings, alpha/beta accumulation", async () => {
  const ctx = await context(), r = rng(7);
  const shapes = [[37, 29, 53], [5, 70, 3], [1, 1, 1], [67, 130, 19]];
  const blockings: Omit<MatmulParams, "trans">[] = [
    { tm: 8, tn: 8, wgx: 8, wgy: 8 },
    { tm: 1, tn: 1, wgx: 16, wgy: 4 },
    { tm: 3, tn: 5, wgx: 4, wgy: 8 },
  ];
  for (const [M, N, inner] of shapes) {
    for (const trans of ["nt", "nn", "tn"] as MatmulTrans[]) {
      const a = randomArray(r, M * inner), b = randomArray(r, N * inner);
      const ref = oracle.matmulRef(a, b, { M, N, inner, trans });
      const naive = oracle.matmulRef(a, b, { M, N, inner, trans, precision: "f32" });
      const ab = buf(ctx, a), bb = buf(ctx, b);
      for (const params of blockings) {
        const cb = buf(ctx, M * N * 4);
        await run(ctx, [matmul(ctx, { a: ab, b: bb, c: cb, M, N, inner, trans, params })]);
        near(
          `${trans} ${M}x${N}x${inner} ${JSON.stringify(params)}`,
          await read(ctx, cb, M * N),
          ref,
          naive,
        );
        cb.destroy();
      }
      ab.destroy();
      bb.destroy();
    }
  }
  // C = 0.5·A·Bᵀ + C; and beta = 0 must ignore NaNs already in C.
  const [M, N, inner] = [13, 9, 21];
  const a = randomArray(r, M * inner), b = randomArray(r, N * inner), c0 = randomArray(r, M * N);
  const prod = oracle.matmulRef(a, b, { M, N, inner, trans: "nt" });
  const prodF = oracle.matmulRef(a, b, { M, N, inner, trans: "nt", precision: "f32" });
  const cb = buf(ctx, c0);
  await run(ctx, [
    matmul(ctx, {
      a: buf(ctx, a),
      b: buf(ctx, b),
      c: cb,
      M,
      N,
      inner,
      trans: "nt",
      alpha: 0.5,
      beta: 1,
    }),
  ]);
  near(
    "accumulate",
    await read(ctx, cb, M * N),
    prod.map((x, i) => 0.5 * x + c0[i]),
    prodF.map((x, i) => Math.fround(Math.fround(0.5 * x) + c0[i])),
  );
  const nan = buf(ctx, new Float32Array(M * N).fill(NaN));
  await run(ctx, [
    matmul(ctx, { a: buf(ctx, a), b: buf(ctx, b), c: nan, M, N, inner, trans: "nt" }),
  ]);
  near("beta 0 over NaN", await read(ctx, nan, M * N), prod, prodF);
});

Deno.test("embedding gather is exact; scatter-add sums duplicate ids (and accumulates rows)", async () => {
  const ctx = await context(), r = rng(3);
  const V = 23, C = 7, ids = Uint32Array.from({ length: 41 }, () => Math.floor(r() * 9) * 2);
  const table = randomArray(r, V * C), dout = randomArray(r, ids.length * C);
  const out = buf(ctx, ids.length * C * 4);
  await run(ctx, [gather(ctx, { table: buf(ctx, table), ids: buf(ctx, ids), out }, {
    rows: ids.length,
    cols: C,
    tableRows: V,
  })]);
  exact("gather", await read(ctx, out, ids.length * C), oracle.gatherRef(table, ids, C));
  const index = rowIndex(ids, V), init = randomArray(r, V * C);
  // accumulateRows: none, the first 10 rows (a tied head in copy 0 of stacked tables), all
  for (const accumulateRows of [0, 10, V]) {
    const dtable = buf(ctx, init);
    await run(ctx, [scatterAdd(ctx, {
      dout: buf(ctx, dout),
      offsets: buf(ctx, index.offsets),
      perm: buf(ctx, index.perm),
      dtable,
    }, { cols: C, tableRows: V, accumulateRows })]);
    const ref = oracle.scatterAddRef(dout, ids, { V, C }),
      naive = oracle.scatterAddRef(dout, ids, { V, C, precision: "f32" });
    const plus = (x: Float64Array, f: (v: number) => number) =>
      x.map((v, i) => Math.floor(i / C) < accumulateRows ? f(v + init[i]) : v);
    near(
      `scatter accumulateRows=${accumulateRows}`,
      await read(ctx, dtable, V * C),
      plus(ref, (v) => v),
      plus(naive, Math.fround),
    );
  }
});

/** RMSNorm forward and backward of R x C against float64; `subgroups` as `RmsNormShape`'s. */
async function checkRmsNorm(ctx: KernelContext, R: number, C: number, subgroups: boolean) {
  const r = rng(5 + C);
  const x = randomArray(r, R * C).map((v) => 3 * v), w = randomArray(r, C);
  const dy = randomArray(r, R * C), dx0 = randomArray(r, R * C);
  const xb = buf(ctx, x), wb = buf(ctx, w), y = buf(ctx, R * C * 4), rstd = buf(ctx, R * 4);
  const dx = buf(ctx, dx0), dw = buf(ctx, C * 4);
  await run(ctx, [
    rmsnormForward(ctx, { x: xb, w: wb, y, rstd }, { rows: R, cols: C, subgroups }),
    ...rmsnormBackward(ctx, { dy: buf(ctx, dy), x: xb, w: wb, rstd, dx, dw }, {
      rows: R,
      cols: C,
      accumulateDx: true,
      subgroups,
    }),
  ]);
  const ref = oracle.rmsnormRef(x, w, { C }),
    naive = oracle.rmsnormRef(x, w, { C, precision: "f32" });
  near("y", await read(ctx, y, R * C), ref.y, naive.y);
  near("rstd", await read(ctx, rstd, R), ref.rstd, naive.rstd);
  const bref = oracle.rmsnormBackwardRef({ dy, x, w, rstd: ref.rstd }, { C });
  const bnaive = oracle.rmsnormBackwardRef({ dy, x, w, rstd: naive.rstd }, { C, precision: "f32" });
  near(
    "dx",
    await read(ctx, dx, R * C),
    bref.dx.map((v, i) => v + dx0[i]),
    bnaive.dx.map((v, i) => Math.fround(v + dx0[i])),
  );
  near("dw", await read(ctx, dw, C), bref.dw, bnaive.dw);
}

Deno.test("rmsnorm forward and backward (dx accumulates into the residual gradient)", async () => {
  await checkRmsNorm(await context(), 19, 37, false);
});

Deno.test("without subgroups, RMSNorm keeps its workgroup reductions", async () => {
  const ctx = await context();
  strictEqual(rmsnormSubgroupLanes({ ...ctx.gpu, subgroups: undefined, adapterClass: "gpu" }), 0);
});

Deno.test(
  await needsFeature(
    "subgroups",
    "rmsnorm with subgroupAdd row reductions (the gpu class's, where subgroups exist)",
    async () => {
      const ctx = await context();
      // The gpu class uses them by default, the cpu class only when forced.
      const lanes = rmsnormSubgroupLanes({ ...ctx.gpu, adapterClass: "gpu" });
      assert(lanes >= 4 && lanes <= ctx.gpu.subgroups!.minSize, `${lanes} lanes`);
      strictEqual(rmsnormSubgroupLanes({ ...ctx.gpu, adapterClass: "cpu" }), 0);
      // Rows shorter than, not a multiple of, and many times the subgroup; one row alone.
      for (const [R, C] of [[19, 37], [3, 5], [1, 300], [70, 16]]) {
        await checkRmsNorm(ctx, R, C, true);
      }
    },
  ),
);

Deno.test("rope forward/backward with shared and flattened PHD positions; transposes exact", async () => {
  const ctx = await context(), r = rng(11);
  const K = 3, L = 5, N = K * L, B = 2, H = 3, d = 10;
  const shape = { batch: B, tokens: N, heads: H, headDim: d };
  for (const scheme of ["shared", "flattened"]) {
    const pos = Uint32Array.from(
      { length: N },
      (_, t) => scheme === "shared" ? Math.floor(t / K) : t,
    );
    const table = buf(ctx, ropeTable(N, d)), posb = buf(ctx, pos);
    const x = randomArray(r, B * N * H * d).map((v) => 4 * v), g = randomArray(r, B * H * N * d);
    const out = buf(ctx, x.length * 4), dx = buf(ctx, x.length * 4);
    await run(ctx, [
      ropeForward(ctx, { inp: buf(ctx, x), pos: posb, table, out }, shape),
      ropeBackward(ctx, { inp: buf(ctx, g), pos: posb, table, out: dx }, shape),
    ]);
    const xh = oracle.transposeHeads(x, shape);
    near(
      `${scheme} forward`,
      await read(ctx, out, x.length),
      oracle.ropeRef(xh, pos, { headDim: d }),
      oracle.ropeRef(xh, pos, { headDim: d, precision: "f32" }),
    );
    const back = (p: "f64" | "f32") =>
      oracle.transposeHeads(oracle.ropeRef(g, pos, { headDim: d, inverse: true, precision: p }), {
        ...shape,
        back: true,
      });
    near(`${scheme} backward`, await read(ctx, dx, x.length), back("f64"), back("f32"));
    const plain = buf(ctx, x.length * 4), again = buf(ctx, x.length * 4);
    await run(ctx, [
      ropeForward(ctx, { inp: buf(ctx, x), pos: posb, table, out: plain }, {
        ...shape,
        rotate: false,
      }),
      ropeBackward(ctx, { inp: plain, pos: posb, table, out: again }, { ...shape, rotate: false }),
    ]);
    exact("transpose", await read(ctx, plain, x.length), xh);
    exact("transpose back", await read(ctx, again, x.length), x);
  }
});

Deno.test("swiglu forward and backward", async () => {
  const ctx = await context(), r = rng(13), n = 1001;
  const gate = randomArray(r, n).map((v) => 8 * v),
    up = randomArray(r, n),
    dout = randomArray(r, n);
  const gb = buf(ctx, gate), ub = buf(ctx, up), out = buf(ctx, n * 4);
  const dgate = buf(ctx, n * 4), dup = buf(ctx, n * 4);
  await run(ctx, [
    swigluForward(ctx, { gate: gb, up: ub, out }, n),
    swigluBackward(ctx, { dout: buf(ctx, dout), gate: gb, up: ub, dgate, dup }, n),
  ]);
  near(
    "out",
    await read(ctx, out, n),
    oracle.swigluRef({ gate, up }),
    oracle.swigluRef({ gate, up }, "f32"),
  );
  const ref = oracle.swigluBackwardRef({ dout, gate, up }),
    naive = oracle.swigluBackwardRef({ dout, gate, up }, "f32");
  near("dgate", await read(ctx, dgate, n), ref.dgate, naive.dgate);
  near("dup", await read(ctx, dup, n), ref.dup, naive.dup);
});

Deno.test("cross-entropy on selected rows: losses, gradients, other rows untouched", async () => {
  const ctx = await context(), r = rng(17);
  const Rall = 11, V = 300, rows = Uint32Array.from([10, 2, 5, 7, 0]);
  const targets = Uint32Array.from([299, 0, 17, 150, 64]);
  const logits = randomArray(r, Rall * V).map((v) => 12 * v);
  for (const wg of [64, 16]) {
    const losses = buf(ctx, rows.length * 4), dl = buf(ctx, new Float32Array(Rall * V).fill(7));
    await run(ctx, [crossEntropy(ctx, {
      logits: buf(ctx, logits),
      rows: buf(ctx, rows),
      targets: buf(ctx, targets),
      losses,
      dlogits: dl,
    }, { rows: rows.length, vocab: V, params: { workgroupSize: wg } })]);
    const ref = oracle.crossEntropyRef({ logits, rows, targets }, { V });
    const naive = oracle.crossEntropyRef({ logits, rows, targets }, { V, precision: "f32" });
    near(`losses wg${wg}`, await read(ctx, losses, rows.length), ref.losses, naive.losses);
    const got = await read(ctx, dl, Rall * V), sel = new Set(rows);
    for (let i = 0; i < Rall; i++) {
      const slice = (a: ArrayLike<number>) => Array.from({ length: V }, (_, v) => a[i * V + v]);
      if (sel.has(i)) {
        near(`dlogits row ${i}`, slice(got), slice(ref.dlogits), slice(naive.dlogits));
      } else assert(slice(got).every((v) => v === 7), `row ${i} was written`);
    }
  }
});

Deno.test("grad norm over several ranges and AdamW steps with the clip scale", async () => {
  const ctx = await context(), r = rng(19);
  const n = 1003, offset = 101, total = 1200;
  const param = randomArray(r, total), m = new Float32Array(total), v = new Float32Array(total);
  const pb = buf(ctx, param), mb = buf(ctx, m), vb = buf(ctx, v), clip = buf(ctx, 8);
  const hyper = new AdamWHyper(ctx, { beta1: 0.9, beta2: 0.95, eps: 1e-8 });
  const ref = {
    param: Float64Array.from(param),
    m: new Float64Array(total),
    v: new Float64Array(total),
  };
  const naive = {
    param: Float64Array.from(param),
    m: new Float64Array(total),
    v: new Float64Array(total),
  };
  const other = randomArray(r, 77);
  for (const [step, lr, maxNorm] of [[1, 1e-2, 3], [2, 5e-3, 0], [3, 2e-2, 100]]) {
    const grad = randomArray(r, total).map((x) => 2 * x), gb = buf(ctx, grad);
    await run(
      ctx,
      gradNorm(ctx, {
        ranges: [{ buffer: gb, offset, n }, { buffer: buf(ctx, other), n: 77 }],
        out: clip,
      }, { maxNorm, parts: 5 }),
    );
    const inRange = grad.subarray(offset, offset + n);
    const g64 = oracle.gradNormRef([inRange, other], { maxNorm });
    const g32 = oracle.gradNormRef([inRange, other], { maxNorm, precision: "f32" });
    const [norm, scale] = await read(ctx, clip, 2);
    near(`norm step ${step}`, [norm], [g64.norm], [g32.norm]);
    near(`scale step ${step}`, [scale], [g64.scale], [g32.scale]);
    if (maxNorm === 3) assert(scale < 1);
    hyper.set(step, lr);
    await run(ctx, [
      adamw(ctx, { param: pb, grad: gb, m: mb, v: vb, clip, hyper }, {
        offset,
        n,
        weightDecay: 0.1,
      }),
    ]);
    const h = { lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
    const sub = (o: typeof ref) => ({
      param: o.param.subarray(offset, offset + n),
      m: o.m.subarray(offset, offset + n),
      v: o.v.subarray(offset, offset + n),
      grad: inRange,
    });
    oracle.adamwRef(sub(ref), { ...h, gradScale: g64.scale });
    oracle.adamwRef(sub(naive), { ...h, gradScale: Math.fround(g32.scale), precision: "f32" });
    const got = await read(ctx, pb, total);
    near(`param step ${step}`, got, ref.param, naive.param);
    exact("untouched before the range", got.subarray(0, offset), param.subarray(0, offset));
  }
});
