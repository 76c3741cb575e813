/**
 * Synthetic tasks where per-token depth should matter (the `reasoning` suite): multi-digit
 * addition of `terms` numbers (the sum as written, or `reversed`: least significant digit first), parity of a bit string, and copying a string after a delay, each a line of text from
 * a seeded generator, with the answer at the end of the line. Accuracy is exact match of the
 * whole answer (and its newline) under greedy decoding, computed teacher-forced in one forward
 * pass: greedy decoding reproduces the answer exactly iff the argmax at every answer position,
 * given the correct prefix, is the answer's next byte.
 */
import { Rng } from "../../runtime/data/rng.ts";
import type { Corpus } from "../../runtime/data/batches.ts";
import type { KernelContext } from "../../runtime/gpu/kernel.ts";
import { readback } from "../../runtime/gpu/resources.ts";
import { ModelGraph } from "../../runtime/model/graph.ts";
import type { ModelParams } from "../../runtime/model/params.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Layout } from "../../compiler/layout.ts";

/** A task and its size. */
export type Task =
  | { name: "addition"; digits?: number; terms?: number; reversed?: boolean }
  | { name: "parity"; bits?: number }
  | { name: "copy"; length?: number; delay?: number };

/** One line: the answer is `text.slice(answerStart)` (it ends with "\n"). */
export interface Example {
  text: string;
  answerStart: number;
}

const NEWLINE = 10;

function checkSize(name: string, field: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 1 || v > max) {
    throw new RangeError(`task ${name}: ${field} must be an integer in 1..${max}, got ${v}`);
  }
  return v;
}

/** Parses a suite's `task` field (one line naming the problem). */
export function parseTask(raw: unknown): Task {
  const t = raw as Record<string, unknown>;
  if (typeof raw !== "object" || raw === null || typeof t.name !== "string") {
    throw new Error(`task must be an object like {"name": "addition", "digits": 3}`);
  }
  const fields: Record<string, string[]> = {
    addition: ["digits", "terms", "reversed"],
    parity: ["bits"],
    copy: ["length", "delay"],
  };
  const allowed = fields[t.name];
  if (!allowed) throw new Error(`task "${t.name}" is not one of ${Object.keys(fields).join(", ")}`);
  for (const k of Object.keys(t)) {
    if (k !== "name" && !allowed.includes(k)) {
      throw new Error(`task ${t.name}: unknown field "${k}" (fields: ${allowed.join(", ")})`);
    }
  }
  if ("reversed" in t && typeof t.reversed !== "boolean") {
    throw new Error(
      `task addition: reversed must be true or false, got ${JSON.stringify(t.reversed)}`,
    );
  }
  const task = { ...t } as Task;
  exampleOf(task, new Rng(0)); // checks the sizes
  return task;
}

/** One example of a task. */
export function exampleOf(task: Task, rng: Rng): Example {
  if (task.name === "addition") {
    const d = checkSize("addition", "digits", task.digits ?? 3, 7), max = 10 ** d;
    const terms = checkSize("addition", "terms", task.terms ?? 2, 8);
    const xs = Array.from({ length: terms }, () => rng.int(max));
    const q = `${xs.join("+")}=`, sum = `${xs.reduce((a, b) => a + b, 0)}`;
    // reversed: the sum's least significant digit first, the order a carry travels
    const answer = task.reversed ? [...sum].reverse().join("") : sum;
    return { text: `${q}${answer}\n`, answerStart: q.length };
  }
  if (task.name === "parity") {
    const n = checkSize("parity", "bits", task.bits ?? 8, 64);
    const bits = Array.from({ length: n }, () => rng.int(2));
    const q = `${bits.join("")}:`;
    return { text: `${q}${bits.reduce((a, b) => a ^ b, 0)}\n`, answerStart: q.length };
  }
  const n = checkSize("copy", "length", task.length ?? 6, 64);
  const delay = checkSize("copy", "delay", task.delay ?? 4, 64);
  const s = Array.from({ length: n }, () => String.fromCharCode(97 + rng.int(26))).join("");
  const q = `${s}|${".".repeat(delay)}|`;
  return { text: `${q}${s}\n`, answerStart: q.length };
}

/** `count` examples from a seed. */
export function examples(task: Task, count: number, seed: number): Example[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => exampleOf(task, rng));
}

const bytesOf = (xs: Example[]) =>
  Uint32Array.from(new TextEncoder().encode(xs.map((x) => x.text).join("")));

/**
 * A corpus of a task: `trainBytes` of training lines (seed 1) and validation lines from another
 * seed (seed 2), so no validation line is a training line's twin by construction of the stream
 * (short tasks can still repeat a line by chance).
 */
export function taskCorpus(task: Task, o: { trainBytes: number; valExamples: number }): Corpus {
  const one = exampleOf(task, new Rng(1)).text.length;
  const train = bytesOf(examples(task, Math.ceil(o.trainBytes / one) + 1, 1));
  return { train, val: bytesOf(examples(task, o.valExamples, 2)) };
}

/**
 * Exact matches among examples given the loss rows' logits of a teacher-forced pass: row
 * `b·L + p` predicts the byte after position p of example b (examples start at position 0).
 */
export function exactMatches(
  logits: Float32Array,
  o: { V: number; L: number; examples: readonly Example[] },
): number {
  let hits = 0;
  o.examples.forEach((x, b) => {
    const bytes = new TextEncoder().encode(x.text);
    let ok = true;
    for (let t = x.answerStart; t < bytes.length && ok; t++) {
      const row = logits.subarray((b * o.L + t - 1) * o.V, (b * o.L + t) * o.V);
      let best = 0;
      for (let v = 1; v < o.V; v++) if (row[v] > row[best]) best = v;
      ok = best === bytes[t];
    }
    if (ok) hits++;
  });
  return hits;
}

/** Greedy exact-match accuracy of a model on examples, in batches of `batch` lines. */
export async function taskAccuracy(
  ctx: KernelContext,
  model: { params: ModelParams; spec: AttentionSpec; layout?: Layout },
  xs: readonly Example[],
  batch = 16,
): Promise<number> {
  const L = Math.max(...xs.map((x) => new TextEncoder().encode(x.text).length)) - 1;
  const V = model.params.config.vocab_size;
  const graph = new ModelGraph(ctx, model.params, model.spec, {
    batch,
    L,
    attention: { layout: model.layout },
  });
  let hits = 0;
  try {
    for (let i = 0; i < xs.length; i += batch) {
      const chunk = xs.slice(i, i + batch);
      const ids = new Uint32Array(batch * (L + 1)).fill(NEWLINE);
      chunk.forEach((x, b) => ids.set(new TextEncoder().encode(x.text), b * (L + 1)));
      graph.setBatch(ids);
      const enc = ctx.gpu.device.createCommandEncoder({ label: "task accuracy" });
      graph.record(enc);
      ctx.gpu.device.queue.submit([enc.finish()]);
      const logits = new Float32Array(
        await readback(ctx.gpu.device, graph.logits, batch * L * V * 4),
      );
      hits += exactMatches(logits, { V, L, examples: chunk });
    }
  } finally {
    graph.destroy();
  }
  return hits / xs.length;
}
