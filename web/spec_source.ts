/**
 * A spec from TypeScript source, in the page: sucrase (npm, pinned) strips the types and turns the
 * module's imports and exports into CommonJS, the code runs with every import bound to the bundled
 * DSL, and the spec is the module's default export or its only exported spec, as
 * `deno task mask spec.ts` loads a file (dsl/spec.ts `specOfModule`). Every failure is one line.
 */
import { transform } from "sucrase";
import * as dsl from "../dsl/mod.ts";
import { type AttentionSpec, specOfModule } from "../dsl/spec.ts";

/** The import specifier the page's examples use for the DSL (any specifier resolves to it). */
export const DSL_SPECIFIER = "phd-attention";

/** The DSL as the user's module sees it: an unknown name fails at once, naming what exists. */
const DSL_MODULE = new Proxy(dsl as Record<string, unknown>, {
  get(target, name) {
    if (name === "__esModule") return true;
    if (typeof name !== "string" || name in target) return target[name as string];
    throw new ReferenceError(
      `the DSL has no export "${name}" (it has ${
        Object.keys(target).filter((k) => /^[a-z]/.test(k)).sort().join(", ")
      })`,
    );
  },
});

/** Compiles and runs `source`; returns its spec or throws one line saying what is wrong. */
export function specFromSource(source: string): AttentionSpec {
  let code: string;
  try {
    code = transform(source, { transforms: ["typescript", "imports"] }).code;
  } catch (e) {
    throw new SyntaxError(`the spec does not parse: ${firstLine(e)}`);
  }
  const exports: Record<string, unknown> = {};
  try {
    new Function("require", "exports", code)(() => DSL_MODULE, exports);
  } catch (e) {
    throw new Error(`the spec failed when run: ${firstLine(e)}`);
  }
  return specOfModule(exports, "the spec");
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
