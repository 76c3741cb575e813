/**
 * Cached generation for PHD transformers (docs/DESIGN.md 1.4): `Decoder` owns a KV cache for a
 * batch of sequences, the decode step's buffers and dispatches, and records each prompt's prefill.
 * The blocks are runtime/model/block.ts with the cached attention step of
 * runtime/infer/cached_attention.ts; prefill rows come from runtime/infer/prefill_plan.ts.
 *
 * - Prefill (per prompt): the planned rows run through the model as one batch; their keys go to
 *   scratch slots (one per row) that prefill attention reads, and after each layer the keys the
 *   retention plan keeps are scattered into their cache slots; the last copy of the last
 *   position gives the first new token.
 * - Decode step: `next[seq]` (written by the sampler) -> embedding of K rows per sequence (copy c's
 *   table with per-copy embeddings, `ModelParams.embedRowBase`) -> each
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
import { planRetention, type RetentionPlan } from "../../compiler/analysis/retention.ts";
import { checkBindingSize, gpuLimits } from "../gpu/device.ts";
import { readback, storageBuffer } from "../gpu/resources.ts";
import type { Dispatch, KernelContext } from "../gpu/kernel.ts";
import { decodeMatmul, type MatmulChooser } from "../kernels/matmul.ts";
import { rmsnormForward } from "../kernels/rmsnorm.ts";
import { ropeTable } from "../kernels/rope.ts";
import { gather } from "../kernels/embedding.ts";
import { expandEmbed } from "../kernels/phd.ts";
import { packRanges } from "../../compiler/codegen/coord_attention.ts";
import { scatterRows } from "../kernels/kv_write.ts";
import { sample, type SampleParams } from "../kernels/sample.ts";
import { blockForward, type BlockModel, modelMatmul } from "../model/block.ts";
import { destroyOps, type Op, recordOps } from "../model/ops.ts";
import { headDim, type ModelParams } from "../model/params.ts";
import {
  type CachedActs,
  cachedAttention,
  type CachedModel,
  type CachedRows,
  decodeTiling,
  maskTables,
} from "./cached_attention.ts";
import { KvCache, type KvStats } from "./kv_cache.ts";
import { cacheSlots, checkFutureFree, planPrefill } from "./prefill_plan.ts";

/** How to pick the next token from logits (on the GPU: runtime/kernels/sample.ts). */
export interface SamplingOptions {
  /** 0 (default) is greedy. */
  temperature?: number;
  /** Keep the k most likely tokens (0: all). */
  topK?: number;
  /** Keep the smallest set with this much probability (1: all). */
  topP?: number;
  /** Seed of the draw's hash (as u32): the same seed gives the same text. Default 0. */
  seed?: number;
}

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
  /**
   * The spec's retention plan under `bindings` over at least `maxPositions` positions, when the
   * caller has it (`generate` sizing the cache before allocating): one plan per decode. Default:
   * derived here.
   */
  plan?: RetentionPlan;
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
  /** The KV cache's figures at the end of the generation. */
  kv: KvStats;
}

/**
 * Cached generation for one model and spec: a KV cache for `batch` sequences of up to
 * `maxPositions` positions, the decode step's buffers and dispatches, and prefill on demand.
 * Reusable: each `generate` starts from an empty cache.
 */
export class Decoder {
  /** PHD copies per position (the spec's K). */
  readonly copies: number;
  /** Sequences generated together (`DecoderOptions.batch`, default 1). */
  readonly batch: number;
  /** The KV cache of every sequence. */
  readonly cache: KvCache;
  /** The spec's retention plan over `maxPositions` positions: which keys the cache keeps. */
  readonly plan: RetentionPlan;
  /** Runtime parameter values of the spec (`DecoderOptions.bindings`, else the spec's). */
  readonly bindings: Bindings;
  /** Decode steps recorded per submit (default 16). */
  readonly stepsPerSubmit: number;
  #model: BlockModel;
  #attn: CachedModel;
  #buffers: GPUBuffer[] = [];
  #acts: CachedActs;
  #next: GPUBuffer;
  #cur: GPUBuffer;
  #sched: GPUBuffer;
  #stride: number;
  #zerosK: GPUBuffer;
  #rowBaseK?: GPUBuffer;
  #zeroI: GPUBuffer;
  #lastRows: GPUBuffer;
  #decodeRanges: GPUBuffer;
  #sel: GPUBuffer;
  #nf: GPUBuffer;
  #rstdB: GPUBuffer;
  #logits: GPUBuffer;
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

  /** Allocates the KV cache and the decode step's buffers; throws on a size below 1. */
  constructor(
    readonly ctx: KernelContext,
    readonly params: ModelParams,
    readonly spec: AttentionSpec,
    readonly options: DecoderOptions,
  ) {
    const cfg = params.config, K = this.copies = spec.K, B = this.batch = options.batch ?? 1;
    const maxPos = options.maxPositions;
    for (const [k, v] of [["batch", B], ["maxPositions", maxPos]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be >= 1, got ${v}`);
    }
    this.stepsPerSubmit = options.stepsPerSubmit ?? 16;
    if (!Number.isInteger(this.stepsPerSubmit) || this.stepsPerSubmit < 1) {
      throw new RangeError(`stepsPerSubmit must be >= 1, got ${this.stepsPerSubmit}`);
    }
    this.bindings = options.bindings ?? specBindings(spec);
    this.plan = options.plan ?? planRetention(spec, { L: maxPos, bindings: this.bindings });
    this.cache = new KvCache(ctx, spec, cfg, {
      seqs: B,
      horizon: maxPos,
      initialSlots: options.initialSlots,
      bindings: this.bindings,
      plan: this.plan,
    });
    // The caller's matmul choice, else `decodeMatmul` for the one- or two-row products of batch-1
    // vanilla decoding; other shapes keep the default.
    const limits = gpuLimits(ctx.gpu);
    const choose: MatmulChooser = options.matmul ??
      ((s) => s.M <= 2 ? decodeMatmul(ctx.gpu.adapterClass, s, limits) : undefined);
    this.#model = { ctx, params, mm: modelMatmul(ctx, choose) };
    const dev = ctx.gpu.device, d = headDim(cfg);
    const positions = spec.positions === "flattened" ? maxPos * K : maxPos;
    const tables = maskTables(spec, this.bindings);
    this.#attn = {
      ctx,
      spec,
      bindings: this.bindings,
      config: cfg,
      rope: this.#keep(storageBuffer(dev, ropeTable(positions, d, cfg.rope_theta), "rope")),
      maskTables: tables && this.#keep(storageBuffer(dev, tables, "mask_tables")),
    };
    const R = B * K;
    this.#acts = this.#activations(R, "dec");
    this.#next = this.#alloc(B * 4, "next");
    this.#stride = 3 * R + B;
    this.#cur = this.#alloc(this.#stride * 4, "step");
    this.#sched = this.#alloc(this.stepsPerSubmit * this.#stride * 4, "schedule");
    this.#zerosK = this.#keep(storageBuffer(dev, new Uint32Array(K), "zeros_k"));
    // Per-copy embedding tables: decode row seq·K + c reads copy c's table.
    const base = params.embedRowBase(K, Array.from({ length: K }, (_, c) => c));
    this.#rowBaseK = base && this.#keep(storageBuffer(dev, base, "row_base_k"));
    this.#zeroI = this.#keep(storageBuffer(dev, new Int32Array(4), "zero"));
    this.#lastRows = this.#keep(
      storageBuffer(dev, Uint32Array.from({ length: B }, (_, b) => b * K + K - 1), "last_rows"),
    );
    const tiling = decodeTiling(K, d, { adapterClass: ctx.gpu.adapterClass, limits });
    this.#decodeTile = tiling.tileQ;
    this.#decodeSplit = tiling.split;
    this.#decodeRanges = this.#keep(
      storageBuffer(dev, packRanges(tiling.ranges), "decode_ranges"),
    );
    const C = cfg.hidden_size, V = cfg.vocab_size;
    this.#sel = this.#alloc(B * C * 4, "sel");
    this.#nf = this.#alloc(B * C * 4, "nf");
    this.#rstdB = this.#alloc(B * 4, "rstd_b");
    this.#logits = this.#alloc(B * V * 4, "logits");
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
    const prompts = this.#checkRequest(req), B = this.batch, maxNew = req.maxNewTokens;
    this.#startRun(req);

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
      this.#submitSteps(prompts, i, T);
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

  /** Frees the GPU buffers, the KV cache's included; the decoder is unusable after. */
  destroy(): void {
    this.#endRun();
    destroyOps(this.#decode);
    this.#decode = [];
    for (const b of this.#buffers) b.destroy();
    this.cache.destroy();
  }

  // ---- internals ----

  /**
   * The request's prompts as arrays, after checking them against the decoder (batch, vocabulary,
   * positions, a mask free of the future at each prompt's length) and the forced tokens' count.
   */
  #checkRequest(req: GenerateRequest): number[][] {
    const B = this.batch, V = this.params.config.vocab_size;
    const maxNew = req.maxNewTokens, maxPos = this.options.maxPositions;
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
      if (a.length + maxNew - 1 > maxPos) {
        throw new RangeError(
          `prompt ${b} (${a.length} tokens) + ${maxNew} new tokens needs ${
            a.length + maxNew - 1
          } positions, the decoder holds ${maxPos}`,
        );
      }
      checkFutureFree(this.spec, this.bindings, { P: a.length, horizon: maxPos });
      return a;
    });
    if (req.force && (req.force.length !== B || req.force.some((f) => f.length < maxNew))) {
      throw new RangeError(`force needs ${maxNew} tokens for each of the ${B} sequences`);
    }
    return prompts;
  }

  /** Ends the last run and sets up this one: output, forced tokens, logits history, empty cache. */
  #startRun(req: GenerateRequest): void {
    const B = this.batch, V = this.params.config.vocab_size, maxNew = req.maxNewTokens;
    const sampling = sampleParams(req);
    this.#endRun();
    destroyOps(this.#decode);
    this.#decode = [];
    const dev = this.ctx.gpu.device;
    const forced = new Uint32Array(B * maxNew);
    req.force?.forEach((f, b) => forced.set(Array.from(f).slice(0, maxNew), b * maxNew));
    this.#run = {
      maxNew,
      out: storageBuffer(dev, B * maxNew * 4, "out_tokens"),
      forced: storageBuffer(dev, forced, "forced_tokens"),
      hist: req.keepLogits ? this.#allocRaw(maxNew * B * V * 4, "logits_history") : undefined,
      sampling,
    };
    this.cache.reset();
  }

  /**
   * Records and submits decode steps `i .. i + T - 1` in one command buffer: admits each step's
   * keys to the cache (growing it, and rebuilding the decode pass, when it needs more slots),
   * uploads the steps' schedule (copy, position, slot of each row; the step of each sequence)
   * and copies each step's logits to the history when the run keeps them.
   */
  #submitSteps(prompts: number[][], i: number, T: number): void {
    const B = this.batch, K = this.copies, V = this.params.config.vocab_size;
    const dev = this.ctx.gpu.device, stride = this.#stride;
    const sched = new Int32Array(T * stride);
    for (let s = 0; s < T; s++) {
      const rec = sched.subarray(s * stride, (s + 1) * stride);
      for (let b = 0; b < B; b++) {
        const n = prompts[b].length + i + s - 1;
        const slots = this.cache.admit(b, n);
        for (let c = 0; c < K; c++) rec.set([c, n, slots[c]], 3 * (b * K + c));
        rec[3 * B * K + b] = i + s;
      }
    }
    if (this.cache.sync()) {
      destroyOps(this.#decode);
      this.#decode = this.#buildDecode();
    }
    dev.queue.writeBuffer(this.#sched, 0, sched);
    const enc = dev.createCommandEncoder({ label: "decode" });
    const bytes = stride * 4, hist = this.#run?.hist;
    for (let s = 0; s < T; s++) {
      const ops: Op[] = [
        (e) => e.copyBufferToBuffer(this.#sched, s * bytes, this.#cur, 0, bytes),
        ...this.#decode,
      ];
      if (hist) {
        const at = (i + s) * B * V * 4;
        ops.push((e) => e.copyBufferToBuffer(this.#logits, 0, hist, at, B * V * 4));
      }
      recordOps(enc, ops);
    }
    dev.queue.submit([enc.finish()]);
  }

  /** Records and submits the prefill of sequence b; returns the host planning time and rows. */
  #prefill(b: number, prompt: number[], scratch: GPUBuffer[]): { planMs: number; rows: number } {
    const t0 = performance.now();
    const { ctx, spec } = this, P = prompt.length, cfg = this.params.config;
    const tile = this.options.prefillTile ?? 32;
    const pre = planPrefill(spec, { P, retention: this.plan, bindings: this.bindings, tile });
    for (let n = 0; n < P; n++) this.cache.admit(b, n);
    const slots = cacheSlots(pre, this.cache.live(b));
    this.cache.sync();
    const planMs = performance.now() - t0;

    // GPU buffers of this prefill (destroyed after the first readback).
    const dev = ctx.gpu.device, NP = pre.count;
    const keep = <T extends GPUBuffer>(x: T) => (scratch.push(x), x);
    const acts = this.#activations(NP, `pre${b}`, keep);
    const width = this.cache.width;
    const f32 = (n: number, label: string) => {
      checkBindingSize(ctx.gpu, n * 4, `${label} (${n} f32)`);
      return keep(storageBuffer(dev, n * 4, label));
    };
    // Scratch K/V with one slot per row: the rows' own keys, which prefill attention reads.
    const sk = f32(NP * width, "prefill_k"), sv = f32(NP * width, "prefill_v");
    const scoords = keep(storageBuffer(dev, 2 * NP * 4, "prefill_coords"));
    const ids = keep(storageBuffer(dev, Uint32Array.from(prompt), "prompt"));
    const posBuf = keep(storageBuffer(dev, pre.pos, "prefill_pos"));
    const infoS = keep(storageBuffer(dev, pre.info, "prefill_info"));
    const infoC = keep(storageBuffer(dev, slots, "prefill_slots"));
    const rangesBuf = keep(storageBuffer(dev, packRanges(pre.ranges), "prefill_ranges"));
    const lastBuf = keep(storageBuffer(dev, Uint32Array.of(pre.last), "prefill_last"));
    const base = this.params.embedRowBase(this.copies, pre.coords.filter((_, i) => i % 2 === 0));
    const rowBase = base && keep(storageBuffer(dev, base, "prefill_row_base"));
    const C = cfg.hidden_size, V = cfg.vocab_size;
    const sel = f32(C, "prefill_sel"), nf = f32(C, "prefill_nf"), rstd = f32(1, "prefill_rstd");
    const logits = f32(V, "prefill_logits");
    const ops: Op[] = [
      expandEmbed(ctx, {
        table: this.params.get("model.embed_tokens.weight"),
        ids,
        pos: posBuf,
        rowBase,
        out: acts.x,
      }, { batch: 1, tokens: NP, stride: P, cols: C, tableRows: V }),
      ...this.#blocks(acts, NP, {
        seqs: 1,
        perSeq: NP,
        info: infoS,
        ck: () => sk,
        cv: () => sv,
        coords: scoords,
        slots: NP,
        ranges: rangesBuf,
        tileQ: tile,
        // the keys that stay go from scratch to their cache slots (with their tags)
        after: (l) =>
          scatterRows(ctx, {
            sk,
            sv,
            info: infoC,
            ck: this.cache.k[l],
            cv: this.cache.v[l],
            coords: this.cache.coords,
          }, { rows: NP, width, slots: this.cache.slots, seq: b }),
      }),
      ...this.#head(acts.x, lastBuf, { sel, nf, rstd, logits }, 1),
    ];
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
      if (typeof op !== "function") scratch.push(...op.owned);
    }
    return { planMs, rows: NP };
  }

  /** The dispatches of one decode step (replayed every step; rebuilt when the cache grows). */
  #buildDecode(): Dispatch[] {
    const { ctx, copies: K, batch: B } = this, cfg = this.params.config, run = this.#run!;
    const R = B * K, C = cfg.hidden_size, V = cfg.vocab_size;
    const ops: Op[] = [
      expandEmbed(ctx, {
        table: this.params.get("model.embed_tokens.weight"),
        ids: this.#next,
        pos: this.#zerosK,
        rowBase: this.#rowBaseK,
        out: this.#acts.x,
      }, { batch: B, tokens: K, stride: 1, cols: C, tableRows: V }),
      ...this.#blocks(this.#acts, R, {
        seqs: B,
        perSeq: K,
        info: this.#cur,
        ck: (l) => this.cache.k[l],
        cv: (l) => this.cache.v[l],
        coords: this.cache.coords,
        slots: this.cache.slots,
        ranges: this.#decodeRanges,
        tileQ: this.#decodeTile,
        split: this.#decodeSplit,
      }),
      ...this.#head(this.#acts.x, this.#lastRows, {
        sel: this.#sel,
        nf: this.#nf,
        rstd: this.#rstdB,
        logits: this.#logits,
      }, B),
      sample(ctx, {
        logits: this.#logits,
        steps: this.#cur,
        forced: run.forced,
        next: this.#next,
        out: run.out,
      }, { rows: B, seq0: 0, vocab: V, maxNew: run.maxNew, outBase: 3 * R, ...run.sampling }),
    ];
    return ops as Dispatch[];
  }

  /** Every block over `rows` rows, the residual stream `a.x` updated in place. */
  #blocks(a: CachedActs, rows: number, at: CachedRows): Op[] {
    const attention = cachedAttention(this.#attn, at);
    return Array.from(
      { length: this.params.config.num_hidden_layers },
      (_, layer) => blockForward(this.#model, { layer, rows, acts: a, attention }),
    ).flat();
  }

  /** sel (rows, C) = x[rowIds]; nf = rmsnorm(sel); logits (rows, V) = nf · headᵀ. */
  #head(
    x: GPUBuffer,
    rowIds: GPUBuffer,
    o: { sel: GPUBuffer; nf: GPUBuffer; rstd: GPUBuffer; logits: GPUBuffer },
    rows: number,
  ): Op[] {
    const { ctx } = this, cfg = this.params.config, C = cfg.hidden_size, V = cfg.vocab_size;
    return [
      // The table is large enough for any row id (clamped in the kernel); rows are valid here.
      gather(ctx, { table: x, ids: rowIds, out: o.sel }, { rows, cols: C, tableRows: 1 << 30 }),
      rmsnormForward(ctx, {
        x: o.sel,
        w: this.params.get("model.norm.weight"),
        y: o.nf,
        rstd: o.rstd,
      }, { rows, cols: C, eps: cfg.rms_norm_eps }),
      this.#model.mm("lm_head", "nt", o.nf, this.params.head, o.logits, rows, V, C),
    ];
  }

  /** One residual stream, one norm output: decoding reads neither again once overwritten. */
  #activations(R: number, tag: string, keep = (b: GPUBuffer) => this.#keep(b)): CachedActs {
    const cfg = this.params.config, d = headDim(cfg), dev = this.ctx.gpu.device;
    const C = cfg.hidden_size, I = cfg.intermediate_size;
    const H = cfg.num_attention_heads, HKV = cfg.num_key_value_heads;
    const f32 = (n: number, label: string) => {
      checkBindingSize(this.ctx.gpu, n * 4, `${tag} ${label} (${n} f32)`);
      return keep(storageBuffer(dev, n * 4, `${tag}_${label}`));
    };
    const x = f32(R * C, "x"), n = f32(R * C, "n"), rstd = f32(R, "rstd");
    return {
      x,
      n1: n,
      rstd1: rstd,
      q: f32(R * H * d, "q"),
      k: f32(R * HKV * d, "k"),
      v: f32(R * HKV * d, "v"),
      qr: f32(R * H * d, "qr"),
      att: f32(R * H * d, "att"),
      x2: x,
      n2: n,
      rstd2: rstd,
      gate: f32(R * I, "gate"),
      up: f32(R * I, "up"),
      act: f32(R * I, "act"),
      out: x,
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

/** The sampler's mode for a request: forced tokens, a seeded draw, or greedy (temperature 0). */
function sampleParams(req: GenerateRequest): SampleParams {
  const s = req.sampling ?? {}, t = s.temperature ?? 0;
  if (req.force) return { mode: "forced" };
  if (!(t > 0)) return { mode: "greedy" };
  return {
    mode: "sample",
    temperature: t,
    topK: s.topK ?? 0,
    topP: s.topP ?? 1,
    seed: s.seed ?? 0,
  };
}
