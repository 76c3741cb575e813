/**
 * What a throughput figure is measured against. MFU (model FLOP/s over the device's peak, PaLM's
 * and nanoGPT's definition) needs a hardware peak: a small table of fp32 peaks of known GPUs,
 * matched by adapter name, or one the user states (`GpuOptions.peakTflops`; the host reads
 * `PHD_PEAK_TFLOPS`). WGSL has no tensor cores, so fp32 is the peak a WebGPU kernel can reach.
 * Without a peak (CPU rasterizers, unknown GPUs) a figure is named for what it is: the share of
 * the best matmul rate measured on this adapter, never "MFU". Browser-safe.
 */

/** An adapter's fp32 peak and where it came from. */
export interface Peak {
  /** Peak fp32 throughput in TFLOP/s. */
  tflops: number;
  /** `table: <GPU>` or `stated` (an option or `PHD_PEAK_TFLOPS`). */
  source: string;
}

/**
 * fp32 (non-tensor) peak TFLOP/s by GPU, from the vendors' datasheets (boost clock). First match
 * wins, so more specific names come first.
 */
export const FP32_PEAKS: readonly { gpu: string; pattern: RegExp; tflops: number }[] = [
  { gpu: "NVIDIA H200", pattern: /\bH200\b/i, tflops: 66.9 },
  { gpu: "NVIDIA H100 PCIe", pattern: /\bH100\b.*\bPCIe\b/i, tflops: 51.2 },
  { gpu: "NVIDIA H100 NVL", pattern: /\bH100\b.*\bNVL\b/i, tflops: 60 },
  { gpu: "NVIDIA H100 SXM", pattern: /\bH100\b/i, tflops: 66.9 },
  { gpu: "NVIDIA GH200", pattern: /\bGH200\b/i, tflops: 66.9 },
  { gpu: "NVIDIA A100", pattern: /\bA100\b/i, tflops: 19.5 },
  { gpu: "NVIDIA L40S", pattern: /\bL40S\b/i, tflops: 91.6 },
  { gpu: "NVIDIA L40", pattern: /\bL40\b/i, tflops: 90.5 },
  { gpu: "NVIDIA L4", pattern: /\bL4\b/i, tflops: 30.3 },
  { gpu: "NVIDIA A10G", pattern: /\bA10G\b/i, tflops: 31.2 },
  { gpu: "NVIDIA A10", pattern: /\bA10\b/i, tflops: 31.2 },
  { gpu: "NVIDIA T4", pattern: /\bT4\b/i, tflops: 8.1 },
  { gpu: "NVIDIA V100", pattern: /\bV100\b/i, tflops: 15.7 },
  { gpu: "NVIDIA RTX 4090", pattern: /\bRTX 4090\b/i, tflops: 82.6 },
  { gpu: "NVIDIA RTX 3090", pattern: /\bRTX 3090\b/i, tflops: 35.6 },
  { gpu: "AMD Instinct MI300X", pattern: /\bMI300X\b/i, tflops: 163.4 },
  { gpu: "AMD Instinct MI250X", pattern: /\bMI250X\b/i, tflops: 47.9 },
];

/** The adapter's fp32 peak: a stated one, else the table's, else undefined. */
export function peakOf(adapterName: string, statedTflops?: number): Peak | undefined {
  if (statedTflops !== undefined) return { tflops: statedTflops, source: "stated" };
  const row = FP32_PEAKS.find((r) => r.pattern.test(adapterName));
  return row && { tflops: row.tflops, source: `table: ${row.gpu}` };
}

/** What a model's FLOP/s is as a share of: the figures every report carries. */
export interface Utilization {
  /** Model FLOP/s over the hardware's fp32 peak; null when the peak is unknown. */
  mfu: number | null;
  /** The peak `mfu` is relative to (TFLOP/s), null when unknown; where it came from. */
  peak_tflops: number | null;
  peak_source: string | null;
  /** Model FLOP/s over the best matmul rate measured on this adapter. */
  matmul_share: number;
  /** That measured rate (GFLOP/s). */
  matmul_gflops: number;
}

/** A model's FLOP/s as MFU (with a peak) and as a share of the measured matmul rate. */
export function utilization(
  modelFlopsPerS: number,
  matmulGflops: number,
  peak: Peak | undefined,
): Utilization {
  return {
    mfu: peak ? modelFlopsPerS / (peak.tflops * 1e12) : null,
    peak_tflops: peak?.tflops ?? null,
    peak_source: peak?.source ?? null,
    matmul_share: modelFlopsPerS / (matmulGflops * 1e9),
    matmul_gflops: matmulGflops,
  };
}

function percent(x: number): string {
  return `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`;
}

/**
 * One phrase for logs: `MFU 12% of 66.9 TFLOP/s (fp32 peak, table: NVIDIA H100 SXM)` with a
 * peak, else `66% of the best measured matmul rate (9.90 GFLOP/s)`. `short` drops the rates.
 */
export function utilizationText(u: Utilization, short = false): string {
  if (u.mfu !== null) {
    return short
      ? `MFU ${percent(u.mfu)}`
      : `MFU ${percent(u.mfu)} of ${u.peak_tflops} TFLOP/s (fp32 peak, ${u.peak_source})`;
  }
  return short
    ? `${percent(u.matmul_share)} of matmul rate`
    : `${percent(u.matmul_share)} of the best measured matmul rate (${
      u.matmul_gflops.toFixed(2)
    } GFLOP/s)`;
}
