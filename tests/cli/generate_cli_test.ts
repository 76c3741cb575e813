/**
 * `deno task generate` as a user runs it (subprocesses). Greedy generation through the PHD KV cache
 * equals an independent implementation of docs/DESIGN.md 1.3 reading the same checkpoint
 * (tests/fixtures/independent_model.ts: a minimal safetensors parser and a float64 forward of the
 * whole sequence per new token, no cache) with the masks written from docs/DESIGN.md 1.2's
 * formulas, with either adapter class's kernels (`PHD_ADAPTER_CLASS`: the gpu class's decode
 * tiling and matmuls are sized from the device's limits). The JSON report carries the contract's fields and a cache no bigger than vanilla's
 * plus the window. Bad input gets one error line and exit 1.
 */
import { deepStrictEqual, ok as assert, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import type { PhdConfig } from "../../runtime/model/config.ts";
import { initParams } from "../../runtime/model/params.ts";
import { ADAPTER_CLASS_ENV } from "../../runtime/host/gpu_options.ts";
import { ADAPTER_CLASSES } from "../../runtime/gpu/device.ts";
import { runScript, runScriptWithEnv } from "../fixtures/cli.ts";
import { tinyModel } from "../fixtures/model.ts";
import { type Allowed, lastLogits, readSafetensors } from "../fixtures/independent_model.ts";

/** Runs `deno run -A <script> ...args` as the tasks do. */
const deno = ([script, ...args]: string[]) => runScript(script, ...args);

/** docs/DESIGN.md 1.2: may query (j, n) attend key (i, m)? */
function presetMask(phd: PhdConfig): Allowed {
  return (j, n, i, m) => {
    const { K, W, C } = phd;
    if (phd.variant === "causal") return m <= n;
    const base = (i === 0 && m < n) || (m === n && i <= j);
    if (phd.variant === "phd" || base) return base;
    const h = (c: number, p: number) => p * (K - 1) + (c - 1);
    const swa = i >= 1 && j >= 1 && h(j, n) - W < h(i, m) && h(i, m) <= h(j, n);
    if (phd.variant === "phd-swa") return swa;
    return swa && Math.floor(m / C) === Math.floor(n / C);
  };
}

async function checkpoint(dir: string, phd: PhdConfig, seed: number): Promise<string> {
  const model = tinyModel({ vocab_size: 256, tie_word_embeddings: false });
  const init = initParams(model, { seed, std: 0.3 });
  const params = Object.fromEntries(
    Object.entries(init).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  const path = join(dir, `${phd.variant}.safetensors`);
  await Deno.writeFile(path, encodeCheckpoint({ model, phd, tokenizer: "bytes", params }));
  return path;
}

const PROMPT = "Hello, PHD world";
const NEW = 10;

Deno.test("greedy generate equals an independent implementation on the same checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const phds: PhdConfig[] = [
    { K: 2, variant: "phd-cswa", W: 3, C: 4, positions: "shared" },
    { K: 3, variant: "phd-swa", W: 4, C: 32, positions: "flattened" },
  ];
  const files = await Promise.all(phds.map((phd, i) => checkpoint(dir, phd, 40 + i)));
  // Each checkpoint with either class's kernels.
  const cases = ADAPTER_CLASSES.flatMap((cls) => phds.map((_, i) => ({ cls, i })));
  const paths = cases.map((c) => files[c.i]);
  const runs = await Promise.all(cases.map(({ cls, i }) =>
    runScriptWithEnv(
      { [ADAPTER_CLASS_ENV]: cls },
      "cli/generate.ts",
      "--ckpt",
      files[i],
      "--prompt",
      PROMPT,
      "--max-new-tokens",
      `${NEW}`,
      "--greedy",
      "--steps-per-submit",
      "4",
      "--json",
    )
  ));
  for (const [c, r] of runs.entries()) {
    strictEqual(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout);
    for (const k of ["tokens", "text", "kv_cache_bytes", "prefill_ms", "decode_tokens_per_s"]) {
      assert(k in got, `report lacks ${k}`);
    }
    assert("originals" in got.kv_cache && "hidden_window" in got.kv_cache);
    // Independent: parse the file, rebuild config and variant from its metadata, recompute.
    const file = readSafetensors(await Deno.readFile(paths[c]));
    const cfg = JSON.parse(file.meta.config), phd = JSON.parse(file.meta.phd) as PhdConfig;
    const seq = Array.from(new TextEncoder().encode(PROMPT)), want: number[] = [];
    for (let i = 0; i < NEW; i++) {
      const lg = lastLogits(cfg, phd, file.tensors, seq, presetMask(phd));
      const next = lg.indexOf(Math.max(...lg));
      want.push(next);
      seq.push(next);
    }
    deepStrictEqual(got.tokens, want, `${phd.variant} (${cases[c].cls} class): greedy tokens`);
    strictEqual(got.text, new TextDecoder().decode(Uint8Array.from(want)));
    // The cache: every position's original, plus at most W-1 hidden keys.
    const positions = PROMPT.length + NEW - 1;
    strictEqual(got.kv_cache.originals, positions);
    assert(got.kv_cache.hidden_window <= phd.W - 1);
    const bpt = got.kv_cache.bytes_per_token;
    assert(got.kv_cache_bytes >= positions * bpt);
    assert(got.kv_cache_bytes <= (positions + got.kv_cache.hidden_window) * bpt);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad input: one error line and a non-zero exit", async () => {
  const dir = await Deno.makeTempDir();
  const ckpt = await checkpoint(dir, { K: 2, variant: "phd", W: 4, C: 8, positions: "shared" }, 1);
  const gen = (...a: string[]) => ["cli/generate.ts", ...a];
  const cases: [string[], RegExp][] = [
    [gen("--ckpt", "nope.safetensors", "--prompt", "x", "--max-new-tokens", "3"), /does not exist/],
    [gen("--ckpt", ckpt, "--prompt", "", "--max-new-tokens", "3"), /prompt is empty/],
    [gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "0"), /positive integer/],
    [gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "2", "--top-p", "2"), /--top-p/],
    [
      gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "2", "--temperature", "-1"),
      /--temperature/,
    ],
    [
      gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "2", "--greedy", "--top-k", "3"),
      /--greedy/,
    ],
    [gen("--ckpt", ckpt, "--prompt", "x", "--max-new-tokens", "2", "--bogus"), /unknown option/],
    [gen("--ckpt", ckpt, "--steps-per-submit", "100000000"), /--steps-per-submit .* \[1, 1024\]/],
    [gen("--ckpt", join(dir, "x.json"), "--prompt", "x", "--max-new-tokens", "2"), /does not/],
  ];
  const runs = await Promise.all(cases.map(([args]) => deno(args)));
  for (const [i, r] of runs.entries()) {
    const [args, msg] = cases[i];
    strictEqual(r.code, 1, `${args.join(" ")}: exit ${r.code} ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    deepStrictEqual(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
    assert(msg.test(lines[0]), `${args.join(" ")}: ${lines[0]}`);
  }
  await Deno.remove(dir, { recursive: true });
});
