/**
 * The two engines of `deno task experiment` train the same runs: one arm (PHD-CSWA K = 2, a tiny
 * model, a delayed-copy task) at two seeds for 8 steps, on WebGPU and on PyTorch (two processes
 * side by side, `--jobs 2`), logs the same training loss at every step and reaches the same
 * validation losses, to 1e-5 relative. Why 1e-5: both start from the same float32 weights (the
 * step-0 checkpoint this runtime writes for the seed) and draw the same batches, then compute the
 * same float32 arithmetic in different orders (WGSL kernels against BLAS and torch's reductions),
 * so a loss differs by a few float32 ulps of its sums; docs/DESIGN.md 4.2 measured at most 2.3e-7
 * over 30 steps with no growth and fixes 1e-5 as the tolerance across engines. Greedy accuracy is
 * the same function on both (the torch run's checkpoint is scored on WebGPU); an argmax may flip
 * only where two logits tie within those ulps, so at most one line in 256 may differ. results.md
 * names the engine, its version, BLAS and device. Bad engine flags fail in one line, before any
 * training.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { assertUsageError, runScript } from "../fixtures/cli.ts";
import { torchTest } from "../fixtures/torch.ts";
import { tinyModel } from "../fixtures/model.ts";

const OPENBLAS = ".cache/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread";
const RTOL = 1e-5;

const SUITE = {
  name: "engines",
  seeds: 2,
  budget: { tokens: 256 },
  eval_points: 1,
  task: { name: "copy", length: 3, delay: 1 },
  base: {
    model: tinyModel({ vocab_size: 256, num_hidden_layers: 1, tie_word_embeddings: false }),
    train: { batch_size: 2, seq_len: 16, eval_batches: 2, log_every: 1, warmup: 2 },
  },
  arms: [{ name: "phd-cswa K=2", config: { phd: { K: 2, variant: "phd-cswa", W: 3, C: 8 } } }],
};

interface Run {
  seed: number;
  losses: [number, number][];
  curve: [number, number][];
  val_loss: number;
  accuracy: number;
}

function close(a: number, b: number, what: string) {
  assert(Math.abs(a - b) <= RTOL * Math.abs(b), `${what}: ${a} vs ${b}`);
}

torchTest("experiment: both engines give the same losses for one arm's first steps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engines_" });
  try {
    const suite = join(dir, "engines.json");
    await Deno.writeTextFile(suite, JSON.stringify(SUITE));
    // Debian's OpenBLAS when unpacked here (.ci and the experiments use it), else torch's BLAS.
    const blas = (await Deno.stat(OPENBLAS).catch(() => undefined))
      ? ["--torch-blas", OPENBLAS]
      : [];
    const [webgpu, torch] = await Promise.all([
      runScript("cli/experiment.ts", suite, "--out", join(dir, "webgpu"), "--json"),
      runScript(
        "cli/experiment.ts",
        ...[suite, "--out", join(dir, "torch"), "--engine", "torch", "--jobs", "2", ...blas],
        "--json",
      ),
    ]);
    assertEquals(webgpu.code, 0, webgpu.stderr);
    assertEquals(torch.code, 0, torch.stderr);
    const w = JSON.parse(webgpu.stdout), t = JSON.parse(torch.stdout);
    assertEquals(w.engine.name, "webgpu");
    assertEquals(t.engine.name, "pytorch");
    assertEquals(t.engine.threads, 1);
    const runs = (r: { runs: Run[] }) => new Map(r.runs.map((x) => [x.seed, x]));
    const [wr, tr] = [runs(w), runs(t)];
    for (const seed of [1, 2]) {
      const a = wr.get(seed)!, b = tr.get(seed)!, what = `seed ${seed}`;
      assertEquals(a.losses.map((x) => x[0]), [1, 2, 3, 4, 5, 6, 7, 8], what);
      assertEquals(b.losses.map((x) => x[0]), a.losses.map((x) => x[0]), what);
      a.losses.forEach(([step, loss], i) => close(b.losses[i][1], loss, `${what}, step ${step}`));
      assertEquals(b.curve.map((x) => x[0]), a.curve.map((x) => x[0]), what);
      a.curve.forEach(([tok, loss], i) => close(b.curve[i][1], loss, `${what}, val at ${tok}`));
      close(b.val_loss, a.val_loss, `${what}, final validation`);
      assert(
        Math.abs(a.accuracy - b.accuracy) <= 1 / 256,
        `${what}: ${a.accuracy} vs ${b.accuracy}`,
      );
    }
    const md = await Deno.readTextFile(join(dir, "torch", "results.md"));
    assert(/Engine: pytorch \(torch \d[^;]*Python 3[^)]*\); BLAS: .+; device: .+/.test(md), md);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("experiment: engine flags that cannot work fail in one line before any training", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engines_bad_" });
  try {
    const suite = join(dir, "s.json"), perCopy = join(dir, "p.json");
    await Deno.writeTextFile(suite, JSON.stringify(SUITE));
    await Deno.writeTextFile(
      perCopy,
      JSON.stringify({
        ...SUITE,
        arms: [{ name: "shd", config: { phd: { K: 2, variant: "shd", embeddings: "per-copy" } } }],
      }),
    );
    const out = ["--out", join(dir, "out")];
    const cases: [string[], RegExp][] = [
      [[suite, "--engine", "jax"], /--engine must be one of webgpu, torch, got "jax"/],
      [[suite, "--jobs", "2"], /--jobs runs several PyTorch processes .* add --engine torch/],
      [[suite, "--torch-blas", OPENBLAS], /--torch-blas is for --engine torch/],
      [
        [suite, "--engine", "torch", "--torch-blas", dir],
        /--torch-blas .* holds no libblas\.so\.3/,
      ],
      [[suite, "--engine", "torch", "--minutes", "1"], /with --engine torch give --budget-tokens/],
      [[perCopy, "--engine", "torch"], /arm "shd": per-copy embedding tables train only with/],
      [[suite, "--figures"], /--figures draws from results: give no suite/],
      [[], /give a suite, or --figures/],
    ];
    for (const [args, re] of cases) {
      const r = await runScript("cli/experiment.ts", ...args, ...out);
      assertUsageError(r, re, args.join(" "));
    }
    assert(!(await Deno.stat(join(dir, "out")).catch(() => undefined)), "nothing was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
