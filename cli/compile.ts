/**
 * `deno task compile <spec.ts | preset>... [--out DIR]` (DESIGN.md 3): per spec, `<name>.wgsl` with
 * every kernel it needs (forward, backward_dq, backward_dkv for each layout and variant asked), each
 * after a comment block with its cache key, entry point and workgroup size, and `<name>.json`, the
 * manifest: parameters, uniform fields, kernels, tile classes and sparsity per layout, causality,
 * KV retention and prefill set for a sequence length `--L`. Both files are written atomically, the
 * manifest last. No GPU is touched: the kernels are the ones the runtime builds for the same
 * configuration (runtime/kernels/attention.ts), which the tests compile on the device.
 *
 * The .wgsl file is not one module: each kernel starts at a line beginning with `KERNEL_MARKER`
 * and runs to the next one (`splitKernels`); the manifest gives each kernel's first line.
 */
import { type Command, Option } from "commander";
import { join } from "node:path";
import { analyze } from "../compiler/analysis/analyze.ts";
import {
  type AttentionKernel,
  type AttentionKernelKind,
  type AttentionKernelParams,
  buildAttentionKernel,
  checkHeadDim,
  defaultTiles,
  fitBlock,
  type KernelVariant,
  type Staging,
  type StorageType,
} from "../compiler/codegen/attention_kernels.ts";
import { type Layout, LAYOUTS } from "../compiler/layout.ts";
import { classifyTiles, type TileMap } from "../compiler/analysis/tiles.ts";
import { packSpecBindings, specUniformFields, tableNames } from "../compiler/codegen/wgsl_expr.ts";
import { specBindings } from "../dsl/eval.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import {
  addSpecOptions,
  newCommand,
  parseArgv,
  positiveInt,
  resolveSpec,
  runCommand,
  type SpecFlags,
  UsageError,
  writeFileAtomic,
} from "./args.ts";

/** The passes, in the order they are emitted. */
export const KERNEL_KINDS: readonly AttentionKernelKind[] = [
  "forward",
  "backward_dq",
  "backward_dkv",
];

/** Every kernel section of a .wgsl file starts with a line beginning with this. */
export const KERNEL_MARKER = "// ==== kernel ";

/** Manifest format version (bump on incompatible changes). */
export const MANIFEST_VERSION = 1;

/** Parsed flags of `deno task compile`. */
export interface CompileFlags extends SpecFlags {
  /** Output folder. */
  out: string;
  /** Head dimension baked into the kernels. */
  headDim: number;
  layout: Layout | "both";
  variant: KernelVariant | "both";
  dtype: StorageType;
  staging: Staging;
  /** Tile edge (query rows = key rows); default from `defaultTiles`. */
  tile?: number;
  /** Sequence length of the tile classes and the prefill set. */
  L: number;
  json?: boolean;
}

/** Defaults of the flags (also used by the help text). */
export const COMPILE_DEFAULTS = {
  out: "out/compile",
  headDim: 64,
  layout: "both",
  variant: "fused",
  dtype: "f32",
  staging: "direct",
  L: 1024,
} as const;

/** One kernel as the manifest lists it. */
export interface ManifestKernel {
  kind: AttentionKernelKind;
  layout: Layout;
  variant: KernelVariant;
  dtype: StorageType;
  staging: Staging;
  key: string;
  label: string;
  entryPoint: string;
  /** Invocations per workgroup (`@workgroup_size`). */
  workgroupSize: number;
  workgroupBytes: number;
  tileQ: number;
  tileK: number;
  /** Rows per invocation: query rows (forward, dQ) or key rows (dK/dV). */
  block: number;
  /** Storage buffers at bindings 1.. (binding 0 is the uniform buffer `U`). */
  bindings: string[];
  /** Workgroups dispatched per axis. */
  dispatch: [string, string, string];
  /** 1-based line of the .wgsl file where the kernel's section (its `KERNEL_MARKER` line) starts. */
  line: number;
}

/** Tile classes of one layout for the manifest's L. */
export interface ManifestTiles {
  layout: Layout;
  L: number;
  tileQ: number;
  tileK: number;
  rows: number;
  cols: number;
  counts: { empty: number; partial: number; full: number };
  /** Fraction of the K*L x K*L pairs in non-empty tiles: the work a fused kernel keeps. */
  keptFraction: number;
  /** Tiles a kernel visits per pass: fused (non-empty) and dense (all). */
  visited: { fused: number; dense: number };
}

/** The `<name>.json` manifest. */
export interface Manifest {
  version: number;
  name: string;
  baseName: string;
  description: string;
  K: number;
  source: string;
  positions: string;
  bidirectional: boolean | "copies";
  params: Record<string, number>;
  tables: Record<string, number[]>;
  config: {
    headDim: number;
    dtype: StorageType;
    staging: Staging;
    layouts: Layout[];
    variants: KernelVariant[];
    tileQ: number;
    tileK: number;
    blockQ: number;
    blockK: number;
  };
  /** The uniform buffer `U`: 4-byte fields in order (from the emitted WGSL). */
  uniforms: {
    fields: { name: string; type: string; offset: number }[];
    bytes: number;
    /** The spec's fields (parameters, table extents) and their values for the spec's bindings. */
    spec: { name: string; value: number }[];
  };
  wgsl: { file: string; bytes: number; sha256: string };
  kernels: ManifestKernel[];
  tiles: ManifestTiles[];
  causality: { causal: boolean; message: string };
  retention: {
    L: number;
    formula: string;
    bounded: boolean;
    maxCachedTokens: number;
    perCopy: { copy: number; kind: string; positions: number; reach: number | null }[];
    /** The cache while decoding: `fullCopies`·L + `windowTokens` tokens per layer and KV head. */
    steadyState: {
      formula: string;
      fullCopies: number;
      windowTokens: number;
      tokensAtL: number;
      /** K and V bytes at L per layer and KV head (head dim and dtype of the kernels). */
      bytesAtL: number;
    };
  };
  prefill: {
    P: number;
    count: number;
    ratio: number;
    perCopy: { lo: number; hi: number }[][];
  };
}

/** What `compileSpec` produces for one spec. */
export interface Compiled {
  wgsl: string;
  manifest: Manifest;
}

/** The kernel parameters of a configuration, as `FlashAttention` derives them. */
export function kernelParams(
  spec: AttentionSpec,
  o: {
    headDim: number;
    layout: Layout;
    variant: KernelVariant;
    dtype: StorageType;
    staging: Staging;
    tile?: number;
  },
): AttentionKernelParams {
  const t = defaultTiles(o.headDim, o.staging);
  const tileQ = o.tile ?? t.tileQ, tileK = o.tile ?? t.tileK;
  return {
    spec,
    headDim: o.headDim,
    tileQ,
    tileK,
    blockQ: fitBlock(tileQ, t.blockQ),
    blockK: fitBlock(tileK, t.blockK),
    layout: o.layout,
    dtype: o.dtype,
    variant: o.variant,
    staging: o.staging,
  };
}

/** The `struct Uniforms` fields of a kernel's WGSL. */
function uniformFields(code: string): { name: string; type: string; offset: number }[] {
  const m = /struct Uniforms \{([^}]*)\}/.exec(code);
  if (!m) throw new Error("generated kernel has no struct Uniforms");
  return m[1].split("\n").map((l) => /^\s*(\w+)\s*:\s*(\w+)\s*,?\s*$/.exec(l)).filter((x) =>
    x !== null
  ).map((x, i) => ({ name: x[1], type: x[2], offset: 4 * i }));
}

function kernelComment(k: AttentionKernel, p: AttentionKernelParams, i: number, n: number) {
  const dkv = k.kind === "backward_dkv";
  const rows = dkv ? "key" : "query";
  return [
    `${KERNEL_MARKER}${i + 1}/${n}: ${k.kind} ${p.variant} ${p.layout} ====`,
    `// label: ${k.label}`,
    `// key: ${k.key}`,
    `// entry point: main, @workgroup_size(${k.workgroupSize}) (each invocation owns ${
      dkv ? p.blockK ?? 1 : p.blockQ ?? 1
    } ${rows} rows of a ${
      dkv ? p.tileK : p.tileQ
    }-row tile), workgroup memory: ${k.workgroupBytes} bytes`,
    `// bindings: 0 U (uniform), ${
      k.bindings.map((b, j) => `${j + 1} ${b}`).join(", ")
    } (storage, group 0)`,
    `// dispatch: (${dkv ? "key tiles, kv heads" : "query tiles, heads"}, batch) workgroups`,
  ].join("\n");
}

async function sha256(text: string): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(h)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Layouts and variants a flag value stands for (K = 1 has one layout: both orders coincide). */
export function chosen(f: Pick<CompileFlags, "layout" | "variant">, K: number) {
  const layouts: Layout[] = K === 1
    ? ["interleaved"]
    : f.layout === "both"
    ? [...LAYOUTS]
    : [f.layout];
  const variants: KernelVariant[] = f.variant === "both" ? ["fused", "dense"] : [f.variant];
  return { layouts, variants };
}

/** Builds one spec's .wgsl text and manifest (no files written). */
export async function compileSpec(spec: AttentionSpec, f: CompileFlags): Promise<Compiled> {
  checkHeadDim(f.headDim);
  const { layouts, variants } = chosen(f, spec.K);
  const base = { headDim: f.headDim, dtype: f.dtype, staging: f.staging, tile: f.tile };
  const built: { k: AttentionKernel; p: AttentionKernelParams }[] = [];
  for (const layout of layouts) {
    for (const variant of variants) {
      const p = kernelParams(spec, { ...base, layout, variant });
      for (const kind of KERNEL_KINDS) built.push({ k: buildAttentionKernel(kind, p), p });
    }
  }
  const p0 = built[0].p;
  const header = [
    `// ${spec.name}.wgsl: attention kernels of spec "${spec.name}" (K = ${spec.K}), written by`,
    `// deno task compile (cli/compile.ts). ${built.length} kernels; each one is a separate WGSL`,
    `// module: from a line starting with "${KERNEL_MARKER.trim()}" to the next one.`,
    `// mask: ${spec.source.split("\n").join("\n//   ")}`,
    `// head dim ${f.headDim}, ${f.dtype} storage, ${f.staging} staging, tiles ${p0.tileQ}x${p0.tileK}`,
    "",
  ].join("\n");
  const parts = [header];
  let line = header.split("\n").length;
  const kernels: ManifestKernel[] = built.map(({ k, p }, i) => {
    const section = `${kernelComment(k, p, i, built.length)}\n${k.code.trimEnd()}\n\n`;
    parts.push(section);
    const at = line;
    line += section.split("\n").length - 1;
    const dkv = k.kind === "backward_dkv";
    return {
      kind: k.kind,
      layout: p.layout,
      variant: p.variant,
      dtype: p.dtype,
      staging: p.staging,
      key: k.key,
      label: k.label,
      entryPoint: "main",
      workgroupSize: k.workgroupSize,
      workgroupBytes: k.workgroupBytes,
      tileQ: p.tileQ,
      tileK: p.tileK,
      block: dkv ? p.blockK ?? 1 : p.blockQ ?? 1,
      bindings: k.bindings,
      dispatch: dkv
        ? [`ceil(${spec.K}*L/${p.tileK})`, "kvHeads", "batch"]
        : [`ceil(${spec.K}*L/${p.tileQ})`, "heads", "batch"],
      line: at,
    };
  });
  const wgsl = parts.join("").trimEnd() + "\n";

  const L = f.L, tile = p0.tileQ;
  const a = analyze(spec, { L, tile, layout: layouts[0] });
  const tileMaps: TileMap[] = layouts.map((layout) =>
    p0.tileQ === p0.tileK && layout === a.tiles.layout
      ? a.tiles
      : classifyTiles(spec, { L, tileQ: p0.tileQ, tileK: p0.tileK, layout })
  );
  const r = a.retention;
  const fullCopies = r.perCopy.filter((c) => c.kind === "all").length;
  let windowTokens = 0;
  r.cachedAfter.forEach((n, i) => windowTokens = Math.max(windowTokens, n - fullCopies * (i + 1)));
  const elem = f.dtype === "f16" ? 2 : 4;
  const fields = uniformFields(built[0].k.code);
  const specFields = specUniformFields(spec);
  const values = packSpecBindings(spec, specBindings(spec)).fields;
  const manifest: Manifest = {
    version: MANIFEST_VERSION,
    name: spec.name,
    baseName: spec.baseName,
    description: spec.description,
    K: spec.K,
    source: spec.source,
    positions: spec.positions,
    bidirectional: spec.bidirectional,
    params: { ...spec.params },
    tables: Object.fromEntries(
      tableNames(spec).map((t) => [t, [...spec.tables[t]]]),
    ),
    config: {
      headDim: f.headDim,
      dtype: f.dtype,
      staging: f.staging,
      layouts,
      variants,
      tileQ: p0.tileQ,
      tileK: p0.tileK,
      blockQ: p0.blockQ ?? 1,
      blockK: p0.blockK ?? 1,
    },
    uniforms: {
      fields,
      bytes: Math.ceil(fields.length / 4) * 16,
      spec: specFields.map((name, i) => ({ name, value: values[i] })),
    },
    wgsl: {
      file: `${spec.name}.wgsl`,
      bytes: new TextEncoder().encode(wgsl).length,
      sha256: await sha256(wgsl),
    },
    kernels,
    tiles: tileMaps.map((t) => {
      const visited = t.counts.partial + t.counts.full;
      return {
        layout: t.layout,
        L: t.L,
        tileQ: t.tileQ,
        tileK: t.tileK,
        rows: t.rows,
        cols: t.cols,
        counts: { ...t.counts },
        keptFraction: t.keptFraction,
        visited: { fused: visited, dense: t.rows * t.cols },
      };
    }),
    causality: { causal: a.causality.causal, message: a.causality.message },
    retention: {
      L,
      formula: r.formula,
      bounded: r.bounded,
      maxCachedTokens: r.maxCachedTokens,
      perCopy: r.perCopy.map((c) => ({
        copy: c.copy,
        kind: c.kind,
        positions: c.positions,
        reach: Number.isFinite(c.reach) ? c.reach : null,
      })),
      steadyState: {
        formula: r.formula,
        fullCopies,
        windowTokens,
        tokensAtL: r.maxCachedTokens,
        bytesAtL: r.maxCachedTokens * 2 * f.headDim * elem,
      },
    },
    prefill: {
      P: a.prefill.P,
      count: a.prefill.count,
      ratio: a.prefill.ratio,
      perCopy: a.prefill.perCopy.map((rs) => rs.map((x) => ({ lo: x.lo, hi: x.hi }))),
    },
  };
  return { wgsl, manifest };
}

/** The kernel sections of a .wgsl file written by `compileSpec`, in order. */
export function splitKernels(wgsl: string): string[] {
  const starts: number[] = [];
  let at = wgsl.startsWith(KERNEL_MARKER) ? 0 : wgsl.indexOf(`\n${KERNEL_MARKER}`);
  while (at >= 0) {
    if (wgsl[at] === "\n") at++;
    starts.push(at);
    at = wgsl.indexOf(`\n${KERNEL_MARKER}`, at);
  }
  return starts.map((s, i) => wgsl.slice(s, starts[i + 1] ?? wgsl.length));
}

/** One written spec in the `--json` summary. */
export interface WrittenSpec {
  name: string;
  K: number;
  wgsl: string;
  manifest: string;
  kernels: number;
  bytes: number;
}

/** Runs the command on parsed flags; returns what goes to stdout. */
export async function compileCommand(refs: string[], f: CompileFlags): Promise<string> {
  const specs: AttentionSpec[] = [];
  for (const ref of refs) specs.push(await resolveSpec(ref, f));
  const seen = new Map<string, string>();
  refs.forEach((ref, i) => {
    const prev = seen.get(specs[i].name);
    if (prev !== undefined) {
      throw new UsageError(
        `"${prev}" and "${ref}" are both spec "${specs[i].name}": each output name must be unique`,
      );
    }
    seen.set(specs[i].name, ref);
  });
  // Build everything before writing anything: bad input leaves no partial output.
  const compiled: Compiled[] = [];
  for (const spec of specs) compiled.push(await compileSpec(spec, f));
  const written: WrittenSpec[] = [];
  for (const { wgsl, manifest } of compiled) {
    const wgslPath = join(f.out, `${manifest.name}.wgsl`);
    const jsonPath = join(f.out, `${manifest.name}.json`);
    await writeFileAtomic(wgslPath, wgsl);
    await writeFileAtomic(jsonPath, JSON.stringify(manifest, null, 2) + "\n");
    written.push({
      name: manifest.name,
      K: manifest.K,
      wgsl: wgslPath,
      manifest: jsonPath,
      kernels: manifest.kernels.length,
      bytes: manifest.wgsl.bytes,
    });
  }
  if (f.json) return JSON.stringify({ out: f.out, specs: written });
  return written.map((w, i) => {
    const m = compiled[i].manifest,
      t = m.tiles.map((x) => `${x.layout} keeps ${(100 * x.keptFraction).toFixed(1)}%`);
    return `wrote ${w.wgsl} (${w.kernels} kernels, ${w.bytes} bytes) and ${w.manifest}: ` +
      `cache ${m.retention.formula} tokens, prefill x${m.prefill.ratio.toFixed(2)}, ` +
      `tiles at L=${f.L}: ${t.join(", ")}`;
  }).join("\n");
}

/** The command line of `deno task compile`. */
export function compileProgram(): Command {
  const d = COMPILE_DEFAULTS;
  return addSpecOptions(
    newCommand(
      "deno task compile",
      "write each spec's WGSL kernels (<name>.wgsl) and manifest (<name>.json)",
    )
      .argument("<spec...>", "preset names or paths of .ts files exporting an AttentionSpec")
      .option("--out <dir>", "output folder", d.out),
  )
    .option(
      "--head-dim <d>",
      "head dimension, a multiple of 4 in [4, 256]",
      (v: string) => {
        const n = positiveInt("--head-dim")(v);
        if (n < 4 || n > 256 || n % 4 !== 0) {
          throw new UsageError(`--head-dim must be a multiple of 4 in [4, 256], got "${v}"`);
        }
        return n;
      },
      d.headDim,
    )
    .addOption(
      new Option("--layout <layout>", "token storage layout(s) of the kernels")
        .choices([...LAYOUTS, "both"]).default(d.layout),
    )
    .addOption(
      new Option("--variant <variant>", "fused (skips empty tiles) and/or dense kernels")
        .choices(["fused", "dense", "both"]).default(d.variant),
    )
    .addOption(
      new Option("--dtype <dtype>", "storage type of q, k, v, o and gradients")
        .choices(["f32", "f16"]).default(d.dtype),
    )
    .addOption(
      new Option("--staging <staging>", "stream rows from storage or through workgroup memory")
        .choices(["direct", "workgroup"]).default(d.staging),
    )
    .option(
      "--tile <t>",
      "tile edge (query rows = key rows), at most 256 (default: the runtime's, 32 for direct staging)",
      (v: string) => {
        const t = positiveInt("--tile")(v);
        if (t > 256) throw new UsageError(`--tile must be at most 256, got "${v}"`);
        return t;
      },
    )
    .option(
      "--L <n>",
      "sequence length (positions) of the manifest's tile classes, retention and prefill set",
      positiveInt("--L"),
      d.L,
    )
    .option("--json", "print a JSON summary of the files written");
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(compileProgram());
    console.log(await compileCommand(cmd.args, cmd.opts<CompileFlags>()));
  });
}
