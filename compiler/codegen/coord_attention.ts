/**
 * The coordinate-attention kernel source: a few (decode) or many (prefill) query rows against a
 * set of key slots, where both sides carry their token coordinates in buffers and the spec's own
 * mask (wgsl_expr.ts) decides each pair. Nothing about the storage order is baked in, so the same
 * kernel serves a KV cache whose slots are reused in any order and a prefill set in any order. Also
 * owns the key-range list format the kernel reads (`packRanges`); which ranges a query tile reads
 * is analysis (compiler/analysis/key_ranges.ts), the dispatch runtime/kernels/coord_attention.ts.
 *
 * Work skipping: each query tile walks a list of key ranges `(start, end, full)`; ranges the mask
 * rules out are absent, `full` ranges skip the mask, empty slots (copy -1) are skipped. Online
 * softmax in one pass per key, as in attention_wgsl.ts; a query row with no allowed key outputs 0.
 * As there, the head dim's vec4 columns are written out (`columns`), never looped over: on Mesa's
 * llvmpipe and lavapipe a loop left rolled costs 1 + d/4 of an invocation's 65535 loop passes per
 * key (at d = 256 lavapipe left one so, and a walk over 8192 slots lost its last keys).
 *
 * Layouts: q and o `(seqs·rows, H·d)` token-major; k and v `[seqs][S][HKV][d]`; qinfo
 * `(seqs·rows, 3)` i32 `(copy, pos, _)`; kcoords `[seqs][S][2]` i32 (`copy < 0`: empty slot).
 */
import type { KeyRanges } from "../analysis/key_ranges.ts";
import { exprCode, type SpecCode, specUniformFields, tableNames } from "./wgsl_expr.ts";
import {
  checkHeadDim,
  interfaceWgsl,
  type KernelSource,
  type StorageBinding,
  type UniformLayout,
  uniformLayout,
  uniformTable,
} from "./kernel_source.ts";

/** Everything baked into a coordinate-attention kernel. */
export interface CoordAttentionParams {
  /** The spec's expressions (parameter values are runtime). */
  spec: SpecCode;
  /** Head dimension, a multiple of 4. */
  headDim: number;
  /** Query rows per workgroup. */
  tileQ: number;
  /**
   * Invocations per query row (default 1): each walks every split-th key of the row's ranges and
   * the partial softmax states are merged through workgroup memory. Decode uses it to keep the
   * workgroup busy when there are few query rows (K per sequence) and many slots.
   */
  split?: number;
}

/**
 * The fixed uniform fields of the coordinate-attention kernel, before the spec's: query rows and
 * key slots per sequence, query and key/value heads, the softmax scale, query rows per tile, and
 * two spare fields.
 */
const COORD_UNIFORMS = uniformTable(["rows", "S", "H", "HKV", "scale", "tq", "pad0", "pad1"], {
  scale: "f32",
});

/** A fixed uniform field of the coordinate-attention kernel. */
export type CoordUniform = (typeof COORD_UNIFORMS)[number]["name"];

/** The coordinate-attention kernel of some parameters. */
export interface CoordAttentionKernel extends KernelSource {
  uniforms: UniformLayout<CoordUniform>;
}

/** Marks a range whose pairs are all allowed (the mask is skipped). */
const FULL_BIT = 0x80000000;
/** The largest range end: the kernel clamps range ends to its slot count. */
const OPEN_END = 0x7fffffff;

/**
 * Packs key ranges as the kernel reads them: query-tile offsets, then `(start, end | full)` pairs.
 * Ends past any slot count (`Infinity`: every slot) are clamped to `OPEN_END`.
 */
export function packRanges(r: KeyRanges): Uint32Array {
  const n = r.reduce((a, x) => a + x.length, 0), head = r.length + 1;
  const out = new Uint32Array(head + 2 * n);
  let at = head;
  r.forEach((list, t) => {
    out[t] = at;
    for (const x of list) {
      out[at++] = x.start;
      out[at++] = (x.full ? FULL_BIT : 0) | Math.min(x.end, OPEN_END);
    }
  });
  out[r.length] = at;
  return out;
}

/** `f(x)` for each vec4 column x < D4 of a head row, joined by `sep`: straight-line code. */
function columns(D4: number, f: (x: number) => string, sep: string): string {
  return Array.from({ length: D4 }, (_, x) => f(x)).join(sep);
}

/** Builds the kernel source. */
export function coordAttentionKernel(p: CoordAttentionParams): CoordAttentionKernel {
  const d = p.headDim, D4 = d / 4, TQ = p.tileQ, SP = p.split ?? 1;
  checkHeadDim(d);
  if (!Number.isInteger(TQ) || TQ < 1 || TQ > 256) {
    throw new RangeError(`tileQ must be an integer in [1, 256], got ${TQ}`);
  }
  if (!Number.isInteger(SP) || SP < 1 || TQ * SP > 256) {
    throw new RangeError(`split must be an integer >= 1 with tileQ·split <= 256, got ${SP}`);
  }
  const e = exprCode(p.spec);
  const storage: StorageBinding[] = [
    { name: "q", access: "read", element: "vec4<f32>" },
    { name: "k", access: "read", element: "vec4<f32>" },
    { name: "v", access: "read", element: "vec4<f32>" },
    { name: "qinfo", access: "read", element: "i32" },
    { name: "kcoords", access: "read", element: "i32" },
    { name: "ranges", access: "read", element: "u32" },
    { name: "o", access: "read_write", element: "vec4<f32>" },
  ];
  if (e.usesTables) storage.push({ name: "mask_tables", access: "read", element: "i32" });
  const uniforms = uniformLayout(COORD_UNIFORMS, p.spec);
  const merge = SP === 1 ? "" : `
var<workgroup> part_m: array<f32, ${TQ * SP}>;
var<workgroup> part_l: array<f32, ${TQ * SP}>;
var<workgroup> part_acc: array<vec4<f32>, ${TQ * SP * (d / 4)}>;
`;
  const code =
    `// coord_attention d${d} tq${TQ} split${SP}: generated by compiler/codegen/coord_attention.ts
const D4 = ${d / 4};
const SPLIT = ${SP}u;
const NEG_BIG = -3.0e38;

${interfaceWgsl(uniforms, storage)}

${e.helpers ? e.helpers + "\n\n" : ""}${e.mask}

${e.score}
${merge}
// Grid: (query tiles, heads, sequences). Workgroup: SPLIT invocations per query row of the tile,
// invocation sp of a row taking every SPLIT-th key from the sp-th on.
@compute @workgroup_size(${TQ * SP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let qt = i32(wg.x);
  let h = i32(wg.y);
  let b = i32(wg.z);
  let sp = i32(lid % SPLIT);
  let row = qt * U.tq + i32(lid / SPLIT);
  let qrow = b * U.rows + min(row, U.rows - 1);
  let qc = qinfo[3 * qrow];
  let qp = qinfo[3 * qrow + 1];
  let q_off = (qrow * U.H + h) * D4;
  let kvh = h / (U.H / U.HKV);
  var qr: array<vec4<f32>, D4>;
  var acc: array<vec4<f32>, D4>; // zero-initialized
  ${columns(D4, (x) => `qr[${x}] = q[q_off + ${x}] * U.scale;`, "\n  ")}
  var m = NEG_BIG;
  var l = 0.0;
  for (var e = ranges[qt]; e < ranges[qt + 1]; e += 2u) {
    let s0 = i32(ranges[e]);
    let w = ranges[e + 1u];
    let full = (w & ${FULL_BIT}u) != 0u;
    let s1 = min(i32(w & ${OPEN_END}u), U.S);
    for (var s = s0 + sp; s < s1; s += i32(SPLIT)) {
      let cell = b * U.S + s;
      let kc = kcoords[2 * cell];
      let kp = kcoords[2 * cell + 1];
      if (kc >= 0 && (full || mask_allowed(qc, qp, kc, kp))) {
        let k_off = (cell * U.HKV + kvh) * D4;
        var dt = 0.0;
        ${columns(D4, (x) => `dt += dot(qr[${x}], k[k_off + ${x}]);`, "\n        ")}
        let sc = score_mod(dt, qc, qp, kc, kp, h);
        if (sc > m) {
          let corr = exp(m - sc);
          l *= corr;
          ${columns(D4, (x) => `acc[${x}] *= corr;`, "\n          ")}
          m = sc;
        }
        let pr = exp(sc - m);
        l += pr;
        ${columns(D4, (x) => `acc[${x}] += pr * v[k_off + ${x}];`, "\n        ")}
      }
    }
  }
${
      SP === 1
        ? `  if (row < U.rows) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    ${columns(D4, (x) => `o[q_off + ${x}] = acc[${x}] * inv;`, "\n    ")}
  }`
        : `  // Merge the SPLIT partial states of each row: rescale to the common max, sum, normalise.
  part_m[lid] = m;
  part_l[lid] = l;
  ${columns(D4, (x) => `part_acc[lid * ${D4}u + ${x}u] = acc[${x}];`, "\n  ")}
  workgroupBarrier();
  if (sp == 0 && row < U.rows) {
    var mm = NEG_BIG;
    for (var t = 0u; t < SPLIT; t++) {
      mm = max(mm, part_m[lid + t]);
    }
    var ll = 0.0;
    var res: array<vec4<f32>, D4>; // zero-initialized
    for (var t = 0u; t < SPLIT; t++) {
      let f = select(0.0, exp(part_m[lid + t] - mm), part_l[lid + t] > 0.0);
      ll += f * part_l[lid + t];
      ${columns(D4, (x) => `res[${x}] += f * part_acc[(lid + t) * ${D4}u + ${x}u];`, "\n      ")}
    }
    let inv = select(0.0, 1.0 / ll, ll > 0.0);
    ${columns(D4, (x) => `o[q_off + ${x}] = res[${x}] * inv;`, "\n    ")}
  }`
    }
}
`;
  const key = JSON.stringify({
    kind: "coord_attention",
    mask: p.spec.mask,
    score: p.spec.score ?? null,
    uniforms: specUniformFields(p.spec),
    tables: tableNames(p.spec),
    d,
    TQ,
    SP,
  });
  return {
    key,
    label: `coord_attention_d${d}_tq${TQ}_s${SP}`,
    code,
    entryPoint: "main",
    workgroupSize: TQ * SP,
    bindings: storage.map((b) => b.name),
    uniforms,
  };
}
