/**
 * Durable training, as a user meets it (real `deno run cli/train.ts` processes): a run killed with
 * SIGKILL at random moments (and once stopped with SIGTERM) always leaves a complete checkpoint
 * unit that loads, and resuming from it, as many times as it is killed, ends on exactly the
 * weights of an uninterrupted run, bit for bit, under the cosine and the constant schedule. A
 * model/state pair of two different saves is refused with one line; an exploding run stops with
 * one line and writes no checkpoint of bad weights; eval refuses NaN weights naming the tensor.
 */
import { deepStrictEqual, ok as assert, strictEqual } from "node:assert";
import { join } from "node:path";
import { latestUnit, listSeries, seriesPath } from "../../runtime/host/checkpoint.ts";
import { decodeCheckpoint, encodeCheckpoint, statePath } from "../../runtime/io/checkpoint.ts";
import { DEFAULT_CONFIG } from "../../runtime/model/config.ts";
import { initParamsF32 } from "../fixtures/model.ts";
import { rng } from "../fixtures/attention.ts";
import { assertUsageError, DENO_RUN, runScript } from "../fixtures/cli.ts";

const ROOT = new URL("../..", import.meta.url);
const STEPS = 16, SAVE_EVERY = 2;

/** A model small enough that a step takes milliseconds, saving every 2 of 16 steps. */
function tinyConfig(schedule: "cosine" | "constant") {
  return {
    model: {
      hidden_size: 16,
      intermediate_size: 32,
      num_attention_heads: 2,
      num_key_value_heads: 1,
    },
    train: {
      steps: STEPS,
      batch_size: 2,
      seq_len: 16,
      warmup: 3,
      schedule,
      eval_batches: 1,
      eval_every: 0,
      log_every: 1,
      save_every: SAVE_EVERY,
      keep_last: 2,
    },
  };
}

async function setup(schedule: "cosine" | "constant") {
  const dir = await Deno.makeTempDir({ prefix: `durable_${schedule}_` });
  const cfg = join(dir, "c.json");
  await Deno.writeTextFile(cfg, JSON.stringify(tinyConfig(schedule)));
  return { dir, cfg };
}

/** The weights of a model file, as raw bytes per tensor. */
async function weights(path: string): Promise<Record<string, Uint8Array>> {
  const ck = decodeCheckpoint(await Deno.readFile(path));
  return Object.fromEntries(
    Object.entries(ck.params).map((
      [k, v],
    ) => [k, new Uint8Array(v.buffer, v.byteOffset, v.byteLength)]),
  );
}

/** Files left by a killed writer (`writeFileAtomic` temps). */
async function temps(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).filter((n) =>
    n.includes(".tmp-")
  );
}

/**
 * Starts `train` and stops it with `signal` once the run has written its `after`-th periodic
 * checkpoint plus a random extra delay (so the kill lands anywhere: in a step, in a save, between
 * the two files of a unit). Returns the exit status.
 */
async function trainAndStop(
  args: string[],
  out: string,
  o: { signal: Deno.Signal; after: number; delayMs: number },
): Promise<Deno.CommandStatus> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...DENO_RUN, "cli/train.ts", ...args, "--out", out, "--quiet"],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const errText = new Response(child.stderr).text();
  let done = false;
  const status = child.status.then((s) => (done = true, s));
  // Wait for the run's own saves (a resumed run starts beside older ones: count new steps).
  const first = (await listSeries(out)).at(-1)?.step ?? 0;
  while (!done) {
    const s = await listSeries(out);
    if (s.filter((x) => x.step > first).length >= o.after) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  if (!done) {
    await new Promise((r) => setTimeout(r, o.delayMs));
    try {
      child.kill(o.signal);
    } catch { /* it finished meanwhile */ }
  }
  const st = await status;
  await errText;
  return st;
}

async function train(args: string[]) {
  const r = await runScript("cli/train.ts", ...args, "--json", "--quiet");
  strictEqual(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

for (const schedule of ["cosine", "constant"] as const) {
  Deno.test(`${schedule}: killed at random moments, resumed each time, ends bit for bit on the uninterrupted run`, async () => {
    const { dir, cfg } = await setup(schedule);
    const ref = join(dir, "ref.safetensors");
    strictEqual((await train(["--config", cfg, "--out", ref])).steps, STEPS);
    const want = await weights(ref);

    const out = join(dir, "run.safetensors"), r = rng(schedule === "cosine" ? 7 : 8);
    // First a graceful stop (SIGTERM: a final save, exit 143), then kills with no warning.
    const stops: { signal: Deno.Signal; after: number }[] = [
      { signal: "SIGTERM", after: 1 },
      { signal: "SIGKILL", after: 1 },
      { signal: "SIGKILL", after: 2 },
    ];
    let args = ["--config", cfg], interrupted = 0;
    for (const stop of stops) {
      const delayMs = Math.floor(r() * 40);
      const st = await trainAndStop(args, out, { ...stop, delayMs });
      const what = `${stop.signal} after ${stop.after} saves + ${delayMs} ms`;
      if (st.success) break; // the run outran the signal: nothing left to resume
      interrupted++;
      if (stop.signal === "SIGTERM") strictEqual(st.code, 143, what);
      // What is left always holds a complete unit that loads (and at most keep_last + 1 units).
      const unit = await latestUnit(out);
      assert(unit.saved.state.step % SAVE_EVERY === 0 || unit.path === out, what);
      assert((await listSeries(out)).length <= 3, what);
      args = ["--resume", out];
    }
    assert(interrupted > 0, "no stop landed before the run ended");
    const last = await train([...args, "--out", out]);
    strictEqual(last.steps, STEPS);
    deepStrictEqual(await weights(out), want, `${schedule}: resumed weights differ`);
    deepStrictEqual(await temps(dir), [], "stale temp files were cleaned");
    await Deno.remove(dir, { recursive: true });
  });
}

Deno.test("a model and a state of two different saves are refused with one line", async () => {
  const { dir, cfg } = await setup("cosine");
  const out = join(dir, "m.safetensors");
  await train(["--config", cfg, "--out", out, "--steps", "6"]);
  // The state of the final save beside the model of the step-4 save: a save cut between files.
  const mixed = seriesPath(out, 4);
  await Deno.copyFile(statePath(out), statePath(mixed));
  const r = await runScript("cli/train.ts", "--resume", mixed, "--out", out, "--quiet");
  assertUsageError(r, /not one checkpoint: a save was interrupted/, "mixed pair");
  // --resume of the base skips nothing usable here: the final unit itself is complete.
  strictEqual((await latestUnit(out)).saved.state.step, 6);
  // A changed config is refused unless asked for, and a finished run says how to go further.
  assertUsageError(
    await runScript("cli/train.ts", "--resume", out, "--steps", "9", "--out", out),
    /changes train.steps 9 \(saved 6\).*--override-config/,
    "changed steps",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a time interval saves too, and keep_last bounds the series", async () => {
  const { dir } = await setup("cosine");
  const cfg = join(dir, "timed.json"), c = tinyConfig("cosine");
  const train_ = { ...c.train, steps: 6, save_every: 0, save_every_seconds: 0.001, keep_last: 2 };
  await Deno.writeTextFile(cfg, JSON.stringify({ ...c, train: train_ }));
  const out = join(dir, "m.safetensors");
  strictEqual((await train(["--config", cfg, "--out", out])).saves, 6);
  // Every step saved (steps 1..5 periodic, 6 final); only the last two periodic units remain.
  deepStrictEqual((await listSeries(out)).map((s) => s.step), [4, 5]);
  for (const s of [4, 5]) await Deno.stat(statePath(seriesPath(out, s)));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an exploding run stops with one line and never writes bad weights", async () => {
  const { dir } = await setup("constant");
  const cfg = join(dir, "hot.json");
  // Sign-like AdamW steps of size 1 on every weight (beta2 0, no clipping): the loss explodes.
  const c = tinyConfig("constant");
  await Deno.writeTextFile(
    cfg,
    JSON.stringify({
      ...c,
      train: { ...c.train, lr: 1, warmup: 0, beta2: 0, grad_clip: 0, weight_decay: 0 },
    }),
  );
  const out = join(dir, "m.safetensors");
  const r = await runScript("cli/train.ts", "--config", cfg, "--out", out, "--quiet");
  assertUsageError(
    r,
    /training diverged at step \d+ \(.*\): lower train.lr \(now 1\)/,
    "explosion",
  );
  await Deno.stat(out).then(() => assert(false, "a diverged run wrote its checkpoint"), () => {});
  for (const { path } of await listSeries(out)) decodeCheckpoint(await Deno.readFile(path));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("eval and generate refuse NaN weights naming the tensor", async () => {
  const dir = await Deno.makeTempDir();
  const model = { ...DEFAULT_CONFIG.model, hidden_size: 16, intermediate_size: 24 };
  const ckpt = join(dir, "nan.safetensors");
  // encodeCheckpoint refuses NaN, so write the file around it: a valid one, then poke a value.
  const params = initParamsF32(model, 1);
  const bytes = encodeCheckpoint({ model, phd: DEFAULT_CONFIG.phd, tokenizer: "bytes", params });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const at = 8 + n + header["model.layers.1.mlp.up_proj.weight"].data_offsets[0] + 5 * 4;
  new DataView(bytes.buffer).setFloat32(at, NaN, true);
  await Deno.writeFile(ckpt, bytes);
  await Deno.writeTextFile(join(dir, "t.txt"), "some text to score");
  const pattern = /tensor "model.layers.1.mlp.up_proj.weight" holds NaN at index 5/;
  assertUsageError(
    await runScript("cli/eval.ts", "--ckpt", ckpt, "--text-file", join(dir, "t.txt")),
    pattern,
    "eval",
  );
  assertUsageError(
    await runScript("cli/generate.ts", "--ckpt", ckpt, "--prompt", "a", "--max-new-tokens", "2"),
    pattern,
    "generate",
  );
  await Deno.remove(dir, { recursive: true });
});
