/**
 * Plain CPU versions of every non-attention layer, forward and backward: the oracle of the WGSL
 * kernels and the building blocks of the float64 reference model. `precision: "f64"` is the
 * reference; `"f32"` rounds after every operation in the textbook order, the naive float32
 * baseline whose error sets the kernels' tolerance (FlashAttention style: at most ~2x as much).
 * Tensors are flat row-major arrays with their shapes in the comment above each function.
 */

/** Float64 reference or naive float32 (every operation rounded). */
export type Precision = "f64" | "f32";

const id = (x: number) => x;
function rounding(p: Precision): (x: number) => number {
  return p === "f32" ? Math.fround : id;
}

/** Shape of a product, as in runtime/kernels/matmul.ts (`inner` is the reduction length). */
export interface MatmulShape {
  M: number;
  N: number;
  inner: number;
  /**
   * `nt` C=A·Bᵀ (a (M,inner), b (N,inner)), `nn` C=A·B (b (inner,N)), `tn` C=Aᵀ·B (a (inner,M),
   * b (inner,N)).
   */
  trans: "nt" | "nn" | "tn";
}

/** c is (M, N) = A'·B' per `trans`. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  s: MatmulShape & { precision?: Precision },
): Float64Array {
  const { M, N, inner, trans } = s, r = rounding(s.precision ?? "f64");
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < inner; k++) {
        const x = trans === "tn" ? a[k * M + m] : a[m * inner + k];
        const y = trans === "nt" ? b[n * inner + k] : b[k * N + n];
        acc = r(acc + r(x * y));
      }
      c[m * N + n] = acc;
    }
  }
  return c;
}

/** table is (V, C), ids is (R,), out is (R, C). */
export function gatherRef(table: ArrayLike<number>, ids: ArrayLike<number>, C: number) {
  const out = new Float64Array(ids.length * C);
  for (let r = 0; r < ids.length; r++) {
    for (let c = 0; c < C; c++) out[r * C + c] = table[ids[r] * C + c];
  }
  return out;
}

/** dout is (R, C), ids is (R,), dtable is (V, C): rows summed in row order. */
export function scatterAddRef(
  dout: ArrayLike<number>,
  ids: ArrayLike<number>,
  s: { V: number; C: number; precision?: Precision },
): Float64Array {
  const r = rounding(s.precision ?? "f64"), C = s.C, out = new Float64Array(s.V * C);
  for (let t = 0; t < ids.length; t++) {
    for (let c = 0; c < C; c++) out[ids[t] * C + c] = r(out[ids[t] * C + c] + dout[t * C + c]);
  }
  return out;
}

/** x is (R, C), w is (C,); y is (R, C), rstd is (R,). */
export function rmsnormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  s: { C: number; eps?: number; precision?: Precision },
): { y: Float64Array; rstd: Float64Array } {
  const r = rounding(s.precision ?? "f64"), C = s.C, R = x.length / C, eps = s.eps ?? 1e-5;
  const y = new Float64Array(x.length), rstd = new Float64Array(R);
  for (let i = 0; i < R; i++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss = r(ss + r(x[i * C + c] * x[i * C + c]));
    const k = r(1 / r(Math.sqrt(r(r(ss / C) + eps))));
    rstd[i] = k;
    for (let c = 0; c < C; c++) y[i * C + c] = r(r(x[i * C + c] * k) * w[c]);
  }
  return { y, rstd };
}

/** dy, x are (R, C), w is (C,), rstd is (R,); dx is (R, C), dw is (C,). */
export function rmsnormBackwardRef(
  io: {
    dy: ArrayLike<number>;
    x: ArrayLike<number>;
    w: ArrayLike<number>;
    rstd: ArrayLike<number>;
  },
  s: { C: number; precision?: Precision },
): { dx: Float64Array; dw: Float64Array } {
  const { dy, x, w, rstd } = io;
  const r = rounding(s.precision ?? "f64"), C = s.C, R = x.length / C;
  const dx = new Float64Array(x.length), dw = new Float64Array(C);
  for (let i = 0; i < R; i++) {
    const k = rstd[i];
    let dot = 0;
    for (let c = 0; c < C; c++) dot = r(dot + r(r(dy[i * C + c] * w[c]) * x[i * C + c]));
    const f = r(r(r(r(k * k) * k) * dot) / C);
    for (let c = 0; c < C; c++) {
      const j = i * C + c;
      dx[j] = r(r(r(k * dy[j]) * w[c]) - r(f * x[j]));
      dw[c] = r(dw[c] + r(r(dy[j] * x[j]) * k));
    }
  }
  return { dx, dw };
}

/**
 * RoPE ("rotate_half", theta^(-2i/d)) on x (B, H, N, d) with pos (N,) position ids; `inverse`
 * rotates by the negative angle (the backward). Angles are float64 in both precisions (the
 * kernels read a float64-built table).
 */
export function ropeRef(
  x: ArrayLike<number>,
  pos: ArrayLike<number>,
  s: { headDim: number; theta?: number; inverse?: boolean; precision?: Precision },
): Float64Array {
  const r = rounding(s.precision ?? "f64"), d = s.headDim, half = d / 2, N = pos.length;
  const theta = s.theta ?? 10000, sign = s.inverse ? -1 : 1, out = new Float64Array(x.length);
  for (let row = 0; row < x.length / d; row++) {
    const p = pos[row % N];
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(theta, -2 * i / d);
      const co = r(Math.cos(a)), si = r(sign * Math.sin(a));
      const x1 = x[row * d + i], x2 = x[row * d + i + half];
      out[row * d + i] = r(r(x1 * co) - r(x2 * si));
      out[row * d + i + half] = r(r(x2 * co) + r(x1 * si));
    }
  }
  return out;
}

/** Rearranges x from (B, N, H, d) to (B, H, N, d), or back with `back`. */
export function transposeHeads(
  x: ArrayLike<number>,
  s: { batch: number; tokens: number; heads: number; headDim: number; back?: boolean },
): Float64Array {
  const { batch: B, tokens: N, heads: H, headDim: d } = s, out = new Float64Array(x.length);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < N; t++) {
      for (let h = 0; h < H; h++) {
        const tok = ((b * N + t) * H + h) * d, head = ((b * H + h) * N + t) * d;
        for (let i = 0; i < d; i++) {
          if (s.back) out[tok + i] = x[head + i];
          else out[head + i] = x[tok + i];
        }
      }
    }
  }
  return out;
}

function sigmoid(x: number, r: (x: number) => number): number {
  return r(1 / r(1 + r(Math.exp(-x))));
}

/** gate, up, out are (R, I): out = silu(gate)·up. */
export function swigluRef(
  io: { gate: ArrayLike<number>; up: ArrayLike<number> },
  precision: Precision = "f64",
): Float64Array {
  const { gate, up } = io;
  const r = rounding(precision), out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    out[i] = r(r(gate[i] * sigmoid(gate[i], r)) * up[i]);
  }
  return out;
}

/** dout, gate, up are (R, I); dgate, dup are (R, I). */
export function swigluBackwardRef(
  io: { dout: ArrayLike<number>; gate: ArrayLike<number>; up: ArrayLike<number> },
  precision: Precision = "f64",
): { dgate: Float64Array; dup: Float64Array } {
  const { dout, gate, up } = io;
  const r = rounding(precision), n = gate.length;
  const dgate = new Float64Array(n), dup = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i], s = sigmoid(g, r);
    dgate[i] = r(r(r(dout[i] * up[i]) * s) * r(1 + r(g * r(1 - s))));
    dup[i] = r(r(dout[i] * g) * s);
  }
  return { dgate, dup };
}

/**
 * logits is (R_all, V); rows, targets are (M,); losses is (M,) and dlogits (R_all, V) holds
 * `scale·(softmax - onehot)` on the selected rows, 0 elsewhere. Textbook softmax (max-shifted).
 */
export function crossEntropyRef(
  io: { logits: ArrayLike<number>; rows: ArrayLike<number>; targets: ArrayLike<number> },
  s: { V: number; scale?: number; precision?: Precision },
): { losses: Float64Array; dlogits: Float64Array } {
  const { logits, rows, targets } = io;
  const r = rounding(s.precision ?? "f64"), V = s.V, scale = s.scale ?? 1 / rows.length;
  const losses = new Float64Array(rows.length), dlogits = new Float64Array(logits.length);
  for (let j = 0; j < rows.length; j++) {
    const base = rows[j] * V;
    let m = -Infinity, sum = 0;
    for (let v = 0; v < V; v++) m = Math.max(m, logits[base + v]);
    for (let v = 0; v < V; v++) sum = r(sum + r(Math.exp(r(logits[base + v] - m))));
    const lse = r(m + r(Math.log(sum)));
    losses[j] = r(lse - logits[base + targets[j]]);
    for (let v = 0; v < V; v++) {
      const p = r(Math.exp(r(logits[base + v] - lse)));
      dlogits[base + v] = r(scale * r(p - (v === targets[j] ? 1 : 0)));
    }
  }
  return { losses, dlogits };
}

/** AdamW hyper-parameters of one step (PyTorch semantics). */
export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step (bias correction). */
  step: number;
  /** Gradient multiplier (the clip scale). Default 1. */
  gradScale?: number;
}

/** One AdamW step in place on param, m, v (all (n,)), reading grad (n,). */
export function adamwRef(
  io: { param: Float64Array; grad: ArrayLike<number>; m: Float64Array; v: Float64Array },
  h: AdamWStep & { precision?: Precision },
): void {
  const r = rounding(h.precision ?? "f64"), { param, grad, m, v } = io;
  const bc1 = r(1 - Math.pow(h.beta1, h.step)), bc2 = r(1 - Math.pow(h.beta2, h.step));
  for (let i = 0; i < param.length; i++) {
    const g = r(grad[i] * (h.gradScale ?? 1));
    m[i] = r(r(h.beta1 * m[i]) + r(r(1 - h.beta1) * g));
    v[i] = r(r(h.beta2 * v[i]) + r(r(r(1 - h.beta2) * g) * g));
    const p = r(param[i] * r(1 - r(h.lr * h.weightDecay)));
    param[i] = r(p - r(r(h.lr * r(m[i] / bc1)) / r(r(Math.sqrt(r(v[i] / bc2))) + h.eps)));
  }
}

/** Global L2 norm of all arrays and the clip scale `min(1, maxNorm/(norm + 1e-6))` (0: off). */
export function gradNormRef(
  grads: readonly ArrayLike<number>[],
  s: { maxNorm: number; precision?: Precision },
): { norm: number; scale: number } {
  const r = rounding(s.precision ?? "f64");
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss = r(ss + r(g[i] * g[i]));
  const norm = r(Math.sqrt(ss));
  return { norm, scale: s.maxNorm > 0 ? Math.min(1, r(s.maxNorm / r(norm + 1e-6))) : 1 };
}
