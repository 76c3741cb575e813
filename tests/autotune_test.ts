/**
 * The autotuner's rules on scripted candidates (the real kernels are tuned in bench/ and by
 * `deno task autotune`): default first, pruning, disqualification, median timing, warm-cache hits
 * that measure nothing, and rejection of malformed caches.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  Autotuner,
  emptyCache,
  hashText,
  isTuneCache,
  median,
  shapeBucket,
  type TuneTask,
} from "../runtime/autotune.ts";

const adapter = { vendor: "test", architecture: "", description: "scripted" };

function task(times: Record<string, number[]>): TuneTask<{ id: string }> {
  const calls: Record<string, number> = {};
  return {
    kernel: "matmul",
    bucket: shapeBucket({ m: 100, n: 64, k: 3 }),
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
    const bad of [null, 3, { version: 2, entries: {} }, {
      version: 1,
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
});
