/**
 * Pre-flight limits (runtime/model/limits.ts): the planned buffers of a training graph match what
 * `ModelGraph` really allocates (largest buffer exact, total within a factor), a shape over one
 * storage binding is refused with the largest value of each field that fits, and every refusal of
 * the commands (huge seq_len, context, --max-new-tokens, an unwritable --out; the cases of
 * `deno task bench refusals`, which times them) is one error line before any work.
 */
import { ok as assert, strictEqual, throws } from "node:assert";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { checkBuffers, graphBuffers, maxDecodePositions } from "../../runtime/model/limits.ts";
import { ModelGraph } from "../../runtime/model/graph.ts";
import { ModelParams } from "../../runtime/model/params.ts";
import { phd, phdCswa, phdSwa, slidingWindow } from "../../dsl/presets.ts";
import { planRetention } from "../../compiler/analysis/retention.ts";
import { gpuOnce } from "../fixtures/attention.ts";
import { assertUsageError, runScript } from "../fixtures/cli.ts";
import { refusalCases, TINY_MODEL } from "../fixtures/refusals.ts";

const MODEL = TINY_MODEL;

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
  const most = maxDecodePositions(gpu, MODEL, planRetention(phd({ K: 2 }), { L: 64 }), 1);
  assert(most > 30_000 && most <= 32_768, `${most}`);
});

Deno.test("commands refuse what cannot fit, and unwritable outputs, before any work", async () => {
  // One error line on stderr and nothing on stdout: no progress line, so no work was started. How
  // long each refusal takes is measured by `deno task bench refusals`, not asserted here.
  const dir = await Deno.makeTempDir();
  for (const c of await refusalCases(dir)) {
    assertUsageError(await runScript(c.args[0], ...c.args.slice(1)), c.pattern, c.what);
  }
  strictEqual(existsSync(join(dir, "o")), false, "no checkpoint written");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the decode bound from the retention plan: the cache at that many positions fits", () => {
  // 256 slots of one KV head of d = 8 (8 KiB per layer binding).
  const small = {
    adapterName: "small",
    limits: { maxStorageBufferBindingSize: 256 * 8 * 4, maxBufferSize: 1 << 30 },
  };
  const model = { ...MODEL, hidden_size: 16, num_attention_heads: 2, num_key_value_heads: 1 };
  for (const spec of [phd({ K: 2 }), phdSwa({ K: 2, W: 4 }), phdCswa({ K: 3, W: 4, C: 8 })]) {
    const most = maxDecodePositions(small, model, planRetention(spec, { L: 64 }), 1);
    const at = planRetention(spec, { L: most });
    assert(at.maxCachedTokens + spec.K <= 256, `${spec.name}: ${most} positions overflow`);
    assert(most >= 256 - 2 * spec.K - 4 * spec.K, `${spec.name}: ${most} is too cautious`);
  }
  // A window alone never grows: any length fits.
  const window = maxDecodePositions(
    small,
    model,
    planRetention(slidingWindow({ W: 8 }), { L: 64 }),
    1,
  );
  strictEqual(window, Number.MAX_SAFE_INTEGER);
});
