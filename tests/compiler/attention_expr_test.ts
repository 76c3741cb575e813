/**
 * The WGSL of mask and score expressions (compiler/codegen/wgsl_expr.ts) evaluated on the GPU over
 * a grid of (qc, qp, kc, kp) must equal dsl/eval.ts exactly (masks) or to f32 rounding (score
 * modifiers and their derivatives): random masks with floor division/modulo of negative values,
 * segment tables, and every preset.
 */
import { ok as assert, strictEqual } from "node:assert";
import { exp2, select, softcap, toFloat } from "../../dsl/expr.ts";
import { PRESETS } from "../../dsl/presets.ts";
import { evalBool, type Pair, specBindings } from "../../dsl/eval.ts";
import { type AttentionSpec, defineAttention } from "../../dsl/spec.ts";
import { exprCode, packSpecBindings } from "../../compiler/codegen/wgsl_expr.ts";
import {
  packUniforms,
  uniformLayout,
  uniformStruct,
} from "../../compiler/codegen/kernel_source.ts";
import { readback, storageBuffer, uniformBuffer } from "../../runtime/gpu/resources.ts";
import { evalScoreDual } from "../../reference/attention.ts";
import { gpuOnce, randomMaskSpec } from "../fixtures/attention.ts";

const L = 9;

/** Evaluates mask and score on every pair of a K x L grid: [allowed, score, dscore] per pair. */
async function evalOnGpu(spec: AttentionSpec, scores: Float32Array) {
  const { gpu } = await gpuOnce();
  const K = spec.K, n = (K * L) ** 2, e = exprCode(spec);
  const uniforms = uniformLayout([{ name: "n", type: "i32" }], spec);
  const code = `${uniformStruct(uniforms)}
@group(0) @binding(0) var<uniform> U: Uniforms;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> score_in: array<f32>;
${e.usesTables ? "@group(0) @binding(3) var<storage, read> mask_tables: array<i32>;" : ""}
${e.helpers}
${e.mask}
${e.scoreGrad}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = i32(id.x);
  if (i >= U.n) { return; }
  let kp = i % ${L};
  let kc = (i / ${L}) % ${K};
  let qp = (i / ${L * K}) % ${L};
  let qc = i / ${L * K * L};
  out[3 * i] = select(0.0, 1.0, mask_allowed(qc, qp, kc, kp));
  let g = score_mod_grad(score_in[i], qc, qp, kc, kp, i % 3);
  out[3 * i + 1] = g.x;
  out[3 * i + 2] = g.y;
}`;
  const { device } = gpu;
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  assert(errors.length === 0, `${spec.name}: ${errors.map((m) => m.message).join("; ")}\n${code}`);
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const packed = packSpecBindings(spec, specBindings(spec));
  const out = storageBuffer(device, 3 * n * 4, "out");
  const entries: GPUBindGroupEntry[] = [
    {
      binding: 0,
      resource: { buffer: uniformBuffer(device, packUniforms(uniforms, { n }, packed.fields)) },
    },
    { binding: 1, resource: { buffer: out } },
    { binding: 2, resource: { buffer: storageBuffer(device, scores) } },
  ];
  if (e.usesTables) {
    entries.push({ binding: 3, resource: { buffer: storageBuffer(device, packed.tables) } });
  }
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
  pass.dispatchWorkgroups(Math.ceil(n / 64));
  pass.end();
  device.queue.submit([enc.finish()]);
  return new Float32Array(await readback(device, out, 3 * n * 4));
}

async function checkSpec(spec: AttentionSpec) {
  const K = spec.K, n = (K * L) ** 2, b = specBindings(spec);
  const scores = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 41 - 20) * 0.37);
  const got = await evalOnGpu(spec, scores);
  let allowed = 0;
  for (let i = 0; i < n; i++) {
    const at: Pair = {
      kp: i % L,
      kc: Math.floor(i / L) % K,
      qp: Math.floor(i / (L * K)) % L,
      qc: Math.floor(i / (L * K * L)),
    };
    const want = evalBool(spec.mask, at, b) ? 1 : 0;
    allowed += want;
    strictEqual(got[3 * i], want, `${spec.name} (${spec.source}) at ${JSON.stringify(at)}`);
    if (spec.score) {
      const [v, dv] = evalScoreDual(spec.score, at, b, scores[i], i % 3);
      const tol = (x: number) => 1e-5 * Math.max(1, Math.abs(x));
      assert(
        Math.abs(got[3 * i + 1] - v) <= tol(v),
        `${spec.name} score ${got[3 * i + 1]} vs ${v}`,
      );
      assert(
        Math.abs(got[3 * i + 2] - dv) <= tol(dv),
        `${spec.name} dscore ${got[3 * i + 2]} vs ${dv}`,
      );
    }
  }
  return allowed / n;
}

Deno.test("presets: WGSL masks equal the reference on a grid", async () => {
  for (const make of Object.values(PRESETS)) await checkSpec(make());
});

Deno.test("random masks (floor div/mod of negatives, tables): WGSL equals the reference", async () => {
  let nontrivial = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const density = await checkSpec(
      randomMaskSpec(seed, 1 + (seed % 4), { table: seed % 5 === 0 }),
    );
    if (density > 0 && density < 1) nontrivial++;
  }
  assert(nontrivial >= 20, `only ${nontrivial} random masks were neither empty nor full`);
});

Deno.test("score modifiers: values and derivatives match float64", async () => {
  const specs = [
    defineAttention({
      name: "softcap",
      K: 2,
      mask: ({ q, k }) => k.pos.le(q.pos),
      score: ({ score }) => softcap(score, 5),
    }),
    defineAttention({
      name: "alibi_like",
      K: 3,
      params: { W: 4 },
      mask: ({ q, k }) => k.pos.le(q.pos),
      score: ({ score, head, q, k, p }) =>
        score.sub(exp2(head.mul(-1)).mul(toFloat(q.pos.sub(k.pos).mod(p.W)))).mul(
          select(k.copy.eq(0), 1.5, score.div(4)),
        ),
    }),
  ];
  for (const s of specs) await checkSpec(s);
});
