/**
 * Public API for scripts: define attention patterns (`defineAttention`, presets), analyse them
 * (causality, KV retention, prefill set, tile classes) and evaluate their reference meaning.
 *
 * @example
 * ```ts
 * import { analyze, phdCswa } from "./mod.ts";
 * const a = analyze(phdCswa({ K: 3, W: 16, C: 32 }), { L: 4096 });
 * console.log(a.retention.formula, a.prefill.count, a.tiles.keptFraction);
 * ```
 */
export * from "./dsl/mod.ts";
export { type Analysis, analyze, type AnalyzeOptions, summarize } from "./compiler/analysis.ts";
export { type Causality, checkCausality } from "./compiler/causality.ts";
export { copyRanges, type Layout, LAYOUTS, storageIndex, tokenAt } from "./compiler/layout.ts";
export { type PrefillPlan, prefillSet } from "./compiler/prefill.ts";
export { type CopyRetention, planRetention, type RetentionPlan } from "./compiler/retention.ts";
export {
  classifyTiles,
  EMPTY,
  FULL,
  PARTIAL,
  type TileClass,
  tileLists,
  type TileMap,
  type TileOptions,
} from "./compiler/tiles.ts";
