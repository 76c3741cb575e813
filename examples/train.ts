/**
 * A short training script through the public API: a spec object (here the PHD-SWA preset, K = 3;
 * any `defineAttention` result or a spec file's export works the same) trained on the Brown corpus
 * for 40 steps, validation before and after, a checkpoint that stores the spec, and a reload that
 * rebuilds the spec from the file and checks the saved weights give the same validation loss.
 *
 *   npx --yes deno@2.9.6 run -A examples/train.ts
 */
import {
  buildCorpus,
  ByteTokenizer,
  createContext,
  DEFAULT_CONFIG,
  evaluateStream,
  loadBrown,
  loadCheckpoint,
  ModelParams,
  phdOf,
  phdSwa,
  saveCheckpoint,
  Trainer,
} from "../mod.ts";

const config = structuredClone(DEFAULT_CONFIG);
const spec = phdSwa({ K: 3, W: 8 });
config.phd = phdOf(spec, "phd-swa");
config.train.steps = 40;

const ctx = await createContext();
const corpus = buildCorpus(await loadBrown({ cacheDir: ".cache" }), new ByteTokenizer());
const trainer = new Trainer(ctx, config, corpus, { spec });
console.log(`${trainer.spec.name} on ${ctx.gpu.adapterName}: ${trainer.params.count} parameters`);
console.log(`validation loss before: ${(await trainer.evaluate()).loss.toFixed(3)}`);
while (trainer.step < config.train.steps) {
  trainer.trainStep();
  if (trainer.step % 10 === 0) {
    console.log(`step ${trainer.step}: train loss ${(await trainer.takeLoss()).loss.toFixed(3)}`);
  }
}
const val = await trainer.evaluate();
console.log(`validation loss after: ${val.loss.toFixed(3)}`);

const path = "out/examples/phd_swa.safetensors";
await saveCheckpoint(path, {
  model: config.model,
  phd: config.phd,
  spec,
  tokenizer: "bytes",
  context: config.train.seq_len,
  params: await trainer.params.download(),
});
const ck = await loadCheckpoint(path);
const params = ModelParams.loaded(ctx, ck);
const first = corpus.val.subarray(0, 8 * 128 + 1);
const again = await evaluateStream(ctx, params, ck.spec, first, { context: 128 });
console.log(`reloaded ${path}: loss on the first 1024 validation bytes ${again.loss.toFixed(3)}`);
