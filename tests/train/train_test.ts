/**
 * The GPU trainer (runtime/train/trainer.ts) on a tiny config and a synthetic corpus: ten AdamW
 * steps (warm-up and cosine schedule, global-norm clipping, decay on matrices only) match a float64
 * reference run step by step; a run resumed from a saved state (through the checkpoint and
 * training-state encodings) reproduces the uninterrupted run bit for bit.
 */
import { deepStrictEqual, ok as assert } from "node:assert";
import {
  type Config,
  configSpec,
  DEFAULT_CONFIG,
  learningRate,
} from "../../runtime/model/config.ts";
import { Batches, type Corpus } from "../../runtime/data/batches.ts";
import { Rng } from "../../runtime/data/rng.ts";
import { adamwRef, gradNormRef } from "../../reference/kernels.ts";
import { forwardBackward } from "../../reference/model.ts";
import { initParams, numel, paramShapes } from "../../runtime/model/params.ts";
import { Trainer } from "../../runtime/train/trainer.ts";
import {
  decodeCheckpoint,
  decodeTrainingState,
  encodeCheckpoint,
  encodeTrainingState,
} from "../../runtime/io/checkpoint.ts";
import { gpuOnce } from "../fixtures/attention.ts";
import { tinyModel } from "../fixtures/model.ts";

function tinyConfig(): Config {
  const c = structuredClone(DEFAULT_CONFIG);
  c.model = tinyModel({ vocab_size: 31, tie_word_embeddings: false });
  c.phd = { K: 2, variant: "phd-cswa", W: 2, C: 3, positions: "shared" };
  c.train = {
    ...c.train,
    steps: 10,
    batch_size: 2,
    seq_len: 7,
    lr: 1e-2,
    warmup: 3,
    grad_clip: 0.5,
    eval_batches: 2,
  };
  return c;
}

function corpus(V: number): Corpus {
  const r = new Rng(5);
  const stream = (n: number) => Uint32Array.from({ length: n }, () => r.int(V));
  return { train: stream(500), val: stream(100) };
}

Deno.test("ten AdamW steps match a float64 reference run", async () => {
  const cfg = tinyConfig(), data = corpus(cfg.model.vocab_size), t = cfg.train;
  const ctx = await gpuOnce();
  const trainer = new Trainer(ctx, cfg, data);
  const spec = configSpec(cfg.phd);
  const P = initParams(cfg.model, { seed: t.seed, std: 0.02 });
  const shapes = paramShapes(cfg.model);
  const m = Object.fromEntries([...shapes].map(([k, s]) => [k, new Float64Array(numel(s))]));
  const v = Object.fromEntries([...shapes].map(([k, s]) => [k, new Float64Array(numel(s))]));
  const batches = new Batches(data.train, { batch: t.batch_size, seqLen: t.seq_len }, t.seed);
  for (let step = 0; step < t.steps; step++) {
    trainer.trainStep();
    const gpuLoss = (await trainer.takeLoss()).loss;
    const { loss, grads } = forwardBackward({ config: cfg.model, spec, params: P }, {
      tokens: batches.next(),
      batch: t.batch_size,
      grads: true,
    });
    assert(Math.abs(gpuLoss - loss) < 1e-5 * loss, `step ${step}: loss ${gpuLoss} vs ${loss}`);
    const { scale } = gradNormRef(Object.values(grads!), { maxNorm: t.grad_clip });
    for (const [name, s] of shapes) {
      adamwRef({ param: P[name], grad: grads![name], m: m[name], v: v[name] }, {
        lr: learningRate(t, step),
        beta1: t.beta1,
        beta2: t.beta2,
        eps: 1e-8,
        weightDecay: s.length > 1 ? t.weight_decay : 0,
        step: step + 1,
        gradScale: scale,
      });
    }
  }
  const got = await trainer.params.download();
  // Adam moves each weight by about lr per step whatever the gradient's size, so the error is
  // measured against the distance travelled (10 steps x lr).
  for (const [name] of shapes) {
    let err = 0;
    for (let i = 0; i < P[name].length; i++) {
      err = Math.max(err, Math.abs(P[name][i] - got[name][i]));
    }
    assert(
      err < 1e-3 * t.steps * t.lr,
      `${name}: max error ${err.toExponential(2)} after 10 steps`,
    );
  }
  trainer.destroy();
});

Deno.test("a resumed run reproduces the uninterrupted one bit for bit", async () => {
  const cfg = tinyConfig(), data = corpus(cfg.model.vocab_size);
  const ctx = await gpuOnce();
  const straight = new Trainer(ctx, cfg, data);
  for (let i = 0; i < 8; i++) straight.trainStep();
  const want = await straight.params.download();
  straight.destroy();

  const first = new Trainer(ctx, cfg, data);
  for (let i = 0; i < 4; i++) first.trainStep();
  const ckpt = encodeCheckpoint({
    model: cfg.model,
    phd: cfg.phd,
    tokenizer: "bytes",
    params: await first.params.download(),
  });
  const stateBytes = encodeTrainingState(cfg, await first.state());
  first.destroy();

  const loaded = decodeCheckpoint(ckpt), saved = decodeTrainingState(stateBytes);
  deepStrictEqual(saved.config, cfg);
  const second = new Trainer(ctx, saved.config, data);
  second.params.upload(loaded.params);
  second.restore(saved.state);
  for (let i = 0; i < 4; i++) second.trainStep();
  const got = await second.params.download();
  second.destroy();
  for (const name of Object.keys(want)) deepStrictEqual(got[name], want[name], name);
});
