/**
 * `deno task compile` as a user runs it (subprocesses): per spec a .wgsl file and a .json manifest,
 * the manifest agreeing with the analysis and with the kernels the runtime builds, every kernel
 * section of the .wgsl file compiling on the WebGPU device, `--help`, and one `error:` line with
 * exit status 1 (and no files) for each kind of bad input.
 */
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import { analyze } from "../../compiler/analysis/analyze.ts";
import {
  ATTENTION_KINDS,
  attentionKernelKey,
  buildAttentionKernel,
} from "../../compiler/codegen/attention_kernels.ts";
import type { Layout } from "../../compiler/layout.ts";
import { classifyTiles } from "../../compiler/analysis/tiles.ts";
import { specUniformFields } from "../../compiler/codegen/wgsl_expr.ts";
import { PRESETS } from "../../dsl/presets.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import softcap from "../../examples/masks/softcap_phd.ts";
import { FlashAttention } from "../../runtime/kernels/attention.ts";
import { compilationErrors, PipelineCache } from "../../runtime/gpu/resources.ts";
import { KERNEL_MARKER, type Manifest, splitKernels } from "../../compiler/manifest.ts";
import type { WrittenSpec } from "../../runtime/jobs/compile.ts";
import { gpuOnce } from "../fixtures/attention.ts";
import { assertUsageError, runScript, specFiles } from "../fixtures/cli.ts";

/** Runs `cli/compile.ts` as the task does. */
const compile = (...args: string[]) => runScript("cli/compile.ts", ...args);

async function sha256(text: string): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(h)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks one spec's files against the analysis and the runtime's kernels, and compiles every kernel
 * section of the .wgsl file on the device. Returns the number of kernels compiled.
 */
async function checkOutput(
  spec: AttentionSpec,
  dir: string,
  o: { L: number; headDim: number; layouts: Layout[]; variants: ("fused" | "dense")[] },
): Promise<number> {
  const wgsl = await Deno.readTextFile(`${dir}/${spec.name}.wgsl`);
  const m: Manifest = JSON.parse(await Deno.readTextFile(`${dir}/${spec.name}.json`));
  const what = spec.name;
  assertEquals(m.name, spec.name);
  assertEquals(m.K, spec.K);
  assertEquals(m.params, { ...spec.params });
  assertEquals(m.source, spec.source);
  assertEquals(m.wgsl, {
    file: `${spec.name}.wgsl`,
    bytes: new TextEncoder().encode(wgsl).length,
    sha256: await sha256(wgsl),
  });
  assertEquals(m.config.headDim, o.headDim);
  assertEquals(m.config.layouts, o.layouts, what);
  assertEquals(m.config.variants, o.variants, what);
  // Uniforms: the fixed fields, then the spec's, 4 bytes each, with the spec's values.
  const specFields = specUniformFields(spec);
  assertEquals(m.uniforms.fields.map((f) => f.name), [
    ...["N", "L", "H", "HKV", "scale", "rows", "cols", "tq", "tk"],
    ...specFields,
  ]);
  m.uniforms.fields.forEach((f, i) => assertEquals(f.offset, 4 * i));
  assertEquals(m.uniforms.spec.map((f) => f.name), specFields);
  for (const f of m.uniforms.spec) {
    if (f.name.startsWith("p_")) assertEquals(f.value, spec.params[f.name.slice(2)], f.name);
  }

  // The analysis for the manifest's L and the kernels' tile size.
  const tile = m.config.tileQ;
  const a = analyze(spec, { L: o.L, tile, layout: o.layouts[0] });
  assertEquals(m.causality, { causal: true, message: a.causality.message });
  const r = a.retention;
  assertEquals(m.retention.formula, r.formula);
  assertEquals(m.retention.maxCachedTokens, r.maxCachedTokens);
  assertEquals(m.retention.bounded, r.bounded);
  assertEquals(
    m.retention.perCopy,
    r.perCopy.map((c) => ({ ...c, reach: Number.isFinite(c.reach) ? c.reach : null })),
  );
  const ss = m.retention.steadyState;
  assertEquals(ss.fullCopies, r.perCopy.filter((c) => c.kind === "all").length);
  const full = ss.fullCopies, w = ss.windowTokens;
  assertEquals(ss.formula, r.formula);
  assertEquals(
    r.formula,
    full === 0 ? `${w}` : `${full === 1 ? "" : `${full}·`}L${w > 0 ? ` + ${w}` : ""}`,
  );
  assertEquals(ss.tokensAtL, r.maxCachedTokens);
  assertEquals(ss.bytesAtL, r.maxCachedTokens * 2 * o.headDim * 4);
  assertEquals(m.prefill, {
    P: o.L,
    count: a.prefill.count,
    ratio: a.prefill.ratio,
    perCopy: a.prefill.perCopy,
  });
  assertEquals(m.tiles.map((t) => t.layout), o.layouts);
  for (const t of m.tiles) {
    const map = classifyTiles(spec, { L: o.L, tileQ: tile, tileK: tile, layout: t.layout });
    assertEquals(t.counts, map.counts, `${what} ${t.layout}`);
    assertEquals(t.keptFraction, map.keptFraction);
    assertEquals([t.rows, t.cols], [map.rows, map.cols]);
    assertEquals(t.visited, {
      fused: map.counts.partial + map.counts.full,
      dense: map.rows * map.cols,
    });
    ok(t.keptFraction > 0 && t.keptFraction <= 1);
  }

  // Kernels: one section per kernel, in manifest order, each the runtime's kernel for the
  // configuration (same key and same code), and each compiles on the device.
  const sections = splitKernels(wgsl);
  const lines = wgsl.split("\n");
  assertEquals(sections.length, o.layouts.length * o.variants.length * 3, what);
  assertEquals(m.kernels.length, sections.length);
  const { gpu } = await gpuOnce();
  const cache = new PipelineCache(gpu.device);
  const keys = new Set<string>();
  let i = 0;
  for (const layout of o.layouts) {
    for (const variant of o.variants) {
      const fa = new FlashAttention(gpu, cache, spec, { headDim: o.headDim, layout, variant });
      for (const kind of ATTENTION_KINDS) {
        const mk = m.kernels[i], section = sections[i];
        const k = buildAttentionKernel(kind, fa.params, gpu.limits);
        assertEquals(
          [mk.kind, mk.layout, mk.variant, mk.dtype],
          [kind, layout, variant, "f32"],
          `${what} #${i}`,
        );
        assertEquals(mk.key, attentionKernelKey(kind, fa.params));
        assertEquals(mk.key, k.key);
        assertEquals([mk.label, mk.workgroupSize, mk.bindings], [
          k.label,
          k.workgroupSize,
          k.bindings,
        ]);
        assertEquals([mk.tileQ, mk.tileK], [fa.params.tileQ, fa.params.tileK]);
        ok(lines[mk.line - 1].startsWith(`${KERNEL_MARKER}${i + 1}/${sections.length}: `));
        const comment = section.split("\n").filter((l) => l.startsWith("// ")).slice(0, 6);
        ok(comment.includes(`// key: ${k.key}`), `${what} #${i}: no key line`);
        ok(comment.some((l) => l.includes(`@workgroup_size(${k.workgroupSize})`)));
        ok(section.includes(`\n${k.code.trimEnd()}\n`), `${what} #${i}: code differs`);
        ok(!section.slice(KERNEL_MARKER.length).includes(KERNEL_MARKER));
        keys.add(k.key);
        const p = cache.get(`${i}`, () => ({ code: section, label: `${what} ${k.label}` }));
        assertEquals(await compilationErrors(p), [], `${what} ${k.label}`);
        i++;
      }
    }
  }
  assertEquals(keys.size, sections.length, `${what}: kernels with equal keys`);
  return sections.length;
}

Deno.test("every preset and a spec file: files, manifests, kernels compile on the device", async () => {
  const dir = await Deno.makeTempDir({ prefix: "compile_cli_" });
  try {
    const names = Object.keys(PRESETS);
    const L = 96, headDim = 32;
    const r = await compile(
      ...names,
      "examples/masks/softcap_phd.ts",
      ...["--out", dir, "--head-dim", `${headDim}`, "--L", `${L}`, "--variant", "both", "--json"],
    );
    assertEquals(r.code, 0, r.stderr);
    const summary: { out: string; specs: WrittenSpec[] } = JSON.parse(r.stdout);
    const specs = [...names.map((n) => PRESETS[n]()), softcap];
    assertEquals(summary.out, dir);
    assertEquals(summary.specs.map((s) => s.name), specs.map((s) => s.name));
    ok(summary.specs.some((s) => s.name === "softcap_phd_k3_w8_c16"));
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(files, specs.flatMap((s) => [`${s.name}.json`, `${s.name}.wgsl`]).sort());
    let compiled = 0;
    for (const [i, spec] of specs.entries()) {
      const w = summary.specs[i];
      assertEquals(w.wgsl, `${dir}/${spec.name}.wgsl`);
      assertEquals(w.manifest, `${dir}/${spec.name}.json`);
      const layouts: Layout[] = spec.K === 1 ? ["interleaved"] : ["interleaved", "grouped"];
      const n = await checkOutput(spec, dir, { L, headDim, layouts, variants: ["fused", "dense"] });
      assertEquals(w.kernels, n);
      compiled += n;
    }
    ok(compiled >= 48, `only ${compiled} kernels`);
    // The grouped layout keeps far less work than the interleaved one for PHD (paper Fig. 3).
    const phd: Manifest = JSON.parse(await Deno.readTextFile(`${dir}/phd_k3.json`));
    ok(phd.tiles[1].keptFraction < phd.tiles[0].keptFraction, JSON.stringify(phd.tiles));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("defaults, spec flags, one layout, f16, --help", async () => {
  const dir = await Deno.makeTempDir({ prefix: "compile_cli_" });
  try {
    const [plain, f16, help] = await Promise.all([
      compile("phd-cswa", "--K", "2", "--W", "4", "--param", "C=8", "--out", `${dir}/a`),
      compile("phd-swa", "--layout", "grouped", "--dtype", "f16", "--out", `${dir}/b`, "--json"),
      compile("--help"),
    ]);
    assertEquals(plain.code, 0, plain.stderr);
    match(
      plain.stdout,
      /^wrote .*a\/phd_cswa_k2_w4_c8\.wgsl \(6 kernels, \d+ bytes\) and .*a\/phd_cswa_k2_w4_c8\.json: cache L \+ 3 tokens, prefill x[\d.]+, tiles at L=1024: interleaved keeps [\d.]+%, grouped keeps [\d.]+%\n$/,
    );
    const spec = PRESETS["phd-cswa"]();
    const m: Manifest = JSON.parse(await Deno.readTextFile(`${dir}/a/phd_cswa_k2_w4_c8.json`));
    assertEquals([m.K, m.params, m.config.headDim, m.config.dtype], [2, { W: 4, C: 8 }, 64, "f32"]);
    assertEquals(m.config.variants, ["fused"]);
    assertEquals(m.retention.steadyState.windowTokens, 3);
    assertEquals(m.uniforms.spec, [{ name: "p_C", value: 8 }, { name: "p_W", value: 4 }]);
    assertEquals(m.tiles.map((t) => [t.L, t.tileQ]), [[1024, 32], [1024, 32]]);
    ok(m.kernels.every((k) => k.key.includes(`"d":64`) && k.variant === "fused"));
    ok(spec.K === 3, "the preset itself is unchanged");

    assertEquals(f16.code, 0, f16.stderr);
    const [w] = (JSON.parse(f16.stdout) as { specs: WrittenSpec[] }).specs;
    assertEquals([w.name, w.kernels], ["phd_swa_k3_w16", 3]);
    const text = await Deno.readTextFile(w.wgsl);
    const sections = splitKernels(text);
    assertEquals(sections.length, 3);
    ok(sections.every((s) => s.includes("\nenable f16;\nalias T = f16;")));
    const mf: Manifest = JSON.parse(await Deno.readTextFile(w.manifest));
    ok(mf.kernels.every((k) => k.layout === "grouped" && k.dtype === "f16"));
    assertEquals(mf.retention.steadyState.bytesAtL, mf.retention.maxCachedTokens * 2 * 64 * 2);
    const { gpu } = await gpuOnce();
    if (gpu.f16) {
      const cache = new PipelineCache(gpu.device);
      for (const [i, s] of sections.entries()) {
        const p = cache.get(`f16 ${i}`, () => ({ code: s, label: `f16 ${i}` }));
        assertEquals(await compilationErrors(p), []);
      }
    }

    assertEquals(help.code, 0);
    match(help.stdout, /Usage: deno task compile \[options\] <spec\.\.\.>/);
    const flags = ["--out", "--head-dim", "--layout", "--variant", "--dtype", "--L", "--K", "--W"];
    for (const flag of [...flags, "--C", "--param", "--json", "--tile", "--staging"]) {
      ok(help.stdout.includes(flag), flag);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad input: one error line, exit status 1, nothing written", async () => {
  const dir = await specFiles("compile_cli_", ["peek", "nospec"]);
  const out = `${dir}/out`;
  const cases: [string[], RegExp][] = [
    [["nope"], /unknown preset "nope" \(known: causal, phd, phd-swa, phd-cswa/],
    [[`${dir}/missing.ts`], /spec file ".*missing\.ts" does not exist/],
    [[`${dir}/nospec.ts`], /exports no AttentionSpec/],
    [["phd", `${dir}/peek.ts`], /spec "peek_k1" is not causal/],
    [[], /missing required argument 'spec'/],
    [["phd", "--head-dim", "30"], /--head-dim must be a multiple of 4 in \[4, 256\], got "30"/],
    [["phd", "--head-dim", "x"], /--head-dim must be a positive integer, got "x"/],
    [["phd", "--L", "0"], /--L must be a positive integer, got "0"/],
    [["phd", "--K", "two"], /--K must be a positive integer, got "two"/],
    [["phd-cswa", "--C", "2.5"], /--C must be a positive integer, got "2.5"/],
    [["phd", "--W", "3"], /spec "phd" has no parameter W \(it has: none\)/],
    [["phd-swa", "--param", "W"], /--param expects NAME=VALUE, got "W"/],
    [["phd", "--tile", "512"], /--tile must be at most 256/],
    [["phd", "--layout", "diagonal"], /argument 'diagonal' is invalid.*interleaved, grouped, both/],
    [["phd", "--dtype", "f64"], /argument 'f64' is invalid/],
    [["phd", "--frobnicate"], /unknown option '--frobnicate'/],
    [["phd", "phd"], /"phd" and "phd" are both spec "phd_k3"/],
  ];
  try {
    const runs = await Promise.all(cases.map(([args]) => compile(...args, "--out", out)));
    runs.forEach((r, i) => assertUsageError(r, cases[i][1], cases[i][0].join(" ")));
    // Nothing is written on bad input, not even the output folder.
    assertEquals(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["nospec.ts", "peek.ts"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
