/**
 * The mask JSON contract (docs/DESIGN.md 1.1, 1.2, 3): `deno task mask <preset> --json` equals a literal
 * transcription of the docs/DESIGN.md formulas for many (K, L, W, C), through the function the command
 * uses and through a few real runs; plus the consequences: originals never attend hidden tokens,
 * K = 1 PHD is causal, no row is fully masked.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { resolveSpec, type SpecFlags } from "../../runtime/host/spec_file.ts";
import { type MaskJson, maskJson } from "../../viz/mask_report.ts";
import { PRESETS } from "../../dsl/presets.ts";
import { runScript } from "../fixtures/cli.ts";

type Variant = "causal" | "phd" | "phd-swa" | "phd-cswa" | "shd";

/** docs/DESIGN.md 1.2, word for word: may query (j, n) attend key (i, m)? */
function literalAllowed(
  v: Variant,
  o: { K: number; W: number; C: number },
  [j, n]: [number, number],
  [i, m]: [number, number],
): boolean {
  const h = (c: number, p: number) => p * (o.K - 1) + (c - 1);
  const chunk = (p: number) => Math.floor(p / o.C);
  if (v === "causal") return m <= n;
  if (v === "shd") return m < n || (m === n && i <= j);
  const phd = (i === 0 && m < n) || (m === n && i <= j);
  if (v === "phd") return phd;
  const swa = i >= 1 && j >= 1 && h(j, n) - o.W < h(i, m) && h(i, m) <= h(j, n);
  if (v === "phd-swa") return phd || swa;
  return phd || (swa && chunk(m) === chunk(n));
}

/** The whole `--json` object, built independently of the DSL: tokens in order t = p*K + c. */
function literalJson(v: Variant, o: { K: number; L: number; W: number; C: number }): MaskJson {
  const tokens: [number, number][] = [];
  for (let p = 0; p < o.L; p++) for (let c = 0; c < o.K; c++) tokens.push([c, p]);
  const allowed = tokens.map((q) => tokens.map((k) => literalAllowed(v, o, q, k) ? 1 : 0));
  return { K: o.K, L: o.L, tokens, allowed };
}

/** Flags as the command passes them (W and C only where the preset has them). */
function flags(v: Variant, K: number, W: number, C: number): SpecFlags {
  return v === "phd-cswa" ? { K, W, C } : v === "phd-swa" ? { K, W } : { K };
}

Deno.test("--json of the PHD and SHD presets is docs/DESIGN.md 1.2 for K 1..5, L 1..12, W 1..8, C 1..6", async () => {
  let cases = 0;
  for (let K = 1; K <= 5; K++) {
    for (let L = 1; L <= 12; L++) {
      for (const v of ["causal", "phd", "shd"] as const) {
        assertEquals(
          maskJson(await resolveSpec(v, { K }), L),
          literalJson(v, { K, L, W: 1, C: 1 }),
        );
        cases++;
      }
      for (let W = 1; W <= 8; W++) {
        const o = { K, L, W, C: 1 };
        assertEquals(
          maskJson(await resolveSpec("phd-swa", { K, W }), L),
          literalJson("phd-swa", o),
        );
        cases++;
        for (let C = 1; C <= 6; C++) {
          const spec = await resolveSpec("phd-cswa", { K, W, C });
          assertEquals(maskJson(spec, L), literalJson("phd-cswa", { K, L, W, C }), spec.name);
          cases++;
        }
      }
    }
  }
  assertEquals(cases, 60 * 3 + 480 + 2880);
});

Deno.test("consequences: originals see no hidden token, K=1 PHD is causal, no row fully masked", async () => {
  for (let K = 1; K <= 4; K++) {
    for (let L = 1; L <= 9; L++) {
      for (const v of ["phd", "phd-swa", "phd-cswa"] as const) {
        for (const [W, C] of [[1, 1], [3, 2], [7, 4]]) {
          const j = maskJson(await resolveSpec(v, flags(v, K, W, C)), L);
          j.tokens.forEach(([qc], q) => {
            ok(j.allowed[q].some((x) => x === 1), `${v} K=${K} L=${L}: row ${q} fully masked`);
            if (qc !== 0) return;
            j.tokens.forEach(([kc], k) => {
              ok(!(kc > 0 && j.allowed[q][k]), `${v}: original ${q} attends hidden ${k}`);
            });
          });
          // The original stream alone is a vanilla causal transformer.
          const orig = j.tokens.flatMap(([c], t) => c === 0 ? [t] : []);
          assertEquals(
            orig.map((q) => orig.map((k) => j.allowed[q][k])),
            literalJson("causal", { K: 1, L, W: 1, C: 1 }).allowed,
          );
        }
      }
      const phd1 = maskJson(await resolveSpec("phd", { K: 1 }), L);
      assertEquals(phd1, maskJson(await resolveSpec("causal", { K: 1 }), L));
    }
  }
  // The other presets, at their defaults, never leave a row fully masked either.
  for (const name of Object.keys(PRESETS)) {
    for (const L of [1, 5, 11]) {
      const j = maskJson(await resolveSpec(name, {}), L);
      ok(j.allowed.every((row) => row.includes(1)), `${name} L=${L}: a row is fully masked`);
    }
  }
});

/** Runs `cli/mask.ts` as the task does; returns stdout when it succeeds. */
async function runMask(args: string[]): Promise<string> {
  const r = await runScript("cli/mask.ts", ...args);
  ok(r.code === 0, `mask ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

Deno.test("deno task mask --json prints exactly the contract object (subprocess)", async () => {
  const [cswa, causal] = await Promise.all([
    runMask(["phd-cswa", "--L", "7", "--K", "3", "--W", "3", "--C", "2", "--json"]),
    runMask(["causal", "--L", "4", "--K", "2", "--json"]),
  ]);
  assertEquals(JSON.parse(cswa), literalJson("phd-cswa", { K: 3, L: 7, W: 3, C: 2 }));
  assertEquals(JSON.parse(causal), literalJson("causal", { K: 2, L: 4, W: 1, C: 1 }));
  // Nothing else on stdout: one compact JSON line with the keys in contract order.
  ok(/^\{"K":2,"L":4,"tokens":\[\[0,0\],\[1,0\],\[0,1\],.*\],"allowed":\[\[1,1,0,0,/.test(causal));
  assertEquals(causal.trimEnd().split("\n").length, 1);
});
