/**
 * The causality proof: no query may attend a key at a later position, nor a later copy of its own
 * position, unless the spec declares it bidirectional. Proved over two regions (key later than the
 * query; same position, later copy) with difference-bounded abstract evaluation, so the proof costs
 * a few verdicts per copy pair for the usual masks; a violation comes with a witnessing pair.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import { type Bindings, specBindings } from "../../dsl/eval.ts";
import { explore, FALSE, maskOracle, region, tighten, type Witness } from "./abstract.ts";

/** Result of the proof. */
export interface Causality {
  /** True when no query sees the future (as the spec's `bidirectional` permits). */
  causal: boolean;
  /** A violating pair when not causal. */
  witness?: { query: [number, number]; key: [number, number] };
  /** One line: the verdict, and for a violation the pair and the two ways to fix it. */
  message: string;
}

/** Proves (or refutes) causality for sequences of up to L positions. */
export function checkCausality(
  spec: AttentionSpec,
  o: { L: number; bindings?: Bindings },
): Causality {
  const { K } = spec, L = o.L;
  if (spec.bidirectional === true) {
    return {
      causal: true,
      message: `${spec.name}: declared bidirectional; causality not required`,
    };
  }
  const oracle = maskOracle(spec.mask, o.bindings ?? specBindings(spec));
  const search = (
    qc: [number, number],
    kc: [number, number],
    d: [number, number],
  ): Witness | undefined => {
    const r = region(qc, [0, L - 1], kc, [0, L - 1], d);
    if (!tighten(r) || oracle.verdict(r) === FALSE) return undefined;
    return explore(oracle, r, { allowed: true, forbidden: false }).allowed;
  };
  // Copy pairs are searched one by one (exact copy arithmetic) unless K is large.
  const copies: [number, number][] = K <= 16
    ? Array.from({ length: K }, (_, c) => [c, c])
    : [[0, K - 1]];
  let w: Witness | undefined;
  for (const qc of copies) for (const kc of copies) w ??= search(qc, kc, [1, Infinity]);
  let what = "a later position";
  if (!w && spec.bidirectional !== "copies") {
    for (let qc = 0; qc < K - 1 && !w; qc++) w = search([qc, qc], [qc + 1, K - 1], [0, 0]);
    what = "a later copy of its own position";
  }
  if (!w) {
    return { causal: true, message: `${spec.name}: causal (proved for L <= ${L})` };
  }
  const [qc, qp, kc, kp] = w;
  return {
    causal: false,
    witness: { query: [qc, qp], key: [kc, kp] },
    message: `spec "${spec.name}" is not causal: query (copy ${qc}, pos ${qp}) attends key ` +
      `(copy ${kc}, pos ${kp}) at ${what}; fix the mask, or declare bidirectional: ` +
      `${what === "a later position" ? "true" : '"copies"'} if that is intended`,
  };
}

/**
 * Refuses a spec under which a query can see a later position (one declared `bidirectional:
 * true`; the copies of one position seeing each other is allowed): one line with a witnessing
 * pair and why `what` needs a causal mask.
 */
export function requireCausal(spec: AttentionSpec, L: number, what: string): void {
  if (spec.bidirectional !== true) return;
  const c = checkCausality({ ...spec, bidirectional: false }, { L });
  if (c.causal || !c.witness) return;
  const { query: [qc, qp], key: [kc, kp] } = c.witness;
  throw new RangeError(
    `spec "${spec.name}" is not causal: query (copy ${qc}, pos ${qp}) attends key ` +
      `(copy ${kc}, pos ${kp}) at a later position, so ${what}`,
  );
}
