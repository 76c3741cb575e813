/// <reference lib="dom" />
/**
 * "run": the compiled spec's fused forward and backward on the page's adapter, timed, checked
 * against the float64 reference through the library (runtime/tune/attention_check.ts).
 */
import { checkAttention, FlashAttention, type Layout, Rng } from "../core.ts";
import { $, intField, ms } from "./dom.ts";
import { gpu } from "./device.ts";
import { compile, current } from "./spec_panel.ts";

/** Runs the kernels and fills `#run-result` (its `data-ok`) and `#run-timing`. */
export async function run(): Promise<void> {
  if (!current) compile();
  const { spec, L } = current!;
  const layout = $<HTMLSelectElement>("layout").value as Layout;
  const headDim = intField("head-dim", 4, 128), heads = intField("heads", 1, 16);
  if (headDim % 4 !== 0) throw new RangeError(`head dim must be a multiple of 4, got ${headDim}`);
  const table = $("run-result");
  delete table.dataset.ok;
  table.textContent = "";
  $("run-timing").textContent = "running…";
  const ctx = await gpu();
  const N = spec.K * L, rng = new Rng(1);
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
  const x = {
    q: rand(heads * N * headDim),
    k: rand(heads * N * headDim),
    v: rand(heads * N * headDim),
    dO: rand(heads * N * headDim),
  };
  const fa = new FlashAttention(ctx.gpu, ctx.cache, spec, { headDim, layout });
  const shape = { L, heads };
  let t0 = performance.now();
  const got = await fa.run(x, shape);
  const first = performance.now() - t0;
  const warm: number[] = [];
  for (let i = 0; i < 3; i++) {
    t0 = performance.now();
    await fa.run(x, shape);
    warm.push(performance.now() - t0);
  }
  warm.sort((a, b) => a - b);
  const p = { spec, L, layout, batch: 1, heads, kvHeads: heads, headDim };
  const { errors: errs, ok, referenceMs: refMs } = checkAttention(p, x, got);
  const rows = Object.entries(errs).map(([k, e]) =>
    `<tr><td>${k}</td><td>${e.err.toExponential(2)}</td><td>${e.naive.toExponential(2)}</td>` +
    `<td class="${e.ok ? "ok" : "bad"}">${e.ok ? "ok" : "too large"}</td></tr>`
  );
  table.innerHTML = `<tr><th>output</th><th>max |GPU − f64|</th><th>naive f32 error</th>` +
    `<th>≤ 2× naive</th></tr>${rows.join("")}`;
  table.dataset.ok = String(ok);
  table.dataset.warmMs = String(warm[1]);
  $("run-timing").textContent =
    `${spec.name}, ${layout}, ${heads} heads × ${N} tokens × d=${headDim}: ` +
    `forward + backward ${ms(warm[1])} (median of 3 warm runs, with upload and readback); ` +
    `first run ${ms(first)} (with any pipeline not built yet); float64 reference ` +
    `${ms(refMs)} on the CPU`;
  if (!ok) throw new Error(`the fused kernels disagree with the reference (see the table)`);
}
