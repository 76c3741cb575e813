/**
 * What a causal language model's loss may not see: the prediction at position p (its last copy)
 * is scored against token p+1, so it must not read, directly or through the layers, any key at a
 * later position. Position p's prediction can see its target when some query at a position
 * <= p attends a key at a position > p (every later layer can carry that key to p). For a spec
 * proved causal (`checkCausality`) no position leaks; a spec declared `bidirectional: true` (a
 * prefix-LM, an encoder) may, and training it then needs an explicit flag and scores only the
 * positions that cannot see their targets (`lossPositions`). Also counts the query rows that see
 * no key at all. Exact: read off the dense mask of the tile classes (only partial tiles evaluate
 * the mask), for at most `MAX_LEAK_TOKENS` tokens.
 */
import { type Bindings, specBindings } from "../../dsl/eval.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import { checkCausality } from "./causality.ts";
import { classifyTiles, tileDenseMask } from "./tiles.ts";

/** The most tokens (K·L) whose leaks are computed (the dense mask is (K·L)² bytes). */
export const MAX_LEAK_TOKENS = 8192;

/** What a spec lets the loss see over L positions. */
export interface Leaks {
  /** Positions whose prediction can see its target (empty for a causal spec). */
  leaky: number[];
  /** A pair showing the first leak: the query `[copy, pos]` and the later key it attends. */
  witness?: { query: [number, number]; key: [number, number] };
  /** Query rows (tokens) that attend no key at all. */
  emptyRows: number;
}

/** The leaks and empty rows of a spec over L positions (see the file's header). */
export function predictionLeaks(spec: AttentionSpec, L: number, b?: Bindings): Leaks {
  const K = spec.K, N = K * L, bindings = b ?? specBindings(spec);
  if (N > MAX_LEAK_TOKENS) {
    throw new RangeError(
      `checking what the loss of spec "${spec.name}" sees takes K·L <= ${MAX_LEAK_TOKENS} ` +
        `tokens, got ${N}: train it with a shorter seq_len`,
    );
  }
  const tiles = classifyTiles(spec, { L, tileQ: 32, tileK: 32, layout: "interleaved", bindings });
  const { allowed } = tileDenseMask(spec, tiles, bindings);
  // reach[p]: the latest key position any query at position p attends (-1: none).
  const reach = new Int32Array(L).fill(-1);
  let emptyRows = 0, witness: Leaks["witness"];
  for (let q = 0; q < N; q++) {
    const qp = Math.floor(q / K);
    let last = -1;
    for (let k = N - 1; k >= 0; k--) {
      if (allowed[q * N + k]) {
        last = k;
        break;
      }
    }
    if (last < 0) {
      emptyRows++;
      continue;
    }
    const kp = Math.floor(last / K);
    if (kp > qp && !witness) witness = { query: [q % K, qp], key: [last % K, kp] };
    reach[qp] = Math.max(reach[qp], kp);
  }
  const leaky: number[] = [];
  let far = -1;
  for (let p = 0; p < L; p++) {
    far = Math.max(far, reach[p]);
    if (far > p) leaky.push(p);
  }
  return { leaky, witness, emptyRows };
}

/** The positions whose predictions count in the loss: all but the leaky ones. */
export function lossPositions(L: number, leaks: Leaks): number[] {
  const out = new Set(leaks.leaky);
  return Array.from({ length: L }, (_, p) => p).filter((p) => !out.has(p));
}

/**
 * What training, evaluating or decoding with a spec over L positions may score, or one line:
 * a spec that is not causal without declaring it is refused as `mask` refuses it; one declared
 * bidirectional whose predictions can see their targets is refused unless `allowLeak`, and then
 * only the positions that cannot are scored. `warn` hears the count of rows that see nothing.
 */
export function scoredPositions(
  spec: AttentionSpec,
  L: number,
  o: { allowLeak?: boolean; warn?: (line: string) => void; what: string },
): number[] | undefined {
  if (spec.bidirectional !== true) {
    const c = checkCausality(spec, { L });
    if (!c.causal) throw new RangeError(c.message);
    // Proved causal: nothing leaks; only the rows that see nothing are left to count.
    if (spec.K * L > MAX_LEAK_TOKENS) return undefined;
  }
  const leaks = predictionLeaks(spec, L);
  if (leaks.emptyRows > 0) {
    o.warn?.(
      `warning: under spec "${spec.name}", ${leaks.emptyRows} of ${spec.K * L} query rows ` +
        `attend no key (their attention output is 0)`,
    );
  }
  if (leaks.leaky.length === 0) return undefined;
  const w = leaks.witness!;
  const kept = lossPositions(L, leaks);
  if (!o.allowLeak) {
    throw new RangeError(
      `spec "${spec.name}" lets ${leaks.leaky.length} of ${L} predictions see their target: ` +
        `query (copy ${w.query[0]}, pos ${w.query[1]}) attends key (copy ${w.key[0]}, pos ` +
        `${w.key[1]}), so a causal LM would ${o.what} on the answer; pass --allow-leak to ` +
        `score only the ${kept.length} positions that cannot (a prefix-LM, an encoder)`,
    );
  }
  if (kept.length === 0) {
    throw new RangeError(
      `spec "${spec.name}" lets every prediction over ${L} positions see its target: ` +
        `nothing is left to score`,
    );
  }
  return kept;
}
