/**
 * The seven parts of `deno task gpu-check` (issue 27), in order of value, each driving the
 * project's own commands as subprocesses (offline/gpu_check.ts runs them within the budget):
 *
 * 1. adapter: name, backend, limits, features, class (offline/adapter_probe.ts, per backend);
 * 2. correctness: the kernel, model and inference tests against their float64 references, gpu
 *    class; on an NVIDIA GPU the f16 and subgroup paths required;
 * 3. matmul: GFLOP/s of the demo's and a large model's shapes, default and tuned, as a share of
 *    the fp32 peak (`deno task bench matmul`);
 * 4. attention: forward+backward of vanilla, PHD, PHD-SWA, PHD-CSWA at K = 2, 3, 4 up to L =
 *    16384, and the ratio to vanilla (`deno task bench attention`, one process per L);
 * 5. model: tokens/s, MFU and peak memory of a 25 M-parameter PHD-CSWA K = 2 model through the
 *    real trainer (`deno task train`, twice, so the steady rate leaves out pipeline compilation);
 * 6. Fig. 9 of the paper: prefill time vs K against vanilla, decode latency vs K up to 64
 *    (`deno task bench inference --K`);
 * 7. torch: where python3 has torch >= 2.5 with CUDA, every preset's exported FlexAttention module
 *    through compiled flex_attention against the dense path (offline/flex_check.py), and the same
 *    model's training tokens/s in PyTorch (`python3 -m phd_torch train`, fp32 and bf16) beside
 *    this runtime's.
 *
 * On a CPU rasterizer every part runs its quick form, so the whole check fits 9 minutes there.
 */
import { join } from "node:path";
import type { AdapterProbe } from "./adapter_probe.ts";
import {
  lastJson,
  type Part,
  type PartContext,
  type PartReport,
  ROOT,
  type StepResult,
  whyFailed,
} from "./gpu_check.ts";

/** The paper's model family at a size worth a GPU: 25.4 M parameters with the byte vocabulary. */
const LARGE_MODEL = {
  hidden_size: 512,
  intermediate_size: 1536,
  num_hidden_layers: 8,
  num_attention_heads: 8,
  num_key_value_heads: 4,
};

/**
 * The training configs of parts 5 and 7 (the phd section is the default one: PHD-CSWA K = 2,
 * W 16, C 32): on a GPU the large model on 8 windows of 1024 positions; on a CPU rasterizer the
 * demo's model. No periodic validation or checkpoint; the learning rate of a model this size.
 */
function trainConfig(quick: boolean) {
  const train = { eval_every: 0, save_every: 0, eval_batches: 2, warmup: 2, lr: 3e-4 };
  return quick
    ? { train: { ...train, batch_size: 8, seq_len: 128 } }
    : { model: LARGE_MODEL, train: { ...train, batch_size: 8, seq_len: 1024 } };
}

const fmt = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits);
const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "-" : `${(100 * x).toFixed(1)}%`;
const mib = (b: number) => `${(b / (1 << 20)).toFixed(0)} MiB`;

/** A markdown table. */
function table(head: string[], rows: (string | number)[][]): string[] {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ];
}

/** Writes a JSON file into the run's work folder and returns its path. */
async function workFile(ctx: PartContext, name: string, value: unknown): Promise<string> {
  const path = join(ctx.shared.work, name);
  await Deno.writeTextFile(path, JSON.stringify(value));
  return path;
}

/** The figures of a step's last JSON line, or a status saying why there are none. */
function parsed<T>(r: StepResult): T | undefined {
  return r.ok ? lastJson<T>(r.stdout) : undefined;
}

// ---------------------------------------------------------------------------------------------
// 1. Adapter

const BACKENDS = ["vulkan", "gl"] as const;

/** What identifies an adapter across probes (its info, features and limits). */
const identity = (p: AdapterProbe) =>
  JSON.stringify([p.info, p.adapter_features, p.adapter_limits]);

/** Whether the adapter is NVIDIA's (PCI vendor 0x10de or the name). */
export function isNvidia(p: AdapterProbe): boolean {
  return /nvidia/i.test(`${p.name} ${p.info.vendor}`) || Number(p.info.vendor) === 0x10de;
}

const KEY_LIMITS = [
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
];

const adapter: Part = {
  name: "adapter",
  title: "Adapter",
  share: 3,
  always: true,
  async run(ctx) {
    const probe = (backend?: string) =>
      ctx.step({
        name: backend ? `DENO_WEBGPU_BACKEND=${backend}` : "default adapter",
        argv: ["deno", "run", "-A", "offline/adapter_probe.ts"],
        env: backend ? { DENO_WEBGPU_BACKEND: backend } : undefined,
      });
    const first = await probe();
    const found = parsed<AdapterProbe>(first);
    if (!found) {
      return { status: first.status, note: whyFailed(first), results: null, markdown: [] };
    }
    const others: Record<string, AdapterProbe | { error: string }> = {};
    for (const b of BACKENDS) {
      const r = await probe(b);
      others[b] = parsed<AdapterProbe>(r) ?? { error: whyFailed(r) };
    }
    const backend = Deno.env.get("DENO_WEBGPU_BACKEND") ||
      BACKENDS.find((b) =>
        "info" in others[b] && identity(others[b] as AdapterProbe) === identity(found)
      ) ||
      "unknown";
    ctx.shared.adapter = found;
    ctx.shared.quick = found.own_class === "cpu";
    ctx.shared.nvidia = isNvidia(found);
    const sg = found.device.subgroups;
    const yes = (b: boolean) => b ? "yes" : "no";
    const markdown = [
      ...table(["", ""], [
        ["name", found.name],
        ["info", Object.entries(found.info).map(([k, v]) => `${k} ${v}`).join(", ")],
        ["backend", backend],
        [
          "class",
          `${found.own_class} (${
            ctx.shared.quick ? "CPU rasterizer: quick forms" : "a GPU: full forms"
          }); ` +
          "part 2 runs the gpu class",
        ],
        ["shader-f16", yes(found.device.f16)],
        [
          "subgroups",
          sg
            ? `yes, size ${sg.min_size}..${sg.max_size ?? "?"}${
              sg.enable_directive ? " (WGSL needs `enable subgroups;`)" : ""
            }`
            : "no",
        ],
        ["timestamp-query", yes(found.device.timestamps)],
        [
          "fp32 peak",
          found.peak_tflops === null
            ? "none known (runtime/gpu/peak.ts; PHD_PEAK_TFLOPS states one): no MFU"
            : `${found.peak_tflops} TFLOP/s (${found.peak_source})`,
        ],
        ["limits", KEY_LIMITS.map((k) => `${k} ${found.adapter_limits[k]}`).join(", ")],
        ["adapter features", found.adapter_features.join(", ")],
        ...BACKENDS.map((b) => {
          const o = others[b];
          return [`with ${b}`, "error" in o ? o.error : `${o.name} (${o.own_class} class)`];
        }),
      ]),
    ];
    return {
      status: "ok",
      note: `${found.name}, ${backend}, ${found.own_class} class`,
      results: { adapter: found, backend, backends: others },
      markdown,
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 2. Correctness

const TEST_PATHS = ["tests/kernels", "tests/model", "tests/infer"];

/**
 * Counts and names from `deno test`'s output (NO_COLOR), complete or cut short. A step's line
 * names its test, then the step (`test ... step ... ok`): steps count apart, failed ones are named.
 */
export function parseDenoTest(stdout: string) {
  const failed: string[] = [], ignored: string[] = [];
  let passed = 0, steps = 0;
  for (const line of stdout.split("\n")) {
    const m = /^(\S+) => (.*) \.\.\. (ok|FAILED|ignored)\b/.exec(line);
    if (!m) continue;
    const step = m[2].includes(" ... ");
    if (step) steps++;
    if (m[3] === "ok") passed += step ? 0 : 1;
    else (m[3] === "FAILED" ? failed : ignored).push(`${m[1]}: ${m[2]}`);
  }
  const summary = /^(ok|FAILED) \| .*$/m.exec(stdout)?.[0] ?? null;
  return { passed, steps, failed, ignored, summary };
}

const correctness: Part = {
  name: "correctness",
  title: "Correctness on the adapter (gpu class)",
  share: 27,
  async run(ctx) {
    const required = ctx.shared.nvidia ? ["PHD_REQUIRE_F16", "PHD_REQUIRE_SUBGROUPS"] : [];
    const env: Record<string, string> = { PHD_ADAPTER_CLASS: "gpu", NO_COLOR: "1" };
    for (const r of required) env[r] = "1";
    const r = await ctx.step({
      name: "kernel, model and inference tests",
      argv: ["deno", "test", "-A", "--parallel", ...TEST_PATHS],
      env,
    });
    const t = parseDenoTest(r.stdout);
    const counts = `${t.passed} passed (and ${t.steps} steps), ${t.failed.length} failed, ` +
      `${t.ignored.length} ignored`;
    return {
      note: r.ok ? counts : `${r.status}: ${counts}${t.failed[0] ? `; first: ${t.failed[0]}` : ""}`,
      results: { ...t, env, paths: TEST_PATHS },
      markdown: [
        `\`${r.command}\`: ${counts}${
          t.summary ? ` (${t.summary})` : ""
        }. Every kernel, gradient ` +
        "and the whole model against float64 references, with the gpu class's kernels " +
        `(PHD_ADAPTER_CLASS=gpu)${
          required.length ? `; an NVIDIA GPU, so ${required.join(" and ")} (not skippable)` : ""
        }.`,
        ...(t.failed.length ? ["", "Failed:", "", ...t.failed.map((n) => `- ${n}`)] : []),
        ...(t.ignored.length ? ["", "Ignored:", "", ...t.ignored.map((n) => `- ${n}`)] : []),
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 3. Matmul

interface MatmulRow {
  shape: string;
  uses: number;
  default_gflops: number;
  tuned_gflops: number;
  other_default_gflops: number;
  tfjs_gflops: number;
  default_ms: number;
  tuned_ms: number;
  variant: string;
  default_variant: string;
}

/** 2·M·N·inner of a bench row's `"nt MxNxinner"`. */
const shapeFlops = (shape: string) =>
  2 * shape.split(" ")[1].split("x").map(Number).reduce((a, b) => a * b, 1);

const matmul: Part = {
  name: "matmul",
  title: "Matmul GFLOP/s",
  share: 12,
  async run(ctx) {
    const quick = ctx.shared.quick, peak = ctx.shared.adapter?.peak_tflops ?? null;
    const large = { model: LARGE_MODEL, train: { batch_size: 1, seq_len: 1024 } };
    const models: [string, string[]][] = quick
      ? [["demo model", ["--rounds", "2", "--no-tune"]]]
      : [
        ["demo model", ["--rounds", "5"]],
        [
          "25 M model, one window of 1024 positions",
          ["--rounds", "3", "--config", await workFile(ctx, "matmul_large.json", large)],
        ],
      ];
    const results = [], markdown: string[] = [];
    for (const [name, flags] of models) {
      const r = await ctx.step({
        name,
        argv: ["deno", "task", "bench", "matmul", "--json", "--no-train", ...flags],
      });
      const j = parsed<{ rows: MatmulRow[]; adapter_class: string }>(r);
      if (!j) continue;
      const share = (g: number) => peak === null ? null : g / (peak * 1e3);
      const rows = j.rows.map((x) => ({
        ...x,
        default_share_of_peak: share(x.default_gflops),
        tuned_share_of_peak: share(x.tuned_gflops),
      }));
      const flops = rows.reduce((t, x) => t + x.uses * shapeFlops(x.shape), 0);
      const step = (k: "default_ms" | "tuned_ms") =>
        flops / rows.reduce((t, x) => t + x.uses * x[k], 0) / 1e6;
      const whole = { default_gflops: step("default_ms"), tuned_gflops: step("tuned_ms") };
      results.push({ model: name, command: r.command, rows, step: whole });
      markdown.push(
        `${name} (\`${r.command}\`, ${j.adapter_class} class defaults):`,
        "",
        ...table(
          [
            "shape",
            "uses",
            "default GFLOP/s",
            "tuned GFLOP/s",
            "tfjs GFLOP/s",
            "default % of peak",
            "tuned % of peak",
            "tuned variant",
          ],
          [
            ...rows.map((x) => [
              x.shape,
              x.uses,
              fmt(x.default_gflops),
              fmt(x.tuned_gflops),
              fmt(x.tfjs_gflops),
              pct(x.default_share_of_peak),
              pct(x.tuned_share_of_peak),
              x.variant,
            ]),
            [
              "one training step's matmuls",
              "",
              fmt(whole.default_gflops),
              fmt(whole.tuned_gflops),
              "",
              pct(share(whole.default_gflops)),
              pct(share(whole.tuned_gflops)),
              "",
            ],
          ],
        ),
        "",
      );
    }
    if (quick) markdown.push("Quick form: no tuning (`--no-tune`: tuned is the class's default).");
    markdown.push(
      peak === null
        ? "No fp32 peak is known for this adapter, so no share of peak."
        : `Peak: ${peak} TFLOP/s fp32 (${ctx.shared.adapter?.peak_source}): WGSL has no tensor ` +
          "cores, so fp32 is the ceiling a WebGPU kernel can reach.",
    );
    return { results, markdown };
  },
};

// ---------------------------------------------------------------------------------------------
// 4. Attention

interface AttentionRow {
  variant: string;
  impl: string;
  layout: string;
  K: number;
  L: number;
  pass: string;
  median_ms: number;
  kept_fraction: number;
}

const attention: Part = {
  name: "attention",
  title: "Attention forward+backward vs vanilla",
  share: 15,
  async run(ctx) {
    // A CPU rasterizer compiles each attention pipeline for seconds: PHD-CSWA at K = 2 only.
    const runs = ctx.shared.quick
      ? [["128", ["--quick", "--K", "2", "--reps", "1", "--max-dense-tokens", "1"]]]
      : [["1024", ["--K", "2,3,4"]], ["4096", ["--K", "2,3,4"]], ["16384", [
        "--K",
        "2,3,4",
        "--reps",
        "2",
      ]]];
    const rows: AttentionRow[] = [];
    const lines: string[] = [];
    for (const [L, flags] of runs as [string, string[]][]) {
      const r = await ctx.step({
        name: `L = ${L}`,
        argv: ["deno", "task", "bench", "attention", "--json", "--L", L, ...flags],
      });
      rows.push(...parsed<{ results: AttentionRow[] }>(r)?.results ?? []);
      if (!r.ok) lines.push(`L = ${L}: ${r.status}: ${whyFailed(r)}`);
    }
    // The fused kernel in the layout training uses (grouped; K = 1 has one layout).
    const fused = rows.filter((x) => x.impl === "fused" && (x.K === 1 || x.layout === "grouped"));
    const ms = (q: Partial<AttentionRow>) =>
      fused.find((x) => Object.entries(q).every(([k, v]) => x[k as keyof AttentionRow] === v))
        ?.median_ms;
    const table_ = fused.filter((x) => x.pass === "forward").map((x) => {
      const fb = ms({ variant: x.variant, K: x.K, L: x.L, pass: "forward+backward" });
      const van = ms({ variant: "vanilla", L: x.L, pass: "forward+backward" });
      return {
        variant: x.variant,
        K: x.K,
        L: x.L,
        kept_fraction: x.kept_fraction,
        forward_ms: x.median_ms,
        forward_backward_ms: fb ?? null,
        vs_vanilla: fb !== undefined && van ? fb / van : null,
      };
    });
    return {
      results: { fused: table_, rows },
      markdown: [
        "Fused kernels, grouped layout, one head of d = 64 (`deno task bench attention`, medians); " +
        "× vanilla is forward+backward over vanilla causal attention at the same L." +
        (ctx.shared.quick ? " Quick form: PHD-CSWA at K = 2, L = 128, one run." : ""),
        "",
        ...table(
          ["L", "variant", "K", "kept tiles", "fwd ms", "fwd+bwd ms", "× vanilla (fwd+bwd)"],
          table_.map((x) => [
            x.L,
            x.variant,
            x.K,
            pct(x.kept_fraction),
            fmt(x.forward_ms, 2),
            fmt(x.forward_backward_ms, 2),
            fmt(x.vs_vanilla, 2),
          ]),
        ),
        ...(lines.length ? ["", ...lines] : []),
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 5. A model worth a GPU

/** The parameters in a safetensors file (F32 checkpoint: the sum of its tensors' elements). */
export async function safetensorsElements(path: string): Promise<number> {
  const f = await Deno.open(path);
  try {
    const len = new Uint8Array(8);
    await f.read(len);
    const n = Number(new DataView(len.buffer).getBigUint64(0, true));
    const head = new Uint8Array(n);
    for (let got = 0; got < n;) got += (await f.read(head.subarray(got))) ?? n;
    const header = JSON.parse(new TextDecoder().decode(head)) as Record<
      string,
      { shape?: number[] }
    >;
    return Object.entries(header).filter(([k]) => k !== "__metadata__")
      .reduce((t, [, v]) => t + (v.shape ?? []).reduce((a, b) => a * b, 1), 0);
  } finally {
    f.close();
  }
}

interface TrainingReport {
  steps: number;
  train_seconds: number;
  tokens_per_s: number;
  mfu: number | null;
  peak_tflops: number | null;
  matmul_share: number;
  matmul_gflops: number;
  spec: string;
  adapter: string;
}

const model: Part = {
  name: "model",
  title: "Training a PHD-CSWA K = 2 model worth a GPU",
  share: 13,
  async run(ctx) {
    const quick = ctx.shared.quick, cfg = trainConfig(quick);
    const config = await workFile(ctx, "train.json", cfg);
    const [a, b] = quick ? [1, 3] : [3, 13];
    const train = async (steps: number) => {
      const out = join(ctx.shared.work, `model-${steps}.safetensors`);
      const r = await ctx.step({
        name: `${steps} steps`,
        argv: [
          "deno",
          "task",
          "train",
          "--config",
          config,
          "--steps",
          `${steps}`,
          "--json",
          "--quiet",
          "--out",
          out,
        ],
        sampleMemory: steps === b,
      });
      const params = r.ok ? await safetensorsElements(out) : undefined;
      await Deno.remove(out).catch(() => {});
      await Deno.remove(out.replace(/\.safetensors$/, ".state.safetensors")).catch(() => {});
      return { r, report: parsed<TrainingReport>(r), params };
    };
    const first = await train(a), second = await train(b);
    const ra = first.report, rb = second.report;
    if (!ra || !rb) return { results: { config: cfg }, markdown: [] };
    const tokens = cfg.train.batch_size * cfg.train.seq_len;
    // Both runs compile the same pipelines in their first step: the difference is steady steps.
    const stepS = (rb.train_seconds - ra.train_seconds) / (b - a);
    const flopsPerStep = rb.matmul_share * rb.matmul_gflops * 1e9 * rb.train_seconds / rb.steps;
    const steady = {
      step_ms: stepS * 1e3,
      tokens_per_s: tokens / stepS,
      model_tflops: flopsPerStep / stepS / 1e12,
      mfu: rb.peak_tflops ? flopsPerStep / stepS / (rb.peak_tflops * 1e12) : null,
    };
    if (stepS > 0) ctx.shared.figures.train_tokens_per_s = steady.tokens_per_s;
    const memory = second.r.peak_memory;
    const results = {
      config: cfg,
      spec: rb.spec,
      params: second.params,
      tokens_per_step: tokens,
      flops_per_step: flopsPerStep,
      steady: stepS > 0 ? steady : null,
      whole_run: { steps: rb.steps, tokens_per_s: rb.tokens_per_s, mfu: rb.mfu },
      peak_memory: memory ?? null,
    };
    return {
      note: stepS > 0
        ? `${fmt(steady.tokens_per_s, 0)} tokens/s, MFU ${pct(steady.mfu)}`
        : "the longer run was not slower: no steady rate",
      results,
      markdown: [
        ...table(["", ""], [
          ["model", `${((second.params ?? 0) / 1e6).toFixed(2)} M parameters, ${rb.spec}`],
          [
            "batch",
            `${cfg.train.batch_size} x ${cfg.train.seq_len} positions (${tokens} tokens a step)`,
          ],
          ["step (steady)", `${fmt(steady.step_ms, 1)} ms`],
          ["tokens/s (steady)", fmt(steady.tokens_per_s, 0)],
          ["model TFLOP/s", fmt(steady.model_tflops, 3)],
          [
            "MFU",
            rb.peak_tflops
              ? `${pct(steady.mfu)} of ${rb.peak_tflops} TFLOP/s fp32`
              : "no known peak",
          ],
          [
            "whole run",
            `${rb.steps} steps, ${
              fmt(rb.tokens_per_s, 0)
            } tokens/s with the first step's compilation`,
          ],
          ["peak memory", memory ? `${mib(memory.bytes)} (${memory.source})` : "-"],
        ]),
        "",
        `\`deno task train --config <this config> --steps N --json\` (the real trainer and job, ` +
        `the Brown corpus) for N = ${a} and ${b}: steady figures are the difference of the two ` +
        "runs, so pipeline compilation is left out" +
        (quick ? "; quick form: the demo's model" : "") + ". Config: `" + JSON.stringify(cfg) +
        "`.",
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 6. Fig. 9

interface PrefillRow {
  variant: string;
  K: number;
  P: number;
  prefill_ms: number;
}

interface DecodeRow {
  variant: string;
  K: number;
  batch: number;
  ms_per_token: number;
}

/** A figure of one variant at one K, and its ratio to vanilla's. */
interface Point {
  variant: string;
  K: number;
  ms: number;
  vs_vanilla: number | null;
}

/** The points of `rows` (`ms` read by `key`) relative to the vanilla row, new ones only. */
function points<T extends { variant: string; K: number }>(
  rows: T[],
  key: (x: T) => number,
  into: Point[],
): void {
  const van = rows.find((x) => x.variant === "vanilla");
  for (const x of rows) {
    if (into.some((y) => y.variant === x.variant && y.K === x.K)) continue;
    into.push({
      variant: x.variant,
      K: x.K,
      ms: key(x),
      vs_vanilla: van ? key(x) / key(van) : null,
    });
  }
}

const fig9: Part = {
  name: "fig9",
  title: "The paper's Fig. 9: prefill and decode vs K",
  share: 12,
  async run(ctx) {
    // The paper's K range first, then beyond it: a K the kernels refuse costs only its own run.
    const runs = ctx.shared.quick ? [["K <= 4", ["--quick"]]] : [
      ["K <= 16", ["--K", "2,4,8,16"]],
      ["K = 32, 64", ["--K", "32,64"]],
    ];
    const prefill: Point[] = [], decode: Point[] = [], notes: string[] = [];
    let prompt: number | undefined;
    for (const [name, flags] of runs as [string, string[]][]) {
      const r = await ctx.step({
        name,
        argv: ["deno", "task", "bench", "inference", "--json", ...flags],
      });
      const j = parsed<{ prefill: PrefillRow[]; decode: DecodeRow[] }>(r);
      if (!j) {
        notes.push(`${name}: ${r.status}: ${whyFailed(r)}`);
        continue;
      }
      // The K sweep's prompt: the one at which a K other than the length sweep's 4 ran.
      prompt = j.prefill.find((x) => x.K !== 1 && x.K !== 4)?.P ??
        Math.max(...j.prefill.map((x) => x.P));
      points(j.prefill.filter((x) => x.P === prompt), (x) => x.prefill_ms, prefill);
      points(j.decode.filter((x) => x.batch === 1), (x) => x.ms_per_token, decode);
    }
    const Ks = [...new Set(prefill.map((x) => x.K))].filter((k) => k > 1).sort((a, b) => a - b);
    const cell = (rows: Point[], variant: string, K: number) => {
      const x = rows.find((y) => y.variant === variant && y.K === K);
      return x ? `${fmt(x.ms, 1)} (×${fmt(x.vs_vanilla, 2)})` : "-";
    };
    const variants = ["phd", "phd-swa", "phd-cswa"];
    const maxK = Math.max(0, ...decode.map((x) => x.K));
    return {
      results: { prompt, prefill, decode },
      markdown: [
        `Prefill of a ${prompt}-token prompt and decode latency per token at a full cache, ms ` +
        "(× vanilla), from `deno task bench inference` (1 layer, hidden 32: the costs of " +
        "attention and of the cache). Paper (Fig. 9): PHD-CSWA prefill ×1.08 and PHD-SWA ×72.9 " +
        "at K = 16; decode +17% at K = 256.",
        "",
        ...table(
          ["K", ...variants.map((v) => `${v} prefill`), ...variants.map((v) => `${v} decode`)],
          Ks.map((K) => [
            K,
            ...variants.map((v) => cell(prefill, v, K)),
            ...variants.map((v) => cell(decode, v, K)),
          ]),
        ),
        "",
        "K: the DSL takes K <= 256 and the tile classes (training and attention kernels) K <= 30; " +
        `prefill and decode ran up to K = ${maxK} here${ctx.shared.quick ? " (quick form)" : ""}.`,
        ...notes,
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// 7. The PyTorch peer

/** The interpreter: PHD_PYTHON, else python3 on PATH (the node's own). */
const python = () => Deno.env.get("PHD_PYTHON") || "python3";

const PROBE = "import json, torch; c = torch.cuda.is_available(); print(json.dumps({'torch': " +
  "torch.__version__, 'cuda': c, 'device': torch.cuda.get_device_name(0) if c else None}))";

/** Why the peer cannot run with this torch (undefined: it can). */
export function torchRefusal(t: { torch: string; cuda: boolean }): string | undefined {
  const [major, minor] = t.torch.split(/[.+]/).map(Number);
  if (major < 2 || (major === 2 && minor < 5)) {
    return `torch ${t.torch} has no flex_attention (needs >= 2.5)`;
  }
  if (!t.cuda) return `torch ${t.torch} sees no CUDA device`;
  return undefined;
}

interface FlexLine {
  module: string;
  K?: number;
  L?: number;
  out_err?: number;
  grad_err?: number;
  ok?: boolean;
  error?: string;
}

interface TorchTrain {
  step_ms: number[];
  tokens_per_s: number;
}

const torch: Part = {
  name: "torch",
  title: "PyTorch on the same GPU",
  share: 18,
  async run(ctx): Promise<PartReport> {
    const py = python();
    const probe = await ctx.step({ name: "torch", argv: [py, "-c", PROBE] });
    const t = parsed<{ torch: string; cuda: boolean; device: string | null }>(probe);
    const why = probe.exit_code === 127
      ? `no ${py} on PATH (PHD_PYTHON names another)`
      : t
      ? torchRefusal(t)
      : `${py} has no torch (${whyFailed(probe)})`;
    if (why) {
      return {
        status: `skipped: ${why}`,
        note: "",
        results: { torch: t ?? null },
        markdown: [why],
      };
    }
    const env = { PYTHONPATH: join(ROOT, "python") };
    const work = ctx.shared.work, markdown: string[] = [];

    // Every preset, exported in the grouped layout, through compiled flex_attention vs dense.
    const presets = parsed<{ spec: string }[]>(
      await ctx.step({ name: "presets", argv: ["deno", "task", "presets", "--json"] }),
    )?.filter((p) => !p.spec.includes("/")).map((p) => p.spec) ?? [];
    const modules: string[] = [];
    for (const p of presets) {
      const out = join(work, `${p.replaceAll("-", "_")}.py`);
      const r = await ctx.step({
        name: `export ${p}`,
        argv: ["deno", "task", "export", p, "--to", "flex", "--layout", "grouped", "--out", out],
      });
      if (r.ok) modules.push(out);
    }
    const flex = await ctx.step({
      name: "flex_attention vs dense",
      argv: [py, "offline/flex_check.py", "512", ...modules],
      env,
    });
    const checks = flex.stdout.trim().split("\n").filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as FlexLine);
    markdown.push(
      `${t!.device}, torch ${t!.torch}. Each preset's module (\`deno task export P --to flex ` +
        "--layout grouped`) through `torch.compile(flex_attention)` with its block_mask against the dense " +
        "path of python/phd_torch, L = 512, fp32 with TF32 off; errors relative to the largest value.",
      "",
      ...table(
        ["module", "K", "output error", "gradient error", "equal"],
        checks.map((c) =>
          c.error
            ? [c.module, "-", c.error, "", "no"]
            : [c.module, c.K ?? "-", fmt(c.out_err, 7), fmt(c.grad_err, 7), c.ok ? "yes" : "no"]
        ),
      ),
      "",
    );

    // The same model's training in PyTorch, fp32 and bf16 autocast, beside this runtime's.
    const cfg = trainConfig(ctx.shared.quick);
    const config = await workFile(ctx, "train.json", cfg);
    const tokens = join(work, "tokens.safetensors"), mask = join(work, "model_mask.py");
    await ctx.step({
      name: "token file",
      argv: ["deno", "task", "tokenize", "--data", "docs", "--data", "README.md", "--out", tokens],
    });
    await ctx.step({
      name: "model's mask",
      argv: [
        "deno",
        "task",
        "export",
        "phd-cswa",
        "--K",
        "2",
        "--to",
        "flex",
        "--layout",
        "grouped",
        "--out",
        mask,
      ],
    });
    const ours = ctx.shared.figures.train_tokens_per_s;
    const runs = [];
    for (const dtype of ["fp32", "bf16"]) {
      const r = await ctx.step({
        name: `train ${dtype}`,
        argv: [
          py,
          "-m",
          "phd_torch",
          "train",
          "--mask",
          mask,
          "--config",
          config,
          "--tokens",
          tokens,
          "--steps",
          "12",
          "--device",
          "cuda",
          "--dtype",
          dtype,
          "--json",
          "--out",
          join(work, `torch-${dtype}.safetensors`),
        ],
        env,
      });
      const j = parsed<TorchTrain>(r);
      if (!j) continue;
      // The first steps compile flex_attention (and warm cuBLAS): the median of the rest.
      const steady = j.step_ms.slice(4).sort((x, y) => x - y);
      const ms = steady[steady.length >> 1];
      const tps = cfg.train.batch_size * cfg.train.seq_len / (ms / 1e3);
      runs.push({ dtype, step_ms: ms, tokens_per_s: tps, vs_webgpu: ours ? tps / ours : null });
    }
    markdown.push(
      ...table(
        ["engine", "step ms", "tokens/s", "× this runtime"],
        [
          ["this runtime (WGSL, fp32, part 5)", "-", fmt(ours, 0), "1"],
          ...runs.map((
            x,
          ) => [`PyTorch ${x.dtype}`, fmt(x.step_ms), fmt(x.tokens_per_s, 0), fmt(x.vs_webgpu, 2)]),
        ],
      ),
      "",
      "The same config (part 5), `python3 -m phd_torch train --steps 12` with flex_attention; the " +
        "median step after the first four (compilation). WGSL cannot use tensor cores: PyTorch fp32 " +
        "(TF32 off, PyTorch's default) is the like-for-like peer, bf16 autocast runs on tensor cores.",
    );
    return {
      note: `${checks.filter((c) => c.ok).length}/${presets.length} presets equal; ` +
        runs.map((x) => `${x.dtype} ×${fmt(x.vs_webgpu, 2)}`).join(", "),
      results: { torch: t, flex: checks, training: runs, webgpu_tokens_per_s: ours ?? null },
      markdown,
    };
  },
};

/** The parts, in order of value. */
export const GPU_CHECK_PARTS: readonly Part[] = [
  adapter,
  correctness,
  matmul,
  attention,
  model,
  fig9,
  torch,
];
