// PHD inside documents: the PHD mask (paper Eq. 2) plus "same document", read from the runtime
// table `docs` (sorted document starts). Training fills the table per batch from the separator
// token, so attention never crosses a packed document boundary; decoding one prompt keeps [0].
import { and, defineAttention, phdBase } from "../../dsl/mod.ts";

export default defineAttention({
  name: "phd_documents",
  K: 2,
  tables: { docs: [0] },
  description: "PHD whose attention stays inside a document (table docs of document starts)",
  mask: (ctx) => and(phdBase(ctx), ctx.k.segment("docs").eq(ctx.q.segment("docs"))),
});
