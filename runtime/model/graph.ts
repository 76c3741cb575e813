/**
 * The PHD transformer of docs/DESIGN.md 1.3 for training and evaluation, in the spirit of llm.c:
 * activations are a named table of buffers per layer and a whole step is recorded on one command
 * encoder. `ModelGraph` owns the activations and the prepared dispatches for one batch shape
 * (batch, L); with `training` it also owns the gradients and the backward pass. It reads as:
 * index tables, forward (embedding, blocks), head and loss, backward (head, blocks in reverse,
 * embedding). The block's forward and backward are runtime/model/block.ts (the forward shared
 * with decoding); its attention step here is RoPE into head-major buffers and FlashAttention
 * (runtime/kernels/attention.ts), forward and backward.
 *
 * Rows of every activation are tokens in the attention layout's storage order (interleaved
 * `p*K + c`, or grouped `[originals | hidden]`): everything but attention is per token, so only
 * the position ids, the expansion and the loss rows need to know the layout. Browser-safe.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Bindings } from "../../dsl/eval.ts";
import { type Layout, storageIndex } from "../../compiler/layout.ts";
import { type AttentionConfig, type AttentionRun, FlashAttention } from "../kernels/attention.ts";
import type { AttentionChooser } from "../kernels/attention.ts";
import { checkBindingSize } from "../gpu/device.ts";
import { readback, storageBuffer, upload } from "../gpu/resources.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import type { MatmulChooser, MatmulShape } from "../kernels/matmul.ts";
import { rmsnormBackward, rmsnormForward } from "../kernels/rmsnorm.ts";
import { ropeBackward, ropeForward, ropeTable } from "../kernels/rope.ts";
import { gather, rowIndex, scatterAdd } from "../kernels/embedding.ts";
import { crossEntropy } from "../kernels/cross_entropy.ts";
import { expandEmbed, foldCopies, lossSum } from "../kernels/phd.ts";
import { headDim, type ModelParams, numel } from "./params.ts";
import {
  type BlockActs,
  blockBackward,
  blockForward,
  type BlockGrads,
  type BlockModel,
  type ModelMatmul,
  modelMatmul,
} from "./block.ts";
import { destroyOps, type Op, recordOps } from "./ops.ts";

/** Shape and choices of a graph. */
export interface GraphOptions {
  /** Sequences per batch. */
  batch: number;
  /** Positions per sequence (the expanded sequence has K·L tokens). */
  L: number;
  /** Build the backward pass and gradient buffers. Default false. */
  training?: boolean;
  /** Attention kernel choices (layout, variant, tiles). Default: fused, interleaved. */
  attention?: Omit<AttentionConfig, "headDim">;
  /** Matmul blocking per product. */
  matmul?: MatmulChooser;
  /**
   * Attention variant (tiles, register blocks, staging, fused or dense) for this graph's problem
   * (the autotuner's hook; the layout stays `attention.layout`). Undefined, or a result of
   * undefined, keeps the default; ignored when `attention` sets any of those knobs itself.
   */
  attentionChooser?: AttentionChooser;
  /**
   * The positions whose predictions the loss scores (in order; default all L). A spec whose
   * predictions can see their targets trains on the others only (compiler/analysis/leaks.ts).
   */
  lossPositions?: readonly number[];
}

/** A layer's training activations: the block's, plus the head-major attention tensors. */
interface LayerActs extends BlockActs {
  /** Head-major attention inputs/outputs (B, H|HKV, N, d) and the row log-sum-exp (B, H, N). */
  qh: GPUBuffer;
  kh: GPUBuffer;
  vh: GPUBuffer;
  oh: GPUBuffer;
  lse: GPUBuffer;
}

/** The head's activations the backward reads. */
interface HeadActs {
  /** The last block's output (R, C). */
  x: GPUBuffer;
  /** Final rmsnorm (R, C), its 1/rms (R), the last copy's rows (M, C), dlogits (M, V). */
  nf: GPUBuffer;
  rstdf: GPUBuffer;
  sel: GPUBuffer;
  dlogits: GPUBuffer;
}

/** Head-major gradient scratch of the attention backward (shared by every layer). */
interface AttentionScratch {
  /** d oh (B, H, N, d), delta = rowsum(dO·O) (B, H, N), dqh (B, H, N, d), dkh, dvh (B, HKV, N, d). */
  dOh: GPUBuffer;
  delta: GPUBuffer;
  dqh: GPUBuffer;
  dkh: GPUBuffer;
  dvh: GPUBuffer;
}

/** A graph's dimensions and the pieces every pass uses. */
interface Build {
  B: number;
  L: number;
  K: number;
  N: number;
  R: number;
  M: number;
  C: number;
  V: number;
  I: number;
  H: number;
  HKV: number;
  d: number;
  eps: number;
  mm: ModelMatmul;
  /** RoPE position ids per storage slot and the cos/sin table. */
  rope: { pos: GPUBuffer; table: GPUBuffer };
  /** The RoPE kernels' shape for `heads` heads (`rotate` false: a transpose only). */
  tok(heads: number, rotate?: boolean): {
    batch: number;
    tokens: number;
    heads: number;
    headDim: number;
    rotate: boolean;
  };
  /** The storage slot of each (p, c) (p·K + c), for folding the copies' gradients. */
  slots: GPUBuffer;
  /** The activation row of each loss row (B·L): the last copy of each position. */
  lossRows: Uint32Array;
}

/** The index tables of one batch shape, in the layout's storage order. */
export interface IndexTables {
  /** Position of each storage slot (N). */
  posOfSlot: Uint32Array;
  /** Copy of each storage slot (N). */
  copyOfSlot: Uint32Array;
  /** Storage slot of each (p, c), at p·K + c. */
  slotOf: Uint32Array;
  /** RoPE position id of each slot: p (shared) or p·K + c (flattened). */
  ropePos: Uint32Array;
  /** Activation row of each loss row b·P + i: the last copy of (b, positions[i]). */
  lossRows: Uint32Array;
}

/**
 * The index tables of a spec's expansion of `B` sequences of `L` positions in `layout`; the loss
 * scores `positions` of each sequence (default all).
 */
export function indexTables(
  spec: AttentionSpec,
  layout: Layout,
  B: number,
  L: number,
  positions: readonly number[] = Array.from({ length: L }, (_, p) => p),
): IndexTables {
  const K = spec.K, N = K * L, P = positions.length;
  const t: IndexTables = {
    posOfSlot: new Uint32Array(N),
    copyOfSlot: new Uint32Array(N),
    slotOf: new Uint32Array(L * K),
    ropePos: new Uint32Array(N),
    lossRows: new Uint32Array(B * P),
  };
  for (let p = 0; p < L; p++) {
    for (let c = 0; c < K; c++) {
      const s = storageIndex(layout, K, L, c, p);
      t.posOfSlot[s] = p;
      t.copyOfSlot[s] = c;
      t.slotOf[p * K + c] = s;
      t.ropePos[s] = spec.positions === "flattened" ? p * K + c : p;
    }
  }
  for (let b = 0; b < B; b++) {
    positions.forEach((p, i) => t.lossRows[b * P + i] = b * N + t.slotOf[p * K + K - 1]);
  }
  return t;
}

/** A model's activations and prepared passes for one batch shape. */
export class ModelGraph {
  /** PHD copies per position (the spec's K). */
  readonly copies: number;
  /** Tokens per sequence in storage order (K·L). */
  readonly N: number;
  /** Rows of every activation (batch·N). */
  readonly R: number;
  /** Loss rows (batch · scored positions): the last copy of each scored position. */
  readonly M: number;
  /** The positions the loss scores. */
  readonly positions: readonly number[];
  /** Storage layout of the token rows (default `interleaved`). */
  readonly layout: Layout;
  /** The flash-attention kernels every layer dispatches. */
  readonly attention: FlashAttention;
  /** Batch ids (batch, L+1) u32: inputs, and the last target. */
  readonly ids: GPUBuffer;
  /** Logits of the loss rows (M, V), row b·L + p. */
  readonly logits: GPUBuffer;
  /** Per-row losses (M,) of the last forward. */
  readonly losses: GPUBuffer;
  /** `[sum of step mean losses, steps]` since the last `takeLoss`. */
  readonly lossAcc: GPUBuffer;
  /** Gradients by parameter name (training graphs). */
  readonly grads = new Map<string, GPUBuffer>();
  /** The forward pass's dispatches, in order. */
  readonly forwardOps: Op[] = [];
  /** The backward pass's dispatches, in order (training graphs). */
  readonly backwardOps: Op[] = [];
  /** Every product the graph records, in order, by name (the autotuner tunes these shapes). */
  readonly matmuls: { what: string; shape: MatmulShape }[] = [];
  #buffers: GPUBuffer[] = [];
  #targets: GPUBuffer;
  #embedOffsets?: GPUBuffer;
  #embedPerm?: GPUBuffer;
  /** Per-copy tables: the first table row of each storage slot (c·V), else undefined. */
  #rowBase?: Uint32Array;
  #posOfSlot: Uint32Array;
  /** The attention call's shape and bindings, read when a pass is recorded. */
  #attRun: AttentionRun;
  /** The shape and shared pieces the passes are built from. */
  #b: Build;
  /** Token-major q, k, v scratch (the backward reuses it for dq, dk, dv). */
  #qkv: GPUBuffer[] = [];

  /** Builds the buffers and dispatches of `spec`'s network over `params` for `options`' shape. */
  constructor(
    readonly ctx: KernelContext,
    readonly params: ModelParams,
    readonly spec: AttentionSpec,
    readonly options: GraphOptions,
  ) {
    const cfg = params.config, { batch: B, L } = options;
    for (const [k, v] of [["batch", B], ["L", L]] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`${k} must be an integer >= 1, got ${v}`);
      }
    }
    const positions = this.positions = options.lossPositions ??
      Array.from({ length: L }, (_, p) => p);
    if (
      positions.length === 0 || positions.some((p, i) => p >= L || p <= (positions[i - 1] ?? -1))
    ) {
      throw new RangeError(
        `lossPositions must be increasing positions in [0, ${L}), got ${positions}`,
      );
    }
    const K = this.copies = spec.K, N = this.N = K * L, R = this.R = B * N;
    const M = this.M = B * positions.length;
    const layout = this.layout = options.attention?.layout ?? "interleaved";
    const d = headDim(cfg), H = cfg.num_attention_heads, HKV = cfg.num_key_value_heads;
    const t = indexTables(spec, layout, B, L, positions);
    this.#posOfSlot = t.posOfSlot;
    this.#rowBase = params.embedRowBase(K, t.copyOfSlot);
    const maxPos = spec.positions === "flattened" ? N : L;
    const rope = {
      pos: this.#u32(t.ropePos, "rope_pos"),
      table: this.#keep(
        storageBuffer(ctx.gpu.device, ropeTable(maxPos, d, cfg.rope_theta), "rope_table"),
      ),
    };
    this.#b = {
      B,
      L,
      K,
      N,
      R,
      M,
      d,
      H,
      HKV,
      C: cfg.hidden_size,
      V: cfg.vocab_size,
      I: cfg.intermediate_size,
      eps: cfg.rms_norm_eps,
      mm: modelMatmul(ctx, options.matmul, (what, shape) => this.matmuls.push({ what, shape })),
      rope,
      tok: (heads, rotate = true) => ({ batch: B, tokens: N, heads, headDim: d, rotate }),
      slots: this.#u32(t.slotOf, "slot_of"),
      lossRows: t.lossRows,
    };
    this.ids = this.#u32(new Uint32Array(B * (L + 1)), "ids");
    this.#targets = this.#u32(new Uint32Array(M), "targets");
    this.attention = this.#flashAttention();
    this.#attRun = { L, batch: B, heads: H, kvHeads: HKV };
    const training = options.training ?? false;
    const { layers, x } = this.#forward(t.posOfSlot);
    this.logits = this.#f32(M * cfg.vocab_size, "logits");
    this.losses = this.#f32(M, "losses");
    this.lossAcc = this.#f32(2, "loss_acc");
    const head = this.#headForward(x, training);
    if (training) this.#backward(layers, head);
  }

  /** The attention kernels: the chooser's variant unless `options.attention` sets a knob. */
  #flashAttention(): FlashAttention {
    const { spec, options } = this, b = this.#b;
    const knobs = ["tileQ", "tileK", "blockQ", "blockK", "staging", "variant"] as const;
    const tuned = knobs.some((k) => options.attention?.[k] !== undefined)
      ? undefined
      : options.attentionChooser?.({
        spec,
        headDim: b.d,
        layout: this.layout,
        L: b.L,
        batch: b.B,
        heads: b.H,
        kvHeads: b.HKV,
        dtype: options.attention?.dtype,
      });
    return new FlashAttention(this.ctx.gpu, this.ctx.cache, spec, {
      ...tuned,
      ...options.attention,
      headDim: b.d,
      layout: this.layout,
    });
  }

  /** Forward: the expanded embedding, then every block; returns the layers' activations. */
  #forward(posOfSlot: Uint32Array): { layers: LayerActs[]; x: GPUBuffer } {
    const { ctx, params } = this, b = this.#b, { B, L, N, R, C, V, I, H, HKV, d } = b;
    const F = this.forwardOps, f32 = (n: number, l: string) => this.#f32(n, l);
    const embedOut = f32(R * C, "x0");
    // x0 (R, C) = embed[ids[b, pos(slot)]] (per-copy: + rowBase(slot) = c·V)
    F.push(expandEmbed(ctx, {
      table: params.get("model.embed_tokens.weight"),
      ids: this.ids,
      pos: this.#u32(posOfSlot, "pos_of_slot"),
      rowBase: this.#rowBase && this.#u32(this.#rowBase, "row_base"),
      out: embedOut,
    }, { batch: B, tokens: N, stride: L + 1, cols: C, tableRows: V }));
    // scratch: token-major q/k/v before RoPE (the backward reuses them for dq, dk, dv)
    this.#qkv = [f32(R * H * d, "q_tok"), f32(R * HKV * d, "k_tok"), f32(R * HKV * d, "v_tok")];
    const [q, k, v] = this.#qkv, layers: LayerActs[] = [];
    let x = embedOut;
    for (let i = 0; i < params.config.num_hidden_layers; i++) {
      const a: LayerActs = {
        x,
        n1: f32(R * C, `l${i}.n1`),
        rstd1: f32(R, `l${i}.rstd1`),
        q,
        k,
        v,
        qh: f32(R * H * d, `l${i}.qh`),
        kh: f32(R * HKV * d, `l${i}.kh`),
        vh: f32(R * HKV * d, `l${i}.vh`),
        oh: f32(R * H * d, `l${i}.oh`),
        lse: f32(B * H * N, `l${i}.lse`),
        att: f32(R * H * d, `l${i}.att`),
        x2: f32(R * C, `l${i}.x2`),
        n2: f32(R * C, `l${i}.n2`),
        rstd2: f32(R, `l${i}.rstd2`),
        gate: f32(R * I, `l${i}.gate`),
        up: f32(R * I, `l${i}.up`),
        act: f32(R * I, `l${i}.act`),
        out: f32(R * C, `x${i + 1}`),
      };
      layers.push(a);
      // x_{i+1} (R, C) = block i of x_i
      F.push(...blockForward(this.#model(), {
        layer: i,
        rows: R,
        acts: a,
        attention: (_, a) => this.#attentionForward(a),
      }));
      x = a.out;
    }
    return { layers, x };
  }

  /**
   * The training attention step: RoPE into head-major qh, kh (and v transposed) (B, H|HKV, N, d);
   * oh (B, H, N, d), lse (B, H, N) = masked attention; att (R, H·d) = oh token-major.
   */
  #attentionForward(a: LayerActs): Op[] {
    const { pos, table } = this.#b.rope, tok = this.#b.tok, { H, HKV } = this.#b;
    return [
      ropeForward(this.ctx, { inp: a.q, pos, table, out: a.qh }, tok(H)),
      ropeForward(this.ctx, { inp: a.k, pos, table, out: a.kh }, tok(HKV)),
      ropeForward(this.ctx, { inp: a.v, pos, table, out: a.vh }, tok(HKV, false)),
      (enc) =>
        this.attention.forward(
          enc,
          { q: a.qh, k: a.kh, v: a.vh, o: a.oh, lse: a.lse },
          this.#attRun,
        ),
      ropeBackward(this.ctx, { inp: a.oh, pos, table, out: a.att }, tok(H, false)),
    ];
  }

  /** The attention step's backward: d att through RoPE and FlashAttention to dq, dk, dv. */
  #attentionBackward(a: LayerActs, g: BlockGrads, s: AttentionScratch): Op[] {
    const { pos, table } = this.#b.rope, tok = this.#b.tok, { H, HKV } = this.#b;
    return [
      ropeForward(this.ctx, { inp: g.dAtt, pos, table, out: s.dOh }, tok(H, false)),
      (enc) =>
        this.attention.backward(enc, {
          q: a.qh,
          k: a.kh,
          v: a.vh,
          o: a.oh,
          lse: a.lse,
          dout: s.dOh,
          delta: s.delta,
          dq: s.dqh,
          dk: s.dkh,
          dv: s.dvh,
        }, this.#attRun),
      // head-major gradients back to token-major, RoPE inverted for q and k
      ropeBackward(this.ctx, { inp: s.dqh, pos, table, out: g.dq }, tok(H)),
      ropeBackward(this.ctx, { inp: s.dkh, pos, table, out: g.dk }, tok(HKV)),
      ropeBackward(this.ctx, { inp: s.dvh, pos, table, out: g.dv }, tok(HKV, false)),
    ];
  }

  /** The final norm, the last copy's rows, the LM head and the loss. */
  #headForward(x: GPUBuffer, training: boolean): HeadActs {
    const { ctx, params } = this, b = this.#b, { R, M, C, V } = b, F = this.forwardOps;
    const h: HeadActs = {
      x,
      nf: this.#f32(R * C, "nf"),
      rstdf: this.#f32(R, "rstdf"),
      sel: this.#f32(M * C, "sel"),
      // Forward-only graphs never write dlogits, but a buffer cannot be bound read and read_write.
      dlogits: this.#f32(training ? M * V : 4, "dlogits"),
    };
    const rowsBuf = this.#u32(b.lossRows, "loss_rows");
    const ident = this.#u32(Uint32Array.from({ length: M }, (_, i) => i), "ident_rows");
    // nf = rmsnorm(x_L); sel (M, C) = the last copy's rows; logits (M, V) = sel · headᵀ
    F.push(rmsnormForward(ctx, {
      x,
      w: params.get("model.norm.weight"),
      y: h.nf,
      rstd: h.rstdf,
    }, { rows: R, cols: C, eps: b.eps }));
    F.push(
      gather(ctx, { table: h.nf, ids: rowsBuf, out: h.sel }, { rows: M, cols: C, tableRows: R }),
    );
    F.push(b.mm("lm_head", "nt", h.sel, params.head, this.logits, M, V, C));
    // losses (M,) and, training, dlogits = (softmax - onehot) / M
    F.push(crossEntropy(ctx, {
      logits: this.logits,
      rows: ident,
      targets: this.#targets,
      losses: this.losses,
      dlogits: h.dlogits,
    }, { rows: M, vocab: V, grads: training }));
    F.push(lossSum(ctx, { losses: this.losses, acc: this.lossAcc }, M));
    return h;
  }

  /** Backward: the head and the final norm, every block in reverse, then the embedding. */
  #backward(layers: LayerActs[], h: HeadActs): void {
    const { ctx, params } = this, b = this.#b, { B, N, R, M, C, V, I, H, HKV, d } = b;
    const f32 = (n: number, l: string) => this.#f32(n, l), cfg = params.config;
    for (const [name, shape] of params.shapes) {
      this.grads.set(name, f32(numel(shape), `grad ${name}`));
    }
    const G = (name: string) => this.grads.get(name)!, Bk = this.backwardOps;
    const dsel = f32(M * C, "dsel"), dnf = f32(R * C, "dnf"), dx = f32(R * C, "dx");
    const selIdx = rowIndex(b.lossRows, R);
    const headGrad = cfg.tie_word_embeddings ? G("model.embed_tokens.weight") : G("lm_head.weight");
    // dhead (V, C) = dlogitsᵀ · sel; dsel (M, C) = dlogits · head; dnf (R, C) = scatter of dsel
    Bk.push(b.mm("d lm_head", "tn", h.dlogits, h.sel, headGrad, V, C, M));
    Bk.push(b.mm("d head input", "nn", h.dlogits, params.head, dsel, M, C, V));
    Bk.push(scatterAdd(ctx, {
      dout: dsel,
      offsets: this.#u32(selIdx.offsets, "sel_offsets"),
      perm: this.#u32(selIdx.perm, "sel_perm"),
      dtable: dnf,
    }, { cols: C, tableRows: R }));
    // dx (R, C) = rmsnorm backward of the final norm
    Bk.push(...rmsnormBackward(ctx, {
      dy: dnf,
      x: h.x,
      w: params.get("model.norm.weight"),
      rstd: h.rstdf,
      dx,
      dw: G("model.norm.weight"),
    }, { rows: R, cols: C, eps: b.eps }));
    const [dq, dk, dv] = this.#qkv; // token-major scratch reused for the gradients
    const grads: BlockGrads = {
      dx,
      dI: f32(R * I, "d_act"),
      dGate: f32(R * I, "d_gate"),
      dUp: f32(R * I, "d_up"),
      dn: f32(R * C, "d_norm"),
      dAtt: f32(R * H * d, "d_att"),
      dq,
      dk,
      dv,
      weight: G,
    };
    const scratch: AttentionScratch = {
      dOh: f32(R * H * d, "d_oh"),
      delta: f32(B * H * N, "delta"),
      dqh: f32(R * H * d, "dqh"),
      dkh: f32(R * HKV * d, "dkh"),
      dvh: f32(R * HKV * d, "dvh"),
    };
    for (let i = cfg.num_hidden_layers - 1; i >= 0; i--) {
      Bk.push(...blockBackward(this.#model(), {
        layer: i,
        rows: R,
        acts: layers[i],
        grads,
        attention: (_, a, g) => this.#attentionBackward(a, g, scratch),
      }));
    }
    this.#embeddingBackward(dx);
  }

  /**
   * The embedding's gradient. Shared table: fold the copies (B·L, C), then scatter-add by token id
   * into the table gradient (V, C). Per-copy tables: scatter-add every row (R, C) by id + c·V into
   * the stacked tables (K·V, C). A tied head's gradient is already in the first V rows.
   */
  #embeddingBackward(dx: GPUBuffer): void {
    const b = this.#b, { B, L, K, R, C, V } = b, cfg = this.params.config;
    const tables = this.params.embedTables, Bk = this.backwardOps;
    // Every position's input is embedded (B·L rows), whatever positions the loss scores.
    const dEmbed = tables > 1 ? dx : this.#f32(B * L * C, "d_pos");
    if (tables === 1) {
      Bk.push(
        foldCopies(this.ctx, { dx, slots: b.slots, out: dEmbed }, { batch: B, L, K, cols: C }),
      );
    }
    this.#embedOffsets = this.#f32(tables * V + 1, "embed_offsets");
    this.#embedPerm = this.#f32(tables > 1 ? R : B * L, "embed_perm");
    Bk.push(scatterAdd(this.ctx, {
      dout: dEmbed,
      offsets: this.#embedOffsets,
      perm: this.#embedPerm,
      dtable: this.grads.get("model.embed_tokens.weight")!,
    }, {
      cols: C,
      tableRows: tables * V,
      accumulateRows: cfg.tie_word_embeddings ? V : 0,
    }));
  }

  /** What the block records with. */
  #model(): BlockModel {
    return { ctx: this.ctx, params: this.params, mm: this.#b.mm };
  }

  /**
   * Sets the spec's runtime parameters and tables (e.g. a document table filled per batch) for
   * the passes recorded from now on. Default: the spec's own.
   */
  setBindings(bindings: Bindings | undefined): void {
    this.#attRun.bindings = bindings;
  }

  /**
   * Sets the batch: `tokens` is (batch, L+1) row-major ids (inputs, then each position's target
   * shifted by one). Uploads ids, targets and, for training, the embedding scatter index.
   */
  setBatch(tokens: Uint32Array): void {
    const { batch: B, L } = this.options, V = this.params.config.vocab_size;
    if (tokens.length !== B * (L + 1)) {
      throw new RangeError(`batch holds ${tokens.length} ids, expected ${B} x ${L + 1}`);
    }
    const P = this.positions.length;
    const targets = new Uint32Array(B * P), inputs = new Uint32Array(B * L);
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < L; p++) inputs[b * L + p] = tokens[b * (L + 1) + p];
      this.positions.forEach((p, i) => targets[b * P + i] = tokens[b * (L + 1) + p + 1]);
    }
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i] >= V) {
        throw new RangeError(`token id ${tokens[i]} is outside the vocabulary (${V})`);
      }
    }
    const dev = this.ctx.gpu.device;
    upload(dev, this.ids, tokens);
    upload(dev, this.#targets, targets);
    if (this.#embedOffsets && this.#embedPerm) {
      const idx = this.#rowBase
        ? rowIndex(this.#slotIds(tokens), V * this.copies)
        : rowIndex(inputs, V);
      upload(dev, this.#embedOffsets, idx.offsets);
      upload(dev, this.#embedPerm, idx.perm);
    }
  }

  /** Per-copy tables: the stacked-table row of every activation row (b, slot): id + c·V. */
  #slotIds(tokens: Uint32Array): Uint32Array {
    const { batch: B, L } = this.options, N = this.N, base = this.#rowBase!;
    const out = new Uint32Array(B * N);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < N; s++) {
        out[b * N + s] = tokens[b * (L + 1) + this.#posOfSlot[s]] + base[s];
      }
    }
    return out;
  }

  /** Records the forward pass (and the backward pass of a training graph with `backward`). */
  record(enc: GPUCommandEncoder, o: { backward?: boolean } = {}): void {
    recordOps(enc, this.forwardOps);
    if (o.backward) {
      if (!this.backwardOps.length) throw new Error("this graph was built without training");
      recordOps(enc, this.backwardOps);
    }
  }

  /** Mean of the step losses accumulated since the last call (and resets the accumulator). */
  async takeLoss(): Promise<{ loss: number; steps: number }> {
    const dev = this.ctx.gpu.device;
    const [sum, steps] = new Float32Array(await readback(dev, this.lossAcc, 8));
    upload(dev, this.lossAcc, new Float32Array(2));
    return { loss: steps > 0 ? sum / steps : NaN, steps };
  }

  /** Frees the graph's buffers and dispatches (not the parameters). */
  destroy(): void {
    for (const b of this.#buffers) b.destroy();
    destroyOps([...this.forwardOps, ...this.backwardOps]);
  }

  #f32(n: number, label: string): GPUBuffer {
    checkBindingSize(this.ctx.gpu, n * 4, `activation ${label} (${n} f32)`);
    return this.#keep(storageBuffer(this.ctx.gpu.device, n * 4, label));
  }

  #u32(a: Uint32Array, label: string): GPUBuffer {
    return this.#keep(storageBuffer(this.ctx.gpu.device, a, label));
  }

  #keep(b: GPUBuffer): GPUBuffer {
    this.#buffers.push(b);
    return b;
  }
}
