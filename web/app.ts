/// <reference lib="dom" />
/**
 * The playground page (web/index.html): a spec typed in the editor becomes an AttentionSpec in the
 * page (web/spec_source.ts), its mask and tile classes are drawn in both layouts, its analysis and
 * WGSL shown; "run" executes its fused forward and backward on the page's WebGPU adapter against
 * the float64 reference; a checkpoint file (or the model trained here) streams text through the
 * PHD KV cache; a tiny training run draws its loss live. Every failure lands in the one error
 * line (`#error`), never a blank page. Only the platform-neutral core (web/core.ts) is used (the
 * float64 check through runtime/tune/attention_check.ts); bundled by `deno task bundle` into
 * web/dist/app.js.
 *
 * The panels live in web/page/ (spec, run, model); this file wires them to the page's elements.
 *
 * Elements carry `data-*` results (`data-ok`, `data-tokens`, `data-done`) that the end-to-end
 * tests (tests/web/page_test.ts) read.
 */
import { LAYOUTS } from "./core.ts";
import { $, action, clearError, guarded, input, showError } from "./page/dom.ts";
import {
  compile,
  initEditor,
  loadExamples,
  pickExample,
  setZoom,
  showWgsl,
  zoom,
} from "./page/spec_panel.ts";
import { run } from "./page/run_panel.ts";
import { generate, loadFile, saveTrained, stopTraining, train } from "./page/model_panel.ts";

globalThis.addEventListener("error", (e) => showError(e.error ?? e.message));
globalThis.addEventListener("unhandledrejection", (e) => showError(e.reason));

function main(): void {
  initEditor();
  action("compile", compile);
  for (const id of ["L", "tile"]) input(id).addEventListener("change", guarded(compile));
  for (const id of ["wgsl-kind", "layout", "head-dim"]) {
    $(id).addEventListener("change", guarded(showWgsl));
  }
  $("example").addEventListener("change", guarded(pickExample));
  $("zoom-in").addEventListener("click", () => setZoom(zoom * 2));
  $("zoom-out").addEventListener("click", () => setZoom(zoom / 2));
  $("zoom-fit").addEventListener("click", () => setZoom(1));
  for (const layout of LAYOUTS) {
    $(`pic-${layout}`).addEventListener("wheel", (e) => {
      if (!e.ctrlKey) return;
      e.preventDefault();
      setZoom(zoom * (e.deltaY < 0 ? 2 : 0.5));
    }, { passive: false });
  }
  action("run", run);
  input("ckpt").addEventListener("change", guarded(loadFile));
  action("generate", generate);
  action("train", train);
  $("train-stop").addEventListener("click", stopTraining);
  $("train-save").addEventListener("click", guarded(saveTrained));
  clearError();
  guarded(compile)();
  guarded(loadExamples)();
  document.body.dataset.ready = "true";
}

main();
