/**
 * The loop budget (runtime/gpu/device.ts `GpuContext.loopBudget`): Mesa's llvmpipe and lavapipe
 * give one shader invocation 65535 loop passes, all its loops together, and then end them without
 * an error. The attention kernels loop only over tiles and the rows of a tile (the head dim is
 * straight-line code, so a driver that leaves a loop rolled cannot multiply the passes per key: the
 * cause of the dense kernel's 0.011 error at 4096 tokens on lavapipe), and their pass counts
 * (`attentionLoopPasses`, `matmulLoopPasses`) are exact enough to tell a run that fits from one
 * that does not: within the budget the last rows equal float64, past it they do not, and the
 * runtime refuses such a run instead of computing it. And the case that found it (bench attention's
 * PHD-CSWA K = 4 at 4096 tokens): the dense and the fused kernel equal float64 there.
 */
import { ok as assert, strictEqual, throws } from "node:assert/strict";
import { causal, documentMask, phdCswa } from "../../dsl/presets.ts";
import {
  ATTENTION_KINDS,
  attentionLoopPasses,
  attentionParams,
  buildAttentionKernel,
} from "../../compiler/codegen/attention_kernels.ts";
import { coordAttentionKernel } from "../../compiler/codegen/coord_attention.ts";
import { packSpecBindings } from "../../compiler/codegen/wgsl_expr.ts";
import { FlashAttention } from "../../runtime/kernels/attention.ts";
import { DEFAULT_MATMUL, matmulDispatches } from "../../runtime/kernels/matmul.ts";
import { readback, storageBuffer } from "../../runtime/gpu/resources.ts";
import { submit } from "../../runtime/gpu/kernel.ts";
import { maxAbsErr, referenceAttention } from "../../reference/attention.ts";
import { gpuOnce, randomArray, rng } from "../fixtures/attention.ts";

Deno.test("the kernels loop only over tiles and rows; masks never loop", () => {
  const spec = documentMask({ docs: [0, 5, 9] });
  for (const staging of ["direct", "workgroup"] as const) {
    for (const variant of ["fused", "dense"] as const) {
      const p = attentionParams(spec, 64, { staging, variant, blockQ: 2, blockK: 2 });
      for (const kind of ATTENTION_KINDS) {
        const code = buildAttentionKernel(kind, p).code;
        const loops = code.match(/\b(for|while|loop)\b *\(/g) ?? [];
        // the tile walk and the rows of a tile, two staging loops, the dK/dV pass's head group
        const want = 2 + (staging === "workgroup" ? 2 : 0) + (kind === "backward_dkv" ? 1 : 0);
        strictEqual(loops.length, want, `${kind} ${staging} ${variant}`);
        assert(!/for \(var x/.test(code), `${kind}: a loop over the head dim`);
      }
    }
  }
  // The coordinate kernel: its ranges and their slots, and the merge over the split.
  const code = coordAttentionKernel({ spec, headDim: 64, tileQ: 4, split: 4 }).code;
  strictEqual((code.match(/\b(for|while|loop)\b *\(/g) ?? []).length, 4);
  throws(
    () => packSpecBindings(spec, { params: {}, tables: { docs: new Array(1 << 16).fill(0) } }),
    /table docs has 65536 entries, the kernels search at most 65535/,
  );
});

Deno.test("lavapipe and llvmpipe: 65535 loop passes per invocation; none found elsewhere", async () => {
  const { gpu } = await gpuOnce();
  if (/llvmpipe|lavapipe/i.test(gpu.adapterName)) strictEqual(gpu.loopBudget, 65535);
  else strictEqual(gpu.loopBudget, undefined, gpu.adapterName);
});

Deno.test("attention at the loop budget: equal to float64 within it, wrong past it, refused", async () => {
  const { gpu, cache } = await gpuOnce();
  const budget = gpu.loopBudget;
  // Staged 1 x 1 tiles at d = 256 make 70 passes per key: the budget ends near 936 tokens.
  const d = 256, spec = causal({ K: 1 });
  const config = { headDim: d, staging: "workgroup", tileQ: 1, tileK: 1 } as const;
  const passes = (N: number) =>
    Math.max(
      ...ATTENTION_KINDS.map((k) =>
        attentionLoopPasses(k, attentionParams(spec, d, config), { N, group: 1 })
      ),
    );
  strictEqual(passes(936), 65523);
  strictEqual(passes(960), 67203);
  if (budget === undefined) return; // no budget on this adapter: nothing ends early
  /** Max error of the last 4 rows' outputs against float64 (`gpu`: the context to run on). */
  const lastRowsErr = async (N: number, on = gpu) => {
    const x = rng(N), q = randomArray(x, N * d), k = randomArray(x, N * d);
    const v = randomArray(x, N * d);
    const o = (await new FlashAttention(on, cache, spec, config).run({ q, k, v }, { L: N })).o;
    let err = 0;
    for (let i = N - 4; i < N; i++) {
      const s = Array.from({ length: i + 1 }, (_, j) => {
        let a = 0;
        for (let c = 0; c < d; c++) a += q[i * d + c] * k[j * d + c];
        return a / Math.sqrt(d);
      });
      const m = Math.max(...s), p = s.map((z) => Math.exp(z - m));
      const l = p.reduce((a, b) => a + b, 0);
      for (let c = 0; c < d; c++) {
        const want = p.reduce((a, pj, j) => a + pj * v[j * d + c], 0) / l;
        err = Math.max(err, Math.abs(o[i * d + c] - want));
      }
    }
    return err;
  };
  assert(passes(936) < budget && passes(960) > budget);
  const within = await lastRowsErr(936);
  assert(within < 1e-6, `within the budget: ${within}`);
  // Past the budget, with the runtime's refusal turned off: the driver skips the last keys.
  const past = await lastRowsErr(960, { ...gpu, loopBudget: undefined });
  assert(past > 1e-4, `past the budget the last keys should be lost, error ${past}`);
  const fa = new FlashAttention(gpu, cache, spec, config);
  throws(
    () => fa.forward(gpu.device.createCommandEncoder(), {} as never, { L: 960 }),
    /the forward pass at N = 960 tokens \(1 query heads per KV head\) makes up to 67201 loop passes per invocation, past this adapter's loop budget 65535/,
  );
  // Under the budget a PHD spec's refusal names the dK/dV pass of a wide head group.
  const grouped = new FlashAttention(gpu, cache, phdCswa({ K: 2, W: 4, C: 8 }), { headDim: 16 });
  throws(
    () =>
      grouped.forward(gpu.device.createCommandEncoder(), {} as never, {
        L: 16384,
        heads: 8,
        kvHeads: 1,
      }),
    /backward_dkv pass at N = 32768 tokens \(8 query heads per KV head\)/,
  );
});

Deno.test("bench attention's case at 4096 tokens: dense and fused equal float64", async () => {
  // PHD-CSWA(16, 32), K = 4, L = 1024, grouped, d = 64, the cpu class's register blocks: here the
  // dense kernel lost its last keys on lavapipe, 0.011 off; float32 stays within 2e-7.
  const { gpu, cache } = await gpuOnce();
  const spec = phdCswa({ K: 4, W: 16, C: 32 }), L = 1024, N = 4 * L, d = 64;
  const x = rng(4), q = randomArray(x, N * d), k = randomArray(x, N * d);
  const v = randomArray(x, N * d);
  const problem = {
    spec,
    L,
    layout: "grouped",
    batch: 1,
    heads: 1,
    kvHeads: 1,
    headDim: d,
  } as const;
  const ref = referenceAttention(problem, { q, k, v });
  for (const variant of ["dense", "fused"] as const) {
    const fa = new FlashAttention(gpu, cache, spec, { headDim: d, layout: "grouped", variant });
    const got = await fa.run({ q, k, v }, { L });
    const err = maxAbsErr(got.o, ref.o);
    assert(err < 1e-5 && maxAbsErr(got.lse, ref.lse) < 1e-5, `${variant}: o off by ${err}`);
  }
});

Deno.test("matmul at the loop budget: the default's sum stops at 65535 terms; refused", async () => {
  const { gpu, cache } = await gpuOnce();
  if (gpu.loopBudget === undefined) return; // no budget on this adapter
  const dev = gpu.device, inner = 70000;
  const a = storageBuffer(dev, new Float32Array(inner).fill(1));
  const b = storageBuffer(dev, new Float32Array(inner).fill(1));
  const c = storageBuffer(dev, 4);
  const call = { a, b, c, M: 1, N: 1, inner, trans: "nt" as const, params: DEFAULT_MATMUL };
  const sum = async (budget: number | undefined, n: number) => {
    const ctx = { gpu: { ...gpu, loopBudget: budget }, cache };
    submit(ctx, matmulDispatches(ctx, { ...call, inner: n }));
    return new Float32Array(await readback(dev, c, 4))[0];
  };
  strictEqual(await sum(gpu.loopBudget, 65000), 65000);
  strictEqual(await sum(undefined, inner), 65535); // the driver's silent cut
  throws(
    () => matmulDispatches({ gpu, cache }, call),
    /inner = 70000 takes up to 70001 loop passes per invocation, past this adapter's loop budget 65535/,
  );
  for (const x of [a, b, c]) x.destroy();
});
