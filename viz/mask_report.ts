/**
 * A mask in words and numbers: the `deno task mask` summary of a spec's analysis (source,
 * causality, KV retention, prefill set, an ASCII tile-class picture), also the docstring of an
 * exported FlexAttention module, and the dense mask as JSON in canonical order (docs/DESIGN.md 3).
 */
import type { Analysis } from "../compiler/analysis/analyze.ts";
import { type DenseMask, denseMask } from "../dsl/eval.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import { asciiTiles } from "./mask_picture.ts";

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
export function denseJson(d: DenseMask): MaskJson {
  const N = d.tokens.length;
  const allowed = Array.from(
    { length: N },
    (_, q) => Array.from(d.allowed.subarray(q * N, q * N + N)),
  );
  return { K: d.K, L: d.L, tokens: d.tokens, allowed };
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
