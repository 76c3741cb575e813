/**
 * The serialised form of specs (dsl/serial.ts): every preset and every file of examples/masks/
 * survives JSON text unchanged in meaning (same name, source and dense mask, same score), a
 * rebuilt spec takes new parameters but refuses another K, and malformed input is one error line
 * naming the bad node.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  denseMask,
  documentMask,
  evalFloat,
  PRESETS,
  respec,
  specFromJson,
  specToJson,
} from "../../dsl/mod.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";

const MASKS = new URL("../../examples/masks/", import.meta.url);

async function exampleSpecs(): Promise<AttentionSpec[]> {
  const out: AttentionSpec[] = [];
  for await (const e of Deno.readDir(MASKS)) {
    if (e.name.endsWith(".ts")) out.push((await import(new URL(e.name, MASKS).href)).default);
  }
  return out;
}

Deno.test("every preset and example mask round-trips through JSON text", async () => {
  const specs = [
    ...Object.values(PRESETS).map((f) => f()),
    documentMask({ docs: [0, 3, 7] }),
    ...await exampleSpecs(),
  ];
  for (const s of specs) {
    const back = specFromJson(JSON.stringify(specToJson(s)));
    for (const k of ["name", "K", "source", "positions", "bidirectional", "description"] as const) {
      deepStrictEqual(back[k], s[k], `${s.name}: ${k}`);
    }
    deepStrictEqual(back.tables, s.tables, s.name);
    deepStrictEqual(denseMask(back, 9).allowed, denseMask(s, 9).allowed, `${s.name}: mask`);
    if (s.score) {
      const at = { qc: 1, qp: 3, kc: 0, kp: 2 }, b = { params: s.params, tables: s.tables };
      strictEqual(evalFloat(back.score!, at, b, 41.5, 1), evalFloat(s.score, at, b, 41.5, 1));
    }
  }
});

Deno.test("a rebuilt spec takes new parameters and tables, and refuses another K", () => {
  const s = specFromJson(specToJson(PRESETS["phd-cswa"]()));
  strictEqual(respec(s, { params: { W: 4 } }).name, "phd_cswa_k3_w4_c32");
  const d = respec(specFromJson(specToJson(documentMask())), { tables: { docs: [0, 5] } });
  deepStrictEqual(d.tables.docs, [0, 5]);
  throws(() => respec(s, { K: 2 }), /serialised form for K = 3 and cannot take K = 2/);
});

Deno.test("malformed serialised specs: one line naming the bad node", () => {
  const good = specToJson(PRESETS["phd-swa"]());
  const cases: [unknown, RegExp][] = [
    ["not json", /not a serialised attention spec/],
    [{ ...good, format: "x" }, /spec.format must be/],
    [
      { ...good, mask: { op: "or", args: [{ op: "cmp", cmp: "lt", a: { op: "var" } }] } },
      /spec.mask.args\[0\].a.side/,
    ],
    [{ ...good, mask: { op: "xor" } }, /unknown boolean op "xor"/],
    [{ ...good, params: {} }, /reads "W" but declares no parameter/],
    [{ ...good, K: 0 }, /K of spec "phd_swa" must be an integer in \[1, 256\]/],
    [{ ...good, score: { op: "fconst", value: "1" } }, /spec.score.value must be a finite number/],
  ];
  for (const [x, re] of cases) {
    throws(() => specFromJson(x), (e: Error) => {
      strictEqual(e.message.split("\n").length, 1);
      return re.test(e.message) && /^not a serialised attention spec/.test(e.message);
    }, String(re));
  }
});
