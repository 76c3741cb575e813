/**
 * KV slots driven by the retention plan: after each position, exactly the keys some later query
 * reads are live (checked against the dense mask, decoding past the plan's length), PHD's cache is
 * the vanilla one, SWA and CSWA add at most their window.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  type AttentionSpec,
  denseMask,
  phd,
  phdCswa,
  phdSwa,
  slidingWindow,
} from "../../dsl/mod.ts";
import { decodeLifetime, planRetention } from "../../compiler/analysis/retention.ts";
import { KvSlots } from "../../runtime/infer/kv_slots.ts";

function simulate(spec: AttentionSpec, planL: number, L: number) {
  const plan = planRetention(spec, { L: planL });
  const life = decodeLifetime(spec, plan, {});
  const slots = new KvSlots(spec.K, 2, (c, m) => life(c, m, L));
  // Queries range one position past the last one computed (the next token to decode).
  const d = denseMask(spec, L + 1), K = spec.K, N = K * (L + 1);
  const liveCounts: number[] = [];
  for (let n = 0; n < L; n++) {
    slots.admit(n);
    const live = new Set<string>();
    for (let s = 0; s < slots.capacity; s++) {
      if (slots.coords[2 * s] >= 0) live.add(`${slots.coords[2 * s]},${slots.coords[2 * s + 1]}`);
    }
    const needed = new Set<string>();
    for (let qi = (n + 1) * K; qi < N; qi++) {
      for (let ki = 0; ki < (n + 1) * K; ki++) {
        if (d.allowed[qi * N + ki]) needed.add(`${ki % K},${Math.floor(ki / K)}`);
      }
    }
    // Originals stay for the whole sequence even when the last query does not read them.
    for (const k of live) if (k.startsWith("0,") && plan.perCopy[0].kind === "all") needed.add(k);
    assertEquals([...live].sort(), [...needed].sort(), `${spec.name} after position ${n}`);
    liveCounts.push(slots.live);
  }
  return liveCounts;
}

Deno.test("live slots are exactly the keys later queries read, past the plan's length", () => {
  for (
    const spec of [
      phd({ K: 3 }),
      phdSwa({ K: 3, W: 4 }),
      phdCswa({ K: 2, W: 5, C: 3 }),
      slidingWindow({ W: 3 }),
    ]
  ) {
    simulate(spec, 6, 14);
  }
});

Deno.test("PHD keeps the vanilla cache; SWA and CSWA add at most their window", () => {
  const L = 20, W = 5, C = 4, K = 3;
  assertEquals(simulate(phd({ K }), 8, L), Array.from({ length: L }, (_, n) => n + 1));
  for (const [n, live] of simulate(phdSwa({ K, W }), 8, L).entries()) {
    assertEquals(live <= n + 1 + W - 1, true);
  }
  for (const [n, live] of simulate(phdCswa({ K, W, C }), 8, L).entries()) {
    assertEquals(live <= n + 1 + Math.min(W - 1, (C - 1) * (K - 1)), true);
  }
});
