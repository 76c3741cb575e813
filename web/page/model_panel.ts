/// <reference lib="dom" />
/**
 * The model panel: a checkpoint file (or the model trained here) generating text token by token
 * through the PHD KV cache (runtime/infer/generate.ts), and a tiny training run on the embedded
 * Brown text with a live loss chart, whose result can be downloaded as a checkpoint.
 */
import {
  type AttentionSpec,
  ByteTokenizer,
  type Checkpoint,
  type Config,
  configSpec,
  decodeCheckpoint,
  encodeCheckpoint,
  generate as generateTokens,
  lineChart,
  ModelParams,
  parseConfig,
  phdOf,
  type SamplingOptions,
  scoredPositions,
  tokenizerFromMetadata,
  Trainer,
} from "../core.ts";
import { TRAINING_TEXT } from "../examples.ts";
import { $, clearError, firstLine, input, intField, ms, numberField } from "./dom.ts";
import { gpu } from "./device.ts";
import { current } from "./spec_panel.ts";

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

/** Loads the checkpoint chosen in `#ckpt`. */
export async function loadFile(): Promise<void> {
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

/** Generates from the loaded model into `#gen-output` (its `data-tokens`), token by token. */
export async function generate(): Promise<void> {
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
  const text = new TextDecoder(), tokens: number[] = [];
  const t0 = performance.now();
  const { stats: s } = await generateTokens(ctx, params, ck.spec, {
    prompts: [ids],
    maxNewTokens: maxNew,
    sampling: how,
    stepsPerSubmit: 1, // one token per readback: the page shows each as it comes
    onTokens: (chunk, kv) => {
      tokens.push(...chunk.tokens[0]);
      out.textContent += ck.tokenizer === "bytes"
        ? text.decode(new Uint8Array(chunk.tokens[0]), { stream: true })
        : tokenizer.decode(chunk.tokens[0]);
      stats.textContent = `${tokens.length}/${maxNew} tokens, ${ms(performance.now() - t0)}; ` +
        `KV cache ${kv.bytes} bytes (${kv.originals} originals + hidden window ${kv.hiddenWindow}; ${kv.formula})`;
    },
  });
  const kv = s.kv;
  out.dataset.tokens = JSON.stringify(tokens);
  out.dataset.kvBytes = String(kv.bytes);
  out.dataset.prefillMs = String(s.prefillMs);
  out.dataset.decodeTokensPerS = String(s.decodeTokensPerS);
  stats.textContent =
    `${ck.spec.name}: prefill ${ms(s.prefillMs)} (${s.prefillRows.join("+")} rows), ` +
    `decode ${s.decodeTokensPerS.toFixed(1)} tokens/s; KV cache ${kv.bytes} bytes ` +
    `(${kv.originals} originals + hidden window ${kv.hiddenWindow}; ${kv.formula}, ` +
    `${kv.bytesPerToken} bytes per key)`;
}

let stopRequested = false;

/** Asks a running training to stop after its step. */
export function stopTraining(): void {
  stopRequested = true;
}
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

/** Trains the page's tiny model, drawing the loss; the result becomes the loaded model. */
export async function train(): Promise<void> {
  const ctx = await gpu(), { config, spec } = trainConfig(), t = config.train;
  const tok = new ByteTokenizer(), cut = Math.floor(TRAINING_TEXT.length * 0.85);
  const corpus = {
    train: tok.encode(TRAINING_TEXT.slice(0, cut)),
    val: tok.encode(TRAINING_TEXT.slice(cut)),
  };
  // The same refusal as deno task train: a spec whose predictions see their targets, one line.
  scoredPositions(spec ?? configSpec(config.phd), t.seq_len, { what: "train" });
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

/** Downloads the model trained here as a checkpoint. */
export function saveTrained(): void {
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
