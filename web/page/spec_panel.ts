/// <reference lib="dom" />
/**
 * The spec panel: the editor's spec compiled in the page (web/spec_source.ts), its mask and tile
 * classes drawn in both layouts (zoomable), its analysis and the WGSL of the kernels "run" uses,
 * and the example specs served beside the page (`deno task serve` lists examples/masks/).
 */
import {
  analyze,
  type AttentionKernelKind,
  attentionParams,
  type AttentionSpec,
  buildAttentionKernel,
  checkCausality,
  classifyTiles,
  type Layout,
  LAYOUTS,
  maskSvg,
  reorderMask,
  specBindings,
  tileDenseMask,
} from "../core.ts";
import { specFromSource } from "../spec_source.ts";
import { createSpecEditor, type SpecEditor } from "../editor.ts";
import { DEFAULT_SPEC } from "../examples.ts";
import { $, firstLine, guarded, intField, ms, pct } from "./dom.ts";

/** Most tokens (K*L) for which the dense mask panel is drawn (tile classes only above). */
const DENSE_LIMIT = 4096;

/** The spec the panel shows, compiled; undefined while the editor holds an error. */
export let current: { spec: AttentionSpec; L: number; tile: number } | undefined;
let editor: SpecEditor;

/** Compiles the editor's spec; on failure the status says so and the error line says why. */
export function compile(): void {
  const status = $("compile-status");
  status.textContent = "compiling…";
  delete $("spec-section").dataset.compiled;
  current = undefined; // "run" must never use a spec the editor no longer shows
  try {
    compileEditor();
    editor.clearError();
  } catch (e) {
    status.textContent = "not compiled (see the error line and the marked line)";
    editor.markError(firstLine(e));
    throw e;
  }
}

function compileEditor(): void {
  const t0 = performance.now(), status = $("compile-status");
  const spec = specFromSource(editor.value);
  const L = intField("L", 1, 8192), tile = intField("tile", 1, 256);
  const bindings = specBindings(spec);
  const causality = checkCausality(spec, { L, bindings });
  if (!causality.causal) {
    showAnalysis([["causality", causality.message]]);
    throw new Error(causality.message);
  }
  const a = analyze(spec, { L, tile, layout: "grouped", bindings });
  const tiles = {
    grouped: a.tiles,
    interleaved: classifyTiles(spec, {
      L,
      tileQ: tile,
      tileK: tile,
      layout: "interleaved",
      bindings,
    }),
  };
  // The grouped tiles make the dense mask cheap (only partial tiles evaluate the mask).
  const N = spec.K * L;
  const grouped = N <= DENSE_LIMIT ? tileDenseMask(spec, tiles.grouped, bindings) : undefined;
  for (const layout of LAYOUTS) {
    $(`pic-${layout}`).innerHTML = maskSvg({
      name: spec.name,
      mask: grouped && (layout === "grouped" ? grouped : reorderMask(grouped, layout)),
      maskLayout: layout,
      rasterSide: N, // one pixel per pair, so zooming in shows single pairs
      tiles: tiles[layout],
    });
  }
  applyZoom();
  const r = a.retention, pf = a.prefill;
  const sparsity = LAYOUTS.map((l) => {
    const t = tiles[l];
    return `${l}: ${t.tileQ}×${t.tileK} tiles keep ${pct(t.keptFraction)} of pairs ` +
      `(${t.counts.full} full, ${t.counts.partial} partial, ${t.counts.empty} empty)`;
  });
  const ranges = pf.perCopy.map((rs, c) =>
    `copy ${c}: ${
      rs.map((x) => (x.lo === x.hi ? `${x.lo}` : `${x.lo}..${x.hi}`)).join(", ") || "-"
    }`
  );
  const params = Object.entries(spec.params).map(([k, v]) => `${k}=${v}`).join(" ");
  showAnalysis([
    ["spec", `${spec.name}: K=${spec.K}, L=${L} (${N} tokens)${params ? `, ${params}` : ""}`],
    ["mask", spec.source],
    ["causality", causality.message],
    [
      "KV retention",
      `${r.formula} cached tokens per layer and KV head (at most ${r.maxCachedTokens} for ` +
      `L=${L}, ${r.bounded ? "bounded" : "unbounded"}); ` +
      r.perCopy.map((c) =>
        `copy ${c.copy} ${c.kind === "window" ? `window (${c.positions})` : c.kind}`
      )
        .join(", "),
    ],
    [
      "prefill set",
      `${pf.count} tokens for a prompt of ${pf.P} (×${pf.ratio.toFixed(2)} of vanilla)`,
    ],
    ["prefill by copy", ranges.join("; ")],
    ["sparsity", sparsity.join("; ")],
    [
      "analysis time",
      Object.entries(a.ms).map(([k, v]) => `${k} ${ms(v)}`).join(", ") +
      (grouped ? "" : `; dense panel skipped above ${DENSE_LIMIT} tokens`),
    ],
  ]);
  current = { spec, L, tile };
  showWgsl();
  const took = performance.now() - t0;
  status.textContent = `${spec.name} compiled in ${ms(took)}`;
  $("spec-section").dataset.compileMs = String(took);
  $("spec-section").dataset.compiled = spec.name;
}

function showAnalysis(rows: [string, string][]): void {
  const dl = $("analysis");
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    dd.dataset.key = k;
    return [dt, dd];
  }));
}

/** The WGSL of the kernel chosen in `#wgsl-kind`, built as "run" builds it. */
export function showWgsl(): void {
  if (!current) return;
  const kind = $<HTMLSelectElement>("wgsl-kind").value as AttentionKernelKind;
  const layout = $<HTMLSelectElement>("layout").value as Layout;
  const k = buildAttentionKernel(
    kind,
    // The same parameters FlashAttention builds for "run" (one definition of the defaults).
    attentionParams(current.spec, intField("head-dim", 4, 128), { layout }),
  );
  $("wgsl").textContent = k.code;
  $("wgsl-info").textContent =
    `${k.label}: workgroup ${k.workgroupSize}, binds ${k.bindings.join(", ")}; ` +
    `${k.code.split("\n").length} lines`;
}

/** The pictures' zoom factor. */
export let zoom = 1;

function applyZoom(): void {
  // Percent of the frame's width (the SVG keeps its aspect from its viewBox): no layout reads.
  for (const layout of LAYOUTS) {
    const svg = $(`pic-${layout}`).querySelector("svg");
    if (!svg) continue;
    svg.style.width = `${100 * zoom}%`;
    svg.style.height = "auto";
  }
  $("zoom-level").textContent = `${zoom}×`;
}

/** Zooms both pictures (1x to 32x). */
export function setZoom(z: number): void {
  zoom = Math.min(32, Math.max(1, z));
  applyZoom();
}

/** Adds the served example specs to the example menu (none on a static host). */
export async function loadExamples(): Promise<void> {
  const res = await fetch("examples/masks/index.json").catch(() => undefined);
  if (!res?.ok) return; // a static host without the listing: the built-in example only
  const names: string[] = await res.json();
  const select = $<HTMLSelectElement>("example");
  for (const n of names) select.add(new Option(n.replace(/\.ts$/, ""), n));
}

/** Puts the chosen example (or the built-in spec) into the editor and compiles it. */
export async function pickExample(): Promise<void> {
  const name = $<HTMLSelectElement>("example").value;
  let source = DEFAULT_SPEC;
  if (name) {
    const res = await fetch(`examples/masks/${name}`);
    if (!res.ok) throw new Error(`cannot load example ${name}: HTTP ${res.status}`);
    source = await res.text();
  }
  editor.setValue(source);
  compile();
}

/** The editor, holding `DEFAULT_SPEC`; an edit recompiles after a short pause. */
export function initEditor(): void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  editor = createSpecEditor($("spec"), DEFAULT_SPEC, () => {
    clearTimeout(timer);
    timer = setTimeout(guarded(compile), 400);
  });
}
