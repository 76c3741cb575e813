/**
 * Training on the GPU: one command encoder per step (forward, backward, global-norm clipping,
 * AdamW), buffers allocated once, the loss read back only when asked (`takeLoss`, every
 * `log_every` steps), validation on a forward-only graph that shares the parameters, and the
 * whole training state (moments, step, data position) as plain arrays so a resumed run continues
 * bit for bit (the learning rate is a pure function of the saved config and step), and
 * `LossGuard`, which tells a diverged run (NaN, inf or an exploding loss) from a healthy one.
 * Browser-safe: files are the host layer's job.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Bindings } from "../../dsl/eval.ts";
import type { Layout } from "../../compiler/layout.ts";
import { type Config, configSpec, embeddingTables, learningRate } from "../model/config.ts";
import {
  Batches,
  type BatchShape,
  type Corpus,
  documentBindings,
  evalBatches,
  type TokenSource,
} from "../data/batches.ts";
import { readback, storageBuffer, upload } from "../gpu/resources.ts";
import { adamw, AdamWHyper } from "../kernels/adamw.ts";
import { matmul, type MatmulChooser } from "../kernels/matmul.ts";
import { destroyDispatches, type KernelContext, submit } from "../gpu/kernel.ts";
import { gradNorm } from "../kernels/grad_norm.ts";
import { timeRuns } from "../measure/timing.ts";
import type { AttentionChooser } from "../kernels/attention.ts";
import { ModelGraph } from "../model/graph.ts";
import { destroyOps, type Op, recordOps } from "../model/ops.ts";
import { headDim, initParams, ModelParams, numel } from "../model/params.ts";

/** What a checkpoint's sibling state file holds to resume exactly. */
export interface TrainingState {
  /** Optimiser steps done. */
  step: number;
  /** The training batches' position (`Batches.state`). */
  data: { rng: number; step: number };
  /** AdamW first moments by parameter name. */
  m: Record<string, Float32Array>;
  /** AdamW second moments by parameter name. */
  v: Record<string, Float32Array>;
}

/** A logged loss this many times above the run's start (or ln V) means the run exploded. */
export const EXPLOSION_FACTOR = 3;

/**
 * Watches the logged losses of a run: `check` returns why training must stop (a NaN or infinite
 * loss, or one `EXPLOSION_FACTOR` times above the larger of ln(vocab), the loss of a uniform
 * guess, and the first loss it saw), or undefined while the run is healthy.
 */
export class LossGuard {
  #start?: number;
  constructor(readonly vocab: number) {}

  check(loss: number): string | undefined {
    if (!Number.isFinite(loss)) return `loss is ${loss}`;
    this.#start ??= loss;
    const ref = Math.max(Math.log(this.vocab), this.#start);
    if (loss > EXPLOSION_FACTOR * ref) {
      return `loss ${loss.toFixed(3)} exploded above ${EXPLOSION_FACTOR} x its start ${
        ref.toFixed(3)
      }`;
    }
    return undefined;
  }
}

/** Choices that do not change the maths (kernel layout, matmul blocking, attention variant). */
export interface TrainerOptions {
  /**
   * The spec to train (any AttentionSpec: a preset, a spec file's export, one rebuilt from a
   * checkpoint). Default: the preset of `config.phd` (`configSpec`).
   */
  spec?: AttentionSpec;
  /** Storage layout of the token rows. Default `interleaved`. */
  layout?: Layout;
  /** Matmul blocking per shape (the autotuner's; undefined keeps the default). */
  matmul?: MatmulChooser;
  /** Attention variant per problem (the autotuner's; undefined keeps the default). */
  attention?: AttentionChooser;
  /** Sequences per validation batch. Default: the training batch size. */
  evalBatch?: number;
  /** The positions the loss scores (default all; see `GraphOptions.lossPositions`). */
  lossPositions?: readonly number[];
}

/** A model, its optimizer and its data, on one device. */
export class Trainer {
  /** The spec trained. */
  readonly spec: AttentionSpec;
  /** The model's parameters on the device. */
  readonly params: ModelParams;
  /** The training graph (forward and backward). */
  readonly graph: ModelGraph;
  /** The training batches, seeded by `train.seed`. */
  readonly batches: Batches;
  /** Steps done. */
  step = 0;
  #evalGraph?: ModelGraph;
  #m = new Map<string, GPUBuffer>();
  #v = new Map<string, GPUBuffer>();
  #hyper: AdamWHyper;
  #clip: GPUBuffer;
  #updateOps: Op[] = [];

  /** A model initialised from `train.seed`, its AdamW state, and batches of `corpus.train`. */
  constructor(
    readonly ctx: KernelContext,
    readonly config: Config,
    readonly corpus: Corpus,
    readonly options: TrainerOptions = {},
  ) {
    const t = config.train;
    this.spec = options.spec ?? configSpec(config.phd);
    const embedTables = embeddingTables({ K: this.spec.K, embeddings: config.phd.embeddings });
    this.params = new ModelParams(ctx, config.model, { embedTables });
    this.params.upload(initParams(config.model, { seed: t.seed, std: 0.02, embedTables }));
    this.graph = new ModelGraph(ctx, this.params, this.spec, {
      batch: t.batch_size,
      L: t.seq_len,
      training: true,
      attention: { layout: options.layout },
      matmul: options.matmul,
      attentionChooser: options.attention,
      lossPositions: options.lossPositions,
    });
    this.batches = new Batches(corpus.train, { batch: t.batch_size, seqLen: t.seq_len }, t.seed);
    const dev = ctx.gpu.device;
    this.#hyper = new AdamWHyper(ctx, { beta1: t.beta1, beta2: t.beta2 });
    this.#clip = storageBuffer(dev, new Float32Array([0, 1]), "clip");
    const ranges = [...this.graph.grads.entries()].map(([name, buffer]) => ({
      buffer,
      n: numel(this.params.shapes.get(name)!),
    }));
    this.#updateOps.push(...gradNorm(ctx, { ranges, out: this.#clip }, { maxNorm: t.grad_clip }));
    for (const [name, shape] of this.params.shapes) {
      const n = numel(shape);
      const m = storageBuffer(dev, n * 4, `m ${name}`), v = storageBuffer(dev, n * 4, `v ${name}`);
      this.#m.set(name, m);
      this.#v.set(name, v);
      // Weight decay on matrices only (norm gains stay undecayed), as in GPT-2/llm.c.
      this.#updateOps.push(adamw(ctx, {
        param: this.params.get(name),
        grad: this.graph.grads.get(name)!,
        m,
        v,
        clip: this.#clip,
        hyper: this.#hyper,
      }, { n, weightDecay: shape.length > 1 ? t.weight_decay : 0 }));
    }
  }

  /** Model FLOPs of one training step (6 per parameter-token for matmuls, plus attention). */
  get flopsPerStep(): number {
    const m = this.config.model, t = this.config.train, copies = this.spec.K;
    const tokens = t.batch_size * t.seq_len * copies;
    const d = headDim(m), H = m.num_attention_heads, HKV = m.num_key_value_heads;
    const perLayer = m.hidden_size * (2 * H * d + 2 * HKV * d) +
      3 * m.hidden_size * m.intermediate_size;
    const head = m.vocab_size * m.hidden_size * t.batch_size * t.seq_len; // last copy only
    // attention: QKᵀ and PV over the kept keys, ~half the K·L keys (causal), 3x for backward
    const attn = 2 * 2 * H * d * tokens * (copies * t.seq_len / 2) * m.num_hidden_layers;
    return 6 * (perLayer * m.num_hidden_layers * tokens + head) + 3 * attn;
  }

  /** The spec's bindings for a batch (its document table filled: `documentBindings`). */
  batchBindings(batch: Uint32Array, shape: BatchShape): Bindings | undefined {
    return documentBindings(this.spec, batch, { ...shape, separator: this.corpus.separator });
  }

  /** Records and submits one training step on the next batch (no readback). */
  trainStep(): void {
    const lr = learningRate(this.config.train, this.step);
    const batch = this.batches.next();
    this.graph.setBindings(this.batchBindings(batch, this.batches.shape));
    this.graph.setBatch(batch);
    this.#hyper.set(this.step + 1, lr);
    const enc = this.ctx.gpu.device.createCommandEncoder({ label: `step ${this.step}` });
    this.graph.record(enc, { backward: true });
    recordOps(enc, this.#updateOps);
    this.ctx.gpu.device.queue.submit([enc.finish()]);
    this.step++;
  }

  /** Mean training loss of the steps since the last call (one readback). */
  takeLoss(): Promise<{ loss: number; steps: number }> {
    return this.graph.takeLoss();
  }

  /** Gradient norm of the last step (before clipping; one readback). */
  async gradNorm(): Promise<number> {
    return new Float32Array(await readback(this.ctx.gpu.device, this.#clip, 8))[0];
  }

  /** Mean validation loss over the fixed validation windows (`eval_batches` of them). */
  async evaluate(stream: TokenSource = this.corpus.val): Promise<{ loss: number; tokens: number }> {
    const t = this.config.train, B = this.options.evalBatch ?? t.batch_size;
    this.#evalGraph ??= new ModelGraph(this.ctx, this.params, this.spec, {
      batch: B,
      L: t.seq_len,
      attention: { layout: this.options.layout },
      matmul: this.options.matmul,
      attentionChooser: this.options.attention,
      lossPositions: this.options.lossPositions,
    });
    const g = this.#evalGraph;
    const shape = { batch: B, seqLen: t.seq_len };
    const batches = evalBatches(stream, shape, t.eval_batches);
    await g.takeLoss(); // clear
    for (const b of batches) {
      g.setBindings(this.batchBindings(b, shape));
      g.setBatch(b);
      const enc = this.ctx.gpu.device.createCommandEncoder({ label: "eval" });
      g.record(enc);
      this.ctx.gpu.device.queue.submit([enc.finish()]);
    }
    const { loss } = await g.takeLoss();
    return { loss, tokens: batches.length * g.M };
  }

  /** The optimizer and data state (with `params.download()`, everything a resume needs). */
  async state(): Promise<TrainingState> {
    const dev = this.ctx.gpu.device, m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const [name, shape] of this.params.shapes) {
      const bytes = numel(shape) * 4;
      m[name] = new Float32Array(await readback(dev, this.#m.get(name)!, bytes));
      v[name] = new Float32Array(await readback(dev, this.#v.get(name)!, bytes));
    }
    return { step: this.step, data: this.batches.state, m, v };
  }

  /** Restores a saved state (parameters are uploaded separately, from the checkpoint). */
  restore(s: TrainingState): void {
    const dev = this.ctx.gpu.device;
    for (const name of this.params.shapes.keys()) {
      if (!s.m[name] || !s.v[name]) throw new Error(`training state lacks moments of "${name}"`);
      upload(dev, this.#m.get(name)!, s.m[name]);
      upload(dev, this.#v.get(name)!, s.v[name]);
    }
    this.step = s.step;
    this.batches.restore(s.data);
  }

  /** Frees every buffer and dispatch of the trainer, parameters included. */
  destroy(): void {
    this.graph.destroy();
    this.#evalGraph?.destroy();
    for (const b of [...this.#m.values(), ...this.#v.values(), this.#clip, this.#hyper.buffer]) {
      b.destroy();
    }
    destroyOps(this.#updateOps);
    this.params.destroy();
  }
}

/**
 * The adapter's matmul rate in GFLOP/s, the MFU denominator: the best of 3 timed runs of a
 * 1024 x 512 x 512 product with the default blocking and with `chooser`'s (the tuned one), each
 * after a warm-up (llvmpipe has no datasheet peak; this is what its best kernel reaches on a large,
 * well-shaped product).
 */
export async function measureMatmulGflops(
  ctx: KernelContext,
  chooser?: MatmulChooser,
): Promise<number> {
  const M = 1024, N = 512, inner = 512, dev = ctx.gpu.device;
  const a = storageBuffer(dev, M * inner * 4, "peak a");
  const b = storageBuffer(dev, N * inner * 4, "peak b");
  const c = storageBuffer(dev, M * N * 4, "peak c");
  // The default blocking and, with a chooser, the tuned one of this shape's bucket: the better is
  // the rate tuned matmuls reach here. A model whose own shapes tune better still reads above 100%.
  const tuned = chooser?.({ trans: "nt", M, N, inner });
  const variants = [undefined, ...(tuned ? [tuned] : [])];
  let best = Infinity;
  for (const params of variants) {
    const d = matmul(ctx, { a, b, c, M, N, inner, trans: "nt", params });
    const ms = await timeRuns(() => {
      submit(ctx, [d]);
      return dev.queue.onSubmittedWorkDone();
    }, { rounds: 3 });
    best = Math.min(best, ...ms);
    destroyDispatches([d]);
  }
  for (const x of [a, b, c]) x.destroy();
  return 2 * M * N * inner / (best * 1e6);
}
