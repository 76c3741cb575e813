/**
 * python/phd_torch under torchrun (DistributedDataParallel over gloo, Debian's torch 1.13, `-r 1
 * -t 1`), as a user runs it on a token file of `deno task tokenize`:
 * - 2 processes with a global batch of 8 take the steps 1 process takes at batch 8: per-step losses
 *   equal to 1e-5 relative, final weights to 1e-4 (float32 sums in another order: measured 1.3e-6
 *   and 1e-5 after 60 steps);
 * - `kill -9` of rank 1 mid-run, then `--resume`: the losses after the resumed step and the final
 *   weights equal the uninterrupted run's bit for bit;
 * - the torchrun checkpoint gives the same `deno task generate --greedy` tokens as PyTorch's loop;
 * - bad input gets one `error:` line: a world size that does not divide the batch (rank 0 says it;
 *   torchrun adds its own failure report), --fsdp where torch cannot run it, bf16 on the CPU, an
 *   --out that is an input.
 */
import { deepStrictEqual as assertEquals, match, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { decodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { assertUsageError, runScript } from "../fixtures/cli.ts";
import {
  phdTorch,
  rank0,
  runFolder,
  spawnTorchrun,
  torchTest,
  workerPid,
} from "../fixtures/torch.ts";

const STEPS = 60, SAVE_EVERY = 10;

type Report = { losses: [number, number][]; world_size: number; out: string };

async function report(r: Promise<{ code: number; stdout: string; stderr: string }>, ranks = 1) {
  const x = await r;
  assertEquals(x.code, 0, x.stderr);
  return JSON.parse(ranks > 1 ? rank0(x.stdout) : x.stdout) as Report;
}

async function weights(path: string) {
  return decodeCheckpoint(await Deno.readFile(path)).params;
}

/** One line of torchrun's combined stderr starts with `error:`, and it matches `pattern`. */
function assertOneErrorLine(r: { code: number; stderr: string }, pattern: RegExp) {
  assert(r.code !== 0, "exit status 0");
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  assertEquals(lines.length, 1, r.stderr);
  match(lines[0], pattern);
}

torchTest(
  "torchrun: 2 processes take 1 process's steps; kill -9 and --resume; greedy tokens cross",
  async () => {
    const f = await runFolder("torchrun_", { steps: STEPS, save_every: SAVE_EVERY });
    const args = (out: string) => [
      ...["train", "--mask", f.mask, "--config", f.config, "--tokens", f.tokens],
      ...["--out", join(f.dir, out, "m.safetensors")],
    ];
    const [one, two] = await Promise.all([
      report(phdTorch([...args("one"), "--json"])),
      report(phdTorch([...args("two"), "--json"], 2), 2),
    ]);
    assertEquals(two.world_size, 2);
    assertEquals(one.losses.length, STEPS);
    for (const [i, [step, loss]] of one.losses.entries()) {
      const rel = Math.abs(two.losses[i][1] - loss) / loss;
      assert(rel <= 1e-5, `step ${step}: 1 process ${loss}, 2 processes ${two.losses[i][1]}`);
    }
    assert(one.losses[STEPS - 1][1] < one.losses[0][1] - 0.5, "the model learns");
    const [w1, w2] = await Promise.all([weights(one.out), weights(two.out)]);
    for (const [name, a] of Object.entries(w1)) {
      const worst = a.reduce((m, x, i) => Math.max(m, Math.abs(x - w2[name][i])), 0);
      assert(worst <= 1e-4, `${name}: 1 and 2 processes differ by ${worst}`);
    }

    // kill -9 of rank 1 once rank 0 logged step 12 (the step-10 unit is on disk), then --resume
    const killed = join(f.dir, "killed", "m.safetensors");
    const child = spawnTorchrun(args("killed"), 2);
    const stdout = new Response(child.stdout).text();
    const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "", victim: number | undefined;
    while (victim === undefined) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the run ended before the kill: ${seen}`);
      seen += value;
      if (/^step 12\//m.test(seen)) victim = await workerPid(child.pid, 1);
    }
    Deno.kill(victim, "SIGKILL");
    while (!(await lines.read()).done) { /* drain */ }
    await stdout;
    assert((await child.status).code !== 0, "torchrun reports the killed rank");
    const left = await Deno.stat(killed).then(() => true, () => false);
    assert(!left, "the killed run did not finish");
    const resumed = await report(
      phdTorch(["train", "--mask", f.mask, "--resume", killed, "--json"], 2),
      2,
    );
    const from = resumed.losses[0][0] - 1;
    assert(from >= SAVE_EVERY && from % SAVE_EVERY === 0 && from < STEPS, `resumed at ${from}`);
    assertEquals(resumed.losses, two.losses.slice(from));
    assertEquals(await weights(killed), w2);

    // the torchrun checkpoint decodes to the same greedy tokens in both engines
    const gen = ["--ckpt", two.out, "--prompt", "The mask ", "--max-new-tokens", "24", "--json"];
    const [py, dn] = await Promise.all([
      phdTorch(["generate", "--mask", f.mask, ...gen]),
      runScript("cli/generate.ts", ...gen, "--greedy"),
    ]);
    assertEquals(py.code, 0, py.stderr);
    assertEquals(dn.code, 0, dn.stderr);
    assertEquals(JSON.parse(dn.stdout).tokens, JSON.parse(py.stdout).tokens);
    await Deno.remove(f.dir, { recursive: true });
  },
);

torchTest(
  "torchrun and phd_torch train: bad input is one error line before any training",
  async () => {
    const f = await runFolder("torchrun_bad_", { steps: 4 });
    const base = ["train", "--mask", f.mask, "--config", f.config, "--tokens", f.tokens];
    const out = ["--out", join(f.dir, "m.safetensors")];
    const [world, fsdp, bf16, overwrite] = await Promise.all([
      phdTorch([...base, ...out, "--batch", "9"], 2),
      phdTorch([...base, ...out, "--fsdp"]),
      phdTorch([...base, ...out, "--dtype", "bf16"]),
      phdTorch([...base, "--out", f.tokens]),
    ]);
    assertOneErrorLine(
      world,
      /--batch 9 does not split over 2 process\(es\) x --grad-accum 1: .* a multiple of 2/,
    );
    assertUsageError(
      fsdp,
      /--fsdp(: torch .* cannot import torch\.distributed\.fsdp| shards the blocks .* needs CUDA)/,
      "fsdp",
    );
    assertUsageError(bf16, /--dtype bf16 autocasts on CUDA only/, "bf16 on the CPU");
    assertUsageError(
      overwrite,
      /--out .* is the --tokens input: write the checkpoint elsewhere/,
      "out",
    );
    await Deno.remove(f.dir, { recursive: true });
  },
);
