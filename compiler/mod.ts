/**
 * The compiler: what it derives from a spec's expression (causality, KV retention, prefill set,
 * tile classes, the whole analysis), the storage layouts, the attention kernels' WGSL and the
 * FlexAttention export. Imports only the DSL; touches no GPU and no file.
 */
export {
  type Analysis,
  type AnalysisSummary,
  analyze,
  type AnalyzeOptions,
  summarize,
} from "./analysis/analyze.ts";
export { type Causality, checkCausality, requireCausal } from "./analysis/causality.ts";
export {
  type Leaks,
  lossPositions,
  MAX_LEAK_TOKENS,
  predictionLeaks,
  scoredPositions,
} from "./analysis/leaks.ts";
export { copyRanges, type Layout, LAYOUTS, type Range, storageIndex, tokenAt } from "./layout.ts";
export { type PrefillPlan, prefillSet } from "./analysis/prefill.ts";
export { type CopyRetention, planRetention, type RetentionPlan } from "./analysis/retention.ts";
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
} from "./analysis/tiles.ts";
export { FlexExportError, flexModule, type FlexOptions } from "./codegen/flex.ts";

export {
  ATTENTION_UNIFORM_NAMES,
  ATTENTION_UNIFORMS,
  type AttentionChoices,
  type AttentionKernel,
  type AttentionKernelKind,
  type AttentionKernelParams,
  attentionParams,
  type AttentionUniform,
  buildAttentionKernel,
  type KernelLimits,
  type KernelTarget,
  type KernelVariant,
  type Staging,
  type StorageType,
} from "./codegen/attention_kernels.ts";
export type {
  KernelSource,
  UniformField,
  UniformLayout,
  UniformType,
} from "./codegen/kernel_source.ts";
export type { SpecCode } from "./codegen/wgsl_expr.ts";
