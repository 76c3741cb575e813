/**
 * `deno task eval` and `deno task train` as a user runs them (subprocesses). The loss eval
 * reports for a checkpoint equals an independent implementation of docs/DESIGN.md 1.3 (the float64
 * reference model, fed by the minimal safetensors parser of tests/fixtures/independent_model.ts) to 1e-4 relative, over a
 * text cut into several windows with a short last one. A 3-step training run writes a checkpoint,
 * its state and a loss picture, and resuming it to step 5 works. Bad input gets one error line.
 */
import { deepStrictEqual, ok as assert, strictEqual } from "node:assert";
import { join } from "node:path";
import { configSpec } from "../../runtime/model/config.ts";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { forwardBackward } from "../../reference/model.ts";
import { initParams } from "../../runtime/model/params.ts";
import { runScript } from "../fixtures/cli.ts";
import { tinyModel } from "../fixtures/model.ts";
import { readSafetensors } from "../fixtures/independent_model.ts";
import { TINY_SECTION } from "../fixtures/model.ts";

/** Runs `deno run -A <script> ...args` as the tasks do. */
const deno = ([script, ...args]: string[]) => runScript(script, ...args);

const TEXT = "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent " +
  "primary election produced no evidence that any irregularities took place. The jury further " +
  "said in term-end presentments that the City Executive Committee, which had over-all charge " +
  "of the election, deserves the praise and thanks of the City of Atlanta.";

Deno.test("eval's loss equals an independent float64 implementation reading the same file", async () => {
  const dir = await Deno.makeTempDir();
  const model = tinyModel({ vocab_size: 256, tie_word_embeddings: false });
  const phd = { K: 2, variant: "phd-cswa", W: 3, C: 8, positions: "shared" as const };
  const init = initParams(model, { seed: 4, std: 0.3 });
  const params = Object.fromEntries(
    Object.entries(init).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  const ckpt = join(dir, "m.safetensors"), text = join(dir, "t.txt");
  await Deno.writeFile(ckpt, encodeCheckpoint({ model, phd, tokenizer: "bytes", params }));
  await Deno.writeTextFile(text, TEXT);
  const context = 64;
  const r = await deno([
    "cli/eval.ts",
    "--ckpt",
    ckpt,
    "--text-file",
    text,
    "--context",
    `${context}`,
    "--json",
  ]);
  strictEqual(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout);

  // Independent: parse the file, rebuild the config from its metadata, run the reference.
  const file = readSafetensors(await Deno.readFile(ckpt));
  const config = { ...JSON.parse(file.meta.config) };
  const spec = configSpec(JSON.parse(file.meta.phd));
  const ids = new TextEncoder().encode(TEXT);
  let sum = 0, count = 0;
  for (let start = 0; start + 1 < ids.length; start += context) {
    const len = Math.min(context, ids.length - 1 - start);
    const window = ids.subarray(start, start + len + 1);
    const { loss } = forwardBackward({ config, spec, params: file.tensors }, {
      tokens: window,
      batch: 1,
    });
    sum += loss * len;
    count += len;
  }
  strictEqual(got.tokens, count);
  const want = sum / count;
  assert(Math.abs(got.loss - want) <= 1e-4 * want, `eval ${got.loss} vs independent ${want}`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("train writes checkpoint, state and picture; resume continues to a later step", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = join(dir, "c.json");
  await Deno.writeTextFile(
    cfg,
    JSON.stringify({
      model: TINY_SECTION,
      train: { steps: 3, batch_size: 2, seq_len: 16, eval_batches: 1, log_every: 1, eval_every: 0 },
    }),
  );
  const out = join(dir, "m.safetensors");
  const a = await deno(["cli/train.ts", "--config", cfg, "--out", out, "--json", "--quiet"]);
  strictEqual(a.code, 0, a.stderr);
  const rep = JSON.parse(a.stdout);
  strictEqual(rep.steps, 3);
  assert(Number.isFinite(rep.val_loss_after));
  for (const f of [out, join(dir, "m.state.safetensors"), join(dir, "m.loss.svg")]) {
    assert((await Deno.stat(f)).size > 0, f);
  }
  const b = await deno([
    "cli/train.ts",
    "--resume",
    out,
    "--steps",
    "5",
    "--override-config",
    "--out",
    out,
    "--json",
    "--quiet",
  ]);
  strictEqual(b.code, 0, b.stderr);
  strictEqual(JSON.parse(b.stdout).steps, 5);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad input: one error line and a non-zero exit", async () => {
  const cases: [string[], RegExp][] = [
    [["cli/eval.ts", "--ckpt", "nope.safetensors", "--split", "val"], /does not exist/],
    [["cli/eval.ts", "--ckpt", "x"], /exactly one of --text-file/],
    [["cli/train.ts", "--config", "nope.json"], /does not exist/],
    [["cli/train.ts", "--steps", "0"], /--steps must be a positive integer/],
    [["cli/train.ts", "--layout", "diagonal"], /--layout must be one of/],
  ];
  for (const [args, msg] of cases) {
    const r = await deno(args);
    strictEqual(r.code, 1, `${args.join(" ")}: exit ${r.code}`);
    const lines = r.stderr.trim().split("\n");
    deepStrictEqual(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
    assert(msg.test(lines[0]), `${args.join(" ")}: ${lines[0]}`);
  }
});
