/**
 * The KV cache of cached decoding, driven by the compiler's retention plan (never by preset
 * names): per layer one K and one V buffer laid out `[sequence][slot][kvHead][d]`, preallocated and
 * written at slot offsets, plus one `(copy, pos)` tag per slot shared by every layer (the decode
 * kernel evaluates the spec's mask on it). Slots are handed out by `KvSlots` (runtime/infer/kv_slots.ts)
 * from each key's lifetime in the plan: a key keeps its slot while a later query may read it,
 * so originals stay for the whole sequence, PHD's hidden keys leave as soon as their position is
 * done, PHD-SWA keeps a rolling window of W-1 hidden keys, PHD-CSWA empties it at chunk boundaries,
 * and any other spec gets whatever its plan says.
 *
 * A freed slot is not cleared: its key is one no later query reads (that is what its lifetime
 * means), so the mask rules it out until a new key overwrites it. When a sequence needs more slots
 * the buffers grow (doubling) and the old contents are copied over on the GPU. Browser-safe.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import { type Bindings, specBindings } from "../../dsl/eval.ts";
import { planRetention, type RetentionPlan } from "../../compiler/analysis/retention.ts";
import type { ModelConfig } from "../model/config.ts";
import { checkBindingSize } from "../gpu/device.ts";
import { storageBuffer } from "../gpu/resources.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import { KvSlots } from "./kv_slots.ts";
import { headDim } from "../model/params.ts";

/** What the cache holds, for reports (`kv_cache_bytes` of `deno task generate`). */
export interface KvStats {
  /** Original (copy 0) keys cached after the last position, summed over sequences. */
  originals: number;
  /** Most hidden (copy >= 1) keys kept between positions (per sequence, summed). */
  hiddenWindow: number;
  /** Most keys kept between positions (per sequence, summed): the cache's real size. */
  retainedTokens: number;
  /** Bytes of K and V of `retainedTokens` keys over all layers (f32). */
  bytes: number;
  /** Bytes of one key: K and V, every layer and KV head. */
  bytesPerToken: number;
  /**
   * Most keys live during a position (its K copies are all stored before its queries run, so
   * this is `retainedTokens` plus the copies of one position that do not stay).
   */
  peakTokens: number;
  /** Slots allocated per sequence. */
  slots: number;
  /** Bytes of the K and V buffers as allocated. */
  allocatedBytes: number;
  /** Positions cached per sequence. */
  positions: number[];
  /** The plan's capacity formula, e.g. `L + 15`. */
  formula: string;
}

interface SeqState {
  kv: KvSlots;
  /** Copy held by each slot (valid while the slot is live). */
  copyOf: number[];
  original: number;
  hidden: number;
  retainedPeak: number;
  hiddenPeak: number;
  livePeak: number;
  positions: number;
}

/** Bytes of one cached key of a model: K and V of every layer and KV head, f32. */
export function kvBytesPerKey(c: ModelConfig): number {
  return 2 * c.num_hidden_layers * c.num_key_value_heads * headDim(c) * 4;
}

/** Options of a cache. */
export interface KvCacheOptions {
  /** Sequences (the batch). */
  seqs: number;
  /** Positions per sequence the plan covers (prompt plus generated tokens). */
  horizon: number;
  /** Slots per sequence allocated up front (grows by doubling). Default 64. */
  initialSlots?: number;
  /** Parameter values of the spec. Default: the spec's. */
  bindings?: Bindings;
  /** A retention plan of the spec for `horizon` positions, when the caller already has one. */
  plan?: RetentionPlan;
}

/** Per-layer K/V buffers and slot bookkeeping for a batch of sequences. */
export class KvCache {
  /** The retention plan that decides which keys stay cached. */
  readonly plan: RetentionPlan;
  /** Copies per position (the spec's K). */
  readonly K: number;
  /** Decoder layers (one K and one V buffer each). */
  readonly layers: number;
  /** Floats per key and layer: kvHeads · d. */
  readonly width: number;
  /** Per layer: keys `[seqs][slots][kvHeads][d]` f32 (rotated by RoPE) and values. */
  k: GPUBuffer[] = [];
  /** Per layer: values, laid out as `k`. */
  v: GPUBuffer[] = [];
  /** `[seqs][slots][2]` i32: `(copy, pos)` of each slot's key, `(-1, -1)` before first use. */
  coords!: GPUBuffer;
  /** Slots per sequence of the GPU buffers. */
  slots: number;
  #seqs: SeqState[] = [];

  /** An empty cache for `spec` on `config`'s shapes; throws when `options.plan` is too short. */
  constructor(
    readonly ctx: KernelContext,
    readonly spec: AttentionSpec,
    readonly config: ModelConfig,
    readonly options: KvCacheOptions,
  ) {
    const { seqs, horizon } = options;
    for (const [k, v] of [["seqs", seqs], ["horizon", horizon]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be >= 1, got ${v}`);
    }
    this.K = spec.K;
    this.layers = config.num_hidden_layers;
    this.width = config.num_key_value_heads * headDim(config);
    this.plan = options.plan ??
      planRetention(spec, { L: horizon, bindings: options.bindings ?? specBindings(spec) });
    if (this.plan.L < horizon) {
      throw new RangeError(`retention plan covers ${this.plan.L} positions < horizon ${horizon}`);
    }
    this.slots = Math.max(1, options.initialSlots ?? 64);
    this.#allocate(this.slots);
    this.reset();
  }

  /** Sequences of the batch. */
  get seqs(): number {
    return this.options.seqs;
  }

  /** Forgets every sequence (new prompts): all slots free, every tag `(-1, -1)`. */
  reset(): void {
    const life = this.#lifetime();
    this.#seqs = Array.from({ length: this.seqs }, () => ({
      kv: new KvSlots(this.K, this.slots, life),
      copyOf: [],
      original: 0,
      hidden: 0,
      retainedPeak: 0,
      hiddenPeak: 0,
      livePeak: 0,
      positions: 0,
    }));
    this.ctx.gpu.device.queue.writeBuffer(
      this.coords,
      0,
      new Int32Array(2 * this.seqs * this.slots).fill(-1),
    );
  }

  /**
   * Stores position n of sequence seq (positions come in order from 0): returns the slot of each
   * of its K copies, and frees the slots whose keys no query after n reads. Host bookkeeping only:
   * call `sync` before recording GPU work that uses the slots.
   */
  admit(seq: number, n: number): Int32Array {
    const st = this.#seqs[seq];
    if (!st) throw new RangeError(`sequence ${seq} is outside the batch of ${this.seqs}`);
    if (n !== st.positions) {
      throw new RangeError(`sequence ${seq}: position ${n} admitted after ${st.positions - 1}`);
    }
    if (n >= this.plan.L) {
      throw new RangeError(`position ${n} is past the cache's horizon of ${this.plan.L}`);
    }
    const step = st.kv.admit(n);
    for (let c = 0; c < this.K; c++) {
      st.copyOf[step.slots[c]] = c;
      if (c === 0) st.original++;
      else st.hidden++;
    }
    st.livePeak = Math.max(st.livePeak, st.original + st.hidden);
    for (const s of step.freed) {
      if (st.copyOf[s] === 0) st.original--;
      else st.hidden--;
    }
    st.retainedPeak = Math.max(st.retainedPeak, st.original + st.hidden);
    st.hiddenPeak = Math.max(st.hiddenPeak, st.hidden);
    st.positions++;
    return step.slots;
  }

  /** `(copy, pos)` of every live slot of a sequence (host view). */
  live(seq: number): { slot: number; copy: number; pos: number }[] {
    const c = this.#seqs[seq].kv.coords, out = [];
    for (let s = 0; s < c.length / 2; s++) {
      if (c[2 * s] >= 0) out.push({ slot: s, copy: c[2 * s], pos: c[2 * s + 1] });
    }
    return out;
  }

  /**
   * Grows the GPU buffers to the slots the bookkeeping now uses, copying the cached keys. Returns
   * true when the buffers changed (dispatches bound to the old ones must be rebuilt).
   */
  sync(): boolean {
    const need = Math.max(...this.#seqs.map((s) => s.kv.capacity));
    if (need <= this.slots) return false;
    const dev = this.ctx.gpu.device, old = { k: this.k, v: this.v, coords: this.coords };
    const oldSlots = this.slots;
    this.#allocate(need);
    dev.queue.writeBuffer(this.coords, 0, new Int32Array(2 * this.seqs * need).fill(-1));
    const enc = dev.createCommandEncoder({ label: "kv_cache_grow" });
    const row = this.width * 4;
    for (let b = 0; b < this.seqs; b++) {
      for (let l = 0; l < this.layers; l++) {
        for (const [src, dst] of [[old.k[l], this.k[l]], [old.v[l], this.v[l]]]) {
          enc.copyBufferToBuffer(src, b * oldSlots * row, dst, b * need * row, oldSlots * row);
        }
      }
      enc.copyBufferToBuffer(old.coords, b * oldSlots * 8, this.coords, b * need * 8, oldSlots * 8);
    }
    dev.queue.submit([enc.finish()]);
    for (const x of [...old.k, ...old.v, old.coords]) x.destroy();
    return true;
  }

  /** Bytes of one cached key over all layers (K and V, f32). */
  get bytesPerToken(): number {
    return kvBytesPerKey(this.config);
  }

  /** What the cache holds and held. */
  stats(): KvStats {
    const sum = (f: (s: SeqState) => number) => this.#seqs.reduce((a, s) => a + f(s), 0);
    const retainedTokens = sum((s) => s.retainedPeak);
    return {
      originals: sum((s) => s.original),
      hiddenWindow: sum((s) => s.hiddenPeak),
      retainedTokens,
      bytes: retainedTokens * this.bytesPerToken,
      bytesPerToken: this.bytesPerToken,
      peakTokens: sum((s) => s.livePeak),
      slots: this.slots,
      allocatedBytes: this.seqs * this.slots * this.bytesPerToken,
      positions: this.#seqs.map((s) => s.positions),
      formula: this.plan.formula,
    };
  }

  /** Frees the GPU buffers. */
  destroy(): void {
    for (const x of [...this.k, ...this.v, this.coords]) x.destroy();
  }

  #lifetime(): (c: number, m: number) => number {
    const { plan } = this;
    return (c, m) => plan.perCopy[c].kind === "all" ? Infinity : plan.lifetime[c * plan.L + m];
  }

  #allocate(slots: number) {
    const dev = this.ctx.gpu.device, bytes = this.seqs * slots * this.width * 4;
    checkBindingSize(
      this.ctx.gpu,
      bytes,
      `KV cache layer [${this.seqs}, ${slots}, ${this.width}] f32`,
    );
    this.k = Array.from({ length: this.layers }, (_, l) => storageBuffer(dev, bytes, `kv_k${l}`));
    this.v = Array.from({ length: this.layers }, (_, l) => storageBuffer(dev, bytes, `kv_v${l}`));
    this.coords = storageBuffer(dev, this.seqs * slots * 8, "kv_coords");
    this.slots = slots;
  }
}
