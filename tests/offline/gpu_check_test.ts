/**
 * The gpu-check engine (offline/gpu_check.ts) with parts made for the test: budget slices, a step
 * that fails, one that runs past its part's time (stopped with its children), a part that throws,
 * the files written and kept; the parsers of offline/gpu_check_parts.ts; the command's bad input.
 */
import { deepStrictEqual as assertEquals, match, ok, rejects } from "node:assert/strict";
import { lastJson, type Part, runGpuCheck, slice } from "../../offline/gpu_check.ts";
import {
  GPU_CHECK_PARTS,
  parseDenoTest,
  safetensorsElements,
  torchRefusal,
} from "../../offline/gpu_check_parts.ts";
import { assertUsageError, runScript } from "../fixtures/cli.ts";

/** A part of `share` whose steps are shell commands. */
function shellPart(name: string, share: number, ...commands: string[]): Part {
  return {
    name,
    title: `part ${name}`,
    share,
    async run(ctx) {
      for (const c of commands) await ctx.step({ name: c, argv: ["bash", "-c", c] });
      return { results: { left: ctx.left() }, markdown: [`ran ${commands.length}`] };
    },
  };
}

Deno.test("parts get their share of what is left; failures and timeouts are recorded", async () => {
  const out = await Deno.makeTempDir({ prefix: "gpu_check_" });
  try {
    const parts: Part[] = [
      shellPart("fast", 1, "echo '{\"x\": 1}'"),
      shellPart("fails", 1, "echo 'error: it broke' >&2; exit 3"),
      // The child sleeps in a grandchild: the whole group must be stopped at the part's end.
      shellPart("slow", 1, "bash -c 'sleep 60' & wait"),
      {
        name: "throws",
        title: "part throws",
        share: 1,
        run: () => Promise.reject(new Error("boom")),
      },
      shellPart("unasked", 1, "true"),
    ];
    const t0 = performance.now();
    const r = await runGpuCheck(parts, {
      out,
      budgetS: 24,
      parts: ["fast", "fails", "slow", "throws"],
    });
    ok(performance.now() - t0 < 30_000, "the slow part was stopped at its slice");
    const status = Object.fromEntries(r.parts.map((p) => [p.name, p.status]));
    assertEquals(status.fast, "ok");
    assertEquals(status.fails, "failed (exit 3)");
    match(status.slow, /^timed out after \d+ s$/);
    assertEquals(status.throws, "failed: boom");
    assertEquals(status.unasked, "not asked");
    assertEquals(r.parts.find((p) => p.name === "fails")!.note, "error: it broke");
    // The fast parts' time passed on: the slow part got more than a quarter of the budget.
    ok(r.parts.find((p) => p.name === "slow")!.budget_s > 24 / 4);
    const names = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assertEquals(names, [
      "1-fast.json",
      "2-fails.json",
      "3-slow.json",
      "4-throws.json",
      "summary.md",
    ]);
    const fails = JSON.parse(await Deno.readTextFile(`${out}/2-fails.json`));
    assertEquals(fails.format, "phd-gpu-check-1");
    assertEquals(fails.steps[0].exit_code, 3);
    match(fails.steps[0].stderr_tail, /error: it broke/);
    const summary = await Deno.readTextFile(`${out}/summary.md`);
    match(summary, /^# gpu-check\n/);
    match(summary, /\| 3\. part slow \| timed out after \d+ s \|/);
    match(summary, /## 1\. part fast\n\nran 1/);

    // A second run replaces its own files; a file of someone else's is refused without --force.
    await Deno.writeTextFile(`${out}/summary.md`, "my notes\n");
    await rejects(
      runGpuCheck(parts, { out, budgetS: 6, parts: ["fast"] }),
      /summary\.md" exists and is not a gpu-check summary written by this tool: pass --force/,
    );
    await runGpuCheck(parts, { out, budgetS: 6, parts: ["fast"], force: true });
    match(await Deno.readTextFile(`${out}/summary.md`), /\| 2\. part fails \| not asked \|/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("budget slices, and the parsers of the parts' outputs", async () => {
  assertEquals(slice({ budgetS: 100, elapsedS: 20, share: 10, sharesLeft: 40 }), 20);
  assertEquals(slice({ budgetS: 100, elapsedS: 120, share: 10, sharesLeft: 40 }), 0);
  assertEquals(lastJson('log\n{"a": 1}\nnot json\n'), { a: 1 });
  assertEquals(lastJson("no json"), undefined);
  assertEquals(lastJson('[{"spec": "phd"}]'), [{ spec: "phd" }]);
  const t = parseDenoTest([
    "running 3 tests from ./tests/kernels/x_test.ts",
    "./tests/kernels/x_test.ts => adds ... ok (3ms)",
    "./tests/kernels/x_test.ts => f16 [skipped: no shader-f16] ... ignored (0ms)",
    "./tests/model/m_test.ts => matches float64 ... FAILED (1s)",
    "./tests/model/m_test.ts => f16 ... grouped layout ... ok (1s)",
    "FAILED | 1 passed | 1 failed | 1 ignored (2s)",
  ].join("\n"));
  assertEquals(t.passed, 1);
  assertEquals(t.steps, 1);
  assertEquals(t.failed, ["./tests/model/m_test.ts: matches float64"]);
  assertEquals(t.ignored, ["./tests/kernels/x_test.ts: f16 [skipped: no shader-f16]"]);
  assertEquals(t.summary, "FAILED | 1 passed | 1 failed | 1 ignored (2s)");
  assertEquals(
    torchRefusal({ torch: "1.13.1", cuda: false }),
    "torch 1.13.1 has no flex_attention (needs >= 2.5)",
  );
  assertEquals(
    torchRefusal({ torch: "2.11.0+cu130", cuda: false }),
    "torch 2.11.0+cu130 sees no CUDA device",
  );
  assertEquals(torchRefusal({ torch: "2.5.0", cuda: true }), undefined);
  // A safetensors header: 2x3 and 4 elements.
  const header = JSON.stringify({
    __metadata__: { a: "b" },
    w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
    n: { dtype: "F32", shape: [4], data_offsets: [24, 40] },
  });
  const file = await Deno.makeTempFile({ suffix: ".safetensors" });
  const bytes = new Uint8Array(8 + header.length + 40);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(new TextEncoder().encode(header), 8);
  await Deno.writeFile(file, bytes);
  assertEquals(await safetensorsElements(file), 10);
  await Deno.remove(file);
});

Deno.test("gpu-check refuses bad input in one line", async () => {
  const parts = GPU_CHECK_PARTS.map((p) => p.name).join(", ");
  const [part, budget, word] = await Promise.all([
    runScript("cli/gpu_check.ts", "--parts", "adapter,nope"),
    runScript("cli/gpu_check.ts", "--budget-s", "0"),
    runScript("cli/gpu_check.ts", "--budget-s", "9m"),
  ]);
  assertUsageError(part, new RegExp(`unknown part "nope" \\(parts: ${parts}\\)`), "unknown part");
  assertUsageError(budget, /--budget-s must be a positive integer, got "0"/, "zero budget");
  assertUsageError(word, /--budget-s must be a positive integer, got "9m"/, "budget in words");
});
