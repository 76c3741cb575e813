/**
 * Data: Brown cleaning on a tagged snippet, the real package (500 files, 25 validation), the
 * split contract, the byte tokenizer, seeded batches that resume exactly, evaluation windows, and
 * the cleaned-text cache written atomically.
 */
import { deepStrictEqual, ok as assert, strictEqual, throws } from "node:assert";
import { join } from "node:path";
import {
  Batches,
  buildCorpus,
  cleanBrown,
  evalBatches,
  splitOf,
} from "../../runtime/data/batches.ts";
import { Rng } from "../../runtime/data/rng.ts";
import { ByteTokenizer, tokenizerFromMetadata } from "../../runtime/data/tokenizer.ts";
import { loadBrown } from "../../runtime/host/corpus.ts";
import { writeFileAtomic } from "../../runtime/host/files.ts";

Deno.test("cleanBrown strips tags, restores quotes and punctuation spacing, keeps paragraphs", () => {
  const raw = [
    "",
    "Merger/nn-hl proposed/vbn-hl ",
    "",
    "\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, (/( 1/cd )/) it/pps ./. ",
    "",
    "It/pps urged/vbd Mr./np Pye/np Jr./np ./. ",
    "",
    "\tShe's/pps+bez 5%/cd ;/. A/at 1/2/cd inch/nn ?/. ",
  ].join("\n");
  strictEqual(
    cleanBrown(raw),
    'Merger proposed\nThe jury said "no evidence", (1) it. It urged Mr. Pye Jr.\n' +
      "She's 5%; A 1/2 inch?",
  );
});

Deno.test("the split is by file: every 20th file by name is validation", () => {
  strictEqual(splitOf(0), "train");
  strictEqual(splitOf(19), "val");
  strictEqual(splitOf(20), "train");
  strictEqual(splitOf(39), "val");
  const docs = Array.from({ length: 40 }, (_, i) => ({
    name: `d${String(39 - i).padStart(2, "0")}`,
    text: `<${39 - i}>`,
  }));
  const c = buildCorpus(docs, new ByteTokenizer()), t = new ByteTokenizer();
  strictEqual(t.decode(c.val), "<19>\n\n<39>");
  assert(t.decode(c.train).startsWith("<0>\n\n<1>\n\n"));
  assert(!t.decode(c.train).includes("<19>"));
});

Deno.test("byte tokenizer round-trips UTF-8 and refuses ids outside [0, 256)", () => {
  const t = tokenizerFromMetadata("bytes");
  strictEqual(t.vocabSize, 256);
  const ids = t.encode("naïve – ok");
  strictEqual(ids.length, 13);
  strictEqual(t.decode(ids), "naïve – ok");
  throws(() => t.decode([300]), /outside \[0, 256\)/);
  throws(() => tokenizerFromMetadata("bpe"), /unknown tokenizer "bpe"/);
});

Deno.test("Rng is a fixed mulberry32 stream; batches are seeded and resume exactly", () => {
  const r = new Rng(1);
  deepStrictEqual([r.next(), r.next()].map((x) => x.toFixed(8)), ["0.62707394", "0.00273572"]);
  const stream = Uint32Array.from({ length: 1000 }, (_, i) => i % 251);
  const a = new Batches(stream, { batch: 3, seqLen: 16 }, 42);
  const first = a.next();
  strictEqual(first.length, 3 * 17);
  for (let s = 0; s < 3; s++) {
    for (let j = 1; j < 17; j++) strictEqual(first[s * 17 + j], (first[s * 17 + j - 1] + 1) % 251);
  }
  const saved = a.state, second = a.next();
  const b = new Batches(stream, { batch: 3, seqLen: 16 }, 42);
  deepStrictEqual(b.next(), first);
  const c = new Batches(stream, { batch: 3, seqLen: 16 }, 7);
  c.restore(saved);
  deepStrictEqual(c.next(), second);
  strictEqual(c.step, 2);
  throws(() => new Batches(stream.subarray(0, 10), { batch: 1, seqLen: 16 }, 1), /cannot fill/);
});

Deno.test("evaluation batches are consecutive windows sharing one boundary token", () => {
  const stream = Uint32Array.from({ length: 50 }, (_, i) => i);
  const bs = evalBatches(stream, { batch: 2, seqLen: 5 }, 10);
  strictEqual(bs.length, 4); // 4 x 2 x 5 + 1 = 41 <= 50; a 5th would need 51
  deepStrictEqual([...bs[1]], [10, 11, 12, 13, 14, 15, 15, 16, 17, 18, 19, 20]);
});

Deno.test("the Brown package: 500 clean documents, 25 for validation, cached atomically", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const docs = await loadBrown({ cacheDir: dir });
    strictEqual(docs.length, 500);
    strictEqual(docs[0].name, "ca01");
    strictEqual(docs.filter((_, i) => splitOf(i) === "val").length, 25);
    assert(docs[0].text.startsWith("The Fulton County Grand Jury said Friday an investigation"));
    for (const d of docs) assert(!/\/(nn|at|vbd|nns|jj) /.test(d.text), `${d.name} keeps tags`);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    deepStrictEqual(files, ["brown-1.9.80-v1.json"]);
    deepStrictEqual(await loadBrown({ cacheDir: dir }), docs);
    const c = buildCorpus(docs, new ByteTokenizer());
    assert(
      c.train.length > 5_000_000 && c.val.length > 200_000,
      `${c.train.length} ${c.val.length}`,
    );
    assert(c.val.length < c.train.length / 10);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic writes leave no temporary file and replace the old content", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "sub", "f.bin");
    await writeFileAtomic(path, "old");
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    deepStrictEqual([...await Deno.readFile(path)], [1, 2, 3]);
    deepStrictEqual([...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name), ["f.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
