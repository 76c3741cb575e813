/**
 * Small WebGPU helpers shared by every kernel dispatcher: storage/uniform buffers, upload,
 * readback, f16 conversion, and the pipeline cache (keyed by a kernel's cache key, counting the
 * pipelines it created so tests can prove that runtime parameters never recompile). Browser-safe.
 */

/** Usage of a storage buffer that can be written from the host and read back. */
const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;

/** A storage buffer holding `data`, or `data` zero bytes (rounded up to 16). */
export function storageBuffer(
  device: GPUDevice,
  data: ArrayBufferView | number,
  label = "storage",
): GPUBuffer {
  const bytes = typeof data === "number" ? data : data.byteLength;
  const buf = device.createBuffer({ label, size: align16(bytes), usage: STORAGE });
  if (typeof data !== "number") upload(device, buf, data);
  return buf;
}

/** A uniform buffer holding `data`. */
export function uniformBuffer(device: GPUDevice, data: ArrayBufferView, label = "uniforms") {
  const buf = device.createBuffer({
    label,
    size: align16(data.byteLength),
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  upload(device, buf, data);
  return buf;
}

/** Writes `data` at the start of `buf` (padding the copy to a multiple of 4 bytes). */
export function upload(device: GPUDevice, buf: GPUBuffer, data: ArrayBufferView): void {
  const n = data.byteLength;
  if (n % 4 === 0) {
    device.queue.writeBuffer(buf, 0, data.buffer as ArrayBuffer, data.byteOffset, n);
  } else {
    const padded = new Uint8Array(n + 4 - n % 4);
    padded.set(new Uint8Array(data.buffer, data.byteOffset, n));
    device.queue.writeBuffer(buf, 0, padded);
  }
}

/** Copies the first `bytes` of `buf` back to the host (after all submitted work). */
export async function readback(device: GPUDevice, buf: GPUBuffer, bytes = buf.size) {
  const size = align16(bytes);
  const staging = device.createBuffer({
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}

/** `n` rounded up to a multiple of 16 (and at least 16): binding sizes must be multiples of 4. */
function align16(n: number): number {
  return Math.max(16, Math.ceil(n / 16) * 16);
}

/** IEEE half-precision bits of each value (round to nearest even), for f16 storage. */
export function toF16Bits(x: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(x.length);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < x.length; i++) {
    f[0] = x[i];
    const b = u[0], sign = (b >>> 16) & 0x8000, exp = (b >>> 23) & 0xff;
    let mant = b & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let h = mant >>> shift;
      const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1))) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    // A carry out of the mantissa bumps the exponent: still the correctly rounded encoding.
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    out[i] = sign | h;
  }
  return out;
}

/** Values of IEEE half-precision bits. */
export function fromF16Bits(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const s = h[i] & 0x8000 ? -1 : 1, e = (h[i] >> 10) & 0x1f, m = h[i] & 0x3ff;
    out[i] = e === 0
      ? s * m * 2 ** -24
      : e === 31
      ? (m ? NaN : s * Infinity)
      : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

/** What a pipeline is built from. */
export interface PipelineSource {
  /** WGSL source. */
  code: string;
  /** Label for errors and captures. */
  label: string;
  /** Entry point. Default `main`. */
  entryPoint?: string;
}

/** A created pipeline and the module it came from (for compilation diagnostics). */
export interface CachedPipeline {
  /** The cache key it was built under. */
  key: string;
  /** The compute pipeline (`layout: "auto"`). */
  pipeline: GPUComputePipeline;
  /** The shader module, for compilation diagnostics. */
  module: GPUShaderModule;
  /** What it was built from. */
  source: PipelineSource;
}

/**
 * Compute pipelines by cache key. `created` counts pipelines built since construction: a test
 * reruns kernels with new runtime parameters and asserts it did not grow. Invariant: the key must
 * cover everything baked into the WGSL (see `attentionKernelKey`), or two kernels would collide.
 */
export class PipelineCache {
  #pipelines = new Map<string, CachedPipeline>();
  /** Number of pipelines created so far. */
  created = 0;
  /** A cache that builds its pipelines on `device`. */
  constructor(readonly device: GPUDevice) {}

  /** The pipeline for `key`, built from `build()` the first time. */
  get(key: string, build: () => PipelineSource): CachedPipeline {
    let hit = this.#pipelines.get(key);
    if (!hit) {
      const source = build();
      const module = this.device.createShaderModule({ label: source.label, code: source.code });
      const pipeline = this.device.createComputePipeline({
        label: source.label,
        layout: "auto",
        compute: { module, entryPoint: source.entryPoint ?? "main" },
      });
      hit = { key, pipeline, module, source };
      this.#pipelines.set(key, hit);
      this.created++;
    }
    return hit;
  }

  /** Every pipeline built so far. */
  entries(): CachedPipeline[] {
    return [...this.#pipelines.values()];
  }
}

/** Error lines of a module's compilation, with the kernel label; empty when clean. */
export async function compilationErrors(p: CachedPipeline): Promise<string[]> {
  const info = await p.module.getCompilationInfo();
  return info.messages.filter((m) => m.type === "error").map((m) =>
    `${p.source.label}:${m.lineNum}:${m.linePos}: ${m.message}`
  );
}
