/**
 * The WGSL of one matmul variant (runtime/kernels/matmul.ts `matmulKernel` validates the
 * parameters and binds the result), written in the order it runs: the invocation's share of the
 * reduction (`innerRange`), the loop over it (`directLoop` from global memory, `stagedLoop` through
 * workgroup memory in scalars or vec4s), the `kz` reduction across z (`kzReduce`) and the guarded
 * stores (`stores`). Every piece works on one `MatmulGen`: the parameters and the names of the
 * register block's accumulators, loads and FMAs.
 */
import type { ElementType } from "../gpu/kernel.ts";
import type { MatmulParams } from "./matmul.ts";

/** Parameters with every optional knob filled in (`f16` stays optional). */
export type FullMatmulParams = Required<Omit<MatmulParams, "f16">> & Pick<MatmulParams, "f16">;

/** The WGSL pieces of a variant that `makeKernel` assembles. */
export interface MatmulWgsl {
  /** Element type of the operands' storage arrays (vec4f with `vec: 4`). */
  type: ElementType;
  /** Workgroup-memory declarations (staged tiles, the `kz` reduction buffer). */
  decls: string;
  /** The body of `main` after `m0`, `n0` (the invocation's first row and column of C). */
  body: string;
}

/** One variant's parameters and the names its pieces share. */
interface MatmulGen {
  q: FullMatmulParams;
  /** Rows and columns of the register block. */
  I: number[];
  J: number[];
  /** One line per accumulator `acc{i}_{j}`, joined by `sep`. */
  each: (f: (i: number, j: number) => string, sep?: string) => string;
  /** A loaded value, as f16 with `f16` arithmetic (`v`: a vec4). */
  half: (x: string, v?: boolean) => string;
  /** The FMA adding `x·y` to accumulator (i, j). */
  mac: (i: number, j: number, x: string, y: string) => string;
  /** Inner values per loop step (4: vec4 along inner, for nt and nn). */
  kv: number;
  /** The FMAs of one step, given names for A's and B's values at (row or column, k in step). */
  fmas: (av: (i: number, kk: number) => string, bv: (kk: number, j: number) => string) => string;
  /** A'[m, k] and B'[k, n] in terms of the stored scalar arrays. */
  aAt: (m: string, k: string) => string;
  bAt: (k: string, n: string) => string;
}

/** Vector components, by position. */
const C = ["x", "y", "z", "w"];

/** The WGSL of a validated variant. */
export function matmulWgsl(q: FullMatmulParams): MatmulWgsl {
  const g = matmulGen(q);
  const loop = q.bk === 0 ? { decls: "", loop: directLoop(g) } : stagedLoop(g);
  const reduce = kzReduce(g);
  const zero = q.f16 === "accumulate" ? "0.0h" : "0.0";
  const body = `${q.bk > 0 || q.kz > 1 ? "" : "if (m0 >= u.M || n0 >= u.N) { return; }"}
  ${innerRange(g)}
  ${g.each((i, j) => `var acc${i}_${j} = ${zero};`, "\n  ")}
  ${loop.loop}
  ${reduce.code}
  ${stores(g)}`;
  return { type: q.vec === 4 ? "vec4f" : "f32", decls: loop.decls + reduce.decls, body };
}

function matmulGen(q: FullMatmulParams): MatmulGen {
  const { tm, tn, trans, vec, f16 } = q;
  const I = [...Array(tm).keys()], J = [...Array(tn).keys()];
  const IJ = I.flatMap((i) => J.map((j) => [i, j] as const));
  const each = (f: (i: number, j: number) => string, sep = "\n    ") =>
    IJ.map(([i, j]) => f(i, j)).join(sep);
  // f16: loaded values become f16; an accumulator gains x·y, rounded to f16 first (`products`)
  // or summed in f16 (`accumulate`).
  const half = (x: string, v = false) => f16 ? `${v ? "vec4<f16>" : "f16"}(${x})` : x;
  const mac = (i: number, j: number, x: string, y: string) =>
    f16 === "products"
      ? `acc${i}_${j} += f32(${x} * ${y});`
      : `acc${i}_${j} = fma(${x}, ${y}, acc${i}_${j});`;
  const kv = vec === 4 && trans !== "tn" ? 4 : 1;
  const fmas = (av: (i: number, kk: number) => string, bv: (kk: number, j: number) => string) =>
    [...Array(kv).keys()].map((kk) => each((i, j) => mac(i, j, av(i, kk), bv(kk, j)))).join(
      "\n    ",
    );
  const aAt = trans === "tn"
    ? (m: string, k: string) => `a[${k} * u.M + ${m}]`
    : (m: string, k: string) => `a[${m} * u.inner + ${k}]`;
  const bAt = trans === "nt"
    ? (k: string, n: string) => `b[${n} * u.inner + ${k}]`
    : (k: string, n: string) => `b[${k} * u.N + ${n}]`;
  return { q, I, J, each, half, mac, kv, fmas, aAt, bAt };
}

/**
 * The invocation's share of the reduction, `[kb, ke)` in multiples of `kv`: the workgroup's
 * slice with `splitK` (slice `wg.z`), then the z invocation's part of it with `kz`.
 */
function innerRange({ q: { splitK, kz }, kv }: MatmulGen): string {
  return [
    splitK > 1
      ? `let kc = (u.slice + ${kv - 1}u) / ${kv}u * ${kv}u;
  let k0 = min(wg.z * kc, u.inner);
  let k1 = min(k0 + kc, u.inner);`
      : `let k0 = 0u;
  let k1 = u.inner;`,
    kz > 1
      ? `let ks = ((k1 - k0 + ${kz - 1}u) / ${kz}u + ${kv - 1}u) / ${kv}u * ${kv}u;
  let kb = min(k0 + l.z * ks, k1);
  let ke = min(kb + ks, k1);`
      : `let kb = k0;
  let ke = k1;`,
  ].join("\n  ");
}

/**
 * The loop reading global memory directly (`bk: 0`): row and column indices clamped once, then
 * per step the loads of one k (or 4 k along inner with vec4s) and the FMAs.
 */
function directLoop(g: MatmulGen): string {
  const { q: { trans, vec, tm, tn }, I, J, half, fmas, aAt, bAt, kv } = g;
  let indices: string[], step: string[];
  if (vec === 1) {
    indices = [
      ...I.map((i) => `let r${i} = min(m0 + ${i}u, u.M - 1u);`),
      ...J.map((j) => `let c${j} = min(n0 + ${j}u, u.N - 1u);`),
    ];
    step = [
      ...I.map((i) => `let a${i} = ${half(aAt(`r${i}`, "k"))};`),
      ...J.map((j) => `let b${j} = ${half(bAt("k", `c${j}`))};`),
      fmas((i) => `a${i}`, (_, j) => `b${j}`),
    ];
  } else if (trans === "nt") {
    // a (M, inner/4) and b (N, inner/4) as vec4 rows: k counts vec4s.
    indices = [
      ...I.map((i) => `let r${i} = min(m0 + ${i}u, u.M - 1u) * (u.inner / 4u);`),
      ...J.map((j) => `let c${j} = min(n0 + ${j}u, u.N - 1u) * (u.inner / 4u);`),
    ];
    step = [
      ...I.map((i) => `let a${i} = ${half(`a[r${i} + k / 4u]`, true)};`),
      ...J.map((j) => `let b${j} = ${half(`b[c${j} + k / 4u]`, true)};`),
      fmas((i, kk) => `a${i}.${C[kk]}`, (kk, j) => `b${j}.${C[kk]}`),
    ];
  } else if (trans === "nn") {
    // a (M, inner/4) rows as vec4 along inner; b (inner, N/4) as vec4 along N, 4 rows per step.
    const G = [...Array(tn / 4).keys()];
    indices = [
      ...I.map((i) => `let r${i} = min(m0 + ${i}u, u.M - 1u) * (u.inner / 4u);`),
      ...G.map((g) => `let c${g} = min(n0 / 4u + ${g}u, u.N / 4u - 1u);`),
    ];
    step = [
      ...I.map((i) => `let a${i} = ${half(`a[r${i} + k / 4u]`, true)};`),
      ...[0, 1, 2, 3].flatMap((kk) =>
        G.map((g) => `let b${kk}_${g} = ${half(`b[(k + ${kk}u) * (u.N / 4u) + c${g}]`, true)};`)
      ),
      fmas((i, kk) => `a${i}.${C[kk]}`, (kk, j) => `b${kk}_${j >> 2}.${C[j & 3]}`),
    ];
  } else {
    // tn: a (inner, M/4) as vec4 along M, b (inner, N/4) as vec4 along N, one k per step.
    const GI = [...Array(tm / 4).keys()], GJ = [...Array(tn / 4).keys()];
    indices = [
      ...GI.map((g) => `let r${g} = min(m0 / 4u + ${g}u, u.M / 4u - 1u);`),
      ...GJ.map((g) => `let c${g} = min(n0 / 4u + ${g}u, u.N / 4u - 1u);`),
    ];
    step = [
      ...GI.map((g) => `let a${g} = ${half(`a[k * (u.M / 4u) + r${g}]`, true)};`),
      ...GJ.map((g) => `let b${g} = ${half(`b[k * (u.N / 4u) + c${g}]`, true)};`),
      fmas((i) => `a${i >> 2}.${C[i & 3]}`, (_, j) => `b${j >> 2}.${C[j & 3]}`),
    ];
  }
  return `${indices.join("\n  ")}
  for (var k = kb; k < ke; k += ${kv}u) {
    ${step.join("\n    ")}
  }`;
}

/**
 * The loop staging `bk`-deep slices of the A' (BM x bk) and B' (bk x BN) tiles through workgroup
 * memory: cooperative loads, a barrier, the FMAs over the slice, a barrier.
 */
function stagedLoop(g: MatmulGen): { decls: string; loop: string } {
  const { q: { wgx, wgy, tm, tn, bk, vec, f16 } } = g;
  const BM = wgy * tm, BN = wgx * tn, NT = wgx * wgy, v = vec === 4 ? 4 : 1;
  const st = f16 ? (v === 4 ? "vec4<f16>" : "f16") : (v === 4 ? "vec4f" : "f32");
  const slice = v === 4 ? stagedVec4Slice(g) : stagedScalarSlice(g);
  return {
    decls: `var<workgroup> As: array<${st}, ${(BM * bk) / v}>;
var<workgroup> Bs: array<${st}, ${(bk * BN) / v}>;`,
    loop: `let t = l.y * ${wgx}u + l.x;
  let mb = wg.y * ${BM}u;
  let nb = wg.x * ${BN}u;
  for (var kt = kb; kt < ke; kt += ${bk}u) {
    for (var e = t; e < ${(BM * bk) / v}u; e += ${NT}u) {
      ${slice.aLoad}
    }
    for (var e = t; e < ${(bk * BN) / v}u; e += ${NT}u) {
      ${slice.bLoad}
    }
    workgroupBarrier();
    let kn = min(${bk}u, ke - kt);
    for (var kk = 0u; kk < kn; ${slice.advance}) {
      ${slice.body}
    }
    workgroupBarrier();
  }`,
  };
}

/** What one staged form writes: element `e` of each tile's load, and one step over the slice. */
interface StagedSlice {
  aLoad: string;
  bLoad: string;
  /** The loop's step over the slice (`kk++`, or `kk += 4u` along inner in vec4s). */
  advance: string;
  body: string;
}

/** Scalar tiles, each load following its operand's contiguous dimension. */
function stagedScalarSlice(g: MatmulGen): StagedSlice {
  const { q: { trans, wgx, wgy, tm, tn, bk }, I, J, each, half, mac, aAt, bAt } = g;
  const BM = wgy * tm, BN = wgx * tn;
  const aIdx = trans === "tn"
    ? `let kk = e / ${BM}u; let mm = e % ${BM}u;`
    : `let mm = e / ${bk}u; let kk = e % ${bk}u;`;
  const bIdx = trans === "nt"
    ? `let nn = e / ${bk}u; let kk = e % ${bk}u;`
    : `let kk = e / ${BN}u; let nn = e % ${BN}u;`;
  return {
    aLoad: `${aIdx}
      As[mm * ${bk}u + kk] = ${half(aAt(`min(mb + mm, u.M - 1u)`, `min(kt + kk, u.inner - 1u)`))};`,
    bLoad: `${bIdx}
      Bs[kk * ${BN}u + nn] = ${half(bAt(`min(kt + kk, u.inner - 1u)`, `min(nb + nn, u.N - 1u)`))};`,
    advance: "kk++",
    body: [
      I.map((i) => `let a${i} = As[(l.y * ${tm}u + ${i}u) * ${bk}u + kk];`).join("\n      "),
      J.map((j) => `let b${j} = Bs[kk * ${BN}u + l.x * ${tn}u + ${j}u];`).join("\n      "),
      each((i, j) => mac(i, j, `a${i}`, `b${j}`), "\n      "),
    ].join("\n      "),
  };
}

/**
 * Vec4 tiles: each operand's slice keeps its contiguous dimension in vec4s (A' and B' of nt along
 * inner, B' of nn and tn along N, A' of tn along M), loaded one vec4 per invocation and step and
 * read back as vec4s by the same FMAs as the unstaged vec4 loop.
 */
function stagedVec4Slice(g: MatmulGen): StagedSlice {
  const { q: { trans, wgx, wgy, tm, tn, bk }, I, J, half, fmas } = g;
  const BM = wgy * tm, BN = wgx * tn, K4 = bk / 4;
  // Element e of an operand's tile: (row, vec4 along inner) of an operand contiguous along
  // inner, else (k, vec4 along M or N); clamped to the last row, column and k.
  const load = (
    o: { tile: string; src: string; alongInner: boolean; base: string; dim: string; D: number },
  ) => {
    const [outer, vecIdx, at] = o.alongInner
      ? [
        `let r = e / ${K4}u;`,
        `let k4 = e % ${K4}u;`,
        `min(${o.base} + r, u.${o.dim} - 1u) * (u.inner / 4u) + min(kt / 4u + k4, u.inner / 4u - 1u)`,
      ]
      : [
        `let kk = e / ${o.D / 4}u;`,
        `let d4 = e % ${o.D / 4}u;`,
        `min(kt + kk, u.inner - 1u) * (u.${o.dim} / 4u) + min(${o.base} / 4u + d4, u.${o.dim} / 4u - 1u)`,
      ];
    return `${outer} ${vecIdx}
      ${o.tile}[e] = ${half(`${o.src}[${at}]`, true)};`;
  };
  const aLoad = load({
    tile: "As",
    src: "a",
    alongInner: trans !== "tn",
    base: "mb",
    dim: "M",
    D: BM,
  });
  const bLoad = load({
    tile: "Bs",
    src: "b",
    alongInner: trans === "nt",
    base: "nb",
    dim: "N",
    D: BN,
  });
  // One step: 4 k (A' along inner) or 1 k (tn), as the unstaged vec4 step of the form.
  let body: string[];
  if (trans === "nt") {
    body = [
      ...I.map((i) => `let a${i} = As[(l.y * ${tm}u + ${i}u) * ${K4}u + kk / 4u];`),
      ...J.map((j) => `let b${j} = Bs[(l.x * ${tn}u + ${j}u) * ${K4}u + kk / 4u];`),
      fmas((i, q) => `a${i}.${C[q]}`, (q, j) => `b${j}.${C[q]}`),
    ];
  } else if (trans === "nn") {
    const G = [...Array(tn / 4).keys()];
    body = [
      ...I.map((i) => `let a${i} = As[(l.y * ${tm}u + ${i}u) * ${K4}u + kk / 4u];`),
      ...[0, 1, 2, 3].flatMap((q) =>
        G.map((g) => `let b${q}_${g} = Bs[(kk + ${q}u) * ${BN / 4}u + l.x * ${tn / 4}u + ${g}u];`)
      ),
      fmas((i, q) => `a${i}.${C[q]}`, (q, j) => `b${q}_${j >> 2}.${C[j & 3]}`),
    ];
  } else {
    const GI = [...Array(tm / 4).keys()], GJ = [...Array(tn / 4).keys()];
    body = [
      ...GI.map((g) => `let a${g} = As[kk * ${BM / 4}u + l.y * ${tm / 4}u + ${g}u];`),
      ...GJ.map((g) => `let b${g} = Bs[kk * ${BN / 4}u + l.x * ${tn / 4}u + ${g}u];`),
      fmas((i) => `a${i >> 2}.${C[i & 3]}`, (_, j) => `b${j >> 2}.${C[j & 3]}`),
    ];
  }
  const advance = trans === "tn" ? "kk += 1u" : "kk += 4u";
  return { aLoad, bLoad, advance, body: body.join("\n      ") };
}

/**
 * With `kz > 1`: invocations z > 0 park their accumulators in workgroup memory and stop; z = 0
 * adds them to its own.
 */
function kzReduce(g: MatmulGen): { decls: string; code: string } {
  const { q: { kz, wgx, wgy, tm, tn }, each } = g;
  if (kz === 1) return { decls: "", code: "" };
  const NT = wgx * wgy, TT = tm * tn;
  const slot = (z: string, ij: number) => `(${z} * ${TT}u + ${ij}u) * ${NT}u + t`;
  return {
    decls: `\nvar<workgroup> red: array<f32, ${(kz - 1) * NT * TT}>;`,
    code: `let t = l.y * ${wgx}u + l.x;
  if (l.z > 0u) {
    ${each((i, j) => `red[${slot("(l.z - 1u)", i * tn + j)}] = acc${i}_${j};`)}
  }
  workgroupBarrier();
  if (l.z > 0u) { return; }
  for (var z = 0u; z < ${kz - 1}u; z++) {
    ${each((i, j) => `acc${i}_${j} += red[${slot("z", i * tn + j)}];`)}
  }`,
  };
}

/** The guarded stores of the block: to C through `store` (alpha, beta), or raw to slice `wg.z`. */
function stores({ q: { splitK, f16 }, each }: MatmulGen): string {
  const out = splitK > 1
    ? (idx: string, v: string) => `p[wg.z * u.M * u.N + ${idx}] = ${v};`
    : (idx: string, v: string) => `store(${idx}, ${v});`;
  return each(
    (i, j) =>
      `if (m0 + ${i}u < u.M && n0 + ${j}u < u.N) { ${
        out(
          `(m0 + ${i}u) * u.N + n0 + ${j}u`,
          f16 === "accumulate" ? `f32(acc${i}_${j})` : `acc${i}_${j}`,
        )
      } }`,
    "\n  ",
  );
}
