// PHD-CSWA (docs/DESIGN.md 1.2, W = 8, C = 16) with a score modifier: Gemma-style logit soft-capping
// at 30, a choice the paper does not make, to show that a score function rides along with a mask.
import { and, defineAttention, or, phdBase, softcap, swaPairs } from "../../dsl/mod.ts";

export default defineAttention({
  name: "softcap_phd",
  K: 3,
  params: { W: 8, C: 16 },
  description: "PHD-CSWA whose logits are soft-capped: 30 * tanh(score / 30)",
  mask: (ctx) =>
    or(phdBase(ctx), and(swaPairs(ctx), ctx.k.chunk(ctx.p.C).eq(ctx.q.chunk(ctx.p.C)))),
  score: ({ score }) => softcap(score, 30),
});
