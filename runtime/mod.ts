/**
 * The WebGPU runtime without its host layer: the device, the kernels, the model and its
 * parameters, data and tokenizers, training and evaluation, decoding through the PHD KV cache,
 * the autotuner and the checkpoint bytes. Nothing here touches a Deno or Node API, so it bundles
 * for browsers; runtime/host/ (files) and runtime/jobs/ (whole commands) are Deno's, exported by
 * the repository's mod.ts.
 */
export { type ContextOptions, createContext } from "./gpu/context.ts";
export {
  type AdapterClass,
  type DeviceLimits,
  type GpuContext,
  type GpuOptions,
  type LimitName,
  LIMITS,
  type RequestedLimit,
  requestGpu,
  type Subgroups,
} from "./gpu/device.ts";
export type { Peak } from "./gpu/peak.ts";
export { type CachedPipeline, PipelineCache, type PipelineSource } from "./gpu/resources.ts";
export type { Dispatch, KernelContext } from "./gpu/kernel.ts";
export {
  type AttentionConfig,
  type AttentionRun,
  type BackwardBuffers,
  FlashAttention,
  type ForwardBuffers,
  type HostInputs,
  type HostOutputs,
} from "./kernels/attention.ts";
export {
  type AttentionCheck,
  type AttentionInputs,
  type AttentionProblem,
  checkAttention,
  type OutputError,
  type ReferenceLayout,
} from "./tune/attention_check.ts";
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
  type SpecOverridesConfig,
  specWithOverrides,
  type TokenizerChoice,
  type TrainConfig,
} from "./model/config.ts";
export {
  Batches,
  type BatchShape,
  buildCorpus,
  type Corpus,
  type Document,
  DOCUMENT_TABLE,
  documentBindings,
  documentStarts,
  evalBatches,
  type MemoryCorpus,
  type TokenSource,
} from "./data/batches.ts";
export { Rng } from "./data/rng.ts";
export {
  ByteTokenizer,
  JsonTokenizer,
  type Tokenizer,
  tokenizerFromMetadata,
  type TokenizerOrigin,
  trainBpe,
} from "./data/tokenizer.ts";
export { type GraphOptions, ModelGraph } from "./model/graph.ts";
export { type Op, recordOps } from "./model/ops.ts";
export type {
  MatmulBlocking,
  MatmulChooser,
  MatmulF16,
  MatmulLimits,
  MatmulParams,
  MatmulShape,
  MatmulTrans,
} from "./kernels/matmul.ts";
export {
  measureMatmulGflops,
  Trainer,
  type TrainerOptions,
  type TrainingState,
} from "./train/trainer.ts";
export { type EvalOptions, evaluateStream } from "./train/evaluate.ts";
export {
  Decoder,
  type DecoderOptions,
  type GenerateRequest,
  type GenerationStats,
  type SamplingOptions,
  type TokenChunk,
} from "./infer/decoder.ts";
export { generate, type GenerationResult } from "./infer/generate.ts";
export { KvCache, type KvCacheOptions, type KvStats } from "./infer/kv_cache.ts";
export {
  type AdapterId,
  adapterIdOf,
  Autotuner,
  type Candidate,
  TUNE_CACHE_VERSION,
  type TuneCacheData,
  type TunedOn,
  type TuneEntry,
  type TuneKeyParts,
  type TunerOptions,
  type TuneTask,
} from "./tune/engine.ts";
export { type MatmulChooserOptions, tunedMatmulChooser } from "./tune/matmul.ts";
export {
  type AttentionChooserOptions,
  type AttentionLimits,
  tunedAttentionChooser,
} from "./tune/attention.ts";
export type { AttentionChooser, AttentionShape, AttentionVariant } from "./kernels/attention.ts";
export {
  type Checkpoint,
  type CheckpointInput,
  decodeCheckpoint,
  decodeTrainingState,
  encodeCheckpoint,
  encodeTrainingState,
  type SavedState,
  statePath,
} from "./io/checkpoint.ts";
export { hfConfig } from "./io/hf_config.ts";
export {
  type EmbeddingOptions,
  headDim,
  initParams,
  ModelParams,
  type Params,
  paramShapes,
} from "./model/params.ts";
export { median } from "./measure/stats.ts";
export {
  type RoundOptions,
  type Timed,
  timeDispatches,
  timeRuns,
  timingReps,
} from "./measure/timing.ts";
