/**
 * `deno task export --to flex` against the DSL's interpreter: the module-level `mask_mod` of every
 * preset, every examples/masks/ file and random DSL specs (fast-check, with negative floor
 * division and modulo, parameter divisors and segment tables), evaluated by Debian's PyTorch on
 * broadcast int32 index grids and under nested vmap (as create_block_mask calls it), equals
 * dsl/eval.ts `denseMask` mapped to the layout's storage order, in both layouts; `score_mod` equals `evalFloat` to 1e-12 for soft-capping and an ALiBi-style
 * modifier of the head. One Python process checks every module. The version check: on a torch
 * older than 2.5, `block_mask` says that flex_attention needs torch >= 2.5. Bad input to the
 * command (a spec the target cannot express, a non-causal one, an unknown target) gets one line.
 */
import fc from "fast-check";
import { deepStrictEqual as assertEquals, match, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { flexModule } from "../../compiler/codegen/flex.ts";
import { type Layout, LAYOUTS, tokenAt } from "../../compiler/layout.ts";
import {
  type AttentionSpec,
  defineAttention,
  denseMask,
  evalFloat,
  exp2,
  FloatExpr,
  IntExpr,
  phdBase,
  PRESETS,
  respec,
  select,
  specBindings,
  toFloat,
} from "../../dsl/mod.ts";
import { assertUsageError, runScript, specFiles } from "../fixtures/cli.ts";
import { runPython } from "../fixtures/python.ts";
import { type Term, termArb } from "../fixtures/random_specs.ts";
import { specArbOf } from "../fixtures/random_specs.ts";
import { needs } from "../fixtures/packages.ts";

/** Expected mask in storage order: row = query storage index, column = key storage index. */
function storageMask(spec: AttentionSpec, L: number, layout: Layout): string {
  const K = spec.K, N = K * L, d = denseMask(spec, L);
  const canon = Array.from({ length: N }, (_, s) => {
    const [c, p] = tokenAt(layout, K, L, s);
    return p * K + c;
  });
  let out = "";
  for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) out += d.allowed[canon[i] * N + canon[j]];
  return out;
}

/** The presets with small parameters, at K = 1 and K = 3. */
function presetCases(): AttentionSpec[] {
  const small: Record<string, number> = { W: 3, C: 4, P: 3 };
  return Object.values(PRESETS).flatMap((make) => {
    const base = make();
    const params = Object.fromEntries(Object.keys(base.params).map((k) => [k, small[k]]));
    const tables = "docs" in base.tables ? { docs: [0, 3, 5] } : undefined;
    return [1, 3].map((K) => respec(base, { K, params, tables }));
  });
}

async function exampleCases(): Promise<AttentionSpec[]> {
  const dir = new URL("../../examples/masks/", import.meta.url);
  const out: AttentionSpec[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".ts")) out.push((await import(new URL(e.name, dir).href)).default);
  }
  assert(out.length >= 4, "examples/masks has the example specs");
  return out;
}

/** Terms beyond the analysis tests': negative floor division/modulo, divisors W and C, segments. */
const exportTerms: fc.Arbitrary<Term> = fc.oneof(
  termArb,
  fc.constantFrom<Term>(
    (c) => c.q.pos.sub(c.k.pos).div(2),
    (c) => c.k.pos.sub(c.q.pos).sub(1).mod(3),
    (c) => c.q.pos.sub(c.k.pos).div(c.p.C),
    (c) => c.k.hiddenIndex.mod(c.p.W),
    (c) => c.q.segment("docs"),
    (c) => c.k.segment("docs"),
    (c) => new IntExpr({ op: "seg", of: c.q.pos.sub(2).node, name: "docs" }),
    (c) => c.k.pos.max(c.q.pos.sub(2)),
    (c) => c.q.copy.mul(c.k.pos).min(4),
    (c) => c.k.copy.add(-7).div(2).max(c.q.copy),
  ),
);

/** An ALiBi-style modifier: a per-head slope 2^-(h+1) times the distance, halved for originals. */
const alibi = defineAttention({
  name: "alibi_phd",
  K: 2,
  params: { W: 3 },
  mask: phdBase,
  score: ({ score, head, q, k }) =>
    select(
      q.hidden,
      score.sub(exp2(head.add(1).mul(-1)).mul(toFloat(q.pos.sub(k.pos)))),
      new FloatExpr({ op: "neg", a: score.mul(-0.5).node }),
    ),
});

interface Job {
  spec: AttentionSpec;
  L: number;
  layout: Layout;
  heads?: number;
  scores?: number[];
}

interface Checked {
  torch: string;
  flex: boolean;
  block_mask_error: string | null;
  results: {
    mask: string;
    dense_agrees: boolean;
    vmap_agrees: boolean;
    scores?: number[];
    vmap_scores_agree?: boolean;
  }[];
}

/** Writes each job's module and has one Python process evaluate them all. */
async function evaluate(jobs: Job[]): Promise<Checked> {
  const dir = await Deno.makeTempDir({ prefix: "flex_" });
  const list = await Promise.all(jobs.map(async (j, i) => {
    const path = join(dir, `m${i}.py`);
    const text = flexModule(j.spec, {
      layout: j.layout,
      L: j.L,
      analysis: "(not analysed in this test)",
      command: "tests/export/flex_mask_test.ts",
    });
    await Deno.writeTextFile(path, text);
    return { module: path, L: j.L, heads: j.heads, scores: j.scores };
  }));
  await Deno.writeTextFile(join(dir, "jobs.json"), JSON.stringify(list));
  const r = await runPython("tests/export/eval_modules.py", join(dir, "jobs.json"));
  assertEquals(r.code, 0, r.stderr);
  await Deno.remove(dir, { recursive: true });
  return JSON.parse(r.stdout);
}

/** Deterministic scores in [-60, 60] (beyond the soft cap of 30). */
function scores(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => 60 * Math.sin(seed + i * 1.37) * Math.cos(i * 0.11));
}

Deno.test(
  needs(
    "python3-torch",
    "exported mask_mod and score_mod equal the DSL interpreter (presets, examples, random)",
    async () => {
      const specs = [...presetCases(), ...await exampleCases()];
      const jobs: Job[] = specs.flatMap((spec) =>
        LAYOUTS.map((layout) => ({ spec, L: 6, layout }))
      );
      const random = fc.sample(
        fc.tuple(
          specArbOf(exportTerms, { docs: [0, 2, 5] }),
          fc.integer({ min: 1, max: 7 }),
          fc.constantFrom(...LAYOUTS),
        ),
        { numRuns: 150, seed: 16 },
      );
      for (const [spec, L, layout] of random) jobs.push({ spec, L, layout });
      const scored = [(await exampleCases()).find((s) => s.score)!, alibi];
      const H = 3;
      for (const spec of scored) {
        for (const layout of LAYOUTS) {
          const L = 5, N = spec.K * L;
          jobs.push({ spec, L, layout, heads: H, scores: scores(H * N * N, jobs.length) });
        }
      }
      const got = await evaluate(jobs);
      jobs.forEach((j, i) => {
        const what = `${j.spec.name} (${j.spec.source}) L=${j.L} ${j.layout}`;
        const res = got.results[i];
        assertEquals(res.mask, storageMask(j.spec, j.L, j.layout), what);
        assert(res.dense_agrees, `${what}: dense_mask(L) differs from mask_mod`);
        assert(res.vmap_agrees, `${what}: mask_mod under vmap differs from broadcasting`);
        if (!j.scores) return;
        const K = j.spec.K, N = K * j.L, b = specBindings(j.spec);
        let worst = 0;
        for (let h = 0; h < H; h++) {
          for (let i = 0; i < N; i++) {
            for (let k = 0; k < N; k++) {
              const [qc, qp] = tokenAt(j.layout, K, j.L, i),
                [kc, kp] = tokenAt(j.layout, K, j.L, k);
              const x = (h * N + i) * N + k;
              const want = evalFloat(j.spec.score!, { qc, qp, kc, kp }, b, j.scores[x], h);
              worst = Math.max(
                worst,
                Math.abs(res.scores![x] - want) / Math.max(1, Math.abs(want)),
              );
            }
          }
        }
        assert(worst <= 1e-12, `${what}: score_mod off by ${worst} (relative)`);
        assert(res.vmap_scores_agree, `${what}: score_mod under vmap differs from broadcasting`);
      });
    },
  ),
);

Deno.test(
  needs(
    "python3-torch",
    "version check: flex_attention needs torch >= 2.5, block_mask says so on an older one",
    async () => {
      const got = await evaluate([{ spec: PRESETS["phd"](), L: 4, layout: "interleaved" }]);
      const [major, minor] = got.torch.split(".").map((x) => parseInt(x));
      const older = major < 2 || (major === 2 && minor < 5);
      assertEquals(got.flex, !older, `torch ${got.torch}`);
      if (older) {
        match(got.block_mask_error!, /^flex_attention needs torch >= 2\.5; this torch is /);
        console.log(`torch ${got.torch} is older than 2.5: ${got.block_mask_error}`);
      } else assertEquals(got.block_mask_error, null);
    },
  ),
);

Deno.test("export: a spec the target cannot express, a non-causal one, bad flags get one line", async () => {
  const dir = await specFiles("export_", ["peek"]);
  const DSL = new URL("../../dsl/mod.ts", import.meta.url).href;
  await Deno.writeTextFile(
    join(dir, "zero.ts"),
    `import { defineAttention } from "${DSL}";
export default defineAttention({ name: "zero", mask: ({ q, k }) => k.pos.le(q.pos.div(0)) });`,
  );
  await Deno.writeTextFile(
    join(dir, "huge.ts"),
    `import { defineAttention } from "${DSL}";
export default defineAttention({ name: "huge", mask: ({ q, k }) => k.pos.le(q.pos.add(2 ** 60)) });`,
  );
  const run = (...a: string[]) => runScript("cli/export.ts", ...a);
  assertUsageError(
    await run(join(dir, "zero.ts"), "--to", "flex"),
    /spec "zero_k1" cannot be exported to flex: the mask divides by the constant 0/,
    "division by zero",
  );
  assertUsageError(
    await run(join(dir, "huge.ts"), "--to", "flex"),
    /cannot be exported to flex: integer constant 1152921504606847000 is beyond 2\^53/,
    "huge constant",
  );
  assertUsageError(await run(join(dir, "peek.ts"), "--to", "flex"), /not causal/, "non-causal");
  assertUsageError(await run("phd", "--to", "wgsl"), /--to/, "unknown target");
  assertUsageError(await run("phd"), /--to/, "missing --to");
  assertUsageError(await run("phd", "--to", "flex", "--json"), /--json needs --out/, "json");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("export --json reports the analysis and the checkpoint metadata of a preset", async () => {
  const dir = await Deno.makeTempDir();
  const out = join(dir, "m.py");
  const r = await runScript(
    "cli/export.ts",
    "phd-swa",
    "--K",
    "2",
    "--W",
    "5",
    "--to",
    "flex",
    "--layout",
    "grouped",
    "--L",
    "32",
    "--out",
    out,
    "--json",
  );
  assertEquals(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assertEquals([rep.target, rep.layout, rep.analysis.name], ["flex", "grouped", "phd_swa_k2_w5"]);
  assertEquals(JSON.parse(rep.checkpoint_phd).variant, "phd-swa");
  const text = await Deno.readTextFile(out);
  assertEquals(new TextEncoder().encode(text).length, rep.bytes);
  match(text, /causality: phd_swa_k2_w5: causal/);
  match(text, /tile classes: grouped layout, 128x128 tiles/);
  await Deno.remove(dir, { recursive: true });
});
