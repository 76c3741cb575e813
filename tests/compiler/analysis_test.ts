/**
 * The compiler's analysis against brute force on the dense reference: tile classes, causality,
 * retention and prefill sets, for the presets and for random DSL expressions (fast-check).
 */
import fc from "fast-check";
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  type AttentionSpec,
  causal,
  defineAttention,
  denseMask,
  documentMask,
  phd,
  phdCswa,
  phdSwa,
  prefixLm,
  respec,
  slidingWindow,
} from "../../dsl/mod.ts";
import { checkCausality } from "../../compiler/analysis/causality.ts";
import { type Layout, storageIndex } from "../../compiler/layout.ts";
import { prefillSet } from "../../compiler/analysis/prefill.ts";
import { planRetention } from "../../compiler/analysis/retention.ts";
import { classifyTiles } from "../../compiler/analysis/tiles.ts";
import { analyze } from "../../compiler/analysis/analyze.ts";
import { maskOracle, MAYBE, region, tighten, TRUE } from "../../compiler/analysis/abstract.ts";
import { specArbOf } from "../fixtures/random_specs.ts";

/** Tile classes by enumerating every pair. */
function bruteTiles(spec: AttentionSpec, L: number, tq: number, tk: number, layout: Layout) {
  const d = denseMask(spec, L), K = spec.K, N = K * L;
  const cols = Math.ceil(N / tk), cells = Math.ceil(N / tq) * cols;
  const any = new Uint8Array(cells), all = new Uint8Array(cells).fill(1);
  for (let qi = 0; qi < N; qi++) {
    for (let ki = 0; ki < N; ki++) {
      const sq = storageIndex(layout, K, L, ...d.tokens[qi]);
      const sk = storageIndex(layout, K, L, ...d.tokens[ki]);
      const t = Math.floor(sq / tq) * cols + Math.floor(sk / tk);
      if (d.allowed[qi * N + ki]) any[t] = 1;
      else all[t] = 0;
    }
  }
  return Array.from(any, (a, i) => (all[i] ? 2 : a ? 1 : 0));
}

/** Lifetimes by enumeration: queries over L + 1 positions, keys over L. */
function bruteLifetimes(spec: AttentionSpec, L: number): number[] {
  const d = denseMask(spec, L + 1), K = spec.K, N = K * (L + 1);
  const life: number[] = [];
  for (let c = 0; c < K; c++) {
    for (let m = 0; m < L; m++) {
      let last = m;
      for (let qi = 0; qi < N; qi++) {
        if (d.allowed[qi * N + m * K + c]) last = Math.max(last, d.tokens[qi][1]);
      }
      life.push(last);
    }
  }
  return life;
}

/** Prefill set by enumeration: retained keys, the last token, closed under attention. */
function brutePrefill(spec: AttentionSpec, P: number): string[] {
  const K = spec.K, life = bruteLifetimes(spec, P), d = denseMask(spec, P), N = K * P;
  const need = new Set<number>(); // canonical indices
  for (let c = 0; c < K; c++) {
    for (let m = 0; m < P; m++) if (life[c * P + m] > P - 1) need.add(m * K + c);
  }
  need.add((P - 1) * K + K - 1);
  const stack = [...need];
  while (stack.length) {
    const qi = stack.pop()!;
    for (let ki = 0; ki < N; ki++) {
      if (d.allowed[qi * N + ki] && !need.has(ki)) {
        need.add(ki);
        stack.push(ki);
      }
    }
  }
  return [...need].map((t) => `${t % K},${Math.floor(t / K)}`).sort();
}

function prefillTokens(spec: AttentionSpec, P: number): string[] {
  const out: string[] = [];
  prefillSet(spec, { P }).perCopy.forEach((rs, c) => {
    for (const r of rs) for (let p = r.lo; p <= r.hi; p++) out.push(`${c},${p}`);
  });
  return out.sort();
}

function bruteCausal(spec: AttentionSpec, L: number): boolean {
  if (spec.bidirectional === true) return true;
  const d = denseMask(spec, L), N = spec.K * L;
  for (let qi = 0; qi < N; qi++) {
    for (let ki = 0; ki < N; ki++) {
      if (!d.allowed[qi * N + ki]) continue;
      const [qc, qp] = d.tokens[qi], [kc, kp] = d.tokens[ki];
      if (kp > qp) return false;
      if (kp === qp && kc > qc && spec.bidirectional !== "copies") return false;
    }
  }
  return true;
}

// ---- random DSL expressions (tests/fixtures/random_specs.ts) --------------------------------

const specArb = specArbOf();

const RUNS = 300;

Deno.test("tile classes equal brute force for random specs, sizes, tiles and layouts", () => {
  fc.assert(
    fc.property(
      specArb,
      fc.integer({ min: 1, max: 16 }),
      fc.integer({ min: 1, max: 7 }),
      fc.integer({ min: 1, max: 7 }),
      fc.constantFrom<Layout>("interleaved", "grouped"),
      (spec, L, tq, tk, layout) => {
        const got = classifyTiles(spec, { L, tileQ: tq, tileK: tk, layout });
        assertEquals(Array.from(got.classes), bruteTiles(spec, L, tq, tk, layout), spec.source);
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("causality proof equals brute force and names a real witness", () => {
  fc.assert(
    fc.property(specArb, fc.integer({ min: 1, max: 16 }), (spec, L) => {
      const c = checkCausality(spec, { L });
      assertEquals(c.causal, bruteCausal(spec, L), spec.source);
      if (c.witness) {
        const d = denseMask(spec, L), N = spec.K * L;
        const [qc, qp] = c.witness.query, [kc, kp] = c.witness.key;
        assertEquals(d.allowed[(qp * spec.K + qc) * N + kp * spec.K + kc], 1);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("retention lifetimes and prefill sets equal brute force for random specs", () => {
  fc.assert(
    fc.property(specArb, fc.integer({ min: 1, max: 16 }), (spec, L) => {
      assertEquals(
        Array.from(planRetention(spec, { L }).lifetime),
        bruteLifetimes(spec, L),
        spec.source,
      );
      assertEquals(prefillTokens(spec, L), brutePrefill(spec, L), spec.source);
      if (checkCausality(spec, { L }).causal) {
        const got = prefillSet(spec, { P: L, causal: true }).count;
        assertEquals(got, brutePrefill(spec, L).length, spec.source);
      }
    }),
    { numRuns: RUNS },
  );
});

const presets = (K: number, W: number, C: number) => [
  respec(causal(), { K }),
  phd({ K }),
  phdSwa({ K, W }),
  phdCswa({ K, W, C }),
  slidingWindow({ W }),
  prefixLm({ P: C }),
  documentMask({ docs: [0, C, C + W] }),
];

Deno.test("presets: every analysis equals brute force over many K, L, W, C", () => {
  for (const K of [1, 2, 3, 5]) {
    for (const [W, C] of [[1, 1], [2, 3], [4, 2], [7, 4]]) {
      for (const spec of presets(K, W, C)) {
        for (const L of [1, 4, 11]) {
          assertEquals(checkCausality(spec, { L }).causal, bruteCausal(spec, L), spec.name);
          assertEquals(
            Array.from(planRetention(spec, { L }).lifetime),
            bruteLifetimes(spec, L),
            spec.name,
          );
          assertEquals(prefillTokens(spec, L), brutePrefill(spec, L), `${spec.name} P=${L}`);
          for (const layout of ["interleaved", "grouped"] as const) {
            const got = classifyTiles(spec, { L, tileQ: 4, tileK: 3, layout });
            assertEquals(Array.from(got.classes), bruteTiles(spec, L, 4, 3, layout), spec.name);
          }
        }
      }
    }
  }
});

Deno.test("retention and prefill follow docs/DESIGN.md 1.4 for the PHD presets", () => {
  const L = 40, K = 3, W = 5, C = 8;
  const hiddenOf = (spec: AttentionSpec) => prefillSet(spec, { P: L }).perCopy.slice(1);
  // PHD: the vanilla cache; prefill = originals + the last token's copies.
  assertEquals(planRetention(phd({ K }), { L }).formula, "L");
  assertEquals(planRetention(phd({ K }), { L }).maxCachedTokens, L);
  assertEquals(hiddenOf(phd({ K })), [[{ lo: L - 1, hi: L - 1 }], [{ lo: L - 1, hi: L - 1 }]]);
  // SWA: W-1 hidden keys kept; prefill computes the hidden tokens of the whole prompt.
  assertEquals(planRetention(phdSwa({ K, W }), { L }).formula, `L + ${W - 1}`);
  assertEquals(hiddenOf(phdSwa({ K, W })), [[{ lo: 0, hi: L - 1 }], [{ lo: 0, hi: L - 1 }]]);
  // CSWA: min(W-1, (C-1)(K-1)) hidden keys; prefill computes the hidden tokens of the last chunk.
  assertEquals(
    planRetention(phdCswa({ K, W, C }), { L }).formula,
    `L + ${Math.min(W - 1, (C - 1) * (K - 1))}`,
  );
  const last = Math.floor((L - 1) / C) * C;
  assertEquals(hiddenOf(phdCswa({ K, W, C })), [[{ lo: last, hi: L - 1 }], [{
    lo: last,
    hi: L - 1,
  }]]);
  // Originals never attend hidden tokens, so the original stream's cache is exactly vanilla.
  for (const spec of [phd({ K }), phdSwa({ K, W }), phdCswa({ K, W, C })]) {
    assertEquals(planRetention(spec, { L }).perCopy[0].kind, "all");
    assertEquals(planRetention(spec, { L }).bounded, true);
  }
});

Deno.test("analysis refuses a non-causal spec with a witness, accepts declared bidirectional", () => {
  const peek = defineAttention({ name: "peek", mask: ({ q, k }) => k.pos.le(q.pos.add(1)) });
  let message = "";
  try {
    analyze(peek, { L: 8 });
  } catch (e) {
    message = (e as Error).message;
  }
  assertEquals(
    message,
    'spec "peek_k1" is not causal: query (copy 0, pos 0) attends key (copy 0, pos 1) at a later ' +
      "position; fix the mask, or declare bidirectional: true if that is intended",
  );
  assertEquals(analyze(prefixLm(), { L: 8 }).causality.causal, true);
});

Deno.test("analysis of phd-cswa at K=3, L=32768 takes well under a second", () => {
  // Not a timing assertion (bench/analysis.ts measures it); this checks it completes and its size.
  const a = analyze(phdCswa({ K: 3, W: 16, C: 32 }), { L: 32768 });
  assertEquals(a.retention.formula, "L + 15");
  assertEquals(a.prefill.count, 32768 + 2 * 32);
  assertEquals(a.tiles.rows, 1536);
});

Deno.test("abstract verdicts are sound on random regions with position-difference bounds", () => {
  fc.assert(
    fc.property(
      specArb,
      fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 8, maxLength: 8 }),
      fc.integer({ min: -8, max: 8 }),
      fc.integer({ min: 0, max: 8 }),
      (spec, e, dlo, dw) => {
        const K = spec.K, c = (x: number) => x % K;
        const r = region(
          [Math.min(c(e[0]), c(e[1])), Math.max(c(e[0]), c(e[1]))],
          [Math.min(e[2], e[3]), Math.max(e[2], e[3])],
          [Math.min(c(e[4]), c(e[5])), Math.max(c(e[4]), c(e[5]))],
          [Math.min(e[6], e[7]), Math.max(e[6], e[7])],
          [dlo, dlo + dw],
        );
        if (!tighten(r)) return;
        const o = maskOracle(spec.mask, { params: spec.params, tables: spec.tables });
        const v = o.verdict(r);
        if (v === MAYBE) return;
        for (let qc = r.lo[0]; qc <= r.hi[0]; qc++) {
          for (let qp = r.lo[1]; qp <= r.hi[1]; qp++) {
            for (let kc = r.lo[2]; kc <= r.hi[2]; kc++) {
              for (let kp = r.lo[3]; kp <= r.hi[3]; kp++) {
                if (kp - qp < r.dlo || kp - qp > r.dhi) continue;
                assertEquals(o.allowed(qc, qp, kc, kp), v === TRUE, spec.source);
              }
            }
          }
        }
      },
    ),
    { numRuns: RUNS },
  );
});
