/**
 * `deno task bench refusals [--runs N] [--json]`: how long each command takes to refuse input that
 * cannot fit or cannot be written (docs/DESIGN.md 3: refused before any work, with the number
 * that would fit), measured as wall time of the whole process against the start-up of one that
 * is refused at argument parsing. The cases are also the ones tests/model/limits_test.ts checks
 * for their one error line (`refusalCases`), so what is timed here is what is tested there.
 */
import { join } from "node:path";
import { DEFAULT_CONFIG, type ModelConfig } from "../runtime/model/config.ts";
import { encodeCheckpoint } from "../runtime/io/checkpoint.ts";
import { initParams } from "../runtime/model/params.ts";
import { median } from "../runtime/tune/engine.ts";
import { fail, flag } from "./results.ts";

/** One refused command: its arguments to `deno run -A` and the error line it must print. */
export interface RefusalCase {
  what: string;
  args: string[];
  pattern: RegExp;
}

/** A tiny model, so that writing its checkpoint costs nothing. */
export const TINY_MODEL: ModelConfig = {
  ...DEFAULT_CONFIG.model,
  hidden_size: 16,
  intermediate_size: 24,
  num_attention_heads: 2,
  num_key_value_heads: 1,
};

/**
 * Writes the cases' inputs into `dir` (a config with a huge seq_len, a tiny checkpoint, a text)
 * and returns the cases, the start-up reference (a bad `--steps`, refused while parsing) first.
 */
export async function refusalCases(dir: string): Promise<RefusalCase[]> {
  const cfg = join(dir, "huge.json");
  await Deno.writeTextFile(cfg, JSON.stringify({ train: { seq_len: 10_000_000 } }));
  const ckpt = join(dir, "m.safetensors");
  const params = Object.fromEntries(
    Object.entries(initParams(TINY_MODEL, { seed: 1 })).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  await Deno.writeFile(
    ckpt,
    encodeCheckpoint({ model: TINY_MODEL, phd: DEFAULT_CONFIG.phd, tokenizer: "bytes", params }),
  );
  const text = join(dir, "t.txt");
  await Deno.writeTextFile(text, "a short text");
  return [
    { what: "start-up (bad --steps)", args: ["cli/train.ts", "--steps", "0"], pattern: /--steps/ },
    {
      what: "train: seq_len 10^7",
      args: ["cli/train.ts", "--config", cfg, "--out", join(dir, "o")],
      pattern: /seq_len <= \d+/,
    },
    {
      what: "train: --out is a directory",
      args: ["cli/train.ts", "--out", dir],
      pattern: /cannot write checkpoint .* directory/,
    },
    {
      what: "train: --out unwritable",
      args: ["cli/train.ts", "--out", "/proc/nope/model.safetensors"],
      pattern: /cannot write checkpoint/,
    },
    {
      what: "eval: --context 99999999",
      args: ["cli/eval.ts", "--ckpt", ckpt, "--text-file", text, "--context", "99999999"],
      pattern: /--context <= \d+/,
    },
    {
      what: "generate: --max-new-tokens 999999999",
      args: ["cli/generate.ts", "--ckpt", ckpt, "--prompt", "hi", "--max-new-tokens", "999999999"],
      pattern: /--max-new-tokens <= \d+/,
    },
    {
      what: "generate: empty prompt",
      args: ["cli/generate.ts", "--ckpt", ckpt, "--prompt", "", "--max-new-tokens", "2"],
      pattern: /prompt is empty/,
    },
  ];
}

/** Wall milliseconds of `deno run -A <args>`; throws unless it refused (exit 1, an error line). */
async function timeRefusal(c: RefusalCase): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--node-modules-dir=manual", ...c.args],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "null",
  }).output();
  const ms = performance.now() - t0;
  const err = new TextDecoder().decode(out.stderr).trim();
  if (out.code !== 1 || !c.pattern.test(err)) {
    throw new Error(`${c.what}: expected a refusal matching ${c.pattern}, got exit ${out.code}`);
  }
  return ms;
}

export async function main(args: string[]): Promise<void> {
  const runs = Number(flag(args, "--runs") ?? "5");
  if (!Number.isInteger(runs) || runs < 1) fail("--runs takes a positive integer");
  const dir = await Deno.makeTempDir({ prefix: "refusals_" });
  try {
    const cases = await refusalCases(dir);
    // Rounds over all cases rather than one case at a time, so a load change hits every case.
    const times = cases.map(() => [] as number[]);
    for (let r = 0; r < runs; r++) {
      for (const [i, c] of cases.entries()) times[i].push(await timeRefusal(c));
    }
    const base = median(times[0], { even: "upper" });
    const rows = cases.map((c, i) => {
      const ms = median(times[i], { even: "upper" });
      return { what: c.what, median_ms: Math.round(ms), past_start_up_ms: Math.round(ms - base) };
    });
    if (args.includes("--json")) {
      console.log(JSON.stringify({ runs, load: Deno.loadavg()[0], rows }));
      return;
    }
    console.log(`median of ${runs} runs each (load average ${Deno.loadavg()[0].toFixed(2)})`);
    console.log("| refusal | wall ms | past start-up ms |\n| --- | ---: | ---: |");
    for (const r of rows) console.log(`| ${r.what} | ${r.median_ms} | ${r.past_start_up_ms} |`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
