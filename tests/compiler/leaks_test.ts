/**
 * What a causal LM's loss may not see (compiler/analysis/leaks.ts), against brute force on the
 * dense mask: a prefix-LM's predictions inside its prefix see their targets, a causal spec's never
 * do; rows that see nothing are counted; and the refusals that train and eval give.
 */
import { deepStrictEqual as assertEquals, match, throws } from "node:assert/strict";
import fc from "fast-check";
import { denseMask } from "../../dsl/eval.ts";
import { causal, phdCswa, prefixLm } from "../../dsl/presets.ts";
import { and, defineAttention, phdBase } from "../../dsl/mod.ts";
import { respec } from "../../dsl/spec.ts";
import { lossPositions, predictionLeaks, scoredPositions } from "../../compiler/analysis/leaks.ts";

/** Leaky positions by brute force: p leaks when a query at a position <= p reads a key after p. */
function bruteLeaky(spec: ReturnType<typeof prefixLm>, L: number): number[] {
  const d = denseMask(spec, L), N = spec.K * L, out: number[] = [];
  for (let p = 0; p < L; p++) {
    let leak = false;
    for (let q = 0; q < N && !leak; q++) {
      if (d.tokens[q][1] > p) continue;
      for (let k = 0; k < N; k++) if (d.allowed[q * N + k] && d.tokens[k][1] > p) leak = true;
    }
    if (leak) out.push(p);
  }
  return out;
}

Deno.test("prefix-LM leaks inside its prefix; causal specs never", () => {
  const plm = prefixLm({ P: 4 });
  const leaks = predictionLeaks(plm, 7);
  assertEquals(leaks.leaky, [0, 1, 2]);
  assertEquals(lossPositions(7, leaks), [3, 4, 5, 6]);
  assertEquals(predictionLeaks(phdCswa({ K: 3, W: 4, C: 3 }), 9).leaky, []);
  assertEquals(predictionLeaks(causal({ K: 2 }), 5).leaky, []);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({
        min: 1,
        max: 9,
      }),
      (P, K, L) => {
        const spec = respec(prefixLm(), { K, params: { P } });
        assertEquals(predictionLeaks(spec, L).leaky, bruteLeaky(spec, L));
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("rows that see nothing are counted and warned about once", () => {
  // Hidden copies see only hidden keys of earlier positions: position 0's hidden rows see nothing.
  const blind = defineAttention({
    name: "blind",
    K: 2,
    mask: (ctx) => and(phdBase(ctx), ctx.k.original, ctx.q.original),
  });
  const leaks = predictionLeaks(blind, 4);
  assertEquals(leaks.emptyRows, 4); // every hidden row; an original always sees itself
  const lines: string[] = [];
  scoredPositions(blind, 4, { warn: (l) => lines.push(l), what: "train" });
  assertEquals(lines.length, 1);
  match(lines[0], /4 of 8 query rows attend no key/);
});

Deno.test("train refuses a leaking spec unless asked, and scores the rest when asked", () => {
  const plm = prefixLm({ P: 4 });
  throws(
    () => scoredPositions(plm, 7, { what: "train" }),
    /lets 3 of 7 predictions see their target: query \(copy 0, pos 0\) attends key \(copy 0, pos 3\), .* pass --allow-leak/,
  );
  assertEquals(scoredPositions(plm, 7, { allowLeak: true, what: "train" }), [3, 4, 5, 6]);
  const peek = defineAttention({ name: "peek", mask: ({ q, k }) => k.pos.le(q.pos.add(1)) });
  throws(() => scoredPositions(peek, 5, { allowLeak: true, what: "train" }), /is not causal/);
  assertEquals(scoredPositions(phdCswa(), 64, { what: "train" }), undefined);
});
