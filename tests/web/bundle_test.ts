/**
 * `deno task bundle`'s output is browser-only code: built into a temporary folder, neither module
 * pulls in the host layer or a Node builtin (the esbuild metafile lists every input and import),
 * neither text calls a Deno API or esbuild's dynamic-require shim, and the core module, loaded as
 * plain JavaScript, analyses a preset exactly as the TypeScript sources do.
 */
import { deepStrictEqual, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { bundle } from "../../web/build.ts";
import { analyze, phdCswa, summarize } from "../../mod.ts";

Deno.test("the bundle holds no Deno or node: API and its core module runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bundle_test_" });
  try {
    const r = await bundle({ out: dir });
    deepStrictEqual(
      r.files.map((f) => f.path.split("/").pop()).sort(),
      ["app.js", "app.js.map", "core.js", "core.js.map"],
    );
    for (const [entry, inputs] of Object.entries(r.inputs)) {
      for (const p of inputs) {
        assert(!p.startsWith("runtime/host/") && !p.startsWith("cli/"), `${entry} bundles ${p}`);
        assert(!p.startsWith("node:"), `${entry} imports ${p}`);
      }
      assert(inputs.includes("dsl/spec.ts"), `${entry} lacks the DSL`);
    }
    for (const name of ["core.js", "app.js"]) {
      const text = await Deno.readTextFile(join(dir, name));
      for (
        const bad of [
          /\bDeno\s*\.\s*\w/,
          /globalThis\.Deno\b/,
          /from\s*["']node:/,
          /Dynamic require of/,
        ]
      ) {
        assert(!bad.test(text), `${name} contains ${bad}: ${text.match(bad)?.[0]}`);
      }
    }
    const core = await import(new URL(`file://${join(dir, "core.js")}`).href);
    const spec = core.phdCswa({ K: 3, W: 8, C: 16 });
    deepStrictEqual(
      core.summarize(core.analyze(spec, { L: 256 })),
      summarize(analyze(phdCswa({ K: 3, W: 8, C: 16 }), { L: 256 })),
    );
    const size = r.files.find((f) => f.path.endsWith("core.js"))!;
    assert(size.bytes > 0 && size.gzipBytes < size.bytes, JSON.stringify(size));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
