/**
 * Cached inference (runtime/infer/) against a full recompute: for every variant (vanilla, PHD,
 * PHD-SWA, PHD-CSWA with small W and C so prompts and generations cross chunk boundaries,
 * flattened positions, SHD and PHD-CSWA with per-copy embedding tables, and DSL specs that are not
 * presets; the four variants also with the gpu class's decode tiling and matmuls, sized from the
 * device's limits), the logits of prefill + incremental
 * decoding equal the teacher-forced logits of the whole sequence through the training graph
 * (runtime/model/graph.ts: `recomputeOracle`) to float32 tolerance, for a batch of two prompts of
 * different lengths, with the cache growing from 2 slots and 3 decode steps per submit. The cache holds what the plan says:
 * PHD's `kv_cache_bytes` equals vanilla's exactly, SWA and CSWA add at most W-1 hidden keys, and
 * prefill computes exactly the compiler's prefill set. The GPU sampler: greedy is the argmax,
 * draws follow the temperature / top-k / top-p distribution, and a seed gives the same tokens
 * whatever the steps per submit.
 */
import { deepStrictEqual, ok as assert, strictEqual, throws } from "node:assert/strict";
import { causal, documentMask, phd, phdCswa, phdSwa, prefixLm, shd } from "../../dsl/presets.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import { prefillSet } from "../../compiler/analysis/prefill.ts";
import { planRetention } from "../../compiler/analysis/retention.ts";
import type { ModelConfig } from "../../runtime/model/config.ts";
import { Rng } from "../../runtime/data/rng.ts";
import { readback, storageBuffer } from "../../runtime/gpu/resources.ts";
import { submit } from "../../runtime/gpu/kernel.ts";
import { sample } from "../../runtime/kernels/sample.ts";
import { ModelGraph } from "../../runtime/model/graph.ts";
import { initParams, ModelParams } from "../../runtime/model/params.ts";
import { Decoder, type GenerationStats } from "../../runtime/infer/decoder.ts";
import { decodeTiling } from "../../runtime/infer/cached_attention.ts";
import { decodeMatmul } from "../../runtime/kernels/matmul.ts";
import { generate } from "../../runtime/infer/generate.ts";
import { KvCache } from "../../runtime/infer/kv_cache.ts";
import type { AdapterClass } from "../../runtime/gpu/device.ts";
import { gpuAsClass, gpuOnce } from "../fixtures/attention.ts";
import { randomTokens, tinyModel } from "../fixtures/model.ts";

const V = tinyModel().vocab_size;

async function modelParams(config: ModelConfig, o: { seed?: number; embedTables?: number } = {}) {
  const ctx = await gpuOnce();
  const params = new ModelParams(ctx, config, o);
  params.upload(initParams(config, { seed: o.seed ?? 3, std: 0.3, ...o }));
  return params;
}

/**
 * The GPU oracle: teacher-forced logits of the whole sequence (positions 0..L-1) recomputed
 * through the training graph, no cache.
 */
async function recomputeOracle(params: ModelParams, spec: AttentionSpec, seq: Uint32Array) {
  const ctx = await gpuOnce(), L = seq.length - 1;
  const g = new ModelGraph(ctx, params, spec, { batch: 1, L });
  g.setBatch(seq);
  const enc = ctx.gpu.device.createCommandEncoder();
  g.record(enc);
  ctx.gpu.device.queue.submit([enc.finish()]);
  const out = new Float32Array(await readback(ctx.gpu.device, g.logits, L * V * 4));
  g.destroy();
  return out;
}

const NEW = 9;
const PROMPTS = [11, 6]; // crosses chunks of C = 4, and a batch of unequal lengths

/**
 * Prefill + decoding with teacher forcing for two prompts in one batch; checks every step's
 * logits against the full recompute and returns the run's figures. `adapterClass`: the decoder
 * runs that class's kernel defaults (the recompute keeps the device's own).
 */
async function checkCached(
  spec: AttentionSpec,
  config = tinyModel(),
  o: { embedTables?: number; adapterClass?: AdapterClass } = {},
): Promise<GenerationStats> {
  const ctx = o.adapterClass ? await gpuAsClass(o.adapterClass) : await gpuOnce();
  const params = await modelParams(config, { embedTables: o.embedTables });
  const seqs = PROMPTS.map((P, b) => randomTokens(10 + b, P + NEW, V));
  const dec = new Decoder(ctx, params, spec, {
    batch: seqs.length,
    maxPositions: Math.max(...PROMPTS) + NEW - 1,
    stepsPerSubmit: 3,
    initialSlots: 2,
  });
  const chunks: number[][] = [[], []];
  for await (
    const c of dec.generate({
      prompts: seqs.map((s, b) => s.subarray(0, PROMPTS[b])),
      maxNewTokens: NEW,
      force: seqs.map((s, b) => s.subarray(PROMPTS[b])),
      keepLogits: true,
    })
  ) {
    c.tokens.forEach((t, b) => chunks[b].push(...t));
  }
  const got = await dec.logits(), stats = dec.stats;
  dec.destroy();
  for (const [b, seq] of seqs.entries()) {
    const P = PROMPTS[b];
    deepStrictEqual(chunks[b], Array.from(seq.subarray(P)), `${spec.name}: forced tokens`);
    const want = await recomputeOracle(params, spec, seq.subarray(0, P + NEW - 1 + 1));
    let err = 0, scale = 0;
    for (let i = 0; i < NEW; i++) {
      for (let v = 0; v < V; v++) {
        const x = got[(i * seqs.length + b) * V + v], y = want[(P - 1 + i) * V + v];
        err = Math.max(err, Math.abs(x - y));
        scale = Math.max(scale, Math.abs(y));
      }
    }
    assert(err <= 2e-5 * Math.max(1, scale), `${spec.name} seq ${b}: max error ${err} (${scale})`);
  }
  params.destroy();
  return stats;
}

const W = 3, C = 4, K = 3;
const VARIANTS: [string, AttentionSpec][] = [
  ["vanilla", causal({ K: 1 })],
  ["phd", phd({ K })],
  ["phd-swa", phdSwa({ K, W })],
  ["phd-cswa", phdCswa({ K, W, C })],
];
const results = new Map<string, GenerationStats>();

for (const [name, spec] of VARIANTS) {
  Deno.test(`${name}: prefill + cached decoding = full recompute (batch of 2, growth)`, async () => {
    results.set(name, await checkCached(spec));
  });
  // The gpu class's decode tiling and matmuls, sized from this device's limits.
  Deno.test(`${name}, the gpu class's kernels: cached decoding = full recompute`, async () => {
    await checkCached(spec, tinyModel(), { adapterClass: "gpu" });
  });
}

Deno.test("decode tiling and matmuls: cpu as always, gpu from the device's limits", () => {
  // cpu: up to 16 rows in 32 invocations (fewer at large d), whatever the device allows.
  const big = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 };
  for (const target of [undefined, { adapterClass: "cpu" as const, limits: big }]) {
    const t = (K: number, d: number) => {
      const { tileQ, split, ranges } = decodeTiling(K, d, target);
      return [tileQ, split, ranges.length];
    };
    deepStrictEqual(
      [t(1, 64), t(3, 16), t(64, 64), t(2, 256)],
      [
        [1, 32],
        [4, 8],
        [16, 2],
        [2, 4],
      ].map(([q, s], i) => [q, s, [1, 1, 4, 1][i]]),
    );
  }
  // gpu: up to 256 invocations, every row of a sequence in one tile, the split's merge within the
  // workgroup memory.
  for (
    const limits of [big, {
      maxComputeWorkgroupStorageSize: 16384,
      maxComputeInvocationsPerWorkgroup: 128,
    }]
  ) {
    for (const [K, d] of [[1, 16], [2, 64], [4, 256], [64, 64], [300, 16]]) {
      const { tileQ, split, ranges } = decodeTiling(K, d, { adapterClass: "gpu", limits });
      const lanes = tileQ * split, bytes = split > 1 ? lanes * (4 * d + 8) : 0;
      assert(
        lanes <= Math.min(256, limits.maxComputeInvocationsPerWorkgroup),
        `${K} ${d}: ${lanes}`,
      );
      assert(bytes <= limits.maxComputeWorkgroupStorageSize, `${K} ${d}: ${bytes} bytes`);
      assert(tileQ >= Math.min(K, lanes) && ranges.length === Math.ceil(K / tileQ), `${K} ${d}`);
      // The split is as large as both allow: twice as many lanes would break one of them.
      assert(
        lanes * 2 > Math.min(256, limits.maxComputeInvocationsPerWorkgroup) ||
          lanes * 2 * (4 * d + 8) > limits.maxComputeWorkgroupStorageSize,
        `${K} ${d}: ${lanes} lanes could double`,
      );
    }
  }
  deepStrictEqual(decodeTiling(2, 64, { adapterClass: "gpu", limits: big }).split, 64);
  // The products of one or two rows: cpu 8 columns in 32 invocations; gpu 64-256 of one column.
  const s = (M: number, N: number) => ({ trans: "nt" as const, M, N, inner: 64 });
  deepStrictEqual(decodeMatmul("cpu", s(1, 256)), { tm: 1, tn: 8, wgx: 32, wgy: 1 });
  deepStrictEqual(decodeMatmul("gpu", s(1, 16)), { tm: 1, tn: 1, wgx: 64, wgy: 1, vec: 4 });
  deepStrictEqual(decodeMatmul("gpu", s(2, 50000)), { tm: 2, tn: 1, wgx: 256, wgy: 1, vec: 4 });
  deepStrictEqual(decodeMatmul("gpu", { ...s(1, 200), inner: 66 }), {
    tm: 1,
    tn: 1,
    wgx: 256,
    wgy: 1,
  });
});

Deno.test("flattened positions, GQA and an untied head: cached = full recompute", async () => {
  const spec = { ...phdCswa({ K: 2, W: 2, C: 3 }), positions: "flattened" as const };
  await checkCached(
    spec,
    tinyModel({ num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false }),
  );
});

Deno.test("SHD with per-copy embeddings: cached = full recompute; every copy's KV is kept", async () => {
  const spec = shd({ K });
  const plan = planRetention(spec, { L: Math.max(...PROMPTS) + NEW - 1 });
  deepStrictEqual(plan.perCopy.map((c) => c.kind), Array(K).fill("all"));
  strictEqual(plan.formula, `${K}·L`);
  const s = await checkCached(spec, tinyModel(), { embedTables: K });
  strictEqual(s.kv.retainedTokens, K * PROMPTS.reduce((a, P) => a + P + NEW - 1, 0));
  strictEqual(s.kv.originals, PROMPTS.reduce((a, P) => a + P + NEW - 1, 0));
  // Every copy of every prompt position is prefilled (all are kept).
  deepStrictEqual(s.prefillRows, PROMPTS.map((P) => K * P));
});

Deno.test("per-copy embeddings with PHD-CSWA and an untied head: cached = full recompute", async () => {
  await checkCached(phdCswa({ K: 2, W, C }), tinyModel({ tie_word_embeddings: false }), {
    embedTables: 2,
  });
});

Deno.test("a per-copy model refuses a spec of another K", async () => {
  const ctx = await gpuOnce(), params = await modelParams(tinyModel(), { embedTables: 3 });
  throws(
    () => new Decoder(ctx, params, phd({ K: 2 }), { maxPositions: 8 }),
    /3 embedding tables \(per-copy\): the spec must have K = 3, not 2/,
  );
  params.destroy();
});

/** Every spec file of examples/masks/ (score modifier and document table among them). */
async function exampleMasks(): Promise<AttentionSpec[]> {
  const dir = new URL("../../examples/masks/", import.meta.url), out: AttentionSpec[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".ts")) out.push((await import(new URL(e.name, dir).href)).default);
  }
  return out.sort((a, b) => a.name < b.name ? -1 : 1);
}

Deno.test("DSL specs that are not presets get what their plan says (cached = recompute)", async () => {
  const specs = [...await exampleMasks(), documentMask({ docs: [0, 4, 9, 13] })];
  for (const spec of specs) {
    const s = await checkCached(spec);
    // The cache holds what the retention plan says: per sequence, the most keys the plan keeps
    // between two of its positions, and prefill computes exactly the prefill set.
    const want = s.kv.positions.reduce((sum, n) => {
      const plan = planRetention(spec, { L: n });
      return sum + Math.max(...plan.cachedAfter.subarray(0, n));
    }, 0);
    strictEqual(s.kv.retainedTokens, want, `${spec.name}: retained keys`);
    const plan = planRetention(spec, { L: Math.max(...PROMPTS) + NEW - 1 });
    const rows = PROMPTS.map((P) => prefillSet(spec, { P, retention: plan, causal: true }).count);
    deepStrictEqual(s.prefillRows, rows, `${spec.name}: prefill rows`);
  }
});

Deno.test("KV cache: PHD equals vanilla exactly; SWA and CSWA add at most W-1 hidden keys", () => {
  const vanilla = results.get("vanilla")!.kv, p = results.get("phd")!.kv;
  assert(vanilla && p, "the variant tests ran first");
  strictEqual(p.bytes, vanilla.bytes);
  strictEqual(p.originals, vanilla.originals);
  strictEqual(p.hiddenWindow, 0);
  const seqs = PROMPTS.length;
  for (const name of ["phd-swa", "phd-cswa"]) {
    const kv = results.get(name)!.kv;
    strictEqual(kv.originals, vanilla.originals, name);
    assert(kv.hiddenWindow > 0 && kv.hiddenWindow <= seqs * (W - 1), `${name}: ${kv.hiddenWindow}`);
    assert(kv.bytes - vanilla.bytes <= seqs * (W - 1) * kv.bytesPerToken, name);
  }
  // Every sequence cached each position it decoded: prompt + NEW - 1.
  deepStrictEqual(vanilla.positions, PROMPTS.map((P) => P + NEW - 1));
});

Deno.test("prefill computes exactly the compiler's prefill set", () => {
  for (const [name, spec] of VARIANTS) {
    const s = results.get(name)!;
    const plan = planRetention(spec, { L: Math.max(...PROMPTS) + NEW - 1 });
    const want = PROMPTS.map((P) => prefillSet(spec, { P, retention: plan, causal: true }).count);
    deepStrictEqual(s.prefillRows, want, name);
  }
  // PHD and CSWA prefill about P rows; SWA all K·P.
  const rows = (n: string) => results.get(n)!.prefillRows[0];
  strictEqual(rows("phd"), PROMPTS[0] + K - 1);
  strictEqual(rows("phd-swa"), K * PROMPTS[0]);
  assert(rows("phd-cswa") < rows("phd-swa"));
});

/** Draws `n` tokens from one row of logits with the GPU sampler (one workgroup per draw). */
async function draws(logits: Float32Array, n: number, o: Parameters<typeof sample>[2]) {
  const ctx = await gpuOnce(), dev = ctx.gpu.device;
  const rows = new Float32Array(n * logits.length);
  for (let r = 0; r < n; r++) rows.set(logits, r * logits.length);
  const bufs = {
    logits: storageBuffer(dev, rows),
    steps: storageBuffer(dev, new Int32Array(n)),
    forced: storageBuffer(dev, n * 4),
    next: storageBuffer(dev, n * 4),
    out: storageBuffer(dev, n * 4),
  };
  const d = sample(ctx, bufs, o);
  submit(ctx, [d]);
  const out = new Uint32Array(await readback(dev, bufs.out, n * 4));
  for (const b of [...Object.values(bufs), ...d.owned]) b.destroy();
  return out;
}

/** Host reference of the sampler's distribution (ties at a threshold all kept). */
function expected(logits: Float32Array, t: number, topK: number, topP: number): number[] {
  const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a]);
  const kth = topK > 0 ? logits[order[Math.min(topK, order.length) - 1]] : -Infinity;
  const m = logits[order[0]];
  const w = Array.from(logits, (x) => (x >= kth ? Math.exp((x - m) / t) : 0));
  const total = w.reduce((a, b) => a + b, 0);
  let cut = -Infinity, acc = 0;
  for (const i of order) {
    if (w[i] === 0) break;
    acc += w[i];
    cut = logits[i];
    if (acc >= topP * total) break;
  }
  const kept = w.map((x, i) => (logits[i] >= cut ? x : 0));
  const s = kept.reduce((a, b) => a + b, 0);
  return kept.map((x) => x / s);
}

Deno.test("GPU sampler: greedy is the argmax; draws follow temperature, top-k and top-p", async () => {
  const r = new Rng(9), Vs = 300; // more ids than invocations: strided scans and chunks
  const logits = Float32Array.from({ length: Vs }, () => 3 * r.normal());
  logits[17] = logits[250] = Math.max(...logits) + 0.5; // a tie: greedy takes the lower id
  const base = { rows: 1, seq0: 0, vocab: Vs, maxNew: 1, outBase: 0 };
  deepStrictEqual([...await draws(logits, 4, { ...base, rows: 4, mode: "greedy" })], [
    17,
    17,
    17,
    17,
  ]);
  const n = 4000;
  for (const [t, topK, topP] of [[1, 0, 1], [0.7, 5, 1], [1.5, 0, 0.6], [1, 12, 0.8]]) {
    const got = await draws(logits, n, {
      ...base,
      rows: n,
      mode: "sample",
      temperature: t,
      topK,
      topP,
      seed: 5,
    });
    const want = expected(logits, t, topK, topP), freq = new Array(Vs).fill(0);
    for (const id of got) freq[id]++;
    for (let i = 0; i < Vs; i++) {
      if (want[i] === 0) strictEqual(freq[i], 0, `t=${t} k=${topK} p=${topP}: id ${i} not kept`);
      const sd = Math.sqrt(n * want[i] * (1 - want[i]));
      assert(
        Math.abs(freq[i] - n * want[i]) <= 5 * sd + 3,
        `t=${t} k=${topK} p=${topP}: id ${i} drawn ${freq[i]} times, expected ${n * want[i]}`,
      );
    }
  }
});

Deno.test("seeded sampling is reproducible whatever the steps per submit; greedy = argmax", async () => {
  const ctx = await gpuOnce(),
    params = await modelParams(tinyModel(), { seed: 4 }),
    spec = phdCswa({ K, W, C });
  const prompts = [randomTokens(20, 7, V), randomTokens(21, 4, V)];
  const run = async (stepsPerSubmit: number, sampling: object) =>
    (await generate(ctx, params, spec, { prompts, maxNewTokens: 12, stepsPerSubmit, sampling }))
      .tokens;
  const sampling = { temperature: 1.2, topK: 10, topP: 0.9, seed: 7 };
  const a = await run(16, sampling), b = await run(5, sampling);
  deepStrictEqual(a, b);
  assert(new Set(a.flat()).size > 3, "sampling draws varied tokens");
  const other = await run(16, { ...sampling, seed: 8 });
  assert(JSON.stringify(other) !== JSON.stringify(a), "another seed draws other tokens");
  // Greedy: every token is the argmax of the logits it was drawn from.
  const dec = new Decoder(ctx, params, spec, { batch: 2, maxPositions: 7 + 12 - 1 });
  const toks: number[][] = [[], []];
  for await (const c of dec.generate({ prompts, maxNewTokens: 12, keepLogits: true })) {
    c.tokens.forEach((t, s) => toks[s].push(...t));
  }
  const lg = await dec.logits();
  for (let i = 0; i < 12; i++) {
    for (let s = 0; s < 2; s++) {
      const row = lg.subarray((i * 2 + s) * V, (i * 2 + s + 1) * V);
      strictEqual(toks[s][i], row.indexOf(Math.max(...row)), `step ${i} seq ${s}`);
    }
  }
  dec.destroy();
  params.destroy();
});

Deno.test("refusals: empty prompt, too many positions, a spec that sees past the prompt", async () => {
  const ctx = await gpuOnce(), params = await modelParams(tinyModel());
  const dec = new Decoder(ctx, params, phd({ K: 2 }), { maxPositions: 8 });
  const first = (req: Parameters<Decoder["generate"]>[0]) => dec.generate(req).next();
  await first({ prompts: [[]], maxNewTokens: 2 }).then(
    () => assert(false),
    (e) => assert(/empty/.test(e.message)),
  );
  await first({ prompts: [[1, 2, 3]], maxNewTokens: 7 }).then(
    () => assert(false),
    (e) => assert(/positions/.test(e.message), e.message),
  );
  dec.destroy();
  const d2 = new Decoder(ctx, params, prefixLm({ P: 5 }), { maxPositions: 10 });
  await d2.generate({ prompts: [[1, 2]], maxNewTokens: 3 }).next().then(
    () => assert(false),
    (e) => assert(/later position/.test(e.message), e.message),
  );
  d2.destroy();
  params.destroy();
});

Deno.test("KvCache per position: PHD drops hidden keys, SWA rolls W-1, CSWA empties per chunk", async () => {
  const ctx = await gpuOnce(), L = 24, Kc = 3, Wc = 4, Cc = 5;
  const hiddenAfter = (spec: AttentionSpec) => {
    const cache = new KvCache(ctx, spec, tinyModel(), { seqs: 1, horizon: L, initialSlots: 2 });
    const out: number[] = [];
    for (let n = 0; n < L - 1; n++) {
      cache.admit(0, n);
      const live = cache.live(0);
      strictEqual(live.filter((x) => x.copy === 0).length, n + 1, `${spec.name}: originals`);
      out.push(live.filter((x) => x.copy > 0).length);
    }
    cache.sync();
    cache.destroy();
    return out;
  };
  deepStrictEqual(hiddenAfter(phd({ K: Kc })), new Array(L - 1).fill(0));
  const swa = hiddenAfter(phdSwa({ K: Kc, W: Wc }));
  deepStrictEqual(swa.slice(2), new Array(L - 3).fill(Wc - 1));
  const cswa = hiddenAfter(phdCswa({ K: Kc, W: Wc, C: Cc }));
  for (const [n, h] of cswa.entries()) {
    // the window never reaches back into an earlier chunk; nothing survives a chunk's end
    const inChunk = (n % Cc + 1) * (Kc - 1);
    strictEqual(h, (n + 1) % Cc === 0 ? 0 : Math.min(Wc - 1, inChunk), `cswa after ${n}`);
  }
});
