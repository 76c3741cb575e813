/**
 * The platform-neutral core: the DSL, the compiler (analysis, layouts, tile classes), the WebGPU
 * runtime without its host layer (device, kernels, model, training, inference, checkpoint bytes,
 * autotuner) and the pictures. Nothing below it touches a Deno or Node API, so `deno task bundle`
 * turns it into one ES module for browsers (web/dist/core.js; tests/web/bundle_test.ts checks
 * it); `mod.ts` re-exports it and adds the Deno host helpers.
 */
export * from "../dsl/mod.ts";
export {
  type Analysis,
  analyze,
  type AnalyzeOptions,
  summarize,
} from "../compiler/analysis/analyze.ts";
export { type Causality, checkCausality } from "../compiler/analysis/causality.ts";
export { copyRanges, type Layout, LAYOUTS, storageIndex, tokenAt } from "../compiler/layout.ts";
export { type PrefillPlan, prefillSet } from "../compiler/analysis/prefill.ts";
export {
  type CopyRetention,
  planRetention,
  type RetentionPlan,
} from "../compiler/analysis/retention.ts";
export {
  classifyTiles,
  EMPTY,
  FULL,
  PARTIAL,
  type TileClass,
  tileDenseMask,
  tileLists,
  type TileMap,
  type TileOptions,
} from "../compiler/analysis/tiles.ts";
export { FlexExportError, flexModule, type FlexOptions } from "../compiler/codegen/flex.ts";

// ---- runtime: device, kernels, model, training, evaluation (browser-safe) ----
export { type ContextOptions, createContext } from "../runtime/gpu/context.ts";
export { type GpuContext, type GpuOptions, requestGpu } from "../runtime/gpu/device.ts";
export { PipelineCache } from "../runtime/gpu/resources.ts";
export type { KernelContext } from "../runtime/gpu/kernel.ts";
export {
  type AttentionConfig,
  type AttentionRun,
  FlashAttention,
  type HostInputs,
  type HostOutputs,
} from "../runtime/kernels/attention.ts";
export {
  type Config,
  configSpec,
  type DataConfig,
  DEFAULT_CONFIG,
  embeddingTables,
  learningRate,
  type ModelConfig,
  parseConfig,
  type PhdConfig,
  phdOf,
  specWithOverrides,
  type TokenizerChoice,
  type TrainConfig,
} from "../runtime/model/config.ts";
export {
  Batches,
  buildCorpus,
  type Corpus,
  type Document,
  DOCUMENT_TABLE,
  documentBindings,
  documentStarts,
  evalBatches,
  type MemoryCorpus,
  type TokenSource,
} from "../runtime/data/batches.ts";
export { Rng } from "../runtime/data/rng.ts";
export {
  ByteTokenizer,
  JsonTokenizer,
  type Tokenizer,
  tokenizerFromMetadata,
  trainBpe,
} from "../runtime/data/tokenizer.ts";
export { type GraphOptions, ModelGraph } from "../runtime/model/graph.ts";
export { type Op, recordOps } from "../runtime/model/ops.ts";
export type { MatmulChooser, MatmulShape } from "../runtime/kernels/matmul.ts";
export {
  measureMatmulGflops,
  Trainer,
  type TrainerOptions,
  type TrainingState,
} from "../runtime/train/trainer.ts";
export { type EvalOptions, evaluateStream } from "../runtime/train/evaluate.ts";
export {
  Decoder,
  type DecoderOptions,
  type GenerateRequest,
  type GenerationStats,
  type SamplingOptions,
  type TokenChunk,
} from "../runtime/infer/decoder.ts";
export { generate, type GenerationResult } from "../runtime/infer/generate.ts";
export { KvCache, type KvCacheOptions, type KvStats } from "../runtime/infer/kv_cache.ts";
export {
  type AdapterId,
  adapterIdOf,
  Autotuner,
  type TuneCacheData,
} from "../runtime/tune/engine.ts";
export { tunedMatmulChooser } from "../runtime/tune/matmul.ts";
export { tunedAttentionChooser } from "../runtime/tune/attention.ts";
export type {
  AttentionChooser,
  AttentionShape,
  AttentionVariant,
} from "../runtime/kernels/attention.ts";
export {
  type Checkpoint,
  type CheckpointInput,
  decodeCheckpoint,
  decodeTrainingState,
  encodeCheckpoint,
  encodeTrainingState,
  statePath,
} from "../runtime/io/checkpoint.ts";
export { hfConfig } from "../runtime/io/hf_config.ts";
export {
  headDim,
  initParams,
  ModelParams,
  type Params,
  paramShapes,
} from "../runtime/model/params.ts";
export { lineChart, type Series } from "../viz/chart.ts";
export {
  asciiTiles,
  type MaskPicture,
  maskPng,
  maskSvg,
  reorderMask,
} from "../viz/mask_picture.ts";
export {
  type AttentionKernel,
  type AttentionKernelKind,
  type AttentionKernelParams,
  attentionParams,
  buildAttentionKernel,
} from "../compiler/codegen/attention_kernels.ts";
