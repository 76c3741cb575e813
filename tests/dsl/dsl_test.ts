/** The DSL surface: names carry parameters, declarations are checked with one clear error, and
 * the reference interpreter's integer semantics (floor division/modulo, segments). */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  defineAttention,
  evalBool,
  evalInt,
  floorDiv,
  floorMod,
  int,
  phdCswa,
  respec,
  segmentOf,
  softcap,
} from "../../dsl/mod.ts";

Deno.test("pattern names carry K and every parameter", () => {
  assertEquals(phdCswa({ K: 3, W: 16, C: 32 }).name, "phd_cswa_k3_w16_c32");
  assertEquals(respec(phdCswa(), { K: 2, params: { W: 4 } }).name, "phd_cswa_k2_w4_c32");
});

Deno.test("bad declarations fail with one line naming the problem", () => {
  const mask = () => int(0).eq(0);
  throws(
    () => defineAttention({ name: "x", K: 0, mask }),
    /K of spec "x" must be an integer in \[1, 256\], got 0/,
  );
  throws(() => defineAttention({ name: "x", K: 1.5, mask }), /got 1.5/);
  throws(() => defineAttention({ name: "bad name", mask }), /identifier/);
  throws(
    () =>
      defineAttention({
        name: "x",
        mask: ({ q }) => q.pos.lt(int(3).add(q.copy)).and(q.pos.eq(0)),
        params: { W: -1 },
      }),
    /parameter W of spec "x" must be an integer >= 0, got -1/,
  );
  throws(
    () =>
      defineAttention({ name: "x", mask: ({ q, k }) => k.segment("docs").eq(q.segment("docs")) }),
    /reads "docs" but declares no parameter or table/,
  );
  throws(() => respec(phdCswa(), { params: { Q: 1 } }), /has no parameter Q \(it has: W, C\)/);
  throws(() => defineAttention({ name: "x", mask, tables: { d: [0, 0] } }), /strictly increasing/);
  throws(() => int(1.5), /expected an integer/);
  throws(() => softcap(undefined as never, 0), /positive cap/);
});

Deno.test("integer semantics: floor division and modulo, segments", () => {
  assertEquals([floorDiv(-7, 2), floorDiv(7, 2), floorMod(-7, 3), floorMod(7, 3)], [-4, 3, 2, 1]);
  throws(() => floorDiv(1, 0), /division by 0/);
  assertEquals([segmentOf([0, 5, 9], 4), segmentOf([0, 5, 9], 5), segmentOf([3], 1)], [0, 1, -1]);
  const at = { qc: 1, qp: 7, kc: 0, kp: 2 }, b = { params: { C: 4 }, tables: {} };
  const spec = phdCswa({ K: 3, W: 2, C: 4 });
  assertEquals(evalBool(spec.mask, at, b), true); // an original at an earlier position
  assertEquals(
    evalInt(
      { op: "div", a: { op: "var", side: "q", field: "pos" }, b: { op: "const", value: 4 } },
      at,
      b,
    ),
    1,
  );
});

Deno.test("source text of a spec is readable infix", () => {
  const s = defineAttention({
    name: "win",
    params: { W: 3 },
    mask: ({ q, k, p }) => q.pos.sub(p.W).lt(k.pos).and(k.pos.le(q.pos)),
  });
  assertEquals(s.source, "((q.pos - W) < k.pos && k.pos <= q.pos)");
});
