/**
 * Any spec, any text, a real tokenizer, as a user runs it (subprocesses): `train --spec
 * examples/masks/phd_swa_pos.ts --data some.txt --steps 20`, then `generate --ckpt F --greedy`,
 * whose tokens equal an independent float64 implementation of that mask written from its formula
 * (tests/fixtures/independent_model.ts) reading the same checkpoint; the same with a byte-level
 * BPE trained on the text (`--tokenizer bpe:300`), its tokenizer.json written beside the
 * checkpoint and read here by @huggingface/tokenizers directly. Bad input is one error line and
 * exit 1 before any training.
 */
import { deepStrictEqual, ok as assert, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { prefixLm } from "../../dsl/presets.ts";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { DEFAULT_CONFIG, phdOf } from "../../runtime/model/config.ts";
import { initParams } from "../../runtime/model/params.ts";
import { trainBpe } from "../../runtime/data/tokenizer.ts";
import { Rng } from "../../runtime/data/rng.ts";
import { assertUsageError, runScript, specFiles } from "../fixtures/cli.ts";
import { type Allowed, greedyTokens, readSafetensors } from "../fixtures/independent_model.ts";

const MODEL = {
  hidden_size: 16,
  intermediate_size: 24,
  num_attention_heads: 2,
  num_key_value_heads: 1,
};

/** A folder with some.txt (a few hundred lines of made-up sentences) and a tiny-model config. */
async function workspace(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "anyspec_" });
  const words = "the cat sat on a mat and then it ran to the big red house where a dog slept"
    .split(" ");
  const r = new Rng(3);
  const lines = Array.from(
    { length: 300 },
    () => Array.from({ length: 10 }, () => words[r.int(words.length)]).join(" "),
  );
  await Deno.writeTextFile(join(dir, "some.txt"), lines.join("\n") + "\n");
  await Deno.writeTextFile(
    join(dir, "tiny.json"),
    JSON.stringify({
      model: MODEL,
      train: { batch_size: 2, seq_len: 16, eval_every: 0, eval_batches: 1, warmup: 2 },
    }),
  );
  return dir;
}

/** examples/masks/phd_swa_pos.ts from its comment: PHD, or both hidden and n - W < m < n. */
function swaPos(W: number): Allowed {
  return (j, n, i, m) =>
    (i === 0 && m < n) || (m === n && i <= j) || (i >= 1 && j >= 1 && n - W < m && m < n);
}

Deno.test("train any spec on a text file, then greedy generate = float64 (bytes and a trained BPE)", async () => {
  const dir = await workspace();
  const train = (out: string, ...more: string[]) =>
    runScript(
      "cli/train.ts",
      "--config",
      join(dir, "tiny.json"),
      "--spec",
      "examples/masks/phd_swa_pos.ts",
      "--data",
      join(dir, "some.txt"),
      "--steps",
      "20",
      "--out",
      join(dir, out),
      "--quiet",
      ...more,
    );
  const runs = await Promise.all([
    train("m.safetensors"),
    train("b.safetensors", "--tokenizer", "bpe:300"),
  ]);
  for (const r of runs) strictEqual(r.code, 0, r.stderr);

  // bytes: exactly the judged command, plus --json to read the tokens
  const g = await runScript(
    "cli/generate.ts",
    "--ckpt",
    join(dir, "m.safetensors"),
    "--greedy",
    "--json",
  );
  strictEqual(g.code, 0, g.stderr);
  const got = JSON.parse(g.stdout),
    file = readSafetensors(await Deno.readFile(join(dir, "m.safetensors")));
  const phd = JSON.parse(file.meta.phd);
  strictEqual(phd.spec.endsWith("phd_swa_pos.ts"), true);
  strictEqual(phd.mask_spec.name, "phd_swa_pos");
  const prompt = Array.from(new TextEncoder().encode(got.prompt));
  deepStrictEqual(got.tokens, greedyTokens(file, prompt, got.tokens.length, swaPos(phd.W)));
  strictEqual(got.tokens.length, 64);

  // BPE: the tokenizer file beside the checkpoint, embedded in it, run here by the library itself
  const bpeFile = join(dir, "b.tokenizer.json");
  const hf = new HfTokenizer(JSON.parse(await Deno.readTextFile(bpeFile)), {});
  const bfile = readSafetensors(await Deno.readFile(join(dir, "b.safetensors")));
  strictEqual(JSON.parse(bfile.meta.config).vocab_size, 300);
  strictEqual(JSON.parse(bfile.meta.tokenizer).kind, "bpe");
  const b = await runScript(
    "cli/generate.ts",
    "--ckpt",
    join(dir, "b.safetensors"),
    "--prompt",
    "the cat",
    "--max-new-tokens",
    "16",
    "--greedy",
    "--json",
  );
  strictEqual(b.code, 0, b.stderr);
  const bg = JSON.parse(b.stdout);
  const ids = hf.encode("the cat", { add_special_tokens: false }).ids;
  assert(ids.length < "the cat".length, "the BPE merged some bytes");
  const W = JSON.parse(bfile.meta.phd).W;
  deepStrictEqual(bg.tokens, greedyTokens(bfile, ids, 16, swaPos(W)));
  strictEqual(
    bg.text,
    hf.decode(bg.tokens, { skip_special_tokens: false, clean_up_tokenization_spaces: false }),
  );

  // eval reports nats per token and bits per byte
  const e = await runScript(
    "cli/eval.ts",
    "--ckpt",
    join(dir, "b.safetensors"),
    "--text-file",
    join(dir, "some.txt"),
    "--max-windows",
    "4",
    "--json",
  );
  strictEqual(e.code, 0, e.stderr);
  const ev = JSON.parse(e.stdout);
  assert(ev.loss > 0 && ev.bits_per_byte > 0 && ev.bytes > ev.tokens, e.stdout);
  strictEqual(
    Math.abs(ev.bits_per_byte - ev.loss * ev.tokens / (ev.bytes * Math.LN2)) < 1e-9,
    true,
  );
  await Deno.remove(dir, { recursive: true });
});

/** A tiny untrained checkpoint of `spec` (bytes tokenizer), written to `path`. */
async function tinyCheckpoint(path: string, spec = prefixLm({ P: 4 })) {
  const model = { ...DEFAULT_CONFIG.model, ...MODEL };
  const init = initParams(model, { seed: 1, std: 0.3 });
  const params = Object.fromEntries(
    Object.entries(init).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  const bytes = encodeCheckpoint({
    model,
    phd: phdOf(spec, "prefix-lm"),
    spec,
    tokenizer: "bytes",
    params,
  });
  await Deno.writeFile(path, bytes);
  return bytes;
}

/** The same file with its `phd` metadata changed by `edit`. */
function withPhd(bytes: Uint8Array, edit: (phd: Record<string, unknown>) => void): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const phd = JSON.parse(header.__metadata__.phd);
  edit(phd);
  header.__metadata__.phd = JSON.stringify(phd);
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(bytes.subarray(8 + n), 8 + h.length);
  return out;
}

Deno.test("bad input: one error line and exit 1 before any training", async () => {
  const dir = await workspace();
  const specs = await specFiles("anyspec_specs_", ["nospec"]);
  await Deno.writeTextFile(join(dir, "rows.jsonl"), '{"body": "a document"}\n');
  await Deno.writeTextFile(join(dir, "bad.json"), '{"vocab": {"a": 0}}');
  const bpe = join(dir, "other.tokenizer.json");
  await Deno.writeTextFile(bpe, JSON.stringify(trainBpe(["the cat sat on the mat"], 260)));
  const ckpt = join(dir, "plm.safetensors"), broken = join(dir, "broken.safetensors");
  const bytes = await tinyCheckpoint(ckpt);
  await Deno.writeFile(
    broken,
    withPhd(bytes, (p) => ((p.mask_spec as { mask: unknown }).mask = { op: "xor" })),
  );
  const some = join(dir, "some.txt");
  const train = (
    ...a: string[]
  ) => ["cli/train.ts", "--data", some, "--steps", "1", "--out", join(dir, "x.safetensors"), ...a];
  await Deno.writeTextFile(join(dir, "short.txt"), "too short");
  const cases: [string[], RegExp][] = [
    [
      ["cli/train.ts", "--data", join(dir, "short.txt"), "--steps", "1"],
      /the training text holds 8 ids, fewer than one batch/,
    ],
    [train("--spec", join(dir, "nope.ts")), /spec file ".*nope.ts" does not exist/],
    [train("--spec", join(specs, "nospec.ts")), /exports no AttentionSpec/],
    [
      train("--spec", "examples/masks/phd_swa_pos.ts", "--param", "Z=3"),
      /spec "phd_swa_pos" has no parameter Z \(it has: W\)/,
    ],
    [
      ["cli/train.ts", "--data", join(dir, "none", "*.txt"), "--steps", "1"],
      /data.train ".*none\/\*.txt" matches no file/,
    ],
    [
      ["cli/train.ts", "--data", join(dir, "rows.jsonl"), "--steps", "1"],
      /rows.jsonl:1: no string field "text"/,
    ],
    [
      train("--tokenizer", join(dir, "bad.json")),
      /tokenizer file ".*bad.json" is not a tokenizer.json/,
    ],
    [
      ["cli/generate.ts", "--ckpt", ckpt, "--tokenizer", bpe],
      /tokenizer other.tokenizer.json \(BPE\) has 260 ids but the checkpoint's vocabulary is 256/,
    ],
    [
      ["cli/eval.ts", "--ckpt", ckpt, "--text-file", some, "--tokenizer", bpe],
      /has 260 ids but the checkpoint's vocabulary is 256/,
    ],
    [
      ["cli/generate.ts", "--ckpt", ckpt, "--greedy"],
      /not causal: query .* attends key .* at a later position/,
    ],
    [
      ["cli/generate.ts", "--ckpt", broken],
      /attention spec cannot be rebuilt: .*unknown boolean op "xor"/,
    ],
  ];
  const runs = await Promise.all(cases.map(([[script, ...args]]) => runScript(script, ...args)));
  runs.forEach((r, i) => assertUsageError(r, cases[i][1], cases[i][0].join(" ")));
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(specs, { recursive: true });
});

Deno.test("presets lists every preset and every file of examples/masks/ with K and parameters", async () => {
  const r = await runScript("cli/presets.ts", "--json");
  strictEqual(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as { spec: string; K: number; params: object }[];
  const files = [...Deno.readDirSync("examples/masks")].map((e) => `examples/masks/${e.name}`);
  for (const want of ["causal", "phd", "phd-swa", "phd-cswa", "document", ...files]) {
    assert(list.some((e) => e.spec === want), `presets lacks ${want}`);
  }
  const swaPos = list.find((e) => e.spec === "examples/masks/phd_swa_pos.ts")!;
  deepStrictEqual([swaPos.K, swaPos.params], [3, { W: 4 }]);
});
