/**
 * Public API for scripts: define attention patterns (`defineAttention`, presets), analyse them
 * (causality, KV retention, prefill set, tile classes), run their fused attention kernels, and
 * build, train, evaluate, save and load PHD transformers on WebGPU, generate through the PHD KV
 * cache, and use the autotuner's kernel variants.
 *
 * It gathers `dsl/mod.ts`, `compiler/mod.ts`, `runtime/mod.ts` and `viz/mod.ts`, which are
 * browser-safe (no file system or process APIs; web/core.ts bundles them for the page), and adds
 * the host helpers at the end (corpus loading, checkpoint and cache files, whole training runs),
 * which use Deno's.
 *
 * @example Analyse a mask
 * ```ts
 * import { analyze, phdCswa } from "./mod.ts";
 * const a = analyze(phdCswa({ K: 3, W: 16, C: 32 }), { L: 4096 });
 * console.log(a.retention.formula, a.prefill.count, a.tiles.keptFraction);
 * ```
 *
 * @example Train a spec file on any text (what `deno task train --spec F --data T` does)
 * ```ts
 * import { createContext, loadRunConfig, loadTextCorpus, resolveTokenizer, Trainer } from "./mod.ts";
 * const { config, spec } = await loadRunConfig(undefined, {
 *   spec: "examples/masks/phd_swa_pos.ts",
 *   data: ["some.txt"],
 * });
 * const tok = await resolveTokenizer(config.data.tokenizer, { ...config.data, out: "m.safetensors" });
 * config.model.vocab_size = tok.vocabSize;
 * const corpus = await loadTextCorpus(config.data, tok, { cacheDir: ".cache" });
 * const trainer = new Trainer(await createContext(), config, corpus, { spec });
 * ```
 *
 * @example Train, evaluate and save (see examples/train.ts)
 * ```ts
 * import { buildCorpus, ByteTokenizer, createContext, DEFAULT_CONFIG, loadBrown, Trainer } from "./mod.ts";
 * const ctx = await createContext();
 * const corpus = buildCorpus(await loadBrown(), new ByteTokenizer());
 * const trainer = new Trainer(ctx, DEFAULT_CONFIG, corpus);
 * for (let i = 0; i < 10; i++) trainer.trainStep();
 * console.log((await trainer.takeLoss()).loss, (await trainer.evaluate()).loss);
 * ```
 *
 * @example Generate through the KV cache (see examples/generate.ts)
 * ```ts
 * import { ByteTokenizer, createContext, generate, loadCheckpoint, ModelParams } from "./mod.ts";
 * const ck = await loadCheckpoint("out/demo/model.safetensors");
 * const ctx = await createContext();
 * const params = ModelParams.loaded(ctx, ck);
 * const tok = new ByteTokenizer();
 * const r = await generate(ctx, params, ck.spec, {
 *   prompts: [tok.encode("The jury said")],
 *   maxNewTokens: 40,
 *   onTokens: (c) => console.log(tok.decode(c.tokens[0])),
 * });
 * console.log(r.stats.kv, r.stats.decodeTokensPerS);
 * ```
 */
export * from "./dsl/mod.ts";
export * from "./compiler/mod.ts";
export * from "./runtime/mod.ts";
export * from "./viz/mod.ts";

// ---- host helpers (Deno APIs: files) ----
export { loadBrown } from "./runtime/host/corpus.ts";
export {
  latestUnit,
  loadCheckpoint,
  loadTrainingState,
  loadUnit,
  saveCheckpoint,
  seriesPath,
  type TrainingCheckpoint,
} from "./runtime/host/checkpoint.ts";
export { writeFileAtomic } from "./runtime/host/files.ts";
export {
  loadRunConfig,
  readConfig,
  type RunConfig,
  type RunInput,
  type RunOverrides,
} from "./runtime/host/config_file.ts";
export { loadSpecRef, type SpecLoad } from "./runtime/host/spec_file.ts";
export {
  loadTextCorpus,
  type TextCorpus,
  tokenCache,
  type TokenCacheOptions,
  TokenFile,
} from "./runtime/host/token_cache.ts";
export { loadTokenizerFile, resolveTokenizer } from "./runtime/host/tokenizer_file.ts";
export {
  type ChooserFileOptions,
  DEFAULT_TUNE_CACHE,
  loadKernelChoosers,
  loadMatmulChooser,
  loadTuneCache,
  saveTuneCache,
} from "./runtime/host/tune_cache.ts";
