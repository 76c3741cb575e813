/**
 * `deno task demo` as a user runs it (a subprocess), on a budget of seconds: it trains to the
 * budget (the step count planned, not given), evaluates, generates, and reports its budget
 * fields; with `--steps` it trains exactly that many. `--no-tune` keeps the test from timing
 * kernels into the repository's autotune cache. The tuning it does otherwise stops at its
 * deadline and counts what it left. Bad flags get one error line.
 */
import { ok as assert, strictEqual } from "node:assert";
import { join } from "node:path";
import { assertUsageError, runScript } from "../fixtures/cli.ts";
import { autotune } from "../../runtime/jobs/autotune.ts";
import { DEMO_CONFIG } from "../../runtime/model/config.ts";
import { createContext } from "../../runtime/gpu/context.ts";

Deno.test("the demo trains to its budget and reports the budget fields", async () => {
  const out = await Deno.makeTempDir();
  const budget = 0.5; // minutes: startup, evaluation and generation leave a few seconds to train
  const r = await runScript(
    "cli/demo.ts",
    ...["--minutes", `${budget}`, "--no-tune", "--max-new-tokens", "8", "--json", "--quiet"],
    ...["--out", out],
  );
  strictEqual(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  strictEqual(j.budget_seconds, budget * 60);
  strictEqual(j.tuned_shapes, 0);
  assert(j.steps >= 1 && Number.isFinite(j.val_loss_after), JSON.stringify(j));
  assert(typeof j.budget_cut === "boolean" && j.budget_replans >= 0, JSON.stringify(j));
  assert(j.within_budget === (j.seconds <= j.budget_seconds), JSON.stringify(j));
  // How close to its budget a run ends is the planner's (tests/train/budget_test.ts, on a simulated
  // clock) and a wall-clock figure (bench/RESULTS.md, Demo), not a timed assertion here.
  strictEqual(typeof j.continuation, "string");
  await Deno.remove(out, { recursive: true });
});

Deno.test("--steps trains exactly that many steps", async () => {
  const out = await Deno.makeTempDir();
  const r = await runScript(
    "cli/demo.ts",
    ...["--steps", "3", "--no-tune", "--max-new-tokens", "4", "--json", "--quiet", "--out", out],
  );
  strictEqual(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  strictEqual(j.steps, 3);
  strictEqual(j.budget_cut, undefined);
  await Deno.remove(out, { recursive: true });
});

Deno.test("bad demo flags: one error line", async () => {
  for (
    const [flags, msg] of [
      [["--minutes", "0"], /--minutes must be a number in \(0, 1440\]/],
      [["--minutes", "1e9"], /--minutes must be a number in \(0, 1440\].*deno task train/],
      [["--minutes", "soon"], /--minutes must be a number in \(0, 1440\]/],
      [["--steps", "-3"], /--steps/],
    ] as [string[], RegExp][]
  ) {
    assertUsageError(await runScript("cli/demo.ts", ...flags), msg, flags.join(" "));
  }
});

Deno.test("tuning inside the demo starts no shape after its deadline", async () => {
  const dir = await Deno.makeTempDir(), cache = join(dir, "autotune.json");
  const ctx = await createContext();
  const r = await autotune({ quick: true, kernels: "matmul,attention", cache }, () => {}, {
    ctx,
    config: DEMO_CONFIG,
    deadline: performance.now(),
  });
  strictEqual(r.rows.length, 0);
  strictEqual(r.measured_candidates, 0);
  assert(r.skipped > 1, `${r.skipped} shapes skipped`); // every matmul shape and the attention
  await Deno.remove(dir, { recursive: true });
});
