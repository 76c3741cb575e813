// PHD-SWA with the window over positions, not hidden tokens: a hidden query (j, n) also sees every
// hidden key of positions n-W+1 .. n-1 (the paper leaves W's unit open; docs/DESIGN.md 1.2 counts tokens).
import { and, defineAttention, or, phdBase } from "../../dsl/mod.ts";

export default defineAttention({
  name: "phd_swa_pos",
  K: 3,
  params: { W: 4 },
  description: "PHD plus hidden-to-hidden window over the last W positions (query's included)",
  mask: (ctx) => {
    const { q, k, p } = ctx;
    return or(phdBase(ctx), and(q.hidden, k.hidden, q.pos.sub(p.W).lt(k.pos), k.pos.lt(q.pos)));
  },
});
