/**
 * Host planning of one prompt's prefill (docs/DESIGN.md 1.4), before any GPU work: the rows to
 * run are the compiler's prefill set (compiler/analysis/prefill.ts: every original, plus the
 * hidden tokens of the last chunk for PHD-CSWA, of the whole prompt for PHD-SWA, of the last
 * position for PHD), ordered `[originals by pos | hidden by (pos, copy)]`; their coordinates and
 * position ids; the row whose logits give the first new token; the key ranges of prefill attention
 * from the mask oracle (compiler/analysis/key_ranges.ts); and, once the KV cache has admitted the prompt, the cache slot of each row
 * whose key stays; and the refusal of a prompt that a bidirectional spec would let see past its
 * end. Pure host work: runtime/infer/decoder.ts records the GPU work.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Bindings } from "../../dsl/eval.ts";
import { explore, maskOracle, region } from "../../compiler/analysis/abstract.ts";
import { prefillSet } from "../../compiler/analysis/prefill.ts";
import type { RetentionPlan } from "../../compiler/analysis/retention.ts";
import { type KeyRanges, prefillRanges } from "../../compiler/analysis/key_ranges.ts";

/** The rows of one prefill. */
export interface PrefillRows {
  /** Rows (tokens of the expanded sequence) to compute. */
  count: number;
  /** `(copy, pos)` i32 per row. */
  coords: Int32Array;
  /** Position of each row (its embedding is the prompt's token there). */
  pos: Uint32Array;
  /** `(copy, pos, row)` i32 per row: the rows' keys are written to scratch slots = their rows. */
  info: Int32Array;
  /** The row of the last copy of the last position (its logits sample the first new token). */
  last: number;
  /** Key ranges of prefill attention per query tile of `tile` rows. */
  ranges: KeyRanges;
  /** Row of key (copy, pos), if prefilled. */
  rowOf: (copy: number, pos: number) => number | undefined;
}

/** Plans the prefill of a prompt of `P` tokens; query tiles and key blocks of `tile` rows. */
export function planPrefill(
  spec: AttentionSpec,
  o: { P: number; retention: RetentionPlan; bindings: Bindings; tile: number },
): PrefillRows {
  const K = spec.K, P = o.P;
  const pre = prefillSet(spec, {
    P,
    retention: o.retention,
    bindings: o.bindings,
    causal: spec.bidirectional !== true,
  });
  // Rows: originals by position, then hidden tokens by (position, copy).
  const orig: number[] = [], hid: [number, number][] = [];
  for (const r of pre.perCopy[0]) for (let m = r.lo; m <= r.hi; m++) orig.push(m);
  for (let c = 1; c < K; c++) {
    for (const r of pre.perCopy[c]) for (let m = r.lo; m <= r.hi; m++) hid.push([c, m]);
  }
  hid.sort((x, y) => x[1] - y[1] || x[0] - y[0]);
  const count = orig.length + hid.length;
  const coords = new Int32Array(2 * count), rows = new Map<number, number>();
  orig.forEach((m, r) => {
    coords[2 * r + 1] = m;
    rows.set(m * K, r);
  });
  hid.forEach(([c, m], i) => {
    const r = orig.length + i;
    coords[2 * r] = c;
    coords[2 * r + 1] = m;
    rows.set(m * K + c, r);
  });
  const rowOf = (copy: number, pos: number) => rows.get(pos * K + copy);
  const last = rowOf(K - 1, P - 1);
  if (last === undefined) throw new Error("internal: the prefill set lacks the last token");
  const info = new Int32Array(3 * count), pos = new Uint32Array(count);
  for (let r = 0; r < count; r++) {
    const c = coords[2 * r], m = coords[2 * r + 1];
    info.set([c, m, r], 3 * r);
    pos[r] = m;
  }
  const ranges = prefillRanges(maskOracle(spec.mask, o.bindings), K, coords, {
    tileQ: o.tile,
    tileK: o.tile,
  });
  return { count, coords, pos, info, last, ranges, rowOf };
}

/**
 * `(copy, pos, slot)` i32 per row for copying the prefilled keys into the cache: the slot the
 * cache gave the row's key, or -1 for a key no later query reads. `live` lists the cache's live
 * slots of the sequence after it admitted every prompt position; each must be a prefilled row.
 */
export function cacheSlots(
  rows: PrefillRows,
  live: readonly { slot: number; copy: number; pos: number }[],
): Int32Array {
  const out = new Int32Array(3 * rows.count);
  for (let r = 0; r < rows.count; r++) {
    out.set([rows.coords[2 * r], rows.coords[2 * r + 1], -1], 3 * r);
  }
  for (const { slot, copy, pos } of live) {
    const r = rows.rowOf(copy, pos);
    if (r === undefined) {
      throw new Error(
        `internal: key (copy ${copy}, pos ${pos}) stays cached but is not in the prefill set`,
      );
    }
    out[3 * r + 2] = slot;
  }
  return out;
}

/**
 * Refuses a prompt of `P` tokens when a bidirectional spec lets some query see a key at a later
 * position past the prompt (within `horizon` positions): cached decoding cannot revisit earlier
 * tokens. The error names the witness pair and the prompt length that would do.
 */
export function checkFutureFree(
  spec: AttentionSpec,
  bindings: Bindings,
  o: { P: number; horizon: number },
): void {
  const { P, horizon: H } = o, K = spec.K;
  if (spec.bidirectional !== true || P >= H) return;
  const found = explore(
    maskOracle(spec.mask, bindings),
    region([0, K - 1], [0, H - 1], [0, K - 1], [P, H - 1], [1, Infinity]),
    { allowed: true, forbidden: false },
  );
  if (found.allowed) {
    const [qc, qp, kc, kp] = found.allowed;
    throw new RangeError(
      `spec "${spec.name}" lets query (copy ${qc}, pos ${qp}) see key (copy ${kc}, pos ${kp}) ` +
        `at a later position past the prompt (${P} tokens): cached decoding cannot change ` +
        `earlier tokens; give a prompt of at least ${kp + 1} tokens`,
    );
  }
}
