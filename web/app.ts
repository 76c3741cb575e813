/// <reference lib="dom" />
/**
 * The playground page (web/index.html): a spec typed in the editor becomes an AttentionSpec in the
 * page (web/spec_source.ts), its mask and tile classes are drawn in both layouts, its analysis and
 * WGSL shown; "run" executes its fused forward and backward on the page's WebGPU adapter against
 * the float64 reference; a checkpoint file (or the model trained here) streams text through the
 * PHD KV cache; a tiny training run draws its loss live. Every failure lands in the one error
 * line (`#error`), never a blank page. Only the platform-neutral core (web/core.ts) and the
 * reference checker are used; bundled by `deno task bundle` into web/dist/app.js.
 *
 * Elements carry `data-*` results (`data-ok`, `data-tokens`, `data-done`) that the end-to-end
 * tests (tests/web/page_test.ts) read.
 */
import {
  analyze,
  type AttentionKernelKind,
  attentionParams,
  type AttentionSpec,
  buildAttentionKernel,
  ByteTokenizer,
  checkCausality,
  type Checkpoint,
  classifyTiles,
  type Config,
  createContext,
  decodeCheckpoint,
  Decoder,
  encodeCheckpoint,
  FlashAttention,
  type KernelContext,
  type Layout,
  LAYOUTS,
  lineChart,
  maskSvg,
  ModelParams,
  parseConfig,
  phdOf,
  reorderMask,
  Rng,
  type SamplingOptions,
  specBindings,
  tileDenseMask,
  tokenizerFromMetadata,
  Trainer,
} from "./core.ts";
import {
  attentionErrors,
  type AttentionProblem,
  referenceAttention,
} from "../reference/attention.ts";
import { specFromSource } from "./spec_source.ts";
import { createSpecEditor, type SpecEditor } from "./editor.ts";
import { DEFAULT_SPEC, TRAINING_TEXT } from "./examples.ts";

/** Most tokens (K*L) for which the dense mask panel is drawn (tile classes only above). */
const DENSE_LIMIT = 4096;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page lacks #${id}`);
  return el as T;
};
const input = (id: string) => $<HTMLInputElement>(id);

// ---- the error line ----

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0].replace(/^error: /, "");
}

function showError(e: unknown): void {
  $("error").textContent = `error: ${firstLine(e)}`;
}

function clearError(): void {
  $("error").textContent = "";
}

globalThis.addEventListener("error", (e) => showError(e.error ?? e.message));
globalThis.addEventListener("unhandledrejection", (e) => showError(e.reason));

/** Runs a button's action: disables it meanwhile, reports a failure in the error line. */
function action(id: string, f: () => Promise<void> | void): void {
  const button = $<HTMLButtonElement>(id);
  button.addEventListener("click", async () => {
    button.disabled = true;
    clearError();
    try {
      await f();
    } catch (e) {
      showError(e);
    } finally {
      button.disabled = false;
    }
  });
}

/** An integer field's value, refused with a line naming the field and its range. */
function intField(id: string, lo: number, hi: number): number {
  const v = Number(input(id).value);
  if (!Number.isInteger(v) || v < lo || v > hi) {
    const name = input(id).closest("label")?.textContent?.trim().split(/\s/)[0] ?? id;
    throw new RangeError(`${name} must be an integer in [${lo}, ${hi}], got "${input(id).value}"`);
  }
  return v;
}

function numberField(id: string, ok: (x: number) => boolean, what: string): number {
  const v = Number(input(id).value);
  if (input(id).value.trim() === "" || !ok(v)) {
    throw new RangeError(`${id} must be ${what}, got "${input(id).value}"`);
  }
  return v;
}

const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

// ---- the device (requested once, on first use) ----

let context: Promise<KernelContext> | undefined;

function gpu(): Promise<KernelContext> {
  context ??= createContext({
    onError: (m) => {
      console.error(`WebGPU error: ${m}`);
      if (!$("error").textContent?.startsWith("error: WebGPU")) showError(`WebGPU: ${m}`);
    },
  }).then((ctx) => {
    $("adapter").textContent = `WebGPU adapter: ${ctx.gpu.adapterName}` +
      `${ctx.gpu.f16 ? ", shader-f16" : ""}${ctx.gpu.timestamps ? ", timestamps" : ""}`;
    return ctx;
  }, (e) => {
    context = undefined; // a later click may try again
    $("adapter").textContent = "WebGPU adapter: none";
    // The runtime's advice names Deno's backends; a page needs the browser's.
    const m = firstLine(e);
    if (/no navigator\.gpu|no WebGPU adapter/.test(m)) {
      throw new Error(
        `${m.split(":")[0]}: use a browser with WebGPU enabled (e.g. a recent Chrome or Edge) ` +
          `with hardware acceleration on, or start Chromium with ` +
          `--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader`,
      );
    }
    throw e;
  });
  return context;
}

// ---- spec: compile, pictures, analysis, WGSL ----

let current: { spec: AttentionSpec; L: number; tile: number } | undefined;
let editor: SpecEditor;

/** Compiles the editor's spec; on failure the status says so and the error line says why. */
function compile(): void {
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

function showWgsl(): void {
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

// ---- zoom ----

let zoom = 1;

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

function setZoom(z: number): void {
  zoom = Math.min(32, Math.max(1, z));
  applyZoom();
}

// ---- run: fused attention vs the float64 reference ----

async function run(): Promise<void> {
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
  const p: AttentionProblem = { spec, L, layout, batch: 1, heads, kvHeads: heads, headDim };
  t0 = performance.now();
  const ref = referenceAttention(p, x, "f64");
  const refMs = performance.now() - t0;
  const errs = attentionErrors(got, ref, referenceAttention(p, x, "f32"));
  const rows = Object.entries(errs).map(([k, e]) =>
    `<tr><td>${k}</td><td>${e.err.toExponential(2)}</td><td>${e.naive.toExponential(2)}</td>` +
    `<td class="${e.ok ? "ok" : "bad"}">${e.ok ? "ok" : "too large"}</td></tr>`
  );
  table.innerHTML = `<tr><th>output</th><th>max |GPU − f64|</th><th>naive f32 error</th>` +
    `<th>≤ 2× naive</th></tr>${rows.join("")}`;
  const ok = Object.values(errs).every((e) => e.ok);
  table.dataset.ok = String(ok);
  table.dataset.warmMs = String(warm[1]);
  $("run-timing").textContent =
    `${spec.name}, ${layout}, ${heads} heads × ${N} tokens × d=${headDim}: ` +
    `forward + backward ${ms(warm[1])} (median of 3 warm runs, with upload and readback); ` +
    `first run ${ms(first)} (with any pipeline not built yet); float64 reference ` +
    `${ms(refMs)} on the CPU`;
  if (!ok) throw new Error(`the fused kernels disagree with the reference (see the table)`);
}

// ---- checkpoints and generation ----

interface LoadedModel {
  name: string;
  ck: Omit<Checkpoint, "params">;
  params: ModelParams;
}

let model: LoadedModel | undefined;

async function useModel(name: string, ck: Checkpoint): Promise<void> {
  const ctx = await gpu();
  model?.params.destroy();
  const params = ModelParams.loaded(ctx, ck);
  model = { name, ck, params };
  const m = ck.model;
  $("ckpt-info").textContent = `${name}: ${ck.spec.name}, ${m.num_hidden_layers} layers, hidden ` +
    `${m.hidden_size}, ${m.num_attention_heads}/${m.num_key_value_heads} heads, tokenizer ` +
    `${tokenizerFromMetadata(ck.tokenizer).name}${
      ck.context ? `, trained on ${ck.context} positions` : ""
    }`;
  $<HTMLButtonElement>("generate").disabled = false;
  $("ckpt-info").dataset.loaded = name;
}

async function loadFile(): Promise<void> {
  const file = input("ckpt").files?.[0];
  if (!file) return;
  clearError();
  delete $("ckpt-info").dataset.loaded;
  $("ckpt-info").textContent = `reading ${file.name}…`;
  let ck: Checkpoint;
  try {
    ck = decodeCheckpoint(new Uint8Array(await file.arrayBuffer()));
  } catch (e) {
    $("ckpt-info").textContent = "no checkpoint loaded";
    throw new Error(`"${file.name}" is not a usable checkpoint: ${firstLine(e)}`);
  }
  await useModel(file.name, ck);
}

function sampling(): SamplingOptions {
  if (input("greedy").checked) return { temperature: 0 };
  return {
    temperature: numberField("temperature", (x) => x > 0, "a number > 0"),
    topK: intField("top-k", 0, 1 << 20),
    topP: numberField("top-p", (x) => x > 0 && x <= 1, "a number in (0, 1]"),
    seed: intField("seed", 0, 2 ** 31),
  };
}

async function generate(): Promise<void> {
  const out = $("gen-output"), stats = $("gen-stats");
  delete out.dataset.tokens; // before any await: a reader must never see the previous result
  if (!model) throw new Error("load a checkpoint first (file input above), or train one below");
  const ctx = await gpu(), { ck, params } = model;
  const tokenizer = tokenizerFromMetadata(ck.tokenizer);
  const prompt = input("prompt").value;
  if (prompt.length === 0) throw new RangeError("the prompt is empty: give at least one character");
  const maxNew = intField("max-new", 1, 2048), how = sampling();
  const ids = tokenizer.encode(prompt);
  out.textContent = prompt;
  const dec = new Decoder(ctx, params, ck.spec, {
    maxPositions: ids.length + maxNew - 1,
    stepsPerSubmit: 1, // one token per readback: the page shows each as it comes
  });
  const tokens: number[] = [];
  const text = new TextDecoder();
  try {
    const t0 = performance.now();
    for await (
      const chunk of dec.generate({ prompts: [ids], maxNewTokens: maxNew, sampling: how })
    ) {
      tokens.push(...chunk.tokens[0]);
      out.textContent += ck.tokenizer === "bytes"
        ? text.decode(new Uint8Array(chunk.tokens[0]), { stream: true })
        : tokenizer.decode(chunk.tokens[0]);
      const kv = dec.cache.stats();
      stats.textContent = `${tokens.length}/${maxNew} tokens, ${ms(performance.now() - t0)}; ` +
        `KV cache ${kv.bytes} bytes (${kv.originals} originals + hidden window ${kv.hiddenWindow}; ${kv.formula})`;
    }
    const s = dec.stats, kv = s.kv;
    out.dataset.tokens = JSON.stringify(tokens);
    out.dataset.kvBytes = String(kv.bytes);
    out.dataset.prefillMs = String(s.prefillMs);
    out.dataset.decodeTokensPerS = String(s.decodeTokensPerS);
    stats.textContent =
      `${ck.spec.name}: prefill ${ms(s.prefillMs)} (${s.prefillRows.join("+")} rows), ` +
      `decode ${s.decodeTokensPerS.toFixed(1)} tokens/s; KV cache ${kv.bytes} bytes ` +
      `(${kv.originals} originals + hidden window ${kv.hiddenWindow}; ${kv.formula}, ` +
      `${kv.bytesPerToken} bytes per key)`;
  } finally {
    dec.destroy();
  }
}

// ---- training ----

let stopRequested = false;
let trained: Checkpoint | undefined;

/**
 * The page's tiny model (trains in seconds to a minute on a software adapter) and its spec: a
 * preset variant at the chosen K, or the spec compiled in the editor as it is (its own K).
 */
function trainConfig(): { config: Config; spec?: AttentionSpec } {
  const K = intField("train-K", 1, 4), variant = $<HTMLSelectElement>("variant").value;
  if (variant === "editor" && !current) {
    throw new Error("the editor's spec is not compiled: fix its error line first");
  }
  const spec = variant === "editor" ? current!.spec : undefined;
  const phd = spec
    ? phdOf(spec, spec.baseName)
    : { K: variant === "causal" ? 1 : K, variant, W: 4, C: 8, positions: "shared" };
  const config = parseConfig({
    model: {
      hidden_size: 32,
      intermediate_size: 96,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      num_key_value_heads: 1,
    },
    phd,
    train: {
      steps: intField("steps", 1, 2000),
      batch_size: 8,
      seq_len: 32,
      lr: numberField("lr", (x) => x > 0 && x < 1, "a number in (0, 1)"),
      warmup: 5,
      eval_batches: 4,
      log_every: 1,
      eval_every: 0,
    },
  });
  return { config, spec };
}

async function train(): Promise<void> {
  const ctx = await gpu(), { config, spec } = trainConfig(), t = config.train;
  const tok = new ByteTokenizer(), cut = Math.floor(TRAINING_TEXT.length * 0.85);
  const corpus = {
    train: tok.encode(TRAINING_TEXT.slice(0, cut)),
    val: tok.encode(TRAINING_TEXT.slice(cut)),
  };
  const trainer = new Trainer(ctx, config, corpus, { spec });
  const stats = $("train-stats"), chart = $("loss-chart");
  delete chart.dataset.done;
  stopRequested = false;
  $<HTMLButtonElement>("train-stop").disabled = false;
  $<HTMLButtonElement>("train-save").disabled = true;
  try {
    const before = (await trainer.evaluate()).loss;
    const points: [number, number][] = [];
    const t0 = performance.now();
    while (trainer.step < t.steps && !stopRequested) {
      trainer.trainStep();
      const { loss } = await trainer.takeLoss();
      points.push([trainer.step, loss]);
      const s = (performance.now() - t0) / 1000;
      chart.innerHTML = lineChart([{ name: "training loss", points }], {
        title:
          `${trainer.spec.name}: ${trainer.params.count} parameters, batch ${t.batch_size} × ${t.seq_len}`,
        xLabel: "step",
        yLabel: "loss (nats per byte)",
        width: 560,
        height: 300,
      });
      stats.textContent = `step ${trainer.step}/${t.steps}: loss ${loss.toFixed(3)}, ` +
        `${(trainer.step * t.batch_size * t.seq_len / s).toFixed(0)} tokens/s, ${s.toFixed(1)} s`;
    }
    const after = (await trainer.evaluate()).loss;
    const s = (performance.now() - t0) / 1000;
    stats.textContent = `${trainer.step} steps in ${s.toFixed(1)} s ` +
      `(${(trainer.step * t.batch_size * t.seq_len / s).toFixed(0)} tokens/s); validation loss ` +
      `${before.toFixed(3)} → ${after.toFixed(3)} nats per byte (held-out 15% of the text)`;
    chart.dataset.done = String(after);
    trained = {
      model: config.model,
      phd: config.phd,
      spec: trainer.spec,
      tokenizer: tok.name,
      context: t.seq_len,
      params: await trainer.params.download(),
    };
    await useModel("the model trained here", trained);
    $<HTMLButtonElement>("train-save").disabled = false;
  } finally {
    trainer.destroy();
    $<HTMLButtonElement>("train-stop").disabled = true;
  }
}

function saveTrained(): void {
  if (!trained) throw new Error("train a model first");
  const bytes = encodeCheckpoint(trained);
  const url = URL.createObjectURL(
    new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }),
  );
  const a = document.createElement("a");
  a.href = url;
  a.download = `${trained.spec.name}.safetensors`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ---- examples served next to the page (deno task serve lists examples/masks/) ----

async function loadExamples(): Promise<void> {
  const res = await fetch("examples/masks/index.json").catch(() => undefined);
  if (!res?.ok) return; // a static host without the listing: the built-in example only
  const names: string[] = await res.json();
  const select = $<HTMLSelectElement>("example");
  for (const n of names) select.add(new Option(n.replace(/\.ts$/, ""), n));
}

async function pickExample(): Promise<void> {
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

// ---- wiring ----

function guarded(f: () => unknown): () => Promise<void> {
  return async () => {
    clearError();
    try {
      await f();
    } catch (e) {
      showError(e);
    }
  };
}

function main(): void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  editor = createSpecEditor($("spec"), DEFAULT_SPEC, () => {
    clearTimeout(timer);
    timer = setTimeout(guarded(compile), 400);
  });
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
  $("train-stop").addEventListener("click", () => stopRequested = true);
  $("train-save").addEventListener("click", guarded(saveTrained));
  clearError();
  guarded(compile)();
  guarded(loadExamples)();
  document.body.dataset.ready = "true";
}

main();
