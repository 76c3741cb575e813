/**
 * Fused attention checked against the float64 reference (reference/attention.ts), what the
 * playground's "run" shows: per output the largest error against float64, the naive float32
 * error of the same math, and whether the kernel is within FlashAttention's 2x rule. Beside the
 * tuner's own checks: runtime/tune/ is the one product folder that imports the oracles
 * (docs/DESIGN.md 2), and the page reaches them through here. Browser-safe.
 */
import {
  attentionErrors,
  type AttentionInputs,
  type AttentionProblem,
  type Layout,
  type OutputError,
  referenceAttention,
} from "../../reference/attention.ts";

export type { AttentionInputs, AttentionProblem, Layout as ReferenceLayout, OutputError };

/** What `checkAttention` found: each output's error, and the reference's CPU time. */
export interface AttentionCheck {
  /** Per output checked (`o`, `lse`, `dq`, `dk`, `dv`: those given), its error figures. */
  errors: Record<string, OutputError>;
  /** Whether every output is within 2x the naive float32 error (plus the floor). */
  ok: boolean;
  /** Milliseconds the float64 reference took on the CPU. */
  referenceMs: number;
}

/** Compares a kernel's outputs `got` on `inputs` with the float64 and float32 references. */
export function checkAttention(
  p: AttentionProblem,
  inputs: AttentionInputs,
  got: Partial<Record<"o" | "lse" | "dq" | "dk" | "dv", ArrayLike<number>>>,
): AttentionCheck {
  const t0 = performance.now();
  const ref = referenceAttention(p, inputs, "f64");
  const referenceMs = performance.now() - t0;
  const errors = attentionErrors(got, ref, referenceAttention(p, inputs, "f32"));
  return { errors, ok: Object.values(errors).every((e) => e.ok), referenceMs };
}
