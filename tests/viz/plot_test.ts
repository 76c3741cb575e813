/** Line charts: one polyline per series, escaped labels, and an error for an empty chart. */
import { ok, throws } from "node:assert/strict";
import { lineChart } from "../../viz/chart.ts";

Deno.test("line chart draws each series and escapes text", () => {
  const svg = lineChart(
    [{ name: "train <loss>", points: [[0, 3], [1, 2.5], [2, NaN]] }, {
      name: "val",
      points: [[0, 3.1]],
    }],
    { title: "loss & steps", xLabel: "step", yLabel: "nats" },
  );
  ok(svg.startsWith("<svg") && svg.endsWith("</svg>"));
  ok((svg.match(/<polyline/g) ?? []).length === 2);
  ok(svg.includes("train &lt;loss&gt;") && svg.includes("loss &amp; steps"));
  throws(
    () => lineChart([{ name: "x", points: [] }], { title: "t", xLabel: "", yLabel: "" }),
    /no finite points/,
  );
});
