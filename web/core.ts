/**
 * The bundle's platform-neutral core (`deno task bundle` turns it into web/dist/core.js, one ES
 * module for browsers; tests/web/bundle_test.ts checks it holds no Deno or Node API): the DSL, the
 * compiler, the runtime without its host layer, and the pictures.
 */
export * from "../dsl/mod.ts";
export * from "../compiler/mod.ts";
export * from "../runtime/mod.ts";
export * from "../viz/mod.ts";
