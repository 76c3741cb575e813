/**
 * The WGSL bodies of the flash-attention kernels: forward (online softmax, saves the log-sum-exp),
 * backward dQ (also writes delta = rowsum(dO * O)) and backward dK/dV. Each invocation owns a
 * register block of `R` query rows (forward, dQ) or key rows (dK/dV), rows `lid + i*WG` of the
 * tile (i < R, WG invocations per workgroup), with all their head-dim columns in private arrays,
 * and streams the other side's rows tile by tile, either straight from storage (`direct`, the
 * llvmpipe choice: no barriers) or staged through workgroup memory (`workgroup`, for real GPUs).
 * Every streamed row is loaded once for the R rows of the block: on llvmpipe, where a storage load
 * is a per-lane gather and the arithmetic is cheap, loads per FMA decide the speed. A streamed row
 * that the mask rules out for the whole block costs only the mask evaluations.
 *
 * The tile loop is a compressed list of non-empty tiles (fused: empty tiles never visited, full
 * tiles skip the mask) or every tile with the mask evaluated everywhere (dense: fallback and
 * baseline).
 *
 * The generator writes the head dim's D4 vec4 columns and the R rows of a block out as
 * straight-line code (`each`): the row arrays are indexed by constants only, so they stay in
 * registers, and the only loops left are the walks over tiles and over the rows of a tile, whose
 * iterations per invocation `attentionLoopTrips` (attention_kernels.ts) counts. That count is a
 * correctness bound, not only a cost: Mesa's llvmpipe and lavapipe (gallivm) give one shader
 * invocation 65535 loop iterations, all its loops together, and then leave every loop after its
 * current iteration without a word (the limiter against endless loops). A head-dim loop left to
 * the driver's compiler costs 1 + D4 of them per key where it stays rolled, as lavapipe left one:
 * the walk then stopped after about 3600 keys, so at 4096 tokens the last rows' softmax lost its
 * last keys (the dense kernel, and the fused one for causal attention, off by 0.01 where float64
 * and GL agreed to 1e-7). Loops over the rows of a tile are bounded by the uniforms `U.tq`/`U.tk`
 * (equal to the baked TQ/TK): unrolling those too made llvmpipe take from seconds to minutes to
 * compile one kernel. Shared declarations: attention_kernels.ts.
 */

/** What the bodies need to know of the kernel being built. */
export interface BodyOptions {
  /** `fused` reads the tile list `tiles`; `dense` visits all `U.rows` x `U.cols` tiles. */
  fused: boolean;
  /** Stage the streamed rows in workgroup memory (true) or read them from storage (false). */
  staged: boolean;
  /** Rows per invocation (the register block); the workgroup has `WG` = tile / R invocations. */
  R: number;
  /** vec4 columns of a head row (head dim / 4). */
  D4: number;
}

/** `f(i)` for i < n (the R rows of a block, the D4 columns of a head row), joined by `sep`. */
function each(n: number, f: (i: number) => string, sep = "\n"): string {
  return Array.from({ length: n }, (_, i) => f(i)).join(sep);
}

/** Indents every line after the first by `n` spaces. */
function indent(s: string, n: number): string {
  return s.split("\n").join("\n" + " ".repeat(n));
}

/** Opens the loop over the other side's tiles; defines `t` (tile index) and `full`. */
function tileLoop(o: BodyOptions, self: string, count: string): string {
  return o.fused
    ? `for (var e = tiles[${self}]; e < tiles[${self} + 1]; e++) {
    let t = i32(tiles[e] >> 2u);
    let full = (tiles[e] & 3u) == 2u;`
    : `for (var t = 0; t < ${count}; t++) {
    let full = false;`;
}

/**
 * The streamed key rows of the forward and dQ passes: declarations, the per-tile staging, and
 * per key `j` of the tile its row start `kj`, copy `kc`, position `kp` and accessors of K and V.
 */
function keyStream(o: BodyOptions) {
  if (!o.staged) {
    return {
      decls: "",
      stage: "",
      row: `let kn = min(k0 + j, U.N - 1);
      let kj = kv_off + kn * D4;
      let tk = token_at(kn);`,
      kc: "tk.x",
      kp: "tk.y",
      k: (x: string) => `vec4<f32>(k[kj + ${x}])`,
      v: (x: string) => `vec4<f32>(v[kj + ${x}])`,
    };
  }
  return {
    decls: `var<workgroup> k_tile: array<vec4<f32>, TK * D4>;
var<workgroup> v_tile: array<vec4<f32>, TK * D4>;
var<workgroup> kc_tile: array<i32, TK>;
var<workgroup> kp_tile: array<i32, TK>;
`,
    stage: `workgroupBarrier();
    for (var i = i32(lid); i < U.tk * D4; i += WG) {
      let src = kv_off + min(k0 + i / D4, U.N - 1) * D4 + i % D4;
      k_tile[i] = vec4<f32>(k[src]);
      v_tile[i] = vec4<f32>(v[src]);
    }
    for (var j = i32(lid); j < U.tk; j += WG) {
      let tk = token_at(min(k0 + j, U.N - 1));
      kc_tile[j] = tk.x;
      kp_tile[j] = tk.y;
    }
    workgroupBarrier();`,
    row: "let kj = j * D4;",
    kc: "kc_tile[j]",
    kp: "kp_tile[j]",
    k: (x: string) => `k_tile[kj + ${x}]`,
    v: (x: string) => `v_tile[kj + ${x}]`,
  };
}

/** The query rows of a block (forward, dQ): row index, clamped row, token, storage offset. */
function queryRows(R: number): string {
  return each(R, (i) =>
    `let row${i} = qt * U.tq + i32(lid) + ${i} * WG;
  let tq${i} = token_at(min(row${i}, U.N - 1));
  let qo${i} = (head + min(row${i}, U.N - 1)) * D4;`, "\n  ");
}

/**
 * The per-row mask verdicts `a<i>` against key (kc, kp), then the branch into the pair's work:
 * fused kernels skip a streamed row that no row of the block may see; the dense kernel, like a
 * dense score matrix with the mask applied afterwards, computes every in-range pair's scores and
 * only zeroes the masked probabilities.
 */
function verdicts(
  o: BodyOptions,
  inRange: string,
  kc: string,
  kp: string,
  side: "q" | "k",
): string {
  const call = (i: number) =>
    side === "q"
      ? `mask_allowed(tq${i}.x, tq${i}.y, ${kc}, ${kp})`
      : `mask_allowed(${kc}, ${kp}, tk${i}.x, tk${i}.y)`;
  return `${each(o.R, (i) => `let a${i} = ${inRange} && (full || ${call(i)});`, "\n      ")}
      if (${o.fused ? each(o.R, (i) => `a${i}`, " || ") : inRange}) {`;
}

/**
 * The entry point's opening: the grid comment, `fn main` and the workgroup's ids (tile `tile`,
 * head `head`, batch `b`).
 */
function entry(grid: string, tile: string, head: string): string {
  return `// Grid: ${grid}.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let ${tile} = i32(wg.x);
  let ${head} = i32(wg.y);
  let b = i32(wg.z);`;
}

/**
 * The opening shared by the forward and dQ passes: the key stream's declarations, the entry point,
 * the offsets of the query head and its key/value head, and the block's query rows.
 */
function queryPassStart(o: BodyOptions, ks: ReturnType<typeof keyStream>): string {
  return `${ks.decls}
${entry("(query tiles, heads, batch). Workgroup: WG invocations, R query rows each", "qt", "h")}
  let head = (b * U.H + h) * U.N;
  let kv_off = (b * U.HKV + h / (U.H / U.HKV)) * U.N * D4;
  ${queryRows(o.R)}`;
}

/**
 * The walk of the forward and dQ passes over the key tiles and their keys, up to the branch into
 * one streamed key's work (`note`: comment lines before the key loop).
 */
function keyWalk(o: BodyOptions, ks: ReturnType<typeof keyStream>, note = ""): string {
  return `${tileLoop(o, "qt", "U.cols")}
    let k0 = t * U.tk;
    ${ks.stage}
${note}    for (var j = 0; j < U.tk; j++) {
      ${ks.row}
      ${verdicts(o, "k0 + j < U.N", ks.kc, ks.kp, "q")}`;
}

/** The block's stores: per row i, `body(i)` if `inRange(i)` (rows past the end store nothing). */
function stores(R: number, inRange: (i: number) => string, body: (i: number) => string): string {
  return each(R, (i) => indent(`if (${inRange(i)}) {\n${body(i)}\n}`, 2), "\n  ");
}

/** Forward: R query rows per invocation. */
export function forwardBody(o: BodyOptions): string {
  const ks = keyStream(o), R = o.R, D4 = o.D4;
  return `${queryPassStart(o, ks)}
  // Accumulators start at zero (WGSL zero-initializes a var).
  ${
    each(R, (i) =>
      `var q${i}: array<vec4<f32>, D4>;\n  var acc${i}: array<vec4<f32>, D4>;`, "\n  ")
  }
  ${
    each(D4, (x) =>
      each(R, (i) => `q${i}[${x}] = vec4<f32>(q[qo${i} + ${x}]) * U.scale;`, " "), "\n  ")
  }
  ${each(R, (i) => `var m${i} = NEG_BIG;\n  var l${i} = 0.0;`, "\n  ")}
  ${
    keyWalk(
      o,
      ks,
      `    // One pass per key: the running max only moves when a score exceeds it (rarely after the
    // first keys), so the rescale of the accumulator is a rare branch, and no score array (which
    // llvmpipe would index through a branch ladder) is needed.
`,
    )
  }
        ${each(R, (i) => `var s${i} = 0.0;`, "\n        ")}
        ${
    each(D4, (x) =>
      `{ let kx = ${ks.k(`${x}`)}; ${
        each(R, (i) => `s${i} += dot(q${i}[${x}], kx);`, " ")
      } }`, "\n        ")
  }
        ${
    each(R, (i) =>
      indent(
        `var p${i} = 0.0;
if (a${i}) {
  let sc = score_mod(s${i}, tq${i}.x, tq${i}.y, ${ks.kc}, ${ks.kp}, h);
  if (sc > m${i}) {
    let corr = exp(m${i} - sc);
    l${i} *= corr;
    ${each(D4, (x) => `acc${i}[${x}] *= corr;`, "\n    ")}
    m${i} = sc;
  }
  p${i} = exp(sc - m${i});
  l${i} += p${i};
}`,
        8,
      ), "\n        ")
  }
        ${
    each(D4, (x) =>
      `{ let vx = ${ks.v(`${x}`)}; ${
        each(R, (i) => `acc${i}[${x}] += p${i} * vx;`, " ")
      } }`, "\n        ")
  }
      }
    }
  }
  ${
    stores(R, (i) =>
      `row${i} < U.N`, (i) =>
      `  // A row with no allowed key has l == 0: output 0, LSE = NEG_BIG (never read as a weight).
  let inv = select(0.0, 1.0 / l${i}, l${i} > 0.0);
  ${
        each(D4, (x) => `o[qo${i} + ${x}] = vec4<T>(acc${i}[${x}] * inv);`, "\n  ")
      }
  lse[head + row${i}] = select(NEG_BIG, m${i} + log(l${i}), l${i} > 0.0);`)
  }
}
`;
}

/**
 * Backward dQ: recomputes P = exp(score - lse) per key; dS = P * (dP - delta) * dscore;
 * dQ = scale * dS K. Also writes delta = rowsum(dO * O), which the dK/dV pass reads.
 */
export function backwardDqBody(o: BodyOptions): string {
  const ks = keyStream(o), R = o.R, D4 = o.D4;
  return `${queryPassStart(o, ks)}
  // Accumulators start at zero (WGSL zero-initializes a var).
  ${
    each(R, (i) =>
      `var q${i}: array<vec4<f32>, D4>;
  var g${i}: array<vec4<f32>, D4>;
  var dq${i}: array<vec4<f32>, D4>;
  var delta${i} = 0.0;`, "\n  ")
  }
  ${
    each(D4, (x) =>
      each(R, (i) =>
        `q${i}[${x}] = vec4<f32>(q[qo${i} + ${x}]); g${i}[${x}] = vec4<f32>(dout[qo${i} + ${x}]); ` +
        `delta${i} += dot(g${i}[${x}], vec4<f32>(o[qo${i} + ${x}]));`, "\n  "), "\n  ")
  }
  ${each(R, (i) => `let lse${i} = lse[head + min(row${i}, U.N - 1)];`, "\n  ")}
  var kr: array<vec4<f32>, D4>;
  ${keyWalk(o, ks)}
        ${each(R, (i) => `var s${i} = 0.0;\n        var dp${i} = 0.0;`, "\n        ")}
        ${
    each(D4, (x) =>
      `{ let kx = ${ks.k(`${x}`)}; let vx = ${ks.v(`${x}`)}; kr[${x}] = kx; ${
        each(R, (i) =>
          `s${i} += dot(q${i}[${x}], kx); dp${i} += dot(g${i}[${x}], vx);`, " ")
      } }`, "\n        ")
  }
        ${
    each(R, (i) =>
      indent(
        `var ds${i} = 0.0;
if (a${i}) {
  let sm = score_mod_grad(s${i} * U.scale, tq${i}.x, tq${i}.y, ${ks.kc}, ${ks.kp}, h);
  ds${i} = exp(sm.x - lse${i}) * (dp${i} - delta${i}) * sm.y;
}`,
        8,
      ), "\n        ")
  }
        ${each(D4, (x) => each(R, (i) => `dq${i}[${x}] += ds${i} * kr[${x}];`, " "), "\n        ")}
      }
    }
  }
  ${
    stores(R, (i) =>
      `row${i} < U.N`, (i) =>
      `  ${each(D4, (x) => `dq[qo${i} + ${x}] = vec4<T>(dq${i}[${x}] * U.scale);`, "\n  ")}
  delta[head + row${i}] = delta${i};`)
  }
}
`;
}

/** The streamed query rows of the dK/dV pass (see `keyStream`), per query `i` of a tile. */
function queryStream(o: BodyOptions) {
  if (!o.staged) {
    return {
      decls: "",
      stage: "",
      row: `let qn = min(q0 + i, U.N - 1);
        let qi = (head_row + qn) * D4;
        let tq = token_at(qn);`,
      stats: `let lse_i = lse[head_row + qn];
          let delta_i = delta[head_row + qn];`,
      qc: "tq.x",
      qp: "tq.y",
      q: (x: string) => `vec4<f32>(q[qi + ${x}])`,
      g: (x: string) => `vec4<f32>(dout[qi + ${x}])`,
    };
  }
  return {
    decls: `var<workgroup> q_tile: array<vec4<f32>, TQ * D4>;
var<workgroup> g_tile: array<vec4<f32>, TQ * D4>;
var<workgroup> qc_tile: array<i32, TQ>;
var<workgroup> qp_tile: array<i32, TQ>;
var<workgroup> lse_tile: array<f32, TQ>;
var<workgroup> delta_tile: array<f32, TQ>;
`,
    stage: `workgroupBarrier();
      for (var i = i32(lid); i < U.tq * D4; i += WG) {
        let src = (head_row + min(q0 + i / D4, U.N - 1)) * D4 + i % D4;
        q_tile[i] = vec4<f32>(q[src]);
        g_tile[i] = vec4<f32>(dout[src]);
      }
      for (var i = i32(lid); i < U.tq; i += WG) {
        let r = min(q0 + i, U.N - 1);
        let tq = token_at(r);
        qc_tile[i] = tq.x;
        qp_tile[i] = tq.y;
        lse_tile[i] = lse[head_row + r];
        delta_tile[i] = delta[head_row + r];
      }
      workgroupBarrier();`,
    row: "let qi = i * D4;",
    stats: `let lse_i = lse_tile[i];
          let delta_i = delta_tile[i];`,
    qc: "qc_tile[i]",
    qp: "qp_tile[i]",
    q: (x: string) => `q_tile[qi + ${x}]`,
    g: (x: string) => `g_tile[qi + ${x}]`,
  };
}

/**
 * Backward dK/dV: R key rows per invocation; streams the query tiles that see this key tile (the
 * transposed tile list), for every query head sharing the key/value head (grouped-query
 * attention), so the sums over query rows and over the head group need no atomics.
 */
export function backwardDkvBody(o: BodyOptions): string {
  const qs = queryStream(o), R = o.R, D4 = o.D4;
  return `${qs.decls}
${
    entry(
      "(key tiles, key/value heads, batch). Workgroup: WG invocations, R key rows each",
      "kt",
      "kvh",
    )
  }
  let kv_head = (b * U.HKV + kvh) * U.N;
  // Accumulators start at zero (WGSL zero-initializes a var).
  ${
    each(R, (i) =>
      `let col${i} = kt * U.tk + i32(lid) + ${i} * WG;
  let tk${i} = token_at(min(col${i}, U.N - 1));
  let ko${i} = (kv_head + min(col${i}, U.N - 1)) * D4;
  var k${i}: array<vec4<f32>, D4>;
  var v${i}: array<vec4<f32>, D4>;
  var dk${i}: array<vec4<f32>, D4>;
  var dv${i}: array<vec4<f32>, D4>;`, "\n  ")
  }
  ${
    each(D4, (x) =>
      each(
        R,
        (i) =>
          `k${i}[${x}] = vec4<f32>(k[ko${i} + ${x}]); v${i}[${x}] = vec4<f32>(v[ko${i} + ${x}]);`,
        " ",
      ), "\n  ")
  }
  var qr: array<vec4<f32>, D4>;
  var gr: array<vec4<f32>, D4>;
  let group = U.H / U.HKV;
  for (var g = 0; g < group; g++) {
    let h = kvh * group + g;
    let head_row = (b * U.H + h) * U.N;
    ${tileLoop(o, "kt", "U.rows")}
      let q0 = t * U.tq;
      ${qs.stage}
      for (var i = 0; i < U.tq; i++) {
        ${qs.row}
        ${verdicts(o, "q0 + i < U.N", qs.qc, qs.qp, "k").replaceAll("\n      ", "\n        ")}
          ${qs.stats}
          ${each(R, (r) => `var s${r} = 0.0;\n          var dp${r} = 0.0;`, "\n          ")}
          ${
    each(D4, (x) =>
      `{ let qx = ${qs.q(`${x}`)}; let gx = ${qs.g(`${x}`)}; qr[${x}] = qx; gr[${x}] = gx; ${
        each(R, (r) =>
          `s${r} += dot(qx, k${r}[${x}]); dp${r} += dot(gx, v${r}[${x}]);`, " ")
      } }`, "\n          ")
  }
          ${
    each(R, (r) =>
      indent(
        `if (a${r}) {
  let sm = score_mod_grad(s${r} * U.scale, ${qs.qc}, ${qs.qp}, tk${r}.x, tk${r}.y, h);
  let p = exp(sm.x - lse_i);
  let ds = p * (dp${r} - delta_i) * sm.y;
  ${each(D4, (x) => `dv${r}[${x}] += p * gr[${x}]; dk${r}[${x}] += ds * qr[${x}];`, "\n  ")}
}`,
        10,
      ), "\n          ")
  }
        }
      }
    }
  }
  ${
    stores(R, (i) => `col${i} < U.N`, (i) =>
      `  ${
        each(
          D4,
          (x) =>
            `dk[ko${i} + ${x}] = vec4<T>(dk${i}[${x}] * U.scale); dv[ko${i} + ${x}] = vec4<T>(dv${i}[${x}]);`,
          "\n  ",
        )
      }`)
  }
}
`;
}
