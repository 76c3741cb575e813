/**
 * The autotuner's rules on scripted candidates (default first, pruning, disqualification, median
 * timing, warm-cache hits that measure nothing, rejection of malformed caches), then on real
 * matmul tasks: a wrong kernel and a failing build are disqualified, the cache file round-trips
 * atomically and a warm run measures nothing, a corrupt file falls back with one warning, the
 * runtime's chooser falls back to the default for other shapes, adapters, adapter classes and
 * Deno versions, tuning as the gpu class keys its own space, the training step's shapes are the ones its model graph records, and `deno task autotune` says when
 * it measured nothing. Then a tiny training-attention tuning run:
 * a wrong candidate and a failed build are disqualified, an oversized one is pruned, a warm cache
 * measures nothing, the chooser returns the stored variant (and a model graph builds it).
 */
import { deepStrictEqual as assertEquals, fail, ok } from "node:assert/strict";
import { join } from "node:path";
import {
  type AdapterId,
  adapterIdOf,
  Autotuner,
  type Candidate,
  emptyCache,
  hashText,
  isTuneCache,
  shapeBucket,
  TUNE_CACHE_VERSION,
  type TuneTask,
} from "../../runtime/tune/engine.ts";
import { median } from "../../runtime/measure/stats.ts";
import { timeDispatches } from "../../runtime/measure/timing.ts";
import {
  configMatmulShapes,
  matmulCandidates,
  matmulKeyParts,
  matmulTask,
  tunedMatmulChooser,
  tunedMatmulParams,
} from "../../runtime/tune/matmul.ts";
import {
  attentionBucket,
  attentionCandidates,
  attentionTask,
  type AttentionTaskOptions,
  attentionVariantName,
  defaultAttentionVariant,
  isAttentionVariant,
  tunedAttentionChooser,
  tunedAttentionParams,
} from "../../runtime/tune/attention.ts";
import { type AdapterClass, deviceLimits } from "../../runtime/gpu/device.ts";
import { type Config, configSpec, DEFAULT_CONFIG } from "../../runtime/model/config.ts";
import {
  type AttentionShape,
  type AttentionVariant,
  FlashAttention,
} from "../../runtime/kernels/attention.ts";
import { ModelGraph } from "../../runtime/model/graph.ts";
import { ModelParams } from "../../runtime/model/params.ts";
import { loadTuneCache, saveTuneCache } from "../../runtime/host/tune_cache.ts";
import {
  DEFAULT_MATMUL,
  defaultMatmul,
  type MatmulBlocking,
  matmulDispatches,
  matmulVariantName,
} from "../../runtime/kernels/matmul.ts";
import { storageBuffer } from "../../runtime/gpu/resources.ts";
import { destroyDispatches } from "../../runtime/gpu/kernel.ts";
import { gpuAsClass, gpuOnce } from "../fixtures/attention.ts";
import { runScript } from "../fixtures/cli.ts";
import { TINY_SECTION } from "../fixtures/model.ts";

const adapter: AdapterId = {
  vendor: "test",
  architecture: "",
  description: "scripted",
  adapterClass: "cpu",
};

/** The scripted adapter as the class of a device's context (the tasks key with its class). */
function scriptedOn(ctx: { gpu: { adapterClass: AdapterClass } }): AdapterId {
  return { ...adapter, adapterClass: ctx.gpu.adapterClass };
}

/** A tuner on the scripted adapter of `ctx`'s class that times each candidate once, unwarmed. */
function onceTuner(ctx: { gpu: { adapterClass: AdapterClass } }, cache = emptyCache()): Autotuner {
  return new Autotuner(cache, { adapter: scriptedOn(ctx), deno: DENO, warmup: 0, runs: 1 });
}

function task(times: Record<string, number[]>): TuneTask<{ id: string }> {
  const calls: Record<string, number> = {};
  return {
    kernel: "matmul",
    bucket: shapeBucket({ m: 100, n: 64, inner: 3 }),
    sourceHash: hashText("fn main() {}"),
    candidates: ["default", "fast", "too-big", "wrong", "broken"].map((id) => ({
      name: id,
      params: { id },
    })),
    prune: (
      p,
    ) => (p.id === "too-big" ? "needs 64 KiB of workgroup memory, adapter has 32 KiB" : undefined),
    check: (p) => {
      if (p.id === "broken") throw new Error("shader compilation failed\nline 2");
      return Promise.resolve(p.id !== "wrong");
    },
    time: (p) => {
      const i = calls[p.id] = (calls[p.id] ?? 0) + 1;
      const t = times[p.id] ?? [1];
      return Promise.resolve(t[(i - 1) % t.length]);
    },
  };
}

Deno.test("tuning picks the fastest correct candidate and records why others were skipped", async () => {
  const tuner = new Autotuner(emptyCache(), { adapter, deno: "2.9.6", warmup: 1, runs: 3 });
  const e = await tuner.tune(task({ default: [9, 10, 11, 10], fast: [99, 4, 5, 3], wrong: [0.1] }));
  assertEquals(e.variant, "fast");
  assertEquals(e.default_ms, 10); // median of the timed runs after one warm-up
  assertEquals(e.best_ms, 4);
  assertEquals(e.trials.map((t) => t.skipped ?? t.ms), [
    10,
    4,
    "pruned: needs 64 KiB of workgroup memory, adapter has 32 KiB",
    "disqualified: wrong numbers",
    "disqualified: shader compilation failed",
  ]);
  assertEquals(tuner.measured, 2);
});

Deno.test("a warm cache measures nothing; other adapters and shapes fall back to the default", async () => {
  const cache = emptyCache();
  await new Autotuner(cache, { adapter, deno: "2.9.6", warmup: 0, runs: 1 }).tune(
    task({ fast: [0.5] }),
  );
  const warm = new Autotuner(JSON.parse(JSON.stringify(cache)), { adapter, deno: "2.9.6" });
  const t = task({});
  assertEquals((await warm.tune(t)).variant, "fast");
  assertEquals(warm.measured, 0);
  assertEquals(warm.choose(t).id, "fast");
  const other = new Autotuner(cache, {
    adapter: { ...adapter, description: "other" },
    deno: "2.9.6",
  });
  assertEquals(other.choose(t).id, "default");
  assertEquals(warm.choose({ ...t, bucket: "m1_n1" }).id, "default");
});

Deno.test("malformed caches are recognised; buckets and hashes are stable", () => {
  ok(isTuneCache(emptyCache()));
  for (
    const bad of [null, 3, { version: TUNE_CACHE_VERSION - 1, entries: {} }, {
      version: TUNE_CACHE_VERSION + 1,
      entries: {},
    }, {
      version: TUNE_CACHE_VERSION,
      entries: { a: { variant: 1 } },
    }]
  ) {
    ok(!isTuneCache(bad));
  }
  assertEquals(shapeBucket({ n: 3, m: 1000 }), "m1024_n4");
  assertEquals(hashText("abc"), hashText("abc"));
  ok(hashText("abc") !== hashText("abd"));
  assertEquals(median([3, 1, 2]), 2);
  assertEquals(median([4, 1, 2, 3]), 2.5);
  assertEquals(median([4, 1, 2, 3], { even: "upper" }), 3);
  assertEquals(median([3, 1, 2], { even: "upper" }), 2);
});

// ---- the matmul tasks on the device, the cache file and the runtime's chooser ----

const DENO = Deno.version.deno;

/** Small, fast-compiling candidates (the kernel space is covered by matmul_variants_test.ts). */
const SMALL: Candidate<MatmulBlocking>[] = ([
  DEFAULT_MATMUL,
  { tm: 4, tn: 4, wgx: 8, wgy: 1 },
  { tm: 4, tn: 8, wgx: 8, wgy: 1, vec: 4 },
  { tm: 4, tn: 4, wgx: 8, wgy: 1, splitK: 2 },
] as MatmulBlocking[]).map((params) => ({ name: matmulVariantName(params), params }));

Deno.test("matmul tuning on the device: wrong numbers and failed builds are disqualified", async () => {
  const ctx = await gpuOnce();
  const shape = { trans: "tn" as const, M: 40, N: 24, inner: 260 };
  const wrong = matmulVariantName(SMALL[1].params), broken = matmulVariantName(SMALL[2].params);
  const task = matmulTask(ctx, shape, {
    candidates: SMALL,
    // A kernel with the wrong scale, and one whose build throws: both must be caught.
    build: (c, call) => {
      const name = matmulVariantName(call.params!);
      if (name === broken) throw new Error("shader compilation failed: injected\nmore");
      return matmulDispatches(c, name === wrong ? { ...call, alpha: 1.001 } : call);
    },
  });
  const tuner = onceTuner(ctx);
  const e = await tuner.tune(task);
  task.destroy();
  const by = Object.fromEntries(e.trials.map((t) => [t.name, t.skipped ?? t.ms]));
  assertEquals(by[wrong], "disqualified: wrong numbers");
  assertEquals(by[broken], "disqualified: shader compilation failed: injected");
  ok(typeof by[SMALL[0].name] === "number" && typeof by[SMALL[3].name] === "number");
  ok([SMALL[0].name, SMALL[3].name].includes(e.variant));
  assertEquals(tuner.measured, 2);
});

Deno.test("timing reads GPU timestamp queries when the device has them", async () => {
  const ctx = await gpuOnce(), dev = ctx.gpu.device;
  // `deno task test` sets this on lavapipe (root or CI), whose adapter has timestamp-query.
  if (Deno.env.get("PHD_REQUIRE_TIMESTAMPS") && !ctx.gpu.timestamps) {
    fail(`PHD_REQUIRE_TIMESTAMPS is set but "${ctx.gpu.adapterName}" gave no timestamp-query`);
  }
  const create = dev.createQuerySet.bind(dev);
  let sets = 0;
  dev.createQuerySet = (d: GPUQuerySetDescriptor) => (sets++, create(d));
  const [a, b, c] = [64 * 64, 64 * 64, 64 * 64].map((n) => storageBuffer(dev, n * 4));
  const ds = matmulDispatches(ctx, { a, b, c, M: 64, N: 64, inner: 64, trans: "nt" });
  try {
    const ms = await timeDispatches(ctx, ds, 4);
    ok(Number.isFinite(ms) && ms > 0, `${ms} ms`);
    assertEquals(sets, ctx.gpu.timestamps ? 1 : 0);
  } finally {
    dev.createQuerySet = create;
    destroyDispatches(ds);
    for (const x of [a, b, c]) x.destroy();
  }
});

Deno.test("matmul tasks prune by shape (vec4 with inner % 4 != 0, short split-K)", async () => {
  const ctx = await gpuOnce();
  const task = matmulTask(ctx, { trans: "nt", M: 9, N: 7, inner: 30 }, { candidates: SMALL });
  const e = await onceTuner(ctx).tune(task);
  task.destroy();
  const skipped = e.trials.filter((t) => t.skipped).map((t) => t.skipped!.split(" (")[0]);
  assertEquals(skipped, [
    "pruned: vec4 nt needs multiples of 4",
    "pruned: split-K 2 leaves < 64 of inner = 30 per slice",
  ]);
});

Deno.test("cache file: warm runs measure nothing; the chooser falls back per shape, adapter and split-K", async () => {
  const ctx = await gpuOnce();
  const dir = await Deno.makeTempDir();
  const path = join(dir, "sub", "autotune.json");
  const shape = { trans: "nn" as const, M: 33, N: 20, inner: 300 };
  const cache = await loadTuneCache(path, () => fail("a missing cache is not a warning"));
  const task = matmulTask(ctx, shape, { candidates: SMALL });
  const cold = onceTuner(ctx, cache);
  const entry = await cold.tune(task);
  await saveTuneCache(cache, path);
  ok(cold.measured > 0);
  const warm = new Autotuner(await loadTuneCache(path), { adapter: scriptedOn(ctx), deno: DENO });
  assertEquals((await warm.tune(task)).variant, entry.variant);
  assertEquals(warm.measured, 0, "a warm cache does no measuring");
  task.destroy();
  // The chooser: the winner (split-K allowed), else the fastest one-dispatch trial.
  const loaded = await loadTuneCache(path);
  const o = { adapter: scriptedOn(ctx), deno: DENO, limits: deviceLimits(ctx.gpu.device) };
  const best = tunedMatmulParams(loaded, { ...o, allowSplitK: true }, shape);
  assertEquals(best && matmulVariantName(best), entry.variant);
  const onePass = tunedMatmulParams(loaded, o, shape)!;
  assertEquals(onePass.splitK ?? 1, 1);
  const fastestOnePass = entry.trials.filter((t) => t.ms !== undefined && !t.name.includes("sk"))
    .sort((a, b) => a.ms! - b.ms!)[0].name;
  assertEquals(matmulVariantName(onePass), fastestOnePass);
  const choose = tunedMatmulChooser(loaded, o);
  // Same bucket, but inner % 4 != 0: a vec4 winner must not be used; another bucket, another
  // adapter or another Deno: the default.
  const odd = choose({ ...shape, inner: 301 });
  ok(odd === undefined || (odd.vec ?? 1) === 1);
  assertEquals(choose({ ...shape, M: 2000 }), undefined);
  assertEquals(tunedMatmulChooser(loaded, { ...o, deno: "0.0.0" })(shape), undefined);
  assertEquals(
    tunedMatmulChooser(loaded, { ...o, adapter: { ...o.adapter, description: "x" } })(shape),
    undefined,
  );
  // Tuned as one adapter class, never used as the other (its space's source hash differs).
  const otherClass = ctx.gpu.adapterClass === "cpu" ? "gpu" : "cpu";
  assertEquals(
    tunedMatmulChooser(loaded, { ...o, adapter: { ...o.adapter, adapterClass: otherClass } })(
      shape,
    ),
    undefined,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tuning as the gpu class: its default first, its own key, never chosen as cpu", async () => {
  const ctx = await gpuAsClass("gpu"), limits = deviceLimits(ctx.gpu.device);
  const shape = { trans: "nt" as const, M: 64, N: 64, inner: 64 };
  // The gpu default and its scalar sibling (the kernels tests/kernels compiles already).
  const candidates = matmulCandidates({ adapterClass: "gpu", quick: true, shape, limits }).slice(
    0,
    2,
  );
  assertEquals(candidates[0].params, defaultMatmul("gpu", shape, limits));
  ok((candidates[0].params.bk ?? 0) > 0 && candidates[0].params.vec === 4);
  const task = matmulTask(ctx, shape, { candidates });
  ok(task.sourceHash !== matmulKeyParts(shape, "cpu").sourceHash);
  const cache = emptyCache(), on = scriptedOn(ctx);
  const entry = await new Autotuner(cache, { adapter: on, deno: DENO, warmup: 0, runs: 1 }).tune(
    task,
  );
  task.destroy();
  ok(entry.trials.every((t) => typeof t.ms === "number"), JSON.stringify(entry.trials));
  const o = { deno: DENO, limits };
  assertEquals(tunedMatmulParams(cache, { ...o, adapter: on }, shape), entry.params);
  assertEquals(
    tunedMatmulParams(cache, { ...o, adapter: { ...on, adapterClass: "cpu" } }, shape),
    undefined,
  );
});

Deno.test("a corrupt or stale cache file is ignored with one warning line", async () => {
  const dir = await Deno.makeTempDir();
  for (
    const [text, why] of [
      ["{ not json", "not valid JSON"],
      [JSON.stringify({ version: 0, entries: {} }), "stale format"],
      [
        JSON.stringify({ version: TUNE_CACHE_VERSION, entries: { k: { variant: 3 } } }),
        "stale format",
      ],
    ]
  ) {
    const path = join(dir, "autotune.json");
    await Deno.writeTextFile(path, text);
    const lines: string[] = [];
    const cache = await loadTuneCache(path, (l) => lines.push(l));
    assertEquals(cache, emptyCache());
    assertEquals(lines.length, 1);
    ok(lines[0].startsWith("warning: ") && lines[0].includes(path), lines[0]);
    ok(lines[0].includes(why.split(" ")[0]), lines[0]);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the training step's matmul shapes of the demo config, read from its graph", async () => {
  const uses = configMatmulShapes(await gpuOnce(), DEFAULT_CONFIG);
  assertEquals(uses.length, 15);
  // 2 layers x (7 forward + 14 backward) + LM head forward and its 2 backward products.
  assertEquals(uses.reduce((t, u) => t + u.count, 0), 2 * 21 + 3);
  assertEquals(uses.find((u) => u.what === "lm_head")?.M, 1024);
  ok(uses.some((u) => u.trans === "tn" && u.M === 192 && u.N === 64 && u.inner === 2048));
});

const autotuneCli = (args: string[]) => runScript("cli/autotune.ts", ...args);

Deno.test("deno task autotune: warm cache does no measuring (says so); bad input is one line", async () => {
  const ctx = await gpuOnce();
  const dir = await Deno.makeTempDir();
  const config = {
    model: TINY_SECTION,
    train: { batch_size: 2, seq_len: 8 },
  };
  const cfgPath = join(dir, "tiny.json"), cachePath = join(dir, "autotune.json");
  await Deno.writeTextFile(cfgPath, JSON.stringify(config));
  // Fill the cache for every shape of the tiny config (cheap candidates), then ask the CLI.
  const cache = emptyCache();
  const tuner = new Autotuner(cache, { adapter: adapterIdOf(ctx.gpu), deno: DENO, runs: 1 });
  const tiny: Config = {
    ...DEFAULT_CONFIG,
    model: { ...DEFAULT_CONFIG.model, ...config.model },
    train: { ...DEFAULT_CONFIG.train, ...config.train },
  };
  const shapes = configMatmulShapes(ctx, tiny);
  for (const s of shapes) {
    const t = matmulTask(ctx, s, { candidates: SMALL.slice(0, 2) });
    await tuner.tune(t);
    t.destroy();
  }
  // The training attention of the tiny config in train's layout (the default candidate only).
  const at = attentionTask(ctx, TINY_ATTENTION, { candidates: ATTENTION.slice(0, 1) });
  await tuner.tune(at);
  at.destroy();
  await saveTuneCache(cache, cachePath);
  const r = await autotuneCli(["--config", cfgPath, "--cache", cachePath]);
  assertEquals(r.code, 0, r.stderr);
  ok(r.stdout.includes("warm cache: nothing measured"), r.stdout);
  const j = await autotuneCli(["--config", cfgPath, "--cache", cachePath, "--json"]);
  const report = JSON.parse(j.stdout);
  assertEquals(report.measured_candidates, 0);
  assertEquals(report.rows.length, shapes.length + 1);
  const att = report.rows.find((x: { kernel: string }) => x.kernel === "attention");
  assertEquals(att.variant, ATTENTION[0].name);
  ok(att.default_ms > 0 && att.best_ms === att.default_ms, JSON.stringify(att));
  const bad = await autotuneCli(["--kernels", "softmax"]);
  assertEquals(bad.code, 1);
  assertEquals(bad.stderr.trim().split("\n").length, 1);
  ok(bad.stderr.startsWith("error: --kernels"), bad.stderr);
  const help = await autotuneCli(["--help"]);
  assertEquals(help.code, 0);
  ok(help.stdout.includes("--quick") && help.stdout.includes("--config"));
  ok(help.stdout.includes("--layout") && help.stdout.includes("matmul,attention"));
  await Deno.remove(dir, { recursive: true });
});

// ---- the training attention ----

/** The training attention of the tiny CLI config: d 8, 2 heads / 1 KV head, batch 2, L 8, K 2. */
const TINY_ATTENTION: AttentionShape = {
  spec: configSpec(DEFAULT_CONFIG.phd),
  headDim: 8,
  layout: "grouped",
  L: 8,
  batch: 2,
  heads: 2,
  kvHeads: 1,
};

const variant = (p: Partial<AttentionVariant>): Candidate<AttentionVariant> => {
  const params = { ...defaultAttentionVariant(8, "cpu"), ...p };
  return { name: attentionVariantName(params), params };
};

/**
 * Default, dense, one built wrong (dK zeroed after the backward), one whose build throws, and one
 * needing more workgroup memory than the test's limits allow. Only the first two compile.
 */
const ATTENTION = [
  variant({}),
  variant({ variant: "dense" }),
  variant({ blockQ: 2, blockK: 2 }),
  variant({ blockQ: 1, blockK: 1 }),
  variant({ tileQ: 64, tileK: 64, blockQ: 1, blockK: 1, staging: "workgroup" }),
];

Deno.test("attention variant space: default first, unique names, blocks dividing their tiles", () => {
  for (const adapterClass of ["cpu", "gpu"] as const) {
    for (const quick of [true, false]) {
      const cs = attentionCandidates(64, { adapterClass, quick });
      assertEquals(cs[0].params, defaultAttentionVariant(64, adapterClass));
      assertEquals(new Set(cs.map((c) => c.name)).size, cs.length);
      ok(cs.every((c) => isAttentionVariant(c.params)), JSON.stringify(cs));
    }
    const full = attentionCandidates(64, { adapterClass });
    ok(full.some((c) => c.params.staging === "workgroup"));
    ok(full.some((c) => c.params.variant === "dense"));
  }
  // The gpu class stages by default, tiles sized from the device's limits (WebGPU's 16 KiB:
  // 16 x 16 at d = 64; 48 KiB: 64 x 64); its quick space is mostly staged.
  assertEquals(defaultAttentionVariant(64, "gpu").staging, "workgroup");
  assertEquals(defaultAttentionVariant(64, "gpu").tileQ, 16);
  const big = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 };
  assertEquals(defaultAttentionVariant(64, "gpu", big).tileQ, 64);
  const gpuQuick = attentionCandidates(64, { adapterClass: "gpu", quick: true, limits: big });
  assertEquals(gpuQuick[0].params.tileQ, 64);
  ok(gpuQuick.filter((c) => c.params.staging === "workgroup").length > gpuQuick.length / 2);
  for (
    const bad of [null, { ...defaultAttentionVariant(8, "cpu"), blockQ: 3 }, {
      ...defaultAttentionVariant(8, "cpu"),
      staging: "shared",
    }, { ...defaultAttentionVariant(8, "cpu"), extra: 1 }]
  ) {
    ok(!isAttentionVariant(bad), JSON.stringify(bad));
  }
});

Deno.test("the attention check runs at the tuned shape: a variant wrong only there is disqualified", async () => {
  const ctx = await gpuOnce();
  const [def, , wrong] = ATTENTION;
  const tunedL = TINY_ATTENTION.L, d = TINY_ATTENTION.headDim;
  const qn = TINY_ATTENTION.batch * TINY_ATTENTION.heads * TINY_ATTENTION.spec.K * tunedL * d;
  /**
   * `wrong` is the default's kernels (nothing new to compile) with 4 values of o zeroed after the
   * forward pass at the tuned L only: in the first row of the first head, or the last row of the
   * last head. `broken: true` does the same to the default itself.
   */
  const inject =
    (at: "first" | "last", broken = false): AttentionTaskOptions["build"] => (c, spec, config) => {
      const fa = new FlashAttention(c.gpu, c.cache, spec, { ...config, ...def.params });
      const name = attentionVariantName(config as AttentionVariant);
      return {
        forward: (enc, io, run) => {
          fa.forward(enc, io, run);
          if (run.L === tunedL && name === (broken ? def.name : wrong.name)) {
            enc.clearBuffer(io.o, at === "first" ? 0 : (qn - d) * 4, 16);
          }
        },
        backward: (enc, io, run) => fa.backward(enc, io, run),
      };
    };
  // Float64 on the whole problem, then (referenceLimit 0) on the first and last head groups, and
  // every head against the default.
  for (
    const [referenceLimit, mode] of [[undefined, "float64"], [0, "float64 head groups"]] as const
  ) {
    for (const at of ["first", "last"] as const) {
      const task = (L: number, build = inject(at)) =>
        attentionTask(ctx, { ...TINY_ATTENTION, L }, {
          candidates: [def, wrong],
          referenceLimit,
          build,
        });
      // A check at a smaller shape than the tuned one would have let it through.
      const proxy = task(tunedL / 2);
      ok(await proxy.check(wrong.params), `${mode} ${at}: right at L = ${tunedL / 2}`);
      proxy.destroy();
      const t = task(tunedL);
      assertEquals(t.reference, mode);
      const entry = await onceTuner(ctx).tune(t);
      const by = Object.fromEntries(entry.trials.map((x) => [x.name, x.skipped ?? x.ms]));
      assertEquals(by[wrong.name], "disqualified: wrong numbers", `${mode} ${at}`);
      assertEquals(entry.variant, def.name);
      t.destroy();
      // A default wrong at the shape certifies nothing: every candidate is disqualified.
      const bad = task(tunedL, inject(at, true));
      await bad.check(def.params).then(
        (right) => ok(!right, `${mode} ${at}: the wrong default passed`),
        (e) => ok(/differs from float64 at this shape/.test(e.message), e.message),
      );
      bad.destroy();
    }
  }
});

Deno.test("attention tuning on the device: wrong, broken and oversized candidates; warm cache; chooser", async () => {
  const ctx = await gpuOnce();
  const [def, dense, wrong, broken, big] = ATTENTION.map((c) => c.name);
  const task = attentionTask(ctx, TINY_ATTENTION, {
    candidates: ATTENTION,
    limits: { ...deviceLimits(ctx.gpu.device), maxComputeWorkgroupStorageSize: 4096 },
    build: (c, spec, config) => {
      const name = attentionVariantName(config as AttentionVariant);
      if (name === broken) throw new Error("shader compilation failed: injected\nmore");
      if (name !== wrong) return new FlashAttention(c.gpu, c.cache, spec, config);
      // The default's kernels (nothing new to compile), with dK lost after the backward pass.
      const fa = new FlashAttention(c.gpu, c.cache, spec, { ...config, ...ATTENTION[0].params });
      return {
        forward: (enc, io, run) => fa.forward(enc, io, run),
        backward: (enc, io, run) => {
          fa.backward(enc, io, run);
          enc.clearBuffer(io.dk);
        },
      };
    },
  });
  assertEquals(task.reference, "float64");
  const dir = await Deno.makeTempDir();
  const path = join(dir, "autotune.json");
  const cache = emptyCache();
  const cold = onceTuner(ctx, cache);
  const entry = await cold.tune(task);
  await saveTuneCache(cache, path);
  const by = Object.fromEntries(entry.trials.map((t) => [t.name, t.skipped ?? t.ms]));
  assertEquals(by[wrong], "disqualified: wrong numbers");
  assertEquals(by[broken], "disqualified: shader compilation failed: injected");
  ok(String(by[big]).startsWith("pruned: ") && String(by[big]).includes("workgroup memory"));
  ok(typeof by[def] === "number" && typeof by[dense] === "number", JSON.stringify(by));
  ok([def, dense].includes(entry.variant));
  assertEquals(cold.measured, 2);
  // A warm cache measures nothing.
  const loaded = await loadTuneCache(path);
  const warm = new Autotuner(loaded, { adapter: scriptedOn(ctx), deno: DENO });
  assertEquals((await warm.tune(task)).variant, entry.variant);
  assertEquals(warm.measured, 0);
  task.destroy();
  // The chooser returns the stored variant for the problem's bucket, the default elsewhere.
  const o = { adapter: scriptedOn(ctx), deno: DENO, limits: deviceLimits(ctx.gpu.device) };
  const chosen = tunedAttentionParams(loaded, o, TINY_ATTENTION);
  assertEquals(chosen, entry.params);
  const choose = tunedAttentionChooser(loaded, o);
  assertEquals(choose({ ...TINY_ATTENTION, L: 7 }), entry.params); // same bucket (N 14 -> 16)
  assertEquals(choose({ ...TINY_ATTENTION, L: 64 }), undefined);
  assertEquals(choose({ ...TINY_ATTENTION, layout: "interleaved" }), undefined);
  assertEquals(tunedAttentionChooser(loaded, { ...o, deno: "0.0.0" })(TINY_ATTENTION), undefined);
  const otherClass = ctx.gpu.adapterClass === "cpu" ? "gpu" : "cpu";
  const asOther = { ...o, adapter: { ...o.adapter, adapterClass: otherClass } } as const;
  assertEquals(tunedAttentionChooser(loaded, asOther)(TINY_ATTENTION), undefined);
  assertEquals(
    tunedAttentionChooser(loaded, { ...o, adapter: { ...o.adapter, vendor: "other" } })(
      TINY_ATTENTION,
    ),
    undefined,
  );
  ok(attentionBucket({ ...TINY_ATTENTION, L: 7 }) === entry.bucket);
  // A model graph of that shape builds the chosen variant; explicit knobs win over the chooser.
  const model = { ...DEFAULT_CONFIG.model, ...TINY_SECTION };
  const params = new ModelParams(ctx, model);
  const graph = (attention: { layout: "grouped"; tileQ?: number }) =>
    new ModelGraph(ctx, params, TINY_ATTENTION.spec, {
      batch: 2,
      L: 8,
      attention,
      attentionChooser: choose,
    });
  const g = graph({ layout: "grouped" });
  const { tileQ, tileK, blockQ, blockK, staging, variant: v } = g.attention.params;
  assertEquals({ tileQ, tileK, blockQ, blockK, staging, variant: v }, entry.params);
  g.destroy();
  const explicit = graph({ layout: "grouped", tileQ: 16 });
  assertEquals(explicit.attention.params.tileQ, 16);
  assertEquals(explicit.attention.params.variant, "fused");
  explicit.destroy();
  params.destroy();
  await Deno.remove(dir, { recursive: true });
});
