/**
 * What python/phd_torch must compute exactly as the TypeScript does, so both engines train the
 * same run (tests/torch/parity.py answers for Python, in one process):
 * - the batch sampler: runtime/data/batches.ts `Batches` (mulberry32, `floor(next() * n)` in
 *   float64) and phd_torch's draw the same window starts and end in the same state, for several
 *   seeds, stream lengths (up to 2^32 - 1) and batch shapes;
 * - the initial weights: `initParams` and `init_weights` give the same float32 bytes;
 * - the learning rate of every step of several schedules, to the last float64 bit;
 * - the model, train and data defaults;
 * - a token file written by runtime/host/token_file.ts reads the same in both (metadata, lengths,
 *   ids), with and without a separator.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Batches, type TokenSource } from "../../runtime/data/batches.ts";
import { Rng } from "../../runtime/data/rng.ts";
import type { TokenFileMeta } from "../../runtime/data/token_file.ts";
import { DEFAULT_CONFIG, learningRate, type ModelConfig } from "../../runtime/model/config.ts";
import { initParams } from "../../runtime/model/params.ts";
import { loadTokenCorpus, writeTokenFile } from "../../runtime/host/token_file.ts";
import { runPython } from "../fixtures/python.ts";
import { torchTest } from "../fixtures/torch.ts";

/** A stream whose id at i is i: a window's first id is its start. */
function positions(length: number): TokenSource {
  return { length, subarray: (s, e) => Uint32Array.from({ length: e - s }, (_, i) => s + i) };
}

const SAMPLERS = [
  { seed: 0, length: 17, batch: 3, seq_len: 16, steps: 4 },
  { seed: 1, length: 1000, batch: 8, seq_len: 16, steps: 5 },
  { seed: 7, length: 65537, batch: 16, seq_len: 64, steps: 3 },
  { seed: 123456789, length: 2 ** 31 + 11, batch: 5, seq_len: 128, steps: 3 },
  { seed: 2 ** 32 - 1, length: 2 ** 32 - 1, batch: 4, seq_len: 1, steps: 3 },
];

const tiny: ModelConfig = {
  ...DEFAULT_CONFIG.model,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};
const INITS = [
  { model: tiny, seed: 1 },
  { model: { ...tiny, tie_word_embeddings: true, vocab_size: 300 }, seed: 42 },
];

const T = DEFAULT_CONFIG.train;
const SCHEDULES = [
  T,
  { ...T, steps: 20, warmup: 0 },
  { ...T, steps: 20, warmup: 5, schedule: "constant" as const },
  { ...T, steps: 7, warmup: 9, min_lr_ratio: 0, lr: 3e-4 },
];

function hex(a: Float64Array): string {
  return createHash("sha256").update(new Uint8Array(Float32Array.from(a).buffer)).digest("hex");
}

torchTest(
  "phd_torch draws the batches, weights and learning rates the TypeScript does",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "parity_" });
    const r = new Rng(3);
    const files: { path: string; meta: TokenFileMeta; train: Uint32Array; val: Uint32Array }[] = [];
    for (const [i, separator] of [0, undefined].entries()) {
      const meta: TokenFileMeta = {
        tokenizer: "bytes",
        vocabSize: 256,
        separator,
        source: { train: [], val: [], val_fraction: 0.05, field: "text" },
      };
      const train = Uint32Array.from({ length: 70001 }, () => r.int(256));
      const val = Uint32Array.from({ length: i * 99 }, () => r.int(256));
      const path = join(dir, `t${i}.safetensors`);
      await writeTokenFile(path, { train, val }, meta);
      files.push({ path, meta, train, val });
    }
    const lr = SCHEDULES.flatMap((t) =>
      Array.from({ length: Math.min(t.steps, 40) + 2 }, (_, s) => [t, s] as const)
    );
    const req = { samplers: SAMPLERS, inits: INITS, lr, tokens: files.map((f) => f.path) };
    const res = await runPython("tests/torch/parity.py", JSON.stringify(req));
    assertEquals(res.code, 0, res.stderr);
    const py = JSON.parse(res.stdout);

    for (const [i, c] of SAMPLERS.entries()) {
      const b = new Batches(positions(c.length), { batch: c.batch, seqLen: c.seq_len }, c.seed);
      const starts = Array.from({ length: c.steps }, () => {
        const w = b.next();
        return Array.from({ length: c.batch }, (_, k) => w[k * (c.seq_len + 1)]);
      });
      assertEquals(py.starts[i], { starts, state: b.state }, JSON.stringify(c));
    }
    for (const [i, c] of INITS.entries()) {
      const want = Object.fromEntries(
        Object.entries(initParams(c.model, { seed: c.seed, std: 0.02 })).map((
          [k, v],
        ) => [k, hex(v)]),
      );
      assertEquals(py.init[i], want);
    }
    assertEquals(py.lr, lr.map(([t, s]) => learningRate(t, s)));
    assertEquals(py.defaults, {
      model: DEFAULT_CONFIG.model,
      train: DEFAULT_CONFIG.train,
      data: DEFAULT_CONFIG.data,
    });
    const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);
    for (const [i, f] of files.entries()) {
      const c = await loadTokenCorpus(f.path);
      assertEquals(Array.from(c.train.subarray(0, c.train.length)), Array.from(f.train));
      assertEquals(Array.from(c.val.subarray(0, c.val.length)), Array.from(f.val));
      assertEquals(c.separator, f.meta.separator);
      assertEquals(py.tokens[i], {
        tokenizer: "bytes",
        vocab_size: 256,
        separator: f.meta.separator ?? null,
        train: [f.train.length, sum(f.train)],
        val: [f.val.length, sum(f.val)],
      });
      c.train.close();
    }
    await Deno.remove(dir, { recursive: true });
  },
);
