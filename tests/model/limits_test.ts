/**
 * Pre-flight limits (runtime/model/limits.ts): the planned buffers of a training graph match what
 * `ModelGraph` really allocates (largest buffer exact, total within a factor), a shape over one
 * storage binding is refused with the largest value of each field that fits, and every refusal of
 * the commands (huge seq_len, context, --max-new-tokens, an unwritable --out) is one line in well
 * under a second of work after start-up.
 */
import { ok as assert, strictEqual, throws } from "node:assert";
import { join } from "node:path";
import { DEFAULT_CONFIG, type ModelConfig } from "../../runtime/model/config.ts";
import { checkBuffers, graphBuffers, maxDecodePositions } from "../../runtime/model/limits.ts";
import { ModelGraph } from "../../runtime/model/graph.ts";
import { ModelParams } from "../../runtime/model/params.ts";
import { phd } from "../../dsl/presets.ts";
import { gpuOnce } from "../fixtures/attention.ts";
import { assertUsageError, runScript } from "../fixtures/cli.ts";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { initParamsF32 } from "../fixtures/model.ts";

const MODEL: ModelConfig = {
  ...DEFAULT_CONFIG.model,
  hidden_size: 16,
  intermediate_size: 24,
  num_attention_heads: 2,
  num_key_value_heads: 1,
};

Deno.test("planned buffers match a real training graph's allocations", async () => {
  const ctx = await gpuOnce(), dev = ctx.gpu.device;
  const sizes: number[] = [];
  const create = dev.createBuffer.bind(dev);
  dev.createBuffer = (d: GPUBufferDescriptor) => (sizes.push(d.size), create(d));
  const spec = phd({ K: 2 }), shape = { batch: 3, L: 20, K: 2, training: true };
  let graph: ModelGraph | undefined, params: ModelParams | undefined;
  try {
    params = new ModelParams(ctx, MODEL);
    graph = new ModelGraph(ctx, params, spec, { ...shape, training: true });
  } finally {
    dev.createBuffer = create;
  }
  const planned = graphBuffers(MODEL, shape);
  const largest = Math.max(...planned.map((b) => b.values * 4));
  strictEqual(largest, Math.max(...sizes), "largest buffer");
  const total = planned.reduce((a, b) => a + b.values * 4 * b.count, 0);
  const real = sizes.reduce((a, b) => a + b, 0);
  // The estimate bounds memory, so it may not fall short; nor run wildly over.
  assert(total >= 0.8 * real && total <= 4 * real, `planned ${total} vs allocated ${real}`);
  graph.destroy();
  params.destroy();
});

Deno.test("a shape over one storage binding is refused with what fits", () => {
  const gpu = {
    adapterName: "test",
    limits: { maxStorageBufferBindingSize: 1 << 20, maxBufferSize: 1 << 30 },
  };
  const shape = { batch: 4, L: 4096, K: 2, training: true };
  throws(
    () => checkBuffers(gpu, graphBuffers(MODEL, shape)),
    (e: Error) =>
      /^logits .* needs 16.0 MiB in one storage binding but adapter "test" allows 1.0 MiB/
        .test(e.message) &&
      /use train.seq_len <= 256 or model.vocab_size <= 16$/.test(e.message) &&
      !e.message.includes("\n"),
  );
  throws(
    () => checkBuffers(gpu, graphBuffers(MODEL, { ...shape, L: 8 }), { memoryBytes: 1000 }),
    /needs about .* of buffers but this machine has/,
  );
  checkBuffers(gpu, graphBuffers(MODEL, { ...shape, L: 8 }), { memoryBytes: 1 << 30 });
  // The KV cache bound: PHD keeps one original per position, so positions ~ slots.
  const most = maxDecodePositions(gpu, MODEL, phd({ K: 2 }), 1);
  assert(most > 30_000 && most <= 32_768, `${most}`);
});

/** Runs a command and checks it refused in one line, timing it. */
async function refusedFast(args: string[], pattern: RegExp) {
  const t0 = performance.now();
  const r = await runScript(args[0], ...args.slice(1));
  const ms = performance.now() - t0;
  assertUsageError(r, pattern, args.join(" "));
  return ms;
}

Deno.test("commands refuse what cannot fit, and unwritable outputs, before any work", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = join(dir, "huge.json");
  await Deno.writeTextFile(cfg, JSON.stringify({ train: { seq_len: 10_000_000 } }));
  const ckpt = join(dir, "m.safetensors");
  const params = initParamsF32(MODEL, 1);
  await Deno.writeFile(
    ckpt,
    encodeCheckpoint({ model: MODEL, phd: DEFAULT_CONFIG.phd, tokenizer: "bytes", params }),
  );
  await Deno.writeTextFile(join(dir, "t.txt"), "a short text");
  const base = await refusedFast(["cli/train.ts", "--steps", "0"], /--steps/); // start-up only
  const times = [
    await refusedFast(["cli/train.ts", "--config", cfg, "--out", join(dir, "o")], /seq_len <= \d+/),
    await refusedFast(["cli/train.ts", "--out", dir], /cannot write checkpoint .* directory/),
    await refusedFast(
      ["cli/train.ts", "--out", "/proc/nope/model.safetensors"],
      /cannot write checkpoint/,
    ),
    await refusedFast(
      ["cli/eval.ts", "--ckpt", ckpt, "--text-file", join(dir, "t.txt"), "--context", "99999999"],
      /--context <= \d+/,
    ),
    await refusedFast(
      ["cli/generate.ts", "--ckpt", ckpt, "--prompt", "hi", "--max-new-tokens", "999999999"],
      /--max-new-tokens <= \d+/,
    ),
    await refusedFast(
      ["cli/generate.ts", "--ckpt", ckpt, "--prompt", "", "--max-new-tokens", "2"],
      /prompt is empty/,
    ),
  ];
  console.log(
    `refusals: start-up ${base.toFixed(0)} ms, past it ${
      times.map((t) => (t - base).toFixed(0)).join(", ")
    } ms`,
  );
  // Beyond process start-up (module loading, which `base` measures), a refusal costs at most an
  // adapter request. Generous for a loaded 2-core machine shared by other jobs.
  for (const ms of times) assert(ms - base < 3000, `refusal took ${ms - base} ms past start-up`);
  await Deno.remove(dir, { recursive: true });
});
