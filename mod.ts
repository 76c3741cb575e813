/**
 * Public API for scripts: define attention patterns (`defineAttention`, presets), analyse them
 * (causality, KV retention, prefill set, tile classes), run their fused attention kernels, and
 * build, train, evaluate, save and load PHD transformers on WebGPU, generate through the PHD KV
 * cache, and use the autotuner's kernel variants.
 *
 * Everything under `runtime/` except `runtime/host/` is browser-safe (no file system or process
 * APIs); the host helpers exported at the end (corpus loading, checkpoint files) use Deno's.
 *
 * @example Analyse a mask
 * ```ts
 * import { analyze, phdCswa } from "./mod.ts";
 * const a = analyze(phdCswa({ K: 3, W: 16, C: 32 }), { L: 4096 });
 * console.log(a.retention.formula, a.prefill.count, a.tiles.keptFraction);
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
 * const params = new ModelParams(ctx, ck.model);
 * params.upload(ck.params);
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
export {
  type Analysis,
  analyze,
  type AnalyzeOptions,
  summarize,
} from "./compiler/analysis/analyze.ts";
export { type Causality, checkCausality } from "./compiler/analysis/causality.ts";
export { copyRanges, type Layout, LAYOUTS, storageIndex, tokenAt } from "./compiler/layout.ts";
export { type PrefillPlan, prefillSet } from "./compiler/analysis/prefill.ts";
export {
  type CopyRetention,
  planRetention,
  type RetentionPlan,
} from "./compiler/analysis/retention.ts";
export {
  classifyTiles,
  EMPTY,
  FULL,
  PARTIAL,
  type TileClass,
  tileLists,
  type TileMap,
  type TileOptions,
} from "./compiler/analysis/tiles.ts";
export { FlexExportError, flexModule, type FlexOptions } from "./compiler/codegen/flex.ts";

// ---- runtime: device, kernels, model, training, evaluation (browser-safe) ----
export { type ContextOptions, createContext } from "./runtime/gpu/context.ts";
export { type GpuContext, type GpuOptions, requestGpu } from "./runtime/gpu/device.ts";
export { PipelineCache } from "./runtime/gpu/resources.ts";
export type { KernelContext } from "./runtime/gpu/kernel.ts";
export {
  type AttentionConfig,
  type AttentionRun,
  FlashAttention,
  type HostInputs,
  type HostOutputs,
} from "./runtime/kernels/attention.ts";
export {
  type Config,
  configSpec,
  DEFAULT_CONFIG,
  learningRate,
  type ModelConfig,
  parseConfig,
  type PhdConfig,
  type TrainConfig,
} from "./runtime/model/config.ts";
export {
  Batches,
  buildCorpus,
  type Corpus,
  type Document,
  evalBatches,
  Rng,
} from "./runtime/data/batches.ts";
export { ByteTokenizer, type Tokenizer, tokenizerByName } from "./runtime/data/tokenizer.ts";
export {
  type GraphOptions,
  type MatmulChooser,
  ModelGraph,
  ModelParams,
  recordOps,
} from "./runtime/model/graph.ts";
export {
  measureMatmulGflops,
  Trainer,
  type TrainerOptions,
  type TrainingState,
} from "./runtime/train/trainer.ts";
export { type EvalOptions, evaluateStream } from "./runtime/train/evaluate.ts";
export {
  generateByRecompute,
  sampleHost,
  type SamplingOptions,
} from "./runtime/infer/recompute.ts";
export {
  Decoder,
  type DecoderOptions,
  generate,
  generateCached,
  type GenerateRequest,
  type GenerationResult,
  type GenerationStats,
  type TokenChunk,
} from "./runtime/infer/decoder.ts";
export { KvCache, type KvCacheOptions, type KvStats } from "./runtime/infer/kv_cache.ts";
export {
  type AdapterId,
  adapterIdOf,
  type AttentionChooser,
  type AttentionShape,
  type AttentionVariant,
  Autotuner,
  type TuneCacheData,
  tunedAttentionChooser,
  tunedMatmulChooser,
} from "./runtime/tune/autotune.ts";
export {
  type Checkpoint,
  decodeCheckpoint,
  decodeTrainingState,
  encodeCheckpoint,
  encodeTrainingState,
  statePath,
} from "./runtime/io/checkpoint.ts";
export { hfConfig } from "./runtime/io/hf_config.ts";
export { headDim, initParams, type Params, paramShapes } from "./runtime/model/params.ts";
export { lineChart, type Series } from "./viz/chart.ts";

// ---- host helpers (Deno APIs: files) ----
export { loadBrown } from "./runtime/host/corpus.ts";
export { loadCheckpoint, loadTrainingState, saveCheckpoint } from "./runtime/host/checkpoint.ts";
export { writeFileAtomic } from "./runtime/host/files.ts";
export {
  DEFAULT_TUNE_CACHE,
  loadKernelChoosers,
  loadMatmulChooser,
  loadTuneCache,
  saveTuneCache,
} from "./runtime/host/tune_cache.ts";
