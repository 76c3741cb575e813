/**
 * Cached inference for PHD transformers (DESIGN.md 1.4): prefill computes only the compiler's
 * prefill set, decoding runs a position's K copies as one batch of K query rows against the KV
 * cache, sampling happens on the GPU, and several decode steps go into one submit.
 *
 * - Prefill (per prompt): the prefill set of compiler/analysis/prefill.ts (every original; plus the hidden
 *   tokens of the last chunk for PHD-CSWA, of the whole prompt for PHD-SWA, of the last position
 *   for PHD), ordered `[originals | hidden by (pos, copy)]`, runs through the model as one batch
 *   of rows; attention is the coordinate kernel over those rows with key ranges from the mask
 *   oracle; the keys the retention plan keeps are scattered into their cache slots; the last
 *   copy of the last position gives the first new token.
 * - Decode step: `next[seq]` (written by the sampler) -> embedding of K rows per sequence -> each
 *   layer stores its K copies' keys in their slots and attends them against the cache -> logits of
 *   copy K-1 -> sampler -> `next[seq]`. The host knows every step's slots in advance (they do not
 *   depend on the tokens), so it writes a schedule for a whole submit and each step begins by
 *   copying its record into the buffer the kernels read: the recorded dispatches are the same for
 *   every step, and tokens are read back once per submit.
 *
 * Browser-safe (no Deno APIs). The decode path's buffers are `(batch·K, ·)` and preallocated.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import { type Bindings, specBindings } from "../../dsl/eval.ts";
import { explore, maskOracle, region } from "../../compiler/analysis/abstract.ts";
import { prefillSet } from "../../compiler/analysis/prefill.ts";
import { planRetention, type RetentionPlan } from "../../compiler/analysis/retention.ts";
import { packSpecBindings, tableNames } from "../../compiler/codegen/wgsl_expr.ts";
import { checkBindingSize } from "../gpu/device.ts";
import { readback, storageBuffer } from "../gpu/resources.ts";
import type { Dispatch, KernelContext } from "../gpu/kernel.ts";
import { matmul, type MatmulTrans } from "../kernels/matmul.ts";
import { rmsnormForward } from "../kernels/rmsnorm.ts";
import { ropeTable } from "../kernels/rope.ts";
import { swigluForward } from "../kernels/swiglu.ts";
import { gather } from "../kernels/embedding.ts";
import { expandEmbed } from "../kernels/phd.ts";
import { coordAttention } from "../kernels/coord_attention.ts";
import { packRanges } from "../../compiler/codegen/coord_attention.ts";
import { openRanges, prefillRanges } from "../../compiler/analysis/key_ranges.ts";
import { ropeStore, scatterRows } from "../kernels/kv_write.ts";
import { sample, type SampleParams } from "../kernels/sample.ts";
import { KvCache, type KvStats } from "./kv_cache.ts";
import { type MatmulChooser, type ModelParams, type Op, recordOps } from "../model/graph.ts";
import { headDim } from "../model/params.ts";
import type { SamplingOptions } from "./recompute.ts";

export type { SamplingOptions } from "./recompute.ts";

/** Shape and choices of a decoder. */
export interface DecoderOptions {
  /** Sequences generated together (one prompt each). Default 1. */
  batch?: number;
  /** Positions per sequence it can hold: prompt length + new tokens - 1 at most. */
  maxPositions: number;
  /** Decode steps recorded per submit (tokens are read back once per submit). Default 16. */
  stepsPerSubmit?: number;
  /** KV slots per sequence allocated up front (the cache grows by doubling). Default 64. */
  initialSlots?: number;
  /** Runtime parameter values of the spec (W, C, tables). Default: the spec's. */
  bindings?: Bindings;
  /** Matmul blocking per product. */
  matmul?: MatmulChooser;
  /** Query rows per workgroup (and key rows per range block) of prefill attention. Default 32. */
  prefillTile?: number;
}

/** One generation request. */
export interface GenerateRequest {
  /** One prompt (token ids, at least one) per sequence of the batch. */
  prompts: ArrayLike<number>[];
  /** Tokens to generate per sequence. */
  maxNewTokens: number;
  /** How to choose tokens; temperature 0 (default) is greedy. */
  sampling?: SamplingOptions;
  /**
   * Teacher forcing: the tokens to emit instead of sampling (`maxNewTokens` per sequence); the
   * logits are still computed (see `keepLogits`).
   */
  force?: ArrayLike<number>[];
  /** Keep every step's logits (read them with `logits()`): tests and analysis. */
  keepLogits?: boolean;
}

/** Tokens produced since the previous chunk, per sequence. */
export interface TokenChunk {
  /** `tokens[seq]`: the new ids, in order. */
  tokens: number[][];
  /** Tokens generated so far per sequence (including these). */
  generated: number;
}

/** Timings and cache figures of the last generation. */
export interface GenerationStats {
  /** Prefill of every prompt, from the start to the first tokens on the host (ms). */
  prefillMs: number;
  /** Host part of prefill: prefill set, slots, key ranges (ms, included in `prefillMs`). */
  prefillPlanMs: number;
  /** Rows (tokens of the expanded sequence) each prefill computed. */
  prefillRows: number[];
  /** Decoding after the first token (ms, with readbacks). */
  decodeMs: number;
  /** Decode steps run (each produces one token per sequence). */
  decodeSteps: number;
  /** Tokens per second of the decode phase, all sequences together. */
  decodeTokensPerS: number;
  /** Submits (one readback each) of the decode phase. */
  submits: number;
  kv: KvStats;
}

/** A generation run to completion (see `generate`). */
export interface GenerationResult {
  /** New tokens per sequence. */
  tokens: number[][];
  stats: GenerationStats;
}

interface Acts {
  x: GPUBuffer;
  n: GPUBuffer;
  rstd: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  qr: GPUBuffer;
  att: GPUBuffer;
  gate: GPUBuffer;
  up: GPUBuffer;
  act: GPUBuffer;
}

/**
 * Cached generation for one model and spec: a KV cache for `batch` sequences of up to
 * `maxPositions` positions, the decode step's buffers and dispatches, and prefill on demand.
 * Reusable: each `generate` starts from an empty cache.
 */
export class Decoder {
  readonly K: number;
  readonly batch: number;
  readonly cache: KvCache;
  readonly plan: RetentionPlan;
  readonly bindings: Bindings;
  readonly stepsPerSubmit: number;
  #buffers: GPUBuffer[] = [];
  #table: GPUBuffer;
  #acts: Acts;
  #next: GPUBuffer;
  #cur: GPUBuffer;
  #sched: GPUBuffer;
  #stride: number;
  #zerosK: GPUBuffer;
  #zeroI: GPUBuffer;
  #lastRows: GPUBuffer;
  #decodeRanges: GPUBuffer;
  #sel: GPUBuffer;
  #nf: GPUBuffer;
  #rstdB: GPUBuffer;
  #logits: GPUBuffer;
  #tables?: GPUBuffer;
  #decodeTile: number;
  #decodeSplit: number;
  #decode: Dispatch[] = [];
  #run?: {
    maxNew: number;
    out: GPUBuffer;
    forced: GPUBuffer;
    hist?: GPUBuffer;
    sampling: SampleParams;
  };
  #stats?: GenerationStats;

  constructor(
    readonly ctx: KernelContext,
    readonly params: ModelParams,
    readonly spec: AttentionSpec,
    readonly options: DecoderOptions,
  ) {
    const cfg = params.config, K = this.K = spec.K, B = this.batch = options.batch ?? 1;
    const maxPos = options.maxPositions;
    for (const [k, v] of [["batch", B], ["maxPositions", maxPos]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be >= 1, got ${v}`);
    }
    this.stepsPerSubmit = options.stepsPerSubmit ?? 16;
    if (!Number.isInteger(this.stepsPerSubmit) || this.stepsPerSubmit < 1) {
      throw new RangeError(`stepsPerSubmit must be >= 1, got ${this.stepsPerSubmit}`);
    }
    this.bindings = options.bindings ?? specBindings(spec);
    this.plan = planRetention(spec, { L: maxPos, bindings: this.bindings });
    this.cache = new KvCache(ctx, spec, cfg, {
      seqs: B,
      horizon: maxPos,
      initialSlots: options.initialSlots,
      bindings: this.bindings,
      plan: this.plan,
    });
    const dev = ctx.gpu.device, d = headDim(cfg);
    const positions = spec.positions === "flattened" ? maxPos * K : maxPos;
    this.#table = this.#keep(storageBuffer(dev, ropeTable(positions, d, cfg.rope_theta), "rope"));
    const R = B * K;
    this.#acts = this.#activations(R, "dec");
    this.#next = this.#alloc(B * 4, "next");
    this.#stride = 3 * R + B;
    this.#cur = this.#alloc(this.#stride * 4, "step");
    this.#sched = this.#alloc(this.stepsPerSubmit * this.#stride * 4, "schedule");
    this.#zerosK = this.#keep(storageBuffer(dev, new Uint32Array(K), "zeros_k"));
    this.#zeroI = this.#keep(storageBuffer(dev, new Int32Array(4), "zero"));
    this.#lastRows = this.#keep(
      storageBuffer(dev, Uint32Array.from({ length: B }, (_, b) => b * K + K - 1), "last_rows"),
    );
    // Decode attention: the K rows of a sequence in one workgroup (up to 16), the rest of a
    // 32-invocation workgroup splitting the slots (less when d is large: workgroup memory).
    this.#decodeTile = Math.min(16, 1 << Math.ceil(Math.log2(K)));
    const lanes = Math.min(32, 1 << Math.floor(Math.log2(16384 / (4 * d + 8))));
    this.#decodeSplit = Math.max(1, Math.floor(lanes / this.#decodeTile));
    const qTiles = Math.ceil(K / this.#decodeTile);
    this.#decodeRanges = this.#keep(
      storageBuffer(dev, packRanges(openRanges(qTiles)), "decode_ranges"),
    );
    const C = cfg.hidden_size, V = cfg.vocab_size;
    this.#sel = this.#alloc(B * C * 4, "sel");
    this.#nf = this.#alloc(B * C * 4, "nf");
    this.#rstdB = this.#alloc(B * 4, "rstd_b");
    this.#logits = this.#alloc(B * V * 4, "logits");
    const tables = packTables(spec, this.bindings);
    if (tables) this.#tables = this.#keep(storageBuffer(dev, tables, "mask_tables"));
  }

  /** Figures of the last `generate` (after it finished). */
  get stats(): GenerationStats {
    if (!this.#stats) throw new Error("no generation has run yet");
    return this.#stats;
  }

  /**
   * Generates `maxNewTokens` tokens after each prompt, yielding them as they reach the host: the
   * first token of every sequence after prefill, then one chunk per submit of decode steps.
   */
  async *generate(req: GenerateRequest): AsyncGenerator<TokenChunk> {
    const B = this.batch, V = this.params.config.vocab_size, maxNew = req.maxNewTokens;
    if (req.prompts.length !== B) {
      throw new RangeError(`${req.prompts.length} prompts for a decoder of batch ${B}`);
    }
    if (!Number.isInteger(maxNew) || maxNew < 1) {
      throw new RangeError(`maxNewTokens must be an integer >= 1, got ${maxNew}`);
    }
    const prompts = req.prompts.map((p, b) => {
      const a = Array.from(p);
      if (a.length < 1) throw new RangeError(`prompt ${b} is empty: give at least one token`);
      for (const id of a) {
        if (!(Number.isInteger(id) && id >= 0 && id < V)) {
          throw new RangeError(`prompt ${b} holds token ${id}, outside the vocabulary (${V})`);
        }
      }
      if (a.length + maxNew - 1 > this.options.maxPositions) {
        throw new RangeError(
          `prompt ${b} (${a.length} tokens) + ${maxNew} new tokens needs ${
            a.length + maxNew - 1
          } positions, the decoder holds ${this.options.maxPositions}`,
        );
      }
      this.#checkFutureFree(a.length);
      return a;
    });
    if (req.force) {
      if (req.force.length !== B || req.force.some((f) => f.length < maxNew)) {
        throw new RangeError(`force needs ${maxNew} tokens for each of the ${B} sequences`);
      }
    }
    const s = req.sampling ?? {};
    const t = s.temperature ?? 0;
    const sampling: SampleParams = req.force
      ? { mode: "forced" }
      : t > 0
      ? { mode: "sample", temperature: t, topK: s.topK ?? 0, topP: s.topP ?? 1, seed: s.seed ?? 0 }
      : { mode: "greedy" };
    this.#endRun();
    for (const d of this.#decode) for (const u of d.owned) u.destroy();
    this.#decode = [];
    const dev = this.ctx.gpu.device;
    const forced = new Uint32Array(B * maxNew);
    if (req.force) {
      req.force.forEach((f, b) => forced.set(Array.from(f).slice(0, maxNew), b * maxNew));
    }
    this.#run = {
      maxNew,
      out: storageBuffer(dev, B * maxNew * 4, "out_tokens"),
      forced: storageBuffer(dev, forced, "forced_tokens"),
      hist: req.keepLogits ? this.#allocRaw(maxNew * B * V * 4, "logits_history") : undefined,
      sampling,
    };
    this.cache.reset();

    // ---- prefill ----
    const t0 = performance.now();
    let planMs = 0;
    const prefillRows: number[] = [];
    const scratch: GPUBuffer[] = [];
    for (let b = 0; b < B; b++) {
      const r = this.#prefill(b, prompts[b], scratch);
      planMs += r.planMs;
      prefillRows.push(r.rows);
    }
    let out = await this.#readOut();
    for (const x of scratch) x.destroy();
    const prefillMs = performance.now() - t0;
    yield { tokens: out.map((o) => [o[0]]), generated: 1 };

    // ---- decode ----
    const t1 = performance.now();
    this.#decode = this.#buildDecode();
    let submits = 0;
    for (let i = 1; i < maxNew;) {
      const T = Math.min(this.stepsPerSubmit, maxNew - i);
      const sched = new Int32Array(T * this.#stride);
      for (let s = 0; s < T; s++) {
        const rec = sched.subarray(s * this.#stride, (s + 1) * this.#stride);
        for (let b = 0; b < B; b++) {
          const n = prompts[b].length + i + s - 1;
          const slots = this.cache.admit(b, n);
          for (let c = 0; c < this.K; c++) rec.set([c, n, slots[c]], 3 * (b * this.K + c));
          rec[3 * B * this.K + b] = i + s;
        }
      }
      if (this.cache.sync()) {
        for (const d of this.#decode) for (const u of d.owned) u.destroy();
        this.#decode = this.#buildDecode();
      }
      dev.queue.writeBuffer(this.#sched, 0, sched);
      const enc = dev.createCommandEncoder({ label: "decode" });
      const bytes = this.#stride * 4;
      for (let s = 0; s < T; s++) {
        const ops: Op[] = [
          (e) => e.copyBufferToBuffer(this.#sched, s * bytes, this.#cur, 0, bytes),
          ...this.#decode,
        ];
        const hist = this.#run.hist;
        if (hist) {
          const at = (i + s) * B * V * 4;
          ops.push((e) => e.copyBufferToBuffer(this.#logits, 0, hist, at, B * V * 4));
        }
        recordOps(enc, ops);
      }
      dev.queue.submit([enc.finish()]);
      submits++;
      out = await this.#readOut();
      yield { tokens: out.map((o) => o.slice(i, i + T)), generated: i + T };
      i += T;
    }
    const decodeMs = performance.now() - t1;
    const steps = maxNew - 1;
    this.#stats = {
      prefillMs,
      prefillPlanMs: planMs,
      prefillRows,
      decodeMs,
      decodeSteps: steps,
      decodeTokensPerS: steps > 0 ? (B * steps) / (decodeMs / 1000) : 0,
      submits,
      kv: this.cache.stats(),
    };
  }

  /** Logits of every step of the last run with `keepLogits`: `[step][seq][vocab]`. */
  async logits(): Promise<Float32Array> {
    const hist = this.#run?.hist;
    if (!hist) throw new Error("the last generate did not keep logits (keepLogits: true)");
    return new Float32Array(await readback(this.ctx.gpu.device, hist, hist.size));
  }

  destroy(): void {
    this.#endRun();
    for (const d of this.#decode) for (const u of d.owned) u.destroy();
    this.#decode = [];
    for (const b of this.#buffers) b.destroy();
    this.cache.destroy();
  }

  // ---- internals ----

  /** Refuses a prompt length at which a bidirectional spec would let a query see a later token. */
  #checkFutureFree(P: number) {
    if (this.spec.bidirectional !== true) return;
    const H = this.options.maxPositions, K = this.K;
    if (P >= H) return;
    const o = maskOracle(this.spec.mask, this.bindings);
    const found = explore(
      o,
      region([0, K - 1], [0, H - 1], [0, K - 1], [P, H - 1], [1, Infinity]),
      { allowed: true, forbidden: false },
    );
    if (found.allowed) {
      const [qc, qp, kc, kp] = found.allowed;
      throw new RangeError(
        `spec "${this.spec.name}" lets query (copy ${qc}, pos ${qp}) see key (copy ${kc}, pos ${kp}) ` +
          `at a later position past the prompt (${P} tokens): cached decoding cannot change ` +
          `earlier tokens; give a prompt of at least ${kp + 1} tokens`,
      );
    }
  }

  /** Records and submits the prefill of sequence b; returns the host planning time and rows. */
  #prefill(b: number, prompt: number[], scratch: GPUBuffer[]): { planMs: number; rows: number } {
    const t0 = performance.now();
    const { ctx, spec, K } = this, P = prompt.length, cfg = this.params.config;
    const pre = prefillSet(spec, {
      P,
      retention: this.plan,
      bindings: this.bindings,
      causal: spec.bidirectional !== true,
    });
    // Rows: originals by position, then hidden tokens by (position, copy).
    const orig: number[] = [], hid: [number, number][] = [];
    for (const r of pre.perCopy[0]) for (let m = r.lo; m <= r.hi; m++) orig.push(m);
    for (let c = 1; c < K; c++) {
      for (const r of pre.perCopy[c]) for (let m = r.lo; m <= r.hi; m++) hid.push([c, m]);
    }
    hid.sort((x, y) => x[1] - y[1] || x[0] - y[0]);
    const NP = orig.length + hid.length;
    const coords = new Int32Array(2 * NP), rowOf = new Map<number, number>();
    orig.forEach((m, r) => {
      coords[2 * r + 1] = m;
      rowOf.set(m * K, r);
    });
    hid.forEach(([c, m], i) => {
      const r = orig.length + i;
      coords[2 * r] = c;
      coords[2 * r + 1] = m;
      rowOf.set(m * K + c, r);
    });
    const last = rowOf.get((P - 1) * K + K - 1);
    if (last === undefined) throw new Error("internal: the prefill set lacks the last token");
    const infoScratch = new Int32Array(3 * NP), infoCache = new Int32Array(3 * NP);
    const rowPos = new Uint32Array(NP);
    for (let r = 0; r < NP; r++) {
      const c = coords[2 * r], m = coords[2 * r + 1];
      infoScratch.set([c, m, r], 3 * r);
      infoCache.set([c, m, -1], 3 * r);
      rowPos[r] = m;
    }
    for (let n = 0; n < P; n++) this.cache.admit(b, n);
    for (const { slot, copy, pos } of this.cache.live(b)) {
      const r = rowOf.get(pos * K + copy);
      if (r === undefined) {
        throw new Error(
          `internal: key (copy ${copy}, pos ${pos}) stays cached but is not in the prefill set`,
        );
      }
      infoCache[3 * r + 2] = slot;
    }
    this.cache.sync();
    const tile = this.options.prefillTile ?? 32;
    const ranges = prefillRanges(maskOracle(spec.mask, this.bindings), K, coords, {
      tileQ: tile,
      tileK: tile,
    });
    const planMs = performance.now() - t0;

    // GPU buffers of this prefill (destroyed after the first readback).
    const dev = ctx.gpu.device;
    const keep = <T extends GPUBuffer>(x: T) => (scratch.push(x), x);
    const acts = this.#activations(NP, `pre${b}`, keep);
    const width = this.cache.width;
    const f32 = (n: number, label: string) => {
      checkBindingSize(ctx.gpu, n * 4, `${label} (${n} f32)`);
      return keep(storageBuffer(dev, n * 4, label));
    };
    const sk = f32(NP * width, "prefill_k"), sv = f32(NP * width, "prefill_v");
    const scoords = keep(storageBuffer(dev, 2 * NP * 4, "prefill_coords"));
    const ids = keep(storageBuffer(dev, Uint32Array.from(prompt), "prompt"));
    const posBuf = keep(storageBuffer(dev, rowPos, "prefill_pos"));
    const infoS = keep(storageBuffer(dev, infoScratch, "prefill_info"));
    const infoC = keep(storageBuffer(dev, infoCache, "prefill_slots"));
    const rangesBuf = keep(storageBuffer(dev, packRanges(ranges), "prefill_ranges"));
    const lastBuf = keep(storageBuffer(dev, Uint32Array.of(last), "prefill_last"));
    const C = cfg.hidden_size, V = cfg.vocab_size;
    const sel = f32(C, "prefill_sel"), nf = f32(C, "prefill_nf"), rstd = f32(1, "prefill_rstd");
    const logits = f32(V, "prefill_logits");
    const ops: Op[] = [
      expandEmbed(ctx, {
        table: this.params.get("model.embed_tokens.weight"),
        ids,
        pos: posBuf,
        out: acts.x,
      }, { batch: 1, tokens: NP, stride: P, cols: C, tableRows: V }),
    ];
    this.#layers(ops, acts, {
      rows: NP,
      perSeq: NP,
      seqs: 1,
      info: infoS,
      ck: () => sk,
      cv: () => sv,
      coords: scoords,
      slots: NP,
      ranges: rangesBuf,
      tileQ: tile,
      after: (l) =>
        scatterRows(ctx, {
          sk,
          sv,
          info: infoC,
          ck: this.cache.k[l],
          cv: this.cache.v[l],
          coords: this.cache.coords,
        }, { rows: NP, width, slots: this.cache.slots, seq: b }),
    });
    this.#head(ops, acts.x, lastBuf, sel, nf, rstd, logits, 1);
    const run = this.#run!;
    ops.push(
      sample(ctx, {
        logits,
        steps: this.#zeroI,
        forced: run.forced,
        next: this.#next,
        out: run.out,
      }, { rows: 1, seq0: b, vocab: V, maxNew: run.maxNew, outBase: 0, ...run.sampling }),
    );
    const hist = run.hist;
    if (hist) ops.push((e) => e.copyBufferToBuffer(logits, 0, hist, b * V * 4, V * 4));
    const enc = dev.createCommandEncoder({ label: `prefill ${b}` });
    recordOps(enc, ops);
    dev.queue.submit([enc.finish()]);
    for (const op of ops) {
      if (typeof op !== "function") {
        for (const u of op.owned) scratch.push(u);
      }
    }
    return { planMs, rows: NP };
  }

  /** The dispatches of one decode step (replayed every step; rebuilt when the cache grows). */
  #buildDecode(): Dispatch[] {
    const { ctx, K, batch: B } = this, cfg = this.params.config, run = this.#run!;
    const R = B * K, C = cfg.hidden_size, V = cfg.vocab_size;
    const ops: Op[] = [
      expandEmbed(ctx, {
        table: this.params.get("model.embed_tokens.weight"),
        ids: this.#next,
        pos: this.#zerosK,
        out: this.#acts.x,
      }, { batch: B, tokens: K, stride: 1, cols: C, tableRows: V }),
    ];
    this.#layers(ops, this.#acts, {
      rows: R,
      perSeq: K,
      seqs: B,
      info: this.#cur,
      ck: (l) => this.cache.k[l],
      cv: (l) => this.cache.v[l],
      coords: this.cache.coords,
      slots: this.cache.slots,
      ranges: this.#decodeRanges,
      tileQ: this.#decodeTile,
      split: this.#decodeSplit,
    });
    this.#head(
      ops,
      this.#acts.x,
      this.#lastRows,
      this.#sel,
      this.#nf,
      this.#rstdB,
      this.#logits,
      B,
    );
    ops.push(
      sample(ctx, {
        logits: this.#logits,
        steps: this.#cur,
        forced: run.forced,
        next: this.#next,
        out: run.out,
      }, { rows: B, seq0: 0, vocab: V, maxNew: run.maxNew, outBase: 3 * R, ...run.sampling }),
    );
    return ops as Dispatch[];
  }

  /**
   * The transformer blocks over `rows` token rows (R below): keys and values go to `ck(l)`,
   * `cv(l)` at the slots `info` names, attention reads them through `ranges`; the residual
   * stream `a.x` is updated in place.
   */
  #layers(
    ops: Op[],
    a: Acts,
    o: {
      rows: number;
      perSeq: number;
      seqs: number;
      info: GPUBuffer;
      ck: (l: number) => GPUBuffer;
      cv: (l: number) => GPUBuffer;
      coords: GPUBuffer;
      slots: number;
      ranges: GPUBuffer;
      tileQ: number;
      split?: number;
      after?: (l: number) => Dispatch;
    },
  ) {
    const { ctx } = this, cfg = this.params.config, R = o.rows;
    const C = cfg.hidden_size, I = cfg.intermediate_size, d = headDim(cfg);
    const H = cfg.num_attention_heads, HKV = cfg.num_key_value_heads, eps = cfg.rms_norm_eps;
    const mm = (
      trans: MatmulTrans,
      x: GPUBuffer,
      w: GPUBuffer,
      y: GPUBuffer,
      M: number,
      N: number,
      Kd: number,
      beta = 0,
    ) =>
      matmul(ctx, {
        a: x,
        b: w,
        c: y,
        M,
        N,
        K: Kd,
        trans,
        beta,
        params: this.#matmulParams(trans, M, N, Kd),
      });
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const w = (n: string) => this.params.get(`model.layers.${l}.${n}.weight`);
      // n = rmsnorm(x) (R, C); q (R, H·d), k and v (R, HKV·d) = n · Wᵀ
      ops.push(
        rmsnormForward(ctx, { x: a.x, w: w("input_layernorm"), y: a.n, rstd: a.rstd }, {
          rows: R,
          cols: C,
          eps,
        }),
      );
      ops.push(mm("nt", a.n, w("self_attn.q_proj"), a.q, R, H * d, C));
      ops.push(mm("nt", a.n, w("self_attn.k_proj"), a.k, R, HKV * d, C));
      ops.push(mm("nt", a.n, w("self_attn.v_proj"), a.v, R, HKV * d, C));
      // qr (R, H·d) rotated; rotated keys and values into their slots, with their coordinates
      ops.push(
        ropeStore(ctx, {
          q: a.q,
          k: a.k,
          v: a.v,
          info: o.info,
          table: this.#table,
          qr: a.qr,
          ck: o.ck(l),
          cv: o.cv(l),
          coords: o.coords,
        }, {
          rows: R,
          perSeq: o.perSeq,
          heads: H,
          kvHeads: HKV,
          headDim: d,
          slots: o.slots,
          K: this.K,
          flattened: this.spec.positions === "flattened",
        }),
      );
      // att (R, H·d) = the spec's masked attention of the rows against the slots
      ops.push(
        coordAttention(ctx, this.spec, {
          q: a.qr,
          k: o.ck(l),
          v: o.cv(l),
          qinfo: o.info,
          kcoords: o.coords,
          ranges: o.ranges,
          o: a.att,
          tables: this.#tables,
        }, {
          seqs: o.seqs,
          rows: o.perSeq,
          slots: o.slots,
          heads: H,
          kvHeads: HKV,
          headDim: d,
          tileQ: o.tileQ,
          split: o.split,
          bindings: this.bindings,
        }),
      );
      if (o.after) ops.push(o.after(l));
      // x += att · Woᵀ; n = rmsnorm(x); act = silu(n·Wgᵀ) * (n·Wuᵀ) (R, I); x += act · Wdᵀ
      ops.push(mm("nt", a.att, w("self_attn.o_proj"), a.x, R, C, H * d, 1));
      ops.push(
        rmsnormForward(ctx, { x: a.x, w: w("post_attention_layernorm"), y: a.n, rstd: a.rstd }, {
          rows: R,
          cols: C,
          eps,
        }),
      );
      ops.push(mm("nt", a.n, w("mlp.gate_proj"), a.gate, R, I, C));
      ops.push(mm("nt", a.n, w("mlp.up_proj"), a.up, R, I, C));
      ops.push(swigluForward(ctx, { gate: a.gate, up: a.up, out: a.act }, R * I));
      ops.push(mm("nt", a.act, w("mlp.down_proj"), a.x, R, C, I, 1));
    }
  }

  /** sel (rows, C) = x[rowIds]; nf = rmsnorm(sel); logits (rows, V) = nf · headᵀ. */
  #head(
    ops: Op[],
    x: GPUBuffer,
    rowIds: GPUBuffer,
    sel: GPUBuffer,
    nf: GPUBuffer,
    rstd: GPUBuffer,
    logits: GPUBuffer,
    rows: number,
  ) {
    const { ctx } = this, cfg = this.params.config, C = cfg.hidden_size, V = cfg.vocab_size;
    const head = cfg.tie_word_embeddings
      ? this.params.get("model.embed_tokens.weight")
      : this.params.get("lm_head.weight");
    // The table is large enough for any row id (clamped in the kernel); rows are valid here.
    ops.push(
      gather(ctx, { table: x, ids: rowIds, out: sel }, { rows, cols: C, tableRows: 1 << 30 }),
    );
    ops.push(
      rmsnormForward(ctx, { x: sel, w: this.params.get("model.norm.weight"), y: nf, rstd }, {
        rows,
        cols: C,
        eps: cfg.rms_norm_eps,
      }),
    );
    ops.push(
      matmul(ctx, {
        a: nf,
        b: head,
        c: logits,
        M: rows,
        N: V,
        K: C,
        trans: "nt",
        params: this.#matmulParams("nt", rows, V, C),
      }),
    );
  }

  /**
   * The caller's matmul choice, else one row per invocation for the one- or two-row products of
   * batch-1 vanilla decoding (the default 64-row tile computes clamped copies of the row: 1.5x
   * slower per token on llvmpipe); other shapes keep the default.
   */
  #matmulParams(trans: MatmulTrans, M: number, N: number, K: number) {
    if (this.options.matmul) return this.options.matmul({ trans, M, N, K });
    return M <= 2 ? { tm: 1, tn: 8, wgx: 32, wgy: 1 } : undefined;
  }

  #activations(R: number, tag: string, keep = (b: GPUBuffer) => this.#keep(b)): Acts {
    const cfg = this.params.config, d = headDim(cfg), dev = this.ctx.gpu.device;
    const C = cfg.hidden_size, I = cfg.intermediate_size;
    const H = cfg.num_attention_heads, HKV = cfg.num_key_value_heads;
    const f32 = (n: number, label: string) => {
      checkBindingSize(this.ctx.gpu, n * 4, `${tag} ${label} (${n} f32)`);
      return keep(storageBuffer(dev, n * 4, `${tag}_${label}`));
    };
    return {
      x: f32(R * C, "x"),
      n: f32(R * C, "n"),
      rstd: f32(R, "rstd"),
      q: f32(R * H * d, "q"),
      k: f32(R * HKV * d, "k"),
      v: f32(R * HKV * d, "v"),
      qr: f32(R * H * d, "qr"),
      att: f32(R * H * d, "att"),
      gate: f32(R * I, "gate"),
      up: f32(R * I, "up"),
      act: f32(R * I, "act"),
    };
  }

  async #readOut(): Promise<number[][]> {
    const run = this.#run!, B = this.batch;
    const all = new Uint32Array(await readback(this.ctx.gpu.device, run.out, B * run.maxNew * 4));
    return Array.from(
      { length: B },
      (_, b) => Array.from(all.subarray(b * run.maxNew, (b + 1) * run.maxNew)),
    );
  }

  #endRun() {
    if (!this.#run) return;
    this.#run.out.destroy();
    this.#run.forced.destroy();
    this.#run.hist?.destroy();
    this.#run = undefined;
  }

  #keep<T extends GPUBuffer>(b: T): T {
    this.#buffers.push(b);
    return b;
  }

  #alloc(bytes: number, label: string): GPUBuffer {
    return this.#keep(this.#allocRaw(bytes, label));
  }

  #allocRaw(bytes: number, label: string): GPUBuffer {
    checkBindingSize(this.ctx.gpu, bytes, `${label} (${bytes / 4} values)`);
    return storageBuffer(this.ctx.gpu.device, bytes, label);
  }
}

/** The spec's segment tables packed for the mask (undefined when the mask reads none). */
function packTables(spec: AttentionSpec, b: Bindings): Int32Array | undefined {
  if (tableNames(spec).length === 0) return undefined;
  return packSpecBindings(spec, b).tables;
}

/**
 * Generates after each prompt in one batch and returns the tokens and figures; `onTokens` sees
 * every chunk as it arrives (streaming).
 */
export async function generate(
  ctx: KernelContext,
  params: ModelParams,
  spec: AttentionSpec,
  req: GenerateRequest & Omit<DecoderOptions, "batch" | "maxPositions"> & {
    onTokens?: (chunk: TokenChunk) => void;
  },
): Promise<GenerationResult> {
  const longest = Math.max(...req.prompts.map((p) => p.length));
  const dec = new Decoder(ctx, params, spec, {
    ...req,
    batch: req.prompts.length,
    maxPositions: Math.max(1, longest + req.maxNewTokens - 1),
  });
  try {
    const tokens: number[][] = req.prompts.map(() => []);
    for await (const chunk of dec.generate(req)) {
      chunk.tokens.forEach((t, b) => tokens[b].push(...t));
      req.onTokens?.(chunk);
    }
    return { tokens, stats: dec.stats };
  } finally {
    dec.destroy();
  }
}

/**
 * One prompt's new tokens, one at a time as they reach the host: a drop-in for
 * `generateByRecompute` (runtime/infer/recompute.ts) that uses the KV cache. `L` is accepted for that
 * signature and ignored: the cache holds the whole text (no sliding window).
 */
export async function* generateCached(
  ctx: KernelContext,
  params: ModelParams,
  spec: AttentionSpec,
  o: {
    prompt: ArrayLike<number>;
    maxNew: number;
    L?: number;
    sampling?: SamplingOptions;
    stepsPerSubmit?: number;
  },
): AsyncGenerator<number> {
  const dec = new Decoder(ctx, params, spec, {
    maxPositions: Math.max(1, o.prompt.length + o.maxNew - 1),
    stepsPerSubmit: o.stepsPerSubmit,
  });
  try {
    for await (
      const chunk of dec.generate({
        prompts: [o.prompt],
        maxNewTokens: o.maxNew,
        sampling: o.sampling,
      })
    ) {
      yield* chunk.tokens[0];
    }
  } finally {
    dec.destroy();
  }
}
