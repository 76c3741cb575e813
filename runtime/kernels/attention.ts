/**
 * Dispatch of the flash-attention kernels (built by compiler/codegen/attention_kernels.ts):
 * `FlashAttention` owns one spec's kernels for one head dim and configuration (layout, dtype,
 * variant, tiles), builds their pipelines through the pipeline cache, turns the tile classes of
 * compiler/analysis/tiles.ts into tile-list buffers (data, so new W, C or L never recompile), and
 * records forward and backward passes on a command encoder. `run` is the host-array convenience
 * used by tests and benchmarks. Browser-safe (no Deno APIs).
 *
 * Tensors are in storage order: q, o, dO, dq `[batch, heads, N, d]`; k, v, dk, dv
 * `[batch, kvHeads, N, d]`; lse and delta `[batch, heads, N]` f32, N = K*L tokens placed by the
 * layout. A fully masked row gets o = 0, lse = NEG_BIG (-3e38) and zero gradients.
 */
import type { Bindings } from "../../dsl/eval.ts";
import { specBindings } from "../../dsl/eval.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import {
  type AttentionChoices,
  type AttentionKernel,
  type AttentionKernelKind,
  type AttentionKernelParams,
  attentionLoopProblem,
  attentionParams,
  attentionUniforms,
  buildAttentionKernel,
  type KernelVariant,
  packTileList,
  type Staging,
  type StorageType,
} from "../../compiler/codegen/attention_kernels.ts";
import type { Layout } from "../../compiler/layout.ts";
import { packUniforms } from "../../compiler/codegen/kernel_source.ts";
import { classifyTiles, tileLists } from "../../compiler/analysis/tiles.ts";
import { packSpecBindings, tableNames } from "../../compiler/codegen/wgsl_expr.ts";
import { checkBindingSize, type GpuContext } from "../gpu/device.ts";
import { prepare } from "../gpu/kernel.ts";
import {
  fromF16Bits,
  type PipelineCache,
  readback,
  storageBuffer,
  toF16Bits,
  uniformBuffer,
} from "../gpu/resources.ts";

/** The knobs of an attention variant the tuner chooses (every one baked into the kernels). */
export interface AttentionVariant {
  /** Query rows per tile. */
  tileQ: number;
  /** Key rows per tile. */
  tileK: number;
  /** Query rows per invocation (forward, dQ); divides `tileQ`. */
  blockQ: number;
  /** Key rows per invocation (dK/dV); divides `tileK`. */
  blockK: number;
  /** Streamed rows from storage (`direct`) or through workgroup memory. */
  staging: Staging;
  /** `fused` (tile-skipping) or `dense` (every tile, masked). */
  variant: KernelVariant;
}

/** One attention problem of a model: its spec, head dim, layout and run shape. */
export interface AttentionShape {
  /** The attention pattern. */
  spec: AttentionSpec;
  /** Head dimension (multiple of 4). */
  headDim: number;
  /** The model's storage layout (part of the problem, never a tuning knob). */
  layout: Layout;
  /** Positions per copy (N = K·L tokens). */
  L: number;
  /** Sequences per call. */
  batch: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads; divides `heads`. */
  kvHeads: number;
  /** Storage type. Default f32 (the only one tuned for now). */
  dtype?: StorageType;
}

/** The model's attention hook: the variant to build for a problem, or undefined (the default). */
export type AttentionChooser = (shape: AttentionShape) => AttentionVariant | undefined;

/**
 * Choices baked into the kernels (each combination is its own set of pipelines); the ones left out
 * take `attentionDefaults` of the device's adapter class and limits.
 */
export interface AttentionConfig extends AttentionChoices {
  /** Head dimension (multiple of 4). */
  headDim: number;
}

/** Runtime shape and parameters of one call: none of them changes a kernel. */
export interface AttentionRun {
  /** Positions per copy (N = K*L tokens). */
  L: number;
  /** Sequences. Default 1. */
  batch?: number;
  /** Query heads. Default 1. */
  heads?: number;
  /** Key/value heads; divides `heads`. Default `heads`. */
  kvHeads?: number;
  /** Runtime parameter values (W, C, tables ...). Default: the spec's. */
  bindings?: Bindings;
}

/** Device buffers of a forward pass. */
export interface ForwardBuffers {
  /** Queries, `[batch, heads, N, d]` of the storage type. */
  q: GPUBuffer;
  /** Keys, `[batch, kvHeads, N, d]` of the storage type. */
  k: GPUBuffer;
  /** Values, `[batch, kvHeads, N, d]` of the storage type. */
  v: GPUBuffer;
  /** Output (written), `[batch, heads, N, d]` of the storage type. */
  o: GPUBuffer;
  /** Log-sum-exp of each query row's scores (written), `[batch, heads, N]` f32. */
  lse: GPUBuffer;
}

/** Device buffers of a backward pass (`delta` is scratch, `[batch, heads, N]` f32). */
export interface BackwardBuffers extends ForwardBuffers {
  /** Output gradient dO, `[batch, heads, N, d]` of the storage type. */
  dout: GPUBuffer;
  /** Scratch: rowsum(dO * o) of each query row (the dQ pass writes it), `[batch, heads, N]` f32. */
  delta: GPUBuffer;
  /** Query gradient (written), `[batch, heads, N, d]` of the storage type. */
  dq: GPUBuffer;
  /** Key gradient (written), `[batch, kvHeads, N, d]` of the storage type. */
  dk: GPUBuffer;
  /** Value gradient (written), `[batch, kvHeads, N, d]` of the storage type. */
  dv: GPUBuffer;
}

/** Host tensors for `run` (f32 values whatever the storage type). */
export interface HostInputs {
  /** Queries, `[batch, heads, N, d]` in storage order. */
  q: Float32Array;
  /** Keys, `[batch, kvHeads, N, d]` in storage order. */
  k: Float32Array;
  /** Values, `[batch, kvHeads, N, d]` in storage order. */
  v: Float32Array;
  /** Output gradient; when given, `run` also runs the backward pass. */
  dO?: Float32Array;
}

/** Results of `run`. */
export interface HostOutputs {
  /** Output, `[batch, heads, N, d]`. */
  o: Float32Array;
  /** Log-sum-exp of each query row's scores, `[batch, heads, N]` (NEG_BIG: fully masked). */
  lse: Float32Array;
  /** Query gradient, `[batch, heads, N, d]`; only when `dO` was given. */
  dq?: Float32Array;
  /** Key gradient, `[batch, kvHeads, N, d]`; only when `dO` was given. */
  dk?: Float32Array;
  /** Value gradient, `[batch, kvHeads, N, d]`; only when `dO` was given. */
  dv?: Float32Array;
}

interface RunState {
  B: number;
  H: number;
  HKV: number;
  N: number;
  rows: number;
  cols: number;
  uniforms: GPUBuffer;
  tables?: GPUBuffer;
  byRows?: GPUBuffer;
  byCols?: GPUBuffer;
}

/** Runs kept per `FlashAttention` (uniforms and tile lists of recent shapes/parameters). */
const RUN_CACHE_SIZE = 16;

/** One spec's flash-attention kernels for one configuration. */
export class FlashAttention {
  /** The kernels' parameters: `config` with the device's defaults filled in. */
  readonly params: AttentionKernelParams;
  #runs = new Map<string, RunState>();
  #kernels = new Map<AttentionKernelKind, AttentionKernel>();

  /** Fills in `config` for the device (kernels are built on first use); f16 needs `gpu.f16`. */
  constructor(
    readonly gpu: GpuContext,
    readonly cache: PipelineCache,
    readonly spec: AttentionSpec,
    config: AttentionConfig,
  ) {
    this.params = attentionParams(spec, config.headDim, config, {
      adapterClass: gpu.adapterClass,
      limits: gpu.limits,
    });
    if (this.params.dtype === "f16" && !gpu.f16) {
      throw new Error(
        `f16 storage needs the shader-f16 feature, which adapter "${gpu.adapterName}" lacks: ` +
          `use dtype "f32", or a Vulkan driver (apt-get install mesa-vulkan-drivers, ` +
          `DENO_WEBGPU_BACKEND=vulkan)`,
      );
    }
  }

  /** The kernel of one pass, checked against the device's limits (its pipeline: `prepare`). */
  #kernel(kind: AttentionKernelKind): AttentionKernel {
    let k = this.#kernels.get(kind);
    if (!k) {
      k = buildAttentionKernel(kind, this.params, this.gpu.limits);
      this.#kernels.set(kind, k);
    }
    return k;
  }

  /** Records the forward pass. */
  forward(enc: GPUCommandEncoder, io: ForwardBuffers, run: AttentionRun): void {
    const st = this.#state(run);
    this.#dispatch(enc, "forward", st, { ...io }, [st.rows, st.H, st.B]);
  }

  /** Records the backward pass (dQ and delta, then dK/dV); needs o and lse of the forward. */
  backward(enc: GPUCommandEncoder, io: BackwardBuffers, run: AttentionRun): void {
    const st = this.#state(run);
    this.#dispatch(enc, "backward_dq", st, { ...io }, [st.rows, st.H, st.B]);
    this.#dispatch(enc, "backward_dkv", st, { ...io }, [st.cols, st.HKV, st.B]);
  }

  /** Uploads host tensors, runs forward (and backward when `dO` is given), reads results back. */
  async run(x: HostInputs, run: AttentionRun): Promise<HostOutputs> {
    const { device } = this.gpu;
    const st = this.#state(run);
    const d = this.params.headDim, f16 = this.params.dtype === "f16";
    const qSize = st.B * st.H * st.N * d, kvSize = st.B * st.HKV * st.N * d;
    const expect = (name: string, a: Float32Array | undefined, n: number) => {
      if (a && a.length !== n) {
        throw new RangeError(`${name} has ${a.length} values, expected ${n} for this shape`);
      }
    };
    expect("q", x.q, qSize);
    expect("k", x.k, kvSize);
    expect("v", x.v, kvSize);
    expect("dO", x.dO, qSize);
    const elem = f16 ? 2 : 4;
    const tensor = (a: Float32Array | number, label: string) =>
      storageBuffer(device, typeof a === "number" ? a * elem : f16 ? toF16Bits(a) : a, label);
    const io: BackwardBuffers = {
      q: tensor(x.q, "q"),
      k: tensor(x.k, "k"),
      v: tensor(x.v, "v"),
      o: tensor(qSize, "o"),
      lse: storageBuffer(device, st.B * st.H * st.N * 4, "lse"),
      dout: tensor(x.dO ?? 0, "dout"),
      delta: storageBuffer(device, st.B * st.H * st.N * 4, "delta"),
      dq: tensor(x.dO ? qSize : 0, "dq"),
      dk: tensor(x.dO ? kvSize : 0, "dk"),
      dv: tensor(x.dO ? kvSize : 0, "dv"),
    };
    const enc = device.createCommandEncoder();
    this.forward(enc, io, run);
    if (x.dO) this.backward(enc, io, run);
    device.queue.submit([enc.finish()]);
    const read = async (b: GPUBuffer, n: number) => {
      const raw = await readback(device, b, n * elem);
      return f16 ? fromF16Bits(new Uint16Array(raw)) : new Float32Array(raw);
    };
    const out: HostOutputs = {
      o: await read(io.o, qSize),
      lse: new Float32Array(await readback(device, io.lse, st.B * st.H * st.N * 4)),
    };
    if (x.dO) {
      out.dq = await read(io.dq, qSize);
      out.dk = await read(io.dk, kvSize);
      out.dv = await read(io.dv, kvSize);
    }
    for (const b of Object.values(io)) b.destroy();
    return out;
  }

  #dispatch(
    enc: GPUCommandEncoder,
    kind: AttentionKernelKind,
    st: RunState,
    io: Record<string, GPUBuffer>,
    grid: [number, number, number],
  ) {
    const kernel = this.#kernel(kind);
    const buffers: Record<string, GPUBuffer> = { ...io, U: st.uniforms };
    const tiles = kind === "backward_dkv" ? st.byCols : st.byRows;
    if (tiles) buffers.tiles = tiles;
    if (st.tables) buffers.mask_tables = st.tables;
    const d = prepare(this, { ...kernel, bindings: ["U", ...kernel.bindings] }, { buffers, grid });
    const pass = enc.beginComputePass({ label: kernel.label });
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(...grid);
    pass.end();
  }

  /** Uniforms, tables and tile lists of a run shape (cached: reruns upload nothing). */
  #state(run: AttentionRun): RunState {
    const B = run.batch ?? 1, H = run.heads ?? 1, HKV = run.kvHeads ?? H;
    const bindings = run.bindings ?? specBindings(this.spec);
    const key = JSON.stringify([B, H, HKV, run.L, bindings]);
    const hit = this.#runs.get(key);
    if (hit) return hit;
    const { headDim: d, tileQ, tileK, layout, dtype } = this.params, spec = this.spec;
    for (const [n, v] of [["L", run.L], ["batch", B], ["heads", H], ["kvHeads", HKV]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${n} must be >= 1, got ${v}`);
    }
    if (H % HKV !== 0) throw new RangeError(`kvHeads ${HKV} must divide heads ${H}`);
    const N = spec.K * run.L, rows = Math.ceil(N / tileQ), cols = Math.ceil(N / tileK);
    const elem = dtype === "f16" ? 2 : 4;
    checkBindingSize(this.gpu, B * H * N * d * elem, `q [${B}, ${H}, ${N}, ${d}] ${dtype}`);
    const loops = attentionLoopProblem(this.params, { N, group: H / HKV }, this.gpu.loopBudget);
    if (loops) {
      throw new RangeError(
        `attention on adapter "${this.gpu.adapterName}": ${loops} (it would end them early ` +
          `and skip keys without an error): use fewer tokens per sequence, or a GPU`,
      );
    }
    for (const [what, n] of [["query tiles", rows], ["heads", H], ["batch", B]] as const) {
      if (n > this.gpu.device.limits.maxComputeWorkgroupsPerDimension) {
        throw new RangeError(`${n} ${what} exceed maxComputeWorkgroupsPerDimension`);
      }
    }
    const { device } = this.gpu;
    const packed = packSpecBindings(spec, bindings);
    const st: RunState = {
      B,
      H,
      HKV,
      N,
      rows,
      cols,
      uniforms: uniformBuffer(
        device,
        packUniforms(
          attentionUniforms(spec),
          { N, L: run.L, H, HKV, scale: 1 / Math.sqrt(d), rows, cols, tq: tileQ, tk: tileK },
          packed.fields,
        ),
      ),
    };
    if (tableNames(spec).length > 0) {
      st.tables = storageBuffer(device, packed.tables, "mask_tables");
    }
    if (this.params.variant === "fused") {
      const map = classifyTiles(spec, { L: run.L, tileQ, tileK, layout, bindings });
      st.byRows = storageBuffer(device, packTileList(tileLists(map, "rows")), "tiles_by_rows");
      st.byCols = storageBuffer(device, packTileList(tileLists(map, "cols")), "tiles_by_cols");
    }
    if (this.#runs.size >= RUN_CACHE_SIZE) {
      const [oldest, old] = this.#runs.entries().next().value!;
      for (const b of [old.uniforms, old.tables, old.byRows, old.byCols]) b?.destroy();
      this.#runs.delete(oldest);
    }
    this.#runs.set(key, st);
    return st;
  }
}
