/**
 * What `deno task compile` writes, built without touching a file or a GPU (docs/DESIGN.md 3): per
 * spec one .wgsl text with every kernel it needs (forward, backward_dq, backward_dkv for each
 * layout and variant asked), each after a comment block with its cache key, entry point and
 * workgroup size, and the manifest: parameters, uniform fields, kernels, tile classes and sparsity
 * per layout, causality, KV retention and prefill set for a sequence length `L`. The kernels are
 * the ones the runtime builds for the same configuration (`attentionParams`). Platform-neutral.
 *
 * The .wgsl text is not one module: each kernel starts at a line beginning with `KERNEL_MARKER`
 * and runs to the next one (`splitKernels`); the manifest gives each kernel's first line.
 */
import type { AttentionSpec } from "../dsl/spec.ts";
import { specBindings } from "../dsl/eval.ts";
import { analyze } from "./analysis/analyze.ts";
import { classifyTiles, type TileMap } from "./analysis/tiles.ts";
import type { RetentionPlan } from "./analysis/retention.ts";
import {
  ATTENTION_DEFAULTS,
  ATTENTION_KINDS,
  type AttentionKernel,
  type AttentionKernelKind,
  type AttentionKernelParams,
  attentionParams,
  buildAttentionKernel,
  type KernelVariant,
  type Staging,
  type StorageType,
} from "./codegen/attention_kernels.ts";
import { checkHeadDim, uniformFields, type UniformType } from "./codegen/kernel_source.ts";
import { packSpecBindings, tableNames } from "./codegen/wgsl_expr.ts";
import { type Layout, LAYOUTS } from "./layout.ts";

/** Every kernel section of a .wgsl file starts with a line beginning with this. */
export const KERNEL_MARKER = "// ==== kernel ";

/** Manifest format version (bump on incompatible changes). */
const MANIFEST_VERSION = 1;

/** What to compile a spec for (the flags of `deno task compile`). */
export interface CompileOptions {
  /** Head dimension baked into the kernels. */
  headDim: number;
  /** One layout or both (a K = 1 spec has one: both orders coincide). */
  layout: Layout | "both";
  /** Fused, dense or both kernel sets. */
  variant: KernelVariant | "both";
  dtype: StorageType;
  staging: Staging;
  /** Tile edge (query rows = key rows); default from `attentionDefaults`. */
  tile?: number;
  /** Sequence length of the tile classes and the prefill set. */
  L: number;
}

/** Defaults of `CompileOptions` (the kernel choices are the runtime's, `ATTENTION_DEFAULTS`). */
export const COMPILE_DEFAULTS = {
  headDim: 64,
  layout: "both",
  variant: ATTENTION_DEFAULTS.variant,
  dtype: ATTENTION_DEFAULTS.dtype,
  staging: ATTENTION_DEFAULTS.staging,
  L: 1024,
} as const satisfies Omit<CompileOptions, "tile">;

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
  /** The uniform buffer `U`: 4-byte fields in order (the kernels' uniform table). */
  uniforms: {
    fields: { name: string; type: UniformType; offset: number }[];
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

function kernelComment(k: AttentionKernel, p: AttentionKernelParams, i: number, n: number) {
  const dkv = k.kind === "backward_dkv";
  const rows = dkv ? "key" : "query";
  return [
    `${KERNEL_MARKER}${i + 1}/${n}: ${k.kind} ${p.variant} ${p.layout} ====`,
    `// label: ${k.label}`,
    `// key: ${k.key}`,
    `// entry point: ${k.entryPoint}, @workgroup_size(${k.workgroupSize}) (each invocation owns ${
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

/** Layouts and variants an option stands for (K = 1 has one layout: both orders coincide). */
function chosen(f: Pick<CompileOptions, "layout" | "variant">, K: number) {
  const layouts: Layout[] = K === 1
    ? ["interleaved"]
    : f.layout === "both"
    ? [...LAYOUTS]
    : [f.layout];
  const variants: KernelVariant[] = f.variant === "both" ? ["fused", "dense"] : [f.variant];
  return { layouts, variants };
}

/** A built kernel and the parameters it was built from. */
interface Built {
  k: AttentionKernel;
  p: AttentionKernelParams;
}

/** Every kernel of the chosen layouts and variants, in the .wgsl file's order. */
function buildKernels(
  spec: AttentionSpec,
  f: CompileOptions,
  layouts: Layout[],
  variants: KernelVariant[],
): Built[] {
  const base = { dtype: f.dtype, staging: f.staging, tileQ: f.tile, tileK: f.tile };
  const built: Built[] = [];
  for (const layout of layouts) {
    for (const variant of variants) {
      const p = attentionParams(spec, f.headDim, { ...base, layout, variant });
      for (const kind of ATTENTION_KINDS) built.push({ k: buildAttentionKernel(kind, p), p });
    }
  }
  return built;
}

/** The .wgsl text (a header, then each kernel after its comment) and each kernel's entry. */
function wgslFile(
  spec: AttentionSpec,
  f: CompileOptions,
  built: Built[],
): { wgsl: string; kernels: ManifestKernel[] } {
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
      entryPoint: k.entryPoint,
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
  return { wgsl: parts.join("").trimEnd() + "\n", kernels };
}

/** The manifest's tile classes of one layout. */
function tileEntry(t: TileMap): Manifest["tiles"][number] {
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
}

/** The manifest's retention section: the plan per copy and the steady state at L. */
function retentionEntry(r: RetentionPlan, L: number, f: CompileOptions): Manifest["retention"] {
  const fullCopies = r.perCopy.filter((c) => c.kind === "all").length;
  let windowTokens = 0;
  r.cachedAfter.forEach((n, i) => windowTokens = Math.max(windowTokens, n - fullCopies * (i + 1)));
  const elem = f.dtype === "f16" ? 2 : 4;
  return {
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
  };
}

/** Builds one spec's .wgsl text and manifest. */
export async function compileSpec(spec: AttentionSpec, f: CompileOptions): Promise<Compiled> {
  checkHeadDim(f.headDim);
  const { layouts, variants } = chosen(f, spec.K);
  const built = buildKernels(spec, f, layouts, variants), p0 = built[0].p;
  const { wgsl, kernels } = wgslFile(spec, f, built);
  const L = f.L, tile = p0.tileQ;
  const a = analyze(spec, { L, tile, layout: layouts[0] });
  const tileMaps: TileMap[] = layouts.map((layout) =>
    p0.tileQ === p0.tileK && layout === a.tiles.layout
      ? a.tiles
      : classifyTiles(spec, { L, tileQ: p0.tileQ, tileK: p0.tileK, layout })
  );
  const uniforms = built[0].k.uniforms;
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
      ...uniformFields(uniforms),
      spec: uniforms.spec.map((name, i) => ({ name, value: values[i] })),
    },
    wgsl: {
      file: `${spec.name}.wgsl`,
      bytes: new TextEncoder().encode(wgsl).length,
      sha256: await sha256(wgsl),
    },
    kernels,
    tiles: tileMaps.map(tileEntry),
    causality: { causal: a.causality.causal, message: a.causality.message },
    retention: retentionEntry(a.retention, L, f),
    prefill: {
      P: a.prefill.P,
      count: a.prefill.count,
      ratio: a.prefill.ratio,
      perCopy: a.prefill.perCopy.map((rs) => rs.map((x) => ({ lo: x.lo, hi: x.hi }))),
    },
  };
  return { wgsl, manifest };
}

/** The kernel sections of a .wgsl text built by `compileSpec`, in order. */
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
