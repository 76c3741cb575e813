/**
 * `deno task mask <spec.ts | preset> --L N`: a spec's mask and what the compiler derives from it.
 * Prints a summary (source, causality, KV retention, prefill set, an ASCII tile-class picture), or
 * with `--json` the dense mask in canonical order (docs/DESIGN.md 3, a tested contract), and writes
 * two-panel SVG/PNG pictures. Refuses non-causal specs and, with `--max-cache`, unbounded caches.
 */
import { type Command, Option } from "commander";
import { type Analysis, analyze } from "../compiler/analysis/analyze.ts";
import { type Layout, LAYOUTS } from "../compiler/layout.ts";
import { asciiTiles, maskPng, maskSvg } from "../viz/mask_picture.ts";
import { type DenseMask, denseMask } from "../dsl/eval.ts";
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

/** Most tokens (K*L) for outputs that build the dense K*L x K*L mask (`--json`, dense panel). */
const DENSE_LIMIT = 4096;

/** The `--json` output: rows are queries, columns keys, both in canonical order `t = p*K + c`. */
export interface MaskJson {
  /** Copies per position. */
  K: number;
  /** Positions. */
  L: number;
  /** `[copy, pos]` of each canonical index. */
  tokens: [number, number][];
  /** `allowed[query][key]`: 1 when the query may attend the key. */
  allowed: number[][];
}

/** The `--json` object of a spec over L positions (with the spec's parameter values). */
export function maskJson(spec: AttentionSpec, L: number): MaskJson {
  return denseJson(denseMask(spec, L));
}

/** The `--json` object of a dense mask. */
function denseJson(d: DenseMask): MaskJson {
  const N = d.tokens.length;
  const allowed = Array.from(
    { length: N },
    (_, q) => Array.from(d.allowed.subarray(q * N, q * N + N)),
  );
  return { K: d.K, L: d.L, tokens: d.tokens, allowed };
}

/** The default tile edge: the smallest power of two giving at most 32 tiles a side, at most 64. */
function defaultTile(N: number): number {
  let t = 1;
  while (t < 64 && Math.ceil(N / t) > 32) t *= 2;
  return t;
}

/** Parsed flags of `deno task mask`. */
interface MaskFlags extends SpecFlags {
  /** Sequence length in positions. */
  L: number;
  /** Tile edge of the tile classes; default `defaultTile(K*L)`. */
  tile?: number;
  /** Storage layout the tiles are cut from (the dense outputs are always canonical). */
  layout: Layout;
  /** Print the dense mask JSON (K*L <= DENSE_LIMIT) instead of the summary. */
  json?: boolean;
  /** Write an SVG picture here. */
  svg?: string;
  /** Write a PNG picture here. */
  png?: string;
  /** Pictures without the dense panel (any L). */
  tilesOnly?: boolean;
  /** Refuse specs whose KV cache is unbounded or may exceed this many tokens. */
  maxCache?: number;
}

/** The summary printed without `--json`. */
export function maskSummary(a: Analysis): string {
  const s = a.spec, r = a.retention, pf = a.prefill;
  const params = Object.entries(s.params).map(([k, v]) => ` ${k}=${v}`).join("");
  const tables = Object.entries(s.tables).map(([k, v]) => ` ${k}=[${v.join(",")}]`).join("");
  const copies = r.perCopy.map((c) =>
    `copy ${c.copy} ${c.kind === "window" ? `window (${c.positions})` : c.kind}`
  ).join(", ");
  const ranges = pf.perCopy.map((rs, c) =>
    `copy ${c} ${rs.map((x) => (x.lo === x.hi ? `${x.lo}` : `${x.lo}..${x.hi}`)).join(",") || "-"}`
  ).join("; ");
  return [
    `${s.name}${s.description ? `: ${s.description}` : ""}`,
    `  mask: ${s.source}`,
    `  K=${s.K} L=${a.L} (${s.K * a.L} tokens)${params}${tables}` +
    `${s.bidirectional ? `, bidirectional: ${s.bidirectional}` : ""}`,
    `causality: ${a.causality.message}`,
    `retention: ${r.formula} cached tokens per layer and KV head (at most ${r.maxCachedTokens} ` +
    `for L=${a.L}, ${r.bounded ? "bounded" : "unbounded"}); ${copies}`,
    `prefill of P=${pf.P}: ${pf.count} tokens (x${
      (pf.count / pf.P).toFixed(2)
    } of vanilla); ${ranges}`,
    asciiTiles(a.tiles),
  ].join("\n");
}

/** The refusal for `--max-cache N`, or undefined when the retention fits. */
function cacheRefusal(a: Analysis, max: number): string | undefined {
  const r = a.retention;
  if (!r.bounded) {
    return `spec "${a.spec.name}" has an unbounded KV cache (${r.formula} tokens), ` +
      `--max-cache ${max} asks for a bound: window the keys that stay cached, or drop --max-cache`;
  }
  if (r.maxCachedTokens > max) {
    return `spec "${a.spec.name}" caches up to ${r.maxCachedTokens} tokens (${r.formula}) for ` +
      `L=${a.L}, above --max-cache ${max}: use a smaller window or --L, or raise --max-cache`;
  }
  return undefined;
}

/** Runs the command on parsed flags; returns what goes to stdout. */
async function maskCommand(ref: string, f: MaskFlags): Promise<string> {
  const spec = await resolveSpec(ref, f), N = spec.K * f.L;
  const drawsDense = Boolean(f.svg || f.png) && !f.tilesOnly;
  if ((f.json || drawsDense) && N > DENSE_LIMIT) {
    const flag = f.json ? "--json" : f.svg ? "--svg" : "--png";
    const fix = f.json ? "drop --json for the tile-class summary" : "add --tiles-only";
    throw new UsageError(
      `${flag} needs the dense mask of K*L = ${N} tokens, above the limit of ${DENSE_LIMIT}: ` +
        `use a smaller --L, or ${fix}`,
    );
  }
  const a = analyze(spec, { L: f.L, tile: f.tile ?? defaultTile(N), layout: f.layout });
  if (f.maxCache !== undefined) {
    const refusal = cacheRefusal(a, f.maxCache);
    if (refusal) throw new UsageError(refusal);
  }
  const mask = f.json || drawsDense ? denseMask(spec, f.L) : undefined;
  const picture = { name: spec.name, mask: drawsDense ? mask : undefined, tiles: a.tiles };
  const out: string[] = [];
  if (f.svg) {
    await writeFileAtomic(f.svg, maskSvg(picture));
    out.push(`wrote ${f.svg}`);
  }
  if (f.png) {
    await writeFileAtomic(f.png, maskPng(picture));
    out.push(`wrote ${f.png}`);
  }
  if (mask && f.json) return JSON.stringify(denseJson(mask));
  return [maskSummary(a), ...out].join("\n");
}

/** The command line of `deno task mask`. */
function maskProgram(): Command {
  return addSpecOptions(
    newCommand("deno task mask", "print a mask, its tile classes and its analysis; draw or dump it")
      .argument("<spec>", `a preset name or the path of a .ts file exporting an AttentionSpec`)
      .requiredOption("--L <n>", "sequence length in positions", positiveInt("--L")),
  )
    .option(
      "--tile <t>",
      "tile edge of the tile classes (default: the smallest power of two giving at most 32 tiles a side, capped at 64)",
      positiveInt("--tile"),
    )
    .addOption(
      new Option("--layout <layout>", "storage layout the tiles are cut from")
        .choices(LAYOUTS).default("grouped"),
    )
    .option("--json", `print {"K","L","tokens","allowed"} (dense, K*L <= ${DENSE_LIMIT})`)
    .option("--svg <file>", "write an SVG picture (dense mask and tile classes)")
    .option("--png <file>", "write a PNG picture (dense mask and tile classes)")
    .option("--tiles-only", "pictures show the tile classes only (any L)")
    .option(
      "--max-cache <n>",
      "refuse a spec whose KV cache may exceed n tokens",
      positiveInt("--max-cache"),
    );
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(maskProgram());
    console.log(await maskCommand(cmd.args[0], cmd.opts<MaskFlags>()));
  });
}
