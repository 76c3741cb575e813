/**
 * Experiments: the statistics on known inputs, suite validation, and a tiny suite end to end (two
 * arms, two seeds, a few steps of a tiny model) through `deno task experiment`: the files it
 * writes, statistics that agree with its own runs, the KV-bytes and prefill-cost columns on known
 * shapes, refusal to overwrite, `--resume` after a SIGKILL keeping what was finished, `--resume`
 * of a finished suite training nothing and `--render-only` rewriting the files from results.json.
 */
import { deepStrictEqual as assertEquals, ok as assert, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { compare, holm, mean, sd, t975, tTestP, withHolm } from "../../runtime/measure/stats.ts";
import { parseSuite, slug } from "../../experiments/harness/suite.ts";
import { assertUsageError, DENO_RUN, runScript } from "../fixtures/cli.ts";
import { tinyModel } from "../fixtures/model.ts";

const close = (a: number, b: number, tol = 1e-9) =>
  Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

Deno.test("statistics: mean, sample sd, paired t-interval and its verdict on known inputs", () => {
  strictEqual(mean([1, 2, 3, 6]), 3);
  assert(close(sd([1, 2, 3, 6]), Math.sqrt(14 / 3)));
  strictEqual(sd([5]), 0);
  strictEqual(t975(1), 12.706);
  strictEqual(t975(2), 4.303);
  strictEqual(t975(100), 1.96);
  // d = arm - base = [-0.2, -0.25, -0.3]: mean -0.25, sd 0.05, half width 4.303 * 0.05 / sqrt(3)
  const base = new Map([[1, 2.5], [2, 2.6], [3, 2.7]]);
  const better = compare(new Map([[1, 2.3], [2, 2.35], [3, 2.4]]), base);
  assert(close(better.diff, -0.25));
  const half = 4.303 * 0.05 / Math.sqrt(3);
  assert(close(better.ci![0], -0.25 - half) && close(better.ci![1], -0.25 + half), `${better.ci}`);
  strictEqual(better.verdict, "better");
  // d = [-0.1, -0.2, -0.3]: mean -0.2 but half width 0.248: the interval holds 0.
  const noisy = compare(new Map([[1, 2.4], [2, 2.4], [3, 2.4]]), base);
  strictEqual(noisy.verdict, "within seed noise");
  strictEqual(compare(new Map([[1, 3.0], [2, 3.1], [3, 3.2]]), base).verdict, "worse");
  strictEqual(compare(new Map([[1, 2.4]]), base).verdict, "too few seeds");
  // Only seeds both sides have are paired.
  strictEqual(compare(new Map([[1, 2.4], [9, 1.0]]), base).n, 1);
  // The spread of the effect is the sd of the paired differences; p is the paired t-test's.
  assert(close(better.sd, 0.05));
  assert(close(better.p!, tTestP(-0.25 / (0.05 / Math.sqrt(3)), 2)));
});

Deno.test("statistics: t-test p-values and Holm's correction on known inputs", () => {
  // Two-sided p at the tabulated quantiles: 0.975 -> 0.05, 0.995 -> 0.01.
  for (
    const [t, df, p] of [[12.706, 1, 0.05], [4.303, 2, 0.05], [2.776, 4, 0.05], [9.925, 2, 0.01]]
  ) {
    assert(Math.abs(tTestP(t, df) - p) < 1e-4 && close(tTestP(-t, df), tTestP(t, df)), `${t}`);
  }
  strictEqual(tTestP(0, 4), 1);
  strictEqual(tTestP(Infinity, 4), 0);
  // Holm: the i-th smallest of m is multiplied by m - i + 1, then kept non-decreasing.
  assertEquals(holm([0.01, 0.04, 0.03, 0.005]).map((x) => +x.toFixed(6)), [0.03, 0.06, 0.06, 0.02]);
  assertEquals(holm([0.5, 0.9]), [1, 1]);
  // Two effects each beyond noise alone are not after the correction; a strong one stays.
  const base = new Map([[1, 2.5], [2, 2.6], [3, 2.7], [4, 2.8], [5, 2.9]]);
  const shift = (ds: number[]) => new Map(ds.map((d, i) => [i + 1, base.get(i + 1)! + d]));
  const weak = compare(shift([-0.01, -0.03, -0.02, 0, -0.04]), base); // t = -2.83, 4 df
  const strong = compare(shift([-0.3, -0.31, -0.29, -0.3, -0.32]), base);
  assert(weak.p! < 0.05 && weak.p! > 0.025, `weak p ${weak.p}`);
  const [w, w2, st] = withHolm([weak, weak, strong]);
  strictEqual(w.verdict, "better");
  strictEqual(w.verdict_holm, "within seed noise");
  assert(close(w.p_holm!, 2 * weak.p!) && close(w2.p_holm!, 2 * weak.p!));
  strictEqual(st.verdict_holm, "better");
  // Accuracy: higher is better.
  strictEqual(
    withHolm([compare(shift([0.3, 0.31, 0.29, 0.3, 0.32]), base, true)], true)[0]
      .verdict_holm,
    "better",
  );
});

Deno.test("suite files: defaults, every shipped suite parses, bad ones fail with one line", async () => {
  const s = parseSuite({ name: "x", arms: [{ name: "a" }, { name: "b", tokens_factor: 2 }] });
  strictEqual(s.baseline, "a");
  strictEqual(s.seeds, 3);
  assertEquals(s.budget, { tokens: 100000 });
  strictEqual(s.arms[1].tokens_factor, 2);
  assertEquals(s.comparisons, []);
  strictEqual(slug("phd-cswa K=2"), "phd-cswa_K-2");
  for await (const e of Deno.readDir(new URL("../../experiments/", import.meta.url))) {
    if (!e.name.endsWith(".json")) continue;
    const raw = JSON.parse(
      await Deno.readTextFile(new URL(`../../experiments/${e.name}`, import.meta.url)),
    );
    const suite = parseSuite(raw, e.name);
    strictEqual(`${suite.name}.json`, e.name);
    assert(suite.seeds >= 2, `${e.name}: fewer than 2 seeds`);
    // The suites that answer the paper's claims (experiments/README.md): 5 seeds, 1 M tokens.
    if (ANSWERING.includes(suite.name)) {
      assert(suite.seeds >= 5, `${e.name}: fewer than 5 seeds`);
      const b = suite.budget as { tokens: number };
      assert(b.tokens >= 1e6, `${e.name}: a budget below 1 M tokens`);
    }
  }
  const bad: [unknown, RegExp][] = [
    [{ name: "x", arms: [] }, /arms: must be a non-empty list/],
    [{ name: "x", armz: [] }, /armz: unknown field/],
    [{ name: "x", arms: [{ name: "a", config: { phd: { K: 0 } } }] }, /arms\[0\] "a".*phd\.K/],
    [{ name: "x", arms: [{ name: "a" }], baseline: "b" }, /baseline: must name an arm/],
    [{ name: "x", arms: [{ name: "a" }, { name: "a" }] }, /two arms are named "a"/],
    [{ name: "x", arms: [{ name: "a" }], budget: { tokens: 1, flops: 2 } }, /exactly one of/],
    [{ name: "x", arms: [{ name: "a" }], seeds: 0 }, /seeds: must be a positive integer/],
    ...([
      [[{ arm: "b", against: "z" }], /comparisons\[0\]\.against: must name an arm/],
      [[{ arm: "b", against: "b" }], /compares "b" with itself/],
      [[{ arm: "b", against: "a" }], /compared with the baseline "a" already/],
      [[{ arm: "b", against: "c" }, { arm: "c", against: "b" }], /compares "c" and "b" twice/],
      [[["b", "c"]], /must be \{"arm": \.\.\., "against": \.\.\.\}/],
    ] as const).map(([comparisons, re]): [unknown, RegExp] => [
      { name: "x", arms: [{ name: "a" }, { name: "b" }, { name: "c" }], comparisons },
      re,
    ]),
    [{ name: "x", arms: [{ name: "a", series: 3 }] }, /series: must be a non-empty string/],
  ];
  for (const [raw, re] of bad) {
    let msg = "";
    try {
      parseSuite(raw);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(re.test(msg) && !msg.includes("\n"), `${JSON.stringify(raw)}: "${msg}"`);
  }
});

const ANSWERING = [
  "k-sweep",
  "window",
  "chunk",
  "reasoning",
  "reasoning-parity",
  "reasoning-copy",
];

const TINY_SUITE = {
  name: "tiny",
  description: "two arms, two seeds, a few steps",
  baseline: "vanilla",
  seeds: 2,
  budget: { tokens: 96 },
  eval_points: 1,
  base: {
    model: tinyModel({ vocab_size: 256, num_hidden_layers: 1, tie_word_embeddings: false }),
    train: { batch_size: 2, seq_len: 16, eval_batches: 1, log_every: 1 },
  },
  arms: [
    { name: "vanilla", config: { phd: { K: 1, variant: "causal" } } },
    { name: "phd-cswa K=2", config: { phd: { K: 2, variant: "phd-cswa", W: 3, C: 8 } } },
  ],
};

Deno.test("a tiny suite end to end: files, statistics, refusal, resume after SIGKILL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "experiment_" });
  try {
    const suite = join(dir, "tiny.json"), out = join(dir, "results");
    await Deno.writeTextFile(suite, JSON.stringify(TINY_SUITE));

    // A run killed once its first run is stored keeps that run; --resume does the rest.
    const child = new Deno.Command(Deno.execPath(), {
      args: [...DENO_RUN, "cli/experiment.ts", suite, "--out", out],
      cwd: new URL("../..", import.meta.url),
      stdout: "null",
      stderr: "null",
    }).spawn();
    const first = join(out, "runs", "vanilla__s1.json");
    const deadline = Date.now() + 120_000;
    let firstText: string | undefined;
    while (!firstText && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      firstText = await Deno.readTextFile(first).catch(() => undefined);
    }
    child.kill("SIGKILL");
    await child.status;
    assert(firstText, "the first run was never stored");

    const refused = await runScript("cli/experiment.ts", suite, "--out", out);
    assertUsageError(refused, /holds finished runs: pass --resume .* or --fresh/, "no --resume");

    const r = await runScript("cli/experiment.ts", suite, "--out", out, "--resume", "--json");
    strictEqual(r.code, 0, r.stderr);
    assert(r.stderr.includes("[1/4] vanilla seed 1: finished earlier"), r.stderr);
    strictEqual(await Deno.readTextFile(first), firstText, "a finished run was redone");
    for (const f of ["results.json", "results.md", "loss_curves.svg", "bars.svg"]) {
      assert((await Deno.stat(join(out, f))).size > 0, f);
    }
    const res = JSON.parse(r.stdout);
    assertEquals(JSON.parse(await Deno.readTextFile(join(out, "results.json"))), res);
    strictEqual(res.runs.length, 4);
    for (const run of res.runs) {
      strictEqual(run.steps, 3); // 96 tokens / (2 x 16)
      strictEqual(run.tokens, 96);
      assert(Number.isFinite(run.val_loss) && close(run.val_bpb, run.val_loss / Math.LN2));
      strictEqual(run.curve.length, 2);
    }
    // The summary agrees with its runs.
    for (const arm of res.arms) {
      const v = res.runs.filter((x: { arm: string }) => x.arm === arm.arm).map((
        x: { val_bpb: number },
      ) => x.val_bpb);
      assert(close(arm.val_bpb_mean, mean(v)) && close(arm.val_bpb_sd, sd(v)), arm.arm);
    }
    const vs = res.arms[1].vs_baseline;
    strictEqual(vs.n, 2);
    assert(["better", "worse", "within seed noise"].includes(vs.verdict));
    // One comparison: Holm's correction leaves its p as it is.
    assertEquals(res.comparisons, [vs]);
    assertEquals([vs.arm, vs.against, vs.metric, vs.p_holm], [
      "phd-cswa K=2",
      "vanilla",
      "val_bpb",
      vs.p,
    ]);
    assertEquals(res.runs[0].losses.map((x: number[]) => x[0]), [1, 2, 3], "logged losses");
    strictEqual(res.engine.name, "webgpu");
    const md = await Deno.readTextFile(join(out, "results.md"));
    assert(md.includes("phd-cswa K=2") && md.includes("95% CI") && md.includes("Holm p"), md);
    assert(md.includes("Engine: webgpu") && /Seed spread \(sd over 2 seeds\)/.test(md), md);
    // Serving costs at 1024 positions: one key is K and V of 1 layer x 1 KV head x d 8 in f32 =
    // 64 bytes; vanilla keeps every position's key and prefills 1024 rows; PHD-CSWA W=3 C=8
    // keeps W-1 = 2 hidden keys more (capacity L + 2; the most cached is after position 1022:
    // 1023 originals + 2 hidden, as position 1023 ends a chunk) and prefills the originals plus
    // the last chunk's 8 hidden tokens.
    const [van, cswa] = res.arms;
    assertEquals([van.kv_formula, van.kv_bytes_per_token, van.prefill_rows], ["L", 64, 1024]);
    assertEquals([cswa.kv_formula, cswa.kv_bytes_per_token, cswa.prefill_rows], [
      "L + 2",
      (1023 + 2) * 64 / 1024,
      1024 + 8,
    ]);
    // Prefill FLOPs: rows x per-row linear FLOPs + attention pairs + the head; vanilla's
    // attention is tile-granular causal, so between the exact lower triangle and the full square.
    const lin = 2 * (16 * (16 + 2 * 8) + 16 * 16 + 3 * 16 * 24), head = 2 * 16 * 256;
    const att = (van.prefill_flops - 1024 * lin - head) / (4 * 2 * 8);
    assert(att >= 1024 * 1025 / 2 && att <= 1024 * 1024, `vanilla attention pairs ${att}`);
    assert(cswa.prefill_flops > van.prefill_flops, "more rows cost more");
    assert(md.includes("KV bytes/token") && md.includes("64.1 (L + 2)"), md);

    // --render-only writes the table and pictures again from results.json, training nothing.
    await Deno.remove(join(out, "results.md"));
    const rendered = await runScript("cli/experiment.ts", suite, "--out", out, "--render-only");
    strictEqual(rendered.code, 0, rendered.stderr);
    assert(!rendered.stderr.includes("step"), rendered.stderr);
    strictEqual(await Deno.readTextFile(join(out, "results.md")), md);
    assertEquals(JSON.parse(await Deno.readTextFile(join(out, "results.json"))), res);
    const noResults = await runScript(
      "cli/experiment.ts",
      suite,
      "--out",
      join(dir, "none"),
      "--render-only",
    );
    assertUsageError(noResults, /--render-only needs .*results\.json/, "render-only, no results");

    // A finished suite resumed trains nothing.
    const again = await runScript("cli/experiment.ts", suite, "--out", out, "--resume");
    strictEqual(again.code, 0, again.stderr);
    strictEqual(again.stderr.match(/finished earlier/g)?.length, 4, again.stderr);

    const missing = await runScript("cli/experiment.ts", "no-such-suite");
    assertUsageError(
      missing,
      /no suite "no-such-suite": give a suite file or one of .*k-sweep/,
      "missing",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--figures draws Fig. 1 from the suites' results, leaving out those without", async () => {
  const dir = await Deno.makeTempDir({ prefix: "figures_" });
  try {
    const arm = (name: string, bpb: number, acc: number) => ({
      arm: name,
      tokens: 1_000_448,
      val_bpb_mean: bpb,
      val_bpb_sd: 0.01,
      accuracy_mean: acc,
      accuracy_sd: 0.02,
    });
    const results = (suite: string) => ({
      suite,
      seeds: [1, 2, 3, 4, 5],
      arms: [
        arm("vanilla", 2.5, 0.2),
        arm("phd-cswa K=2", 2.45, 0.3),
        arm("phd-cswa K=3", 2.43, 0.35),
        arm("phd-cswa K=5", 2.4, 0.4),
      ],
    });
    for (const suite of ["k-sweep", "reasoning"]) {
      await Deno.mkdir(join(dir, suite));
      await Deno.writeTextFile(join(dir, suite, "results.json"), JSON.stringify(results(suite)));
    }
    const r = await runScript("cli/experiment.ts", "--figures", "--out", dir);
    strictEqual(r.code, 0, r.stderr);
    assert(r.stderr.includes("left out: reasoning-parity, reasoning-copy"), r.stderr);
    const svg = await Deno.readTextFile(join(dir, "fig1.svg"));
    for (const s of ["K=1", "K=5", "Brown: validation bits/byte", "addition: accuracy %"]) {
      assert(svg.includes(s), s);
    }
    strictEqual(svg.match(/<svg /g)?.length, 3, "one outer svg and two panels");
    const none = await runScript("cli/experiment.ts", "--figures", "--out", join(dir, "k-sweep"));
    assertUsageError(none, /--figures needs results\.json of k-sweep, .* run those suites/, "none");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
