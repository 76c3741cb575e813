/**
 * The PHD transformer of docs/DESIGN.md 1.3 for training and evaluation, in the spirit of llm.c:
 * activations are a named table of buffers per layer, each layer is a forward/backward pair of
 * prepared dispatches with shapes in comments, and a whole step is recorded on one command
 * encoder. `ModelGraph` owns the activations and the prepared dispatches for one batch shape
 * (batch, L); with `training` it also owns the gradients and the backward pass. The block's
 * forward is runtime/model/block.ts (shared with decoding); its attention step here is RoPE into
 * head-major buffers and FlashAttention (runtime/kernels/attention.ts).
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
import { swigluBackward } from "../kernels/swiglu.ts";
import { gather, rowIndex, scatterAdd } from "../kernels/embedding.ts";
import { crossEntropy } from "../kernels/cross_entropy.ts";
import { expandEmbed, foldCopies, lossSum } from "../kernels/phd.ts";
import { headDim, type ModelParams, numel } from "./params.ts";
import { type AttentionStep, type BlockActs, blockOps, modelMatmul } from "./block.ts";
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

/** A model's activations and prepared passes for one batch shape. */
export class ModelGraph {
  /** PHD copies per position (the spec's K). */
  readonly copies: number;
  /** Tokens per sequence in storage order (K·L). */
  readonly N: number;
  /** Rows of every activation (batch·N). */
  readonly R: number;
  /** Loss rows (batch·L): the last copy of each position. */
  readonly M: number;
  readonly layout: Layout;
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
  readonly forwardOps: Op[] = [];
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
    const K = this.copies = spec.K, N = this.N = K * L, R = this.R = B * N, M = this.M = B * L;
    const C = cfg.hidden_size, V = cfg.vocab_size, I = cfg.intermediate_size;
    const H = cfg.num_attention_heads, HKV = cfg.num_key_value_heads, d = headDim(cfg);
    const eps = cfg.rms_norm_eps;
    const layout = this.layout = options.attention?.layout ?? "interleaved";
    const training = options.training ?? false;
    const dev = ctx.gpu.device;
    const f32 = (n: number, label: string) => this.#alloc(n * 4, label);
    const u32 = (a: Uint32Array, label: string) => {
      const b = storageBuffer(dev, a, label);
      this.#buffers.push(b);
      return b;
    };
    const P = (name: string) => params.get(name);
    const mm = modelMatmul(
      ctx,
      options.matmul,
      (what, shape) => this.matmuls.push({ what, shape }),
    );
    const model = { ctx, params, mm };
    const tables = params.embedTables;

    // Index tables of this shape: position of each storage slot, slot of each (p, c), loss rows.
    const posOfSlot = this.#posOfSlot = new Uint32Array(N), slotOf = new Uint32Array(L * K);
    const copyOfSlot = new Uint32Array(N);
    const ropePos = new Uint32Array(N), lossRows = new Uint32Array(M);
    for (let p = 0; p < L; p++) {
      for (let c = 0; c < K; c++) {
        const s = storageIndex(layout, K, L, c, p);
        posOfSlot[s] = p;
        copyOfSlot[s] = c;
        slotOf[p * K + c] = s;
        ropePos[s] = spec.positions === "flattened" ? p * K + c : p;
      }
    }
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < L; p++) lossRows[b * L + p] = b * N + slotOf[p * K + K - 1];
    }
    const rowBase = this.#rowBase = params.embedRowBase(K, copyOfSlot);
    const posBuf = u32(posOfSlot, "pos_of_slot"), slotBuf = u32(slotOf, "slot_of");
    const ropePosBuf = u32(ropePos, "rope_pos");
    const rowsBuf = u32(lossRows, "loss_rows");
    const maxPos = spec.positions === "flattened" ? N : L;
    const table = storageBuffer(dev, ropeTable(maxPos, d, cfg.rope_theta), "rope_table");
    this.#buffers.push(table);
    this.ids = u32(new Uint32Array(B * (L + 1)), "ids");
    this.#targets = u32(new Uint32Array(M), "targets");
    const ident = u32(Uint32Array.from({ length: M }, (_, i) => i), "ident_rows");

    const knobs = ["tileQ", "tileK", "blockQ", "blockK", "staging", "variant"] as const;
    const tuned = knobs.some((k) => options.attention?.[k] !== undefined)
      ? undefined
      : options.attentionChooser?.({
        spec,
        headDim: d,
        layout,
        L,
        batch: B,
        heads: H,
        kvHeads: HKV,
        dtype: options.attention?.dtype,
      });
    this.attention = new FlashAttention(ctx.gpu, ctx.cache, spec, {
      ...tuned,
      ...options.attention,
      headDim: d,
      layout,
    });
    const attRun = this.#attRun = { L, batch: B, heads: H, kvHeads: HKV };
    const tokShape = (heads: number, rotate = true) => ({
      batch: B,
      tokens: N,
      heads,
      headDim: d,
      rotate,
    });

    // ---- forward ----
    const F = this.forwardOps;
    const layers: LayerActs[] = [];
    const embedOut = f32(R * C, "x0");
    // x0 (R, C) = embed[ids[b, pos(slot)]] (per-copy: + rowBase(slot) = c·V)
    F.push(
      expandEmbed(ctx, {
        table: P("model.embed_tokens.weight"),
        ids: this.ids,
        pos: posBuf,
        rowBase: rowBase && u32(rowBase, "row_base"),
        out: embedOut,
      }, {
        batch: B,
        tokens: N,
        stride: L + 1,
        cols: C,
        tableRows: V,
      }),
    );
    // scratch: token-major q/k/v before RoPE (the backward reuses them for dq, dk, dv)
    const qTok = f32(R * H * d, "q_tok"),
      kTok = f32(R * HKV * d, "k_tok"),
      vTok = f32(R * HKV * d, "v_tok");
    // The attention step: RoPE into head-major qh, kh (and v transposed) (B, H|HKV, N, d);
    // oh (B, H, N, d), lse (B, H, N) = masked attention; att (R, H·d) = oh token-major.
    const attention: AttentionStep<LayerActs> = (_, a) => [
      ropeForward(ctx, { inp: a.q, pos: ropePosBuf, table, out: a.qh }, tokShape(H)),
      ropeForward(ctx, { inp: a.k, pos: ropePosBuf, table, out: a.kh }, tokShape(HKV)),
      ropeForward(ctx, { inp: a.v, pos: ropePosBuf, table, out: a.vh }, tokShape(HKV, false)),
      (enc) =>
        this.attention.forward(enc, { q: a.qh, k: a.kh, v: a.vh, o: a.oh, lse: a.lse }, attRun),
      ropeBackward(ctx, { inp: a.oh, pos: ropePosBuf, table, out: a.att }, tokShape(H, false)),
    ];
    let x = embedOut;
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const a: LayerActs = {
        x,
        n1: f32(R * C, `l${i}.n1`),
        rstd1: f32(R, `l${i}.rstd1`),
        q: qTok,
        k: kTok,
        v: vTok,
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
      F.push(...blockOps(model, { layer: i, rows: R, acts: a, attention }));
      x = a.out;
    }
    const head = params.head;
    const nf = f32(R * C, "nf"), rstdf = f32(R, "rstdf"), sel = f32(M * C, "sel");
    this.logits = f32(M * V, "logits");
    this.losses = f32(M, "losses");
    this.lossAcc = f32(2, "loss_acc");
    // nf = rmsnorm(x_L); sel (M, C) = the last copy's rows; logits (M, V) = sel · headᵀ
    F.push(
      rmsnormForward(ctx, { x, w: P("model.norm.weight"), y: nf, rstd: rstdf }, {
        rows: R,
        cols: C,
        eps,
      }),
    );
    F.push(gather(ctx, { table: nf, ids: rowsBuf, out: sel }, { rows: M, cols: C, tableRows: R }));
    F.push(mm("lm_head", "nt", sel, head, this.logits, M, V, C));
    // Forward-only graphs never write dlogits, but a buffer cannot be bound read and read_write.
    const dlogits = f32(training ? M * V : 4, "dlogits");
    // losses (M,) and, training, dlogits = (softmax - onehot) / M
    F.push(
      crossEntropy(ctx, {
        logits: this.logits,
        rows: ident,
        targets: this.#targets,
        losses: this.losses,
        dlogits,
      }, {
        rows: M,
        vocab: V,
        grads: training,
      }),
    );
    F.push(lossSum(ctx, { losses: this.losses, acc: this.lossAcc }, M));
    if (!training) return;

    // ---- backward ----
    for (const [name, shape] of params.shapes) {
      this.grads.set(name, f32(numel(shape), `grad ${name}`));
    }
    const G = (name: string) => this.grads.get(name)!;
    const Bk = this.backwardOps;
    const dsel = f32(M * C, "dsel"), dnf = f32(R * C, "dnf"), dx = f32(R * C, "dx");
    const selIdx = rowIndex(lossRows, R);
    const selOffsets = u32(selIdx.offsets, "sel_offsets"), selPerm = u32(selIdx.perm, "sel_perm");
    const headGrad = cfg.tie_word_embeddings ? G("model.embed_tokens.weight") : G("lm_head.weight");
    // dhead (V, C) = dlogitsᵀ · sel; dsel (M, C) = dlogits · head; dnf (R, C) = scatter of dsel
    Bk.push(mm("d lm_head", "tn", dlogits, sel, headGrad, V, C, M));
    Bk.push(mm("d head input", "nn", dlogits, head, dsel, M, C, V));
    Bk.push(
      scatterAdd(ctx, { dout: dsel, offsets: selOffsets, perm: selPerm, dtable: dnf }, {
        cols: C,
        tableRows: R,
      }),
    );
    // dx (R, C) = rmsnorm backward of the final norm
    Bk.push(
      ...rmsnormBackward(ctx, {
        dy: dnf,
        x,
        w: P("model.norm.weight"),
        rstd: rstdf,
        dx,
        dw: G("model.norm.weight"),
      }, {
        rows: R,
        cols: C,
        eps,
      }),
    );
    const dI = f32(R * I, "d_act"), dGate = f32(R * I, "d_gate"), dUp = f32(R * I, "d_up");
    const dn = f32(R * C, "d_norm"), dAtt = f32(R * H * d, "d_att"), dOh = f32(R * H * d, "d_oh");
    const delta = f32(B * H * N, "delta");
    const dqh = f32(R * H * d, "dqh"), dkh = f32(R * HKV * d, "dkh"), dvh = f32(R * HKV * d, "dvh");
    const dq = qTok, dk = kTok, dv = vTok; // token-major scratch reused for the gradients
    for (let i = cfg.num_hidden_layers - 1; i >= 0; i--) {
      const a = layers[i];
      const w = (n: string) => P(`model.layers.${i}.${n}.weight`);
      const g = (n: string) => G(`model.layers.${i}.${n}.weight`);
      // out = x2 + act·Wdᵀ: dact (R, I) = dx · Wd; dWd (C, I) = dxᵀ · act
      Bk.push(mm("d down input", "nn", dx, w("mlp.down_proj"), dI, R, I, C));
      Bk.push(mm("d down_proj", "tn", dx, a.act, g("mlp.down_proj"), C, I, R));
      Bk.push(
        swigluBackward(ctx, { dout: dI, gate: a.gate, up: a.up, dgate: dGate, dup: dUp }, R * I),
      );
      // dn2 (R, C) = dgate · Wg + dup · Wu; dWg, dWu (I, C)
      Bk.push(mm("d gate input", "nn", dGate, w("mlp.gate_proj"), dn, R, C, I));
      Bk.push(mm("d up input", "nn", dUp, w("mlp.up_proj"), dn, R, C, I, 1));
      Bk.push(mm("d gate_proj", "tn", dGate, a.n2, g("mlp.gate_proj"), I, C, R));
      Bk.push(mm("d up_proj", "tn", dUp, a.n2, g("mlp.up_proj"), I, C, R));
      // dx += rmsnorm backward (the residual stream now holds dx2)
      Bk.push(
        ...rmsnormBackward(ctx, {
          dy: dn,
          x: a.x2,
          w: w("post_attention_layernorm"),
          rstd: a.rstd2,
          dx,
          dw: g("post_attention_layernorm"),
        }, {
          rows: R,
          cols: C,
          eps,
          accumulateDx: true,
        }),
      );
      // x2 = x + att·Woᵀ: datt (R, H·d) = dx2 · Wo; dWo (C, H·d) = dx2ᵀ · att
      Bk.push(mm("d o input", "nn", dx, w("self_attn.o_proj"), dAtt, R, H * d, C));
      Bk.push(mm("d o_proj", "tn", dx, a.att, g("self_attn.o_proj"), C, H * d, R));
      Bk.push(
        ropeForward(ctx, { inp: dAtt, pos: ropePosBuf, table, out: dOh }, tokShape(H, false)),
      );
      Bk.push((enc) =>
        this.attention.backward(enc, {
          q: a.qh,
          k: a.kh,
          v: a.vh,
          o: a.oh,
          lse: a.lse,
          dout: dOh,
          delta,
          dq: dqh,
          dk: dkh,
          dv: dvh,
        }, attRun)
      );
      // head-major gradients back to token-major, RoPE inverted for q and k
      Bk.push(ropeBackward(ctx, { inp: dqh, pos: ropePosBuf, table, out: dq }, tokShape(H)));
      Bk.push(ropeBackward(ctx, { inp: dkh, pos: ropePosBuf, table, out: dk }, tokShape(HKV)));
      Bk.push(
        ropeBackward(ctx, { inp: dvh, pos: ropePosBuf, table, out: dv }, tokShape(HKV, false)),
      );
      // dn1 (R, C) = dq·Wq + dk·Wk + dv·Wv; dWq (H·d, C), dWk and dWv (HKV·d, C)
      Bk.push(mm("d q input", "nn", dq, w("self_attn.q_proj"), dn, R, C, H * d));
      Bk.push(mm("d k input", "nn", dk, w("self_attn.k_proj"), dn, R, C, HKV * d, 1));
      Bk.push(mm("d v input", "nn", dv, w("self_attn.v_proj"), dn, R, C, HKV * d, 1));
      Bk.push(mm("d q_proj", "tn", dq, a.n1, g("self_attn.q_proj"), H * d, C, R));
      Bk.push(mm("d k_proj", "tn", dk, a.n1, g("self_attn.k_proj"), HKV * d, C, R));
      Bk.push(mm("d v_proj", "tn", dv, a.n1, g("self_attn.v_proj"), HKV * d, C, R));
      Bk.push(
        ...rmsnormBackward(ctx, {
          dy: dn,
          x: a.x,
          w: w("input_layernorm"),
          rstd: a.rstd1,
          dx,
          dw: g("input_layernorm"),
        }, {
          rows: R,
          cols: C,
          eps,
          accumulateDx: true,
        }),
      );
    }
    // Embedding. Shared table: fold the copies (B·L, C), then scatter-add by token id into the
    // table gradient (V, C). Per-copy tables: scatter-add every row (R, C) by id + c·V into the
    // stacked tables (K·V, C). A tied head's gradient is already in the first V rows.
    const dEmbed = tables > 1 ? dx : f32(M * C, "d_pos");
    if (tables === 1) {
      Bk.push(foldCopies(ctx, { dx, slots: slotBuf, out: dEmbed }, { batch: B, L, K, cols: C }));
    }
    this.#embedOffsets = f32(tables * V + 1, "embed_offsets");
    this.#embedPerm = f32(tables > 1 ? R : M, "embed_perm");
    Bk.push(
      scatterAdd(ctx, {
        dout: dEmbed,
        offsets: this.#embedOffsets,
        perm: this.#embedPerm,
        dtable: G("model.embed_tokens.weight"),
      }, {
        cols: C,
        tableRows: tables * V,
        accumulateRows: cfg.tie_word_embeddings ? V : 0,
      }),
    );
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
    const targets = new Uint32Array(B * L), inputs = new Uint32Array(B * L);
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < L; p++) {
        inputs[b * L + p] = tokens[b * (L + 1) + p];
        targets[b * L + p] = tokens[b * (L + 1) + p + 1];
      }
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

  destroy(): void {
    for (const b of this.#buffers) b.destroy();
    destroyOps([...this.forwardOps, ...this.backwardOps]);
  }

  #alloc(bytes: number, label: string): GPUBuffer {
    checkBindingSize(this.ctx.gpu, bytes, `activation ${label} (${bytes / 4} f32)`);
    const b = storageBuffer(this.ctx.gpu.device, bytes, label);
    this.#buffers.push(b);
    return b;
  }
}
