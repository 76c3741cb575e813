/**
 * A run crosses engines (docs/DESIGN.md 4.2): `deno task train` (WebGPU) and `phd_torch train`
 * (PyTorch, CPU) start from the same weights (the shared initialisation) and draw the same batches
 * from one token file; each continues the other's periodic checkpoint with `--resume` (moments,
 * step, sampler state and config from the training-state file). Every logged loss of the four runs
 * (WebGPU, PyTorch, WebGPU then PyTorch, PyTorch then WebGPU) agrees with the uninterrupted run of
 * either engine to 1e-5 relative: the engines sum in float32 in different orders (measured: 2.3e-7
 * at most over 30 steps on llvmpipe and lavapipe, no growth). The first step after a crossing
 * starts from identical weights and moments, so its loss agrees to 1e-6. Bad input is one line in
 * both engines: a token file of another tokenizer than the checkpoint's, a mask of another spec.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { assertUsageError, runScript } from "../fixtures/cli.ts";
import { phdTorch, runFolder, torchTest } from "../fixtures/torch.ts";

const STEPS = 8, HALF = 4;

async function losses(r: Promise<{ code: number; stdout: string; stderr: string }>) {
  const x = await r;
  assertEquals(x.code, 0, x.stderr);
  return new Map<number, number>(JSON.parse(x.stdout).losses);
}

function assertClose(a: Map<number, number>, b: Map<number, number>, rtol: number, what: string) {
  for (const [step, loss] of a) {
    const other = b.get(step)!;
    assert(Math.abs(loss - other) <= rtol * loss, `${what}, step ${step}: ${loss} vs ${other}`);
  }
}

torchTest(
  "a run crosses engines: WebGPU then PyTorch and back follow the uninterrupted runs",
  async () => {
    const f = await runFolder("cross_", { steps: STEPS, save_every: HALF });
    const out = (name: string) => join(f.dir, name, "m.safetensors");
    const unit = (name: string) => join(f.dir, name, `m.step-0000000${HALF}.safetensors`);
    const deno = (...a: string[]) => runScript("cli/train.ts", ...a, "--json", "--quiet");
    const torch = (...a: string[]) => phdTorch(["train", "--mask", f.mask, ...a, "--json"]);
    const [webgpu, pytorch] = await Promise.all([
      losses(deno("--config", f.config, "--tokens", f.tokens, "--out", out("webgpu"))),
      losses(torch("--config", f.config, "--tokens", f.tokens, "--out", out("pytorch"))),
    ]);
    const [toTorch, toWebgpu] = await Promise.all([
      losses(torch("--resume", unit("webgpu"), "--out", out("to_torch"))),
      losses(deno("--resume", unit("pytorch"), "--out", out("to_webgpu"))),
    ]);
    assertEquals(webgpu.size, STEPS);
    assertEquals([...toTorch.keys()], [...toWebgpu.keys()]);
    assertEquals([...toTorch.keys()][0], HALF + 1);
    assert(webgpu.get(STEPS)! < webgpu.get(1)! - 0.3, "the model learns");
    assertClose(webgpu, pytorch, 1e-5, "WebGPU vs PyTorch");
    for (
      const [crossed, name] of [[toTorch, "WebGPU then PyTorch"], [
        toWebgpu,
        "PyTorch then WebGPU",
      ]] as const
    ) {
      assertClose(crossed, webgpu, 1e-5, `${name} vs WebGPU`);
      assertClose(crossed, pytorch, 1e-5, `${name} vs PyTorch`);
    }
    const first = new Map([[HALF + 1, webgpu.get(HALF + 1)!]]);
    assertClose(first, toTorch, 1e-6, "the first step in PyTorch from WebGPU's state");
    assertClose(new Map([[HALF + 1, pytorch.get(HALF + 1)!]]), toWebgpu, 1e-6, "and back");

    // bad input: a token file of another tokenizer (both engines), a mask of another spec
    const bpe = join(f.dir, "bpe.safetensors");
    const made = await runScript(
      "cli/tokenize.ts",
      "--data",
      "README.md",
      "--tokenizer",
      "bpe:300",
      "--out",
      bpe,
    );
    assertEquals(made.code, 0, made.stderr);
    const other = join(f.dir, "k3.py");
    assertEquals(
      (await runScript("cli/export.ts", "phd", "--K", "3", "--to", "flex", "--out", other)).code,
      0,
    );
    const [pyTok, pySpec] = await Promise.all([
      phdTorch([
        "train",
        "--mask",
        f.mask,
        "--resume",
        unit("webgpu"),
        "--tokens",
        bpe,
        "--out",
        out("x"),
      ]),
      phdTorch(["train", "--mask", other, "--resume", unit("webgpu"), "--out", out("x")]),
    ]);
    assertUsageError(
      pyTok,
      /token file ".*bpe\.safetensors" was made with tokenizer bpe-300, checkpoint ".*"'s is bytes/,
      "tokenizer, PyTorch",
    );
    assertUsageError(
      pySpec,
      /was trained with K=2 .* the module has K=3 .* deno task export/,
      "spec, PyTorch",
    );
    // WebGPU resumes with the saved config's token file: put another tokenizer's there
    await Deno.copyFile(bpe, f.tokens);
    assertUsageError(
      await runScript("cli/train.ts", "--resume", unit("webgpu"), "--out", out("x")),
      /token file ".*tokens\.safetensors": it was made with tokenizer bpe-300, the checkpoint's is bytes/,
      "tokenizer, WebGPU",
    );
    await Deno.remove(f.dir, { recursive: true });
  },
);
