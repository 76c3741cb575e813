/**
 * Training configs: the defaults and the example files parse; a bad field (a non-finite or
 * absurd value, a key of Object.prototype) is refused with one line naming it; a BOM is accepted; the learning-rate schedule warms up linearly and decays to min_lr_ratio;
 * configSpec applies K, W, C and the position scheme to the preset; phd.embeddings sets the
 * number of embedding tables.
 */
import { deepStrictEqual, ok as assert, strictEqual, throws } from "node:assert";
import {
  configSpec,
  DEFAULT_CONFIG,
  embeddingTables,
  learningRate,
  parseConfig,
} from "../../runtime/model/config.ts";
import { readConfig } from "../../runtime/host/config_file.ts";

Deno.test("defaults and example configs parse", async () => {
  deepStrictEqual(parseConfig({}), DEFAULT_CONFIG);
  for await (const e of Deno.readDir(new URL("../../examples/configs/", import.meta.url))) {
    const text = await Deno.readTextFile(
      new URL(`../../examples/configs/${e.name}`, import.meta.url),
    );
    const c = parseConfig(JSON.parse(text));
    assert(c.train.steps > 0, e.name);
  }
});

Deno.test("bad fields are refused with one line naming them", () => {
  const bad: [unknown, RegExp][] = [
    [[], /must be a JSON object/],
    [{ optim: {} }, /unknown section "optim"/],
    [{ model: { hidden: 3 } }, /unknown field "hidden"/],
    [{ model: { hidden_size: "64" } }, /hidden_size must be a number/],
    [{ model: { hidden_size: 66 } }, /multiple of num_attention_heads/],
    [{ model: { hidden_size: 60 } }, /head dim .* must be a multiple of 4/],
    [{ model: { num_key_value_heads: 3 } }, /must divide num_attention_heads/],
    [{ phd: { variant: "diagonal" } }, /not a preset/],
    [{ phd: { K: 0 } }, /config.phd.K must be an integer >= 1/],
    [
      { phd: { embeddings: "own" } },
      /config.phd.embeddings must be "shared" or "per-copy", got "own"/,
    ],
    [{ phd: { embeddings: 2 } }, /config.phd.embeddings must be "shared" or "per-copy", got 2/],
    [{ train: { lr: -1 } }, /lr must be in \(0, 1\]/],
    [{ train: { schedule: "linear" } }, /schedule must be "cosine" or "constant"/],
    [{ phd: { spec: 3 } }, /config.phd.spec must be a preset name or a .ts file path/],
    [{ phd: { params: { W: -1 } } }, /config.phd.params.W must be an integer >= 0 or an array/],
    [{ data: { train: 5 } }, /config.data.train must be a path, folder or glob/],
    [{ data: { val_fraction: 1 } }, /config.data.val_fraction must be in \(0, 1\)/],
    [{ data: { tokenizer: { bpe: 100 } } }, /needs an integer N in \[258, 65536\]/],
    [
      { data: { tokenizer: ["x"] } },
      /config.data.tokenizer must be "bytes", a tokenizer.json path/,
    ],
    [{ data: { sep: 1 } }, /config.data has an unknown field "sep"/],
    [{ data: { tokens: 5 } }, /config.data.tokens must be a token file's path, got 5/],
    [
      { data: { tokens: "t.safetensors", train: "a.txt" } },
      /config.data.tokens \(a token file\) holds the text and its tokenizer: drop data.train/,
    ],
    // Non-finite and absurd values (JSON's 1e400 is Infinity).
    [JSON.parse('{"train": {"lr": 1e400}}'), /config.train.lr must be a finite number/],
    [{ train: { lr: 5 } }, /lr must be in \(0, 1\]/],
    [{ train: { steps: 1e300 } }, /steps must be an integer/],
    [{ train: { beta2: 1 } }, /beta2 must be in \[0, 1\)/],
    [{ train: { keep_last: 0 } }, /keep_last must be an integer >= 1/],
    [{ train: { save_every: 2.5 } }, /save_every must be an integer >= 0/],
    [{ model: { rms_norm_eps: 0 } }, /rms_norm_eps must be in \(0, 1\)/],
    [{ model: { rope_theta: 0.5 } }, /rope_theta must be in \(1,/],
    // Keys of Object.prototype are unknown, not a way to reach it.
    [JSON.parse('{"__proto__": {"x": 1}}'), /unknown section "__proto__"/],
    [{ constructor: {} }, /unknown section "constructor"/],
    [JSON.parse('{"train": {"__proto__": 1}}'), /unknown field "__proto__"/],
    [{ model: { constructor: 1 } }, /unknown field "constructor"/],
    [{ model: { toString: 1 } }, /unknown field "toString"/],
    [{ model: [] }, /config.model must be an object/],
  ];
  for (const [raw, msg] of bad) {
    throws(() => parseConfig(raw), (e: Error) => msg.test(e.message) && !e.message.includes("\n"));
  }
});

Deno.test("phd.embeddings: shared by default; per-copy gives K tables (one at K = 1)", () => {
  // absent stays absent (shared): configs of shared-table models read as before the option
  strictEqual("embeddings" in parseConfig({}).phd, false);
  strictEqual(parseConfig({ phd: { embeddings: "shared" } }).phd.embeddings, "shared");
  strictEqual(embeddingTables(parseConfig({}).phd), 1);
  strictEqual(embeddingTables(parseConfig({ phd: { K: 3, embeddings: "per-copy" } }).phd), 3);
  strictEqual(embeddingTables({ K: 1, embeddings: "per-copy" }), 1);
  strictEqual(embeddingTables({ K: 3 }), 1);
});

Deno.test("learning rate: linear warm-up, cosine to min_lr_ratio", () => {
  const t = { ...DEFAULT_CONFIG.train, steps: 110, warmup: 10, lr: 1, min_lr_ratio: 0.1 };
  strictEqual(learningRate(t, 0), 0.1);
  strictEqual(learningRate(t, 9), 1);
  strictEqual(learningRate(t, 10), 1);
  assert(Math.abs(learningRate(t, 60) - 0.55) < 1e-12);
  assert(Math.abs(learningRate(t, 110) - 0.1) < 1e-12);
  strictEqual(learningRate({ ...t, schedule: "constant" }, 80), 1);
});

Deno.test("phd.spec names a preset: its parameters and tables from phd.params; unknown ones refused", () => {
  const p = { ...DEFAULT_CONFIG.phd, spec: "document", K: 1, params: { docs: [0, 3] } };
  deepStrictEqual(configSpec(p).tables.docs, [0, 3]);
  throws(
    () => configSpec({ ...p, params: { Z: 1 } }),
    /spec "document" has no parameter Z \(it has: docs\)/,
  );
  throws(() => configSpec({ ...p, spec: "my.ts" }), /is not a preset: load the spec file/);
});

Deno.test("configSpec applies K, W, C and positions to the preset", () => {
  const s = configSpec({ K: 3, variant: "phd-cswa", W: 8, C: 16, positions: "flattened" });
  strictEqual(s.name, "phd_cswa_k3_w8_c16");
  strictEqual(s.positions, "flattened");
  strictEqual(configSpec({ K: 1, variant: "causal", W: 8, C: 16, positions: "shared" }).K, 1);
});

Deno.test("a config file may start with a UTF-8 byte-order mark", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c.json`;
  await Deno.writeTextFile(path, "\uFEFF" + JSON.stringify({ train: { steps: 7 } }));
  strictEqual((await readConfig(path)).train.steps, 7);
  await Deno.remove(dir, { recursive: true });
});
