// PHD-SWA with a window that excludes the query: W counts the hidden tokens strictly before it,
// h(j,n) - W <= h(i,m) < h(j,n) (the paper leaves inclusivity open; docs/DESIGN.md 1.2 includes it).
import { and, defineAttention, or, phdBase } from "../../dsl/mod.ts";

export default defineAttention({
  name: "phd_swa_noself",
  K: 3,
  params: { W: 4 },
  description: "PHD plus the W hidden tokens before the query (the query itself not counted)",
  mask: (ctx) => {
    const { q, k, p } = ctx;
    const h = q.hiddenIndex, g = k.hiddenIndex;
    return or(phdBase(ctx), and(q.hidden, k.hidden, h.sub(p.W).le(g), g.lt(h)));
  },
});
