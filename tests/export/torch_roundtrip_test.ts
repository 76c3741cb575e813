/**
 * Checkpoints both ways between this project and python/phd_torch (Debian's PyTorch, the dense
 * path of torch < 2.5), as a user runs the commands:
 * - a model trained here (`deno task train`, tiny config, flattened positions) has the same loss
 *   in PyTorch as `deno task eval` reports, to 1e-6 relative (float64 and float32, both layouts);
 * - a model trained in PyTorch from the `config.json` written beside that checkpoint (on a token
 *   file of `deno task tokenize`) loads here, and `deno task generate --greedy` gives the tokens of
 *   PyTorch's greedy loop;
 * - both sides write the same Hugging Face config.json;
 * - bad input (no metadata, the mask module of another spec) gets one `error:` line.
 */
import { deepStrictEqual as assertEquals, match, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { decodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { encodeSafetensors } from "../../runtime/io/safetensors.ts";
import { hfConfig } from "../../runtime/io/hf_config.ts";
import { assertUsageError, runScript } from "../fixtures/cli.ts";
import { phdTorch } from "../fixtures/torch.ts";
import { needs } from "../fixtures/packages.ts";
import { TINY_SECTION } from "../fixtures/model.ts";

const TEXT = "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent " +
  "primary election produced no evidence that any irregularities took place. The jury further " +
  "said in term-end presentments that the City Executive Committee deserves praise.";

const torch = (...a: string[]) => phdTorch(a);

async function ok(r: Promise<{ code: number; stdout: string; stderr: string }>) {
  const x = await r;
  assertEquals(x.code, 0, x.stderr);
  return x;
}

async function configJson(dir: string) {
  return JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
}

Deno.test(
  needs(
    "python3-torch",
    "checkpoints cross between deno tasks and PyTorch: eval loss, greedy tokens",
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "torch_" });
      const text = join(dir, "t.txt"), cfg = join(dir, "c.json");
      await Deno.writeTextFile(text, TEXT);
      await Deno.writeTextFile(
        cfg,
        JSON.stringify({
          model: TINY_SECTION,
          phd: { K: 3, variant: "phd-cswa", W: 3, C: 4, positions: "flattened" },
          train: {
            steps: 8,
            lr: 3e-2,
            warmup: 1,
            batch_size: 4,
            seq_len: 16,
            eval_batches: 1,
            log_every: 8,
            eval_every: 0,
          },
        }),
      );

      // (b) trained here, evaluated by both
      const here = join(dir, "here", "m.safetensors");
      await ok(runScript("cli/train.ts", "--config", cfg, "--out", here, "--json", "--quiet"));
      const hereBytes = await Deno.readFile(here);
      assertEquals(await configJson(join(dir, "here")), hfConfig(decodeCheckpoint(hereBytes)));
      const want = JSON.parse(
        (await ok(runScript("cli/eval.ts", "--ckpt", here, "--text-file", text, "--json"))).stdout,
      );
      // a few steps move the model well off the uniform ln 256 = 5.55, so the masks matter
      assert(want.loss < 5, `deno eval ${want.loss}`);
      for (const layout of ["interleaved", "grouped"]) {
        const mask = join(dir, `here_${layout}.py`);
        await ok(
          runScript("cli/export.ts", here, "--to", "flex", "--layout", layout, "--out", mask),
        );
        for (const dtype of layout === "grouped" ? ["float64"] : ["float64", "float32"]) {
          const r = await ok(
            torch(
              "eval",
              "--ckpt",
              here,
              "--mask",
              mask,
              "--text-file",
              text,
              "--dtype",
              dtype,
              "--json",
            ),
          );
          match(r.stderr, /^attention: flex_attention/m); // flex, or why not (torch < 2.5)
          const got = JSON.parse(r.stdout);
          assertEquals(got.tokens, want.tokens);
          // 1e-6, tighter than the 1e-5 asked: in a model this small, reading flattened positions as
          // shared moves the loss by only ~5e-6 (measured); the two sides agree to ~1e-7.
          const rel = Math.abs(got.loss - want.loss) / want.loss;
          assert(
            rel <= 1e-6,
            `${layout} ${dtype}: torch ${got.loss} vs deno eval ${want.loss} (${rel})`,
          );
        }
      }

      // (c) trained in PyTorch from the config.json beside the checkpoint, decoded by both
      const mask = join(dir, "swa.py"), there = join(dir, "there", "t.safetensors");
      await ok(
        runScript(
          "cli/export.ts",
          "phd-swa",
          "--K",
          "2",
          "--W",
          "3",
          "--to",
          "flex",
          "--out",
          mask,
        ),
      );
      const repeated = join(dir, "rep.txt"), tokens = join(dir, "rep.safetensors");
      await Deno.writeTextFile(repeated, "the cat sat on the mat. ".repeat(40));
      await ok(runScript("cli/tokenize.ts", "--data", repeated, "--out", tokens));
      const trained = JSON.parse(
        (await ok(torch(
          "train",
          "--mask",
          mask,
          "--config",
          join(dir, "here", "config.json"),
          "--tokens",
          tokens,
          "--steps",
          "30",
          "--batch",
          "8",
          "--seq-len",
          "16",
          "--lr",
          "1e-2",
          "--out",
          there,
          "--json",
        ))).stdout,
      );
      assert(
        trained.loss_last < trained.loss_first / 2,
        `PyTorch training: ${JSON.stringify(trained)}`,
      );
      const thereCk = decodeCheckpoint(await Deno.readFile(there));
      assertEquals(thereCk.spec.name, "phd_swa_k2_w3");
      assertEquals(await configJson(join(dir, "there")), hfConfig(thereCk));
      const prompt = "the c", n = "24";
      const py = JSON.parse(
        (await ok(torch(
          "generate",
          "--ckpt",
          there,
          "--mask",
          mask,
          "--prompt",
          prompt,
          "--max-new-tokens",
          n,
          "--json",
        ))).stdout,
      );
      const dn = JSON.parse(
        (await ok(runScript(
          "cli/generate.ts",
          "--ckpt",
          there,
          "--prompt",
          prompt,
          "--max-new-tokens",
          n,
          "--greedy",
          "--json",
        ))).stdout,
      );
      assertEquals(dn.tokens, py.tokens);
      assertEquals(dn.text, py.text);

      // bad input: a checkpoint without metadata, the mask of another spec
      const bare = join(dir, "bare.safetensors");
      const t = new Map([["model.norm.weight", {
        dtype: "F32" as const,
        shape: [16],
        data: new Float32Array(16),
      }]]);
      await Deno.writeFile(bare, encodeSafetensors(t));
      const args = ["--mask", mask, "--text-file", text];
      assertUsageError(
        await torch("eval", "--ckpt", bare, ...args),
        /no __metadata__ "config"/,
        "bare",
      );
      assertUsageError(
        await runScript(
          "cli/generate.ts",
          "--ckpt",
          bare,
          "--prompt",
          "a",
          "--max-new-tokens",
          "1",
        ),
        /no "config"/,
        "bare, deno",
      );
      assertUsageError(
        await torch("eval", "--ckpt", here, ...args),
        /was trained with K=3 .* export the checkpoint's own, deno task export/,
        "mask of another spec",
      );
      assertUsageError(
        await torch("eval", "--ckpt", there, "--mask", join(dir, "none.py"), "--text-file", text),
        /mask module ".*none\.py" does not exist/,
        "no mask module",
      );
      const flex = await torch("eval", "--ckpt", there, ...args, "--attention", "flex");
      if (flex.code !== 0) {
        assertUsageError(flex, /--attention flex: flex_attention needs torch >= 2\.5/, "old torch");
      }
      await Deno.remove(dir, { recursive: true });
    },
  ),
);

Deno.test(
  needs(
    "python3-torch",
    "a checkpoint of a spec file (score modifier) has the same loss in PyTorch from its own export",
    async () => {
      // The spec travels inside the checkpoint (phd.mask_spec): `export ckpt` rebuilds it without the
      // source file, and the module it writes names the checkpoint's own phd section.
      const dir = await Deno.makeTempDir({ prefix: "torch_spec_" });
      const text = join(dir, "t.txt"), ckpt = join(dir, "m.safetensors"), mask = join(dir, "m.py");
      await Deno.writeTextFile(text, TEXT.repeat(6)); // enough for a validation window of 5%
      await ok(runScript(
        "cli/train.ts",
        "--spec",
        "examples/masks/softcap_phd.ts",
        "--data",
        text,
        "--steps",
        "6",
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--lr",
        "0.03",
        "--out",
        ckpt,
        "--quiet",
      ));
      const want = JSON.parse(
        (await ok(runScript("cli/eval.ts", "--ckpt", ckpt, "--text-file", text, "--json"))).stdout,
      );
      const exported = JSON.parse(
        (await ok(runScript("cli/export.ts", ckpt, "--to", "flex", "--out", mask, "--json")))
          .stdout,
      );
      assert(JSON.parse(exported.checkpoint_phd).mask_spec, "the module names the spec itself");
      const got = JSON.parse(
        (await ok(torch("eval", "--ckpt", ckpt, "--mask", mask, "--text-file", text, "--json")))
          .stdout,
      );
      assertEquals(got.tokens, want.tokens);
      const rel = Math.abs(got.loss - want.loss) / want.loss;
      assert(rel <= 1e-5, `torch ${got.loss} vs deno eval ${want.loss} (${rel})`);
      await Deno.remove(dir, { recursive: true });
    },
  ),
);
