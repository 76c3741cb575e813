// PHD with per-copy windows: hidden copy j also sees hidden copy j (same index only) of the last
// W-1 positions, so each copy is its own short-window stream (one reading of the paper's SWA).
import { and, defineAttention, or, phdBase } from "../../dsl/mod.ts";

export default defineAttention({
  name: "phd_percopy_window",
  K: 3,
  params: { W: 4 },
  description: "PHD plus, per hidden copy, a window of W positions over keys of the same copy",
  mask: (ctx) => {
    const { q, k, p } = ctx;
    return or(
      phdBase(ctx),
      and(q.hidden, k.copy.eq(q.copy), q.pos.sub(p.W).lt(k.pos), k.pos.lt(q.pos)),
    );
  },
});
