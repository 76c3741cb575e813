/**
 * The WGSL bodies of the flash-attention kernels: forward (online softmax, saves the log-sum-exp),
 * backward dQ (also writes delta = rowsum(dO * O)) and backward dK/dV. Each invocation owns one
 * query row (forward, dQ) or one key row (dK/dV) with all its head-dim columns in registers and
 * streams the other side's rows tile by tile, either straight from storage (`direct`, the llvmpipe
 * choice: no barriers) or staged through workgroup memory (`workgroup`, for real GPUs). The tile
 * loop is a compressed list of non-empty tiles (fused: empty tiles never visited, full tiles skip
 * the mask) or every tile with the mask evaluated everywhere (dense: fallback and baseline).
 *
 * Head-dim loops have constant bounds: unrolled, the row arrays become registers (dynamically
 * indexed they become branch ladders). Loops over the rows of a tile are bounded by the uniforms
 * `U.tq`/`U.tk` (equal to the baked TQ/TK): unrolling those too made llvmpipe take from seconds to
 * minutes to compile one kernel. Shared declarations: attention_kernels.ts.
 */

/** What the bodies need to know of the kernel being built. */
export interface BodyOptions {
  /** `fused` reads the tile list `tiles`; `dense` visits all `U.rows` x `U.cols` tiles. */
  fused: boolean;
  /** Stage the streamed rows in workgroup memory (true) or read them from storage (false). */
  staged: boolean;
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
    for (var i = i32(lid); i < U.tk * D4; i += U.tq) {
      let src = kv_off + min(k0 + i / D4, U.N - 1) * D4 + i % D4;
      k_tile[i] = vec4<f32>(k[src]);
      v_tile[i] = vec4<f32>(v[src]);
    }
    for (var j = i32(lid); j < U.tk; j += U.tq) {
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

/** Forward: one query row per invocation. */
export function forwardBody(o: BodyOptions): string {
  const ks = keyStream(o);
  return `${ks.decls}
// Grid: (query tiles, heads, batch). Workgroup: TQ invocations, one query row each.
@compute @workgroup_size(TQ)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let qt = i32(wg.x);
  let h = i32(wg.y);
  let b = i32(wg.z);
  let row = qt * U.tq + i32(lid);
  let qrow = min(row, U.N - 1);
  let tq = token_at(qrow);
  let q_off = ((b * U.H + h) * U.N + qrow) * D4;
  let kv_off = (b * U.HKV + h / (U.H / U.HKV)) * U.N * D4;
  var qr: array<vec4<f32>, D4>;
  var acc: array<vec4<f32>, D4>;
  for (var x = 0; x < D4; x++) {
    qr[x] = vec4<f32>(q[q_off + x]) * U.scale;
    acc[x] = vec4<f32>(0.0);
  }
  var m = NEG_BIG;
  var l = 0.0;
  ${tileLoop(o, "qt", "U.cols")}
    let k0 = t * U.tk;
    ${ks.stage}
    // One pass per key: the running max only moves when a score exceeds it (rarely after the
    // first keys), so the rescale of the accumulator is a rare branch, and no score array (which
    // llvmpipe would index through a branch ladder) is needed.
    for (var j = 0; j < U.tk; j++) {
      ${ks.row}
      if (k0 + j < U.N && (full || mask_allowed(tq.x, tq.y, ${ks.kc}, ${ks.kp}))) {
        var dt = 0.0;
        for (var x = 0; x < D4; x++) {
          dt += dot(qr[x], ${ks.k("x")});
        }
        let sc = score_mod(dt, tq.x, tq.y, ${ks.kc}, ${ks.kp}, h);
        if (sc > m) {
          let corr = exp(m - sc);
          l *= corr;
          for (var x = 0; x < D4; x++) {
            acc[x] *= corr;
          }
          m = sc;
        }
        let p = exp(sc - m);
        l += p;
        for (var x = 0; x < D4; x++) {
          acc[x] += p * ${ks.v("x")};
        }
      }
    }
  }
  if (row < U.N) {
    // A row with no allowed key has l == 0: output 0, LSE = NEG_BIG (never read as a weight).
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var x = 0; x < D4; x++) {
      o[q_off + x] = vec4<T>(acc[x] * inv);
    }
    lse[(b * U.H + h) * U.N + row] = select(NEG_BIG, m + log(l), l > 0.0);
  }
}
`;
}

/**
 * Backward dQ: recomputes P = exp(score - lse) per key; dS = P * (dP - delta) * dscore;
 * dQ = scale * dS K. Also writes delta = rowsum(dO * O), which the dK/dV pass reads.
 */
export function backwardDqBody(o: BodyOptions): string {
  const ks = keyStream(o);
  return `${ks.decls}
// Grid: (query tiles, heads, batch). Workgroup: TQ invocations, one query row each.
@compute @workgroup_size(TQ)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let qt = i32(wg.x);
  let h = i32(wg.y);
  let b = i32(wg.z);
  let row = qt * U.tq + i32(lid);
  let qrow = min(row, U.N - 1);
  let tq = token_at(qrow);
  let stat = (b * U.H + h) * U.N + qrow;
  let q_off = stat * D4;
  let kv_off = (b * U.HKV + h / (U.H / U.HKV)) * U.N * D4;
  var qr: array<vec4<f32>, D4>;
  var gr: array<vec4<f32>, D4>;
  var dq_acc: array<vec4<f32>, D4>;
  var delta_r = 0.0;
  for (var x = 0; x < D4; x++) {
    qr[x] = vec4<f32>(q[q_off + x]);
    gr[x] = vec4<f32>(dout[q_off + x]);
    delta_r += dot(gr[x], vec4<f32>(o[q_off + x]));
    dq_acc[x] = vec4<f32>(0.0);
  }
  let lse_r = lse[stat];
  ${tileLoop(o, "qt", "U.cols")}
    let k0 = t * U.tk;
    ${ks.stage}
    for (var j = 0; j < U.tk; j++) {
      ${ks.row}
      if (k0 + j < U.N && (full || mask_allowed(tq.x, tq.y, ${ks.kc}, ${ks.kp}))) {
        var dt = 0.0;
        var dp = 0.0;
        for (var x = 0; x < D4; x++) {
          dt += dot(qr[x], ${ks.k("x")});
          dp += dot(gr[x], ${ks.v("x")});
        }
        let sm = score_mod_grad(dt * U.scale, tq.x, tq.y, ${ks.kc}, ${ks.kp}, h);
        let ds = exp(sm.x - lse_r) * (dp - delta_r) * sm.y;
        for (var x = 0; x < D4; x++) {
          dq_acc[x] += ds * ${ks.k("x")};
        }
      }
    }
  }
  if (row < U.N) {
    for (var x = 0; x < D4; x++) {
      dq[q_off + x] = vec4<T>(dq_acc[x] * U.scale);
    }
    delta[stat] = delta_r;
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
          let tq = token_at(qn);
          let lse_i = lse[head_row + qn];
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
      for (var i = i32(lid); i < U.tq * D4; i += U.tk) {
        let src = (head_row + min(q0 + i / D4, U.N - 1)) * D4 + i % D4;
        q_tile[i] = vec4<f32>(q[src]);
        g_tile[i] = vec4<f32>(dout[src]);
      }
      for (var i = i32(lid); i < U.tq; i += U.tk) {
        let r = min(q0 + i, U.N - 1);
        let tq = token_at(r);
        qc_tile[i] = tq.x;
        qp_tile[i] = tq.y;
        lse_tile[i] = lse[head_row + r];
        delta_tile[i] = delta[head_row + r];
      }
      workgroupBarrier();`,
    row: `let qi = i * D4;
          let lse_i = lse_tile[i];
          let delta_i = delta_tile[i];`,
    qc: "qc_tile[i]",
    qp: "qp_tile[i]",
    q: (x: string) => `q_tile[qi + ${x}]`,
    g: (x: string) => `g_tile[qi + ${x}]`,
  };
}

/**
 * Backward dK/dV: one key row per invocation; streams the query tiles that see this key tile (the
 * transposed tile list), for every query head sharing the key/value head (grouped-query attention),
 * so the sums over query rows and over the head group need no atomics.
 */
export function backwardDkvBody(o: BodyOptions): string {
  const qs = queryStream(o);
  return `${qs.decls}
// Grid: (key tiles, key/value heads, batch). Workgroup: TK invocations, one key row each.
@compute @workgroup_size(TK)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kt = i32(wg.x);
  let kvh = i32(wg.y);
  let b = i32(wg.z);
  let col = kt * U.tk + i32(lid);
  let krow = min(col, U.N - 1);
  let tk = token_at(krow);
  let kv_off = ((b * U.HKV + kvh) * U.N + krow) * D4;
  var kr: array<vec4<f32>, D4>;
  var vr: array<vec4<f32>, D4>;
  var dk_acc: array<vec4<f32>, D4>;
  var dv_acc: array<vec4<f32>, D4>;
  for (var x = 0; x < D4; x++) {
    kr[x] = vec4<f32>(k[kv_off + x]);
    vr[x] = vec4<f32>(v[kv_off + x]);
    dk_acc[x] = vec4<f32>(0.0);
    dv_acc[x] = vec4<f32>(0.0);
  }
  let group = U.H / U.HKV;
  for (var g = 0; g < group; g++) {
    let h = kvh * group + g;
    let head_row = (b * U.H + h) * U.N;
    ${tileLoop(o, "kt", "U.rows")}
      let q0 = t * U.tq;
      ${qs.stage}
      for (var i = 0; i < U.tq; i++) {
        ${qs.row}
        if (q0 + i < U.N && (full || mask_allowed(${qs.qc}, ${qs.qp}, tk.x, tk.y))) {
          var dt = 0.0;
          var dp = 0.0;
          for (var x = 0; x < D4; x++) {
            dt += dot(${qs.q("x")}, kr[x]);
            dp += dot(${qs.g("x")}, vr[x]);
          }
          let sm = score_mod_grad(dt * U.scale, ${qs.qc}, ${qs.qp}, tk.x, tk.y, h);
          let p = exp(sm.x - lse_i);
          let ds = p * (dp - delta_i) * sm.y;
          for (var x = 0; x < D4; x++) {
            dv_acc[x] += p * ${qs.g("x")};
            dk_acc[x] += ds * ${qs.q("x")};
          }
        }
      }
    }
  }
  if (col < U.N) {
    for (var x = 0; x < D4; x++) {
      dk[kv_off + x] = vec4<T>(dk_acc[x] * U.scale);
      dv[kv_off + x] = vec4<T>(dv_acc[x]);
    }
  }
}
`;
}
