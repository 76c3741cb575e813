/**
 * A recorded step as a list of ops: prepared dispatches (runtime/gpu/kernel.ts) interleaved with
 * commands that must sit on the encoder between passes (buffer copies). The model graph, the
 * trainer's update and the decoder all build such lists once and replay them every step.
 * Browser-safe.
 */
import { type Dispatch, record } from "../gpu/kernel.ts";

/** One recorded step element: a prepared dispatch, or something recorded on the encoder. */
export type Op = Dispatch | ((enc: GPUCommandEncoder) => void);

/** Records ops in order, packing consecutive dispatches into one compute pass. */
export function recordOps(enc: GPUCommandEncoder, ops: readonly Op[]): void {
  let run: Dispatch[] = [];
  const flush = () => {
    if (run.length) record(enc, run);
    run = [];
  };
  for (const op of ops) {
    if (typeof op === "function") {
      flush();
      op(enc);
    } else run.push(op);
  }
  flush();
}

/** Frees the uniform buffers the ops' dispatches own (encoder commands own nothing). */
export function destroyOps(ops: readonly Op[]): void {
  for (const op of ops) if (typeof op !== "function") { for (const b of op.owned) b.destroy(); }
}

/** An op copying `n` floats from the start of `src` to the start of `dst`. */
export function copyOp(src: GPUBuffer, dst: GPUBuffer, n: number): Op {
  return (enc) => enc.copyBufferToBuffer(src, 0, dst, 0, n * 4);
}
