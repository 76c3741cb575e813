/**
 * The attention-pattern DSL: expressions over query/key token coordinates, specs, presets and the
 * dense reference meaning. Imports nothing from the compiler or the runtime.
 */
export * from "./expr.ts";
export * from "./spec.ts";
export * from "./presets.ts";
export * from "./eval.ts";
export * from "./serial.ts";
