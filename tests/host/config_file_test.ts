/**
 * Config files that name a spec (runtime/host/config_file.ts): `phd.spec` is a preset or a `.ts`
 * file relative to the config file, trained with its own K, parameters and positions unless the
 * section (or a flag) says otherwise, tables too; `variant` keeps working; data paths resolve
 * against the config's folder, flags' against the working directory; a parameter the spec lacks
 * is one line naming the file and the spec's own.
 */
import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { join } from "node:path";
import { loadRunConfig } from "../../runtime/host/config_file.ts";
import { configSpec } from "../../runtime/model/config.ts";
import { parseCheckpointMetadata } from "../../runtime/io/safetensors.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function configIn(dir: string, name: string, raw: unknown): Promise<string> {
  const p = join(dir, name);
  await Deno.writeTextFile(p, JSON.stringify(raw));
  return p;
}

Deno.test("phd.spec: a file relative to the config, its own K unless stated, params and tables", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfg_" });
  await Deno.copyFile(join(ROOT, "examples/masks/phd_swa_pos.ts"), join(dir, "mine.ts"));
  await Deno.writeTextFile(
    join(dir, "mine.ts"),
    (await Deno.readTextFile(join(dir, "mine.ts"))).replace(
      "../../dsl/mod.ts",
      join(ROOT, "dsl/mod.ts"),
    ),
  );
  const own = await loadRunConfig(await configIn(dir, "a.json", { phd: { spec: "mine.ts" } }));
  strictEqual(own.spec.name, "phd_swa_pos_k3_w4");
  deepStrictEqual(
    [own.config.phd.K, own.config.phd.W, own.config.phd.variant],
    [3, 4, "phd_swa_pos"],
  );
  const set = await loadRunConfig(
    await configIn(dir, "b.json", {
      phd: { spec: "mine.ts", K: 2, params: { W: 6 }, positions: "flattened" },
    }),
  );
  strictEqual(set.spec.name, "phd_swa_pos_k2_w6");
  strictEqual(set.spec.positions, "flattened");
  strictEqual(set.config.phd.embeddings, undefined);
  // phd.embeddings belongs to the model, not the spec: a spec file keeps it
  const perCopy = await loadRunConfig(
    await configIn(dir, "e.json", { phd: { spec: "mine.ts", embeddings: "per-copy" } }),
  );
  strictEqual(perCopy.config.phd.embeddings, "per-copy");
  await rejects(
    loadRunConfig(await configIn(dir, "f.json", { phd: { spec: "shd", embeddings: "own" } })),
    /config.phd.embeddings must be "shared" or "per-copy"/,
  );
  // flags win over the file; W is a shorthand of params.W
  const flags = await loadRunConfig(
    await configIn(dir, "c.json", { phd: { spec: "mine.ts", W: 5 } }),
    {
      K: 4,
      steps: 7,
      lr: 0.5,
      batch_size: 3,
      seq_len: 9,
    },
  );
  strictEqual(flags.spec.name, "phd_swa_pos_k4_w5");
  deepStrictEqual(
    [
      flags.config.train.steps,
      flags.config.train.lr,
      flags.config.train.batch_size,
      flags.config.train.seq_len,
    ],
    [7, 0.5, 3, 9],
  );
  const docs = await loadRunConfig(undefined, { spec: "document", params: { docs: [0, 4, 9] } });
  deepStrictEqual(docs.spec.tables.docs, [0, 4, 9]);
  await rejects(
    loadRunConfig(await configIn(dir, "d.json", { phd: { spec: "mine.ts", params: { Q: 1 } } })),
    /d.json: spec "phd_swa_pos" has no parameter Q \(it has: W\)/,
  );
  await rejects(
    loadRunConfig(await configIn(dir, "e.json", { phd: { spec: "gone.ts" } })),
    /e.json: spec file ".*gone.ts" does not exist/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("variant stays an alias with the config's defaults; paths resolve against the config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cfg_" });
  const old = await loadRunConfig(
    await configIn(dir, "v.json", { phd: { variant: "phd-swa", W: 3 } }),
  );
  strictEqual(old.spec.name, configSpec(old.config.phd).name);
  strictEqual(old.spec.name, "phd_swa_k2_w3");
  const d = await loadRunConfig(
    await configIn(dir, "d.json", {
      data: { train: "texts/*.txt", val: ["v.txt"], tokenizer: "tok.json" },
    }),
  );
  deepStrictEqual(
    [d.config.data.train, d.config.data.val, d.config.data.tokenizer],
    [join(dir, "texts/*.txt"), [join(dir, "v.txt")], join(dir, "tok.json")],
  );
  const f = await loadRunConfig(join(dir, "d.json"), { data: ["x.txt"], tokenizer: { bpe: 512 } });
  deepStrictEqual([f.config.data.train, f.config.data.tokenizer], [[join(Deno.cwd(), "x.txt")], {
    bpe: 512,
  }]);
  await rejects(
    loadRunConfig(await configIn(dir, "t.json", { data: { tokenizer: { bpe: 10 } } })),
    /t.json: config.data.tokenizer \{"bpe": N\} needs an integer N in \[258, 65536\]/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a config or checkpoint metadata that is not JSON is one line", async () => {
  const dir = await Deno.makeTempDir();
  // V8 quotes the text around the fault; a multi-line file put its newlines into the message.
  const bad = join(dir, "bad.json");
  await Deno.writeTextFile(bad, '{\n  "train": {\n    "steps": 10,\n  }\n}\n');
  await rejects(
    loadRunConfig(bad),
    (e: Error) => /is not JSON: /.test(e.message) && !/\n/.test(e.message),
  );
  throws(
    () => parseCheckpointMetadata({ config: "{}", phd: '{"mask":\n  var}', tokenizer: "bytes" }),
    (e: Error) => /__metadata__\.phd is not JSON: /.test(e.message) && !/\n/.test(e.message),
  );
  await Deno.remove(dir, { recursive: true });
});
