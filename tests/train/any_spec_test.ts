/**
 * Any spec trains (runtime/train/trainer.ts `TrainerOptions.spec`): every file of examples/masks/
 * (a score modifier and a document-masked spec among them) and the `document` preset run three
 * training steps on a tiny model, and the first step's loss equals the float64 reference model
 * (reference/model.ts) on the same batch. For specs that read the `docs` table, the table is the
 * batch's document starts (separators), and the loss differs from the same spec without it: the
 * table took effect, so attention did not cross documents. `evaluateStream` fills it the same way.
 */
import { notStrictEqual, ok as assert } from "node:assert/strict";
import type { AttentionSpec } from "../../dsl/spec.ts";
import { respec } from "../../dsl/spec.ts";
import { documentMask } from "../../dsl/presets.ts";
import { type Config, DEFAULT_CONFIG, phdOf } from "../../runtime/model/config.ts";
import { Batches, type Corpus, documentStarts } from "../../runtime/data/batches.ts";
import { Rng } from "../../runtime/data/rng.ts";
import { forwardBackward } from "../../reference/model.ts";
import { initParams, ModelParams } from "../../runtime/model/params.ts";
import { Trainer } from "../../runtime/train/trainer.ts";
import { evaluateStream } from "../../runtime/train/evaluate.ts";
import { gpuOnce } from "../fixtures/attention.ts";

const V = 31, SEP = 30;
const MASKS = new URL("../../examples/masks/", import.meta.url);

function tinyConfig(spec: AttentionSpec): Config {
  const c = structuredClone(DEFAULT_CONFIG);
  c.model = {
    ...c.model,
    vocab_size: V,
    hidden_size: 16,
    intermediate_size: 24,
    num_attention_heads: 2,
    num_key_value_heads: 1,
  };
  c.phd = phdOf(spec, spec.baseName);
  c.train = { ...c.train, steps: 3, batch_size: 2, seq_len: 9, warmup: 1, eval_batches: 1 };
  return c;
}

/** Random ids with a separator about every 4 ids: documents of a few tokens. */
function corpus(): Corpus {
  const r = new Rng(7);
  const stream = (n: number) =>
    Uint32Array.from({ length: n }, () => r.next() < 0.25 ? SEP : r.int(SEP));
  return { train: stream(400), val: stream(100), separator: SEP };
}

async function specs(): Promise<AttentionSpec[]> {
  const out: AttentionSpec[] = [documentMask()];
  for await (const e of Deno.readDir(MASKS)) {
    if (e.name.endsWith(".ts")) out.push((await import(new URL(e.name, MASKS).href)).default);
  }
  return out;
}

Deno.test("every example mask and a document-masked spec train; step 0 equals float64", async () => {
  const ctx = await gpuOnce(), data = corpus();
  let documented = 0;
  for (const spec of await specs()) {
    const cfg = tinyConfig(spec), t = cfg.train;
    const trainer = new Trainer(ctx, cfg, data, { spec });
    const batch = new Batches(data.train, { batch: t.batch_size, seqLen: t.seq_len }, t.seed)
      .next();
    trainer.trainStep();
    const gpu = (await trainer.takeLoss()).loss;
    const reads = "docs" in spec.tables;
    const seen = reads
      ? respec(spec, { tables: { docs: documentStarts(batch, trainer.batches.shape, SEP) } })
      : spec;
    const P = initParams(cfg.model, { seed: t.seed, std: 0.02 });
    const ref = forwardBackward({ config: cfg.model, spec: seen, params: P }, {
      tokens: batch,
      batch: t.batch_size,
    }).loss;
    assert(Math.abs(gpu - ref) < 1e-5 * ref, `${spec.name}: GPU ${gpu} vs float64 ${ref}`);
    if (reads) {
      documented++;
      const uncut = forwardBackward({ config: cfg.model, spec, params: P }, {
        tokens: batch,
        batch: t.batch_size,
      }).loss;
      notStrictEqual(uncut.toFixed(6), ref.toFixed(6), `${spec.name}: the table had no effect`);
    }
    while (trainer.step < t.steps) trainer.trainStep();
    const { loss } = await trainer.takeLoss();
    assert(Number.isFinite(loss), `${spec.name}: loss ${loss}`);
    assert(Number.isFinite((await trainer.evaluate()).loss), `${spec.name}: validation`);
    trainer.destroy();
  }
  assert(documented >= 2, "the document preset and examples/masks/phd_documents.ts");
});

Deno.test("evaluateStream fills the document table per window, as training does", async () => {
  const ctx = await gpuOnce(), spec = documentMask(), cfg = tinyConfig(spec);
  const stream = corpus().val.subarray(0, 2 * 9 + 1);
  const P = initParams(cfg.model, { seed: 2, std: 0.3 });
  const params = new ModelParams(ctx, cfg.model);
  params.upload(P);
  const got = await evaluateStream(ctx, params, spec, stream, { context: 9, separator: SEP });
  // Both windows run as one batch of two rows, cut at the union of their document starts.
  const ids = new Uint32Array(20);
  ids.set(stream.subarray(0, 10));
  ids.set(stream.subarray(9, 19), 10);
  const docs = documentStarts(ids, { batch: 2, seqLen: 9 }, SEP);
  const cut = respec(spec, { tables: { docs } });
  const want =
    forwardBackward({ config: cfg.model, spec: cut, params: P }, { tokens: ids, batch: 2 })
      .loss;
  assert(Math.abs(got.loss - want) < 1e-5 * want, `GPU ${got.loss} vs float64 ${want}`);
  params.destroy();
});
